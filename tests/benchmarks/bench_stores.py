"""Store benchmark: one day of N enrolments written and read on each backend, and the daily read
cost after 1 vs many stored days (the ratio should stay near 1: a day's read touches that day only).

Run: ``.venv/bin/python tests/benchmarks/bench_stores.py [--part all|growth|backends]
[--enrolments 30000] [--classes 100] [--growth-days 60] [--active 0.6] [--history-days 100]
[--history-enrolments 3000] [--backends sqlite,postgresql,dynamodb]``.

The growth part writes a semester day by day through the SQLite features store (increments made
directly, states accumulated with ``lof.features.state.accumulate_frames``) and prints the store's
size after 5, 30 and 60 days (bars: size(60) <= 400 MB, size(60)/size(30) <= 2.2).

Baselines measured in the same run: a bare bulk insert of the same prediction rows into a
scratch table (SQL: one executemany transaction; DynamoDB: boto3's ``batch_writer``), so the
``vs bare`` ratio is the store's own overhead (validation, manifest, generations).
It starts its own moto_server and uses scratch databases on the local PostgreSQL server.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lof.features.definitions import COUNT_COLUMNS, ENGAGEMENT_COLUMNS, FEATURES
from lof.stores import open_feature_store, open_prediction_store
from lof.stores.base import dumps

POSTGRES_ROOT = "postgresql+psycopg2://postgres@127.0.0.1:5432"
DAY0 = date(2023, 6, 1)


def engagement_frame(*, enrolments: int, classes: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for n in range(enrolments):
        rows.append(
            (
                n % classes + 1,
                100_000 + n // classes,
                *[rng.randint(0, 400) for _ in COUNT_COLUMNS],
                tuple(sorted(rng.sample(range(1, 5000), 12))),
                tuple(sorted(rng.sample(range(10**9, 10**9 + 10**6), 25))),
            )
        )
    frame = pd.DataFrame(rows, columns=list(ENGAGEMENT_COLUMNS[:9]))
    for column in ENGAGEMENT_COLUMNS[9:]:  # the signals' event state
        frame[column] = [rng.randint(0, 800_000) for _ in range(len(frame))]
    return frame


def prediction_frame(*, enrolments: int, classes: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for n in range(enrolments):
        probs = [rng.random() for _ in range(5)]
        total = sum(probs)
        prob = {str(level + 1): p / total for level, p in enumerate(probs)}
        rows.append(
            {
                "class_id": n % classes + 1,
                "user_id": 100_000 + n // classes,
                "predicted_label": max(prob, key=prob.get),
                "predicted_prob": prob,
                "risk_prob": prob["1"] + prob["2"],
                "at_risk": prob["1"] + prob["2"] >= 0.5,
                "required_level": 3,
                "model_name": "lof-outcome",
                "model_version": "7",
                "features": {name: rng.random() * 100 for name in FEATURES},
            }
        )
    return pd.DataFrame(rows)


def timed(fn: Callable[[], object], *, repeat: int = 1) -> float:
    """Median wall time of ``repeat`` calls, seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- backends ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def sqlite_url() -> Iterator[str]:
    folder = tempfile.mkdtemp(prefix="lof-bench-")
    try:
        yield f"sqlite:///{folder}/lof.db"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def postgres_url() -> Iterator[str]:
    name = f"lof_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(f"{POSTGRES_ROOT}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{POSTGRES_ROOT}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def dynamodb_url() -> Iterator[str]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    port = _free_port()
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield f"dynamodb://?endpoint=http://127.0.0.1:{port}&region=us-east-1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


BACKENDS = {"sqlite": sqlite_url, "postgresql": postgres_url, "dynamodb": dynamodb_url}


