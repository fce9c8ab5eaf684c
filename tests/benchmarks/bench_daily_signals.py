"""Benchmark: the daily run with the early-warning signals and reasons against the run without.

Run:  .venv/bin/python tests/benchmarks/bench_daily_signals.py [--students 3000] [--classes 12]
      [--days 20] [--per-student 6.0] [--repeat 5] [--rounds 6] [--models logreg,hist_gb]
      [--baseline-ref 625d3e7^1]

The baseline is the code before the signals (``625d3e7^1``, the commit before they were merged):
``git archive <baseline-ref>`` exported to a temporary folder and run from there (same
virtualenv), so it is that daily run exactly, not a switch inside the new code. Both versions
score the same synthetic university (``lof.synthetic.university``; the ongoing semester has
``--days`` days of data): each, in its own fresh subprocess and its own SQLite stores, fills the
features store day by day up to D-1 (untimed, first round only), then runs day D ``--repeat`` times
(median kept): ongoing classes, the day's features (D-1 state, Amplitude increment, LEB2 reads,
features and, in the new code, the signals), predictions with each fitted ``--models`` candidate on
the columns that code builds, the reasons (new code only), and the writes of the day's predictions
and features. Each round runs the baseline and then the new code, so the two of a round share
the machine's load of the moment; the headline is the median over the rounds of each round's
CPU-time ratio new/baseline (CPU time: a shared machine disturbs it less than wall time), with
the phase split and the ratios of the per-phase medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from measure import loadavg

TODAY = date(2025, 3, 3)
ROOT = Path(__file__).resolve().parents[2]


def child(source: str, home: str, days: int, repeat: int, baseline: bool, models: str) -> None:
    """Inside the subprocess, with the lof of ``source`` first on sys.path: fill, time day D."""
    os.environ["LOF_HOME"] = home
    import numpy as np
    import pandas as pd

    from lof import scoring
    from lof.core.config import get_settings
    from lof.features import definitions as feat
    from lof.model import outcome as lof_model
    from lof.sources import leb2
    from lof.stores import open_feature_store, open_prediction_store

    for module in (feat, lof_model, scoring):
        if not Path(module.__file__).resolve().is_relative_to(Path(source).resolve()):
            raise SystemExit(f"{module.__name__} comes from {module.__file__}, not {source}")
    if baseline:
        reasons, SIGNALS = None, ()
    else:
        from lof.features.signals import SIGNALS
        from lof.model import reasons

    settings = get_settings()
    engine = leb2.connect(settings.leb2_url)
    features_store = open_feature_store(settings.store_url)
    predictions_store = open_prediction_store(settings.store_url)
    day = TODAY - timedelta(days=1)
    first = TODAY - timedelta(days=days)
    filled = features_store.is_complete(day=day - timedelta(days=1))  # by an earlier round
    for n in range(0 if filled else (day - first).days):
        past = first + timedelta(days=n)
        classes = leb2.ongoing_classes(engine, day=past, window_months=4)
        built = scoring.compute_day_features(
            settings=settings,
            engine=engine,
            feature_store=features_store,
            day=past,
            classes=classes,
        )
        features_store.write_day(day=past, increments=built.increment, states=built.states)

    rng = np.random.default_rng(0)
    columns = [*feat.FEATURES, *SIGNALS]
    examples = pd.DataFrame(rng.random((3000, len(columns))), columns=columns)
    examples["label"] = np.clip(
        np.rint(1 + 4 * examples[list(feat.FEATURES[:3])].mean(axis=1) + rng.normal(0, 0.5, 3000)),
        1,
        5,
    ).astype(int)
    results = {}
    for model_name in models.split(","):
        estimator = lof_model.make_candidates(names=[model_name])[model_name]
        model = lof_model.fit(estimator=estimator, examples=examples)
        results[model_name] = time_day(
            settings, engine, features_store, predictions_store, model, reasons, day, repeat
        )
    print("RESULT " + json.dumps(results))


def time_day(
    settings: Any,
    engine: Any,
    features_store: Any,
    predictions_store: Any,
    model: Any,
    reasons: Any,
    day: date,
    repeat: int,
) -> dict[str, float]:
    """Median seconds per phase of ``repeat`` runs of day D (after one dropped warm-up run)."""
    from lof import scoring
    from lof.model import outcome as lof_model
    from lof.sources import leb2

    runs: list[dict[str, float]] = []
    for _ in range(repeat + 1):  # the first run warms caches and is dropped
        times: dict[str, float] = {}
        began, cpu_began = time.perf_counter(), time.process_time()
        classes = leb2.ongoing_classes(engine, day=day, window_months=4)
        built = scoring.compute_day_features(
            settings=settings,
            engine=engine,
            feature_store=features_store,
            day=day,
            classes=classes,
        )
        times["features"] = time.perf_counter() - began
        mark = time.perf_counter()
        predictions = lof_model.predict_frame(
            model=model,
            features=built.scaled,
            required_levels=built.classes[["class_id", "required_level"]],
            threshold=0.5,
        )
        out = scoring.attach_model_and_features(
            predictions, raw=built.raw, model_name="bench", model_version="1"
        )
        times["predict"] = time.perf_counter() - mark
        mark = time.perf_counter()
        if reasons is not None:
            out["reasons"] = reasons.explain(
                model=model,
                scaled=built.scaled,
                raw=built.raw,
                required=predictions["required_level"].to_numpy(),
                risk=predictions["risk_prob"].to_numpy(),
            )
        times["reasons"] = time.perf_counter() - mark
        mark = time.perf_counter()
        predictions_store.write_day(day=day, predictions=out)
        features_store.write_day(day=day, increments=built.increment, states=built.states)
        times["writes"] = time.perf_counter() - mark
        times["total"] = time.perf_counter() - began
        times["cpu_total"] = time.process_time() - cpu_began
        runs.append(times)
    median = {k: statistics.median(r[k] for r in runs[1:]) for k in runs[0]}
    median["students"] = float(len(out))
    median["increment_rows"] = float(len(built.increment))
    return median


def run_child(
    source: Path, home: str, days: int, repeat: int, variant: str, models: str
) -> dict[str, dict[str, float]]:
    env = dict(os.environ, PYTHONPATH=f"{source}{os.pathsep}{Path(__file__).parent}")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import bench_daily_signals as b; "
        "b.child(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), "
        "sys.argv[5] == 'baseline', sys.argv[6])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(source), home, str(days), str(repeat), variant, models],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"benchmark child failed ({source}):\n{done.stderr[-3000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=3000)
    parser.add_argument("--classes", type=int, default=12)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--per-student", type=float, default=6.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument(
        "--models",
        default="logreg,hist_gb",
        help="lof.model candidates, comma-separated (e.g. logreg,hist_gb,mlp_baseline)",
    )
    parser.add_argument("--baseline-ref", default="625d3e7^1")
    args = parser.parse_args()
    from lof.synthetic import university as synth

    with tempfile.TemporaryDirectory(prefix="lof-bench-signals-cost-") as tmp:
        root = Path(tmp)
        baseline = root / "baseline-src"
        baseline.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.baseline_ref, "lof"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive, check=True)
        homes = {}
        for name in ("baseline", "signals+reasons"):
            homes[name] = root / name
            synth.synthesize(
                leb2_url=f"sqlite:///{homes[name]}/leb2-demo.db",
                amplitude_dir=homes[name] / "amplitude",
                seed=5,
                today=TODAY,
                students=args.students,
                classes=args.classes,
                days=args.days,
                events_per_student_day=args.per_student,
            )
        sources = {"baseline": baseline, "signals+reasons": ROOT}
        rounds: list[dict[str, dict[str, dict[str, float]]]] = []
        for _ in range(args.rounds):  # alternate, so a change of machine load hits both
            rounds.append(
                {
                    name: run_child(
                        sources[name], str(homes[name]), args.days, args.repeat, name, args.models
                    )
                    for name in ("baseline", "signals+reasons")
                }
            )
    for model in args.models.split(","):
        report(model, [{k: v[model] for k, v in r.items()} for r in rounds])


def report(model: str, rounds: list[dict[str, dict[str, float]]]) -> None:
    """The phase split and the new/baseline ratios of one model over the rounds."""
    phases = ("features", "predict", "reasons", "writes", "total", "cpu_total")
    base = {p: statistics.median(r["baseline"][p] for r in rounds) for p in phases}
    new = {p: statistics.median(r["signals+reasons"][p] for r in rounds) for p in phases}
    last = rounds[-1]["signals+reasons"]
    print(f"== {model}")
    print(
        f"day D = {TODAY - timedelta(days=1)}, {int(last['students'])} students scored, "
        f"{int(last['increment_rows'])} increment rows; load {loadavg()}"
    )
    print(f"{'phase':<10} {'baseline s':>11} {'new s':>8}")
    for phase in phases:
        print(f"{phase:<10} {base[phase]:>11.3f} {new[phase]:>8.3f}")
    ratios = [r["signals+reasons"]["total"] / r["baseline"]["total"] for r in rounds]
    print("wall-time ratio per round: " + ", ".join(f"{x:.2f}x" for x in ratios))
    cpu = [r["signals+reasons"]["cpu_total"] / r["baseline"]["cpu_total"] for r in rounds]
    print(
        "CPU-time ratio per round (steadier on a shared machine): "
        + ", ".join(f"{x:.2f}x" for x in cpu)
    )
    print(
        "ratios of the medians above: "
        f"CPU {new['cpu_total'] / base['cpu_total']:.2f}x, wall {new['total'] / base['total']:.2f}x"
    )
    print(
        f"ratio new/baseline ({model}, CPU, median of the rounds): "
        f"{statistics.median(cpu):.2f}x (target <= 1.3x)"
    )


if __name__ == "__main__":
    main()
