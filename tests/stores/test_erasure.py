"""Erasure and retention of the features, predictions and feedback stores, on SQLite,
PostgreSQL, MariaDB and DynamoDB (a real moto_server).

What remains is checked by reading the raw tables (SQL rows, DynamoDB items of every
generation), not through the stores: no row, blob or body of an erased student is left, and
every other student's values (and each blob without the student) are unchanged byte for byte.
"""

from __future__ import annotations

import gzip
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from lof.features import definitions as feat
from lof.features import state as feature_state
from lof.feedback import FeedbackRecord
from lof.interventions import InterventionRecord
from lof.stores import compact, open_feature_store, open_prediction_store
from lof.stores.feedback import open_feedback_store
from lof.stores.interventions import open_intervention_store
from tests.stores.conftest import scan, sql_rows
from tests.stores.test_contract import engagement, predictions

X = 12  # the student erased; in both classes
FIRST = date(2024, 1, 1)
DAYS = [FIRST + timedelta(days=n) for n in range(10)]  # a checkpoint on the 8th day
COHORTS = {1: (11, 12, 13), 2: (12, 21)}


# --- features ---------------------------------------------------------------------------------


def feature_days() -> list[tuple[date, pd.DataFrame, pd.DataFrame]]:
    """(day, increment, cumulative state) of ten days; most students active most days."""
    rng = np.random.default_rng(5)
    state = feat.empty_engagement()
    out = []
    next_id = 1000
    for n, day in enumerate(DAYS):
        rows = []
        for class_id, users in COHORTS.items():
            for user in users:
                if rng.random() < 0.3:
                    continue
                next_id += 2
                counts = rng.integers(0, 4, 5).tolist()
                rows.append((class_id, user, *counts, (next_id,), (7 + n, next_id + 1)))
        increment = engagement(rows)
        state = feature_state.accumulate_frames(previous=state, increment=increment)
        out.append((day, increment, state))
    return out


def raw_feature_blobs(url: str) -> dict[tuple[date, str, int], bytes]:
    """Every blob in the store's table, by (day, part, class); DynamoDB items of any
    generation (a generation left behind would show as a clash)."""
    found: dict[tuple[date, str, int], bytes] = {}
    if url.startswith("dynamodb"):
        chunks: dict[tuple, list] = {}
        for item in scan(url, "features"):
            if "b" not in item:
                continue
            _, part, day, gen = item["pk"]["S"].split("#")
            class_id, chunk = item["sk"]["S"].split("#")
            key = (date.fromisoformat(f"{day[:4]}-{day[4:6]}-{day[6:]}"), part, int(class_id))
            chunks.setdefault((key, gen), []).append((chunk, bytes(item["b"]["B"])))
        for (key, _gen), parts in chunks.items():
            assert key not in found, f"two generations of {key} remain"
            found[key] = b"".join(data for _, data in sorted(parts))
        return found
    for day, part, class_id, data in sql_rows(
        url, "SELECT day, part, class_id, data FROM lof_feature_blobs"
    ):
        day = day if isinstance(day, date) else date.fromisoformat(str(day)[:10])
        found[(day, part, int(class_id))] = bytes(data)
    return found


def records(frame: pd.DataFrame, *, drop: int | None = None) -> list[dict]:
    """The frame's rows by class and user (without student ``drop``)."""
    if drop is not None:
        frame = frame[frame["user_id"] != drop]
    return frame.sort_values(["class_id", "user_id"]).to_dict(orient="records")


def test_erasing_a_student_from_the_features_store(any_store_url: str, tmp_path: Path) -> None:
    store = open_feature_store(any_store_url, state_dir=tmp_path / "cache")
    days = feature_days()
    for day, increment, state in days:
        store.write_day(day=day, increments=increment, states=state)
    day, increment, state = days[4]
    store.write_day(day=day, increments=increment, states=state)  # a day written twice
    before = raw_feature_blobs(any_store_url) if not any_store_url.startswith("dynamodb") else None
    live = {
        (meta.day, part, class_id): blob
        for meta in store._days(first=None, last=date.max).values()
        for (part, class_id), blob in store._day_blobs(meta).items()
    }
    assert any(X in compact.decode(b).users for b in live.values())

    removed = store.erase_users([X])

    assert removed > 0
    after = raw_feature_blobs(any_store_url)
    assert set(after) == set(live)
    for key, blob in after.items():
        assert X not in compact.decode(blob).users, key
        if X not in compact.decode(live[key]).users:
            assert blob == live[key], f"{key} changed though it never held the student"
    if before is not None:
        assert set(before) == set(after)
    reread = open_feature_store(any_store_url)
    for day, increment, state in days:
        assert records(reread.read_states(day=day)) == records(state, drop=X)
        assert records(reread.read_increments(day=day)) == records(increment, drop=X)
    assert store.erase_users([X]) == 0  # a rerun finds nothing more