def bare_insert(url: str, predictions: pd.DataFrame) -> float:
    """Baseline: the same prediction rows bulk-inserted without the store's logic."""
    rows = [
        {
            "class_id": int(r.class_id),
            "day": DAY0,
            "user_id": int(r.user_id),
            "data": dumps({"p": r.predicted_prob, "f": r.features, "r": r.risk_prob}),
        }
        for r in predictions.itertuples()
    ]
    if url.startswith("dynamodb://"):
        import boto3

        endpoint = url.split("endpoint=")[1].split("&")[0]
        resource = boto3.resource("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
        table = resource.create_table(
            TableName="bench_bare",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        table.wait_until_exists()

        def write() -> None:
            with table.batch_writer() as batch:
                for row in rows:
                    batch.put_item(
                        Item={
                            "pk": f"{row['class_id']}#{DAY0:%Y%m%d}",
                            "sk": str(row["user_id"]),
                            "data": row["data"],
                        }
                    )

        return timed(write)
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    table = sa.Table(
        "bench_bare",
        meta,
        sa.Column("class_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("data", sa.Text),
    )
    meta.create_all(engine)

    def write() -> None:
        with engine.begin() as conn:
            conn.execute(table.insert(), rows)

    try:
        return timed(write)
    finally:
        engine.dispose()


# --- the benchmark ----------------------------------------------------------------------------


def bench_backend(name: str, url: str, args: argparse.Namespace) -> dict[str, float]:
    out: dict[str, float] = {}
    n, classes = args.enrolments, args.classes
    states = engagement_frame(enrolments=n, classes=classes, seed=1)
    increments = states.copy()
    for column in COUNT_COLUMNS:
        increments[column] = increments[column] // 10
    predictions = prediction_frame(enrolments=n, classes=classes, seed=2)

    features = open_feature_store(url)
    preds = open_prediction_store(url)
    out["baseline bare insert of predictions (s)"] = bare_insert(url, predictions)
    out["write features day (s)"] = timed(
        lambda: features.write_day(day=DAY0, increments=increments, states=states)
    )
    out["rewrite same features day (s)"] = timed(
        lambda: features.write_day(day=DAY0, increments=increments, states=states)
    )
    out["write predictions day (s)"] = timed(
        lambda: preds.write_day(day=DAY0, predictions=predictions)
    )
    out["rewrite same predictions day (s)"] = timed(
        lambda: preds.write_day(day=DAY0, predictions=predictions)
    )
    out["read states of all classes (s)"] = timed(
        lambda: features.read_states(day=DAY0), repeat=args.repeat
    )
    out["read one class-day of predictions (ms)"] = 1000 * timed(
        lambda: preds.read_class_day(day=DAY0, class_id=1), repeat=args.repeat * 5
    )
    out["write predictions vs bare insert (x)"] = (
        out["write predictions day (s)"] / out["baseline bare insert of predictions (s)"]
    )
    assert len(preds.read_class_day(day=DAY0, class_id=1)) == len(predictions) // classes
    return out


class RequestCounter:
    """Counts DynamoDB requests and the items they read (ScannedCount / returned items): what
    real DynamoDB bills for, independent of moto_server's own speed."""

    def __init__(self, *stores: object) -> None:
        self.requests = 0
        self.items = 0
        for store in stores:
            store.client.meta.events.register("after-call.dynamodb.*", self._count)

    def _count(self, parsed: dict, **_: object) -> None:
        self.requests += 1
        if "ScannedCount" in parsed:
            self.items += parsed["ScannedCount"]
        elif "Item" in parsed:
            self.items += 1

    def measure(self, fn: Callable[[], object]) -> tuple[int, int]:
        self.requests = self.items = 0
        fn()
        return self.requests, self.items


def bench_history(name: str, url: str, args: argparse.Namespace) -> dict[str, float | str]:
    """Daily read cost after 1 stored day vs after ``history_days`` stored days."""
    out: dict[str, float | str] = {}
    dynamo = url.startswith("dynamodb")
    n = args.dynamodb_history_enrolments if dynamo else args.history_enrolments
    days = args.dynamodb_history_days if dynamo else args.history_days
    classes = args.classes
    states = engagement_frame(enrolments=n, classes=classes, seed=3)
    predictions = prediction_frame(enrolments=n, classes=classes, seed=4)
    wanted = list(range(1, classes + 1, 2))
    history_url = url.replace("region=", "prefix=h_&region=") if dynamo else url
    features = open_feature_store(history_url)
    preds = open_prediction_store(history_url)
    counter = RequestCounter(features, preds) if dynamo else None
    first = DAY0 + timedelta(days=1000)

    def measure(day: date) -> tuple[float, float]:
        def read_states() -> object:
            return features.read_states(day=day, class_ids=wanted)

        def read_class() -> object:
            return preds.read_class_day(day=day, class_id=3)

        state_read = timed(read_states, repeat=args.repeat)
        class_read = timed(read_class, repeat=args.repeat * 5)
        if counter is not None:
            label = "1 day" if day == first else f"{days} days"
            requests, items = counter.measure(read_states)
            out[f"read states after {label}: requests / items read"] = f"{requests} / {items}"
            requests, items = counter.measure(read_class)
            out[f"read class-day after {label}: requests / items read"] = f"{requests} / {items}"
        return state_read, class_read

    print(f"  (history: {n} enrolments per day)")
    features.write_day(day=first, increments=states, states=states)
    preds.write_day(day=first, predictions=predictions)
    one_states, one_class = measure(first)
    start = time.perf_counter()
    for k in range(1, days):
        day = first + timedelta(days=k)
        features.write_day(day=day, increments=states, states=states)
        preds.write_day(day=day, predictions=predictions)
    fill = time.perf_counter() - start
    last = first + timedelta(days=days - 1)
    many_states, many_class = measure(last)
    out["read states (half the classes) after 1 day (ms)"] = 1000 * one_states
    out[f"read states after {days} days (ms)"] = 1000 * many_states
    out["states read ratio (many/1)"] = many_states / one_states
    out["read one class-day after 1 day (ms)"] = 1000 * one_class
    out[f"read one class-day after {days} days (ms)"] = 1000 * many_class
    out["class-day read ratio (many/1)"] = many_class / one_class
    out[f"filling {days - 1} days (s)"] = fill
    return out


# --- growth over a semester -------------------------------------------------------------------


def semester_increment(
    *, rng: np.random.Generator, day: int, enrolments: int, classes: int, active: float
) -> pd.DataFrame:
    """One day's engagement increment, made directly (no Amplitude files): a share ``active`` of
    the enrolments visit, each with 1-3 sessions (new ids: ms timestamps of that day) and 1-4
    activity pages out of 40 per class (ids repeat across days, as real ones do)."""
    chosen = np.flatnonzero(rng.random(enrolments) < active)
    n = len(chosen)
    sessions = rng.integers(1, 4, n)
    pages = rng.integers(1, 5, n)
    start_ms = 1_700_000_000_000 + day * 86_400_000
    session_values = np.sort(rng.integers(0, 86_400_000, int(sessions.sum()))) + start_ms
    page_values = rng.integers(1, 41, int(pages.sum()))
    session_edges = np.concatenate(([0], np.cumsum(sessions))).tolist()
    page_edges = np.concatenate(([0], np.cumsum(pages))).tolist()
    class_of = chosen % classes + 1
    data = {
        "class_id": class_of.astype(np.int64),
        "user_id": (100_000 + chosen // classes).astype(np.int64),
    }
    for column in COUNT_COLUMNS:
        data[column] = rng.integers(0, 30, n).astype(np.int64)
    listed_pages = page_values.tolist()
    listed_sessions = session_values.tolist()
    activity = np.empty(n, dtype=object)
    session = np.empty(n, dtype=object)
    for i in range(n):
        base_id = int(class_of[i]) * 1000
        activity[i] = tuple(
            sorted({base_id + v for v in listed_pages[page_edges[i] : page_edges[i + 1]]})
        )
        session[i] = tuple(sorted(set(listed_sessions[session_edges[i] : session_edges[i + 1]])))
    data["activity_ids"] = activity
    data["session_ids"] = session
    frame = pd.DataFrame(data, columns=list(ENGAGEMENT_COLUMNS))
    return frame.sort_values(["class_id", "user_id"]).reset_index(drop=True)


def sqlite_size(url: str) -> tuple[float, float]:
    """(file MB after a WAL checkpoint, MB of pages in use) of the SQLite store."""
    path = Path(url.removeprefix("sqlite:///"))
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
        free = conn.exec_driver_sql("PRAGMA freelist_count").scalar()
        size = conn.exec_driver_sql("PRAGMA page_size").scalar()
    engine.dispose()
    on_disk = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    return on_disk / 2**20, (pages - free) * size / 2**20


def bench_growth(args: argparse.Namespace) -> None:
    """Store size after 5, 30 and 60 days of a semester at ``--enrolments`` (SQLite)."""
    from lof.features import definitions as feat
    from lof.features.state import accumulate_frames

    marks = sorted({5, 30, args.growth_days})
    print(
        f"\n== growth: features store on SQLite, {args.enrolments} enrolments in "
        f"{args.classes} classes, {args.active:.0%} active per day, {args.growth_days} days"
    )
    rng = np.random.default_rng(11)
    sizes: dict[int, tuple[float, float]] = {}
    with sqlite_url() as url:
        store = open_feature_store(url)
        state = feat.empty_engagement()
        former_bytes = 0
        began = time.perf_counter()
        write_s = []
        for n in range(1, args.growth_days + 1):
            increment = semester_increment(
                rng=rng, day=n, enrolments=args.enrolments, classes=args.classes,
                active=args.active,
            )  # fmt: skip
            state = accumulate_frames(previous=state, increment=increment)
            day = DAY0 + timedelta(days=n - 1)
            start = time.perf_counter()
            store.write_day(day=day, increments=increment, states=state)
            write_s.append(time.perf_counter() - start)
            # The former layout stored every state row's ids as text each day: a lower bound.
            former_bytes += sum(
                len(",".join(map(str, ids))) for c in ("activity_ids", "session_ids")
                for ids in state[c]
            )  # fmt: skip
            if n in marks:
                sizes[n] = sqlite_size(url)
                ids = int(sum(len(v) for v in state["session_ids"]))
                print(
                    f"  day {n:>3}: {sizes[n][0]:8.1f} MB on disk ({sizes[n][1]:.1f} MB in use); "
                    f"state {len(state)} rows, {ids:,} session ids; former layout's id text "
                    f"alone {former_bytes / 2**20:,.0f} MB; write_day median "
                    f"{1000 * statistics.median(write_s[-5:]):.0f} ms (last 5 days); "
                    f"{time.perf_counter() - began:.0f}s so far"
                )
        store.close()
    last = args.growth_days
    print(
        f"  size({last})/size(30) = {sizes[last][0] / sizes[30][0]:.2f} on disk, "
        f"{sizes[last][1] / sizes[30][1]:.2f} in use (bar <= 2.2); "
        f"size({last}) = {sizes[last][0]:.0f} MB (bar <= 400 MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enrolments", type=int, default=30_000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--history-days", type=int, default=100)
    parser.add_argument("--history-enrolments", type=int, default=3_000)
    parser.add_argument(
        "--dynamodb-history-enrolments",
        type=int,
        default=1_000,
        help="smaller: moto_server keeps every item in memory and its Query walks the table",
    )
    parser.add_argument(
        "--dynamodb-history-days",
        type=int,
        default=30,
        help="fewer: each moto_server Query walks every stored item, so reads slow with history",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql,dynamodb")
    parser.add_argument("--growth-days", type=int, default=60, help="growth: days written")
    parser.add_argument("--active", type=float, default=0.6, help="growth: share active a day")
    parser.add_argument(
        "--part", choices=("all", "growth", "backends"), default="all", help="what to run"
    )
    args = parser.parse_args()
    if args.part in ("all", "growth"):
        bench_growth(args)
    if args.part == "growth":
        return

    print(
        f"enrolments={args.enrolments} classes={args.classes} history_days={args.history_days} "
        f"history_enrolments={args.history_enrolments}"
    )
    for name in args.backends.split(","):
        with BACKENDS[name]() as url:
            print(f"\n== {name}")
            for key, value in bench_backend(name, url, args).items():
                print(f"  {key:<48} {value:10.3f}")
            for key, value in bench_history(name, url, args).items():
                shown = f"{value:10.3f}" if isinstance(value, float) else f"{value:>10}"
                print(f"  {key:<48} {shown}")


if __name__ == "__main__":
    main()
