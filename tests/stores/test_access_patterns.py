"""How the stores reach their backends: one query per (class, day), no scans, retries."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lof.stores import open_feature_store, open_prediction_store

from .test_contract import STATE_A, predictions

DAYS = [date(2023, 3, 1) + timedelta(days=n) for n in range(5)]


def _dynamo_url(endpoint: str) -> str:
    return f"dynamodb://?endpoint={endpoint}&prefix=a{uuid.uuid4().hex[:8]}_&region=us-east-1"


def _record_operations(store: Any) -> list[str]:
    calls: list[str] = []
    store.client.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: calls.append(model.name)
    )
    return calls


def test_dynamodb_reads_touch_one_day_without_scans(moto_endpoint: str) -> None:
    url = _dynamo_url(moto_endpoint)
    features, preds = open_feature_store(url), open_prediction_store(url)
    for day in DAYS:
        features.write_day(day=day, increments=STATE_A, states=STATE_A)
        preds.write_day(day=day, predictions=predictions([(1, 10, 2), (1, 11, 3), (2, 10, 4)]))
    calls = _record_operations(preds)
    assert len(preds.read_class_day(day=DAYS[2], class_id=1)) == 2
    assert calls == ["GetItem", "Query"]

    # A fresh process (no cached state): the manifests, then one Query per part and day back to
    # the day's base (here the first day, whose blobs are full), never a Scan.
    fresh = open_feature_store(url)
    calls = _record_operations(fresh)
    assert len(fresh.read_states(day=DAYS[-1], class_ids=[1, 2])) == 3
    assert "Scan" not in calls and set(calls) == {"Query"}
    assert len(calls) <= 2 + len(DAYS)
    calls.clear()
    assert fresh.last_complete_day() == DAYS[-1]
    assert calls == ["Query"]


def test_state_reads_stop_at_the_latest_checkpoint(tmp_path: Path) -> None:
    """However long the history, reading a day touches the days since its checkpoint only."""
    from lof.stores.compact import CHECKPOINT_EVERY

    url = f"sqlite:///{tmp_path / 'lof.db'}"
    features = open_feature_store(url)
    days = [date(2023, 3, 1) + timedelta(days=n) for n in range(3 * CHECKPOINT_EVERY)]
    state = STATE_A.copy()
    for day in days:
        state = state.copy()
        state["class_view_count"] += 1
        features.write_day(day=day, increments=STATE_A, states=state)
    fresh = open_feature_store(url)
    touched: list[Any] = []
    sa.event.listen(
        fresh.engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, params, *_: touched.extend(
            v
            for v in (params.values() if isinstance(params, dict) else params)
            if "lof_feature_blobs" in statement and isinstance(v, str) and v[:4] == "2023"
        ),
    )
    got = fresh.read_states(day=days[-1])
    assert got["class_view_count"].tolist() == (STATE_A["class_view_count"] + len(days)).tolist()
    touched_days = {date.fromisoformat(v[:10]) for v in touched}
    assert len(touched_days) <= CHECKPOINT_EVERY + 1
    assert min(touched_days) >= days[-1] - timedelta(days=CHECKPOINT_EVERY)


def test_dynamodb_reader_in_flight_during_a_rewrite_still_reads_a_whole_day(
    moto_endpoint: str,
) -> None:
    """A reader that fetched D's manifest just before a rewrite flips it finds all its items."""
    preds = open_prediction_store(_dynamo_url(moto_endpoint))
    first = predictions([(1, 10, 2), (1, 11, 3), (1, 12, 4)])
    preds.write_day(day=DAYS[0], predictions=first)
    before_flip = preds._manifest(DAYS[0])
    preds.write_day(day=DAYS[0], predictions=predictions([(1, 10, 5)]))
    old_items = preds._query(preds._data_pk("P", 1, DAYS[0], before_flip["gen"]))
    assert sorted(int(i["sk"]["S"]) for i in old_items) == [10, 11, 12]
    assert [r["user_id"] for r in preds.read_class_day(day=DAYS[0], class_id=1)] == [10]

    # The next rewrite removes that generation: a day never keeps more than two.
    preds.write_day(day=DAYS[0], predictions=predictions([(1, 10, 1)]))
    assert preds._query(preds._data_pk("P", 1, DAYS[0], before_flip["gen"])) == []
    assert [r["predicted_label"] for r in preds.read_class_day(day=DAYS[0], class_id=1)] == [1]


