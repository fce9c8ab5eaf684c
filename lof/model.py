"""The outcome model: candidates, predictions, evaluation, selection and plots.

A model is a scikit-learn estimator (a ``Pipeline``) fitted on a frame of the 13 scaled
``FEATURES`` in that column order; ``predict_proba`` columns follow ``classes_`` (levels 1-5,
possibly a subset when a level never occurred in training). Everything here is plain functions
on pandas frames and numpy arrays, shared by the retrain flow, the daily flow and the promote
gate, so the numbers the gate compares are computed the way retrain computed them.

Selection rule (``select_candidate``): the candidate with the highest grouped-CV macro-F1 at
the 50% progress point wins (mid-course is when a teacher can still act, and macro-F1 weighs the
rare low levels as much as the common ones); candidates within ``SELECTION_TOLERANCE`` of the
best (default 0: exact ties only) are tied and the tie goes to the lowest log loss (better
calibrated probabilities make ``risk_prob`` more trustworthy), then to the earlier candidate in
``CANDIDATE_ORDER`` (simpler first).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lof.errors import DataError, ModelError
from lof.features import FEATURES, LEVELS
from lof.signals import SIGNALS

PROGRESS_POINTS: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
SELECTION_METRIC = "macro_f1_at_50"
SELECTION_TOLERANCE = 0.0
BASELINE = "mlp_baseline"
CANDIDATE_ORDER: tuple[str, ...] = ("logreg", "hist_gb", "hist_gb_calibrated", BASELINE)
PREDICTION_OUTPUT: tuple[str, ...] = (
    "class_id",
    "user_id",
    "predicted_label",
    "predicted_prob",
    "risk_prob",
    "at_risk",
    "required_level",
)
METRICS: tuple[str, ...] = (
    "macro_f1",
    "balanced_accuracy",
    "at_risk_recall",
    "at_risk_precision",
    "brier",
    "risk_brier",
    "log_loss",
)
LOWER_IS_BETTER = frozenset({"brier", "risk_brier", "log_loss"})
FIT_THREADS = 1


# --- candidates -------------------------------------------------------------------------------


def make_candidates(
    *, seed: int = 0, mlp_max_iter: int = 200, names: Sequence[str] | None = None
) -> dict[str, Any]:
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
        "logreg": lambda: LogisticRegression(C=10.0, class_weight="balanced", max_iter=3000),
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


def fit(*, estimator: Any, examples: pd.DataFrame) -> Any:
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
    with warnings.catch_warnings(), _threads():
        warnings.simplefilter("ignore", category=UserWarning)
        _ignore_convergence_warnings()
        fitted.fit(examples[training_features(examples)].astype(float), labels)
    return fitted


def training_features(examples: pd.DataFrame) -> list[str]:
    """The 13 FEATURES, then the early-warning SIGNALS the examples hold for every row (a
    legacy dataset has none, so a retrain with it trains on the 13)."""
    present = [s for s in SIGNALS if s in examples.columns and examples[s].notna().all()]
    return [*FEATURES, *present]


def input_features(model: Any) -> list[str]:
    """The columns the model takes, in order: the names it was fitted with, else the 13 (a
    model fitted on bare arrays, such as the legacy pickle)."""
    names = getattr(model, "feature_names_in_", None)
    return [str(n) for n in names] if names is not None else list(FEATURES)


def _threads() -> Any:
    """One OpenMP/BLAS thread per fit: on shared hosts more threads than free cores make
    histogram boosting several times slower, and candidates and folds already run in turn."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=FIT_THREADS)


def _uncalibrated(pipeline: Any) -> Any:
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    inner = pipeline.steps[-1][1].estimator
    return Pipeline([("model", clone(inner))])


def _ignore_convergence_warnings() -> None:
    from sklearn.exceptions import ConvergenceWarning

    warnings.simplefilter("ignore", category=ConvergenceWarning)


# --- predictions ------------------------------------------------------------------------------


def model_classes(model: Any) -> list[int]:
    classes = getattr(model, "classes_", None)
    if classes is None:
        raise ModelError(
            f"model {type(model).__name__} has no classes_; expected a fitted classifier "
            "with predict_proba; retrain with `lof retrain`"
        )
    return [int(c) for c in classes]


