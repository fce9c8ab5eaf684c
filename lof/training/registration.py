"""MLflow side of a retrain: what the parent and candidate runs record, and the registration.

Each step logs into the active run (the retrain's parent run, or a candidate's nested run).
The registered version is created last (``register``), with every tag in one call, so a
failure in any step before leaves the registry unchanged.
"""

from __future__ import annotations

import logging
import math
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lof.core.calendar import format_day
from lof.core.config import Settings
from lof.features import drift
from lof.governance import pseudonyms
from lof.model import outcome as lof_model
from lof.registry import client as registry
from lof.registry import tracking
from lof.training import plots, selection
from lof.training.examples import HOLDOUT_COLUMNS, LEGACY_CLASS_ID, TrainingSet
from lof.training.selection import CandidateResult

if TYPE_CHECKING:
    from sklearn.base import BaseEstimator

log = logging.getLogger(__name__)

REGISTERED_FIT = "model"
"""MLflow name of the registered fit: the chosen candidate refitted on every example."""
EVALUATION_FIT = "evaluation_model"
"""MLflow name of the fit that did not see the holdout (time evaluation only)."""


@dataclass(frozen=True)
class RetrainRun:
    """What every logging step of one retrain needs: its examples and how they were split."""

    settings: Settings
    training: TrainingSet
    train: pd.DataFrame
    holdout: pd.DataFrame
    kind: str
    fingerprint: str

    @property
    def examples(self) -> pd.DataFrame:
        return self.training.examples

    @property
    def semester_tag(self) -> str:
        return ",".join(self.training.semesters)

    @property
    def evaluated(self) -> pd.DataFrame:
        """The rows the reported figures are on: the holdout, else every LEB2 training row."""
        if len(self.holdout):
            return self.holdout
        return self.train[self.train["class_id"] != LEGACY_CLASS_ID]

    @property
    def all_ids(self) -> list[int]:
        return selection.leb2_class_ids(self.examples)

    @property
    def train_ids(self) -> list[int]:
        return selection.leb2_class_ids(self.train)

    @property
    def holdout_ids(self) -> list[int]:
        return selection.leb2_class_ids(self.holdout)


@dataclass(frozen=True)
class LoggedFits:
    """The registered fit as logged, and the URI of the holdout-blind fit ("" if none)."""

    model_uri: str
    model_id: str
    evaluation_uri: str


def _prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in metrics.items() if not math.isnan(float(v))}


def _candidate_params(estimator: BaseEstimator) -> dict[str, object]:
    return {
        f"model.{k}": v
        for k, v in estimator.steps[-1][1].get_params(deep=False).items()
        if not hasattr(v, "get_params")
    }


def log_setup(*, run: RetrainRun, candidates: dict[str, BaseEstimator], n_splits: int) -> None:
    """Tags and parameters of the parent run: data, settings and the selection rule."""
    import mlflow

    settings, training, examples = run.settings, run.training, run.examples
    mlflow.set_tags(
        {
            "lof.semesters": run.semester_tag,
            "lof.as_of": format_day(training.as_of),
            "lof.holdout_kind": run.kind,
            "lof.training_fingerprint": run.fingerprint,
        }
    )
    mlflow.log_params(
        {
            "semesters": run.semester_tag,
            "as_of": format_day(training.as_of),
            "label_rule": settings.label_rule,
            "visitor_max_views": settings.visitor_max_views,
            "risk_threshold_override": settings.risk_threshold,
            "risk_target_recall": settings.risk_target_recall,
            "holdout_kind": run.kind,
            "progress_points": ",".join(str(p) for p in lof_model.PROGRESS_POINTS),
            "candidates": ",".join(candidates),
            "cv_folds": n_splits,
            "selection_metric": lof_model.SELECTION_METRIC,
            "selection_tie_metric": lof_model.TIE_METRIC,
            "selection_tolerance": lof_model.SELECTION_TOLERANCE,
            "n_examples": len(examples),
            "n_train": len(run.train),
            "n_holdout": len(run.holdout),
            "n_classes": int(training.classes["class_id"].nunique()),
            **training.sources(),
        }
    )