def test_sql_reads_are_one_statement_on_one_day(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lof.db'}"
    features, preds = open_feature_store(url), open_prediction_store(url)
    for day in DAYS:
        features.write_day(day=day, increments=STATE_A, states=STATE_A)
        preds.write_day(day=day, predictions=predictions([(1, 10, 2), (1, 11, 3)]))
    statements: list[tuple[str, Any]] = []
    for store in (features, preds):
        sa.event.listen(
            store.engine,
            "before_cursor_execute",
            lambda _c, _cur, statement, params, *_: statements.append((statement, params)),
        )
    assert len(preds.read_class_day(day=DAYS[3], class_id=1)) == 2
    assert len(statements) == 1
    for statement, params in statements:
        assert "WHERE" in statement and DAYS[3].isoformat() in str(params)


def test_postgres_store_survives_dropped_connections(postgres_url: str) -> None:
    store = open_prediction_store(postgres_url)
    store.write_day(day=DAYS[0], predictions=predictions([(7, 70, 2)]))
    assert len(store.read_class_day(day=DAYS[0], class_id=7)) == 1
    database = sa.make_url(postgres_url).database
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid()"
            ),
            {"db": database},
        ).scalar()
    admin.dispose()
    assert killed >= 1
    assert len(store.read_class_day(day=DAYS[0], class_id=7)) == 1
    store.write_day(day=DAYS[0], predictions=predictions([(7, 70, 3)]))
    assert store.read_class_day(day=DAYS[0], class_id=7)[0]["predicted_label"] == 3


class _Throttling:
    """Wraps the real boto3 client (requests still go to moto_server) and hands back half of
    each BatchWriteItem as UnprocessedItems, as DynamoDB does under throttling — moto never
    throttles, so this is the one part that imitates the service."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.unprocessed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch_write_item(self, *, RequestItems: dict[str, list[Any]]) -> dict[str, Any]:
        ((table, requests),) = RequestItems.items()
        keep, rest = requests[: max(1, len(requests) // 2)], requests[max(1, len(requests) // 2) :]
        self._client.batch_write_item(RequestItems={table: keep})
        self.unprocessed += len(rest)
        return {"UnprocessedItems": {table: rest} if rest else {}}


def test_dynamodb_unprocessed_items_are_retried(moto_endpoint: str) -> None:
    store = open_prediction_store(_dynamo_url(moto_endpoint))
    throttled = _Throttling(store.client)
    store.client = throttled
    rows = [(1, user, 1 + user % 5) for user in range(60)]
    store.write_day(day=DAYS[0], predictions=predictions(rows))
    assert throttled.unprocessed > 0
    assert [r["user_id"] for r in store.read_class_day(day=DAYS[0], class_id=1)] == list(range(60))


def test_dynamodb_history_skips_dead_generations(moto_endpoint: str) -> None:
    """A crashed rewrite's index items must not add days or duplicate history entries."""
    from tests.stores._crash import SimulatedCrash, crash_after_rows

    store = open_prediction_store(_dynamo_url(moto_endpoint))
    store.write_day(day=DAYS[0], predictions=predictions([(1, 10, 2)]))
    with crash_after_rows(store, 2), pytest.raises(SimulatedCrash):
        store.write_day(day=DAYS[0], predictions=predictions([(1, 10, 5)]))
    history = store.read_student_history(class_id=1, user_id=10)
    assert [(r["predicted_dt"], r["predicted_label"]) for r in history] == [("20230301", 2)]
    assert store.list_days(class_id=1) == [DAYS[0]]
