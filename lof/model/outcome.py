"""The outcome model: candidates, predictions, evaluation and selection (plots:
``lof.training.plots``).

A model is a scikit-learn estimator (a ``Pipeline``) fitted on a frame of the 13 scaled
``FEATURES`` in that column order; ``predict_proba`` columns follow ``classes_`` (levels 1-5,
possibly a subset when a level never occurred in training). Everything here is plain functions
on pandas frames and numpy arrays, shared by the retrain flow, the daily flow and the promote
gate, so the numbers the gate compares are computed the way retrain computed them.

Teachers act on ``risk_prob`` = P(final level < the class's required level) and on ``at_risk``,
so models are measured and chosen on that risk, per progress point (10/25/50/75/100% of the
course): ROC-AUC and PR-AUC of the risk against "label below required", its Brier score and
expected calibration error, at-risk precision/recall at the chosen threshold, and the macro-F1
of the predicted level.

Selection rule (``select_candidate``): the highest mean risk ROC-AUC over the 10%, 25% and
50% points, weighed alike (``risk_roc_auc_10_25_50``) wins: a warning helps most in the first
quarter of a class, and ROC-AUC does not move with the share of failing students, which differs
a lot between courses and semesters (PR-AUC does, so it is reported, not selected on).
Candidates within ``SELECTION_TOLERANCE`` are tied; the tie goes to the lowest risk Brier score
over the same points (``risk_brier_10_25_50``: the better calibrated risk), then to the earlier
candidate in ``CANDIDATE_ORDER``. The former figures over 25% and 50% (``risk_roc_auc_25_50``,
``risk_brier_25_50``) are still reported.

A registered model is a ``RiskModel``: the level model plus a calibration of the risk itself
(Platt scaling of the logit of the raw risk, fitted on grouped out-of-fold predictions) and the
at-risk threshold chosen on those out-of-fold predictions (``choose_threshold``).
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lof.core.collector import no_cycle_collection
from lof.core.errors import DataError, ModelError
from lof.features.definitions import FEATURES, LEVELS
from lof.features.signals import EARLY_SIGNALS, SIGNALS
from lof.model.classifier import Classifier
from lof.model.leadtime import lead_time_of_examples
from lof.stores.records import PREDICTION_OUTPUT, PlainFloats

if TYPE_CHECKING:
    from sklearn.base import BaseEstimator
    from sklearn.pipeline import Pipeline
    from threadpoolctl import ThreadpoolController

PROGRESS_POINTS: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 1.0)
REPORT_POINTS: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75)
SELECTION_POINTS: tuple[float, ...] = (0.1, 0.25, 0.5)
SELECTION_METRIC = "risk_roc_auc_10_25_50"
TIE_METRIC = "risk_brier_10_25_50"
MID_POINTS: tuple[float, ...] = (0.25, 0.5)
MID_METRIC = "risk_roc_auc_25_50"
MID_TIE_METRIC = "risk_brier_25_50"
SELECTION_TOLERANCE = 0.0
DEFAULT_THRESHOLD = 0.5
ECE_BINS = 10
BASELINE = "mlp_baseline"
CANDIDATE_ORDER: tuple[str, ...] = ("logreg", "hist_gb", "hist_gb_calibrated", BASELINE)
METRICS: tuple[str, ...] = (
    "risk_roc_auc",
    "risk_pr_auc",
    "risk_brier",
    "risk_ece",
    "at_risk_precision",
    "at_risk_recall",
    "macro_f1",
    "balanced_accuracy",
    "brier",
    "log_loss",
    "share_at_risk",
)
FIT_THREADS = 1


# --- candidates -------------------------------------------------------------------------------


def make_candidates(
    *, seed: int = 0, mlp_max_iter: int = 200, names: Sequence[str] | None = None
) -> dict[str, BaseEstimator]:
    """Unfitted candidate pipelines by name, in ``CANDIDATE_ORDER``.

    ``mlp_baseline`` is the former system's model (MLPClassifier on the 13 scaled features);
    the others are regularized logistic regression, histogram gradient boosting and the same
    boosting with sigmoid probability calibration.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline

    def boosting() -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(
            max_iter=80,
            learning_rate=0.1,
            max_leaf_nodes=8,
            min_samples_leaf=40,
            l2_regularization=1.0,
            class_weight="balanced",
            early_stopping=False,
            random_state=seed,
        )

    builders = {
        # No class weights: they push every risk up; the risk is calibrated on out-of-fold data.
        "logreg": lambda: LogisticRegression(C=1.0, max_iter=3000),
        "hist_gb": boosting,
        "hist_gb_calibrated": lambda: CalibratedClassifierCV(
            boosting(), method="sigmoid", cv=3, ensemble=False
        ),
        BASELINE: lambda: MLPClassifier(
            hidden_layer_sizes=(100,), max_iter=mlp_max_iter, random_state=seed
        ),
    }
    wanted = list(CANDIDATE_ORDER) if names is None else list(names)
    unknown = [n for n in wanted if n not in builders]
    if unknown:
        raise DataError(
            f"unknown candidate(s) {', '.join(unknown)}; choose from {', '.join(CANDIDATE_ORDER)}"
        )
    return {
        name: Pipeline([("model", builders[name]())]) for name in CANDIDATE_ORDER if name in wanted
    }


