"""Load benchmark of the predictions API: a real uvicorn server over a SQLite store.

Run: ``.venv/bin/python tests/benchmarks/bench_api.py [--seconds 5] [--connections 8]``

One uvicorn process serves ``lof.api`` on loopback over a SQLite store filled through
``PredictionStore.write_day`` with a 300-student class (30 days). A load generator in another
process (``wrk`` if installed, else an asyncio httpx client) measures, in alternating rounds,
/healthz (the baseline: no I/O) and /predictions for one class-day, asked with gzip (as HTTP
clients do by default) and without. A second uvicorn process with the class-day cache off gives
the uncached figures (every request is one key lookup of the body written with the day), in the
same alternating rounds. Prints requests/second, p50/p99 latency, the throughput ratios
predictions/healthz (bars: cached >= 0.5, uncached with gzip >= 0.3) and failed requests (0).
Exit status 1 if a bar is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

KEY = "bench-key-0123456789"
CLASS_ID = 12
STUDENTS = 300
DAYS = 30
FIRST_DAY = date(2023, 3, 1)
RATIO_BAR = 0.5
UNCACHED_BAR = 0.3


def realistic_features(rng) -> dict[str, float]:
    """Raw features as the daily flow computes them: counts, and means over a few records."""
    from lof.features.definitions import FEATURES

    records = int(rng.integers(1, 13))
    values = [
        *(float(v) for v in rng.integers(0, 400, size=5)),
        float(rng.integers(0, 20)),
        float(rng.integers(0, 60)),
        float(records),
        float(records),
        float(rng.integers(0, 7200 * records)) / records,
        float(rng.integers(-86400, 604800 * records)) / records,
        float(rng.integers(0, records + 1)),
        float(rng.integers(records, 5 * records + 1)) / records,
    ]
    return dict(zip(FEATURES, values, strict=True))


def fill_store(url: str) -> date:
    """30 days of predictions for a 300-student class; returns the last day."""
    import numpy as np
    import pandas as pd

    from lof.stores import open_prediction_store

    store = open_prediction_store(url)
    rng = np.random.default_rng(0)
    day = FIRST_DAY
    for offset in range(DAYS):
        day = FIRST_DAY + timedelta(days=offset)
        probs = rng.dirichlet(np.ones(5), size=STUDENTS)
        frame = pd.DataFrame(
            {
                "class_id": CLASS_ID,
                "user_id": np.arange(10_000, 10_000 + STUDENTS),
                "predicted_label": probs.argmax(axis=1) + 1,
                "predicted_prob": [{str(i + 1): float(p) for i, p in enumerate(r)} for r in probs],
                "risk_prob": probs[:, :2].sum(axis=1),
                "at_risk": probs[:, :2].sum(axis=1) >= 0.5,
                "required_level": 3,
                "model_name": "lof-outcome",
                "model_version": "4",
                "features": [realistic_features(rng) for _ in range(STUDENTS)],
            }
        )
        store.write_day(day=day, predictions=frame)
    getattr(store, "close", lambda: None)()
    return day


def uncached_app():
    """The API with its class-day cache off (uvicorn factory for the uncached figure)."""
    from lof.api import create_app

    return create_app(cache_seconds=0)


def start_server(factory: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            factory,
            "--factory",
            "--app-dir",
            str(Path(__file__).parent),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
    )
    return proc, f"http://127.0.0.1:{port}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run_wrk(url: str, *, encoding: str, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "--timeout",
            "10s",
            "-H",
            f"x-api-key: {KEY}",
            "-H",
            f"accept-encoding: {encoding}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _ms(latency["50"]),
        "p99_ms": _ms(latency["99"]),
        "failed": errors + (int(non2xx.group(1)) if non2xx else 0),
    }


async def _generate(
    url: str, encoding: str, seconds: float, connections: int, max_requests: int
) -> dict:
    import httpx

    latencies: list[float] = []
    failed = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"x-api-key": KEY, "accept-encoding": encoding}
    async with httpx.AsyncClient(limits=limits, headers=headers, timeout=10) as client:

        async def worker() -> None:
            nonlocal failed
            while time.perf_counter() < deadline and len(latencies) + failed < max_requests:
                start = time.perf_counter()
                try:
                    response = await client.get(url)
                    await response.aread()
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append((time.perf_counter() - start) * 1000)
                else:
                    failed += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    n = len(latencies)
    return {
        "requests": n + failed,
        "rps": (n + failed) / elapsed,
        "p50_ms": latencies[n // 2] if n else float("nan"),
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] if n else float("nan"),
        "failed": failed,
    }


def combine(runs: list[dict[str, float]]) -> dict[str, float]:
    """Rounds summed: requests and failures add up, rate over the total time, worst p50/p99."""
    seconds = sum(r["requests"] / r["rps"] for r in runs if r["rps"])
    requests = sum(r["requests"] for r in runs)
    return {
        "requests": requests,
        "rps": requests / seconds if seconds else 0.0,
        "p50_ms": max(r["p50_ms"] for r in runs),
        "p99_ms": max(r["p99_ms"] for r in runs),
        "failed": sum(r["failed"] for r in runs),
    }


def run_httpx(url: str, *, encoding: str, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--generate", url, encoding, str(seconds), str(connections)],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    return json.loads(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3, help="duration of each load run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per endpoint")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--generator", choices=["auto", "wrk", "httpx"], default="auto")
    parser.add_argument("--generate", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:  # the load-generator process
        url, encoding, seconds, connections = args.generate
        result = asyncio.run(_generate(url, encoding, float(seconds), int(connections), 200_000))
        print(json.dumps(result))
        return 0

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "httpx"
    run = run_wrk if generator == "wrk" else run_httpx

    home = Path(tempfile.mkdtemp(prefix="lof-bench-api-"))
    url = f"sqlite:///{home / 'lof.db'}"
    began = time.perf_counter()
    last_day = fill_store(url)
    print(f"store: {STUDENTS} students x {DAYS} days written in {time.perf_counter() - began:.1f}s")

    env = {**os.environ, "LOF_HOME": str(home), "LOF_STORE_URL": url, "LOF_API_KEYS": KEY}
    server, base = start_server("lof.api:get_app", env)
    bare, bare_base = start_server("bench_api:uncached_app", env)
    predictions = f"{base}/predictions?predicted_dt={last_day:%Y%m%d}&class_id={CLASS_ID}"
    # (url, accept-encoding): clients (requests, axios, API Gateway) ask for gzip by default
    targets = {
        "healthz": (f"{base}/healthz", "gzip"),
        "predictions": (predictions, "gzip"),
        "predictions-identity": (predictions, "identity"),
    }
    uncached = predictions.replace(base, bare_base)
    # cache off: every request is one key lookup of the body written with the day
    targets["predictions-uncached"] = (uncached, "gzip")
    targets["uncached-identity"] = (uncached, "identity")
    try:
        wait_ready(targets["healthz"][0], server)
        wait_ready(f"{bare_base}/healthz", bare)
        import httpx

        body = httpx.get(predictions, headers={"x-api-key": KEY}, timeout=10)
        assert body.status_code == 200 and len(body.json()) == STUDENTS, body.text[:200]
        print(
            f"/predictions body: {len(body.content)} bytes, {STUDENTS} records, "
            f"{body.num_bytes_downloaded} bytes gzip"
        )
        for url_, encoding in targets.values():  # warm-up (store open, caches)
            run(url_, encoding=encoding, seconds=1, connections=args.connections)
        # alternate short rounds so load from other processes hits both endpoints alike
        rounds = [
            {
                name: run(u, encoding=e, seconds=args.seconds, connections=args.connections)
                for name, (u, e) in targets.items()
            }
            for _ in range(args.rounds)
        ]
        results = {name: combine([r[name] for r in rounds]) for name in targets}
    finally:
        for proc in (server, bare):
            proc.terminate()
            proc.wait(timeout=20)
        shutil.rmtree(home, ignore_errors=True)

    print(
        f"generator: {generator}, {args.connections} connections, "
        f"{args.rounds} x {args.seconds}s per endpoint, alternating"
    )
    print(
        f"{'endpoint':<21} {'requests':>9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7}"
    )
    for name, r in results.items():
        print(
            f"{name:<21} {r['requests']:>9} {r['rps']:>9.1f} {r['p50_ms']:>8.2f} "
            f"{r['p99_ms']:>8.2f} {r['failed']:>7}"
        )
    ratio = results["predictions"]["rps"] / results["healthz"]["rps"]
    identity = results["predictions-identity"]["rps"] / results["healthz"]["rps"]
    print(f"ratio predictions (identity, no gzip)/healthz throughput: {identity:.2f}")
    bare_identity = results["uncached-identity"]["rps"] / results["healthz"]["rps"]
    print(f"ratio predictions (cache off, identity: body read and gunzipped)/healthz: "
          f"{bare_identity:.2f}")  # fmt: skip
    bare_ratio = results["predictions-uncached"]["rps"] / results["healthz"]["rps"]
    print(
        f"ratio predictions (cache off, gzip: one key lookup per request)/healthz: "
        f"{bare_ratio:.2f} (bar >= {UNCACHED_BAR})"
    )
    failed = sum(r["failed"] for r in results.values())
    ok = ratio >= RATIO_BAR and bare_ratio >= UNCACHED_BAR and failed == 0
    print(f"ratio predictions (gzip)/healthz throughput: {ratio:.2f} (bar >= {RATIO_BAR})")
    print(f"failed requests: {failed} (bar 0) -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
