"""Retraining: examples that mirror scoring, candidates compared on risk, the winner refitted.

Examples are built the way the daily flow scores: for each finished class, the 13 features and
the early-warning signals (``lof.scoring.raw_features``) as they stood at the end of the days
10%, 25%, 50%, 75% and 100% through the class's activity window, scaled within the class's
cohort at that point by ``lof.features``. For a day the daily
flow scored, the features it stored with its predictions are read back (what was served);
older days are reconstructed from the features store or Amplitude and LEB2, as of the retrain's
``as_of`` day (rows deleted after it count as present).

Every cohort member of a finished class is an example, labelled with the final ulti level
(``LOF_LABEL_RULE``); a member without any assessed record gets level 1 (not submitting is not
attaining), except a *visitor*: no record and at most ``LOF_VISITOR_MAX_VIEWS`` class page
views over the whole class, who is left out (see ``leb2.cohort_labels``).

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lof import drift, registry, scoring, signals, tracking
from lof import features as feat
from lof import model as lof_model
from lof.calendar import end_of_day, format_day, today_local
from lof.config import Settings
from lof.errors import DataError, LofError, ModelError
from lof.progress import count_bar
from lof.sources import amplitude, leb2

log = logging.getLogger(__name__)

RETRAIN_EXPERIMENT = "lof-retrain"
LEGACY_TARGET = "Target"
LEGACY_CLASS_ID = -1
EXAMPLE_COLUMNS: tuple[str, ...] = (
    "class_id",
    "user_id",
    "semester",
    "progress",
    *feat.FEATURES,
    *signals.SIGNALS,
    "label",
    "required_level",
)
HOLDOUT_COLUMNS: tuple[str, ...] = (
    "class_id",
    "user_id",
    "progress",
    *feat.FEATURES,
    *signals.SIGNALS,
    "label",
    "required_level",
)
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
class TrainingSet:
    """The examples of a retrain and where they came from."""

    examples: pd.DataFrame
    classes: pd.DataFrame
    semesters: list[str]
    as_of: date
    legacy_rows: int = 0
    days_from_store: int = 0
    days_from_amplitude: int = 0
    examples_from_predictions: int = 0
    examples_reconstructed: int = 0
    students_without_record: int = 0
    visitors_left_out: int = 0

    def sources(self) -> dict[str, int]:
        """How many examples (and days) came from each source, for logs and MLflow."""
        return {
            "examples_from_predictions": self.examples_from_predictions,
            "examples_reconstructed": self.examples_reconstructed,
            "days_from_store": self.days_from_store,
            "days_from_amplitude": self.days_from_amplitude,
            "students_without_record": self.students_without_record,
            "visitors_left_out": self.visitors_left_out,
            "legacy_rows": self.legacy_rows,
        }


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


# --- examples ---------------------------------------------------------------------------------


def snapshot_days(*, first_day: date, last_day: date) -> dict[float, date]:
    """The day at which each progress point of the class's activity window is reached."""
    span = max((last_day - first_day).days, 0)
    return {
        p: first_day + timedelta(days=math.ceil(round(p * span, 6)))
        for p in lof_model.PROGRESS_POINTS
    }


def default_semesters(*, engine: Any, as_of: date) -> list[str]:
    """Every semester whose live activities all started and fell due before ``as_of``."""
    frame = leb2.semesters(engine)
    done = [
        str(row.slug)
        for row in frame.itertuples()
        if row.last_day is not None and not pd.isna(row.last_day) and row.last_day < as_of
    ]
    if not done:
        raise DataError(
            f"no semester in LEB2 has all its classes finished before {as_of:%Y-%m-%d}; "
            "pass --semester SLUG or a later --as-of"
        )
    return done


def _as_of_cutoff(as_of: date) -> datetime:
    return datetime.combine(as_of, time.min)