def test_purge_keeps_what_the_next_day_needs(any_store_url: str) -> None:
    store = open_feature_store(any_store_url)
    days = feature_days()
    for day, increment, state in days[:9]:
        store.write_day(day=day, increments=increment, states=state)
    cut = DAYS[5]  # a delta day: its chain walks back to the checkpoint-less start

    assert store.purge_before(cut) == 5
    kept = sorted({key[0] for key in raw_feature_blobs(any_store_url)})
    assert kept == DAYS[5:9]
    reread = open_feature_store(any_store_url)
    for day, _, state in days[5:9]:
        assert records(reread.read_states(day=day)) == records(state)
    # the next day is written on top of the re-based days and reads back exactly
    day, increment, state = days[9]
    reread.write_day(day=day, increments=increment, states=state)
    assert records(open_feature_store(any_store_url).read_states(day=day)) == records(state)
    assert reread.purge_before(cut) == 0
    # the latest day is kept even when the cut is after it
    assert reread.purge_before(DAYS[9] + timedelta(days=30)) == 4
    assert reread.last_complete_day() == DAYS[9]
    assert records(reread.read_states(day=DAYS[9])) == records(state)


# --- predictions and feedback -----------------------------------------------------------------


def raw_predictions(url: str) -> tuple[set[tuple[int, str, int]], dict[tuple[int, str], tuple]]:
    """(class, day, user) of every prediction row/item, and each body (etag, its records)."""
    rows: set[tuple[int, str, int]] = set()
    bodies: dict[tuple[int, str], tuple] = {}
    if url.startswith("dynamodb"):
        for item in scan(url, "predictions"):
            pk = item["pk"]["S"]
            if pk.startswith("P#"):
                _, class_id, day, _ = pk.split("#")
                rows.add((int(class_id), day, int(item["sk"]["S"])))
            elif pk.startswith("BODY#"):
                records = orjson.loads(gzip.decompress(bytes(item["body"]["B"])))
                bodies[(int(pk[5:]), item["sk"]["S"])] = (item["etag"]["S"], records)
        return rows, bodies
    for class_id, day, user in sql_rows(url, "SELECT class_id, day, user_id FROM lof_predictions"):
        rows.add((int(class_id), str(day)[:10].replace("-", ""), int(user)))
    for class_id, day, etag, body in sql_rows(
        url, "SELECT class_id, day, etag, body FROM lof_prediction_bodies"
    ):
        records = orjson.loads(gzip.decompress(bytes(body)))
        bodies[(int(class_id), str(day)[:10].replace("-", ""))] = (etag, records)
    return rows, bodies


def feedback_on(user: int, day: date, teacher: str) -> FeedbackRecord:
    return FeedbackRecord(
        class_id=1,
        predicted_dt=f"{day:%Y%m%d}",
        user_id=user,
        teacher_id=teacher,
        verdict="useful",
        note=None,
        model_version="3",
        at_risk=True,
        source="api",
        updated_at="2024-01-05T10:00:00Z",
    )


def action_on(user: int, day: date, teacher: str, action: str = "meeting") -> InterventionRecord:
    return InterventionRecord(
        class_id=1,
        user_id=user,
        teacher_id=teacher,
        action_dt=f"{day:%Y%m%d}",
        action=action,  # type: ignore[arg-type]
        note=None,
        source="api",
        updated_at="2024-01-05T10:00:00Z",
    )