def fit(*, estimator: BaseEstimator, examples: pd.DataFrame) -> Classifier:
    """Fit on the scaled FEATURES (as a frame, so the model records their names) and ``label``."""
    from sklearn.base import clone

    fitted = clone(estimator)
    labels = examples["label"].astype(int).to_numpy()
    step = fitted.steps[-1][1] if hasattr(fitted, "steps") else fitted
    if type(step).__name__ == "CalibratedClassifierCV":
        # Calibration needs each level in every inner fold; with rare levels it cannot help.
        counts = np.bincount(labels)
        if len(np.unique(labels)) < 2 or counts[counts > 0].min() < 3:
            fitted = _uncalibrated(fitted)
    with warnings.catch_warnings(), limit_threads():
        warnings.simplefilter("ignore", category=UserWarning)
        _ignore_convergence_warnings()
        fitted.fit(examples[training_features(examples)].astype(float), labels)
    return fitted


MODEL_SIGNALS: tuple[str, ...] = (
    *(s for s in SIGNALS if s not in EARLY_SIGNALS),
    "longest_gap_days",
    "score_so_far",
)
"""The signals a retrain fits on: the first six, and of the early inputs those whose removal
lowered the held-out selection metric of the best candidate (``bench_inputs.py``, a university
of its own seed); the others are computed and stored, not fitted on."""


def training_features(examples: pd.DataFrame) -> list[str]:
    """The 13 FEATURES, then the ``MODEL_SIGNALS`` the examples hold for every row (a legacy
    dataset has none, so a retrain with it trains on the 13)."""
    present = [s for s in MODEL_SIGNALS if s in examples.columns and examples[s].notna().all()]
    return [*FEATURES, *present]


def input_features(model: Classifier) -> list[str]:
    """The columns the model takes, in order: the names it was fitted with, else the 13 (a
    model fitted on bare arrays, such as the legacy pickle)."""
    names = getattr(model, "feature_names_in_", None)
    return [str(n) for n in names] if names is not None else list(FEATURES)


def limit_threads() -> AbstractContextManager[object]:
    """One OpenMP/BLAS thread per fit: on shared hosts more threads than free cores make
    histogram boosting several times slower, and candidates and folds already run in turn."""
    return _thread_controller(len(sys.modules)).limit(limits=FIT_THREADS)


