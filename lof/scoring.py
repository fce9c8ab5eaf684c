"""The daily computation: features as of day D for the ongoing classes, then predictions.

Plain functions over the adapters so they can be tested and reused without Prefect; the daily
and backfill flows only orchestrate them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from lof.core.calendar import end_of_day
from lof.core.collector import no_cycle_collection
from lof.core.config import Settings
from lof.features import definitions as feat
from lof.features import signals, state
from lof.governance.optout import NO_EXCLUSIONS, Exclusions, Found
from lof.sources import amplitude, assessed_cache, leb2
from lof.stores.base import FeatureStore
from lof.stores.records import PlainFloats


@dataclass
class DayFeatures:
    """What one day's feature update produced (nothing is written yet).

    ``states``: the cumulative state per class as arrays (``lof.features.state.ClassRows``, what
    ``FeatureStore.write_day`` takes; ``state.to_frame`` gives the engagement frame).
    """

    day: date
    classes: pd.DataFrame
    increment: pd.DataFrame
    states: dict[int, state.ClassRows]
    raw: pd.DataFrame
    scaled: pd.DataFrame
    amplitude: dict[str, str | int | float] = field(default_factory=dict)
    hidden: Found = field(default_factory=dict)
    """Per class, the pseudonyms of the opted-out students left out of the day."""


@dataclass
class DaySummary:
    """Per-class counts of one scored day, for logs, artifacts and the CLI."""

    day: date
    model_version: str
    per_class: pd.DataFrame
    metrics: dict[str, float] = field(default_factory=dict)


def first_day_needed(classes: pd.DataFrame) -> date | None:
    """The earliest local day whose events count for these classes (their first activity start)."""
    if classes.empty:
        return None
    return pd.Timestamp(classes["first_start"].min()).date()


def days_to_fill(*, feature_store: FeatureStore, classes: pd.DataFrame, day: date) -> list[date]:
    """Days before ``day`` the features store lacks, in order, so day ``day`` can build on D-1.

    Usually none (D-1 is there) or the days after the last complete one. Rerunning a past day
    over a hole, or before the store's first day, walks back to the nearest complete day (or
    the classes' first day) instead of starting the cumulative state from nothing.
    """
    first = first_day_needed(classes)
    if first is None:
        return []
    yesterday = day - timedelta(days=1)
    last = feature_store.last_complete_day()
    if last is None or last < yesterday:
        start = first if last is None else max(first, last + timedelta(days=1))
        return [start + timedelta(days=n) for n in range((day - start).days)]
    missing: list[date] = []
    past = yesterday
    while past >= first and not feature_store.is_complete(day=past):
        missing.append(past)
        past -= timedelta(days=1)
    return missing[::-1]


def compute_day_features(
    *,
    settings: Settings,
    engine: Engine,
    feature_store: FeatureStore,
    day: date,
    classes: pd.DataFrame | None = None,
    progress: bool = False,
    exclusions: Exclusions = NO_EXCLUSIONS,
) -> DayFeatures:
    """Yesterday's state + today's increment -> today's state, raw and scaled features.

    Opted-out students (``exclusions``) are taken out of each input as it arrives, so they
    are in neither the state written nor the cohort scaled and scored."""
    if classes is None:
        classes = leb2.ongoing_classes(
            engine,
            day=day,
            window_months=settings.ongoing_window_months,
            grace_days=settings.grace_days,
        )
    class_ids: list[int] = [int(c) for c in classes["class_id"]]
    if not class_ids:
        empty = feat.empty_engagement()
        no_features = pd.DataFrame(
            columns=["class_id", "user_id", *feat.FEATURES, *signals.SIGNALS]
        )
        return DayFeatures(day, classes, empty, {}, no_features, no_features)
    hidden: Found = {}
    previous = read_previous_states(feature_store=feature_store, day=day, class_ids=class_ids)
    previous = exclusions.drop_rows(previous, hidden)
    increment = amplitude.day_increments(
        settings=settings, day=day, class_ids=class_ids, progress=progress
    )
    read_counts = dict(increment.attrs.get("amplitude", {}))
    increment = exclusions.drop(increment, hidden)
    increment = only_started_classes(increment, classes=classes, day=day)
    increment = signals.stamp_increment(increment, day=day)
    states = state.accumulate(
        previous, state.split_frame(increment, what=f"the increment of {day.isoformat()}")
    )
    records, submissions = read_assessed(
        settings=settings,
        engine=engine,
        class_ids=class_ids,
        day=day,
        keep=lambda frame: exclusions.drop(frame, hidden),
    )
    raw = raw_features(
        engine=engine,
        states=state.summary_frame(states),
        records=records,
        class_ids=class_ids,
        day=day,
        started_submissions=submissions,
    )
    scaled = feat.scale_within_class(features=raw)
    return DayFeatures(day, classes, increment, states, raw, scaled, read_counts, hidden)


def read_assessed(
    *,
    settings: Settings,
    engine: Engine,
    class_ids: Collection[int],
    day: date,
    keep: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """LEB2's assessed records as of ``day`` and the latest submissions on the activities
    started by then, re-reading only the activities whose checksums changed since the last run
    (``lof.sources.assessed_cache``; the cache lives in LOF_HOME). ``keep`` filters both
    before the cache keeps them."""
    cache = assessed_cache.cache_path(home=settings.home, leb2_url=settings.leb2_url)
    return assessed_cache.read(
        engine, class_ids=class_ids, until=end_of_day(day), cache=cache, keep=keep
    )


def raw_features(
    *,
    engine: Engine,
    states: pd.DataFrame,
    records: pd.DataFrame,
    class_ids: Collection[int],
    day: date,
    deleted_before: datetime | None = None,
    started_submissions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The cohort's 13 raw features and early-warning signals: what scoring and training share
    (``deleted_before``: LEB2 as it stood then, for a retrain as of that day;
    ``started_submissions``: the latest submissions on the activities started by ``day``,
    already read with the records, ``read_assessed``)."""
    raw = feat.features_at(states=states, records=records, class_ids=class_ids)
    activities, submissions = leb2.activity_status(
        engine,
        class_ids=class_ids,
        until=end_of_day(day),
        deleted_before=deleted_before,
        started_submissions=started_submissions,
    )
    return signals.add_signals(
        raw=raw,
        states=states,
        records=records,
        activities=activities,
        submissions=submissions,
        day=day,
    )