def test_interventions_are_idempotent_erased_and_purged(any_store_url: str) -> None:
    d1, d2, d3 = DAYS[:3]
    store = open_intervention_store(any_store_url)
    first = store.put(action_on(X, d1, "t1"))
    again = store.put(
        action_on(X, d1, "t1").model_copy(update={"updated_at": "2025-01-01T00:00:00Z"})
    )
    assert again == first  # the same key and note: nothing changes, not even updated_at
    noted = store.put(action_on(X, d1, "t1").model_copy(update={"note": "met on Monday"}))
    store.put(action_on(X, d1, "t1", "referred"))  # another action the same day: kept apart
    store.put(action_on(X, d1, "t2"))  # another teacher: kept apart
    store.put(action_on(11, d1, "t1"))
    store.put(action_on(11, d3, "t1"))
    records = store.read_all()
    assert len(records) == 5
    assert [
        r.note for r in records if (r.user_id, r.teacher_id, r.action) == (X, "t1", "meeting")
    ] == [noted.note]
    assert store.read_class(class_id=1) == records and store.read_class(class_id=2) == []
    assert store.erase_users([X]) == 3
    assert [(r.user_id, r.action_dt) for r in store.read_all()] == [
        (11, f"{d1:%Y%m%d}"),
        (11, f"{d3:%Y%m%d}"),
    ]
    assert store.purge_before(d2) == 1
    assert [r.action_dt for r in store.read_all()] == [f"{d3:%Y%m%d}"]
    store.close()


def test_erasing_and_purging_predictions_and_feedback(any_store_url: str) -> None:
    store = open_prediction_store(any_store_url)
    d1, d2, d3 = DAYS[:3]
    store.write_day(day=d1, predictions=predictions([(1, 11, 2), (1, X, 1), (1, 13, 4)]))
    day2 = predictions([(1, 11, 3), (1, X, 2), (2, 21, 5), (2, X, 1)])
    store.write_day(day=d2, predictions=day2)
    store.write_day(day=d2, predictions=day2)  # written twice: DynamoDB keeps the previous one
    store.write_day(day=d3, predictions=predictions([(2, 21, 4)]))
    _, bodies_before = raw_predictions(any_store_url)
    assert sorted(store.user_class_days([X, 99])) == [(X, 1, d1), (X, 1, d2), (X, 2, d2)]

    assert store.erase_users([X]) >= 3
    rows, bodies = raw_predictions(any_store_url)
    assert all(user != X for _, _, user in rows)
    assert {u for _, _, u in rows} == {11, 13, 21}
    for key, (etag, records) in bodies.items():
        assert all(r["user_id"] != X for r in records)
        old_etag, old_records = bodies_before[key]
        others = [orjson.dumps(r) for r in old_records if r["user_id"] != X]
        assert [orjson.dumps(r) for r in records] == others  # byte for byte
        assert (etag == old_etag) == (len(others) == len(old_records))
    assert set(bodies) == set(bodies_before)
    assert store.read_class_day(day=d2, class_id=2)[0]["user_id"] == 21
    assert store.read_student_history(class_id=1, user_id=X) == []
    assert store.erase_users([X]) == 0

    feedback = open_feedback_store(any_store_url)
    for record in (feedback_on(X, d1, "t1"), feedback_on(11, d1, "t1"), feedback_on(11, d3, "t2")):
        feedback.put(record)
    assert feedback.erase_users([X]) == 1
    assert [(r.user_id, r.predicted_dt) for r in feedback.read_all()] == [
        (11, f"{d1:%Y%m%d}"),
        (11, f"{d3:%Y%m%d}"),
    ]
    assert feedback.purge_before(d2) == 1
    assert [r.predicted_dt for r in feedback.read_all()] == [f"{d3:%Y%m%d}"]

    assert store.purge_before(d3) == 2
    rows, bodies = raw_predictions(any_store_url)
    assert {day for _, day, _ in rows} == {f"{d3:%Y%m%d}"}
    assert set(bodies) == {(2, f"{d3:%Y%m%d}")}
    assert store.list_days(class_id=1) == [] and store.list_days(class_id=2) == [d3]
    if any_store_url.startswith("dynamodb"):  # nothing of the purged days is left, not even keys
        assert all(f"{d1:%Y%m%d}" not in str(item) for item in scan(any_store_url, "predictions"))
    assert store.purge_before(d3) == 0
