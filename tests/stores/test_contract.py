"""One behaviour for every store backend: SQLite file, PostgreSQL, DynamoDB on a real moto_server.

Each test runs against the three backends through ``lof.stores.open_*_store(url)`` only, so
what is asserted here is exactly what the flows and the API rely on.
"""

from __future__ import annotations

import os
import sys
import uuid
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from lof.core.errors import DataError, StoreError
from lof.features.definitions import ENGAGEMENT_COLUMNS, FEATURES
from lof.stores import open_feature_store, open_prediction_store
from lof.stores.base import RECORD_KEYS
from tests.servers import free_port, running
from tests.stores._crash import SimulatedCrash, crash_after_rows

D1, D2, D3 = date(2023, 3, 1), date(2023, 3, 2), date(2023, 3, 3)


def _drop_sql_tables(url: str) -> None:
    from lof.stores.sql import LEGACY_METADATA, METADATA

    engine = sa.create_engine(url)
    try:
        METADATA.drop_all(engine)
        LEGACY_METADATA.drop_all(engine)
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "dynamodb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'not-yet' / 'lof.db'}"
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        _drop_sql_tables(url)
        return url
    endpoint = request.getfixturevalue("moto_endpoint")
    return f"dynamodb://?endpoint={endpoint}&prefix=t{uuid.uuid4().hex[:8]}_&region=us-east-1"


def engagement(rows: list[tuple]) -> pd.DataFrame:
    """(class_id, user_id, c1..c5, activity_ids, session_ids) tuples -> an engagement frame."""
    frame = pd.DataFrame(rows, columns=list(ENGAGEMENT_COLUMNS[:9]))
    for column in ENGAGEMENT_COLUMNS[:7]:
        frame[column] = frame[column].astype("int64")
    for k, column in enumerate(ENGAGEMENT_COLUMNS[9:]):  # the signals' event state
        frame[column] = (frame["class_view_count"] * (k + 1)).astype("int64")
    return frame


def predictions(rows: list[tuple[int, int, int]], *, version: str = "3") -> pd.DataFrame:
    """(class_id, user_id, label) -> a predictions frame with awkward floats."""
    out = []
    for class_id, user_id, label in rows:
        probs = {str(level): 0.0 for level in range(1, 6)}
        probs[str(label)] = 0.7
        probs["1"] += 0.1 + 0.2  # 0.30000000000000004: must round-trip exactly
        out.append(
            {
                "class_id": class_id,
                "user_id": user_id,
                "predicted_label": label,
                "predicted_prob": probs,
                "risk_prob": 1 / 3 + user_id * 1e-12,
                "at_risk": label < 3,
                "required_level": 3,
                "model_name": "lof-outcome",
                "model_version": version,
                "features": {name: user_id / 7 + i for i, name in enumerate(FEATURES)},
            }
        )
    return pd.DataFrame(out)


STATE_A = engagement(
    [
        (1, 10, 3, 1, 0, 2, 0, (5, 2**40), (100, 101)),
        (1, 11, 1, 0, 1, 0, 0, (), (102,)),
        (2, 10, 7, 2, 2, 1, 1, (9,), ()),
        (3, 12, 1, 1, 1, 1, 1, (1,), (1,)),
    ]
)
INCREMENT_A = STATE_A.iloc[:2].reset_index(drop=True)


