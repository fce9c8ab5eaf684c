"""The one retry helper: what is retried, how often, how long it waits; DB errors by code."""

from __future__ import annotations

import logging
import sqlite3
import time
import traceback
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from lof.core.retry import call_with_retries, is_transient_db_error


class Flaky(Exception):
    """Stands for a transient failure (the caller's ``is_transient`` says so by type)."""


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Real sleeps, recorded: the delays the helper chose."""
    delays: list[float] = []
    real_sleep = time.sleep

    def recording_sleep(seconds: float) -> None:
        delays.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", recording_sleep)
    return delays


def failing(times: int, exc: BaseException, calls: list[int]):
    def fn() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise exc
        return "ok"

    return fn


def is_flaky(exc: BaseException) -> bool:
    return isinstance(exc, Flaky)


def test_transient_errors_are_retried_until_success(slept: list[float]) -> None:
    calls: list[int] = []
    fn = failing(2, Flaky("busy"), calls)
    assert call_with_retries(fn, is_transient=is_flaky, attempts=5, base_delay=0.01) == "ok"
    assert len(calls) == 3
    assert len(slept) == 2


def test_attempts_are_bounded_and_the_last_error_is_raised(slept: list[float]) -> None:
    calls: list[int] = []
    last = Flaky("still busy")
    with pytest.raises(Flaky) as info:
        call_with_retries(
            failing(100, last, calls), is_transient=is_flaky, attempts=4, base_delay=0.01
        )
    assert info.value is last
    assert len(calls) == 4
    assert len(slept) == 3


def test_other_errors_are_raised_at_once_with_their_traceback(slept: list[float]) -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise KeyError("a bug")

    with pytest.raises(KeyError) as info:
        call_with_retries(broken, is_transient=is_flaky, attempts=5)
    assert calls == [1]
    assert slept == []
    frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert frames[-1] == "broken"


def test_backoff_is_capped_with_full_jitter(slept: list[float]) -> None:
    calls: list[int] = []
    with pytest.raises(Flaky):
        call_with_retries(
            failing(100, Flaky(), calls),
            is_transient=is_flaky,
            attempts=8,
            base_delay=0.005,
            max_delay=0.02,
        )
    assert len(slept) == 7
    assert all(0 <= delay <= 0.02 for delay in slept)
    assert all(delay <= 0.005 * 2**n for n, delay in enumerate(slept))


def test_a_server_hint_raises_the_delay(slept: list[float]) -> None:
    calls: list[int] = []
    fn = failing(1, Flaky(), calls)
    call_with_retries(
        fn, is_transient=is_flaky, base_delay=0.001, max_delay=0.001, min_delay=lambda _: 0.03
    )
    assert slept == [pytest.approx(0.03)]


# --- database errors, classified by driver code on real servers --------------------------------


def error_of(engine_url: str, sql: str, **engine_options: object) -> SQLAlchemyError:
    engine = create_engine(engine_url, **engine_options)
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    except SQLAlchemyError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"{sql} did not fail")


def test_mariadb_codes(mariadb_url: str) -> None:
    refused = error_of("mysql+pymysql://root@127.0.0.1:1/none", "SELECT 1")
    assert refused.orig.args[0] == 2003 and is_transient_db_error(refused)
    denied = error_of("mysql+pymysql://lof_nobody:x@127.0.0.1:3306/mysql", "SELECT 1")
    assert denied.orig.args[0] in (1045, 1698) and not is_transient_db_error(denied)  # denied
    syntax = error_of(mariadb_url, "SELEC 1")
    assert not is_transient_db_error(syntax)


def killed_connection_error(url: str, *, own_id: str, kill: str) -> OperationalError:
    """The error of a query on a connection the server killed meanwhile (``kill`` takes its id)."""
    engine = create_engine(url)
    killer = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            ident = conn.execute(text(own_id)).scalar()
            with killer.connect() as other:
                other.execute(text(kill.format(ident)))
            with pytest.raises(OperationalError) as info:
                conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()
        killer.dispose()
    return info.value


def test_mariadb_killed_connection_is_transient(mariadb_url: str) -> None:
    killed = killed_connection_error(mariadb_url, own_id="SELECT CONNECTION_ID()", kill="KILL {}")
    assert killed.orig.args[0] in (2006, 2013)
    assert is_transient_db_error(killed)


def test_postgres_codes(postgres_url: str) -> None:
    syntax = error_of(postgres_url, "SELEC 1")
    assert syntax.orig.pgcode == "42601" and not is_transient_db_error(syntax)
    refused = error_of("postgresql+psycopg2://postgres@127.0.0.1:1/none", "SELECT 1")
    assert is_transient_db_error(refused)
    killed = killed_connection_error(
        postgres_url, own_id="SELECT pg_backend_pid()", kill="SELECT pg_terminate_backend({})"
    )
    assert is_transient_db_error(killed)


def test_sqlite_locked_is_transient(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INT)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        locked = error_of(
            f"sqlite:///{path}", "INSERT INTO t VALUES (1)", connect_args={"timeout": 0}
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert locked.orig.sqlite_errorcode == sqlite3.SQLITE_BUSY
    assert is_transient_db_error(locked)
    missing = error_of(f"sqlite:///{path}", "SELECT * FROM no_such_table")
    assert not is_transient_db_error(missing)


def test_an_outage_is_told_apart_from_a_data_or_setup_error(tmp_path: Path) -> None:
    """Real failures, as the adapters raise them once their own retries are spent."""
    from botocore.exceptions import ClientError

    from lof.core.calendar import parse_day
    from lof.core.config import Settings
    from lof.core.errors import DataError, ModelError, SourceError
    from lof.core.retry import is_outage
    from lof.registry import client as registry
    from lof.sources import leb2
    from tests.servers import free_port

    with pytest.raises(SourceError) as refused:
        leb2.connect(f"mysql+pymysql://root@127.0.0.1:{free_port()}/leb2")
    assert is_outage(refused.value)
    with pytest.raises(SourceError) as missing:
        leb2.connect(f"sqlite:///{tmp_path / 'none.db'}")
    assert not is_outage(missing.value)
    with pytest.raises(DataError) as bad_day:
        parse_day("20251301")
    assert not is_outage(bad_day.value)
    try:
        try:
            raise ConnectionResetError
        except ConnectionResetError:
            raise DataError("a malformed line") from None
    except DataError as exc:
        assert not is_outage(exc)  # a data error stays one, whatever it was raised during

    down = Settings(
        home=tmp_path, mlflow_tracking_uri=f"http://127.0.0.1:{free_port()}", mlflow_http_retries=0
    )
    with pytest.raises(ModelError) as unreachable:
        registry.read_state(settings=down)
    assert is_outage(unreachable.value)

    throttled = {"Error": {"Code": "ThrottlingException"}, "ResponseMetadata": {}}
    assert is_outage(ClientError(throttled, "Query"))
    denied = {"Error": {"Code": "AccessDeniedException"}, "ResponseMetadata": {}}
    assert not is_outage(ClientError(denied, "Query"))


class Recorded(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.usefixtures("prefect_api")
def test_a_scheduled_daily_run_retries_an_outage_but_not_a_missing_model(
    registry_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attempts a deployment's run gets (``outage_attempts``) with the delay cut to 10 ms;
    the CLI's run (no deployment) is tried once."""
    import flows.daily_scoring as daily
    from flows.tasks import outage_attempts
    from lof.core.errors import ModelError
    from tests.servers import free_port

    assert outage_attempts() == 1  # not in a deployment's run
    monkeypatch.setattr(daily, "outage_attempts", lambda: 3)
    monkeypatch.setattr(daily, "DAILY_RETRY_DELAY_SECONDS", 0.01)
    registry_uri = registry_settings.mlflow_tracking_uri
    recorded = Recorded()
    logging.getLogger("lof.core.retry").addHandler(recorded)
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
        monkeypatch.setenv("LOF_MLFLOW_HTTP_RETRIES", "0")
        with pytest.raises(ModelError, match="cannot read model"):
            daily.daily_scoring(date="20250301")
        retried = [m for m in recorded.messages if m.startswith("daily scoring of 20250301")]
        assert [m.split("; ")[-1][:9] for m in retried] == ["retry 1/2", "retry 2/2"]

        recorded.messages.clear()
        monkeypatch.setenv("MLFLOW_TRACKING_URI", registry_uri)  # reachable, no model in it
        with pytest.raises(ModelError, match="no version"):
            daily.daily_scoring(date="20250301")
        assert recorded.messages == []
    finally:
        logging.getLogger("lof.core.retry").removeHandler(recorded)
