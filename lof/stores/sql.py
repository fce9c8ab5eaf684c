"""SQL backend of the features and predictions stores (SQLAlchemy Core: SQLite, PostgreSQL, MySQL).

Tables (created on first use):

* ``lof_feature_increments`` / ``lof_feature_states``: one row per (day, class_id, user_id),
  primary key in that order, so reading one day (optionally some classes) is an index range on
  that day only. The five counts are integers; ``activity_ids`` / ``session_ids`` are the sorted
  ids joined by commas; the early-warning event state (``lof.signals``) is integers too.
* ``lof_feature_days``: the manifest, one row per complete day.
* ``lof_predictions``: one row per (class_id, day, user_id), primary key in that order, so one
  (class, day) is a single index range query; an index on (class_id, user_id, day) serves a
  student's history and one on ``day`` the rewrite of a day. ``predicted_prob``,
  ``features`` and ``reasons`` are compact JSON text (floats as repr, so they read back
  exactly); ``risk_prob`` is a DOUBLE.
* ``lof_prediction_days``: the manifest of complete prediction days.

Idempotence and atomicity: ``write_day`` runs in one transaction that deletes the day's rows
and its manifest row, inserts the new rows in chunks (executemany) and inserts the manifest row.
Readers see either the previous committed content of the day or the new one, never a mix; a
crash before commit rolls everything back, and a rerun writes the day from scratch. Dropped
connections are retried with bounded backoff (the whole transaction, which is safe because it
starts by deleting the day).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from lof.errors import StoreError
from lof.features import COUNT_COLUMNS
from lof.retry import call_with_retries
from lof.signals import EVENT_STATE_COLUMNS
from lof.stores import base

log = logging.getLogger(__name__)
T = TypeVar("T")

CHUNK_ROWS = 5_000
# MySQL's TEXT stops at 64 KB; a semester's session ids of a keen student can exceed it.
LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")

METADATA = sa.MetaData()


def _engagement_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        METADATA,
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("class_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
        *[sa.Column(c, sa.BigInteger, nullable=False) for c in COUNT_COLUMNS],
        sa.Column("activity_ids", LONG_TEXT, nullable=False),
        sa.Column("session_ids", LONG_TEXT, nullable=False),
        *[
            sa.Column(c, sa.BigInteger, nullable=False, server_default="0")
            for c in EVENT_STATE_COLUMNS
        ],
    )


def _days_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        METADATA,
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("written_at", sa.DateTime, nullable=False),
    )


INCREMENTS = _engagement_table("lof_feature_increments")
STATES = _engagement_table("lof_feature_states")
FEATURE_DAYS = _days_table("lof_feature_days")
PREDICTIONS = sa.Table(
    "lof_predictions",
    METADATA,
    sa.Column("class_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("predicted_label", sa.Integer, nullable=False),
    sa.Column("predicted_prob", LONG_TEXT, nullable=False),
    sa.Column("risk_prob", sa.Double, nullable=False),
    sa.Column("at_risk", sa.Boolean, nullable=False),
    sa.Column("required_level", sa.Integer, nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("features", LONG_TEXT, nullable=False),
    sa.Column("reasons", LONG_TEXT, nullable=True),
    sa.Index("ix_lof_predictions_student", "class_id", "user_id", "day"),
    sa.Index("ix_lof_predictions_day", "day"),
)
PREDICTION_DAYS = _days_table("lof_prediction_days")


# --- engine -----------------------------------------------------------------------------------


def redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", url)


def _is_transient(exc: BaseException) -> bool:
    """Dropped connections and lock/serialization conflicts are worth another try."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        text = str(exc.orig).lower()
        return any(
            word in text
            for word in (
                "server has gone away",
                "lost connection",
                "connection reset",
                "terminating connection",
                "server closed the connection",
                "deadlock",
                "could not serialize",
                "database is locked",
            )
        )
    return False


def _enable_sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while the daily flow writes; busy_timeout waits out a writer's lock.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_store_engine(url: str) -> Engine:
    """An engine for LOF_STORE_URL with its tables in place; StoreError (one line) if unusable."""
    shown = redact(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"LOF_STORE_URL={shown!r} is not a database URL; expected sqlite:///path/lof.db, "
            "postgresql+psycopg2://user:pw@host/db, mysql+pymysql://user:pw@host/db or dynamodb://"
        ) from None
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite and parsed.database and parsed.database != ":memory:":
        try:
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"LOF_STORE_URL={shown!r}: cannot create the folder of {parsed.database} "
                f"({exc.strerror}); point LOF_STORE_URL or LOF_HOME at a writable place"
            ) from None
    try:
        engine = sa.create_engine(parsed, pool_pre_ping=True, future=True)
    except (NoSuchModuleError, ArgumentError, ImportError) as exc:
        raise StoreError(
            f"LOF_STORE_URL={shown!r}: unsupported database ({type(exc).__name__}: {exc}); use "
            "sqlite:///, postgresql+psycopg2://, mysql+pymysql:// or dynamodb://"
        ) from None
    if is_sqlite:
        sa.event.listen(engine, "connect", _enable_sqlite_wal)
    try:
        call_with_retries(
            lambda: _create_tables(engine),
            is_transient=_is_transient,
            attempts=3,
            base_delay=0.2,
            what="creating the store tables",
        )
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StoreError(
            f"LOF_STORE_URL={shown!r} cannot be used: {_reason(exc)}; check the server is up, "
            "the credentials and the right to create tables"
        ) from None
    return engine