@functools.lru_cache(maxsize=1)
def _thread_controller(_modules_loaded: int) -> ThreadpoolController:
    """threadpoolctl's view of the loaded thread pools. Building it scans the process's
    libraries (~5 ms); it is rebuilt only when modules were imported since (a new pool)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _uncalibrated(pipeline: Pipeline) -> Pipeline:
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    inner = pipeline.steps[-1][1].estimator
    return Pipeline([("model", clone(inner))])


def _ignore_convergence_warnings() -> None:
    from sklearn.exceptions import ConvergenceWarning

    warnings.simplefilter("ignore", category=ConvergenceWarning)


# --- predictions ------------------------------------------------------------------------------


def model_classes(model: Classifier) -> list[int]:
    classes = getattr(model, "classes_", None)
    if classes is None:
        raise ModelError(
            f"model {type(model).__name__} has no classes_; expected a fitted classifier "
            "with predict_proba; retrain with `lof retrain`"
        )
    return [int(c) for c in classes]


def level_probabilities(*, model: Classifier, features: pd.DataFrame) -> np.ndarray:
    """P(level) for levels 1..5 (columns in ``LEVELS`` order; a level the model lacks is 0)."""
    out = np.zeros((len(features), len(LEVELS)))
    if len(features) == 0:
        return out
    columns = input_features(model)
    missing = [c for c in columns if c not in features.columns]
    if missing:
        raise DataError(
            f"the model takes column(s) {', '.join(missing)} the features frame lacks; "
            "build the features with lof.scoring (13 features and early-warning signals)"
        )
    with warnings.catch_warnings(), limit_threads():
        warnings.simplefilter("ignore", category=UserWarning)
        proba = np.asarray(model.predict_proba(features[columns].astype(float)))
    for j, level in enumerate(model_classes(model)):
        if level not in LEVELS:
            raise ModelError(f"model predicts level {level}; expected levels 1-5 only")
        out[:, LEVELS.index(level)] = proba[:, j]
    return out


def risk_probabilities(proba: np.ndarray, required: np.ndarray) -> np.ndarray:
    """P(level < required level) per row (the raw risk of the level probabilities)."""
    levels = np.asarray(LEVELS)
    below = levels[None, :] < np.asarray(required, dtype=int)[:, None]
    return np.clip((proba * below).sum(axis=1), 0.0, 1.0)


_EPS = 1e-4


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def calibrate(raw: np.ndarray, *, coef: float, intercept: float) -> np.ndarray:
    """Platt scaling of the raw risk: sigmoid(coef * logit(raw) + intercept)."""
    return 1.0 / (1.0 + np.exp(-(coef * _logit(raw) + intercept)))


class RiskModel:
    """A fitted level model with the calibration of its risk and its at-risk threshold.

    ``predict_proba``/``predict``/``classes_`` are the level model's, so everything that reads
    level probabilities works unchanged; ``risk`` turns them into the calibrated
    ``risk_prob`` and ``threshold`` is the at-risk cut chosen at retrain.
    """

    def __init__(
        self,
        estimator: BaseEstimator,
        *,
        coef: float = 1.0,
        intercept: float = 0.0,
        threshold: float = DEFAULT_THRESHOLD,
        training_class_ids: Sequence[int] = (),
    ) -> None:
        self.estimator = estimator
        self.coef = float(coef)
        self.intercept = float(intercept)
        self.threshold = float(threshold)
        self.training_class_ids = [int(c) for c in training_class_ids]
        self.classes_ = np.asarray(estimator.classes_)
        names = getattr(estimator, "feature_names_in_", None)
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        self.n_features_in_ = int(getattr(estimator, "n_features_in_", len(FEATURES)))

    def predict_proba(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        return self.estimator.predict_proba(features)

    def predict(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        return self.estimator.predict(features)

    def risk(self, proba: np.ndarray, required: np.ndarray) -> np.ndarray:
        raw = risk_probabilities(proba, required)
        return calibrate(raw, coef=self.coef, intercept=self.intercept)


# Registered models record this class as ``lof.model.RiskModel`` (skops and pickle store the
# class's module): the path stays that one, re-exported by ``lof.model``.
RiskModel.__module__ = "lof.model"


def model_risk(model: Classifier, proba: np.ndarray, required: np.ndarray) -> np.ndarray:
    """The model's ``risk_prob``: calibrated when the model carries a calibration."""
    if isinstance(model, RiskModel) or hasattr(model, "risk"):
        return np.asarray(model.risk(proba, required), dtype=float)
    return risk_probabilities(proba, required)