def read_previous_states(
    *, feature_store: FeatureStore, day: date, class_ids: Collection[int]
) -> dict[int, state.ClassRows]:
    """D-1's cumulative state per class ({} when D-1 is not complete: a fresh start)."""
    yesterday = day - timedelta(days=1)
    if not feature_store.is_complete(day=yesterday):
        return {}
    return feature_store.read_state_rows(day=yesterday, class_ids=class_ids)


def only_started_classes(
    increment: pd.DataFrame, *, classes: pd.DataFrame, day: date
) -> pd.DataFrame:
    """Events count from the local day of a class's first activity start (docs/domain.md §2.3)."""
    started = {
        int(row.class_id)
        for row in classes.itertuples()
        if pd.Timestamp(row.first_start).date() <= day
    }
    return increment[increment["class_id"].isin(started)].reset_index(drop=True)


def attach_model_and_features(
    predictions: pd.DataFrame, *, raw: pd.DataFrame, model_name: str, model_version: str
) -> pd.DataFrame:
    """Add the model identity and the raw inputs of the day: the 13 features (what a teacher
    reads to see why), then every early-warning signal the day computed, as of that day, so
    a retrain reads what was served instead of recomputing it later (``lof.examples``)."""
    names = [*feat.FEATURES, *(s for s in signals.SIGNALS if s in raw.columns)]
    snapshot = raw.set_index(["class_id", "user_id"])[names]
    keys = list(zip(predictions["class_id"], predictions["user_id"], strict=True))
    values = snapshot.loc[keys].to_numpy(dtype=np.float64).tolist()
    out = predictions.copy()
    with no_cycle_collection():  # one acyclic dict per student
        out["features"] = [PlainFloats(zip(names, row, strict=True)) for row in values]
    out["model_name"] = model_name
    out["model_version"] = str(model_version)
    return out


def summarize_day(*, day: date, predictions: pd.DataFrame, model_version: str) -> DaySummary:
    """Students scored and at risk per class, and the day's metrics for MLflow."""
    if predictions.empty:
        per_class = pd.DataFrame(columns=["class_id", "students", "at_risk", "share_at_risk"])
    else:
        per_class = (
            predictions.groupby("class_id")
            .agg(students=("user_id", "nunique"), at_risk=("at_risk", "sum"))
            .reset_index()
        )
        per_class["at_risk"] = per_class["at_risk"].astype(int)
        per_class["share_at_risk"] = per_class["at_risk"] / per_class["students"]
    metrics: dict[str, float] = {
        "classes": float(len(per_class)),
        "students": float(per_class["students"].sum()) if len(per_class) else 0.0,
        "at_risk": float(per_class["at_risk"].sum()) if len(per_class) else 0.0,
    }
    metrics["share_at_risk"] = (
        metrics["at_risk"] / metrics["students"] if metrics["students"] else 0.0
    )
    return DaySummary(
        day=day, model_version=str(model_version), per_class=per_class, metrics=metrics
    )


def source_metrics(day_features: DayFeatures) -> dict[str, float]:
    """What the day's Amplitude read saw (lines, malformed, duplicates...), for operators."""
    return {
        f"amplitude.{name}": float(value)
        for name, value in day_features.amplitude.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def feature_metrics(raw: pd.DataFrame) -> dict[str, float]:
    """Mean and quartiles of each raw feature and signal, to watch for drift in MLflow."""
    metrics: dict[str, float] = {}
    if raw.empty:
        return metrics
    for name in [*feat.FEATURES, *(s for s in signals.SIGNALS if s in raw.columns)]:
        column = raw[name].astype(float)
        metrics[f"feature.{name}.mean"] = float(column.mean())
        for q in (0.25, 0.5, 0.75):
            metrics[f"feature.{name}.q{int(q * 100)}"] = float(column.quantile(q))
    return metrics
