"""The early-warning event state and the reasons in stores made before them and after.

The compact features store keeps the event state (``lof.features.signals.EVENT_STATE_COLUMNS``) with
the counts; blobs written before it (5 counts only) still read, with no dated events. A SQL
predictions table made before the reasons gets its column on first open.
"""

from __future__ import annotations

import zlib
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from lof.features import definitions as feat
from lof.features import signals
from lof.features import state as state_update
from lof.features.definitions import COUNT_COLUMNS
from lof.features.signals import EVENT_STATE_COLUMNS
from lof.stores import compact, open_feature_store, open_prediction_store
from lof.stores.sql import FEATURE_BLOBS, METADATA

from . import test_compact, test_contract
from .test_contract import assert_frames_equal

store_url = test_contract.store_url  # the same three backends
DAY = date(2023, 3, 1)


def stamped_history(days: int = 10) -> list[tuple[date, pd.DataFrame, pd.DataFrame]]:
    """Days of states built as the daily flow builds them, event state included."""
    state = feat.empty_engagement()
    out = []
    for day, increment, _ in test_compact.history(days=days):
        increment = signals.stamp_increment(increment, day=day)
        state = state_update.accumulate_frames(previous=state, increment=increment)
        out.append((day, increment, state))
    return out


def test_event_state_reads_back_exactly_on_every_backend(store_url: str) -> None:
    days = stamped_history()
    last = days[-1][2]
    assert (last["last_event_day"] > 0).all() and (last["recent_0"] > 0).any()
    test_compact.write_all(store_url, days)
    test_compact.assert_reads_back(store_url, days)


def _counts_only_blob(blob: bytes) -> bytes:
    """The same rows as the encoder before the event state wrote them (``LF1``, 5 counts)."""
    rows = compact.decode(blob)
    parts = [
        np.uint32(rows.n).tobytes(),
        np.diff(rows.users, prepend=np.int64(0)).astype("<i8").tobytes(),
        rows.counts[:, : len(COUNT_COLUMNS)].astype("<i8").tobytes(),
    ]
    for lengths, values in zip(rows.lengths, rows.values, strict=True):
        parts.append(lengths.astype("<u4").tobytes())
        parts.append(state_update.segment_diff(values, lengths).astype("<i8").tobytes())
    flags = bytes([compact.FULL if rows.full else 0])
    return compact.MAGIC_COUNTS_ONLY + flags + zlib.compress(b"".join(parts), 1)


def test_blobs_written_before_the_event_state_read_with_no_dated_events(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    days = stamped_history(days=9)
    test_compact.write_all(url, days)
    engine = open_feature_store(url).engine
    with engine.begin() as conn:
        blobs = conn.execute(sa.select(FEATURE_BLOBS)).fetchall()
        assert blobs and all(r.data[:3] == compact.MAGIC for r in blobs)
        for r in blobs:
            conn.execute(
                FEATURE_BLOBS.update()
                .where(
                    (FEATURE_BLOBS.c.day == r.day)
                    & (FEATURE_BLOBS.c.part == r.part)
                    & (FEATURE_BLOBS.c.class_id == r.class_id)
                )
                .values(data=_counts_only_blob(r.data))
            )
    zeroed = [
        (
            d,
            i.assign(**dict.fromkeys(EVENT_STATE_COLUMNS, 0)),
            s.assign(**dict.fromkeys(EVENT_STATE_COLUMNS, 0)),
        )
        for d, i, s in days
    ]
    test_compact.assert_reads_back(url, zeroed)
    # Writing on top of the former blobs keeps the new day's event state.
    store = open_feature_store(url)
    day, increment, state = days[-1]
    next_day = day + timedelta(days=1)
    store.write_day(day=next_day, increments=increment, states=state)
    assert_frames_equal(open_feature_store(url).read_states(day=next_day), state)


def old_predictions_table(url: str) -> None:
    """The predictions table as it was before the reasons, with one prediction."""
    engine = sa.create_engine(url)
    METADATA.drop_all(engine)
    old = sa.MetaData()
    for table in METADATA.sorted_tables:
        keep = [c for c in table.c if not (table.name == "lof_predictions" and c.name == "reasons")]
        sa.Table(
            table.name,
            old,
            *[
                sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
                for c in keep
            ],
        )
    old.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO lof_predictions (class_id, day, user_id, predicted_label, "
                "predicted_prob, risk_prob, at_risk, required_level, model_name, model_version, "
                "features) VALUES (1, :day, 7, 2, :prob, 0.2, false, 3, 'm', '1', :features)"
            ),
            {"day": DAY, "prob": '{"1":0.2,"2":0.8}', "features": '{"avglevel":2.0}'},
        )
        conn.execute(
            sa.text("INSERT INTO lof_prediction_days (day, rows, written_at) VALUES (:d, 1, :at)"),
            {"d": DAY, "at": "2023-03-02 00:00:00"},
        )
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    return request.getfixturevalue("postgres_url")


def test_old_predictions_table_gets_reasons_and_keeps_its_rows(url: str) -> None:
    old_predictions_table(url)
    predictions = open_prediction_store(url)
    [record] = predictions.read_class_day(day=DAY, class_id=1)
    assert record["reasons"] == [] and record["risk_prob"] == 0.2
    columns = {c["name"] for c in sa.inspect(predictions.engine).get_columns("lof_predictions")}
    assert "reasons" in columns
    # opening again changes nothing
    [again] = open_prediction_store(url).read_class_day(day=DAY, class_id=1)
    assert again == record


def test_a_state_from_before_the_early_inputs_reads_and_keeps_accumulating() -> None:
    """A blob of 13 integer columns (5 counts, last day, recent_0..6) reads with the 14-day
    window's second week, first day, active days and longest gap at 0, and the next day's
    increment joins it: first day taken as its last known day, active days counted on."""
    days = stamped_history(days=3)
    state = state_update.split_frame(days[-1][2], what="state")
    old_width = len(COUNT_COLUMNS) + 1 + 7
    older = {
        c: compact.decode(
            compact.encode(
                state_update.ClassRows(r.users, r.counts[:, :old_width].copy(), r.lengths, r.values)
            )
        )
        for c, r in state.items()
    }
    frame = state_update.to_frame(older)
    assert (frame[["first_event_day", "active_days", "longest_gap", "recent_13"]] == 0).all().all()
    last_known = frame["last_event_day"].to_numpy()
    next_day = days[-1][0] + timedelta(days=2)
    increment = signals.stamp_increment(days[0][1], day=next_day)
    after = state_update.to_frame(
        state_update.accumulate(older, state_update.split_frame(increment, what="i"))
    )
    joined = after.merge(
        frame[["class_id", "user_id", "last_event_day"]],
        on=["class_id", "user_id"],
        suffixes=("", "_before"),
    )
    pairs = set(zip(increment["class_id"], increment["user_id"], strict=True))
    keys = zip(joined["class_id"], joined["user_id"], strict=True)
    touched = pd.Series([k in pairs for k in keys]) & (joined["last_event_day_before"] > 0)
    assert touched.any()
    rows = joined[touched]
    assert (rows["first_event_day"] == rows["last_event_day_before"]).all()
    assert (rows["active_days"] == 1).all()  # the day stamped since; earlier ones unknown
    assert (rows["longest_gap"] == next_day.toordinal() - rows["last_event_day_before"] - 1).all()
    assert len(last_known) == len(frame)