def level_probabilities(*, model: Any, features: pd.DataFrame) -> np.ndarray:
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
    with warnings.catch_warnings(), _threads():
        warnings.simplefilter("ignore", category=UserWarning)
        proba = np.asarray(model.predict_proba(features[columns].astype(float)))
    for j, level in enumerate(model_classes(model)):
        if level not in LEVELS:
            raise ModelError(f"model predicts level {level}; expected levels 1-5 only")
        out[:, LEVELS.index(level)] = proba[:, j]
    return out


def risk_probabilities(proba: np.ndarray, required: np.ndarray) -> np.ndarray:
    """P(level < required level) per row."""
    levels = np.asarray(LEVELS)
    below = levels[None, :] < np.asarray(required, dtype=int)[:, None]
    return np.clip((proba * below).sum(axis=1), 0.0, 1.0)


def check_model_features(model: Any) -> None:
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
        pairs = zip(required_levels["class_id"], required_levels["required_level"], strict=True)
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
    model: Any,
    features: pd.DataFrame,
    required_levels: Mapping[int, int] | pd.DataFrame,
    threshold: float,
) -> pd.DataFrame:
    """Per student: predicted level, P(level) as {"1".."5"}, risk of ending below the class's
    required level and whether that risk reaches ``threshold``.

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
    risk = risk_probabilities(proba, required)
    labels = np.asarray(LEVELS)[proba.argmax(axis=1)]
    keys = [str(level) for level in LEVELS]
    return pd.DataFrame(
        {
            "class_id": class_ids.astype("int64"),
            "user_id": features["user_id"].astype("int64").to_numpy(),
            "predicted_label": labels.astype("int64"),
            "predicted_prob": [
                {k: float(p) for k, p in zip(keys, row, strict=True)} for row in proba
            ],
            "risk_prob": risk.astype(float),
            "at_risk": risk >= threshold,
            "required_level": required.astype("int64"),
        }
    )


# --- evaluation -------------------------------------------------------------------------------


def point_suffix(progress: float) -> str:
    return f"at_{round(progress * 100)}"


def score(
    *,
    labels: np.ndarray,
    proba: np.ndarray,
    required: np.ndarray,
    threshold: float = 0.5,
) -> dict[str, float]:
    """The metrics of ``METRICS`` for predicted level probabilities (columns = LEVELS)."""
    from sklearn.metrics import balanced_accuracy_score, f1_score

    labels = np.asarray(labels, dtype=int)
    required = np.asarray(required, dtype=int)
    if len(labels) == 0:
        return {name: float("nan") for name in METRICS}
    levels = np.asarray(LEVELS)
    predicted = levels[proba.argmax(axis=1)]
    onehot = (levels[None, :] == labels[:, None]).astype(float)
    risk = risk_probabilities(proba, required)
    truly = labels < required
    flagged = risk >= threshold
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        macro_f1 = f1_score(labels, predicted, average="macro", zero_division=0)
        balanced = balanced_accuracy_score(labels, predicted)
    p_true = np.clip((proba * onehot).sum(axis=1), 1e-15, 1.0)
    return {
        "macro_f1": float(macro_f1),
        "balanced_accuracy": float(balanced),
        "at_risk_recall": float((flagged & truly).sum() / truly.sum()) if truly.any() else 0.0,
        "at_risk_precision": (
            float((flagged & truly).sum() / flagged.sum()) if flagged.any() else 0.0
        ),
        "brier": float(((proba - onehot) ** 2).sum(axis=1).mean()),
        "risk_brier": float(((risk - truly.astype(float)) ** 2).mean()),
        "log_loss": float(-np.log(p_true).mean()),
    }


def score_examples(
    *, examples: pd.DataFrame, proba: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """Metrics over all examples and per progress point (``<metric>_at_50`` etc.)."""
    _require_example_columns(examples, what="evaluation examples")
    labels = examples["label"].to_numpy(dtype=int)
    required = examples["required_level"].to_numpy(dtype=int)
    metrics = score(labels=labels, proba=proba, required=required, threshold=threshold)
    if "progress" in examples.columns:
        progress = examples["progress"].to_numpy(dtype=float)
        for point in sorted(set(np.round(progress, 4))):
            mask = np.isclose(progress, point)
            part = score(
                labels=labels[mask], proba=proba[mask], required=required[mask], threshold=threshold
            )
            for name, value in part.items():
                metrics[f"{name}_{point_suffix(point)}"] = value
            metrics[f"n_{point_suffix(point)}"] = float(mask.sum())
    metrics["n"] = float(len(examples))
    return metrics


def evaluate(*, model: Any, examples: pd.DataFrame, threshold: float = 0.5) -> dict[str, float]:
    """Score a fitted model on labelled examples (e.g. a registered version's holdout)."""
    _require_example_columns(examples, what="evaluation examples")
    check_model_features(model)
    proba = level_probabilities(model=model, features=examples)
    return score_examples(examples=examples, proba=proba, threshold=threshold)


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
    estimator: Any,
    examples: pd.DataFrame,
    n_splits: int = 5,
    extra: pd.DataFrame | None = None,
) -> np.ndarray:
    """Out-of-fold P(level) with folds grouped by class: no class is in train and test.

    ``extra`` rows (e.g. a legacy dataset without classes) join every training fold.
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
    return min(tied, key=lambda n: (value(n, "log_loss", np.inf), order.get(n, len(order))))


def comparison_table(scores: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """One row per candidate: the headline metrics, for logs and the flow's artifact."""
    columns = [SELECTION_METRIC, *METRICS]
    rows = [
        {"candidate": name, **{c: metrics.get(c, float("nan")) for c in columns}}
        for name, metrics in scores.items()
    ]
    return pd.DataFrame(rows, columns=["candidate", *columns])


