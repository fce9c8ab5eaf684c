"""The training set of a retrain: examples that mirror scoring, their labels, the legacy file.

Examples are built the way the daily flow scores: for each finished class, the 13 features and
the early-warning signals (``lof.scoring.raw_features``) as they stood at the end of the days
10%, 25%, 50%, 75% and 100% through the class's activity window, scaled within the class's
cohort at that point by ``lof.features.definitions``. For a day the daily
flow scored, the features it stored with its predictions are read back (what was served);
older days are reconstructed from the features store or Amplitude and LEB2, as of the retrain's
``as_of`` day (rows deleted after it count as present).

Every cohort member of a finished class is an example, labelled with the final ulti level
(``LOF_LABEL_RULE``); a member without any assessed record gets level 1 (not submitting is not
attaining), except a *visitor*: no record and at most ``LOF_VISITOR_MAX_VIEWS`` class page
views over the whole class, who is left out (see ``leb2.cohort_labels``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from lof import scoring
from lof.core.calendar import end_of_day, today_local
from lof.core.config import Settings
from lof.core.errors import DataError
from lof.core.progress import count_bar
from lof.features import definitions as feat
from lof.features import signals, state
from lof.features.definitions import FEATURES, LEVELS
from lof.features.signals import SIGNALS
from lof.governance import optout
from lof.governance.optout import NO_EXCLUSIONS, Exclusions
from lof.legacy import FORMER_TO_LOF, TARGET_COLUMNS
from lof.model import outcome as lof_model
from lof.sources import amplitude, leb2
from lof.stores.base import FeatureStore, PredictionStore

log = logging.getLogger(__name__)

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


def snapshot_days(*, first_day: date, last_day: date) -> dict[float, date]:
    """The day at which each progress point of the class's activity window is reached."""
    span = max((last_day - first_day).days, 0)
    return {
        p: first_day + timedelta(days=math.ceil(round(p * span, 6)))
        for p in lof_model.PROGRESS_POINTS
    }


def default_semesters(*, engine: Engine, as_of: date) -> list[str]:
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


def pick_classes(*, engine: Engine, semesters: Sequence[str], as_of: date) -> pd.DataFrame:
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
    *, settings: Settings, feature_store: FeatureStore | None, day: date, class_ids: list[int]
) -> tuple[pd.DataFrame, bool]:
    """The day's engagement increment: the features store's when it has the day, else Amplitude."""
    if feature_store is not None and feature_store.is_complete(day=day):
        return feature_store.read_increments(day=day, class_ids=class_ids), True
    return amplitude.day_increments(settings=settings, day=day, class_ids=class_ids), False


def stored_snapshots(
    *,
    prediction_store: PredictionStore | None,
    due: list[tuple[int, float]],
    day: date,
    stored_days: dict,
) -> dict[int, pd.DataFrame]:
    """Raw inputs the daily flow stored for ``day`` (class_id -> frame), for the due classes
    it scored that day: the 13 features and the signals it stored (a record from before it
    stored them has the 13 only): training then sees exactly what was served."""
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
                    **{
                        name: float(r["features"][name])
                        for name in signals.SIGNALS
                        if name in r["features"]
                    },
                }
                for r in records
            ]
        )
        out[class_id] = frame
    return out


def _day_plan(
    classes: pd.DataFrame,
) -> tuple[dict[int, tuple[date, date]], dict[date, list[tuple[int, float]]], list[date]]:
    """Each class's activity window, the (class, progress point) snapshots due on each day,
    and every day any class is active, in order."""
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
    return window, by_day, days


