"""Benchmark: feed an imported former model lof's within-class scaling or the former global one?

Run:  .venv/bin/python tests/benchmarks/bench_legacy_scaling.py [--seeds 7 11 13]
      [--students 300] [--classes 8]

For each seed a synthetic university (``lof.synthetic.university``: two finished semesters) stands
in for the former system's history. A former-style model is trained as the former system did: an
``MLPClassifier(hidden_layer_sizes=(100,))`` on the earlier finished semester(s), features at
the end of each class, min-max scaled over all students of all classes together, target the
highest level reached (``max``). It is then wrapped as ``lof import-model`` wraps a pickle and
scored on the latest finished semester (classes it never saw) at each progress point, fed
either

* ``within_class``: lof's ``scale_within_class`` per class at that point, or
* ``global``: min-max over all students of all classes of that semester at that point (the
  classes of a synthetic semester run together, so these are "all ongoing classes").

Reported per progress point: risk ROC-AUC (``risk_prob`` against final level below the
class's required level, lof's ``attainment`` label), macro-F1 of the predicted level against
that label and against the former target (``macro_f1_max``), the mean over seeds and the
difference within_class - global measured in the same run.
The raw (unscaled) examples come from lof's own example builder with its within-class scaling
switched off for the duration (a benchmark-only patch of
``lof.features.definitions.scale_within_class``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path

import numpy as np
import pandas as pd

TODAY = date(2025, 3, 1)


def raw_examples(*, home: str, seed: int, students: int, classes: int) -> pd.DataFrame:
    """Unscaled examples of every finished semester, with both labels (attainment and max)."""
    os.environ["LOF_HOME"] = home
    from lof.core.config import get_settings
    from lof.features import definitions as feat
    from lof.sources import leb2
    from lof.synthetic import university as synth
    from lof.training import retrain as training

    synth.synthesize(
        leb2_url=f"sqlite:///{home}/leb2-demo.db",
        amplitude_dir=Path(home) / "amplitude",
        seed=seed,
        today=TODAY,
        students=students,
        classes=classes,
    )
    settings = get_settings()
    scale = feat.scale_within_class
    feat.scale_within_class = lambda *, features: features.copy()
    try:
        built = training.build_training_set(settings=settings, semesters=None, as_of=TODAY)
    finally:
        feat.scale_within_class = scale
    examples = built.examples
    engine = leb2.connect(settings.leb2_url)
    highest = leb2.final_levels(
        engine,
        class_ids=sorted(examples["class_id"].unique()),
        rule="max",
        until=datetime.combine(TODAY, dtime.min),
    ).rename(columns={"label": "max_label"})
    return examples.merge(highest, on=["class_id", "user_id"], how="left")


def scaled(examples: pd.DataFrame, *, how: str) -> pd.DataFrame:
    """Scale per (progress point, class) or per progress point over all classes together."""
    from lof import legacy
    from lof.features import definitions as feat

    parts = []
    for _, part in examples.groupby("progress", sort=True):
        if how == legacy.WITHIN_CLASS:
            parts.append(feat.scale_within_class(features=part))
        else:
            parts.append(legacy.scale_globally(features=part))
    return pd.concat(parts).loc[examples.index]


def run_seed(*, seed: int, students: int, classes: int) -> pd.DataFrame:
    from sklearn.metrics import f1_score, roc_auc_score
    from sklearn.neural_network import MLPClassifier

    from lof import legacy
    from lof.model import outcome as lof_model
    from lof.training import legacy_import

    with tempfile.TemporaryDirectory(prefix="lof-bench-legacy-") as home:
        examples = raw_examples(home=home, seed=seed, students=students, classes=classes)
    semesters = sorted(examples["semester"].unique(), key=lambda s: (s.split("/")[1], s))
    latest = semesters[-1]
    former = examples[(examples["semester"] != latest) & (examples["progress"] == 1.0)]
    former = scaled(former, how=legacy.GLOBAL)
    mlp = MLPClassifier(hidden_layer_sizes=(100,), max_iter=500, random_state=seed)
    inputs = former[list(legacy.FORMER_ORDER)].to_numpy()
    mlp.fit(inputs, former["max_label"].astype(float).to_numpy())
    held = examples[examples["semester"] == latest]
    rows = []
    for how in legacy.SCALINGS:
        model = legacy.LegacyModel(mlp, input_scaling=how)
        fed = scaled(held, how=how)
        proba = lof_model.level_probabilities(model=model, features=fed)
        risk = lof_model.risk_probabilities(proba, fed["required_level"].to_numpy())
        metrics = legacy_import.evaluate(model=model, examples=fed, threshold=0.5)
        truly = (fed["label"] < fed["required_level"]).to_numpy()
        predicted = np.asarray(lof_model.LEVELS)[proba.argmax(axis=1)]
        highest = fed["max_label"].to_numpy(dtype=int)
        progress = fed["progress"].to_numpy()
        for point in lof_model.PROGRESS_POINTS:
            mask = np.isclose(progress, point)
            auc = (
                roc_auc_score(truly[mask], risk[mask])
                if 0 < truly[mask].sum() < mask.sum()
                else float("nan")
            )
            suffix = lof_model.point_suffix(point)
            rows.append(
                {
                    "seed": seed,
                    "scaling": how,
                    "progress": point,
                    "risk_auc": auc,
                    "macro_f1": metrics.get(f"macro_f1_{suffix}", float("nan")),
                    "macro_f1_max": f1_score(
                        highest[mask], predicted[mask], average="macro", zero_division=0
                    ),
                    "n": int(mask.sum()),
                }
            )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 11, 13])
    parser.add_argument("--students", type=int, default=300)
    parser.add_argument("--classes", type=int, default=8)
    args = parser.parse_args()
    began = time.perf_counter()
    frames = [run_seed(seed=s, students=args.students, classes=args.classes) for s in args.seeds]
    table = pd.concat(frames, ignore_index=True)
    metrics = ["risk_auc", "macro_f1", "macro_f1_max"]
    mean = table.groupby(["progress", "scaling"])[metrics].mean().unstack()
    pd.set_option("display.width", 160)
    print(f"seeds {args.seeds}, {args.students} students, {args.classes} classes/semester")
    print("held-out semester, mean over seeds (per seed below)")
    print(mean.round(3).to_string())
    for metric in metrics:
        diff = mean[(metric, "within_class")] - mean[(metric, "global")]
        print(
            f"{metric} within_class - global: "
            + ", ".join(f"{round(p * 100)}%: {d:+.3f}" for p, d in diff.items())
            + f"; mean {diff.mean():+.3f}"
        )
    print(table.round(3).to_string(index=False))
    print(f"took {time.perf_counter() - began:.0f}s")


if __name__ == "__main__":
    main()