def assert_frames_equal(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    expected = expected.sort_values(["class_id", "user_id"]).reset_index(drop=True)
    assert list(actual.columns) == list(ENGAGEMENT_COLUMNS)
    assert actual["class_id"].dtype == "int64" and actual["user_id"].dtype == "int64"
    assert actual.to_dict(orient="records") == expected.to_dict(orient="records")
    for column in ("activity_ids", "session_ids"):
        assert all(isinstance(v, tuple) for v in actual[column])


# --- features ---------------------------------------------------------------------------------


def test_features_round_trip_and_class_restriction(store_url: str) -> None:
    store = open_feature_store(store_url)
    assert store.last_complete_day() is None
    store.write_day(day=D1, increments=INCREMENT_A, states=STATE_A)

    assert store.is_complete(day=D1)
    assert_frames_equal(store.read_states(day=D1), STATE_A)
    assert_frames_equal(store.read_increments(day=D1), INCREMENT_A)
    only = store.read_states(day=D1, class_ids=[2, 3, 99])
    assert_frames_equal(only, STATE_A[STATE_A["class_id"].isin([2, 3])])
    assert store.read_states(day=D1, class_ids=[]).empty
    assert store.read_increments(day=D1, class_ids=[3]).empty


def test_features_missing_and_empty_days(store_url: str) -> None:
    store = open_feature_store(store_url)
    missing = store.read_states(day=D2)
    assert missing.empty and list(missing.columns) == list(ENGAGEMENT_COLUMNS)
    assert not store.is_complete(day=D2)

    store.write_day(day=D2, increments=INCREMENT_A.iloc[:0], states=STATE_A.iloc[:0])
    assert store.is_complete(day=D2)
    assert store.last_complete_day() == D2
    assert store.read_states(day=D2).empty
    assert store.read_increments(day=D2, class_ids=[1]).empty


def test_features_reading_a_day_returns_only_that_day(store_url: str) -> None:
    store = open_feature_store(store_url)
    later = STATE_A.copy()
    later["class_view_count"] += 100
    store.write_day(day=D1, increments=INCREMENT_A, states=STATE_A)
    store.write_day(day=D2, increments=INCREMENT_A.iloc[:0], states=later)
    assert_frames_equal(store.read_states(day=D1, class_ids=[1]), STATE_A.iloc[:2])
    assert_frames_equal(store.read_states(day=D2, class_ids=[1]), later.iloc[:2])
    assert store.read_increments(day=D2).empty


def test_features_rerun_replaces_the_day(store_url: str) -> None:
    store = open_feature_store(store_url)
    store.write_day(day=D1, increments=INCREMENT_A, states=STATE_A)
    second = engagement([(1, 10, 4, 1, 0, 2, 0, (5,), (100,)), (4, 20, 1, 0, 0, 0, 0, (), ())])
    for _ in range(2):
        store.write_day(day=D1, increments=second.iloc[:1], states=second)
        assert_frames_equal(store.read_states(day=D1), second)
        assert_frames_equal(store.read_increments(day=D1), second.iloc[:1])
    # Classes of the first write that the rerun lacks are gone, not left stale.
    assert store.read_states(day=D1, class_ids=[2, 3]).empty
    assert store.last_complete_day() == D1


def test_features_crash_leaves_day_invisible_and_rerun_completes(store_url: str) -> None:
    store = open_feature_store(store_url)
    store.write_day(day=D1, increments=INCREMENT_A, states=STATE_A)
    next_state = STATE_A.copy()
    next_state["material_view"] += 5

    with crash_after_rows(store, 3), pytest.raises(SimulatedCrash):
        store.write_day(day=D2, increments=INCREMENT_A, states=next_state)
    assert not store.is_complete(day=D2)
    assert store.last_complete_day() == D1
    assert store.read_states(day=D2).empty
    assert_frames_equal(store.read_states(day=D1), STATE_A)

    store.write_day(day=D2, increments=INCREMENT_A, states=next_state)
    assert store.last_complete_day() == D2
    assert_frames_equal(store.read_states(day=D2), next_state)
    assert_frames_equal(store.read_increments(day=D2), INCREMENT_A)
    # Per day: one increment blob (class 1) and one state blob per class (1, 2, 3).
    assert _stored_rows(store_url, "features") == 2 * (1 + 3)


def test_features_crash_during_rewrite_keeps_previous_content(store_url: str) -> None:
    store = open_feature_store(store_url)
    store.write_day(day=D1, increments=INCREMENT_A, states=STATE_A)
    other = engagement([(9, 90, 1, 1, 1, 1, 1, (3,), (4,))])
    with crash_after_rows(store, 1), pytest.raises(SimulatedCrash):
        store.write_day(day=D1, increments=other, states=other)
    assert_frames_equal(store.read_states(day=D1), STATE_A)
    assert store.read_states(day=D1, class_ids=[9]).empty


def test_last_complete_day_is_the_latest_not_the_last_written(store_url: str) -> None:
    store = open_feature_store(store_url)
    empty = INCREMENT_A.iloc[:0]
    store.write_day(day=D3, increments=empty, states=STATE_A)
    store.write_day(day=D1, increments=empty, states=STATE_A)
    assert store.last_complete_day() == D3
    assert not store.is_complete(day=D2)


def test_bad_feature_frames_are_refused_before_writing(store_url: str) -> None:
    store = open_feature_store(store_url)
    with pytest.raises(DataError, match="session_ids"):
        store.write_day(day=D1, increments=INCREMENT_A, states=STATE_A.drop(columns="session_ids"))
    with pytest.raises(DataError, match="one row per class_id, user_id"):
        store.write_day(day=D1, increments=INCREMENT_A, states=pd.concat([STATE_A, STATE_A]))
    assert store.last_complete_day() is None


# --- predictions ------------------------------------------------------------------------------


def test_predictions_round_trip_exact_plain_types(store_url: str) -> None:
    store = open_prediction_store(store_url)
    frame = predictions([(1, 11, 2), (1, 10, 4), (2, 10, 3)])
    store.write_day(day=D1, predictions=frame)

    records = store.read_class_day(day=D1, class_id=1)
    assert [r["user_id"] for r in records] == [10, 11]
    expected = frame[(frame["class_id"] == 1) & (frame["user_id"] == 10)].iloc[0].to_dict()
    first = records[0]
    assert list(first) == list(RECORD_KEYS)
    assert first["predicted_dt"] == "20230301"
    assert first["predicted_prob"] == expected["predicted_prob"]
    assert first["predicted_prob"]["1"] == 0.1 + 0.2
    assert first["risk_prob"] == expected["risk_prob"]
    assert first["features"] == expected["features"]
    assert first["at_risk"] is False and records[1]["at_risk"] is True
    assert first["model_version"] == "3"
    for key, kind in {
        "class_id": int,
        "user_id": int,
        "predicted_label": int,
        "risk_prob": float,
        "at_risk": bool,
        "required_level": int,
        "model_name": str,
        "model_version": str,
        "predicted_prob": dict,
        "features": dict,
    }.items():
        assert type(first[key]) is kind, key
    assert all(type(v) is float for v in first["features"].values())


def test_predictions_missing_day_and_class(store_url: str) -> None:
    store = open_prediction_store(store_url)
    assert store.read_class_day(day=D1, class_id=1) == []
    assert store.list_days(class_id=1) == []
    assert store.read_student_history(class_id=1, user_id=10) == []
    store.write_day(day=D1, predictions=predictions([(1, 10, 2)]))
    assert store.read_class_day(day=D2, class_id=1) == []
    assert store.read_class_day(day=D1, class_id=2) == []
    assert store.is_complete(day=D1) and not store.is_complete(day=D2)


def test_predictions_empty_day_is_complete(store_url: str) -> None:
    store = open_prediction_store(store_url)
    store.write_day(day=D2, predictions=predictions([]).reindex(columns=list(RECORD_KEYS[1:])))
    assert store.is_complete(day=D2)
    assert store.last_complete_day() == D2
    assert store.read_class_day(day=D2, class_id=1) == []


def test_predictions_history_and_days(store_url: str) -> None:
    store = open_prediction_store(store_url)
    for offset, day in enumerate((D3, D1, D2)):
        store.write_day(
            day=day, predictions=predictions([(1, 10, 1 + offset), (1, 11, 5)], version=str(offset))
        )
    store.write_day(day=D3 + timedelta(days=1), predictions=predictions([(2, 10, 5)]))

    assert store.list_days(class_id=1) == [D1, D2, D3]
    history = store.read_student_history(class_id=1, user_id=10)
    assert [r["predicted_dt"] for r in history] == ["20230301", "20230302", "20230303"]
    assert [r["predicted_label"] for r in history] == [2, 3, 1]
    assert {r["class_id"] for r in history} == {1}
    assert store.last_complete_day() == D3 + timedelta(days=1)


def test_predictions_rerun_replaces_the_day(store_url: str) -> None:
    store = open_prediction_store(store_url)
    store.write_day(day=D1, predictions=predictions([(1, 10, 2), (1, 11, 2), (2, 10, 2)]))
    second = predictions([(1, 10, 5)], version="4")
    for _ in range(2):
        store.write_day(day=D1, predictions=second)
        records = store.read_class_day(day=D1, class_id=1)
        assert [(r["user_id"], r["predicted_label"], r["model_version"]) for r in records] == [
            (10, 5, "4")
        ]
    assert store.read_class_day(day=D1, class_id=2) == []
    assert store.list_days(class_id=2) == []
    assert store.list_days(class_id=1) == [D1]
    assert len(store.read_student_history(class_id=1, user_id=10)) == 1
    assert _stored_rows(store_url, "predictions") == 1


def test_predictions_crash_leaves_day_invisible_and_rerun_completes(store_url: str) -> None:
    store = open_prediction_store(store_url)
    store.write_day(day=D1, predictions=predictions([(1, 10, 2), (1, 11, 3)]))
    day2 = predictions([(1, 10, 4), (1, 11, 4), (1, 12, 4)])
    with crash_after_rows(store, 2), pytest.raises(SimulatedCrash):
        store.write_day(day=D2, predictions=day2)
    assert store.read_class_day(day=D2, class_id=1) == []
    assert store.list_days(class_id=1) == [D1]
    assert store.last_complete_day() == D1
    assert [r["predicted_dt"] for r in store.read_student_history(class_id=1, user_id=10)] == [
        "20230301"
    ]

    with crash_after_rows(store, 1), pytest.raises(SimulatedCrash):
        store.write_day(day=D1, predictions=day2)
    assert [r["user_id"] for r in store.read_class_day(day=D1, class_id=1)] == [10, 11]

    # Reruns complete both days; leftovers of the crashed writes are cleaned by them.
    store.write_day(day=D1, predictions=predictions([(1, 10, 2), (1, 11, 3)]))
    store.write_day(day=D2, predictions=day2)
    assert [r["user_id"] for r in store.read_class_day(day=D2, class_id=1)] == [10, 11, 12]
    assert store.list_days(class_id=1) == [D1, D2]
    assert _stored_rows(store_url, "predictions") == 5


def test_bad_prediction_frames_are_refused(store_url: str) -> None:
    store = open_prediction_store(store_url)
    with pytest.raises(DataError, match="features"):
        store.write_day(day=D1, predictions=predictions([(1, 10, 2)]).drop(columns="features"))
    bad = predictions([(1, 10, 2)])
    bad.at[0, "predicted_prob"] = "not json at all"
    with pytest.raises((DataError, ValueError)):
        store.write_day(day=D1, predictions=bad)
    not_an_id = predictions([(1, 10, 2), (1, 11, 3)]).astype({"user_id": object})
    not_an_id.at[1, "user_id"] = "eleven"
    with pytest.raises(DataError, match="row 1 has a malformed value"):
        store.write_day(day=D1, predictions=not_an_id)
    no_class = predictions([(1, 10, 2), (1, 11, 3)]).astype({"class_id": float})
    no_class.at[1, "class_id"] = float("nan")
    with pytest.raises(DataError, match="row 1 has a malformed value"):
        store.write_day(day=D1, predictions=no_class)
    assert store.last_complete_day() is None


# --- bad URLs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "not a url",
        "dynamodb://somehost",
        "dynamodb://?endpoint=127.0.0.1:1&prefix=x",
        "dynamodb://?table=x",
        "dynamodb://?prefix=bad%20prefix",
    ],
)
def test_malformed_urls_give_one_clear_line(url: str) -> None:
    for opener in (open_feature_store, open_prediction_store):
        with pytest.raises(StoreError, match="LOF_STORE_URL") as caught:
            opener(url)
        assert "\n" not in str(caught.value)