def _create_tables(engine: Engine) -> None:
    METADATA.create_all(engine, checkfirst=True)
    add_signal_columns(engine)


def add_signal_columns(engine: Engine) -> None:
    """Tables made before the early-warning signals get their columns (existing rows: no dated
    events, no reasons), so an upgrade keeps the stored history."""
    inspector = sa.inspect(engine)
    wanted = [(table, c) for table in (INCREMENTS, STATES) for c in EVENT_STATE_COLUMNS]
    wanted.append((PREDICTIONS, "reasons"))
    with engine.begin() as conn:
        for table in {t for t, _ in wanted}:
            present = {c["name"] for c in inspector.get_columns(table.name)}
            for t, name in wanted:
                if t is table and name not in present:
                    column = table.c[name]
                    kind = column.type.compile(dialect=engine.dialect)
                    default = " NOT NULL DEFAULT 0" if name in EVENT_STATE_COLUMNS else " NULL"
                    conn.execute(
                        sa.text(f"ALTER TABLE {table.name} ADD COLUMN {name} {kind}{default}")
                    )


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split())
    return f"{type(orig).__name__}: {text[:200]}"


class _SqlBase:
    """Engine handling shared by both stores: retries and clear errors."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = redact(url)
        self.engine = engine if engine is not None else create_store_engine(url)

    def _run(self, fn: Callable[[], T], *, what: str) -> T:
        try:
            return call_with_retries(fn, is_transient=_is_transient, what=what)
        except SQLAlchemyError as exc:
            raise StoreError(
                f"{what} failed on LOF_STORE_URL={self.url!r}: {_reason(exc)}; "
                "check the database server and rerun"
            ) from None

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def _write_day(
        self,
        *,
        day: date,
        tables: list[tuple[sa.Table, list[dict[str, Any]]]],
        days_table: sa.Table,
        fail_after_rows: int | None,
        what: str,
    ) -> None:
        total = sum(len(rows) for _, rows in tables)

        def transaction() -> None:
            written = 0
            with self.engine.begin() as conn:
                conn.execute(sa.delete(days_table).where(days_table.c.day == day))
                for table, _rows in tables:
                    conn.execute(sa.delete(table).where(table.c.day == day))
                for table, rows in tables:
                    for start in range(0, len(rows), CHUNK_ROWS):
                        chunk = rows[start : start + CHUNK_ROWS]
                        if fail_after_rows is not None and written + len(chunk) > fail_after_rows:
                            chunk = chunk[: fail_after_rows - written]
                            if chunk:
                                conn.execute(table.insert(), chunk)
                            raise base.SimulatedCrash(
                                f"simulated crash after {fail_after_rows} rows"
                            )
                        conn.execute(table.insert(), chunk)
                        written += len(chunk)
                base.crash_check(written, fail_after_rows)
                conn.execute(
                    days_table.insert(),
                    {
                        "day": day,
                        "rows": total,
                        "written_at": datetime.now(UTC).replace(tzinfo=None),
                    },
                )

        self._run(transaction, what=what)

    def _last_complete_day(self, days_table: sa.Table) -> date | None:
        def query() -> date | None:
            with self._read() as conn:
                value = conn.execute(sa.select(sa.func.max(days_table.c.day))).scalar()
            return None if value is None else base.as_date(value)

        return self._run(query, what=f"reading {days_table.name}")

    def _is_complete(self, days_table: sa.Table, day: date) -> bool:
        def query() -> bool:
            with self._read() as conn:
                found = conn.execute(
                    sa.select(days_table.c.day).where(days_table.c.day == day)
                ).first()
            return found is not None

        return self._run(query, what=f"reading {days_table.name}")

    def ping(self) -> None:
        self._run(lambda: self._ping(), what="reaching the store")

    def _ping(self) -> None:
        with self._read() as conn:
            conn.execute(sa.select(1))

    def close(self) -> None:
        self.engine.dispose()


class SqlFeatureStore(_SqlBase):
    """Features store on a SQL database (see the module docstring for the layout)."""

    def write_day(
        self,
        *,
        day: date,
        increments: pd.DataFrame,
        states: pd.DataFrame,
        _fail_after_rows: int | None = None,
    ) -> None:
        """Replace day ``day`` (increments and states) and mark it complete, in one transaction."""
        tables = []
        for table, frame, what in (
            (INCREMENTS, increments, "increments"),
            (STATES, states, "states"),
        ):
            rows = base.engagement_rows(frame, what=f"features {what} of {base.day_key(day)}")
            for row in rows:
                row["day"] = day
                row["activity_ids"] = base.encode_ids(row["activity_ids"])
                row["session_ids"] = base.encode_ids(row["session_ids"])
            tables.append((table, rows))
        self._write_day(
            day=day,
            tables=tables,
            days_table=FEATURE_DAYS,
            fail_after_rows=_fail_after_rows,
            what=f"writing features of {base.day_key(day)}",
        )

    def read_states(self, *, day: date, class_ids: Collection[int] | None = None) -> pd.DataFrame:
        return self._read_engagement(STATES, day=day, class_ids=class_ids)

    def read_increments(
        self, *, day: date, class_ids: Collection[int] | None = None
    ) -> pd.DataFrame:
        return self._read_engagement(INCREMENTS, day=day, class_ids=class_ids)

    def _read_engagement(
        self, table: sa.Table, *, day: date, class_ids: Collection[int] | None
    ) -> pd.DataFrame:
        if class_ids is not None and len(class_ids) == 0:
            return base.engagement_frame([])
        query = sa.select(*[c for c in table.c if c.name != "day"]).where(table.c.day == day)
        if class_ids is not None:
            query = query.where(table.c.class_id.in_(sorted({int(c) for c in class_ids})))

        def read() -> list[dict[str, Any]]:
            with self._read() as conn:
                rows = [dict(r._mapping) for r in conn.execute(query).fetchall()]
            for row in rows:
                row["activity_ids"] = base.decode_ids(row["activity_ids"])
                row["session_ids"] = base.decode_ids(row["session_ids"])
            return rows

        # Rows and manifest commit together, so a day's rows exist only once it is complete.
        return base.engagement_frame(self._run(read, what=f"reading {table.name}"))

    def last_complete_day(self) -> date | None:
        return self._last_complete_day(FEATURE_DAYS)

    def is_complete(self, *, day: date) -> bool:
        return self._is_complete(FEATURE_DAYS, day)


class SqlPredictionStore(_SqlBase):
    """Predictions store on a SQL database (see the module docstring for the layout)."""

    def write_day(
        self, *, day: date, predictions: pd.DataFrame, _fail_after_rows: int | None = None
    ) -> None:
        """Replace day ``day``'s predictions and mark it complete, in one transaction."""
        rows = base.prediction_rows(predictions, what=f"predictions of {base.day_key(day)}")
        for row in rows:
            row["day"] = day
            row["predicted_prob"] = base.dumps(row["predicted_prob"])
            row["features"] = base.dumps(row["features"])
            row["reasons"] = base.dumps(row["reasons"])
        self._write_day(
            day=day,
            tables=[(PREDICTIONS, rows)],
            days_table=PREDICTION_DAYS,
            fail_after_rows=_fail_after_rows,
            what=f"writing predictions of {base.day_key(day)}",
        )

    def _records(self, query: sa.Select, *, what: str) -> list[base.PredictionRecord]:
        def read() -> list[base.PredictionRecord]:
            with self._read() as conn:
                return [
                    base.prediction_record(r._mapping, day=base.as_date(r.day))
                    for r in conn.execute(query).fetchall()
                ]

        return self._run(read, what=what)

    def read_class_day(self, *, day: date, class_id: int) -> list[base.PredictionRecord]:
        query = (
            sa.select(PREDICTIONS)
            .where(PREDICTIONS.c.class_id == int(class_id), PREDICTIONS.c.day == day)
            .order_by(PREDICTIONS.c.user_id)
        )
        return self._records(query, what=f"reading predictions of class {class_id}")

    def read_student_history(self, *, class_id: int, user_id: int) -> list[base.PredictionRecord]:
        query = (
            sa.select(PREDICTIONS)
            .where(PREDICTIONS.c.class_id == int(class_id), PREDICTIONS.c.user_id == int(user_id))
            .order_by(PREDICTIONS.c.day)
        )
        return self._records(query, what=f"reading predictions of student {user_id}")

    def list_days(self, *, class_id: int) -> list[date]:
        query = (
            sa.select(PREDICTIONS.c.day)
            .where(PREDICTIONS.c.class_id == int(class_id))
            .distinct()
            .order_by(PREDICTIONS.c.day)
        )

        def read() -> list[date]:
            with self._read() as conn:
                return [base.as_date(v) for v in conn.execute(query).scalars()]

        return self._run(read, what=f"listing prediction days of class {class_id}")

    def last_complete_day(self) -> date | None:
        return self._last_complete_day(PREDICTION_DAYS)

    def is_complete(self, *, day: date) -> bool:
        return self._is_complete(PREDICTION_DAYS, day)
