"""Benchmark: retrain time and peak memory for one large finished semester.

Run:  .venv/bin/python tests/benchmarks/bench_retrain.py [--enrolments 30000] [--classes 80]
      [--events 2.0] [--folds 5]

Synthesizes a university (``lof.synthetic.university``) whose semesters have about ``--enrolments``
class enrolments each, then retrains on its latest finished semester in a fresh subprocess (so the
peak RSS is the retrain's alone): building the examples (one pass over the days, LEB2 queries
at every progress point) and comparing and registering the candidates (MLflow sqlite). The
baseline is the same retrain at a tenth of the size, measured in the same run; the figures are
seconds, peak RSS and the ratios large/baseline (linear scaling would be ~10x time).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from measure import peak_rss_mb

TODAY = date(2025, 3, 1)


def child(home: str, folds: int, semester: str) -> None:
    """Run inside the subprocess: the retrain of one semester, timed by phase."""
    os.environ["LOF_HOME"] = home
    from lof.core.config import get_settings
    from lof.training import retrain as training

    settings = get_settings()
    began = time.perf_counter()
    built = training.build_training_set(settings=settings, semesters=[semester], as_of=TODAY)
    examples_s = time.perf_counter() - began
    began = time.perf_counter()
    result = training.train_and_register(settings=settings, training=built, n_splits=folds)
    train_s = time.perf_counter() - began
    peak_mb = peak_rss_mb()
    print(
        json.dumps(
            {
                "examples": len(built.examples),
                "classes": int(built.classes["class_id"].nunique()),
                "examples_s": examples_s,
                "train_s": train_s,
                "peak_mb": peak_mb,
                "candidate": result.candidate,
            }
        )
    )


def measure(*, enrolments: int, classes: int, events: float, folds: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="lof-bench-retrain-") as home:
        return _measure_in(home, enrolments=enrolments, classes=classes, events=events, folds=folds)


def _measure_in(home: str, *, enrolments: int, classes: int, events: float, folds: int) -> dict:
    from lof.synthetic import university as synth

    students = max(10, round(enrolments / 2.5))
    began = time.perf_counter()
    summary = synth.synthesize(
        leb2_url=f"sqlite:///{home}/leb2-demo.db",
        amplitude_dir=Path(home) / "amplitude",
        seed=11,
        today=TODAY,
        students=students,
        classes=classes,
        events_per_student_day=events,
    )
    synth_s = time.perf_counter() - began
    latest = [sem.slug for sem in summary.semester_ranges if not sem.ongoing][-1]
    out = subprocess.run(
        [sys.executable, __file__, "--child", home, "--folds", str(folds), "--semester", latest],
        check=True,
        capture_output=True,
        text=True,
    )
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    figures.update(
        enrolments_per_semester=summary.enrolments // 3, events=summary.events, synth_s=synth_s
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enrolments", type=int, default=30_000)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--events", type=float, default=2.0, help="page views/student/day")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--semester", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.folds, args.semester)
        return
    base = measure(
        enrolments=args.enrolments // 10,
        classes=max(4, args.classes // 10),
        events=args.events,
        folds=args.folds,
    )
    large = measure(
        enrolments=args.enrolments, classes=args.classes, events=args.events, folds=args.folds
    )
    print(
        f"{'':10}{'enrol/sem':>10}{'examples':>10}{'examples s':>12}{'train s':>10}{'peak MB':>10}"
    )
    for name, f in (("baseline", base), ("large", large)):
        print(
            f"{name:10}{f['enrolments_per_semester']:>10}{f['examples']:>10}"
            f"{f['examples_s']:>12.1f}{f['train_s']:>10.1f}{f['peak_mb']:>10.0f}"
        )
    for key in ("examples", "examples_s", "train_s", "peak_mb"):
        print(f"ratio large/baseline {key}: {large[key] / max(base[key], 1e-9):.1f}x")
    print(f"chosen: baseline {base['candidate']}, large {large['candidate']}")


if __name__ == "__main__":
    main()
