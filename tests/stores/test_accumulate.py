"""lof's one state update (``lof.features.state.accumulate``, on per-class arrays) against the
state as docs/domain.md §2.3 defines it, student by student: counts add, id sets union, event
states merge. It must give that state, the same features, and write the same store as the frame
form, whatever the ids look like.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from lof.core.errors import DataError
from lof.features import definitions as feat
from lof.features import signals
from lof.features import state as feature_state
from lof.stores import compact, open_feature_store

from .test_compact import page_load
from .test_contract import assert_frames_equal

DAY0 = date(2024, 9, 2)


def increment_of(rng: random.Random, n: int, *, id_scale: int) -> pd.DataFrame:
    """One day's stamped increment: classes and students come and go, ids repeat across days,
    session ids grow with the day (as start times do) while activity ids do not."""
    events = [
        page_load(
            uuid=f"{n}-{rng.random()}",
            user_id=rng.randint(1, 25),
            session_id=(n * 50 + rng.randint(1, 60)) * id_scale,
            class_id=rng.choice([3, 5, 8]),
            activity_id=rng.randint(1, 40),
        )
        for _ in range(rng.randint(0, 80))
    ]
    increment = feat.day_increment(events=events)
    return signals.stamp_increment(increment, day=DAY0 + timedelta(days=n))


def reference_state(previous: pd.DataFrame, increment: pd.DataFrame) -> pd.DataFrame:
    """The state by its definition, one student at a time, in plain Python."""
    rows: dict[tuple[int, int], dict] = {}
    for frame in (previous, increment):
        for row in frame.to_dict(orient="records"):
            key = (int(row["class_id"]), int(row["user_id"]))
            if key not in rows:
                rows[key] = {**row, **{c: tuple(sorted(set(row[c]))) for c in feat.SET_COLUMNS}}
                continue
            kept = rows[key]
            for column in feat.COUNT_COLUMNS:
                kept[column] += row[column]
            for column in feat.SET_COLUMNS:
                kept[column] = tuple(sorted(set(kept[column]) | set(row[column])))
            merged = signals.merge_event_state(
                np.array([[kept[c] for c in signals.EVENT_STATE_COLUMNS]], np.int64),
                np.array([[row[c] for c in signals.EVENT_STATE_COLUMNS]], np.int64),
            )[0]
            kept.update(zip(signals.EVENT_STATE_COLUMNS, merged.tolist(), strict=True))
    ordered = [rows[key] for key in sorted(rows)]
    return pd.DataFrame(ordered, columns=list(feat.ENGAGEMENT_COLUMNS)).astype(
        {c: "int64" for c in ("class_id", "user_id", *feat.STATE_INT_COLUMNS)}
    )


@pytest.mark.parametrize("id_scale", [1, 10**12, 2**50], ids=["small", "epoch-ms", "huge"])
def test_arrays_accumulate_to_the_defined_state_and_its_features(id_scale: int) -> None:
    rng = random.Random(id_scale % 97)
    expected = feat.empty_engagement()
    array_state: dict[int, feature_state.ClassRows] = {}
    for n in range(12):
        increment = increment_of(rng, n, id_scale=id_scale)
        expected = reference_state(expected, increment)
        array_state = feature_state.accumulate(
            array_state, feature_state.split_frame(increment, what="increment")
        )
        as_frame = feature_state.to_frame(array_state)
        assert_frames_equal(as_frame, expected)
        assert_frames_equal(
            feature_state.accumulate_frames(
                previous=feature_state.to_frame(array_state), increment=None
            ),
            expected,
        )
        pd.testing.assert_frame_equal(
            feat.engagement_features(states=feature_state.summary_frame(array_state)),
            feat.engagement_features(states=as_frame),
        )
        assert signals.event_signals(
            states=feature_state.summary_frame(array_state), day=DAY0 + timedelta(days=n)
        ).equals(signals.event_signals(states=as_frame, day=DAY0 + timedelta(days=n)))


@pytest.mark.parametrize("id_scale", [1, 10**12, 2**50], ids=["small", "epoch-ms", "huge"])
def test_accumulate_carries_the_delta_the_store_would_search_for(id_scale: int) -> None:
    """A write on top of the state accumulate started from takes its delta as it is."""
    rng = random.Random(id_scale % 89)
    state: dict[int, feature_state.ClassRows] = {}
    for n in range(12):
        increment = feature_state.split_frame(increment_of(rng, n, id_scale=id_scale), what="i")
        grown = feature_state.accumulate(state, increment)
        for class_id, rows in grown.items():
            assert rows.since is not None
            grew_from, change = rows.since
            assert not change.full
            if class_id in state:  # a class new today grew from nothing any store holds
                assert grew_from() is state[class_id]
                assert compact.same_rows(change, compact.delta(state[class_id], rows))
        state = grown


def test_a_day_without_events_keeps_yesterdays_state() -> None:
    rng = random.Random(3)
    state = feature_state.accumulate(
        {}, feature_state.split_frame(increment_of(rng, 0, id_scale=1), what="i")
    )
    assert state
    again = feature_state.accumulate(state, {})
    assert again.keys() == state.keys()
    assert all(compact.same_rows(again[c], state[c]) for c in state)
    assert feature_state.summary_frame({}).empty


def test_writing_arrays_stores_what_writing_the_frame_stores(tmp_path) -> None:
    rng = random.Random(11)
    by_frame = open_feature_store(f"sqlite:///{tmp_path / 'frames.db'}")
    by_arrays = open_feature_store(f"sqlite:///{tmp_path / 'arrays.db'}")
    frame_state = feat.empty_engagement()
    for n in range(10):
        day = DAY0 + timedelta(days=n)
        increment = increment_of(rng, n, id_scale=10**12)
        frame_state = feature_state.accumulate_frames(previous=frame_state, increment=increment)
        by_frame.write_day(day=day, increments=increment, states=frame_state)
        previous = by_arrays.read_state_rows(day=day - timedelta(days=1)) if n else {}
        increment_rows = feature_state.split_frame(increment, what="increment")
        by_arrays.write_day(
            day=day,
            increments=increment_rows,
            states=feature_state.accumulate(previous, increment_rows),
        )
    for n in range(10):
        day = DAY0 + timedelta(days=n)
        fresh = open_feature_store(f"sqlite:///{tmp_path / 'arrays.db'}")
        assert_frames_equal(fresh.read_states(day=day), by_frame.read_states(day=day))
        assert_frames_equal(fresh.read_increments(day=day), by_frame.read_increments(day=day))


def test_malformed_arrays_are_refused_before_anything_is_written(tmp_path) -> None:
    store = open_feature_store(f"sqlite:///{tmp_path / 'lof.db'}")
    rows = feature_state.split_frame(
        increment_of(random.Random(1), 0, id_scale=1), what="increment"
    )
    class_id, good = next(iter(rows.items()))
    bad = feature_state.ClassRows(
        users=good.users[::-1].copy(),  # unsorted students
        counts=good.counts,
        lengths=good.lengths,
        values=good.values,
    )
    if good.n < 2:
        bad.users = np.array([2, 1], np.int64)
    with pytest.raises(DataError, match=r"features states of 20240902: malformed class arrays"):
        store.write_day(day=DAY0, increments=rows, states={class_id: bad})
    assert store.last_complete_day() is None