def pick_classes(*, engine: Any, semesters: Sequence[str], as_of: date) -> pd.DataFrame:
    """The finished classes of the semesters, with their required level; clear error if none."""
    classes = leb2.finished_classes(
        engine, as_of=as_of, semesters=list(semesters), point_in_time=True
    )
    empty = [s for s in semesters if s not in set(classes["semester"])]
    if empty:
        raise DataError(
            f"semester {', '.join(empty)} has no finished OBEM class with a ulti outcome and "
            f"more than one activity before {as_of:%Y-%m-%d}; leave it out of --semester "
            "or pass a later --as-of"
        )
    required = leb2.required_levels(
        engine, class_ids=classes["class_id"].tolist(), deleted_before=_as_of_cutoff(as_of)
    )
    classes = classes.merge(required, on="class_id", how="left")
    missing = classes[classes["required_level"].isna()]
    if len(missing):
        raise DataError(
            "finished class(es) "
            + ", ".join(f"{r.class_id} ({r.code}, {r.semester})" for r in missing.itertuples())
            + " have no required level (no flag=1 cri_levels row on their ulti criteria); "
            "set it in LEB2 or leave their semester out"
        )
    classes["required_level"] = classes["required_level"].astype("int64")
    classes["first_day"] = [pd.Timestamp(v).date() for v in classes["first_start"]]
    classes["last_day"] = [pd.Timestamp(v).date() for v in classes["last_day"]]
    return classes.reset_index(drop=True)


def _increment(
    *, settings: Settings, feature_store: Any, day: date, class_ids: list[int]
) -> tuple[pd.DataFrame, bool]:
    """The day's engagement increment: the features store's when it has the day, else Amplitude."""
    if feature_store is not None and feature_store.is_complete(day=day):
        return feature_store.read_increments(day=day, class_ids=class_ids), True
    return amplitude.day_increments(settings=settings, day=day, class_ids=class_ids), False


def stored_snapshots(
    *, prediction_store: Any, due: list[tuple[int, float]], day: date, stored_days: dict
) -> dict[int, pd.DataFrame]:
    """Raw features the daily flow stored for ``day`` (class_id -> frame), for the due classes
    it scored that day: training then sees exactly what was served."""
    out: dict[int, pd.DataFrame] = {}
    if prediction_store is None:
        return out
    for class_id, _ in due:
        if class_id in out:
            continue
        if class_id not in stored_days:
            stored_days[class_id] = set(prediction_store.list_days(class_id=class_id))
        if day not in stored_days[class_id]:
            continue
        records = prediction_store.read_class_day(day=day, class_id=class_id)
        if not records:
            continue
        frame = pd.DataFrame(
            [
                {
                    "class_id": int(r["class_id"]),
                    "user_id": int(r["user_id"]),
                    **{name: float(r["features"].get(name, 0.0)) for name in feat.FEATURES},
                }
                for r in records
            ]
        )
        out[class_id] = frame
    return out


