"""SQL backend of the features and predictions stores (SQLAlchemy Core: SQLite, PostgreSQL, MySQL).

Tables (created on first use):

* ``lof_feature_increments`` / ``lof_feature_states``: one row per (day, class_id, user_id),
  primary key in that order, so reading one day (optionally some classes) is an index range on
  that day only. The five counts are integers; ``activity_ids`` / ``session_ids`` are the sorted
  ids joined by commas.
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
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TypeVar

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from lof.core.collector import no_cycle_collection
from lof.core.config import redact_url
from lof.core.errors import StoreError
from lof.core.retry import call_with_retries, is_transient_db_error
from lof.features.definitions import COUNT_COLUMNS
from lof.stores import base, compact

log = logging.getLogger(__name__)
T = TypeVar("T")

CHUNK_ROWS = 5_000
# MySQL's TEXT stops at 64 KB; a semester's session ids of a keen student can exceed it.
LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")

METADATA = sa.MetaData()


def _engagement_table(name: str, metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("class_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
        *[sa.Column(c, sa.BigInteger, nullable=False) for c in COUNT_COLUMNS],
        sa.Column("activity_ids", LONG_TEXT, nullable=False),
        sa.Column("session_ids", LONG_TEXT, nullable=False),
    )


def _days_table(name: str, metadata: sa.MetaData | None = None) -> sa.Table:
    return sa.Table(
        name,
        METADATA if metadata is None else metadata,
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("written_at", sa.DateTime, nullable=False),
    )


# The former layout (one full state row per student per day), read only by the migration.
LEGACY_METADATA = sa.MetaData()
LEGACY_INCREMENTS = _engagement_table("lof_feature_increments", LEGACY_METADATA)
LEGACY_STATES = _engagement_table("lof_feature_states", LEGACY_METADATA)
LEGACY_FEATURE_DAYS = _days_table("lof_feature_days", LEGACY_METADATA)

LONG_BLOB = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
FEATURE_BLOBS = sa.Table(
    "lof_feature_blobs",
    METADATA,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("part", sa.String(1), primary_key=True),
    sa.Column("class_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("data", LONG_BLOB, nullable=False),
)
FEATURE_MANIFEST = sa.Table(
    "lof_feature_manifest",
    METADATA,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("gen", sa.String(32), nullable=False),
    sa.Column("classes", LONG_TEXT, nullable=False),
    sa.Column("chain", sa.Integer, nullable=False),
    sa.Column("checkpoint", sa.Boolean, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("written_at", sa.DateTime, nullable=False),
)
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
PREDICTION_BODIES = sa.Table(
    "lof_prediction_bodies",
    METADATA,
    sa.Column("class_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("etag", sa.String(80), nullable=False),
    sa.Column("written_at", sa.DateTime, nullable=False),
    sa.Column("model_version", sa.String(200), nullable=False, server_default=""),
    sa.Column("body", LONG_BLOB, nullable=False),
)


# --- engine -----------------------------------------------------------------------------------


def new_generation() -> str:
    """A unique stamp per write of a day (lets a process trust the state it cached)."""
    return uuid.uuid4().hex


def _enable_sqlite_wal(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # WAL lets the API read while the daily flow writes; busy_timeout waits out a writer's lock.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_store_engine(url: str) -> Engine:
    """An engine for LOF_STORE_URL with its tables in place; StoreError (one line) if unusable."""
    shown = redact_url(url)
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
            is_transient=is_transient_db_error,
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
    """A predictions table made before the reasons gets its nullable ``reasons`` column
    (existing rows: no reasons), so an upgrade keeps the stored history."""
    inspector = sa.inspect(engine)
    present = {c["name"] for c in inspector.get_columns(PREDICTIONS.name)}
    if "reasons" in present:
        return
    kind = PREDICTIONS.c["reasons"].type.compile(dialect=engine.dialect)
    with engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {PREDICTIONS.name} ADD COLUMN reasons {kind} NULL"))


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split())
    return f"{type(orig).__name__}: {text[:200]}"


def insert_rows(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, object]]) -> None:
    """Insert ``rows`` (dicts holding every column of ``table``).

    On SQLite, one executemany of positional tuples converted column by column (each column's
    dialect conversion; once for a column holding one value in every row, such as the day):
    SQLAlchemy's per-row parameter processing costs about as much as SQLite's insert itself.
    Other dialects keep SQLAlchemy's path in chunks, which it batches into multi-row statements.
    """
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        for start in range(0, len(rows), CHUNK_ROWS):
            conn.execute(table.insert(), rows[start : start + CHUNK_ROWS])
        return
    compiled = table.insert().compile(dialect=conn.dialect)
    columns = []
    for name in compiled.positiontup or ():
        values = [row[name] for row in rows]
        process = table.c[name].type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        if process is not None:
            first = values[0]
            if all(value is first for value in values):
                values = [process(first)] * len(values)
            else:
                values = list(map(process, values))
        columns.append(values)
    conn.exec_driver_sql(compiled.string, list(zip(*columns, strict=True)))


class _SqlBase:
    """Engine handling shared by both stores: retries and clear errors."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = redact_url(url)
        self.engine = engine if engine is not None else create_store_engine(url)

    def _run(self, fn: Callable[[], T], *, what: str) -> T:
        try:
            return call_with_retries(fn, is_transient=is_transient_db_error, what=what)
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
        tables: list[tuple[sa.Table, Sequence[Mapping[str, object]]]],
        days_table: sa.Table,
        what: str,
    ) -> None:
        total = sum(len(rows) for _, rows in tables)

        def transaction() -> None:
            with self.engine.begin() as conn:
                conn.execute(sa.delete(days_table).where(days_table.c.day == day))
                for table, _rows in tables:
                    conn.execute(sa.delete(table).where(table.c.day == day))
                for table, rows in tables:
                    insert_rows(conn, table, rows)
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


