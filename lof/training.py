"""Retraining: examples that mirror scoring, candidates compared on risk, the winner refitted.

Examples come from ``lof.examples``.

Evaluation keeps classes apart. ``time``: the latest finished semester is held out when that
leaves at least 2 classes to train on; candidates are compared by grouped cross-validation on
the rest and the figures reported as holdout come from a fit that never saw it. Otherwise
``leave-one-class-out`` (or ``grouped-cv`` with more classes than folds): out-of-fold
predictions over every class serve for both. The chosen candidate is then refitted on every
example, holdout included, its risk calibrated and its at-risk threshold chosen on grouped
out-of-fold predictions, and that refit is registered. Nothing is registered unless every step
before succeeded; retraining never changes the Production stage or alias.
"""

from __future__ import annotations

import hashlib
import logging
import math
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lof import drift, plots, registry, tracking
from lof import model as lof_model
from lof.calendar import format_day
from lof.config import Settings
from lof.errors import DataError, LofError, ModelError
from lof.examples import HOLDOUT_COLUMNS, LEGACY_CLASS_ID, TrainingSet, build_training_set

log = logging.getLogger(__name__)

RETRAIN_EXPERIMENT = "lof-retrain"
KIND_TIME = "time"
KIND_LOCO = "leave-one-class-out"
KIND_GROUPED = "grouped-cv"
REGISTERED_FIT = "model"
"""MLflow name of the registered fit: the chosen candidate refitted on every example."""
EVALUATION_FIT = "evaluation_model"
"""MLflow name of the fit that did not see the holdout (time evaluation only)."""

_SEL = lof_model.SELECTION_METRIC
SHORT_COLUMN_NAMES = {
    "candidate": "candidate",
    f"cv_{_SEL}": "cv AUC 25-50%",
    f"holdout_{_SEL}": "holdout AUC 25-50%",
    "holdout_ci_low": "CI low",
    "holdout_ci_high": "CI high",
    "holdout_risk_roc_auc_at_50": "AUC@50%",
    "holdout_risk_pr_auc_at_50": "PR-AUC@50%",
    "holdout_risk_brier_at_50": "Brier@50%",
    "holdout_risk_ece_at_50": "ECE@50%",
    "holdout_at_risk_precision_at_50": "prec@50%",
    "holdout_at_risk_recall_at_50": "recall@50%",
}
"""The comparison columns a terminal shows (the full table is in MLflow and the artifact)."""


@dataclass
class RetrainResult:
    """What a retrain registered and how the candidates compared."""

    version: str
    candidate: str
    comparison: pd.DataFrame
    holdout_kind: str
    semesters: list[str]
    run_id: str
    metrics: dict[str, float] = field(default_factory=dict)
    n_examples: int = 0
    n_classes: int = 0
    legacy_rows: int = 0
    threshold: float = lof_model.DEFAULT_THRESHOLD
    training_class_ids: list[int] = field(default_factory=list)
    holdout_class_ids: list[int] = field(default_factory=list)

    def _evaluation(self) -> str:
        if self.holdout_kind == KIND_TIME:
            return (
                f"evaluation {self.holdout_kind}: held out classes "
                f"{registry.encode_class_ids(self.holdout_class_ids)} (latest semester)"
            )
        return f"evaluation {self.holdout_kind} over {self.n_classes} classes (no time holdout)"

    def describe(self) -> str:
        shown = [c for c in SHORT_COLUMN_NAMES if c in self.comparison.columns]
        table = self.comparison[shown].rename(columns=SHORT_COLUMN_NAMES)
        dataset = f" of which {self.legacy_rows} from --dataset" if self.legacy_rows else ""
        return (
            f"registered {self.candidate} as version {self.version} "
            f"(semesters {', '.join(self.semesters)}, {self.n_examples} examples{dataset} from "
            f"{self.n_classes} classes; {self._evaluation()}; refitted on all examples; "
            f"at-risk threshold {self.threshold:.3f}); "
            f"promote it with `lof promote --version {self.version}`\n"
            + table.to_string(index=False, float_format=lambda v: f"{v:.3f}")
        )

    def markdown(self) -> str:
        columns = list(self.comparison.columns)
        lines = [
            f"# Retrain: version {self.version} ({self.candidate})",
            "",
            f"Semesters {', '.join(self.semesters)}; {self.n_examples} examples from "
            f"{self.n_classes} classes; {self._evaluation()}. Selection: highest grouped-CV "
            f"`{_SEL}` (mean risk ROC-AUC at 25% and 50%; ties within "
            f"{lof_model.SELECTION_TOLERANCE} go to the lowest `{lof_model.TIE_METRIC}`). "
            f"Registered: the chosen candidate refitted on all examples; at-risk threshold "
            f"{self.threshold:.3f}.",
            "",
            "| " + " | ".join(columns) + " |",
            "|" + "---|" * len(columns),
        ]
        for row in self.comparison.itertuples(index=False):
            cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