def build_examples(
    *,
    settings: Settings,
    engine: Any,
    classes: pd.DataFrame,
    as_of: date,
    feature_store: Any = None,
    prediction_store: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Scaled, labelled examples at every progress point of every class (one pass over days)."""
    plans = {
        int(row.class_id): snapshot_days(first_day=row.first_day, last_day=row.last_day)
        for row in classes.itertuples()
    }
    window = {int(r.class_id): (r.first_day, r.last_day) for r in classes.itertuples()}
    by_day: dict[date, list[tuple[int, float]]] = {}
    for class_id, points in plans.items():
        for point, day in points.items():
            by_day.setdefault(day, []).append((class_id, point))
    days = sorted({d for first, last in window.values() for d in _days(first, last)})
    counts = {
        "days_from_store": 0,
        "days_from_amplitude": 0,
        "examples_from_predictions": 0,
        "examples_reconstructed": 0,
    }
    cutoff = _as_of_cutoff(as_of)
    states = feat.empty_engagement()
    snapshots: list[pd.DataFrame] = []
    stored_days: dict[int, set[date]] = {}
    for n, day in enumerate(days):
        active = sorted(c for c, (first, last) in window.items() if first <= day <= last)
        increment, stored = _increment(
            settings=settings, feature_store=feature_store, day=day, class_ids=active
        )
        counts["days_from_store" if stored else "days_from_amplitude"] += 1
        increment = signals.stamp_increment(increment[increment["class_id"].isin(active)], day=day)
        states = feat.accumulate(previous=states, increment=increment)
        if day in by_day:
            served = stored_snapshots(
                prediction_store=prediction_store,
                due=by_day[day],
                day=day,
                stored_days=stored_days,
            )
            for part in _snapshot(
                engine=engine,
                states=states,
                day=day,
                due=by_day[day],
                served=served,
                deleted_before=cutoff,
            ):
                snapshots.append(part)
        finished = [c for c in active if window[c][1] == day]
        if finished:
            states = states[~states["class_id"].isin(finished)].reset_index(drop=True)
        if progress is not None:
            progress(n + 1, len(days))
    if not snapshots:
        return pd.DataFrame(columns=list(EXAMPLE_COLUMNS)), counts
    scaled = pd.concat(snapshots, ignore_index=True)
    examples, label_counts = _label(
        engine=engine, settings=settings, scaled=scaled, classes=classes, as_of=as_of
    )
    counts.update(label_counts)
    return examples, counts


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _snapshot(
    *,
    engine: Any,
    states: pd.DataFrame,
    day: date,
    due: list[tuple[int, float]],
    served: dict[int, pd.DataFrame] | None = None,
    deleted_before: datetime | None = None,
) -> list[pd.DataFrame]:
    """Each due class's cohort features at the end of ``day``, scaled within the class.

    A class the daily flow scored that day (``served``) uses the 13 raw features it stored,
    with the early-warning signals computed here (the store keeps only the 13); the others are
    reconstructed through ``scoring.raw_features``, the daily flow's path. ``_views`` keeps the
    raw class page views (visitor rule).
    """
    served = served or {}
    class_ids = sorted({c for c, _ in due})
    records = leb2.assessed_records(
        engine, class_ids=class_ids, until=end_of_day(day), deleted_before=deleted_before
    )
    computed = scoring.raw_features(
        engine=engine,
        states=states[states["class_id"].isin(class_ids)],
        records=records,
        class_ids=class_ids,
        day=day,
        deleted_before=deleted_before,
    )
    keys = ["class_id", "user_id"]
    rebuilt = computed[~computed["class_id"].isin(list(served))]
    raws = [rebuilt.assign(_served=False)] if len(rebuilt) else []
    for frame in served.values():
        extra = computed[[*keys, *signals.SIGNALS]]
        part = frame.merge(extra, on=keys, how="left")
        # A served student the reconstruction does not see (a row deleted since) gets the
        # class's typical signals, so one such row does not take the signals out of training.
        medians = extra[extra["class_id"].isin(part["class_id"])][list(signals.SIGNALS)].median()
        part[list(signals.SIGNALS)] = part[list(signals.SIGNALS)].fillna(medians).fillna(0.0)
        raws.append(part.assign(_served=True))
    out = []
    for class_id, point in due:
        raw = next((r for r in raws if (r["class_id"] == class_id).any()), None)
        if raw is None:
            continue
        part = raw[raw["class_id"] == class_id]
        columns = ["class_id", "user_id", *feat.FEATURES, *signals.SIGNALS]
        scaled = feat.scale_within_class(features=part[columns])
        scaled = scaled.merge(
            part[["class_id", "user_id", "class_view_count"]].rename(
                columns={"class_view_count": "_views"}
            ),
            on=["class_id", "user_id"],
            how="left",
        )
        scaled["progress"] = point
        scaled["_served"] = bool(part["_served"].iloc[0])
        out.append(scaled)
    return out


def _label(
    *,
    engine: Any,
    settings: Settings,
    scaled: pd.DataFrame,
    classes: pd.DataFrame,
    as_of: date,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Every cohort member a label (``leb2.cohort_labels``); visitors left out."""
    class_ids = classes["class_id"].tolist()
    cutoff = _as_of_cutoff(as_of)
    labels = leb2.final_levels(
        engine,
        class_ids=class_ids,
        rule=settings.label_rule,
        until=cutoff,
        deleted_before=cutoff,
    )
    unlabelled = sorted(set(class_ids) - set(labels["class_id"]))
    if unlabelled:
        named = classes[classes["class_id"].isin(unlabelled)]
        raise DataError(
            "finished class(es) "
            + ", ".join(f"{r.class_id} ({r.code}, {r.semester})" for r in named.itertuples())
            + f" have no labels: no assessed record on their ulti outcome before {as_of:%Y-%m-%d};"
            " record the levels in LEB2 or leave their semester out"
        )
    keys = ["class_id", "user_id"]
    views = scaled.groupby(keys)["_views"].max().fillna(0)
    cohort = views.reset_index()[keys]
    labelled = leb2.cohort_labels(
        cohort=cohort,
        labels=labels,
        class_views=views,
        visitor_max_views=settings.visitor_max_views,
    )
    examples = scaled.drop(columns=["_views"]).merge(labelled[[*keys, "label"]], on=keys)
    served = int(examples["_served"].sum())
    counts = {
        "students_without_record": int((~labelled["has_record"]).sum()),
        "visitors_left_out": int(len(cohort) - len(labelled)),
        "examples_from_predictions": served,
        "examples_reconstructed": len(examples) - served,
    }
    examples = examples.merge(
        classes[["class_id", "semester", "required_level"]], on="class_id", how="left"
    )
    examples["label"] = examples["label"].astype("int64")
    examples = examples.sort_values(["class_id", "progress", "user_id"], kind="stable")
    return examples[list(EXAMPLE_COLUMNS)].reset_index(drop=True), counts


def read_legacy_dataset(path: str | Path) -> pd.DataFrame:
    """Rows of a training file, lof's or the former system's (see ``lof.legacy.read_dataset``)."""
    from lof import legacy

    return legacy.read_dataset(path)


def build_training_set(
    *,
    settings: Settings,
    semesters: Sequence[str] | None,
    as_of: date | None,
    dataset: str | Path | None = None,
    progress: bool = False,
) -> TrainingSet:
    """Everything from LEB2, the stores and Amplitude that a retrain trains on."""
    from lof.stores import open_feature_store, open_prediction_store

    as_of = as_of or today_local(settings.tz)
    engine = leb2.connect(settings.leb2_url)
    chosen = list(semesters) if semesters else default_semesters(engine=engine, as_of=as_of)
    legacy = read_legacy_dataset(dataset) if dataset else None
    classes = pick_classes(engine=engine, semesters=chosen, as_of=as_of)
    feature_store = open_feature_store(settings.store_url)
    prediction_store = open_prediction_store(settings.store_url)
    with count_bar(progress, what="building training examples") as advance:
        examples, counts = build_examples(
            settings=settings,
            engine=engine,
            classes=classes,
            as_of=as_of,
            feature_store=feature_store,
            prediction_store=prediction_store,
            progress=advance,
        )
    if legacy is not None:
        examples = pd.concat([examples, legacy], ignore_index=True)
    training = TrainingSet(
        examples=examples,
        classes=classes,
        semesters=chosen,
        as_of=as_of,
        legacy_rows=0 if legacy is None else len(legacy),
        **counts,
    )
    log.info("training examples by source: %s", training.sources())
    return training


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
        lof_model.plot_confusion(
            labels=labels, proba=proba, title=title, path=folder / "confusion_matrix.png"
        )
        lof_model.plot_metrics_by_progress(
            metrics=metrics, title=title, path=folder / "metrics_by_progress.png"
        )
        lof_model.plot_calibration(
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

    registry.use_tracking_server(settings)
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