def test_unreachable_servers_name_the_setting_and_hide_the_password() -> None:
    port = free_port()
    with pytest.raises(StoreError, match="LOF_STORE_URL") as caught:
        open_prediction_store(f"postgresql+psycopg2://lof:s3cr3t-pw@127.0.0.1:{port}/lof")
    assert "s3cr3t-pw" not in str(caught.value) and "***" in str(caught.value)
    with pytest.raises(StoreError, match="unreachable"):
        open_feature_store(f"dynamodb://?endpoint=http://127.0.0.1:{port}&region=us-east-1")


def test_sqlite_folder_is_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "lof.db"
    open_feature_store(f"sqlite:///{path}").write_day(
        day=D1, increments=INCREMENT_A, states=STATE_A
    )
    assert path.exists()
    assert open_feature_store(f"sqlite:///{path}").last_complete_day() == D1


def test_postgres_without_create_rights_is_a_clear_error(postgres_url: str) -> None:
    _drop_sql_tables(postgres_url)
    role = f"lof_ro_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}'"))
    try:
        url = sa.make_url(postgres_url).set(username=role, password=f"pw-{role}")
        with pytest.raises(StoreError, match=r"LOF_STORE_URL.*permission denied") as caught:
            open_prediction_store(url.render_as_string(hide_password=False))
        assert f"pw-{role}" not in str(caught.value)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP OWNED BY {role}"))
            conn.execute(sa.text(f"DROP ROLE {role}"))
        admin.dispose()


