"""LEB2 adapter: the subset of the LMS database lof reads (docs/domain.md §2.1), through
SQLAlchemy Core.

Every query is parameterized, ignores soft-deleted rows (``deleted_at`` set) and returns the
same frame on SQLite and MySQL/MariaDB. LEB2 datetimes are naive local times.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    and_,
    cast,
    create_engine,
    func,
    inspect,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import (
    ArgumentError,
    NoSuchModuleError,
    SQLAlchemyError,
)
from sqlalchemy.sql.elements import ColumnElement, Label

from lof.core.calendar import end_of_day
from lof.core.config import (
    DEFAULT_GRACE_DAYS,
    DEFAULT_ONGOING_WINDOW_MONTHS,
    LabelRule,
    redact_url,
)
from lof.core.errors import DataError, SourceError
from lof.core.retry import call_with_retries
from lof.core.retry import is_transient_db_error as is_transient

log = logging.getLogger(__name__)
T = TypeVar("T")

TABLE_NAMES: tuple[str, ...] = (
    "semesters",
    "classes",
    "course_outcomes",
    "activities",
    "criterias",
    "cri_levels",
    "act_sub_points",
    "activity_submissions",
)
ULTI = "ulti"
OBEM = "obem"
# Far enough in the future to mean "no cutoff" and still fit a MySQL DATETIME.
NO_CUTOFF = datetime(9999, 1, 1)
_CHUNK = 500


def leb2_tables(metadata: MetaData) -> dict[str, Table]:
    """Define the tables of docs/domain.md §2.1 on ``metadata`` (the synthetic university's too)."""

    def deleted_at() -> Column:
        return Column("deleted_at", DateTime, nullable=True)

    tables = [
        Table(
            "semesters",
            metadata,
            Column("id", Integer, primary_key=True),
            Column("slug", String(32), nullable=False),
        ),
        Table(
            "classes",
            metadata,
            Column("id", Integer, primary_key=True),
            Column("code", String(64), nullable=False),
            Column("type", String(32), nullable=False),
            Column("semester_id", Integer, nullable=False, index=True),
            deleted_at(),
        ),
        Table(
            "course_outcomes",
            metadata,
            Column("id", Integer, primary_key=True),
            Column("class_id", Integer, nullable=False, index=True),
            Column("course_id", Integer, nullable=True),
            Column("clo_id", Integer, nullable=True),
            Column("type", String(32), nullable=False),
            deleted_at(),
        ),
        Table(
            "activities",
            metadata,
            Column("id", Integer, primary_key=True),
            Column("class_id", Integer, nullable=False, index=True),
            Column("type", String(16), nullable=False),
            Column("start_date", DateTime, nullable=False),
            Column("due_date", DateTime, nullable=True),
            deleted_at(),
        ),
        Table(
            "criterias",
            metadata,
            Column("id", Integer, primary_key=True),
            Column("clo_id", Integer, nullable=False, index=True),
            deleted_at(),
        ),
        Table(
            "cri_levels",
            metadata,
            Column("id", Integer, primary_key=True),
            Column("cri_id", Integer, nullable=False, index=True),
            Column("level", Integer, nullable=False),
            Column("flag", Integer, nullable=False, default=0),
            deleted_at(),
        ),
        Table(
            "act_sub_points",
            metadata,
            Column("id", Integer, primary_key=True),
            Column("activity_id", Integer, nullable=False),
            Column("user_id", Integer, nullable=False),
            Column("cri_id", Integer, nullable=False),
            Column("cri_level_id", Integer, nullable=False),
            Index("ix_act_sub_points_activity_user", "activity_id", "user_id"),
        ),
        Table(
            "activity_submissions",
            metadata,
            Column("id", Integer, primary_key=True),
            Column("activity_id", Integer, nullable=False),
            Column("user_id", Integer, nullable=False),
            Column("submitted_at", DateTime, nullable=False),
            Column("spent_time", String(16), nullable=True),
            deleted_at(),
            Index("ix_activity_submissions_activity_user", "activity_id", "user_id"),
        ),
    ]
    return {table.name: table for table in tables}


METADATA = MetaData()
TABLES = leb2_tables(METADATA)
semesters_t = TABLES["semesters"]
classes_t = TABLES["classes"]
outcomes_t = TABLES["course_outcomes"]
activities_t = TABLES["activities"]
criterias_t = TABLES["criterias"]
levels_t = TABLES["cri_levels"]
points_t = TABLES["act_sub_points"]
submissions_t = TABLES["activity_submissions"]


# --- connection --------------------------------------------------------------------------------


def _reason(exc: BaseException, url: str) -> str:
    """The driver's own one-line reason, with any password removed."""
    orig = getattr(exc, "orig", None) or exc
    text = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    try:
        password = make_url(url).password
    except ArgumentError:
        password = None
    if password:
        text = text.replace(str(password), "***")
    return text


def _engine_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _run(engine: Engine, what: str, fn: Callable[[Connection], T]) -> T:
    """Run ``fn(connection)`` with retries on transient errors; others become one SourceError."""

    def attempt() -> T:
        with engine.connect() as conn:
            return fn(conn)

    try:
        return call_with_retries(attempt, is_transient=is_transient, what=f"LEB2 {what}")
    except SQLAlchemyError as exc:
        raise SourceError(
            f"LEB2 {what} failed on LOF_LEB2_URL={_engine_url(engine)}: "
            f"{_reason(exc, engine.url.render_as_string(hide_password=False))}; "
            "check that LOF_LEB2_URL points at the LEB2 database and the server is up"
        ) from None


def connect(url: str) -> Engine:
    """An engine on LEB2, checked: it answers and holds the tables lof reads."""
    shown = redact_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise SourceError(
            f"LOF_LEB2_URL={shown} is not a database URL; "
            "expected e.g. mysql+pymysql://user:password@host/leb2 or sqlite:///path/leb2.db"
        ) from None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        on_disk = database not in ("", ":memory:") and not database.startswith("file:")
        if on_disk and not Path(database).is_file():
            raise SourceError(
                f"LOF_LEB2_URL={shown}: no such SQLite file {database}; "
                "point LOF_LEB2_URL at the LEB2 database (or run `lof synth` for a demo one)"
            )
    try:
        engine = create_engine(parsed, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise SourceError(
            f"LOF_LEB2_URL={shown} cannot be used ({type(exc).__name__}: {_reason(exc, url)}); "
            "expected e.g. mysql+pymysql://user:password@host/leb2"
        ) from None

    def tables(conn: Connection) -> set[str]:
        return set(inspect(conn).get_table_names())

    try:
        present = call_with_retries(
            lambda: _with_connection(engine, tables),
            is_transient=is_transient,
            attempts=3,
            what="LEB2 connection",
        )
    except SQLAlchemyError as exc:
        engine.dispose()
        raise SourceError(
            f"cannot connect to LEB2 at LOF_LEB2_URL={shown}: {_reason(exc, url)}; "
            "check the host, the credentials and the database name in LOF_LEB2_URL"
        ) from None
    missing = [name for name in TABLE_NAMES if name not in present]
    if missing:
        engine.dispose()
        raise SourceError(
            f"LEB2 at LOF_LEB2_URL={shown} lacks the tables {', '.join(missing)}; "
            "point LOF_LEB2_URL at the LEB2 database (or run `lof synth` for a demo one)"
        )
    return engine


def _with_connection(engine: Engine, fn: Callable[[Connection], T]) -> T:
    with engine.connect() as conn:
        return fn(conn)


# --- helpers -------------------------------------------------------------------------------------


def _chunks(values: Iterable[int], size: int = _CHUNK) -> list[list[int]]:
    items = sorted({int(v) for v in values})
    return [items[i : i + size] for i in range(0, len(items), size)]


def _fetch(engine: Engine, what: str, statements: Sequence[Select]) -> list[tuple]:
    def run(conn: Connection) -> list[tuple]:
        rows: list[tuple] = []
        for stmt in statements:
            rows.extend(tuple(row) for row in conn.execute(stmt).fetchall())
        return rows

    return _run(engine, what, run)


def _frame(rows: list[tuple], columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame.from_records(rows, columns=list(columns))


def _as_text(column: ColumnElement[datetime]) -> Label[str]:
    """A DATETIME column read without SQLAlchemy's per-value conversion (SQLite keeps text;
    pymysql still returns datetimes): ``_datetimes`` converts the whole column at once."""
    return type_coerce(column, String).label(column.name)


def _datetimes(values: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_dtype(values):
        return values.astype("datetime64[ns]")
    # cache=False: deciding whether to cache walks the values as Python objects, which costs
    # more than converting them
    converted = pd.to_datetime(values, errors="coerce", format="ISO8601", cache=False)
    return converted.astype("datetime64[ns]")


_HMS = re.compile(r"^\s*(\d+):([0-5]?\d):([0-5]?\d)\s*$")


def parse_spent_time(values: pd.Series) -> pd.Series:
    """'H:MM:SS' strings to seconds (float); NULL or anything else becomes NaN."""
    parts = values.astype("string").str.extract(_HMS)
    hours, minutes, seconds = (pd.to_numeric(parts[i], errors="coerce") for i in range(3))
    return (hours * 3600 + minutes * 60 + seconds).astype("float64").rename(values.name)


def _live(*tables: Table, deleted_before: datetime | None = None) -> list[ColumnElement[bool]]:
    """Rows not deleted; with ``deleted_before``, rows deleted at or after it count as live
    (the LMS as it stood then: a retrain as of D sees what was there on D)."""
    if deleted_before is None:
        return [table.c.deleted_at.is_(None) for table in tables]
    return [
        or_(table.c.deleted_at.is_(None), table.c.deleted_at >= deleted_before) for table in tables
    ]


def _month_back(moment: datetime, months: int) -> datetime:
    """``moment`` minus whole months, the day clamped to the target month's length."""
    month_index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(month_index, 12)
    month += 1
    next_month = date(year + (month == 12), month % 12 + 1, 1)
    last_day = (next_month - timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def _ulti_outcome_join(class_col: ColumnElement[int]) -> ColumnElement[bool]:
    return and_(
        outcomes_t.c.class_id == class_col,
        outcomes_t.c.type == ULTI,
        outcomes_t.c.deleted_at.is_(None),
    )


def _required_by_criterion(
    engine: Engine, class_ids: list[int], what: str, deleted_before: datetime | None = None
) -> pd.DataFrame:
    """class_id, cri_id, required_level (max flag=1 level) for the live ulti criteria."""
    statements = [
        select(outcomes_t.c.class_id, criterias_t.c.id, func.max(levels_t.c.level))
        .select_from(
            outcomes_t.join(criterias_t, criterias_t.c.clo_id == outcomes_t.c.id).join(
                levels_t, levels_t.c.cri_id == criterias_t.c.id
            )
        )
        .where(
            outcomes_t.c.class_id.in_(chunk),
            outcomes_t.c.type == ULTI,
            levels_t.c.flag == 1,
            *_live(outcomes_t, criterias_t, levels_t, deleted_before=deleted_before),
        )
        .group_by(outcomes_t.c.class_id, criterias_t.c.id)
        for chunk in _chunks(class_ids)
    ]
    frame = _frame(_fetch(engine, what, statements), ["class_id", "cri_id", "required_level"])
    return frame.astype("int64")


# --- queries -------------------------------------------------------------------------------------


def required_levels(
    engine: Engine, *, class_ids: Collection[int], deleted_before: datetime | None = None
) -> pd.DataFrame:
    """class_id, required_level: the mean of the flag=1 levels of the class's ulti criteria,
    rounded half up.

    The attainment label averages a student's levels over the class's activities, so the
    level it is compared with averages the criteria's own requirements the same way: a student
    who meets each criterion's requirement is not below the class's required level.
    """
    per_cri = _required_by_criterion(engine, list(class_ids), "required levels", deleted_before)
    out = per_cri.groupby("class_id", as_index=False)["required_level"].mean()
    out["required_level"] = _round_half_up(out["required_level"])
    return out.sort_values("class_id").reset_index(drop=True).astype("int64")


def _first_starts(
    engine: Engine,
    *,
    extra: Sequence[ColumnElement[bool]],
    what: str,
    deleted_before: datetime | None = None,
) -> pd.DataFrame:
    """Live OBEM classes with a live ulti outcome: code, slug, first activity start, stats."""
    has_ulti = select(outcomes_t.c.id).where(_ulti_outcome_join(classes_t.c.id)).exists()
    stmt = (
        select(
            classes_t.c.id,
            classes_t.c.code,
            semesters_t.c.slug,
            func.min(activities_t.c.start_date),
            func.max(activities_t.c.start_date),
            func.max(activities_t.c.due_date),
            func.count(activities_t.c.id),
        )
        .select_from(
            classes_t.join(activities_t, activities_t.c.class_id == classes_t.c.id).join(
                semesters_t, semesters_t.c.id == classes_t.c.semester_id
            )
        )
        .where(
            classes_t.c.type == OBEM,
            has_ulti,
            *_live(classes_t, activities_t, deleted_before=deleted_before),
            *extra,
        )
        .group_by(classes_t.c.id, classes_t.c.code, semesters_t.c.slug)
        .order_by(classes_t.c.id)
    )
    columns = ["class_id", "code", "semester", "first_start", "last_start", "last_due", "n"]
    frame = _frame(_fetch(engine, what, [stmt]), columns)
    for column in ("first_start", "last_start", "last_due"):
        frame[column] = _datetimes(frame[column])
    frame["class_id"] = frame["class_id"].astype("int64")
    frame["n"] = frame["n"].astype("int64")
    return frame


def ongoing_classes(
    engine: Engine,
    *,
    day: date,
    window_months: int = DEFAULT_ONGOING_WINDOW_MONTHS,
    grace_days: int = DEFAULT_GRACE_DAYS,
) -> pd.DataFrame:
    """Classes ongoing on ``day`` (docs/domain.md §2.1) with their first activity start and
    required level.

    Ongoing: OBEM, live, with a live ulti outcome, its first live activity started by the end of
    ``day``, and ``day`` not past the class's last day plus ``grace_days`` (LOF_GRACE_DAYS). The
    last day is the latest due date of its live activities, or a later activity start (an
    activity opened after the last due date keeps the class running). A class whose activities
    have no due date at all is ongoing while one of them started within the ``window_months``
    months before the end of ``day`` (LOF_ONGOING_WINDOW_MONTHS). A class without a required
    level (no flag=1 level on its ulti criteria) cannot be scored and is left out.
    """
    until = end_of_day(day)
    since_window = _month_back(until, window_months)
    since_grace = datetime.combine(day - timedelta(days=grace_days), time.min)
    # A cheap superset in SQL (a live activity recent enough to matter); the exact rule below.
    recent_t = activities_t.alias("recent")
    recent = (
        select(recent_t.c.id)
        .where(
            recent_t.c.class_id == classes_t.c.id,
            recent_t.c.deleted_at.is_(None),
            or_(
                recent_t.c.due_date >= since_grace,
                recent_t.c.start_date >= min(since_grace, since_window),
            ),
        )
        .exists()
    )
    frame = _first_starts(engine, extra=[recent], what="ongoing classes")
    frame = frame[ongoing_mask(frame, day=day, window_months=window_months, grace_days=grace_days)]
    required = required_levels(engine, class_ids=frame["class_id"].tolist())
    out = frame.merge(required, on="class_id", how="left")
    missing = out[out["required_level"].isna()]
    if len(missing):
        log.warning(
            "LEB2 classes %s are ongoing but have no required level (flag=1) on their ulti "
            "criteria; they are not scored",
            ", ".join(str(c) for c in missing["class_id"]),
        )
    out = out.dropna(subset=["required_level"])
    out = out[["class_id", "code", "semester", "first_start", "required_level"]]
    out = out.astype({"class_id": "int64", "required_level": "int64"})
    return out.sort_values("class_id").reset_index(drop=True)


def ongoing_mask(
    classes: pd.DataFrame, *, day: date, window_months: int, grace_days: int
) -> pd.Series:
    """Which rows of ``classes`` (first_start, last_start, last_due) are ongoing on ``day``."""
    until = pd.Timestamp(end_of_day(day))
    started = classes["first_start"] < until
    last = classes[["last_start", "last_due"]].max(axis=1)
    before_end = last.dt.normalize() + pd.Timedelta(days=grace_days) >= pd.Timestamp(day)
    no_due = classes["last_due"].isna()
    in_window = classes["last_start"] >= pd.Timestamp(_month_back(end_of_day(day), window_months))
    return started & ((~no_due & before_end) | (no_due & in_window))


def finished_classes(
    engine: Engine, *, as_of: date, semesters: list[str] | None = None, point_in_time: bool = False
) -> pd.DataFrame:
    """OBEM ulti classes with more than one activity, all started and due before ``as_of``.

    ``point_in_time``: classes and activities deleted on or after ``as_of`` count as live.
    """
    extra: list[ColumnElement[bool]] = []
    if semesters is not None:
        known = set(_semester_slugs(engine))
        unknown = [s for s in semesters if s not in known]
        if unknown:
            raise DataError(
                f"semester {', '.join(unknown)} not found in LEB2 (known: "
                f"{', '.join(sorted(known)) or 'none'}); pass slugs like 1/2022"
            )
        extra.append(semesters_t.c.slug.in_(list(semesters)))
    cutoff = pd.Timestamp(datetime.combine(as_of, time.min))
    frame = _first_starts(
        engine,
        extra=extra,
        what="finished classes",
        deleted_before=cutoff.to_pydatetime() if point_in_time else None,
    )
    last = frame[["last_start", "last_due"]].max(axis=1)
    done = (
        (frame["n"] > 1)
        & (frame["last_start"] < cutoff)
        & (frame["last_due"].isna() | (frame["last_due"] < cutoff))
    )
    out = frame.assign(last_day=last.dt.date, n_activities=frame["n"])[done]
    out = out[["class_id", "code", "semester", "first_start", "last_day", "n_activities"]]
    return out.sort_values("class_id").reset_index(drop=True)


def _semester_slugs(engine: Engine) -> list[str]:
    rows = _fetch(engine, "semesters", [select(semesters_t.c.slug)])
    return [str(row[0]) for row in rows]


def semesters(engine: Engine) -> pd.DataFrame:
    """semester_id, slug, first_start, last_day (from the live classes' live activities)."""
    stmt = (
        select(
            semesters_t.c.id,
            semesters_t.c.slug,
            func.min(activities_t.c.start_date),
            func.max(activities_t.c.start_date),
            func.max(activities_t.c.due_date),
        )
        .select_from(
            semesters_t.outerjoin(
                classes_t,
                and_(classes_t.c.semester_id == semesters_t.c.id, classes_t.c.deleted_at.is_(None)),
            ).outerjoin(
                activities_t,
                and_(
                    activities_t.c.class_id == classes_t.c.id,
                    activities_t.c.deleted_at.is_(None),
                ),
            )
        )
        .group_by(semesters_t.c.id, semesters_t.c.slug)
        .order_by(semesters_t.c.id)
    )
    columns = ["semester_id", "slug", "first_start", "last_start", "last_due"]
    frame = _frame(_fetch(engine, "semesters", [stmt]), columns)
    for column in ("first_start", "last_start", "last_due"):
        frame[column] = _datetimes(frame[column])
    last = frame[["last_start", "last_due"]].max(axis=1)
    frame["last_day"] = [None if pd.isna(v) else v.date() for v in last]
    frame["semester_id"] = frame["semester_id"].astype("int64")
    frame["slug"] = frame["slug"].astype(str)
    return frame[["semester_id", "slug", "first_start", "last_day"]].reset_index(drop=True)


RECORD_COLUMNS: tuple[str, ...] = (
    "class_id",
    "user_id",
    "activity_id",
    "activity_start",
    "due_date",
    "cri_id",
    "level",
    "required_level",
    "submission_id",
    "submitted_at",
    "spent_seconds",
    "submissions",
)


def assessed_records(
    engine: Engine,
    *,
    class_ids: Collection[int],
    until: datetime | None,
    deleted_before: datetime | None = None,
) -> pd.DataFrame:
    """The assessed records (docs/domain.md §2.1) of ``class_ids`` as they stood just before
    ``until``.

    One row per act_sub_points row whose activity, ulti criterion, level row and the student's
    latest submission (before ``until``) are all live; ``until`` is naive local time, None = now.
    ``deleted_before``: a row deleted at or after it counts as live (a retrain as of that day).
    """
    ids = list(class_ids)
    cutoff = NO_CUTOFF if until is None else until
    rows = assessed_rows(engine, class_ids=ids, cutoff=cutoff, deleted_before=deleted_before)
    return finish_records(engine, rows, ids, deleted_before=deleted_before)


ASSESSED_ROW_COLUMNS: tuple[str, ...] = (
    "class_id",
    "user_id",
    "activity_id",
    "activity_start",
    "due_date",
    "cri_id",
    "level",
    "cri_level_id",
    "submission_id",
    "submitted_at",
    "spent_time",
    "submissions",
)


def assessed_rows(
    engine: Engine,
    *,
    class_ids: Collection[int],
    cutoff: datetime,
    activity_ids: Collection[int] | None = None,
    deleted_before: datetime | None = None,
) -> pd.DataFrame:
    """Points joined to the student's latest submission before ``cutoff`` (columns
    ``ASSESSED_ROW_COLUMNS``), before required levels; optionally only some activities.
    ``deleted_before``: a row deleted at or after it counts as live."""
    ids = list(class_ids)
    if activity_ids is not None:
        chunks = [(activities_t.c.id, chunk) for chunk in _chunks(activity_ids)]
    else:
        chunks = [(activities_t.c.class_id, chunk) for chunk in _chunks(ids)]
    point_statements = [
        select(
            activities_t.c.class_id,
            points_t.c.user_id,
            points_t.c.activity_id,
            _as_text(activities_t.c.start_date),
            _as_text(activities_t.c.due_date),
            points_t.c.cri_id,
            levels_t.c.level,
            points_t.c.cri_level_id,
        )
        .select_from(
            points_t.join(activities_t, activities_t.c.id == points_t.c.activity_id)
            .join(classes_t, classes_t.c.id == activities_t.c.class_id)
            .join(criterias_t, criterias_t.c.id == points_t.c.cri_id)
            .join(outcomes_t, outcomes_t.c.id == criterias_t.c.clo_id)
            .join(
                levels_t,
                and_(
                    levels_t.c.id == points_t.c.cri_level_id, levels_t.c.cri_id == points_t.c.cri_id
                ),
            )
        )
        .where(
            column.in_(chunk),
            activities_t.c.start_date < cutoff,
            outcomes_t.c.class_id == activities_t.c.class_id,
            outcomes_t.c.type == ULTI,
            *_live(
                classes_t,
                activities_t,
                criterias_t,
                outcomes_t,
                levels_t,
                deleted_before=deleted_before,
            ),
        )
        for column, chunk in chunks
    ]
    submission_statements = [
        select(
            submissions_t.c.activity_id,
            submissions_t.c.user_id,
            submissions_t.c.id,
            _as_text(submissions_t.c.submitted_at),
            submissions_t.c.spent_time,
        )
        .select_from(
            submissions_t.join(activities_t, activities_t.c.id == submissions_t.c.activity_id)
        )
        .where(
            column.in_(chunk),
            *_live(activities_t, submissions_t, deleted_before=deleted_before),
            activities_t.c.start_date < cutoff,
            submissions_t.c.submitted_at < cutoff,
        )
        for column, chunk in chunks
    ]

    def run(conn: Connection) -> tuple[list[tuple], list[tuple]]:
        # fetchall: one driver call per statement, not a Python round trip per row
        points = [tuple(r) for stmt in point_statements for r in conn.execute(stmt).fetchall()]
        subs = [tuple(r) for stmt in submission_statements for r in conn.execute(stmt).fetchall()]
        return points, subs

    point_rows, sub_rows = _run(engine, "assessed records", run)
    points = _frame(
        point_rows,
        [
            "class_id",
            "user_id",
            "activity_id",
            "activity_start",
            "due_date",
            "cri_id",
            "level",
            "cri_level_id",
        ],
    )
    subs = _frame(
        sub_rows, ["activity_id", "user_id", "submission_id", "submitted_at", "spent_time"]
    )
    subs["submitted_at"] = _datetimes(subs["submitted_at"])
    # The latest submission is the one assessed; the count keeps resubmissions for feature 9.
    submissions = subs.groupby(["activity_id", "user_id"]).size().rename("submissions")
    latest = subs.sort_values(
        ["activity_id", "user_id", "submitted_at", "submission_id"]
    ).drop_duplicates(["activity_id", "user_id"], keep="last")
    latest = latest.join(submissions, on=["activity_id", "user_id"])
    records = points.merge(latest, on=["activity_id", "user_id"], how="inner")
    return records.loc[:, list(ASSESSED_ROW_COLUMNS)]


def finish_records(
    engine: Engine,
    records: pd.DataFrame,
    class_ids: list[int],
    *,
    deleted_before: datetime | None = None,
) -> pd.DataFrame:
    """Assessed rows -> the assessed records frame: required levels, datetimes, seconds, order."""
    records = records.reset_index(drop=True)
    required = _required_by_criterion(engine, class_ids, "required levels", deleted_before)
    by_class = required.groupby("class_id")["required_level"].max()
    records = records.merge(required[["cri_id", "required_level"]], on="cri_id", how="left")
    fallback = records["class_id"].map(by_class)
    records["required_level"] = records["required_level"].fillna(fallback)
    if records["required_level"].notna().all():
        records["required_level"] = records["required_level"].astype("int64")
    records["activity_start"] = _datetimes(records["activity_start"])
    records["due_date"] = _datetimes(records["due_date"])
    records["spent_seconds"] = parse_spent_time(records["spent_time"])
    integer_columns = ("class_id", "user_id", "activity_id", "cri_id", "level", "submission_id")
    for column in (*integer_columns, "submissions"):
        records[column] = records[column].astype("int64")
    records = records.sort_values(["class_id", "user_id", "activity_id", "cri_id", "cri_level_id"])
    return records[list(RECORD_COLUMNS)].reset_index(drop=True)


def _checksum_text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def activity_fingerprints(
    engine: Engine, *, class_ids: Collection[int], cutoff: datetime
) -> pd.DataFrame:
    """Per activity (live, started before ``cutoff``) of the classes: checksums of everything its
    assessed records are built from — its dates, its points, its live submissions before
    ``cutoff`` and its class's live ulti criteria and levels. act_sub_points has no timestamp,
    so this is how a change is seen; single-table aggregates return one row per activity (or
    class), far cheaper than the records. Columns: ``activity_id``, ``class_id``, checksums."""
    ids = list(class_ids)
    started = [activities_t.c.start_date < cutoff, activities_t.c.deleted_at.is_(None)]
    activity_statements = [
        select(
            activities_t.c.id,
            activities_t.c.class_id,
            _as_text(activities_t.c.start_date),
            _as_text(activities_t.c.due_date),
        ).where(activities_t.c.class_id.in_(chunk), *started)
        for chunk in _chunks(ids)
    ]
    what = "activity checksums"
    acts = _frame(
        _fetch(engine, what, activity_statements), ["activity_id", "class_id", "a1", "a2"]
    )
    # The points and submissions of those activities by their ids: no join with activities.
    started_ids = _chunks(acts["activity_id"])
    point_statements = [
        select(
            points_t.c.activity_id,
            func.count(),
            func.sum(points_t.c.cri_id * (points_t.c.user_id % 7919)),
            func.sum(points_t.c.user_id),
            func.sum(points_t.c.cri_id),
            func.sum(points_t.c.cri_level_id),
            func.sum(points_t.c.cri_level_id * (points_t.c.user_id % 9973)),
        )
        .where(points_t.c.activity_id.in_(chunk))
        .group_by(points_t.c.activity_id)
        for chunk in started_ids
    ]
    submission_statements = [
        select(
            submissions_t.c.activity_id,
            func.count(),
            func.sum(submissions_t.c.id),
            func.sum(submissions_t.c.user_id),
            func.count(submissions_t.c.spent_time),
            # "H:MM:SS" read as the number HMMSS, weighted by student: any edit shows
            func.sum(
                cast(func.replace(submissions_t.c.spent_time, ":", ""), Integer)
                * (submissions_t.c.user_id % 9973)
            ),
            _as_text(func.max(submissions_t.c.submitted_at)),
        )
        .where(
            submissions_t.c.activity_id.in_(chunk),
            submissions_t.c.deleted_at.is_(None),
            submissions_t.c.submitted_at < cutoff,
        )
        .group_by(submissions_t.c.activity_id)
        for chunk in started_ids
    ]
    schema_statements = [
        select(
            outcomes_t.c.class_id,
            func.count(),
            func.sum(outcomes_t.c.id),
            func.sum(criterias_t.c.id),
            func.sum(levels_t.c.id),
            func.sum(levels_t.c.level * levels_t.c.id),
            func.sum(levels_t.c.flag * levels_t.c.id),
        )
        .select_from(
            outcomes_t.join(criterias_t, criterias_t.c.clo_id == outcomes_t.c.id).join(
                levels_t, levels_t.c.cri_id == criterias_t.c.id
            )
        )
        .where(
            outcomes_t.c.class_id.in_(chunk),
            outcomes_t.c.type == ULTI,
            *_live(outcomes_t, criterias_t, levels_t),
        )
        .group_by(outcomes_t.c.class_id)
        for chunk in _chunks(ids)
    ]
    points = _frame(
        _fetch(engine, what, point_statements), ["activity_id", "p1", "p2", "p3", "p4", "p5", "p6"]
    )
    subs = _frame(
        _fetch(engine, what, submission_statements),
        ["activity_id", "s1", "s2", "s3", "s4", "s5", "s6"],
    )
    schema = _frame(
        _fetch(engine, what, schema_statements), ["class_id", "c1", "c2", "c3", "c4", "c5", "c6"]
    )
    out = (
        acts.merge(points, on="activity_id", how="left")
        .merge(subs, on="activity_id", how="left")
        .merge(schema, on="class_id", how="left")
    )
    for column in out.columns[2:]:
        # One text form per value, whichever side of a join made the column float.
        out[column] = [_checksum_text(v) for v in out[column]]
    out["activity_id"] = out["activity_id"].astype("int64")
    out["class_id"] = out["class_id"].astype("int64")
    return out.sort_values("activity_id").reset_index(drop=True)


def _round_half_up(values: pd.Series) -> pd.Series:
    return np.floor(values.astype(float) + 0.5 + 1e-9).clip(1, 5).astype("int64")


def labels_from_records(records: pd.DataFrame, *, rule: LabelRule) -> pd.DataFrame:
    """class_id, user_id, label (docs/domain.md §2.4) from assessed records; pure, for tests
    and reuse."""
    if rule not in ("attainment", "max", "mean"):
        raise DataError(
            f"label rule {rule!r} is unknown; set LOF_LABEL_RULE to attainment, max or mean"
        )
    keys = ["class_id", "user_id"]
    if records.empty:
        return pd.DataFrame({"class_id": [], "user_id": [], "label": []}, dtype="int64")
    if rule == "max":
        out = records.groupby(keys, as_index=False)["level"].max()
    elif rule == "mean":
        out = records.groupby(keys, as_index=False)["level"].mean()
        out["level"] = _round_half_up(out["level"])
    else:
        per_activity = records.groupby([*keys, "activity_id"], as_index=False)["level"].mean()
        grid = (
            records[["class_id", "activity_id"]]
            .drop_duplicates()
            .merge(records[keys].drop_duplicates(), on="class_id")
        )
        full = grid.merge(per_activity, on=[*keys, "activity_id"], how="left")
        full["level"] = full["level"].fillna(1.0)  # not submitting is not attaining
        out = full.groupby(keys, as_index=False)["level"].mean()
        out["level"] = _round_half_up(out["level"])
    out = out.rename(columns={"level": "label"}).astype("int64")
    return out.sort_values(keys).reset_index(drop=True)


def final_levels(
    engine: Engine,
    *,
    class_ids: Collection[int],
    rule: LabelRule = "attainment",
    until: datetime | None = None,
    deleted_before: datetime | None = None,
) -> pd.DataFrame:
    """class_id, user_id, label: each assessed student's final ulti level by ``rule``.

    Only students with an assessed record; ``cohort_labels`` labels the rest of a cohort.
    """
    if rule not in ("attainment", "max", "mean"):
        raise DataError(
            f"label rule {rule!r} is unknown; set LOF_LABEL_RULE to attainment, max or mean"
        )
    records = assessed_records(
        engine, class_ids=class_ids, until=until, deleted_before=deleted_before
    )
    return labels_from_records(records, rule=rule)


NO_RECORD_LEVEL = 1
"""The final level of a cohort member without any assessed record, under every label rule:
not submitting is not attaining."""


def cohort_labels(
    *,
    cohort: pd.DataFrame,
    labels: pd.DataFrame,
    class_views: pd.Series | None = None,
    visitor_max_views: int = 0,
) -> pd.DataFrame:
    """class_id, user_id, label, has_record for every cohort member that is a student.

    ``cohort`` holds class_id, user_id (every student with a record or a counted event);
    ``labels`` the assessed students' levels (``final_levels``). A member without a record gets
    ``NO_RECORD_LEVEL`` unless they are a visitor: no record and at most ``visitor_max_views``
    class page views over the whole class (``class_views``, indexed like ``cohort``), someone
    who opened the class a few times (a link, a curious student of another section) rather than
    a student who started and stopped; visitors are dropped.
    """
    keys = ["class_id", "user_id"]
    members = cohort[keys].drop_duplicates().astype("int64")
    out = members.merge(labels[[*keys, "label"]], on=keys, how="left")
    out["has_record"] = out["label"].notna()
    if class_views is not None and visitor_max_views > 0:
        views = members.join(class_views.rename("views"), on=keys)["views"].fillna(0)
        visitor = ~out["has_record"].to_numpy() & (views.to_numpy() <= visitor_max_views)
        out = out[~visitor]
    out["label"] = out["label"].fillna(NO_RECORD_LEVEL).astype("int64")
    return out.sort_values(keys).reset_index(drop=True)


# --- the class's activities and submissions (early-warning signals) ---------------------------


def activity_status(
    engine: Engine,
    *,
    class_ids: Collection[int],
    until: datetime | None,
    deleted_before: datetime | None = None,
    started_submissions: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(activities, submissions) of ``class_ids`` for ``lof.features.signals.add_signals``.

    activities: every live activity of the live classes (``class_id, activity_id, start_date,
    due_date``), future ones too, as they bound the class's window; submissions: per student
    and live activity with a live submission before ``until`` (naive local time, None = now),
    the latest such submission's time (``class_id, activity_id, user_id, submitted_at``): all
    the signals read of them. ``deleted_before``: a row deleted at or after it counts as live
    (a retrain as of that day). ``started_submissions``: these rows already read for the
    activities started before ``until`` (``latest_submissions(started=True)``, e.g. through
    ``lof.sources.assessed_cache``); only the other activities' are read.
    """
    cutoff = NO_CUTOFF if until is None else until
    ids = list(class_ids)
    activity_statements = [
        select(
            activities_t.c.class_id,
            activities_t.c.id,
            _as_text(activities_t.c.start_date),
            _as_text(activities_t.c.due_date),
        )
        .select_from(activities_t.join(classes_t, classes_t.c.id == activities_t.c.class_id))
        .where(
            activities_t.c.class_id.in_(chunk),
            *_live(classes_t, activities_t, deleted_before=deleted_before),
        )
        for chunk in _chunks(ids)
    ]
    activities = _frame(
        _fetch(engine, "activities", activity_statements),
        ["class_id", "activity_id", "start_date", "due_date"],
    )
    for column in ("start_date", "due_date"):
        activities[column] = _datetimes(activities[column])
    for column in ("class_id", "activity_id"):
        activities[column] = activities[column].astype("int64")
    if started_submissions is None:
        submissions = latest_submissions(
            engine, class_ids=ids, cutoff=cutoff, deleted_before=deleted_before
        )
    else:
        if deleted_before is not None:
            raise ValueError("started_submissions are of LEB2 as it is now, not as of a day")
        later = latest_submissions(engine, class_ids=ids, cutoff=cutoff, started=False)
        parts = [f for f in (started_submissions, later) if len(f)]
        submissions = (
            pd.concat(parts, ignore_index=True).loc[:, list(LATEST_SUBMISSION_COLUMNS)]
            if parts
            else later
        )
    return activities, submissions


LATEST_SUBMISSION_COLUMNS: tuple[str, ...] = ("class_id", "activity_id", "user_id", "submitted_at")


def latest_submissions(
    engine: Engine,
    *,
    class_ids: Collection[int],
    cutoff: datetime,
    activity_ids: Collection[int] | None = None,
    started: bool | None = None,
    deleted_before: datetime | None = None,
) -> pd.DataFrame:
    """Per (class, live activity, student) with a live submission before ``cutoff``: the latest
    one's time (``LATEST_SUBMISSION_COLUMNS``). Aggregated in the database: one row per
    student and activity crosses the wire, not one per submission.

    ``activity_ids``: only these activities (of ``class_ids``); ``started``: only the activities
    started before ``cutoff`` (True, those ``activity_fingerprints`` checksums), only the
    others (False), or all (None). ``deleted_before``: a row deleted at or after it counts as
    live.
    """
    ids = list(class_ids)
    if activity_ids is not None:
        chunks = [(activities_t.c.id, chunk) for chunk in _chunks(activity_ids)]
    else:
        chunks = [(activities_t.c.class_id, chunk) for chunk in _chunks(ids)]
    begun = activities_t.c.start_date < cutoff
    extra: list[ColumnElement[bool]] = []
    if started is True:
        extra = [begun]
    elif started is False:
        extra = [or_(activities_t.c.start_date >= cutoff, activities_t.c.start_date.is_(None))]
    statements = [
        select(
            activities_t.c.class_id,
            submissions_t.c.activity_id,
            submissions_t.c.user_id,
            _as_text(func.max(submissions_t.c.submitted_at)),
        )
        .select_from(
            submissions_t.join(activities_t, activities_t.c.id == submissions_t.c.activity_id)
        )
        .where(
            column.in_(chunk),
            *_live(activities_t, submissions_t, deleted_before=deleted_before),
            submissions_t.c.submitted_at < cutoff,
            *extra,
        )
        .group_by(activities_t.c.class_id, submissions_t.c.activity_id, submissions_t.c.user_id)
        for column, chunk in chunks
    ]
    submissions = _frame(_fetch(engine, "submissions", statements), list(LATEST_SUBMISSION_COLUMNS))
    if activity_ids is not None:
        wanted = {int(c) for c in ids}
        submissions = submissions[submissions["class_id"].isin(wanted)].reset_index(drop=True)
    submissions["submitted_at"] = _datetimes(submissions["submitted_at"])
    for column in ("class_id", "activity_id", "user_id"):
        submissions[column] = submissions[column].astype("int64")
    return submissions
