"""The class-day body written with the predictions: what the API sends with one key lookup."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from lof.core.errors import DataError
from lof.stores import base, open_prediction_store
from tests.stores._crash import SimulatedCrash, crash_after_rows

from . import test_contract
from .test_contract import D1, D2, predictions

store_url = test_contract.store_url  # the same three backends


def test_body_is_the_class_day_as_read(store_url: str) -> None:
    store = open_prediction_store(store_url)
    before = datetime.now(UTC).replace(microsecond=0)
    store.write_day(day=D1, predictions=predictions([(1, 11, 2), (1, 10, 3), (2, 10, 4)]))
    for class_id in (1, 2):
        body = store.read_class_body(day=D1, class_id=class_id)
        assert body is not None
        assert body.plain == orjson.dumps(store.read_class_day(day=D1, class_id=class_id))
        assert before <= body.written_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert store.read_class_body(day=D1, class_id=3) is None
    assert store.read_class_body(day=D2, class_id=1) is None


def test_bodies_from_json_text_are_the_bodies_from_values() -> None:
    """The SQL store builds bodies from the JSON text it stores: same bytes, same etag."""
    frame = predictions([(1, 11, 2), (1, 10, 3), (2, 10, 4)])
    frame["reasons"] = [
        [{"feature": "avglevel", "text": "a", "direction": "raises risk", "value": float("nan"),
          "class_median": 2.5, "effect": 0.125}],
        [],
        None,
    ]  # fmt: skip
    rows = base.prediction_rows(frame)
    texts = [{**r, **{c: base.dumps(r[c]) for c in base.JSON_COLUMNS}} for r in rows]
    at = datetime(2025, 1, 6, tzinfo=UTC)
    plain = base.class_day_bodies(rows, day=D1, written_at=at)
    encoded = base.class_day_bodies(texts, day=D1, written_at=at, encoded=True)
    assert plain.keys() == encoded.keys() == {1, 2}
    for class_id, body in plain.items():
        assert encoded[class_id] == body
    assert orjson.loads(plain[1].plain)[1]["reasons"][0]["value"] is None  # NaN as null


def test_rewrite_replaces_bodies_and_their_etags(store_url: str) -> None:
    store = open_prediction_store(store_url)
    store.write_day(day=D1, predictions=predictions([(1, 10, 2), (2, 10, 4)]))
    first = store.read_class_body(day=D1, class_id=1)
    store.write_day(day=D1, predictions=predictions([(1, 10, 2), (2, 10, 4)]))
    assert store.read_class_body(day=D1, class_id=1).etag == first.etag  # same content

    store.write_day(day=D1, predictions=predictions([(1, 10, 5)]))
    second = store.read_class_body(day=D1, class_id=1)
    assert second.etag != first.etag
    assert orjson.loads(second.plain)[0]["predicted_label"] == 5
    assert store.read_class_body(day=D1, class_id=2) is None  # class gone from the day


def test_crashed_write_leaves_no_body(store_url: str) -> None:
    store = open_prediction_store(store_url)
    store.write_day(day=D1, predictions=predictions([(1, 10, 2)]))
    with crash_after_rows(store, 1), pytest.raises(SimulatedCrash):
        store.write_day(day=D2, predictions=predictions([(1, 10, 3), (1, 11, 3)]))
    assert store.read_class_body(day=D2, class_id=1) is None
    assert store.read_class_body(day=D1, class_id=1) is not None


def test_predictions_write_restores_cyclic_gc(store_url: str) -> None:
    """The write pauses cyclic collection for its own objects only: afterwards (even after a
    refused frame) the collector is as the caller had it."""
    store = open_prediction_store(store_url)
    assert gc.isenabled()
    store.write_day(day=D1, predictions=predictions([(1, 10, 2)]))
    assert gc.isenabled()
    with pytest.raises(DataError):
        store.write_day(day=D1, predictions=predictions([(1, 10, 2)]).drop(columns="risk_prob"))
    assert gc.isenabled()
    gc.disable()
    try:
        store.write_day(day=D2, predictions=predictions([(1, 10, 3)]))
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert store.read_class_body(day=D2, class_id=1) is not None