def model_threshold(model: Classifier, override: float | None = None) -> float:
    """The at-risk threshold: ``override`` (LOF_RISK_THRESHOLD) when set, else the model's
    own (chosen at retrain), else ``DEFAULT_THRESHOLD`` for models that carry none."""
    if override is not None:
        return float(override)
    value = getattr(model, "threshold", None)
    if isinstance(value, int | float) and 0.0 < float(value) < 1.0:
        return float(value)
    return DEFAULT_THRESHOLD


def fit_calibration(
    raw: np.ndarray, truth: np.ndarray, *, min_examples: int = 30
) -> tuple[float, float]:
    """(coef, intercept) of Platt scaling fitted on out-of-fold raw risks; identity (1, 0)
    with fewer than ``min_examples`` or without both outcomes (nothing to learn from)."""
    from sklearn.linear_model import LogisticRegression

    truth = np.asarray(truth, dtype=int)
    if len(truth) < max(min_examples, 2) or truth.min() == truth.max():
        return 1.0, 0.0
    fitted = LogisticRegression(C=100.0, max_iter=1000).fit(_logit(raw)[:, None], truth)
    coef = float(fitted.coef_[0, 0])
    if coef <= 0:  # a risk that ranks backwards out of fold: keep its order, drop the scale
        return 1.0, 0.0
    return coef, float(fitted.intercept_[0])


def choose_threshold(
    risk: np.ndarray, truth: np.ndarray, *, target_recall: float | None = None
) -> float:
    """The at-risk threshold chosen on out-of-fold risks.

    Default: the threshold with the best F1 of at-risk (precision and recall of "below the
    required level" weighed alike). With ``target_recall``: the highest threshold that still
    flags that share of the students who end below (fewest false alarms for that recall).
    Without both outcomes: ``DEFAULT_THRESHOLD``.
    """
    risk = np.asarray(risk, dtype=float)
    truth = np.asarray(truth, dtype=bool)
    if len(risk) == 0 or truth.all() or not truth.any():
        return DEFAULT_THRESHOLD
    candidates = np.unique(np.round(risk, 4))
    candidates = candidates[(candidates > 0.01) & (candidates < 0.99)]
    if len(candidates) == 0:
        return DEFAULT_THRESHOLD
    positives = truth.sum()
    best, best_value = DEFAULT_THRESHOLD, -1.0
    for cut in candidates:
        flagged = risk >= cut
        hits = (flagged & truth).sum()
        recall = hits / positives
        if target_recall is not None:
            if recall >= target_recall - 1e-12 and cut > best_value:
                best, best_value = float(cut), float(cut)
            continue
        precision = hits / flagged.sum() if flagged.any() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if f1 > best_value + 1e-12:
            best, best_value = float(cut), float(f1)
    return best


def check_model_features(model: Classifier) -> None:
    """ModelError unless the model expects the 13 FEATURES in their order, then possibly some
    early-warning SIGNALS (each known, once)."""
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        names = [str(n) for n in names]
        rest = names[len(FEATURES) :]
        signals_ok = all(n in SIGNALS for n in rest) and len(set(rest)) == len(rest)
        if names[: len(FEATURES)] != list(FEATURES) or not signals_ok:
            missing = [f for f in FEATURES if f not in names]
            extra = [n for n in names if n not in FEATURES and n not in SIGNALS]
            detail = (
                f"missing {missing}, unexpected {extra}"
                if missing or extra
                else "same names in another order"
            )
            raise ModelError(
                f"model expects input columns {names}, not the 13 lof features ({detail}); "
                "retrain with `lof retrain` and promote the new version"
            )
        return
    count = getattr(model, "n_features_in_", None)
    if count is not None and int(count) != len(FEATURES):
        raise ModelError(
            f"model expects {count} input columns, not the 13 lof features; "
            "retrain with `lof retrain` and promote the new version"
        )
    if not hasattr(model, "predict_proba"):
        raise ModelError(
            f"model {type(model).__name__} has no predict_proba; "
            "retrain with `lof retrain` and promote the new version"
        )


