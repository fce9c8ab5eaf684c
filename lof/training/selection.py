"""Evaluation and selection: the holdout split, candidates compared on risk, the winner refitted.

Evaluation keeps classes apart. ``time``: the latest finished semester is held out when that
leaves at least 2 classes to train on; candidates are compared by grouped cross-validation on
the rest and the figures reported as holdout come from a fit that never saw it. Otherwise
``leave-one-class-out`` (or ``grouped-cv`` with more classes than folds): out-of-fold
predictions over every class serve for both. The chosen candidate is then refitted on every
example, holdout included, its risk calibrated and its at-risk threshold chosen on grouped
out-of-fold predictions (``refit_on_everything``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, NotRequired, TypedDict

import numpy as np
import pandas as pd

from lof.core.config import Settings
from lof.core.errors import DataError
from lof.model import outcome as lof_model
from lof.model.leadtime import METRIC_NAMES as LEAD_TIME_METRICS
from lof.model.leadtime import lead_time_of_examples
from lof.training.examples import LEGACY_CLASS_ID

if TYPE_CHECKING:
    from sklearn.base import BaseEstimator

    from lof.model.classifier import Classifier

KIND_TIME = "time"
KIND_LOCO = "leave-one-class-out"
KIND_GROUPED = "grouped-cv"

_SEL = lof_model.SELECTION_METRIC
SHORT_COLUMN_NAMES = {
    "candidate": "candidate",
    f"cv_{_SEL}": "cv AUC 10-50%",
    f"holdout_{_SEL}": "holdout AUC 10-50%",
    "holdout_ci_low": "CI low",
    "holdout_ci_high": "CI high",
    "holdout_risk_roc_auc_at_10": "AUC@10%",
    "holdout_risk_roc_auc_at_25": "AUC@25%",
    "holdout_lead_caught_by_25": "caught by 25%",
    "holdout_lead_median_first_flag": "first flag",
    "holdout_lead_false_alarms_at_25": "false alarms@25%",
    "holdout_risk_roc_auc_at_50": "AUC@50%",
    "holdout_risk_pr_auc_at_50": "PR-AUC@50%",
    "holdout_risk_brier_at_50": "Brier@50%",
    "holdout_risk_ece_at_50": "ECE@50%",
    "holdout_at_risk_precision_at_50": "prec@50%",
    "holdout_at_risk_recall_at_50": "recall@50%",
}
"""The comparison columns a terminal shows (the full table is in MLflow and the artifact)."""


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of the frame's content (row order and dtypes included)."""
    digest = hashlib.sha256()
    digest.update(",".join(f"{c}:{t}" for c, t in frame.dtypes.items()).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def leb2_class_ids(frame: pd.DataFrame) -> list[int]:
    """The LEB2 classes of ``frame`` (legacy-file rows have no class)."""
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


class CandidateResult(TypedDict):
    """One candidate's comparison: out-of-fold metrics, probabilities and calibration, then
    the held-out metrics (``holdout``) with the fit they come from (``model``: None when the
    out-of-fold predictions stand for the holdout) and, once logged, its nested ``run_id``."""

    cv: dict[str, float]
    oof_proba: np.ndarray
    calibration: Calibration
    holdout: NotRequired[dict[str, float]]
    model: NotRequired[Classifier | None]
    holdout_proba: NotRequired[np.ndarray]
    holdout_risk: NotRequired[np.ndarray | None]
    run_id: NotRequired[str]


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
    metrics.update(lead_time_of_examples(examples, risk=risk, threshold=cuts))
    low, high = lof_model.bootstrap_interval(examples=examples, risk=risk, seed=seed)
    metrics["ci_low"], metrics["ci_high"] = low, high
    return metrics


def compare_candidates(
    *,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    candidates: dict[str, BaseEstimator],
    settings: Settings,
    n_splits: int = 5,
    seed: int = 0,
) -> dict[str, CandidateResult]:
    """Per candidate: grouped out-of-fold metrics on ``train`` (what selection reads) and, with
    a time holdout, the metrics on it of a fit on ``train`` (calibrated on train's
    out-of-fold predictions); without one, the out-of-fold metrics stand for both."""
    scored = train[train["class_id"] != LEGACY_CLASS_ID].reset_index(drop=True)
    extra = train[train["class_id"] == LEGACY_CLASS_ID]
    out: dict[str, CandidateResult] = {}
    for name, estimator in candidates.items():
        proba = lof_model.grouped_cv_probabilities(
            estimator=estimator, examples=scored, n_splits=n_splits, extra=extra
        )
        cv = out_of_fold_metrics(examples=scored, proba=proba, settings=settings, seed=seed)
        calibration = fit_calibration(examples=scored, proba=proba, settings=settings)
        result: CandidateResult = {
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
            result.update(
                {
                    "holdout": held,
                    "model": fitted,
                    "holdout_proba": held_proba,
                    "holdout_risk": risk,
                }
            )
        else:
            result.update(
                {"holdout": cv, "model": None, "holdout_proba": proba, "holdout_risk": None}
            )
        out[name] = result
    return out


def refit_on_everything(
    *,
    estimator: BaseEstimator,
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
        training_class_ids=leb2_class_ids(examples),
    )


# the risk metrics and macro-F1, in the order of lof.model.METRICS
COMPARISON_METRICS = lof_model.METRICS[: lof_model.METRICS.index("macro_f1") + 1]


def comparison(results: dict[str, CandidateResult]) -> pd.DataFrame:
    """One row per candidate: its CV selection figures and holdout metrics by progress point."""
    rows = []
    for name, result in results.items():
        cv, held = result["cv"], result["holdout"]
        row: dict[str, str | float] = {
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
        row[f"holdout_{lof_model.MID_METRIC}"] = held.get(lof_model.MID_METRIC, np.nan)
        for name in LEAD_TIME_METRICS:
            row[f"holdout_{name}"] = held.get(name, np.nan)
        row["holdout_macro_f1"] = held.get("macro_f1", np.nan)
        row["holdout_threshold"] = held.get("threshold", np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def short_table(comparison: pd.DataFrame) -> str:
    """The comparison columns a terminal shows, as plain text."""
    shown = [c for c in SHORT_COLUMN_NAMES if c in comparison.columns]
    table = comparison[shown].rename(columns=SHORT_COLUMN_NAMES)
    return table.to_string(index=False, float_format=lambda v: f"{v:.3f}")


def markdown_table(comparison: pd.DataFrame) -> list[str]:
    """Every comparison column as the lines of a markdown table."""
    columns = list(comparison.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in comparison.itertuples(index=False):
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
