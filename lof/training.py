"""Retraining: examples that mirror scoring, candidates compared on risk, the winner refitted.

The examples come from ``lof.examples``; candidates are evaluated, compared and the winner
refitted by ``lof.selection``. Nothing is registered unless every step before succeeded;
retraining never changes the Production stage or alias.
"""

from __future__ import annotations

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

from lof import drift, plots, registry, selection, tracking
from lof import model as lof_model
from lof.calendar import format_day
from lof.config import Settings
from lof.errors import DataError, LofError, ModelError
from lof.examples import HOLDOUT_COLUMNS, LEGACY_CLASS_ID, TrainingSet, build_training_set

log = logging.getLogger(__name__)

RETRAIN_EXPERIMENT = "lof-retrain"
REGISTERED_FIT = "model"
"""MLflow name of the registered fit: the chosen candidate refitted on every example."""
EVALUATION_FIT = "evaluation_model"
"""MLflow name of the fit that did not see the holdout (time evaluation only)."""


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
        if self.holdout_kind == selection.KIND_TIME:
            return (
                f"evaluation {self.holdout_kind}: held out classes "
                f"{registry.encode_class_ids(self.holdout_class_ids)} (latest semester)"
            )
        return f"evaluation {self.holdout_kind} over {self.n_classes} classes (no time holdout)"

    def describe(self) -> str:
        dataset = f" of which {self.legacy_rows} from --dataset" if self.legacy_rows else ""
        return (
            f"registered {self.candidate} as version {self.version} "
            f"(semesters {', '.join(self.semesters)}, {self.n_examples} examples{dataset} from "
            f"{self.n_classes} classes; {self._evaluation()}; refitted on all examples; "
            f"at-risk threshold {self.threshold:.3f}); "
            f"promote it with `lof promote --version {self.version}`\n"
            + selection.short_table(self.comparison)
        )

    def markdown(self) -> str:
        lines = [
            f"# Retrain: version {self.version} ({self.candidate})",
            "",
            f"Semesters {', '.join(self.semesters)}; {self.n_examples} examples from "
            f"{self.n_classes} classes; {self._evaluation()}. Selection: highest grouped-CV "
            f"`{lof_model.SELECTION_METRIC}` (mean risk ROC-AUC at 25% and 50%; ties within "
            f"{lof_model.SELECTION_TOLERANCE} go to the lowest `{lof_model.TIE_METRIC}`). "
            f"Registered: the chosen candidate refitted on all examples; at-risk threshold "
            f"{self.threshold:.3f}.",
            "",
            *selection.markdown_table(self.comparison),
        ]
        return "\n".join(lines)


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
    train, holdout, kind = selection.split_holdout(
        examples=examples, classes=training.classes, seed=seed, n_splits=n_splits
    )
    candidates = lof_model.make_candidates(
        seed=seed, mlp_max_iter=mlp_max_iter, names=candidate_names
    )
    dataset_fingerprint = selection.fingerprint(examples)
    semester_tag = ",".join(training.semesters)
    all_ids = selection.leb2_class_ids(examples)
    train_ids = selection.leb2_class_ids(train)
    holdout_ids = selection.leb2_class_ids(holdout)

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
        results = selection.compare_candidates(
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
        comparison = selection.comparison(results)
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
        final = selection.refit_on_everything(
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