# --- split, compare, register -----------------------------------------------------------------


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of the frame's content (row order and dtypes included)."""
    digest = hashlib.sha256()
    digest.update(",".join(f"{c}:{t}" for c, t in frame.dtypes.items()).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _leb2_class_ids(frame: pd.DataFrame) -> list[int]:
    return sorted(int(c) for c in frame["class_id"].unique() if int(c) != LEGACY_CLASS_ID)


def split_holdout(
    *, examples: pd.DataFrame, classes: pd.DataFrame, seed: int = 0, n_splits: int = 5
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(train, holdout, kind).

    ``time``: the latest semester is held out when the earlier ones hold at least 2 classes.
    Otherwise every class is evaluated out of fold (``leave-one-class-out``, or
    ``grouped-cv`` when there are more classes than folds): train is everything and the
    holdout is empty. At least 2 finished classes are needed in all.
    """
    del seed  # folds are grouped by class deterministically
    from_leb2 = examples[examples["class_id"] != LEGACY_CLASS_ID]
    present = classes[classes["class_id"].isin(from_leb2["class_id"])]
    ids = sorted(int(c) for c in present["class_id"])
    if len(ids) < 2:
        raise DataError(
            f"only {len(ids)} finished class(es) with students in "
            f"{', '.join(sorted(set(present['semester']))) or 'the chosen semesters'}; at least "
            "2 finished classes are needed to evaluate on a class the model did not see; add "
            "semesters with --semester or retrain later"
        )
    order = present.groupby("semester")["first_start"].min().sort_values()
    if len(order) >= 2:
        latest = order.index[-1]
        held = set(present.loc[present["semester"] == latest, "class_id"].astype(int))
        if len(ids) - len(held) >= 2:
            mask = examples["class_id"].isin(held)
            train, holdout = examples[~mask], examples[mask]
            return train.reset_index(drop=True), holdout.reset_index(drop=True), KIND_TIME
    kind = KIND_LOCO if len(ids) <= n_splits else KIND_GROUPED
    return examples.reset_index(drop=True), examples.iloc[0:0].reset_index(drop=True), kind


def _truth(examples: pd.DataFrame) -> np.ndarray:
    return examples["label"].to_numpy(dtype=int) < examples["required_level"].to_numpy(dtype=int)


def _raw_risk(examples: pd.DataFrame, proba: np.ndarray) -> np.ndarray:
    return lof_model.risk_probabilities(proba, examples["required_level"].to_numpy(dtype=int))


@dataclass
class Calibration:
    """Risk calibration and threshold fitted on out-of-fold predictions."""

    coef: float = 1.0
    intercept: float = 0.0
    threshold: float = lof_model.DEFAULT_THRESHOLD

    def risk(self, raw: np.ndarray) -> np.ndarray:
        return lof_model.calibrate(raw, coef=self.coef, intercept=self.intercept)


def fit_calibration(
    *, examples: pd.DataFrame, proba: np.ndarray, settings: Settings
) -> Calibration:
    """Platt scaling of the risk and the at-risk threshold, on out-of-fold ``proba``."""
    raw, truth = _raw_risk(examples, proba), _truth(examples)
    coef, intercept = lof_model.fit_calibration(
        raw, truth, min_examples=settings.calibration_min_examples
    )
    calibrated = lof_model.calibrate(raw, coef=coef, intercept=intercept)
    threshold = lof_model.choose_threshold(
        calibrated, truth, target_recall=settings.risk_target_recall
    )
    return Calibration(coef=coef, intercept=intercept, threshold=threshold)


def out_of_fold_metrics(
    *, examples: pd.DataFrame, proba: np.ndarray, settings: Settings, seed: int = 0
) -> dict[str, float]:
    """Metrics of out-of-fold predictions, each class's calibration and threshold fitted on
    the other classes only (cross-fitted), with a class-bootstrap interval."""
    raw, truth = _raw_risk(examples, proba), _truth(examples)
    risk, cuts = lof_model.cross_fitted_risk(
        raw=raw,
        truth=truth,
        groups=examples["class_id"].to_numpy(),
        min_examples=settings.calibration_min_examples,
        target_recall=settings.risk_target_recall,
    )
    metrics = lof_model.score_examples(
        examples=examples, proba=proba, threshold=float(np.median(cuts)), risk=risk
    )
    metrics.update(lof_model.at_risk_figures(examples=examples, risk=risk, cuts=cuts))
    low, high = lof_model.bootstrap_interval(examples=examples, risk=risk, seed=seed)
    metrics["ci_low"], metrics["ci_high"] = low, high
    return metrics


def compare_candidates(
    *,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    candidates: dict[str, Any],
    settings: Settings,
    n_splits: int = 5,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Per candidate: grouped out-of-fold metrics on ``train`` (what selection reads) and, with
    a time holdout, the metrics on it of a fit on ``train`` (calibrated on train's
    out-of-fold predictions); without one, the out-of-fold metrics stand for both."""
    scored = train[train["class_id"] != LEGACY_CLASS_ID].reset_index(drop=True)
    extra = train[train["class_id"] == LEGACY_CLASS_ID]
    out: dict[str, dict[str, Any]] = {}
    for name, estimator in candidates.items():
        proba = lof_model.grouped_cv_probabilities(
            estimator=estimator, examples=scored, n_splits=n_splits, extra=extra
        )
        cv = out_of_fold_metrics(examples=scored, proba=proba, settings=settings, seed=seed)
        calibration = fit_calibration(examples=scored, proba=proba, settings=settings)
        result: dict[str, Any] = {
            "cv": cv,
            "oof_proba": proba,
            "calibration": calibration,
        }
        if len(holdout):
            fitted = lof_model.fit(estimator=estimator, examples=train)
            held_proba = lof_model.level_probabilities(model=fitted, features=holdout)
            risk = calibration.risk(_raw_risk(holdout, held_proba))
            held = lof_model.score_examples(
                examples=holdout, proba=held_proba, threshold=calibration.threshold, risk=risk
            )
            low, high = lof_model.bootstrap_interval(examples=holdout, risk=risk, seed=seed)
            held["ci_low"], held["ci_high"] = low, high
            result.update(holdout=held, model=fitted, holdout_proba=held_proba, holdout_risk=risk)
        else:
            result.update(
                holdout=cv,
                model=None,
                holdout_proba=proba,
                holdout_risk=None,
            )
        out[name] = result
    return out


def _prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in metrics.items() if not math.isnan(float(v))}


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


def refit_on_everything(
    *,
    estimator: Any,
    examples: pd.DataFrame,
    settings: Settings,
    n_splits: int,
    oof: tuple[pd.DataFrame, np.ndarray] | None = None,
) -> lof_model.RiskModel:
    """The registered fit: ``estimator`` on every example, its risk calibrated and threshold
    chosen on grouped out-of-fold predictions over every class (reused when given)."""
    scored = examples[examples["class_id"] != LEGACY_CLASS_ID].reset_index(drop=True)
    extra = examples[examples["class_id"] == LEGACY_CLASS_ID]
    if oof is None:
        proba = lof_model.grouped_cv_probabilities(
            estimator=estimator, examples=scored, n_splits=n_splits, extra=extra
        )
        oof = (scored, proba)
    calibration = fit_calibration(examples=oof[0], proba=oof[1], settings=settings)
    fitted = lof_model.fit(estimator=estimator, examples=examples)
    return lof_model.RiskModel(
        fitted,
        coef=calibration.coef,
        intercept=calibration.intercept,
        threshold=calibration.threshold,
        training_class_ids=_leb2_class_ids(examples),
    )


def train_and_register(
    *,
    settings: Settings,
    training: TrainingSet,
    candidate_names: Sequence[str] | None = None,
    mlp_max_iter: int = 200,
    n_splits: int = 5,
    seed: int = 0,
) -> RetrainResult:
    """Compare candidates in MLflow runs, refit the winner, register it (the very last step)."""
    try:
        return _train_and_register(
            settings=settings,
            training=training,
            candidate_names=candidate_names,
            mlp_max_iter=mlp_max_iter,
            n_splits=n_splits,
            seed=seed,
        )
    except LofError:
        raise
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelError(
            f"retrain failed while training or logging to MLflow ({type(exc).__name__}: "
            f"{first[:200]}); nothing was registered; check MLFLOW_TRACKING_URI and rerun "
            "`lof retrain`"
        ) from exc


def _candidate_params(estimator: Any) -> dict[str, Any]:
    return {
        f"model.{k}": v
        for k, v in estimator.steps[-1][1].get_params(deep=False).items()
        if not hasattr(v, "get_params")
    }


def _train_and_register(
    *,
    settings: Settings,
    training: TrainingSet,
    candidate_names: Sequence[str] | None,
    mlp_max_iter: int,
    n_splits: int,
    seed: int,
) -> RetrainResult:
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    examples = training.examples
    if examples.empty or (examples["class_id"] != LEGACY_CLASS_ID).sum() == 0:
        raise DataError(
            f"no labelled training examples in semesters {', '.join(training.semesters)}; "
            "check that their classes have assessed records"
        )
    train, holdout, kind = split_holdout(
        examples=examples, classes=training.classes, seed=seed, n_splits=n_splits
    )
    candidates = lof_model.make_candidates(
        seed=seed, mlp_max_iter=mlp_max_iter, names=candidate_names
    )
    dataset_fingerprint = fingerprint(examples)
    semester_tag = ",".join(training.semesters)
    all_ids = _leb2_class_ids(examples)
    train_ids = _leb2_class_ids(train)
    holdout_ids = _leb2_class_ids(holdout)

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    experiment_id = tracking.ensure_experiment(settings=settings, name=RETRAIN_EXPERIMENT)
    run_name = f"retrain-{format_day(training.as_of)}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as parent:
        mlflow.set_tags(
            {
                "lof.semesters": semester_tag,
                "lof.as_of": format_day(training.as_of),
                "lof.holdout_kind": kind,
                "lof.training_fingerprint": dataset_fingerprint,
            }
        )
        mlflow.log_params(
            {
                "semesters": semester_tag,
                "as_of": format_day(training.as_of),
                "label_rule": settings.label_rule,
                "visitor_max_views": settings.visitor_max_views,
                "risk_threshold_override": settings.risk_threshold,
                "risk_target_recall": settings.risk_target_recall,
                "holdout_kind": kind,
                "progress_points": ",".join(str(p) for p in lof_model.PROGRESS_POINTS),
                "candidates": ",".join(candidates),
                "cv_folds": n_splits,
                "selection_metric": lof_model.SELECTION_METRIC,
                "selection_tie_metric": lof_model.TIE_METRIC,
                "selection_tolerance": lof_model.SELECTION_TOLERANCE,
                "n_examples": len(examples),
                "n_train": len(train),
                "n_holdout": len(holdout),
                "n_classes": int(training.classes["class_id"].nunique()),
                **training.sources(),
            }
        )
        from lof.feedback import log_feedback_metrics

        log_feedback_metrics(settings=settings)  # teachers' verdicts on the models in use
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)  # int id columns, by design
            inputs = [(examples, f"lof-training-{semester_tag}", "training")]
            if len(holdout):
                inputs.append((holdout, "lof-holdout", "holdout"))
            for frame, name, context in inputs:
                dataset = from_pandas(frame, name=name, targets="label")
                mlflow.log_input(dataset, context=context)
        results = compare_candidates(
            train=train,
            holdout=holdout,
            candidates=candidates,
            settings=settings,
            n_splits=n_splits,
            seed=seed,
        )
        evaluated = holdout if len(holdout) else train[train["class_id"] != LEGACY_CLASS_ID]
        for name, result in results.items():
            with mlflow.start_run(experiment_id=experiment_id, run_name=name, nested=True) as child:
                result["run_id"] = child.info.run_id
                mlflow.set_tags({"lof.candidate": name, "lof.holdout_kind": kind})
                mlflow.log_params({"candidate": name, **_candidate_params(candidates[name])})
                mlflow.log_metrics(_prefixed("cv.", result["cv"]))
                mlflow.log_metrics(_prefixed("holdout.", result["holdout"]))
                _log_plots(
                    holdout=evaluated.reset_index(drop=True),
                    proba=result["holdout_proba"],
                    metrics=result["holdout"],
                    title=f"{name} ({kind})",
                    risk=result["holdout_risk"],
                )
        cv_scores = {name: r["cv"] for name, r in results.items()}
        chosen = lof_model.select_candidate(cv_scores)
        comparison = _comparison(results)
        for row in comparison.to_dict(orient="records"):
            log.info("candidate %s", row)
        best = results[chosen]
        mlflow.log_metrics(_prefixed("holdout.", best["holdout"]))
        mlflow.set_tag("lof.chosen_candidate", chosen)
        with tempfile.TemporaryDirectory(prefix="lof-comparison-") as tmp:
            path = Path(tmp) / "comparison.csv"
            comparison.to_csv(path, index=False)
            mlflow.log_artifact(str(path))

        # The registered fit: the chosen candidate on every example, holdout included.
        oof = None if len(holdout) else (evaluated.reset_index(drop=True), best["oof_proba"])
        final = refit_on_everything(
            estimator=candidates[chosen],
            examples=examples,
            settings=settings,
            n_splits=n_splits,
            oof=oof,
        )
        input_example = examples[lof_model.input_features(final)].head(5).astype(float)
        evaluation_uri = ""
        if best["model"] is not None:
            evaluation_model = lof_model.RiskModel(
                best["model"],
                coef=best["calibration"].coef,
                intercept=best["calibration"].intercept,
                threshold=best["calibration"].threshold,
                training_class_ids=train_ids,
            )
            evaluation_uri = registry.log_model(
                model=evaluation_model, input_example=input_example, name=EVALUATION_FIT
            ).model_uri
        logged = registry.log_model(model=final, input_example=input_example, name=REGISTERED_FIT)
        drift.log_reference(examples=examples[examples["class_id"] != LEGACY_CLASS_ID])
        mlflow.log_metrics(_prefixed("holdout.", best["holdout"]), model_id=logged.model_id)
        mlflow.set_tags(
            {
                "lof.fit.registered": f"{REGISTERED_FIT}: {chosen} on all {len(all_ids)} classes",
                "lof.fit.evaluation": (
                    f"{EVALUATION_FIT}: {chosen} without the holdout ({len(train_ids)} classes)"
                    if evaluation_uri
                    else f"none ({kind}: out-of-fold fits only)"
                ),
            }
        )
        registry.log_holdout(holdout=evaluated[list(HOLDOUT_COLUMNS)].reset_index(drop=True))
        held = best["holdout"]
        tags = {
            "semester": semester_tag,
            "training_fingerprint": dataset_fingerprint,
            "selection_metric": lof_model.SELECTION_METRIC,
            lof_model.SELECTION_METRIC: held.get(lof_model.SELECTION_METRIC, float("nan")),
            "selection_ci": f"{held.get('ci_low', float('nan')):.4f},"
            f"{held.get('ci_high', float('nan')):.4f}",
            "macro_f1_at_50": held.get("macro_f1_at_50", float("nan")),
            "macro_f1": held["macro_f1"],
            "candidate": chosen,
            "holdout_kind": kind,
            "baseline_" + lof_model.SELECTION_METRIC: results.get(lof_model.BASELINE, {})
            .get("holdout", {})
            .get(lof_model.SELECTION_METRIC, float("nan")),
            "as_of": format_day(training.as_of),
            "label_rule": settings.label_rule,
            "candidate_run_id": best["run_id"],
            registry.TRAINING_CLASSES_TAG: registry.encode_class_ids(all_ids),
            registry.EVALUATION_CLASSES_TAG: registry.encode_class_ids(
                train_ids if evaluation_uri else []
            ),
            registry.HOLDOUT_CLASSES_TAG: registry.encode_class_ids(
                holdout_ids if evaluation_uri else all_ids
            ),
            registry.EVALUATION_MODEL_TAG: evaluation_uri,
            registry.THRESHOLD_TAG: f"{final.threshold:.6f}",
            "risk_calibration": f"{final.coef:.6f},{final.intercept:.6f}",
        }
        version = registry.register_version(
            settings=settings,
            model_uri=logged.model_uri,
            run_id=parent.info.run_id,
            tags=tags,
            model_id=logged.model_id,
        )
        mlflow.set_tag("lof.registered_version", version)
    return RetrainResult(
        version=version,
        candidate=chosen,
        comparison=comparison,
        holdout_kind=kind,
        semesters=list(training.semesters),
        run_id=parent.info.run_id,
        metrics=dict(held),
        n_examples=len(examples),
        n_classes=int(training.classes["class_id"].nunique()),
        legacy_rows=training.legacy_rows,
        threshold=final.threshold,
        training_class_ids=all_ids,
        holdout_class_ids=holdout_ids,
    )


