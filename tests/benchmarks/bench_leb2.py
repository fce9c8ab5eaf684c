"""Synthetic university and LEB2 query speed at the demo size and at a large size.

Run: .venv/bin/python tests/benchmarks/bench_leb2.py [--students 12000 --classes 100 --events 80]
(the defaults make ~30,000 enrolments per semester and ~1M events for the one day written).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from lof.sources import leb2
from lof.synthetic.university import synthesize

TODAY = date(2025, 3, 1)


def timed(label: str, fn):
    start = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - start
    print(f"{label:<44} {seconds:8.2f} s")
    return value, seconds


def run(root: Path, *, students: int, classes: int, events: float) -> dict[str, float]:
    url = f"sqlite:///{root / 'leb2.db'}"
    summary, synth_s = timed(
        f"synthesize {students} students x {classes} classes",
        lambda: synthesize(
            leb2_url=url,
            amplitude_dir=root / "amplitude",
            today=TODAY,
            students=students,
            classes=classes,
            events_per_student_day=events,
            amplitude_days=1,
        ),
    )
    print(
        f"  enrolments {summary.enrolments}, submissions {summary.submissions}, "
        f"records {summary.records}, events (1 day) {summary.events}"
    )
    engine = leb2.connect(url)
    day = TODAY - timedelta(days=1)
    ongoing, _ = timed(
        "ongoing_classes", lambda: leb2.ongoing_classes(engine, day=day, window_months=4)
    )
    records, records_s = timed(
        "assessed_records (ongoing, as of yesterday)",
        lambda: leb2.assessed_records(
            engine,
            class_ids=ongoing["class_id"],
            until=datetime.combine(TODAY, datetime.min.time()),
        ),
    )
    finished, _ = timed("finished_classes", lambda: leb2.finished_classes(engine, as_of=TODAY))
    labels, labels_s = timed(
        "final_levels (finished, attainment)",
        lambda: leb2.final_levels(engine, class_ids=finished["class_id"], rule="attainment"),
    )
    print(f"  {len(records)} records, {len(labels)} labels")
    engine.dispose()
    return {
        "synth": synth_s,
        "events_per_s": summary.events / max(synth_s, 1e-9),
        "records_per_s": len(records) / max(records_s, 1e-9),
        "labels_s": labels_s,
        "rows": summary.submissions + summary.records,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--students", type=int, default=12000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--events", type=float, default=80.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print("baseline: the demo size")
        base = run(Path(tmp) / "base", students=300, classes=8, events=6.0)
        print("large")
        big = run(
            Path(tmp) / "big", students=args.students, classes=args.classes, events=args.events
        )
    print(
        f"ratios large/baseline: synth time x{big['synth'] / base['synth']:.1f} for "
        f"rows x{big['rows'] / base['rows']:.1f}; records/s x"
        f"{big['records_per_s'] / base['records_per_s']:.1f}"
    )


if __name__ == "__main__":
    main()