def build_examples(
    *,
    settings: Settings,
    engine: Engine,
    classes: pd.DataFrame,
    as_of: date,
    feature_store: FeatureStore | None = None,
    prediction_store: PredictionStore | None = None,
    progress: Callable[[int, int], None] | None = None,
    exclusions: Exclusions = NO_EXCLUSIONS,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Scaled, labelled examples at every progress point of every class (one pass over days);
    opted-out students (``exclusions``) are out of each cohort before it is scaled."""
    window, by_day, days = _day_plan(classes)
    counts = {
        "days_from_store": 0,
        "days_from_amplitude": 0,
        "examples_from_predictions": 0,
        "examples_reconstructed": 0,
    }
    cutoff = _as_of_cutoff(as_of)
    states: dict[int, state.ClassRows] = {}
    snapshots: list[pd.DataFrame] = []
    stored_days: dict[int, set[date]] = {}
    for n, day in enumerate(days):
        active = sorted(c for c, (first, last) in window.items() if first <= day <= last)
        increment, stored = _increment(
            settings=settings, feature_store=feature_store, day=day, class_ids=active
        )
        counts["days_from_store" if stored else "days_from_amplitude"] += 1
        increment = signals.stamp_increment(increment[increment["class_id"].isin(active)], day=day)
        states = state.accumulate(
            states, state.split_frame(increment, what=f"the increment of {day}")
        )
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
                exclusions=exclusions,
            ):
                snapshots.append(part)
        finished = [c for c in active if window[c][1] == day]
        if finished:
            states = {c: rows for c, rows in states.items() if c not in finished}
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
    engine: Engine,
    states: Mapping[int, state.ClassRows],
    day: date,
    due: list[tuple[int, float]],
    served: dict[int, pd.DataFrame] | None = None,
    deleted_before: datetime | None = None,
    exclusions: Exclusions = NO_EXCLUSIONS,
) -> list[pd.DataFrame]:
    """Each due class's cohort features at the end of ``day``, scaled within the class.

    A class the daily flow scored that day (``served``) uses the raw inputs it stored; a
    signal its records lack (stored before signals were kept) is computed here; the others are
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
        states=state.to_frame({c: states[c] for c in class_ids if c in states}),
        records=records,
        class_ids=class_ids,
        day=day,
        deleted_before=deleted_before,
    )
    computed = exclusions.drop(computed)
    served = {c: exclusions.drop(frame) for c, frame in served.items()}
    keys = ["class_id", "user_id"]
    rebuilt = computed[~computed["class_id"].isin(list(served))]
    raws = [rebuilt.assign(_served=False)] if len(rebuilt) else []
    for frame in served.values():
        extra = computed[[*keys, *signals.SIGNALS]]
        part = frame.merge(extra, on=keys, how="left", suffixes=("_stored", ""))
        for name in signals.SIGNALS:  # the served value where the store has it
            if f"{name}_stored" in part.columns:
                part[name] = part.pop(f"{name}_stored").fillna(part[name])
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
    engine: Engine,
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
    """Rows of a training file as retrain examples (``class_id`` -1, progress 1.0).

    Either system's header: lof's 13 names or the former ``N_`` names; the level in
    ``Target`` or ``maxlevel``; an unnamed first column (the former files' index) is dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"dataset file {path} does not exist; pass an existing --dataset file")
    try:
        frame = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    except Exception as exc:
        raise DataError(
            f"dataset file {path} cannot be read ({type(exc).__name__}); expected CSV or parquet "
            "with a Target (or maxlevel) column and the 13 features"
        ) from None
    frame = frame.loc[:, [not str(c).startswith("Unnamed: ") and str(c) != "" for c in frame]]
    frame = frame.rename(columns={c: FORMER_TO_LOF[c] for c in frame.columns if c in FORMER_TO_LOF})
    targets = [c for c in TARGET_COLUMNS if c in frame.columns]
    target = targets[0] if targets else TARGET_COLUMNS[0]
    missing = [c for c in (target, *FEATURES) if c not in frame.columns]
    if missing:
        raise DataError(
            f"dataset file {path} lacks column(s) {', '.join(missing)}; expected Target or "
            "maxlevel and the 13 features by lof name or former N_ name"
        )
    if len(targets) > 1:
        raise DataError(
            f"dataset file {path} has both Target and maxlevel columns; keep the one to train on"
        )
    values = frame[list(FEATURES)].apply(pd.to_numeric, errors="coerce")
    level = pd.to_numeric(frame[target], errors="coerce")
    bad = values.isna().any(axis=1) | ~level.isin(list(LEVELS))
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"dataset file {path}: {int(bad.sum())} row(s) have a non-numeric feature or a "
            f"{target} outside 1-5, first at data row {first + 1}; fix or drop them"
        )
    out = values.astype(float)
    out.insert(0, "progress", 1.0)
    out.insert(0, "semester", "legacy")
    out.insert(0, "user_id", np.arange(len(frame), dtype="int64"))
    out.insert(0, "class_id", LEGACY_CLASS_ID)
    out["label"] = level.astype("int64")
    for name in SIGNALS:  # a former file has the 13 only: a retrain with it trains on those
        out[name] = np.nan
    out["required_level"] = 0  # unknown: dataset rows are only ever trained on, never scored
    return out[list(EXAMPLE_COLUMNS)].reset_index(drop=True)


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
    exclusions = optout.load(settings)
    with count_bar(progress, what="building training examples") as advance:
        examples, counts = build_examples(
            settings=settings,
            engine=engine,
            classes=classes,
            as_of=as_of,
            feature_store=feature_store,
            prediction_store=prediction_store,
            progress=advance,
            exclusions=exclusions,
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