@pytest.fixture(scope="module")
def moto_with_auth(tmp_path_factory: pytest.TempPathFactory):
    """A second moto_server that checks credentials (INITIAL_NO_AUTH_ACTION_COUNT=0)."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto-auth") / "moto.log"
    exe = str(Path(sys.executable).parent / "moto_server")
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    with running([exe, "-H", "127.0.0.1", "-p", str(port)], port=port, log=log, env=env) as url:
        yield url


def test_dynamodb_refused_credentials_are_a_clear_error(moto_with_auth: str) -> None:
    with pytest.raises(StoreError, match=r"refused on LOF_STORE_URL.*grant") as caught:
        open_prediction_store(f"dynamodb://?endpoint={moto_with_auth}&region=us-east-1")
    assert "\n" not in str(caught.value)


def test_mysql_smoke(mariadb_url: str) -> None:
    _drop_sql_tables(mariadb_url)
    features = open_feature_store(mariadb_url)
    features.write_day(day=D1, increments=INCREMENT_A, states=STATE_A)
    features.write_day(day=D1, increments=INCREMENT_A, states=STATE_A)
    assert_frames_equal(features.read_states(day=D1, class_ids=[1, 2]), STATE_A.iloc[:3])
    store = open_prediction_store(mariadb_url)
    frame = predictions([(1, 10, 2), (1, 11, 3)])
    store.write_day(day=D1, predictions=frame)
    with crash_after_rows(store, 1), pytest.raises(SimulatedCrash):
        store.write_day(day=D2, predictions=frame)
    records = store.read_class_day(day=D1, class_id=1)
    assert records[0]["risk_prob"] == frame.loc[0, "risk_prob"]
    assert store.list_days(class_id=1) == [D1]
    assert store.last_complete_day() == D1


# --- helpers ----------------------------------------------------------------------------------


def _stored_rows(url: str, kind: str) -> int:
    """Every data row/item physically stored (live or leftover), to catch stale generations.

    On DynamoDB a day keeps the generation its last write replaced, for readers in flight (the
    backend's docstring); those items are not stale and are left out of the count.
    """
    if url.startswith("dynamodb://"):
        from lof.stores.dynamodb import parse_url

        options = parse_url(url)
        import boto3

        client = boto3.client("dynamodb", endpoint_url=options["endpoint"], region_name="us-east-1")
        # A Scan is fine here: it audits the whole table, which no store code path does.
        items = []
        request = {"TableName": f"{options['prefix']}{kind}"}
        while True:
            page = client.scan(**request)
            items.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        replaced = {i["prev_gen"]["S"] for i in items if "prev_gen" in i}
        data = [
            i
            for i in items
            if ("data" in i or "b" in i) and i["pk"]["S"].rsplit("#", 1)[1] not in replaced
        ]
        pending = [i for i in items if i["pk"]["S"] in ("PENDING", "FPENDING")]
        assert pending == [], "a finished write leaves no pending generation"
        return len(data)
    from lof.stores import sql

    tables = [sql.FEATURE_BLOBS] if kind == "features" else [sql.PREDICTIONS]
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return sum(
                conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() for t in tables
            )
    finally:
        engine.dispose()