def _required_by_class(required_levels: Mapping[int, int] | pd.DataFrame) -> dict[int, int]:
    if isinstance(required_levels, pd.DataFrame):
        missing = [c for c in ("class_id", "required_level") if c not in required_levels.columns]
        if missing:
            raise DataError(
                f"required levels frame lacks column(s) {', '.join(missing)}; "
                "expected class_id, required_level"
            )
        pairs: Iterable[tuple[float, float]] = zip(
            required_levels["class_id"], required_levels["required_level"], strict=True
        )
    else:
        pairs = required_levels.items()
    out: dict[int, int] = {}
    for class_id, level in pairs:
        if level is None or pd.isna(level):
            raise DataError(
                f"class {class_id} has no required level (no flag=1 level on its ulti "
                "criteria in LEB2 cri_levels); set one in LEB2"
            )
        out[int(class_id)] = int(level)
    return out


def predict_frame(
    *,
    model: Classifier,
    features: pd.DataFrame,
    required_levels: Mapping[int, int] | pd.DataFrame,
    threshold: float | None = None,
) -> pd.DataFrame:
    """Per student: predicted level, P(level) as {"1".."5"}, risk of ending below the class's
    required level and whether that risk reaches the threshold (``threshold`` when given,
    e.g. LOF_RISK_THRESHOLD, else the model's own, see ``model_threshold``).

    ``features`` holds class_id, user_id and the scaled columns the model takes (the 13
    FEATURES, possibly signals; rows keep their order).
    """
    columns = input_features(model)
    missing = [c for c in ("class_id", "user_id", *columns) if c not in features.columns]
    if missing:
        raise DataError(
            f"features frame lacks column(s) {', '.join(missing)}; "
            "build it with lof.features.scale_within_class"
        )
    if len(features) == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PREDICTION_OUTPUT})
    values = features[columns].astype(float)
    bad = values.isna().any(axis=1) | ~np.isfinite(values.to_numpy()).all(axis=1)
    if bad.any():
        first = features.loc[bad, ["class_id", "user_id"]].iloc[0].to_dict()
        raise DataError(
            f"{int(bad.sum())} feature row(s) hold NaN or infinite values, e.g. {first}; "
            "the features must be complete (missing data counts as 0)"
        )
    by_class = _required_by_class(required_levels)
    class_ids = features["class_id"].astype(int).to_numpy()
    absent = sorted({int(c) for c in class_ids} - set(by_class))
    if absent:
        raise DataError(
            f"no required level for class(es) {absent}; every scored class needs one "
            "(flag=1 cri_levels row of its ulti criteria in LEB2)"
        )
    required = np.array([by_class[int(c)] for c in class_ids], dtype=int)
    proba = level_probabilities(model=model, features=values)
    risk = model_risk(model, proba, required)
    cut = model_threshold(model, threshold)
    labels = np.asarray(LEVELS)[proba.argmax(axis=1)]
    keys = [str(level) for level in LEVELS]
    with no_cycle_collection():  # one acyclic dict per student
        probabilities = [PlainFloats(zip(keys, row, strict=True)) for row in proba.tolist()]
    return pd.DataFrame(
        {
            "class_id": class_ids.astype("int64"),
            "user_id": features["user_id"].astype("int64").to_numpy(),
            "predicted_label": labels.astype("int64"),
            "predicted_prob": probabilities,
            "risk_prob": risk.astype(float),
            "at_risk": risk >= cut,
            "required_level": required.astype("int64"),
        }
    )


# --- evaluation -------------------------------------------------------------------------------


def point_suffix(progress: float) -> str:
    return f"at_{round(progress * 100)}"


