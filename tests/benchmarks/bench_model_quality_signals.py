"""Benchmark: model quality with the 13 features against the 13 + early-warning signals.

Run:  .venv/bin/python tests/benchmarks/bench_model_quality_signals.py [--students 900]
      [--classes 10] [--events 4.0] [--seeds 11] [--candidates logreg,hist_gb]

A synthetic university (``lof.synthetic.university``, two finished semesters) is built once per
seed; the training examples are built the way a retrain builds them
(``lof.training.examples.build_examples``: one pass over the days, features and signals at each
progress point, scaled within the class, labelled by ``LOF_LABEL_RULE``), at 10/25/50/75% of each
class's activity window. Each candidate is fitted on the earlier semester and scored on the later
one (classes it never saw, later in time), once on the 13 features and once on the 13 +
``lof.features.signals.SIGNALS``; nothing is tuned on the later semester. Per progress point:
ROC-AUC and PR-AUC of ``risk_prob`` for "final level below the class's required level", and the
Brier score of ``risk_prob``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

TODAY = date(2025, 3, 1)
POINTS = (0.1, 0.25, 0.5, 0.75)


def build(*, home: Path, students: int, classes: int, events: float, seed: int) -> pd.DataFrame:
    from lof.core.config import get_settings
    from lof.model import outcome as lof_model
    from lof.synthetic import university as synth
    from lof.training import examples as example_set

    summary = synth.synthesize(
        leb2_url=f"sqlite:///{home}/leb2-demo.db",
        amplitude_dir=home / "amplitude",
        seed=seed,
        today=TODAY,
        students=students,
        classes=classes,
        events_per_student_day=events,
    )
    settings = get_settings(home=home)
    from lof.sources import leb2

    engine = leb2.connect(settings.leb2_url)
    finished = [s.slug for s in summary.semester_ranges if not s.ongoing]
    picked = example_set.pick_classes(engine=engine, semesters=finished, as_of=TODAY)
    saved = lof_model.PROGRESS_POINTS
    lof_model.PROGRESS_POINTS = POINTS  # the early points a warning is for
    try:
        examples, _ = example_set.build_examples(
            settings=settings, engine=engine, classes=picked, as_of=TODAY
        )
    finally:
        lof_model.PROGRESS_POINTS = saved
    order = picked.groupby("semester")["first_start"].min().sort_values().index.tolist()
    examples["period"] = examples["semester"].map({s: i for i, s in enumerate(order)})
    return examples


def risk_metrics(*, truly: np.ndarray, risk: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    if truly.all() or not truly.any():
        return {"roc_auc": float("nan"), "pr_auc": float("nan"), "brier": float("nan")}
    return {
        "roc_auc": float(roc_auc_score(truly, risk)),
        "pr_auc": float(average_precision_score(truly, risk)),
        "brier": float(((risk - truly) ** 2).mean()),
    }


def compare(examples: pd.DataFrame, *, candidates: list[str], seed: int) -> pd.DataFrame:
    from lof.features.definitions import FEATURES
    from lof.features.signals import SIGNALS
    from lof.model import outcome as lof_model

    train = examples[examples["period"] < examples["period"].max()].reset_index(drop=True)
    held = examples[examples["period"] == examples["period"].max()].reset_index(drop=True)
    rows = []
    for name in candidates:
        for label, columns in (("13", list(FEATURES)), ("13+signals", [*FEATURES, *SIGNALS])):
            estimator = lof_model.make_candidates(seed=seed, names=[name])[name]
            drop = [c for c in SIGNALS if c not in columns]
            fitted = lof_model.fit(estimator=estimator, examples=train.drop(columns=drop))
            assert lof_model.input_features(fitted) == columns
            proba = lof_model.level_probabilities(model=fitted, features=held)
            risk = lof_model.risk_probabilities(proba, held["required_level"].to_numpy())
            truly = (held["label"] < held["required_level"]).to_numpy()
            for point in POINTS:
                mask = np.isclose(held["progress"].to_numpy(), point)
                rows.append(
                    {
                        "candidate": name,
                        "features": label,
                        "progress": f"{round(point * 100)}%",
                        "n": int(mask.sum()),
                        "at_risk_share": float(truly[mask].mean()),
                        **risk_metrics(truly=truly[mask], risk=risk[mask]),
                    }
                )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=900)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--events", type=float, default=4.0)
    parser.add_argument("--seeds", default="11", help="comma-separated synth seeds")
    parser.add_argument("--candidates", default="logreg,hist_gb")
    args = parser.parse_args()
    tables = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        with tempfile.TemporaryDirectory(prefix="lof-bench-signals-") as tmp:
            began = time.perf_counter()
            examples = build(
                home=Path(tmp),
                students=args.students,
                classes=args.classes,
                events=args.events,
                seed=seed,
            )
            built_s = time.perf_counter() - began
        table = compare(examples, candidates=args.candidates.split(","), seed=seed)
        table.insert(0, "seed", seed)
        tables.append(table)
        print(
            f"seed {seed}: {len(examples)} examples from {examples['class_id'].nunique()} "
            f"classes in {built_s:.0f}s (train: earlier semester, held out: the later one)"
        )
    table = pd.concat(tables, ignore_index=True)
    mean = (
        table.groupby(["candidate", "progress", "features"], sort=False)[
            ["roc_auc", "pr_auc", "brier"]
        ]
        .mean()
        .unstack("features")
    )
    pd.set_option("display.width", 160)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\nmean over seeds (held-out semester):")
    print(mean.to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
