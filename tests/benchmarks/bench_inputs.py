"""Benchmark: what each model input adds, on a semester the model never saw.

Run:  .venv/bin/python tests/benchmarks/bench_inputs.py [--students 240] [--classes 6]
      [--seed 11] [--examples cached.parquet]

Synthesizes a university with its early-warning cases (``lof.synth``, ``early_cases``), builds
the retrain's examples, fits on the earlier finished semester and measures the risk ROC-AUC
per progress point on the later one, for: the inputs before the early ones (the 13 min-max
scaled within the class and the first six signals), all inputs, all but one of the early
inputs (``lof.signals.EARLY_SIGNALS``) in turn, and the 13 as a percentile rank within the
class instead of min-max. Use another seed than the one the quality benchmark reports on:
inputs are chosen here, and reported there.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

TODAY = date(2025, 3, 1)


def build(args: argparse.Namespace) -> pd.DataFrame:
    with tempfile.TemporaryDirectory(prefix="lof-bench-inputs-") as tmp:
        root = Path(tmp)
        os.environ.update(
            LOF_HOME=str(root),
            LOF_LEB2_URL=f"sqlite:///{root / 'leb2.db'}",
            LOF_AMPLITUDE_SOURCE=str(root / "amplitude"),
        )
        from lof.core.config import get_settings
        from lof.synthetic import university as synth
        from lof.training import retrain as training

        synth.synthesize(
            leb2_url=os.environ["LOF_LEB2_URL"],
            amplitude_dir=root / "amplitude",
            seed=args.seed,
            today=TODAY,
            students=args.students,
            classes=args.classes,
            early_cases=True,
        )
        built = training.build_training_set(settings=get_settings(), semesters=None, as_of=TODAY)
        starts = built.classes.groupby("semester")["first_start"].min().sort_values()
        order = {s: n for n, s in enumerate(starts.index)}
        term = built.classes.set_index("class_id")["semester"].map(order)
        return built.examples.assign(_term=built.examples["class_id"].map(term))


def auc_by_point(examples: pd.DataFrame, risk: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    from lof.model import outcome as lof_model

    truth = (examples["label"] < examples["required_level"]).to_numpy()
    out = {}
    for point in lof_model.REPORT_POINTS:
        at = np.isclose(examples["progress"].to_numpy(), point)
        ok = at.any() and truth[at].min() != truth[at].max()
        out[f"{round(point * 100)}%"] = roc_auc_score(truth[at], risk[at]) if ok else np.nan
    return out


def evaluate(train: pd.DataFrame, test: pd.DataFrame, inputs: list[str], seed: int) -> dict:
    from lof.model import outcome as lof_model

    out = {}
    for name, estimator in lof_model.make_candidates(
        seed=seed, names=["logreg", "hist_gb"]
    ).items():
        estimator.fit(train[inputs].astype(float), train["label"].astype(int))
        proba = estimator.predict_proba(test[inputs].astype(float))
        levels = np.asarray(estimator.classes_)
        required = test["required_level"].to_numpy()
        risk = (proba * (levels[None, :] < required[:, None])).sum(axis=1)
        out[name] = auc_by_point(test, risk)
    return out


def ranked(examples: pd.DataFrame) -> pd.DataFrame:
    from lof.features.definitions import FEATURES

    out = examples.copy()
    groups = out.groupby(["class_id", "progress"])
    out[list(FEATURES)] = groups[list(FEATURES)].rank(pct=True).to_numpy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=240)
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--examples", type=Path, help="read/write the built examples here")
    args = parser.parse_args()
    began = time.perf_counter()
    if args.examples and args.examples.exists():
        examples = pd.read_parquet(args.examples)
    else:
        examples = build(args)
        if args.examples:
            examples.to_parquet(args.examples)
    from lof.features.definitions import FEATURES
    from lof.features.signals import EARLY_SIGNALS, SIGNALS

    terms = sorted(examples["_term"].unique())
    train = examples[examples["_term"] == terms[0]].reset_index(drop=True)
    test = examples[examples["_term"] == terms[1]].reset_index(drop=True)
    former = [*FEATURES, *(s for s in SIGNALS if s not in EARLY_SIGNALS)]
    every = [*FEATURES, *SIGNALS]
    from lof.model.outcome import training_features

    chosen = training_features(examples)
    rows = {
        "before (13 min-max + 6 signals)": evaluate(train, test, former, args.seed),
        "chosen (lof.model.MODEL_SIGNALS)": evaluate(train, test, chosen, args.seed),
        "all inputs": evaluate(train, test, every, args.seed),
    }
    for name in EARLY_SIGNALS:
        rows[f"all but {name}"] = evaluate(train, test, [c for c in every if c != name], args.seed)
    rows["all, the 13 as percentile rank"] = evaluate(ranked(train), ranked(test), every, 0)
    print(f"train {len(train)} examples, test {len(test)} (later semester), seed {args.seed}")
    print()
    print("| inputs | candidate | 10% | 25% | 50% | 75% |")
    print("|---|---|---|---|---|---|")
    for label, per in rows.items():
        for candidate, aucs in per.items():
            cells = " | ".join(f"{v:.3f}" for v in aucs.values())
            print(f"| {label} | {candidate} | {cells} |")
    print(f"\ntotal {time.perf_counter() - began:.0f}s")


if __name__ == "__main__":
    main()