class SqlFeatureStore(compact.CompactFeatures, _SqlBase):
    """Features store on a SQL database: compact per-class blobs (``lof.stores.compact``).

    ``lof_feature_blobs`` holds one row per (day, part, class_id) — the day's increment (I), its
    state delta or full state (S) and, on checkpoint days, the full state (C) — and
    ``lof_feature_manifest`` one row per complete day. A commit (its days' blobs and manifest
    rows, and any checkpoint it prunes) is one transaction.
    """

    def __init__(self, url: str, *, engine: Engine | None = None, legacy_ok: bool = False) -> None:
        super().__init__(url, engine=engine)
        if not legacy_ok:
            self._refuse_legacy()

    def _refuse_legacy(self) -> None:
        def legacy_days() -> int:
            if not sa.inspect(self.engine).has_table(LEGACY_FEATURE_DAYS.name):
                return 0
            with self._read() as conn:
                return int(
                    conn.execute(
                        sa.select(sa.func.count()).select_from(LEGACY_FEATURE_DAYS)
                    ).scalar_one()
                )

        found = self._run(legacy_days, what="checking the features store layout")
        if found:
            raise StoreError(
                f"the features store at LOF_STORE_URL={self.url!r} holds {found} day(s) in the "
                "former layout (a full state per day); run `"
                + compact.MIGRATE_COMMAND
                + "` once to convert it, then rerun"
            )

    def _guarded(self, fn: Callable[[], T], what: str) -> T:
        return self._run(fn, what=what)

    def _days(self, *, first: date | None, last: date) -> dict[date, compact.DayMeta]:
        query = sa.select(FEATURE_MANIFEST).where(FEATURE_MANIFEST.c.day <= last)
        if first is not None:
            query = query.where(FEATURE_MANIFEST.c.day >= first)
        with self._read() as conn:
            rows = conn.execute(query).fetchall()
        out = {}
        for row in rows:
            day = base.as_date(row.day)
            out[day] = compact.DayMeta(
                day=day,
                classes=base.decode_ids(row.classes),
                chain=int(row.chain),
                checkpoint=bool(row.checkpoint),
                rows=int(row.rows),
                stamp=str(row.gen),
            )
        return out

    def _blobs(
        self, meta: compact.DayMeta, part: str, class_ids: Collection[int] | None
    ) -> dict[int, bytes]:
        if class_ids is not None and len(class_ids) == 0:
            return {}
        table = FEATURE_BLOBS
        query = sa.select(table.c.class_id, table.c.data).where(
            table.c.day == meta.day, table.c.part == part
        )
        if class_ids is not None:
            query = query.where(table.c.class_id.in_(sorted({int(c) for c in class_ids})))
        with self._read() as conn:
            return {int(r.class_id): bytes(r.data) for r in conn.execute(query).fetchall()}

    def _commit(
        self,
        writes: list[compact.DayWrite],
        *,
        drop_checkpoints: list[compact.DayMeta],
    ) -> dict[date, str]:
        stamps = {w.day: new_generation() for w in writes}
        now = datetime.now(UTC).replace(tzinfo=None)
        with self.engine.begin() as conn:
            for write in writes:
                conn.execute(sa.delete(FEATURE_MANIFEST).where(FEATURE_MANIFEST.c.day == write.day))
                conn.execute(sa.delete(FEATURE_BLOBS).where(FEATURE_BLOBS.c.day == write.day))
                rows = [
                    {"day": write.day, "part": part, "class_id": class_id, "data": data}
                    for (part, class_id), data in sorted(write.blobs.items())
                ]
                for start in range(0, len(rows), 500):
                    conn.execute(FEATURE_BLOBS.insert(), rows[start : start + 500])
                conn.execute(
                    FEATURE_MANIFEST.insert(),
                    {
                        "day": write.day,
                        "gen": stamps[write.day],
                        "classes": base.encode_ids(write.classes),
                        "chain": write.chain,
                        "checkpoint": write.checkpoint,
                        "rows": write.rows,
                        "written_at": now,
                    },
                )
            for meta in drop_checkpoints:
                conn.execute(
                    sa.delete(FEATURE_BLOBS).where(
                        FEATURE_BLOBS.c.day == meta.day, FEATURE_BLOBS.c.part == compact.CHECKPOINT
                    )
                )
                conn.execute(
                    sa.update(FEATURE_MANIFEST)
                    .where(FEATURE_MANIFEST.c.day == meta.day)
                    .values(checkpoint=False)
                )
        return stamps

    def _drop_replaced(self) -> None:
        """Nothing to do: a day's rows are replaced in one transaction, none outlive it."""

    def _drop_days(self, before: date) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(FEATURE_BLOBS).where(FEATURE_BLOBS.c.day < before))
            conn.execute(sa.delete(FEATURE_MANIFEST).where(FEATURE_MANIFEST.c.day < before))

    def last_complete_day(self) -> date | None:
        return self._last_complete_day(FEATURE_MANIFEST)

    def is_complete(self, *, day: date) -> bool:
        return self._is_complete(FEATURE_MANIFEST, day)