def log_inputs(*, run: RetrainRun) -> None:
    """The training examples (and the holdout, if any) as the run's MLflow datasets, students
    by pseudonym only (MLflow keeps the datasets' digest, schema and size, not their rows)."""
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    names = pseudonyms.optional(run.settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)  # int id columns, by design
        inputs = [(run.examples, f"lof-training-{run.semester_tag}", "training")]
        if len(run.holdout):
            inputs.append((run.holdout, "lof-holdout", "holdout"))
        for frame, name, context in inputs:
            logged = pseudonyms.for_mlflow(frame, names)
            dataset = from_pandas(logged, name=name, targets="label")
            mlflow.log_input(dataset, context=context)


def _log_plots(
    *,
    holdout: pd.DataFrame,
    proba: np.ndarray,
    metrics: dict,
    title: str,
    risk: np.ndarray | None = None,
) -> None:
    import mlflow

    labels = holdout["label"].to_numpy(dtype=int)
    required = holdout["required_level"].to_numpy(dtype=int)
    with tempfile.TemporaryDirectory(prefix="lof-plots-") as tmp:
        folder = Path(tmp)
        plots.plot_confusion(
            labels=labels, proba=proba, title=title, path=folder / "confusion_matrix.png"
        )
        plots.plot_metrics_by_progress(
            metrics=metrics, title=title, path=folder / "metrics_by_progress.png"
        )
        plots.plot_calibration(
            labels=labels,
            proba=proba,
            required=required,
            title=title,
            path=folder / "calibration_curve.png",
            risk=risk,
        )
        mlflow.log_artifacts(tmp, artifact_path="plots")


def log_candidates(
    *,
    run: RetrainRun,
    results: dict[str, CandidateResult],
    candidates: dict[str, BaseEstimator],
    experiment_id: str,
) -> None:
    """One nested run per candidate: its parameters, CV and holdout metrics, and plots.

    Each result gets the ``run_id`` of its nested run (the registered version names it)."""
    import mlflow

    evaluated = run.evaluated.reset_index(drop=True)
    for name, result in results.items():
        run_name = f"{name}-{tracking.semester_label(run.training.semesters)}"
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, nested=True) as child:
            result["run_id"] = child.info.run_id
            mlflow.set_tags({"lof.candidate": name, "lof.holdout_kind": run.kind})
            mlflow.log_params({"candidate": name, **_candidate_params(candidates[name])})
            mlflow.log_metrics(_prefixed("cv.", result["cv"]))
            mlflow.log_metrics(_prefixed("holdout.", result["holdout"]))
            _log_plots(
                holdout=evaluated,
                proba=result["holdout_proba"],
                metrics=result["holdout"],
                title=f"{name} ({run.kind})",
                risk=result["holdout_risk"],
            )


def log_choice(*, comparison: pd.DataFrame, chosen: str, best: CandidateResult) -> None:
    """The chosen candidate's holdout metrics and the comparison table on the parent run."""
    import mlflow

    for row in comparison.to_dict(orient="records"):
        log.info("candidate %s", row)
    mlflow.log_metrics(_prefixed("holdout.", best["holdout"]))
    mlflow.set_tag("lof.chosen_candidate", chosen)
    with tempfile.TemporaryDirectory(prefix="lof-comparison-") as tmp:
        path = Path(tmp) / "comparison.csv"
        comparison.to_csv(path, index=False)
        mlflow.log_artifact(str(path))


def log_fits(
    *, run: RetrainRun, final: lof_model.RiskModel, chosen: str, best: CandidateResult
) -> LoggedFits:
    """Log the registered fit, the holdout-blind fit (time evaluation), the drift reference
    and the evaluated rows; nothing is registered yet."""
    import mlflow

    examples = run.examples
    input_example = examples[lof_model.input_features(final)].head(5).astype(float)
    input_example["required_level"] = examples["required_level"].head(5).astype("int64")
    evaluation_uri = ""
    if best["model"] is not None:
        evaluation_model = lof_model.RiskModel(
            best["model"],
            coef=best["calibration"].coef,
            intercept=best["calibration"].intercept,
            threshold=best["calibration"].threshold,
            training_class_ids=run.train_ids,
        )
        evaluation_uri = registry.log_model(
            model=evaluation_model, input_example=input_example, name=EVALUATION_FIT
        ).model_uri
    logged = registry.log_model(model=final, input_example=input_example, name=REGISTERED_FIT)
    drift.log_reference(examples=examples[examples["class_id"] != LEGACY_CLASS_ID])
    mlflow.log_metrics(_prefixed("holdout.", best["holdout"]), model_id=logged.model_id)
    mlflow.set_tags(
        {
            "lof.fit.registered": f"{REGISTERED_FIT}: {chosen} on all {len(run.all_ids)} classes",
            "lof.fit.evaluation": (
                f"{EVALUATION_FIT}: {chosen} without the holdout ({len(run.train_ids)} classes)"
                if evaluation_uri
                else f"none ({run.kind}: out-of-fold fits only)"
            ),
        }
    )
    registry.log_holdout(
        holdout=run.evaluated[list(HOLDOUT_COLUMNS)].reset_index(drop=True), settings=run.settings
    )
    return LoggedFits(
        model_uri=logged.model_uri, model_id=logged.model_id, evaluation_uri=evaluation_uri
    )


