"""Retraining: examples that mirror scoring, candidates compared on risk, the winner refitted.

The examples come from ``lof.training.examples``; candidates are evaluated, compared and the winner
refitted by ``lof.training.selection``; ``lof.training.registration`` logs the MLflow runs and
registers the version. Nothing is registered unless every step before succeeded; retraining never
changes the Production stage or alias.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from lof.core.config import Settings
from lof.core.errors import DataError, LofError
from lof.core.retry import mlflow_unavailable
from lof.model import outcome as lof_model
from lof.registry import client as registry
from lof.registry import tracking
from lof.training import registration, selection
from lof.training.examples import LEGACY_CLASS_ID, TrainingSet, build_training_set

if TYPE_CHECKING:
    from sklearn.base import BaseEstimator

    from lof.governance.groups import StudentGroups

RETRAIN_EXPERIMENT = "lof-retrain"
log = logging.getLogger(__name__)


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
    mlflow_url: str | None = None
    """The retrain run in the MLflow UI's model-training view (None: no tracking server)."""
    model_card: str = ""
    """``runs:/<run_id>/model_card.html`` of the version ("" if it could not be written)."""

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
            f"promote it with `lof promote --version {self.version}`"
            + (f"; model card {self.model_card}" if self.model_card else "")
            + "\n"
            + (f"MLflow: {self.mlflow_url}\n" if self.mlflow_url else "")
            + selection.short_table(self.comparison)
        )

    def markdown(self) -> str:
        lines = [
            f"# Retrain: version {self.version} ({self.candidate})",
            "",
            f"Semesters {', '.join(self.semesters)}; {self.n_examples} examples from "
            f"{self.n_classes} classes; {self._evaluation()}. Selection: highest grouped-CV "
            f"`{lof_model.SELECTION_METRIC}` (mean risk ROC-AUC at 10%, 25% and 50%; ties within "
            f"{lof_model.SELECTION_TOLERANCE} go to the lowest `{lof_model.TIE_METRIC}`). "
            f"Registered: the chosen candidate refitted on all examples; at-risk threshold "
            f"{self.threshold:.3f}.",
            "",
            *selection.markdown_table(self.comparison),
            *(["", f"[The retrain run in MLflow]({self.mlflow_url})"] if self.mlflow_url else []),
        ]
        if self.model_card:
            lines += ["", f"Model card: `{self.model_card}` (`lof card --version {self.version}`)"]
        return "\n".join(lines)


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
    with registry.mlflow_reachable(settings, what="retrain", rerun="lof retrain"):
        return _train_and_register(
            settings=settings,
            training=training,
            candidate_names=candidate_names,
            mlp_max_iter=mlp_max_iter,
            n_splits=n_splits,
            seed=seed,
        )


def _require_examples(training: TrainingSet) -> None:
    examples = training.examples
    if examples.empty or (examples["class_id"] != LEGACY_CLASS_ID).sum() == 0:
        raise DataError(
            f"no labelled training examples in semesters {', '.join(training.semesters)}; "
            "check that their classes have assessed records"
        )


