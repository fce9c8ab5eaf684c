"""The compact features store on every backend: checkpoints, reruns, crashes, migration.

States are built the way the daily flow builds them (``lof.features.state.accumulate_frames`` over
daily increments from Amplitude-shaped events), so what is checked is what the flows rely on: any
day reads back exactly as it was written, however it is stored.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from lof.core.errors import StoreError
from lof.features import definitions as feat
from lof.features import state as feature_state
from lof.stores import base, open_feature_store
from lof.stores.compact import CHECKPOINT_EVERY, CHECKPOINTS_KEPT
from tests.stores._crash import SimulatedCrash, crash_after_rows

from . import test_contract
from .test_contract import assert_frames_equal

store_url = test_contract.store_url  # the same three backends

DAY0 = date(2023, 6, 1)
N_DAYS = 2 * CHECKPOINT_EVERY + 3


def page_load(
    *, uuid: str, user_id: int, session_id: int, class_id: int, activity_id: int
) -> dict[str, object]:
    """An Amplitude export event of an activity page."""
    return {
        "event_type": "Page Load",
        "uuid": uuid,
        "user_id": str(user_id),
        "session_id": session_id,
        "event_properties": {
            "CURRENT_URL": f"https://leb2/class/{class_id}/activity/{activity_id}/submission"
        },
    }


def history(*, days: int = N_DAYS, seed: int = 5) -> list[tuple[date, pd.DataFrame, pd.DataFrame]]:
    """(day, increment, cumulative state) of ``days`` days of 3 classes, students coming and
    going, ids repeating across days (so deltas hold only the new ones)."""
    rng = random.Random(seed)
    state = feat.empty_engagement()
    out = []
    for n in range(days):
        events = [
            page_load(
                uuid=f"{n}-{rng.random()}",
                user_id=rng.randint(1, 12),
                session_id=rng.randint(1, 40) * 10**12,
                class_id=rng.randint(1, 3),
                activity_id=rng.randint(1, 30),
            )
            for _ in range(rng.randint(20, 60))
        ]
        increment = feat.day_increment(events=events)
        state = feature_state.accumulate_frames(previous=state, increment=increment)
        out.append((DAY0 + timedelta(days=n), increment, state))
    return out


def write_all(url: str, days: list[tuple[date, pd.DataFrame, pd.DataFrame]]) -> None:
    store = open_feature_store(url)
    for day, increment, state in days:
        store.write_day(day=day, increments=increment, states=state)


def assert_reads_back(url: str, days: list[tuple[date, pd.DataFrame, pd.DataFrame]]) -> None:
    """A fresh store (nothing cached) reads every day exactly as written."""
    store = open_feature_store(url)
    for day, increment, state in days:
        assert_frames_equal(store.read_states(day=day), state)
        assert_frames_equal(store.read_increments(day=day), increment)
        assert_frames_equal(store.read_states(day=day, class_ids=[2]), state[state.class_id == 2])


def test_every_day_reads_back_exactly_after_checkpoints_are_pruned(store_url: str) -> None:
    days = history()
    write_all(store_url, days)
    assert_reads_back(store_url, days)
    store = open_feature_store(store_url)
    metas = store._days(first=None, last=date.max)
    kept = sorted(d for d, m in metas.items() if m.checkpoint)
    assert kept == [DAY0 + timedelta(days=CHECKPOINT_EVERY * k) for k in (1, 2)][-CHECKPOINTS_KEPT:]


def test_rerun_of_a_day_between_two_checkpoints_equals_the_first_run(store_url: str) -> None:
    days = history()
    write_all(store_url, days)
    store = open_feature_store(store_url)
    middle = CHECKPOINT_EVERY + CHECKPOINT_EVERY // 2
    day, increment, state = days[middle]
    before = store._days(first=None, last=date.max)
    for _ in range(2):
        store.write_day(day=day, increments=increment, states=state)
    assert_reads_back(store_url, days)
    after = store._days(first=None, last=date.max)
    assert {d: m.checkpoint for d, m in after.items()} == {
        d: m.checkpoint for d, m in before.items()
    }


def test_rewriting_a_day_differently_keeps_the_next_day_as_written(store_url: str) -> None:
    days = history()
    write_all(store_url, days)
    store = open_feature_store(store_url)
    day, increment, state = days[4]
    changed = state[state.user_id != state.user_id.iloc[0]].reset_index(drop=True)
    changed.loc[0, "class_view_count"] += 1000
    store.write_day(day=day, increments=increment, states=changed)
    expected = list(days)
    expected[4] = (day, increment, changed)
    assert_reads_back(store_url, expected)


def test_crash_mid_checkpoint_leaves_the_previous_day_readable(store_url: str) -> None:
    days = history(days=CHECKPOINT_EVERY + 1)
    write_all(store_url, days[:-1])
    store = open_feature_store(store_url)
    day, increment, state = days[-1]
    with crash_after_rows(store, 5), pytest.raises(SimulatedCrash):
        # The last day of a chain: increments, deltas, then the checkpoint blobs; crash inside.
        store.write_day(day=day, increments=increment, states=state)
    assert not store.is_complete(day=day)
    assert store.last_complete_day() == days[-2][0]
    assert store.read_states(day=day).empty
    assert_reads_back(store_url, days[:-1])

    store.write_day(day=day, increments=increment, states=state)
    assert store._meta(day).checkpoint
    assert_reads_back(store_url, days)


# --- migration --------------------------------------------------------------------------------


def _write_former_layout(url: str, days: list[tuple[date, pd.DataFrame, pd.DataFrame]]) -> None:
    """Rows exactly as the former layout stored them: a full state row per student per day."""
    if url.startswith("dynamodb://"):
        _write_former_dynamodb(url, days)
        return
    from lof.stores.sql import (
        LEGACY_FEATURE_DAYS,
        LEGACY_INCREMENTS,
        LEGACY_METADATA,
        create_store_engine,
    )

    engine = create_store_engine(url)
    LEGACY_METADATA.create_all(engine)
    with engine.begin() as conn:
        for day, increment, state in days:
            for table, frame in ((LEGACY_INCREMENTS, increment), (_legacy_states(), state)):
                rows = base.engagement_rows(frame, what="former")
                for row in rows:
                    row["day"] = day
                    row["activity_ids"] = base.encode_ids(row["activity_ids"])
                    row["session_ids"] = base.encode_ids(row["session_ids"])
                if rows:
                    conn.execute(table.insert(), rows)
            conn.execute(
                LEGACY_FEATURE_DAYS.insert(),
                {"day": day, "rows": len(increment) + len(state), "written_at": pd.Timestamp.now()},
            )
    engine.dispose()


def _legacy_states() -> sa.Table:
    from lof.stores.sql import LEGACY_STATES

    return LEGACY_STATES


def _write_former_dynamodb(url: str, days: list[tuple[date, pd.DataFrame, pd.DataFrame]]) -> None:
    from lof.features.definitions import COUNT_COLUMNS, SET_COLUMNS
    from lof.stores.dynamodb import DynamoFeatureStore

    store = DynamoFeatureStore(url)
    for n, (day, increment, state) in enumerate(days):
        gen = f"g{n}"
        classes = sorted(set(state.class_id))
        requests = []
        for part, frame in (("I", increment), ("S", state)):
            for row in base.engagement_rows(frame, what="former"):
                data = base.dumps([row[c] for c in (*COUNT_COLUMNS, *SET_COLUMNS)])
                pk = f"{part}#{row['class_id']}#{base.day_key(day)}#{gen}"
                item = {"pk": {"S": pk}, "sk": {"S": str(row["user_id"])}, "data": {"S": data}}
                requests.append({"PutRequest": {"Item": item}})
        store._batch_write(requests, what="former")
        store.client.put_item(
            TableName=store.table,
            Item={
                "pk": {"S": "DAY"},
                "sk": {"S": base.day_key(day)},
                "gen": {"S": gen},
                "classes": {"S": base.encode_ids(classes)},
                "rows": {"N": str(len(requests))},
            },
        )


def test_a_former_store_is_refused_then_migrated(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lof.cli import app

    days = history(days=CHECKPOINT_EVERY + 4)
    if not store_url.startswith("dynamodb://"):
        open_feature_store(store_url)  # creates the folder / tables a real store would have
    _write_former_layout(store_url, days)
    with pytest.raises(StoreError, match="lof migrate-store"):
        open_feature_store(store_url)

    monkeypatch.setenv("LOF_STORE_URL", store_url)
    result = CliRunner().invoke(app, ["migrate-store"])
    assert result.exit_code == 0, result.output
    assert f"converted {len(days)} day(s)" in result.output
    assert_reads_back(store_url, days)
    again = CliRunner().invoke(app, ["migrate-store"])
    assert again.exit_code == 0 and "nothing to do" in again.output
