"""connect(): one clear line naming LOF_LEB2_URL, no password; transient errors retried."""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from lof.core.errors import SourceError
from lof.sources import leb2

PASSWORD = "s3cret-Pa55word"


def _one_line(exc: pytest.ExceptionInfo[SourceError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    assert "LOF_LEB2_URL" in message
    assert PASSWORD not in message
    return message


def test_not_a_url() -> None:
    with pytest.raises(SourceError) as exc:
        leb2.connect(f"mysql+pymysql//leb2:{PASSWORD}@db")
    assert "is not a database URL" in _one_line(exc)


def test_unknown_driver() -> None:
    with pytest.raises(SourceError) as exc:
        leb2.connect(f"nosuchdb://leb2:{PASSWORD}@db/leb2")
    assert "cannot be used" in _one_line(exc)


def test_bad_credentials(mariadb_url: str) -> None:
    with pytest.raises(SourceError) as exc:
        leb2.connect(f"mysql+pymysql://lof_nobody:{PASSWORD}@127.0.0.1:3306/mysql")
    message = _one_line(exc)
    assert "Access denied" in message
    assert "lof_nobody:***@127.0.0.1" in message


def test_unknown_database(mariadb_url: str) -> None:
    with pytest.raises(SourceError) as exc:
        leb2.connect("mysql+pymysql://root@127.0.0.1:3306/lof_no_such_database")
    assert "Unknown database" in _one_line(exc)


def test_missing_tables_on_mariadb(mariadb_url: str) -> None:
    engine = create_engine(mariadb_url)
    with engine.begin() as conn:  # an unrelated table only
        conn.execute(text("CREATE TABLE IF NOT EXISTS lof_unrelated (id INT)"))
    engine.dispose()
    with pytest.raises(SourceError) as exc:
        leb2.connect(mariadb_url)
    message = _one_line(exc)
    assert "lacks the tables semesters, classes" in message


def test_missing_table_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'partial.db'}"
    engine = create_engine(url)
    leb2.METADATA.create_all(engine, tables=[leb2.TABLES["semesters"], leb2.TABLES["classes"]])
    engine.dispose()
    with pytest.raises(SourceError) as exc:
        leb2.connect(url)
    message = _one_line(exc)
    assert "lacks the tables course_outcomes, activities, criterias" in message
    assert "semesters," not in message


def test_missing_sqlite_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as exc:
        leb2.connect(f"sqlite:///{tmp_path / 'nowhere.db'}")
    assert "no such SQLite file" in _one_line(exc)
    assert not (tmp_path / "nowhere.db").exists()


def test_query_error_is_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'leb2.db'}"
    engine = create_engine(url)
    leb2.METADATA.create_all(engine)
    engine.dispose()
    engine = leb2.connect(url)
    with engine.begin() as conn:  # a LEB2 whose schema lost a column the queries need
        conn.execute(text("ALTER TABLE activities DROP COLUMN due_date"))
    with pytest.raises(SourceError) as exc:
        leb2.finished_classes(engine, as_of=date(2024, 1, 1))
    assert "LEB2 finished classes failed" in _one_line(exc)


def test_lost_connection_is_retried(mariadb_url: str) -> None:
    """The server kills the connection mid-query (MySQL 2013): the query is run again."""
    engine = create_engine(mariadb_url, pool_pre_ping=True)
    killer = create_engine(mariadb_url)
    attempts: list[int] = []
    started = threading.Event()

    def query(conn) -> int:
        attempts.append(conn.execute(text("SELECT CONNECTION_ID()")).scalar_one())
        if len(attempts) == 1:
            started.set()
            conn.execute(text("SELECT SLEEP(30)"))
        return int(conn.execute(text("SELECT 41 + 1")).scalar_one())

    def kill() -> None:
        started.wait(10)
        with killer.connect() as conn:
            conn.execute(text(f"KILL {attempts[0]}"))

    thread = threading.Thread(target=kill)
    thread.start()
    try:
        assert leb2._run(engine, "probe", query) == 42
    finally:
        thread.join()
        engine.dispose()
        killer.dispose()
    assert len(attempts) == 2
    assert attempts[0] != attempts[1]


def test_is_transient_classification() -> None:
    from sqlalchemy.exc import OperationalError, ProgrammingError

    def op(code: int, msg: str) -> OperationalError:
        return OperationalError("SELECT 1", {}, Exception(code, msg))

    assert leb2.is_transient(op(2006, "MySQL server has gone away"))
    assert leb2.is_transient(op(2013, "Lost connection to MySQL server during query"))
    assert not leb2.is_transient(op(1045, "Access denied"))
    assert not leb2.is_transient(op(1049, "Unknown database"))
    assert not leb2.is_transient(ProgrammingError("SELECT 1", {}, Exception(1146, "no table")))
    assert not leb2.is_transient(ValueError("x"))