def _plan(
    *, settings: Settings, training: TrainingSet, seed: int, n_splits: int
) -> registration.RetrainRun:
    """The retrain's split of its examples (before anything is logged)."""
    train, holdout, kind = selection.split_holdout(
        examples=training.examples, classes=training.classes, seed=seed, n_splits=n_splits
    )
    return registration.RetrainRun(
        settings=settings,
        training=training,
        train=train,
        holdout=holdout,
        kind=kind,
        fingerprint=selection.fingerprint(training.examples),
    )


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

    _require_examples(training)
    from lof.governance import groups as student_groups

    groups = student_groups.load(settings)  # a malformed groups file is refused before any work
    run = _plan(settings=settings, training=training, seed=seed, n_splits=n_splits)
    train, holdout = run.train, run.holdout
    candidates = lof_model.make_candidates(
        seed=seed, mlp_max_iter=mlp_max_iter, names=candidate_names
    )

    registry.use_tracking_server(settings)
    experiment_id = tracking.ensure_experiment(settings=settings, name=RETRAIN_EXPERIMENT)
    run_name = f"retrain-{tracking.semester_label(training.semesters)}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as parent:
        registration.log_setup(run=run, candidates=candidates, n_splits=n_splits)
        from lof.training.feedback import log_feedback_metrics

        log_feedback_metrics(settings=settings)  # teachers' verdicts on the models in use
        from lof.training.outcomes import log_outcome_reports

        # did acting on warnings help
        outcome_reports = log_outcome_reports(settings=settings, training=training)
        registration.log_inputs(run=run)
        results = selection.compare_candidates(
            train=train,
            holdout=holdout,
            candidates=candidates,
            settings=settings,
            n_splits=n_splits,
            seed=seed,
        )
        registration.log_candidates(
            run=run, results=results, candidates=candidates, experiment_id=experiment_id
        )
        chosen = lof_model.select_candidate({name: r["cv"] for name, r in results.items()})
        comparison = selection.comparison(results)
        best = results[chosen]
        registration.log_choice(comparison=comparison, chosen=chosen, best=best)

        final = _refit(run=run, estimator=candidates[chosen], best=best, n_splits=n_splits)
        fits = registration.log_fits(run=run, final=final, chosen=chosen, best=best)
        tags = registration.version_tags(
            run=run, results=results, chosen=chosen, final=final, fits=fits
        )
        description = registration.version_description(
            run=run, results=results, chosen=chosen, final=final
        )
        version = registration.register(
            run=run, fits=fits, run_id=parent.info.run_id, tags=tags, description=description
        )
        card = _evaluate_by_group(
            run=run, results=results, chosen=chosen, final=final, version=version,
            run_id=parent.info.run_id, groups=groups, seed=seed,
            outcomes=[f"Semester {r.semester}: {r.message}" for r in outcome_reports],
        )  # fmt: skip
    result = _result(
        run=run,
        version=version,
        chosen=chosen,
        comparison=comparison,
        holdout=best["holdout"],
        final=final,
        run_id=parent.info.run_id,
    )
    result.mlflow_url = tracking.ui_url(
        settings=settings, experiment_id=experiment_id, run_id=parent.info.run_id
    )
    result.model_card = card
    return result


def _evaluate_by_group(
    *,
    run: registration.RetrainRun,
    results: dict[str, selection.CandidateResult],
    chosen: str,
    final: lof_model.RiskModel,
    version: str,
    run_id: str,
    groups: StudentGroups | None,
    seed: int,
    outcomes: Sequence[str],
) -> str:
    """The per-group metrics and the model card, after registration: the version stands even
    if they cannot be written (the warning says so)."""
    from lof.training import model_card

    try:
        return model_card.log_evaluation(
            run=run,
            results=results,
            chosen=chosen,
            final=final,
            version=version,
            run_id=run_id,
            student_groups=groups,
            seed=seed,
            outcomes=outcomes,
        )
    except Exception as exc:
        if isinstance(exc, LofError) or mlflow_unavailable(exc):
            log.warning("version %s registered without its model card: %s", version, exc)
            return ""
        raise


def _refit(
    *,
    run: registration.RetrainRun,
    estimator: BaseEstimator,
    best: selection.CandidateResult,
    n_splits: int,
) -> lof_model.RiskModel:
    """The registered fit: the chosen candidate on every example, holdout included (its
    out-of-fold predictions reused when there is no holdout)."""
    oof = None if len(run.holdout) else (run.evaluated.reset_index(drop=True), best["oof_proba"])
    return selection.refit_on_everything(
        estimator=estimator,
        examples=run.examples,
        settings=run.settings,
        n_splits=n_splits,
        oof=oof,
    )


def _result(
    *,
    run: registration.RetrainRun,
    version: str,
    chosen: str,
    comparison: pd.DataFrame,
    holdout: dict[str, float],
    final: lof_model.RiskModel,
    run_id: str,
) -> RetrainResult:
    training = run.training
    return RetrainResult(
        version=version,
        candidate=chosen,
        comparison=comparison,
        holdout_kind=run.kind,
        semesters=list(training.semesters),
        run_id=run_id,
        metrics=dict(holdout),
        n_examples=len(run.examples),
        n_classes=int(training.classes["class_id"].nunique()),
        legacy_rows=training.legacy_rows,
        threshold=final.threshold,
        training_class_ids=run.all_ids,
        holdout_class_ids=run.holdout_ids,
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