def expected_calibration_error(risk: np.ndarray, truth: np.ndarray, bins: int = ECE_BINS) -> float:
    """Mean |predicted - observed| share over equal-width risk bins, weighted by bin size."""
    risk = np.asarray(risk, dtype=float)
    truth = np.asarray(truth, dtype=float)
    if len(risk) == 0:
        return float("nan")
    index = np.clip((risk * bins).astype(int), 0, bins - 1)
    total = 0.0
    for b in np.unique(index):
        mask = index == b
        total += mask.sum() * abs(risk[mask].mean() - truth[mask].mean())
    return float(total / len(risk))


def score(
    *,
    labels: np.ndarray,
    proba: np.ndarray,
    required: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    risk: np.ndarray | None = None,
) -> dict[str, float]:
    """The metrics of ``METRICS``; ``risk`` is the calibrated risk (default: the raw one)."""
    from sklearn.metrics import (
        average_precision_score,
        balanced_accuracy_score,
        f1_score,
        roc_auc_score,
    )

    labels = np.asarray(labels, dtype=int)
    required = np.asarray(required, dtype=int)
    if len(labels) == 0:
        return {name: float("nan") for name in METRICS}
    levels = np.asarray(LEVELS)
    predicted = levels[proba.argmax(axis=1)]
    onehot = (levels[None, :] == labels[:, None]).astype(float)
    risk = risk_probabilities(proba, required) if risk is None else np.asarray(risk, dtype=float)
    truly = labels < required
    flagged = risk >= threshold
    both = bool(truly.any() and not truly.all())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        macro_f1 = f1_score(labels, predicted, average="macro", zero_division=0)
        balanced = balanced_accuracy_score(labels, predicted)
        auc = float(roc_auc_score(truly, risk)) if both else float("nan")
        pr_auc = float(average_precision_score(truly, risk)) if both else float("nan")
    p_true = np.clip((proba * onehot).sum(axis=1), 1e-15, 1.0)
    return {
        "risk_roc_auc": auc,
        "risk_pr_auc": pr_auc,
        "risk_brier": float(((risk - truly.astype(float)) ** 2).mean()),
        "risk_ece": expected_calibration_error(risk, truly),
        "at_risk_precision": (
            float((flagged & truly).sum() / flagged.sum()) if flagged.any() else 0.0
        ),
        "at_risk_recall": float((flagged & truly).sum() / truly.sum()) if truly.any() else 0.0,
        "macro_f1": float(macro_f1),
        "balanced_accuracy": float(balanced),
        "brier": float(((proba - onehot) ** 2).sum(axis=1).mean()),
        "log_loss": float(-np.log(p_true).mean()),
        "share_at_risk": float(truly.mean()),
    }


