"""Benchmark: one day of Amplitude page views of a large university through ``day_increments``.

Writes its own day of realistic export files (gzip NDJSON, Amplitude's full event layout,
~30,000 enrolments), then runs each contender in a fresh subprocess and reads its peak RSS:

* ``ours``: ``lof.sources.amplitude.day_increments`` on the folder source;
* ``pandas``: a straightforward pandas version of the same increments (json_normalize over
  every line, regex columns, groupby);
* ``floor``: decompress and ``orjson.loads`` every line, nothing else.

Run:  .venv/bin/python tests/benchmarks/bench_features.py [--events 1000000]
It measures two sizes (events/4 and events) to show how memory grows.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import time
import uuid as uuidlib
from datetime import date, datetime, timedelta
from pathlib import Path

import orjson
from measure import peak_rss_mb

DAY = date(2023, 3, 25)  # Asia/Bangkok: UTC hours 2023-03-24T17 .. 2023-03-25T16
PID = 187520
HOST = "https://leb2.example.ac.th"
N_CLASSES = 1_500
N_STUDENTS = 12_000
N_ENROLMENTS = 30_000
SUFFIXES = [
    ("", 20),
    ("/activity", 15),
    ("/activity/{a}", 25),
    ("/activity/{a}/submission", 6),
    ("/quiz/{a}", 6),
    ("/learning-activities", 10),
    ("/learning-activities/{a}", 6),
    ("/members", 4),
    ("/activity/{a}?tab=detail#rubric", 4),
]
OTHER_URLS = ["/home", "/dashboard", "/profile", "/calendar", "/notifications"]
EVENT_TYPES = [("Page Load", 80), ("Click Button", 12), ("session_start", 4), ("Scroll", 4)]


def _weighted(pairs: list[tuple[object, int]], n: int, rng: random.Random) -> list:
    values, weights = zip(*pairs, strict=True)
    return rng.choices(values, weights=weights, k=n)


def write_day(folder: Path, *, events: int, seed: int = 7) -> int:
    """A day of export files with ``events`` lines (1% re-uploaded duplicates); returns bytes."""
    rng = random.Random(seed)
    project = folder / str(PID)
    project.mkdir(parents=True, exist_ok=True)
    enrolments = set()
    while len(enrolments) < N_ENROLMENTS:
        enrolments.add((rng.randrange(N_CLASSES) + 1000, rng.randrange(N_STUDENTS) + 60_000))
    enrolled = sorted(enrolments)
    hours = [datetime(2023, 3, 24, 17) + timedelta(hours=h) for h in range(24)]
    # Busy in local daytime (UTC 01-12), quiet at night.
    hour_weights = [1 if (h.hour >= 15 or h.hour < 1) else 6 for h in hours]
    per_hour = [0] * 24
    for index in rng.choices(range(24), weights=hour_weights, k=events):
        per_hour[index] += 1
    total_bytes = 0
    recent: list[bytes] = []
    for hour, count in zip(hours, per_hour, strict=True):
        lines: list[bytes] = []
        types = _weighted(EVENT_TYPES, count, rng)
        suffixes = _weighted(SUFFIXES, count, rng)
        for i in range(count):
            if recent and rng.random() < 0.01:
                lines.append(rng.choice(recent))
                continue
            class_id, user = enrolled[int(rng.paretovariate(1.2) * 997) % len(enrolled)]
            if rng.random() < 0.15:
                url = HOST + rng.choice(OTHER_URLS)
            else:
                suffix = suffixes[i].format(
                    a=class_id * 100 + rng.randrange(25)
                )  # the class's activities
                url = f"{HOST}/class/{class_id}{suffix}"
            line = orjson.dumps(_event(rng, hour, types[i], url, user, class_id))
            lines.append(line)
            if rng.random() < 0.02:
                recent = [*recent[-50:], line]
        half = len(lines) // 2
        for n, chunk in enumerate((lines[:half], lines[half:])):
            path = project / f"{PID}_{hour:%Y-%m-%d}_{hour.hour}#{n}.json.gz"
            path.write_bytes(gzip.compress(b"\n".join(chunk) + b"\n", compresslevel=6))
            total_bytes += path.stat().st_size
    return total_bytes


def _event(rng: random.Random, hour: datetime, kind: str, url: str, user: int, class_id: int):
    moment = hour + timedelta(seconds=rng.random() * 3600)
    stamp = moment.strftime("%Y-%m-%d %H:%M:%S.%f")
    event_id = str(uuidlib.UUID(int=rng.getrandbits(128), version=4))
    session = 1_679_600_000_000 + (user * 7 + rng.randrange(3)) * 1000
    return {
        "$insert_id": event_id,
        "$insert_key": None,
        "$schema": 12,
        "adid": None,
        "amplitude_attribution_ids": None,
        "amplitude_event_type": None,
        "amplitude_id": 400_000_000 + user,
        "app": PID,
        "city": "Bangkok",
        "client_event_time": stamp,
        "client_upload_time": stamp,
        "country": "Thailand",
        "data": {"group_first_event": {}, "group_ids": {}},
        "data_type": "event",
        "device_brand": None,
        "device_carrier": None,
        "device_family": "Windows",
        "device_id": f"dev-{user:08d}",
        "device_manufacturer": None,
        "device_model": "Windows",
        "device_type": "Windows",
        "dma": None,
        "event_id": rng.randrange(1, 5000),
        "event_properties": {
            "CURRENT_URL": url,
            "PAGE_TITLE": "LEB2",
            "REFERRER": f"{HOST}/class/{class_id}",
        },
        "event_time": stamp,
        "event_type": kind,
        "global_user_properties": {},
        "group_properties": {},
        "groups": {},
        "idfa": None,
        "ip_address": f"10.{user % 250}.{user % 13}.{user % 7}",
        "is_attribution_event": False,
        "language": "English",
        "library": "amplitude-js/8.21.9",
        "location_lat": None,
        "location_lng": None,
        "os_name": "Chrome",
        "os_version": "111",
        "partner_id": None,
        "paying": None,
        "plan": {},
        "platform": "Web",
        "processed_time": stamp,
        "region": "Bangkok",
        "sample_rate": None,
        "server_received_time": stamp,
        "server_upload_time": stamp,
        "session_id": session,
        "source_id": None,
        "start_version": None,
        "user_creation_time": "2022-06-01 08:00:00.000000",
        "user_id": str(user),
        "user_properties": {"faculty": "Engineering", "role": "student", "year": 2},
        "uuid": event_id,
        "version_name": None,
    }


# --- contenders (each runs in its own process) ------------------------------------------------


def files_of(folder: Path) -> list[Path]:
    return sorted((folder / str(PID)).glob("*.json.gz"))


def run_ours(folder: Path) -> dict:
    from lof.core.config import get_settings
    from lof.sources.amplitude import day_increments

    settings = get_settings(amplitude_source=str(folder), home=str(folder / "home"))
    frame = day_increments(settings=settings, day=DAY, class_ids=None)
    return digest(frame, lines=frame.attrs["amplitude"]["lines"])


def run_pandas(folder: Path) -> dict:
    import pandas as pd

    lines = 0
    records = []
    for path in files_of(folder):
        with gzip.open(path, "rb") as handle:
            for line in handle:
                lines += 1
                records.append(json.loads(line))
    df = pd.json_normalize(records)
    del records
    df = df[df["event_type"] == "Page Load"]
    df = df.drop_duplicates(subset="uuid")
    url = df["event_properties.CURRENT_URL"].astype(str)
    df = df.assign(class_id=url.str.extract(r"class/(\d+)", expand=False), url=url)
    df = df[df["class_id"].notna()]
    df = df.assign(
        class_id=df["class_id"].astype("int64"),
        user_id=pd.to_numeric(df["user_id"], errors="coerce"),
    )
    df = df[df["user_id"].notna()]
    path_only = df["url"].str.replace(r"[?#].*$", "", regex=True)
    df = df.assign(
        user_id=df["user_id"].astype("int64"),
        class_view_count=1,
        activity_page_view=path_only.str.endswith("/activity").astype(int),
        material_view=df["url"].str.contains("/learning-activities", regex=False).astype(int),
        act_quiz_view=df["url"].str.contains(r"(?:activity|quiz)/\d").astype(int),
        submit_button_clicked=df["url"].str.contains("submission", regex=False).astype(int),
    )
    keys = ["class_id", "user_id"]
    counts = df.groupby(keys)[
        [
            "class_view_count",
            "activity_page_view",
            "material_view",
            "act_quiz_view",
            "submit_button_clicked",
        ]
    ].sum()
    sessions = df[df["session_id"] >= 0].groupby(keys)["session_id"].nunique()
    acts = df.assign(aid=df["url"].str.findall(r"activity/(\d+)")).explode("aid")
    activities = acts[acts["aid"].notna()].groupby(keys)["aid"].nunique()
    out = counts.join(sessions.rename("s"), how="left").join(activities.rename("a"), how="left")
    out = out.fillna(0).reset_index()
    return {
        "lines": lines,
        "rows": len(out),
        "views": int(out["class_view_count"].sum()),
        "activity_page_view": int(out["activity_page_view"].sum()),
        "act_quiz_view": int(out["act_quiz_view"].sum()),
        "distinct_activities": int(out["a"].sum()),
        "distinct_sessions": int(out["s"].sum()),
    }


def run_floor(folder: Path) -> dict:
    lines = 0
    for path in files_of(folder):
        with gzip.open(path, "rb") as handle:
            for line in handle:
                orjson.loads(line)
                lines += 1
    return {"lines": lines}


def digest(frame, *, lines: int) -> dict:
    return {
        "lines": lines,
        "rows": len(frame),
        "views": int(frame["class_view_count"].sum()),
        "activity_page_view": int(frame["activity_page_view"].sum()),
        "act_quiz_view": int(frame["act_quiz_view"].sum()),
        "distinct_activities": int(sum(len(a) for a in frame["activity_ids"])),
        "distinct_sessions": int(sum(len(s) for s in frame["session_ids"])),
    }


CONTENDERS = {"ours": run_ours, "pandas": run_pandas, "floor": run_floor}


def child(name: str, folder: Path) -> None:
    # Imports are not part of the measured work.
    if name == "ours":
        import lof.sources.amplitude  # noqa: F401
    elif name == "pandas":
        import pandas  # noqa: F401
    began, cpu_began = time.perf_counter(), time.process_time()
    result = CONTENDERS[name](folder)
    result["wall_seconds"] = time.perf_counter() - began
    # CPU time is what the comparison uses: the machine may be shared with other work.
    result["seconds"] = time.process_time() - cpu_began
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def measure(name: str, folder: Path, *, repeat: int) -> dict:
    """Best CPU time of ``repeat`` fresh processes (the machine is shared), max peak RSS."""
    runs = []
    for _ in range(repeat):
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name, "--dir", str(folder)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["seconds"])
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events of the large day")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lof-bench-features"))
    parser.add_argument("--repeat", type=int, default=3, help="runs of floor/ours (best kept)")
    parser.add_argument(
        "--pandas-max-events",
        type=int,
        default=250_000,
        help="run the pandas baseline only up to this size (it holds every event in memory)",
    )
    parser.add_argument("--child", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.dir)
        return

    print(f"lof day_increments benchmark, pid {os.getpid()}, python {sys.version.split()[0]}")
    summary = []
    for events in (max(args.events // 4, 1), args.events):
        folder = args.workdir / f"events-{events}"
        marker = folder / "complete"
        if not marker.exists():
            began = time.perf_counter()
            size = write_day(folder, events=events)
            marker.write_text(str(size))
            print(f"wrote {events:,} events ({size / 1e6:.0f} MB gz) in "
                  f"{time.perf_counter() - began:.1f}s to {folder}")  # fmt: skip
        results = {}
        for name in ("floor", "ours", *(("pandas",) if events <= args.pandas_max_events else ())):
            results[name] = measure(name, folder, repeat=1 if name == "pandas" else args.repeat)
            r = results[name]
            print(
                f"  {events:>9,} events  {name:<6}  {r['seconds']:7.2f} s CPU "
                f"({r['wall_seconds']:6.2f} s wall)  {r['lines'] / r['seconds']:>9,.0f} events/s"
                f"  peak RSS {r['peak_rss_mb']:6.0f} MB"
            )
        ours = results["ours"]
        floor = results["floor"]
        line = {
            "events": events,
            "ours_s": ours["seconds"],
            "ours_rss": ours["peak_rss_mb"],
            "vs_floor": ours["seconds"] / floor["seconds"],
        }
        print(f"  ours / floor time: {line['vs_floor']:.2f}x (bar: within 3x)")
        if "pandas" in results:
            pandas_r = results["pandas"]
            same = {
                k: v
                for k, v in pandas_r.items()
                if k not in ("seconds", "wall_seconds", "peak_rss_mb")
            }
            mine = {
                k: v for k, v in ours.items() if k not in ("seconds", "wall_seconds", "peak_rss_mb")
            }
            line["speedup"] = pandas_r["seconds"] / ours["seconds"]
            print(f"  pandas / ours time: {line['speedup']:.1f}x faster (bar: >= 10x); "
                  f"same increments: {same == mine}")  # fmt: skip
            if same != mine:
                print(f"    ours   {mine}\n    pandas {same}")
        summary.append(line)
    if len(summary) == 2:
        small, large = summary
        print(
            f"events x{large['events'] / small['events']:.0f} -> ours peak RSS "
            f"x{large['ours_rss'] / small['ours_rss']:.2f} ({small['ours_rss']:.0f} -> "
            f"{large['ours_rss']:.0f} MB; bar < 1536 MB)"
        )


if __name__ == "__main__":
    main()
