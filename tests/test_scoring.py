"""Catch-up planning of the daily computation, on a real SQLite features store, and the
feature snapshot attached to each prediction."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from lof.features import definitions as feat
from lof.scoring import attach_model_and_features, days_to_fill
from lof.stores import open_feature_store
from lof.stores.records import PlainFloats

FIRST = date(2024, 1, 10)
CLASSES = pd.DataFrame({"class_id": [1], "first_start": [pd.Timestamp("2024-01-10 09:00")]})


def day(n: int) -> date:
    return FIRST + timedelta(days=n)


def store_with(tmp_path: Path, days: list[int]):
    store = open_feature_store(f"sqlite:///{tmp_path / 'lof.db'}")
    empty = feat.empty_engagement()
    for n in days:
        store.write_day(day=day(n), increments=empty, states=empty)
    return store


def test_an_empty_store_fills_from_the_classes_first_day(tmp_path: Path) -> None:
    store = store_with(tmp_path, [])
    assert days_to_fill(feature_store=store, classes=CLASSES, day=day(3)) == [
        day(0),
        day(1),
        day(2),
    ]
    assert days_to_fill(feature_store=store, classes=CLASSES, day=day(0)) == []


def test_a_store_that_is_behind_fills_after_its_last_day(tmp_path: Path) -> None:
    store = store_with(tmp_path, [0, 1])
    assert days_to_fill(feature_store=store, classes=CLASSES, day=day(4)) == [day(2), day(3)]
    assert days_to_fill(feature_store=store, classes=CLASSES, day=day(2)) == []


def test_rerunning_a_day_over_a_hole_fills_the_hole(tmp_path: Path) -> None:
    store = store_with(tmp_path, [0, 1, 4, 5, 6])
    assert days_to_fill(feature_store=store, classes=CLASSES, day=day(4)) == [day(2), day(3)]
    assert days_to_fill(feature_store=store, classes=CLASSES, day=day(6)) == []


def test_rerunning_before_the_stores_first_day_starts_at_the_class(tmp_path: Path) -> None:
    store = store_with(tmp_path, [3, 4])
    assert days_to_fill(feature_store=store, classes=CLASSES, day=day(2)) == [day(0), day(1)]
    no_classes = CLASSES.iloc[:0]
    assert days_to_fill(feature_store=store, classes=no_classes, day=day(2)) == []


def test_each_prediction_carries_its_students_raw_features_as_plain_floats() -> None:
    raw = pd.DataFrame({"class_id": [1, 1], "user_id": [7, 8]})
    for i, name in enumerate(feat.FEATURES):
        raw[name] = [i, i + 0.5]
    predictions = pd.DataFrame({"class_id": [1, 1], "user_id": [8, 7]})
    out = attach_model_and_features(predictions, raw=raw, model_name="m", model_version=3)
    snapshot = out["features"].tolist()
    assert all(type(s) is PlainFloats for s in snapshot)  # stored without a second check
    assert list(snapshot[0]) == list(feat.FEATURES)
    assert [s["avglevel"] for s in snapshot] == [12.5, 12.0]
    assert {type(v) for s in snapshot for v in s.values()} == {float}
    assert out["model_version"].tolist() == ["3", "3"]


def test_each_prediction_carries_every_signal_the_day_computed() -> None:
    from lof.features import signals

    raw = pd.DataFrame({"class_id": [1, 1], "user_id": [7, 8]})
    for i, name in enumerate([*feat.FEATURES, *signals.SIGNALS]):
        raw[name] = [i, i + 0.5]
    predictions = pd.DataFrame({"class_id": [1, 1], "user_id": [8, 7]})
    out = attach_model_and_features(predictions, raw=raw, model_name="m", model_version=3)
    snapshot = out["features"].tolist()
    assert list(snapshot[0]) == [*feat.FEATURES, *signals.SIGNALS]
    last = len(feat.FEATURES) + len(signals.SIGNALS) - 1
    assert [s["score_so_far"] for s in snapshot] == [last + 0.5, last]