COMPARISON_METRICS: tuple[str, ...] = (
    "risk_roc_auc",
    "risk_pr_auc",
    "risk_brier",
    "risk_ece",
    "at_risk_precision",
    "at_risk_recall",
    "macro_f1",
)


def _comparison(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for name, result in results.items():
        cv, held = result["cv"], result["holdout"]
        row: dict[str, Any] = {
            "candidate": name,
            f"cv_{_SEL}": cv.get(_SEL, np.nan),
            f"cv_{lof_model.TIE_METRIC}": cv.get(lof_model.TIE_METRIC, np.nan),
            f"holdout_{_SEL}": held.get(_SEL, np.nan),
            "holdout_ci_low": held.get("ci_low", np.nan),
            "holdout_ci_high": held.get("ci_high", np.nan),
        }
        for point in lof_model.REPORT_POINTS:
            suffix = lof_model.point_suffix(point)
            for metric in COMPARISON_METRICS:
                row[f"holdout_{metric}_{suffix}"] = held.get(f"{metric}_{suffix}", np.nan)
        row["holdout_macro_f1"] = held.get("macro_f1", np.nan)
        row["holdout_threshold"] = held.get("threshold", np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def run_retrain(
    *,
    settings: Settings,
    semesters: Sequence[str] | None = None,
    as_of: date | None = None,
    dataset: str | Path | None = None,
    progress: bool = False,
    candidate_names: Sequence[str] | None = None,
    mlp_max_iter: int = 200,
    n_splits: int = 5,
) -> RetrainResult:
    """Build the examples, compare the candidates, register the chosen model (not promoted)."""
    training = build_training_set(
        settings=settings, semesters=semesters, as_of=as_of, dataset=dataset, progress=progress
    )
    return train_and_register(
        settings=settings,
        training=training,
        candidate_names=candidate_names,
        mlp_max_iter=mlp_max_iter,
        n_splits=n_splits,
    )