class SqlPredictionStore(_SqlBase):
    """Predictions store on a SQL database (see the module docstring for the layout)."""

    def write_day(self, *, day: date, predictions: pd.DataFrame) -> None:
        """Replace day ``day``'s predictions and mark it complete, in one transaction."""
        with no_cycle_collection():
            self._write_predictions(day=day, predictions=predictions)

    def _write_predictions(self, *, day: date, predictions: pd.DataFrame) -> None:
        rows = base.prediction_rows(predictions, what=f"predictions of {base.day_key(day)}")
        now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        for row in rows:
            row["day"] = day
            for column in base.JSON_COLUMNS:
                row[column] = base.dumps(row[column])
        bodies = [
            {
                "class_id": class_id,
                "day": day,
                "etag": body.etag,
                "written_at": now,
                "model_version": body.model_version,
                "body": body.gzip,
            }
            for class_id, body in base.class_day_bodies(
                rows, day=day, written_at=now, encoded=True
            ).items()
        ]
        self._write_day(
            day=day,
            tables=[(PREDICTIONS, rows), (PREDICTION_BODIES, bodies)],
            days_table=PREDICTION_DAYS,
            what=f"writing predictions of {base.day_key(day)}",
        )

    def _records(self, query: sa.Select, *, what: str) -> list[base.PredictionRecord]:
        def read() -> list[base.PredictionRecord]:
            with self._read() as conn:
                return [
                    base.prediction_record(r._asdict(), day=base.as_date(r.day))
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

    def read_class_body(self, *, day: date, class_id: int) -> base.StoredBody | None:
        """One primary-key lookup; the body commits with the day's rows, so it is never ahead."""
        table = PREDICTION_BODIES
        query = sa.select(
            table.c.etag, table.c.written_at, table.c.model_version, table.c.body
        ).where(table.c.class_id == int(class_id), table.c.day == day)

        def read() -> base.StoredBody | None:
            with self._read() as conn:
                row = conn.execute(query).first()
            return None if row is None else _stored_body(row._mapping)

        return self._run(read, what=f"reading the body of class {class_id}")

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

    # --- erasure and retention ----------------------------------------------------------------

    def user_class_days(self, user_ids: Collection[int]) -> list[tuple[int, int, date]]:
        """(user_id, class_id, day) of every stored prediction of these students. A read of
        the whole table (no index leads by user_id): erasures are rare, daily writes are not."""
        ids = sorted({int(u) for u in user_ids})
        query = (
            sa.select(PREDICTIONS.c.user_id, PREDICTIONS.c.class_id, PREDICTIONS.c.day)
            .where(PREDICTIONS.c.user_id.in_(ids))
            .order_by(PREDICTIONS.c.user_id, PREDICTIONS.c.class_id, PREDICTIONS.c.day)
        )

        def read() -> list[tuple[int, int, date]]:
            with self._read() as conn:
                return [(int(u), int(c), base.as_date(d)) for u, c, d in conn.execute(query)]

        return self._run(read, what="finding students' predictions")

    def erase_users(self, user_ids: Collection[int]) -> int:
        """Delete these students' predictions and rebuild each class-day body that held them,
        in one transaction; returns the rows deleted (a rerun deletes none)."""
        ids = {int(u) for u in user_ids}
        table, bodies = PREDICTIONS, PREDICTION_BODIES

        def transaction() -> int:
            now = datetime.now(UTC).replace(microsecond=0)
            with self.engine.begin() as conn:
                held = conn.execute(
                    sa.select(table.c.class_id, table.c.day)
                    .where(table.c.user_id.in_(sorted(ids)))
                    .distinct()
                ).all()
                removed = conn.execute(sa.delete(table).where(table.c.user_id.in_(sorted(ids))))
                for class_id, day in held:
                    where = sa.and_(bodies.c.class_id == class_id, bodies.c.day == day)
                    row = conn.execute(sa.select(bodies).where(where)).first()
                    if row is None:
                        continue
                    body = _stored_body(row._mapping)
                    rebuilt = base.body_without(body, ids, written_at=now)
                    if rebuilt is None:
                        conn.execute(sa.delete(bodies).where(where))
                    elif rebuilt is not body:
                        conn.execute(
                            sa.update(bodies)
                            .where(where)
                            .values(
                                etag=rebuilt.etag,
                                written_at=now.replace(tzinfo=None),
                                model_version=rebuilt.model_version,
                                body=rebuilt.gzip,
                            )
                        )
                return int(removed.rowcount or 0)

        return self._run(transaction, what="erasing students from the predictions")

    def purge_before(self, cut: date) -> int:
        """Delete the predictions, bodies and manifests of the days before ``cut`` in one
        transaction; returns how many complete days went."""

        def transaction() -> int:
            with self.engine.begin() as conn:
                days = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(PREDICTION_DAYS)
                    .where(PREDICTION_DAYS.c.day < cut)
                ).scalar_one()
                for table in (PREDICTIONS, PREDICTION_BODIES, PREDICTION_DAYS):
                    conn.execute(sa.delete(table).where(table.c.day < cut))
                return int(days)

        return self._run(transaction, what="purging predictions")

    def last_complete_day(self) -> date | None:
        return self._last_complete_day(PREDICTION_DAYS)

    def is_complete(self, *, day: date) -> bool:
        return self._is_complete(PREDICTION_DAYS, day)


def _stored_body(row: sa.RowMapping) -> base.StoredBody:
    written = row["written_at"]
    if isinstance(written, str):
        written = datetime.fromisoformat(written)
    return base.StoredBody(
        gzip=bytes(row["body"]),
        etag=row["etag"],
        written_at=written.replace(tzinfo=UTC),
        model_version=row["model_version"] or "",
    )