def _mean_over_points(
    metrics: Mapping[str, float], name: str, points: Sequence[float] = SELECTION_POINTS
) -> float:
    values = [metrics.get(f"{name}_{point_suffix(p)}", float("nan")) for p in points]
    values = [v for v in values if v is not None and not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def score_examples(
    *,
    examples: pd.DataFrame,
    proba: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    risk: np.ndarray | None = None,
) -> dict[str, float]:
    """Metrics over all examples, per progress point (``<metric>_at_50`` etc.) and the
    selection metric (``risk_roc_auc_10_25_50``) with its tie-breaker (``risk_brier_10_25_50``),
    the same over 25% and 50% (``risk_roc_auc_25_50``, ``risk_brier_25_50``), and the lead time
    figures (``lof.model.leadtime``) when the examples name their students."""
    _require_example_columns(examples, what="evaluation examples")
    labels = examples["label"].to_numpy(dtype=int)
    required = examples["required_level"].to_numpy(dtype=int)
    if risk is None:
        risk = risk_probabilities(proba, required)
    risk = np.asarray(risk, dtype=float)
    metrics = score(labels=labels, proba=proba, required=required, threshold=threshold, risk=risk)
    if "progress" in examples.columns:
        progress = examples["progress"].to_numpy(dtype=float)
        for point in sorted(set(np.round(progress, 4))):
            mask = np.isclose(progress, point)
            part = score(
                labels=labels[mask],
                proba=proba[mask],
                required=required[mask],
                threshold=threshold,
                risk=risk[mask],
            )
            for name, value in part.items():
                metrics[f"{name}_{point_suffix(point)}"] = value
            metrics[f"n_{point_suffix(point)}"] = float(mask.sum())
    for metric, tie, points in (
        (SELECTION_METRIC, TIE_METRIC, SELECTION_POINTS),
        (MID_METRIC, MID_TIE_METRIC, MID_POINTS),
    ):
        metrics[metric] = _mean_over_points(metrics, "risk_roc_auc", points)
        metrics[tie] = _mean_over_points(metrics, "risk_brier", points)
        if np.isnan(metrics[metric]):  # no progress points: the overall figures
            metrics[metric] = metrics["risk_roc_auc"]
            metrics[tie] = metrics["risk_brier"]
    if {"user_id", "progress"} <= set(examples.columns):
        metrics.update(lead_time_of_examples(examples, risk=risk, threshold=threshold))
    metrics["threshold"] = float(threshold)
    metrics["n"] = float(len(examples))
    return metrics


def evaluate(
    *, model: Classifier, examples: pd.DataFrame, threshold: float | None = None
) -> dict[str, float]:
    """Score a fitted model on labelled examples with its own risk calibration and threshold
    (``threshold`` overrides the latter)."""
    _require_example_columns(examples, what="evaluation examples")
    check_model_features(model)
    proba = level_probabilities(model=model, features=examples)
    risk = model_risk(model, proba, examples["required_level"].to_numpy(dtype=int))
    return score_examples(
        examples=examples, proba=proba, threshold=model_threshold(model, threshold), risk=risk
    )


def selection_value(examples: pd.DataFrame, risk: np.ndarray) -> float:
    """``SELECTION_METRIC`` of a risk on examples (mean risk ROC-AUC at 10%, 25% and 50%)."""
    from sklearn.metrics import roc_auc_score

    truth = examples["label"].to_numpy(dtype=int) < examples["required_level"].to_numpy(dtype=int)
    progress = examples["progress"].to_numpy(dtype=float)
    values = []
    for point in SELECTION_POINTS:
        mask = np.isclose(progress, point)
        if mask.any() and truth[mask].any() and not truth[mask].all():
            values.append(roc_auc_score(truth[mask], risk[mask]))
    return float(np.mean(values)) if values else float("nan")


def bootstrap_interval(
    *,
    examples: pd.DataFrame,
    risk: np.ndarray,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.9,
) -> tuple[float, float]:
    """A class-level bootstrap interval of the selection metric: classes, not students, are
    resampled, since students of one class share its teacher, its tasks and its grading."""
    classes = examples["class_id"].to_numpy()
    ids = np.unique(classes)
    if len(ids) < 2:
        return float("nan"), float("nan")
    rows = {c: np.flatnonzero(classes == c) for c in ids}
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        picked = rng.choice(ids, size=len(ids), replace=True)
        index = np.concatenate([rows[c] for c in picked])
        value = selection_value(examples.iloc[index], np.asarray(risk)[index])
        if not np.isnan(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def cross_fitted_risk(
    *,
    raw: np.ndarray,
    truth: np.ndarray,
    groups: np.ndarray,
    min_examples: int = 30,
    target_recall: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(calibrated risk, threshold) per row, each class's from the other classes' out-of-fold
    risks only, so reported figures never use a calibration or threshold fitted on the class."""
    raw = np.asarray(raw, dtype=float)
    truth = np.asarray(truth, dtype=bool)
    groups = np.asarray(groups)
    risk = np.zeros_like(raw)
    cuts = np.zeros_like(raw)
    for g in np.unique(groups):
        mask = groups == g
        coef, intercept = fit_calibration(raw[~mask], truth[~mask], min_examples=min_examples)
        risk[mask] = calibrate(raw[mask], coef=coef, intercept=intercept)
        others = calibrate(raw[~mask], coef=coef, intercept=intercept)
        cuts[mask] = choose_threshold(others, truth[~mask], target_recall=target_recall)
    return risk, cuts


def at_risk_figures(
    *, examples: pd.DataFrame, risk: np.ndarray, cuts: np.ndarray
) -> dict[str, float]:
    """At-risk precision/recall with a per-row threshold (cross-fitted), overall and per point."""
    truth = examples["label"].to_numpy(dtype=int) < examples["required_level"].to_numpy(dtype=int)
    flagged = np.asarray(risk) >= np.asarray(cuts)
    progress = examples["progress"].to_numpy(dtype=float)
    out: dict[str, float] = {}
    for suffix, mask in [("", np.ones(len(truth), dtype=bool))] + [
        (f"_{point_suffix(p)}", np.isclose(progress, p)) for p in sorted(set(np.round(progress, 4)))
    ]:
        f, t = flagged[mask], truth[mask]
        out[f"at_risk_precision{suffix}"] = float((f & t).sum() / f.sum()) if f.any() else 0.0
        out[f"at_risk_recall{suffix}"] = float((f & t).sum() / t.sum()) if t.any() else 0.0
    return out


def _require_example_columns(examples: pd.DataFrame, *, what: str) -> None:
    needed = (*FEATURES, "label", "required_level")
    missing = [c for c in needed if c not in examples.columns]
    if missing:
        raise DataError(
            f"{what} lack column(s) {', '.join(missing)}; expected the 13 scaled features, "
            "label and required_level"
        )


def grouped_cv_probabilities(
    *,
    estimator: BaseEstimator,
    examples: pd.DataFrame,
    n_splits: int = 5,
    extra: pd.DataFrame | None = None,
) -> np.ndarray:
    """Out-of-fold P(level) with folds grouped by class: no class is in train and test.

    ``extra`` rows (e.g. a legacy dataset without classes) join every training fold. With as
    many folds as classes this is leave-one-class-out.
    """
    from sklearn.model_selection import GroupKFold

    groups = examples["class_id"].to_numpy()
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise DataError(
            f"grouped cross-validation needs at least 2 classes, got {n_groups}; "
            "train on more finished classes"
        )
    splitter = GroupKFold(n_splits=min(n_splits, n_groups))
    proba = np.zeros((len(examples), len(LEVELS)))
    for train_idx, test_idx in splitter.split(examples, groups=groups):
        part = examples.iloc[train_idx]
        if extra is not None and len(extra):
            part = pd.concat([part, extra], ignore_index=True)
        fitted = fit(estimator=estimator, examples=part)
        proba[test_idx] = level_probabilities(model=fitted, features=examples.iloc[test_idx])
    return proba


def select_candidate(
    scores: Mapping[str, Mapping[str, float]],
    *,
    metric: str = SELECTION_METRIC,
    tolerance: float = SELECTION_TOLERANCE,
    tie_metric: str = TIE_METRIC,
) -> str:
    """The winner by the module's selection rule (see the module docstring)."""
    if not scores:
        raise ModelError("no candidate was evaluated; nothing to choose from")

    def value(name: str, key: str, default: float) -> float:
        v = scores[name].get(key, default)
        return default if v is None or np.isnan(v) else float(v)

    best = max(value(n, metric, -np.inf) for n in scores)
    tied = [n for n in scores if value(n, metric, -np.inf) >= best - tolerance]
    order = {name: i for i, name in enumerate(CANDIDATE_ORDER)}
    return min(tied, key=lambda n: (value(n, tie_metric, np.inf), order.get(n, len(order))))


def comparison_table(scores: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """One row per candidate: the headline metrics, for logs and the flow's artifact."""
    columns = [SELECTION_METRIC, TIE_METRIC, *METRICS]
    rows = [
        {"candidate": name, **{c: metrics.get(c, float("nan")) for c in columns}}
        for name, metrics in scores.items()
    ]
    return pd.DataFrame(rows, columns=["candidate", *columns])
