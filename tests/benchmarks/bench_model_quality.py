"""Benchmark: how well each candidate's ``risk_prob`` ranks and is calibrated, per progress point,
on classes it never saw, held out by time and by class.

Run:  .venv/bin/python tests/benchmarks/bench_model_quality.py [--students 240] [--classes 6]
      [--folds 3] [--seed 7]

Synthesizes a university (``lof.synthetic.university``: two finished semesters, early
withdrawers, stoppers, and by default its early-warning cases: late starters, week-3
stoppers, leniently graded early work, extreme-activity students; ``--plain`` leaves them out),
builds the retrain's examples (every cohort member, ``attainment`` labels) and evaluates:

* by time: fitted on the earlier semester, calibrated and thresholded on its grouped
  out-of-fold predictions, scored on the later semester (what retrain reports as holdout);
* by class: grouped cross-validation over every class, each class's calibration and threshold
  fitted on the other classes only (what retrain reports without a time holdout).

Lead time (``lof.model.leadtime``) of each candidate held out by time follows, then the
information ceiling held out by time: per point, the risk ROC-AUC of a logistic regression
fitted on what no data shows directly, the generator's hidden traits of each enrolment (ability
and engagement in the class, stopped or not yet begun by then) and the class's required level.
A candidate near it has found what the data holds at that point.

Rows: every candidate, and ``legacy_mlp``: the former system as it was (MLPClassifier on the
features of the whole class period, target = highest level reached, only assessed students,
raw risk, threshold 0.5), scored against the same truth. Columns per progress point: risk
ROC-AUC, PR-AUC, Brier, ECE, at-risk precision and recall (truth: label below required).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

TODAY = date(2025, 3, 1)
COLUMNS = ("risk_roc_auc", "risk_pr_auc", "risk_brier", "risk_ece", "at_risk_precision",
           "at_risk_recall")  # fmt: skip
SHORT = {"risk_roc_auc": "AUC", "risk_pr_auc": "PR", "risk_brier": "Brier", "risk_ece": "ECE",
         "at_risk_precision": "prec", "at_risk_recall": "rec"}  # fmt: skip


def legacy_metrics(*, engine, train, test, settings, lof_model, leb2, seed: int) -> dict:
    """The former model: MLP on whole-period features, max-level target, assessed students."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline

    ids = sorted(set(train["class_id"]))
    max_labels = leb2.final_levels(engine, class_ids=ids, rule="max").rename(
        columns={"label": "max_label"}
    )
    rows = train[np.isclose(train["progress"], 1.0)].merge(max_labels, on=["class_id", "user_id"])
    rows = rows.assign(label=rows["max_label"])
    estimator = Pipeline([("model", MLPClassifier(hidden_layer_sizes=(100,), random_state=seed))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = lof_model.fit(estimator=estimator, examples=rows)
    proba = lof_model.level_probabilities(model=fitted, features=test)
    return lof_model.score_examples(examples=test, proba=proba, threshold=0.5)


def ceiling_auc(*, traits, classes, train, holdout) -> dict[float, float]:
    """Risk ROC-AUC per progress point of a logistic regression on the hidden traits."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from lof.model import outcome as lof_model
    from lof.training.examples import snapshot_days

    known = pd.concat(
        [
            pd.DataFrame(
                {
                    "class_id": t.class_id,
                    "user_id": t.users,
                    "ability": t.ability,
                    "engagement": t.engagement,
                    "stop_day": t.stop_day,
                    "begin_day": t.begin_day,
                }
            )
            for t in traits
        ],
        ignore_index=True,
    )
    snapshot = {
        (int(row.class_id), point): day.toordinal()
        for row in classes.itertuples()
        for point, day in snapshot_days(first_day=row.first_day, last_day=row.last_day).items()
    }

    def inputs(examples: pd.DataFrame) -> pd.DataFrame:
        rows = examples.merge(known, on=["class_id", "user_id"], how="inner")
        day = [snapshot[(c, p)] for c, p in zip(rows["class_id"], rows["progress"], strict=True)]
        return rows.assign(
            stopped=(rows["stop_day"] <= day).astype(float),
            not_begun=(rows["begin_day"] > day).astype(float),
        )

    columns = ["ability", "engagement", "stopped", "not_begun", "required_level"]
    fit_on, scored = inputs(train), inputs(holdout)
    out = {}
    for point in lof_model.REPORT_POINTS:
        a = fit_on[np.isclose(fit_on["progress"], point)]
        b = scored[np.isclose(scored["progress"], point)]
        truth_a, truth_b = a["label"] < a["required_level"], b["label"] < b["required_level"]
        if truth_b.nunique() < 2 or truth_a.nunique() < 2:
            continue
        model = LogisticRegression(max_iter=2000).fit(a[columns], truth_a)
        out[point] = float(roc_auc_score(truth_b, model.predict_proba(b[columns])[:, 1]))
    return out


def table(title: str, results: dict[str, dict]) -> str:
    from lof.model import outcome as lof_model

    lines = [f"### {title}", ""]
    header = ["candidate", "point", *(SHORT[c] for c in COLUMNS)]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for name, metrics in results.items():
        for point in lof_model.REPORT_POINTS:
            suffix = lof_model.point_suffix(point)
            cells = [f"{metrics.get(f'{c}_{suffix}', float('nan')):.3f}" for c in COLUMNS]
            lines.append(f"| {name} | {round(point * 100)}% | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def lead_table(title: str, results: dict[str, dict]) -> str:
    from lof.model.leadtime import METRIC_NAMES

    lines = [f"### {title}", "", "| candidate | " + " | ".join(METRIC_NAMES) + " |"]
    lines.append("|" + "---|" * (len(METRIC_NAMES) + 1))
    for name, metrics in results.items():
        cells = [f"{metrics.get(m, float('nan')):.3f}" for m in METRIC_NAMES]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=240)
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--plain", action="store_true", help="without the early-warning cases")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lof-bench-quality-") as tmp:
        root = Path(tmp)
        os.environ.update(
            LOF_HOME=str(root),
            LOF_LEB2_URL=f"sqlite:///{root / 'leb2.db'}",
            LOF_AMPLITUDE_SOURCE=str(root / "amplitude"),
        )
        from lof.core.config import get_settings
        from lof.model import outcome as lof_model
        from lof.sources import leb2
        from lof.synthetic import university as synth
        from lof.training import retrain as training
        from lof.training import selection

        began = time.perf_counter()
        synthesized = synth.synthesize(
            leb2_url=os.environ["LOF_LEB2_URL"],
            amplitude_dir=root / "amplitude",
            seed=args.seed,
            today=TODAY,
            students=args.students,
            classes=args.classes,
            early_cases=not args.plain,
            keep_traits=True,
        )
        settings = get_settings()
        built = training.build_training_set(settings=settings, semesters=None, as_of=TODAY)
        examples = built.examples
        truth = examples["label"] < examples["required_level"]
        print(
            f"{len(examples)} examples, {examples['class_id'].nunique()} classes, "
            f"{built.students_without_record} students without a record, "
            f"share below required {truth.mean():.2f} (built in "
            f"{time.perf_counter() - began:.0f}s)"
        )
        engine = leb2.connect(settings.leb2_url)
        candidates = lof_model.make_candidates(seed=args.seed)

        train, holdout, kind = selection.split_holdout(
            examples=examples, classes=built.classes, n_splits=args.folds
        )
        if kind != selection.KIND_TIME:  # one class per semester: hold the latest out anyway
            latest = built.classes.sort_values("first_start")["semester"].iloc[-1]
            held = set(built.classes.loc[built.classes["semester"] == latest, "class_id"])
            train = examples[~examples["class_id"].isin(held)].reset_index(drop=True)
            holdout = examples[examples["class_id"].isin(held)].reset_index(drop=True)
        by_time = selection.compare_candidates(
            train=train, holdout=holdout, candidates=candidates, settings=settings,
            n_splits=args.folds, seed=args.seed,
        )  # fmt: skip
        from lof.model.leadtime import lead_time_of_examples

        time_results = {name: r["holdout"] for name, r in by_time.items()}
        time_leads = {
            name: lead_time_of_examples(
                holdout, risk=r["holdout_risk"], threshold=r["calibration"].threshold
            )
            for name, r in by_time.items()
        }
        time_results["legacy_mlp"] = legacy_metrics(
            engine=engine, train=train, test=holdout, settings=settings,
            lof_model=lof_model, leb2=leb2, seed=args.seed,
        )  # fmt: skip

        by_class = selection.compare_candidates(
            train=examples, holdout=examples.iloc[0:0], candidates=candidates,
            settings=settings, n_splits=args.folds, seed=args.seed,
        )  # fmt: skip
        class_results = {name: r["cv"] for name, r in by_class.items()}
        # legacy by class: fitted on the other classes, for each class in turn
        parts = []
        for class_id in sorted(examples["class_id"].unique()):
            rest = examples[examples["class_id"] != class_id]
            one = examples[examples["class_id"] == class_id]
            m = legacy_metrics(
                engine=engine, train=rest, test=one, settings=settings,
                lof_model=lof_model, leb2=leb2, seed=args.seed,
            )  # fmt: skip
            parts.append(pd.Series(m) * len(one))
        weights = len(examples)
        class_results["legacy_mlp (mean over classes)"] = (sum(parts) / weights).to_dict()
        engine.dispose()

        print()
        print(table(f"Held out by time (train {sorted(set(train['class_id']))}, "
                    f"test {sorted(set(holdout['class_id']))})", time_results))  # fmt: skip
        print()
        print(table(f"Held out by class ({args.folds}-fold grouped CV)", class_results))
        print()
        print(lead_table("Lead time, held out by time (threshold chosen out of fold)", time_leads))
        ceiling = ceiling_auc(
            traits=synthesized.traits or [], classes=built.classes, train=train, holdout=holdout
        )
        print("\n### Information ceiling, held out by time (hidden traits, logistic regression)\n")
        print("| point | ceiling AUC | " + " | ".join(f"{n} AUC" for n in time_results) + " |")
        print("|" + "---|" * (len(time_results) + 2))
        for point, auc in ceiling.items():
            key = f"risk_roc_auc_{lof_model.point_suffix(point)}"
            cells = [f"{r.get(key, float('nan')):.3f}" for r in time_results.values()]
            print(f"| {round(point * 100)}% | {auc:.3f} | " + " | ".join(cells) + " |")
        chosen = lof_model.select_candidate({n: r["cv"] for n, r in by_time.items()})
        print(
            f"\nselected by time (on grouped CV of the earlier semester): {chosen}; "
            f"ratio of its holdout {lof_model.SELECTION_METRIC} to legacy_mlp's: "
            f"{time_results[chosen][lof_model.SELECTION_METRIC] / time_results['legacy_mlp'][lof_model.SELECTION_METRIC]:.3f}"  # noqa: E501
        )
        print(f"total {time.perf_counter() - began:.0f}s")


if __name__ == "__main__":
    main()