# --- plots ------------------------------------------------------------------------------------


def _figure(width: float = 5.0, height: float = 4.0) -> Any:
    # Figure + Agg canvas directly: no pyplot global state, no backend selection.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def plot_confusion(*, labels: np.ndarray, proba: np.ndarray, title: str, path: Path) -> Path:
    from sklearn.metrics import confusion_matrix

    predicted = np.asarray(LEVELS)[proba.argmax(axis=1)]
    matrix = confusion_matrix(labels, predicted, labels=list(LEVELS))
    figure = _figure()
    ax = figure.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    for i in range(len(LEVELS)):
        for j in range(len(LEVELS)):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(LEVELS)), [str(v) for v in LEVELS])
    ax.set_yticks(range(len(LEVELS)), [str(v) for v in LEVELS])
    ax.set_xlabel("predicted level")
    ax.set_ylabel("final level")
    ax.set_title(title)
    figure.tight_layout()
    figure.savefig(path)
    return path


def plot_metrics_by_progress(*, metrics: Mapping[str, float], title: str, path: Path) -> Path:
    """Macro-F1, balanced accuracy and at-risk recall against % of the course elapsed."""
    figure = _figure()
    ax = figure.add_subplot()
    percents = [round(p * 100) for p in PROGRESS_POINTS]
    for name in ("macro_f1", "balanced_accuracy", "at_risk_recall"):
        values = [metrics.get(f"{name}_at_{p}", float("nan")) for p in percents]
        ax.plot(percents, values, marker="o", label=name)
    ax.set_xlabel("% of course elapsed")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    return path


def plot_calibration(
    *, labels: np.ndarray, proba: np.ndarray, required: np.ndarray, title: str, path: Path
) -> Path:
    """Reliability of ``risk_prob``: observed share at risk per predicted-risk bin."""
    risk = risk_probabilities(proba, required)
    truly = (np.asarray(labels, dtype=int) < np.asarray(required, dtype=int)).astype(float)
    edges = np.linspace(0, 1, 11)
    bins = np.clip(np.digitize(risk, edges) - 1, 0, 9)
    mean_pred, observed = [], []
    for b in range(10):
        mask = bins == b
        if mask.any():
            mean_pred.append(float(risk[mask].mean()))
            observed.append(float(truly[mask].mean()))
    figure = _figure()
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    ax.plot(mean_pred, observed, marker="o", label="model")
    ax.set_xlabel("predicted risk (P(level < required))")
    ax.set_ylabel("observed share below required level")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path)
    return path