def version_tags(
    *,
    run: RetrainRun,
    results: dict[str, CandidateResult],
    chosen: str,
    final: lof_model.RiskModel,
    fits: LoggedFits,
) -> dict[str, str | float]:
    """The registered version's tags: data, selection figures, classes, threshold."""
    held = results[chosen]["holdout"]
    evaluation_uri = fits.evaluation_uri
    return {
        "semester": run.semester_tag,
        "training_fingerprint": run.fingerprint,
        "selection_metric": lof_model.SELECTION_METRIC,
        lof_model.SELECTION_METRIC: held.get(lof_model.SELECTION_METRIC, float("nan")),
        "selection_ci": f"{held.get('ci_low', float('nan')):.4f},"
        f"{held.get('ci_high', float('nan')):.4f}",
        "macro_f1_at_50": held.get("macro_f1_at_50", float("nan")),
        "macro_f1": held["macro_f1"],
        "candidate": chosen,
        "holdout_kind": run.kind,
        "baseline_" + lof_model.SELECTION_METRIC: _baseline_holdout(results).get(
            lof_model.SELECTION_METRIC, float("nan")
        ),
        "as_of": format_day(run.training.as_of),
        "label_rule": run.settings.label_rule,
        "candidate_run_id": results[chosen]["run_id"],
        registry.TRAINING_CLASSES_TAG: registry.encode_class_ids(run.all_ids),
        registry.EVALUATION_CLASSES_TAG: registry.encode_class_ids(
            run.train_ids if evaluation_uri else []
        ),
        registry.HOLDOUT_CLASSES_TAG: registry.encode_class_ids(
            run.holdout_ids if evaluation_uri else run.all_ids
        ),
        registry.EVALUATION_MODEL_TAG: evaluation_uri,
        registry.THRESHOLD_TAG: f"{final.threshold:.6f}",
        "risk_calibration": f"{final.coef:.6f},{final.intercept:.6f}",
    }


def _baseline_holdout(results: Mapping[str, CandidateResult]) -> dict[str, float]:
    """The former model's held-out metrics, when it was a candidate."""
    baseline = results.get(lof_model.BASELINE)
    return baseline.get("holdout", {}) if baseline is not None else {}


def _figure(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(float(value)) else f"{float(value):.3f}"


def version_description(
    *, run: RetrainRun, results: dict[str, CandidateResult], chosen: str, final: lof_model.RiskModel
) -> str:
    """What the version is, what it was trained on, how it did on held-out data: the short
    text the MLflow UI shows with the version (promotion adds how and why it was promoted)."""
    held = results[chosen]["holdout"]
    metric = lof_model.SELECTION_METRIC
    baseline = _baseline_holdout(results).get(metric)
    return (
        f"Semesters {', '.join(run.training.semesters)}: {chosen} trained on "
        f"{len(run.all_ids)} classes ({len(run.examples)} examples, as of "
        f"{format_day(run.training.as_of)}, label rule {run.settings.label_rule}). "
        f"Held out ({run.kind}): {metric} {_figure(held.get(metric))} (95% CI "
        f"{_figure(held.get('ci_low'))}-{_figure(held.get('ci_high'))}; former MLP "
        f"{_figure(baseline)}), macro-F1 {_figure(held.get('macro_f1'))}; at-risk threshold "
        f"{final.threshold:.2f}.\n\n{registry.NOT_PROMOTED}"
    )


def register(
    *, run: RetrainRun, fits: LoggedFits, run_id: str, tags: Mapping[str, object], description: str
) -> str:
    """Register the logged fit as a new version (the retrain's very last step)."""
    import mlflow

    version = registry.register_version(
        settings=run.settings,
        model_uri=fits.model_uri,
        run_id=run_id,
        tags=tags,
        model_id=fits.model_id,
        description=description,
    )
    mlflow.set_tag("lof.registered_version", version)
    return version
