"""Benchmark of the class page's store reads: one query per scored day vs one per student.

Run: ``.venv/bin/python tests/benchmarks/bench_pages.py [--students 300] [--days 60] [--rounds 5]``

A SQLite store filled through ``PredictionStore.write_day`` with one class (``--students`` by
``--days``). Measured in the same run, alternating: the page's reads (``lof.api.routes.pages``:
list_days + one ``read_class_day`` per day, in parallel), the N+1 alternative (one
``read_student_history`` per student), and the whole page through the app (reads + rendering).
Prints median seconds and the ratio per-student / per-day.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=300)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import pandas as pd
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from lof.api import create_app
    from lof.api.routes.pages import read_class_history
    from lof.core import links
    from lof.stores import open_prediction_store
    from tests.api._data import settings_for
    from tests.api.routes._demo import FIRST_DAY, SECRET, demo_frame

    home = Path(tempfile.mkdtemp(prefix="lof-bench-pages-"))
    url = f"sqlite:///{home / 'lof.db'}"
    store = open_prediction_store(url)
    users = tuple(range(100_001, 100_001 + args.students))
    for k in range(args.days):
        frame = demo_frame(class_id=5, users=users, day_index=k, seed=k)
        store.write_day(day=FIRST_DAY + timedelta(days=k), predictions=pd.DataFrame(frame))

    def per_day() -> None:
        days = store.list_days(class_id=5)
        read_class_history(store, class_id=5, days=days)

    def per_student() -> None:
        for user in users:
            store.read_student_history(class_id=5, user_id=user)

    app = create_app(settings_for(home, url, link_secret=SECRET), cache_seconds=0)
    token = links.sign(secret=SecretStr(SECRET), class_id=5, ttl_seconds=3600)[0]
    timings: dict[str, list[float]] = {"per_day": [], "per_student": [], "page": []}
    with TestClient(app) as client:

        def page() -> None:
            response = client.get("/classes/5/report", params={"token": token})
            assert response.status_code == 200

        for _ in range(args.rounds):
            for name, fn in (("per_day", per_day), ("per_student", per_student), ("page", page)):
                start = time.perf_counter()
                fn()
                timings[name].append(time.perf_counter() - start)
    med = {name: statistics.median(values) for name, values in timings.items()}
    print(f"{args.students} students x {args.days} days, SQLite, median of {args.rounds} rounds")
    print(f"  reads, one query per day (the page):  {med['per_day']:.3f} s")
    print(f"  reads, one history per student (N+1): {med['per_student']:.3f} s")
    print(f"  whole page (reads + render) via app:  {med['page']:.3f} s")
    print(f"  ratio per-student / per-day reads:    {med['per_student'] / med['per_day']:.2f}")


if __name__ == "__main__":
    main()
