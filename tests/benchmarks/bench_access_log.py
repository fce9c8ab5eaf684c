"""CPU cost of the access log per API request, against the same app without it.

Run: ``.venv/bin/python tests/benchmarks/bench_access_log.py [--requests 3000] [--rounds 5]``

The app of ``lof.api.create_app`` over a SQLite store (a 300-student class-day, as
``bench_api.py`` writes it) is called in process, as an ASGI server would, for
``GET /predictions`` (the cached body: the cheapest request, so the log's share is the
largest) and ``GET /healthz`` (not logged). Alternating rounds measure the process CPU time
(every thread: the log's writer thread included, its last batch flushed inside the round) with
the access log on, and with its middleware taken out of the same app's settings. Prints CPU
microseconds per request, the ratio on/off per route (medians over rounds) and the load.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_api import CLASS_ID, KEY, fill_store
from measure import loadavg


def make_app(home: Path, url: str, *, logged: bool) -> Any:
    from lof.api import create_app
    from lof.api.access import AccessLogMiddleware
    from lof.core.config import get_settings

    app = create_app(get_settings(home=home, store_url=url, api_keys=KEY))
    if not logged:
        app.user_middleware = [m for m in app.user_middleware if m.cls is not AccessLogMiddleware]
    return app


async def call(app: Any, path: str, query: bytes) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": [(b"x-api-key", KEY.encode()), (b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    status = 0

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def round_cpu(app: Any, path: str, query: bytes, requests: int) -> float:
    """CPU seconds of ``requests`` calls, the access log's pending entries written at the end."""
    start = time.process_time()
    for _ in range(requests):
        assert await call(app, path, query) == 200
    app.state.access_recorder.flush()
    return time.process_time() - start


async def run(requests: int, rounds: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="lof-bench-access-"))
    url = f"sqlite:///{home / 'lof.db'}"
    day = fill_store(url)
    query = f"predicted_dt={day:%Y%m%d}&class_id={CLASS_ID}".encode()
    apps = {flag: make_app(home, url, logged=flag) for flag in (True, False)}
    for app in apps.values():  # warm: store opened, body cached, middleware stack built
        await round_cpu(app, "/predictions", query, 50)
    routes = {"predictions": ("/predictions", query), "healthz": ("/healthz", b"")}
    cpu: dict[tuple[str, bool], list[float]] = {}
    for _ in range(rounds):
        for name, (path, q) in routes.items():
            for flag, app in apps.items():
                seconds = await round_cpu(app, path, q, requests)
                cpu.setdefault((name, flag), []).append(seconds / requests * 1e6)
    print(f"{requests} requests x {rounds} rounds per route and app, load {loadavg()}")
    print("route          log on us/req   log off us/req   ratio on/off (median of rounds)")
    for name in routes:
        on, off = cpu[(name, True)], cpu[(name, False)]
        ratios = [a / b for a, b in zip(on, off, strict=True)]
        print(
            f"{name:<14} {statistics.median(on):>13.1f} {statistics.median(off):>16.1f}"
            f"   {statistics.median(ratios):.3f} (rounds {min(ratios):.3f}-{max(ratios):.3f})"
        )
    for app in apps.values():
        app.state.access_recorder.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.requests, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
