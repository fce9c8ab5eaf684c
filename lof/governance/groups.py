"""Student group attributes (faculty, gender, scholarship, ...): read for evaluation only.

``LOF_STUDENT_GROUPS`` names a CSV file, or a SQL URL whose table ``LOF_STUDENT_GROUPS_TABLE``
holds the rows: a ``user_id`` column and one column per attribute. The retrain and the promote
gate read it to measure the model per group (``lof.model.group_metrics``); nothing else does. The
attributes are never model inputs, never written to a store, a prediction, a page, an API body
or an MLflow dataset: only aggregate figures of groups of at least ``LOF_GROUP_MIN_SIZE``
students reach MLflow. lof keeps no copy, so ``lof forget`` has nothing of them to erase (the
university erases a student from its own file).

Everything read is bounded before use (file size, rows, attributes, values per attribute,
name lengths); a malformed file is refused with one line naming the file and the row.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lof.core.config import Settings, redact_url
from lof.core.errors import DataError
from lof.governance.pseudonyms import Pseudonyms

USER_COLUMN = "user_id"
MAX_BYTES = 64 * 2**20
MAX_ROWS = 1_000_000
MAX_ATTRIBUTES = 20
MAX_VALUES = 50
MAX_NAME_CHARS = 64
_USER_ID = re.compile(r"^[0-9]{1,12}$")
_SQL_SCHEME = re.compile(r"^[a-z][a-z0-9+]*://")


@dataclass(frozen=True)
class StudentGroups:
    """Attribute values by user id (strings; an empty cell is "unknown")."""

    frame: pd.DataFrame
    """Indexed by ``user_id`` (int64), one str column per attribute."""
    source: str

    @property
    def attributes(self) -> list[str]:
        return list(self.frame.columns)

    def for_pseudonyms(self, names: Sequence[str], pseudonyms: Pseudonyms) -> pd.DataFrame:
        """One row per given pseudonym (MLflow's held-out rows know students only so)."""
        keyed = self.frame.set_axis(pd.Index(pseudonyms.many(self.frame.index.tolist())))
        return keyed.reindex(pd.Index(list(names))).fillna(UNKNOWN).reset_index(drop=True)

    def for_users(self, user_ids: pd.Series | list[int]) -> pd.DataFrame:
        """One row per given user id, in order; a student not in the file is "unknown"."""
        index = pd.Index(pd.Series(user_ids, dtype="int64"))
        return self.frame.reindex(index).fillna(UNKNOWN).reset_index(drop=True)


UNKNOWN = "unknown"


class GroupsError(DataError):
    """The groups file or table is missing or malformed (one line: which file, which row)."""


def _refuse(source: str, where: str, problem: str) -> GroupsError:
    return GroupsError(
        f"LOF_STUDENT_GROUPS {source}{where}: {problem}; fix the file (a user_id column and "
        "one column per attribute) or unset LOF_STUDENT_GROUPS"
    )


def is_sql_url(value: str) -> bool:
    return bool(_SQL_SCHEME.match(value)) and not value.startswith("file://")


def load(settings: Settings) -> StudentGroups | None:
    """The groups named by the settings, None when LOF_STUDENT_GROUPS is unset."""
    value = settings.student_groups
    if not value:
        return None
    if is_sql_url(value):
        return _load_sql(value, settings.student_groups_table)
    return load_csv(Path(value.removeprefix("file://")))


def load_csv(path: Path) -> StudentGroups:
    source = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise _refuse(source, "", f"cannot be read ({type(exc).__name__})") from None
    if size > MAX_BYTES:
        raise _refuse(source, "", f"is {size} bytes, more than the {MAX_BYTES} allowed")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise _refuse(source, f" row {line}", "is not UTF-8 text") from None
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise _refuse(source, "", f"is not CSV ({exc})") from None
    if not rows:
        raise _refuse(source, " row 1", "is empty; expected a header with user_id")
    header, body = rows[0], rows[1:]
    return _validated(source, header, body, first_row=2)


def _load_sql(url: str, table: str) -> StudentGroups:
    from sqlalchemy import MetaData, Table, create_engine, select
    from sqlalchemy.exc import SQLAlchemyError

    source = f"{redact_url(url)} table {table}"
    try:
        engine = create_engine(url)
    except Exception as exc:
        raise _refuse(source, "", f"is not a database URL ({type(exc).__name__})") from None
    try:
        with engine.connect() as conn:
            found = Table(table, MetaData(), autoload_with=conn)
            result = conn.execute(select(found).limit(MAX_ROWS + 1))
            header = [str(c) for c in result.keys()]  # noqa: SIM118 (a Result, not a dict)
            body = [["" if v is None else str(v) for v in row] for row in result]
    except SQLAlchemyError as exc:
        raise _refuse(source, "", f"cannot be read ({type(exc).__name__})") from None
    finally:
        engine.dispose()
    return _validated(source, header, body, first_row=1)


def _validated(
    source: str, header: list[str], body: list[list[str]], *, first_row: int
) -> StudentGroups:
    header = [h.strip() for h in header]
    if USER_COLUMN not in header:
        raise _refuse(source, " row 1" if first_row == 2 else "", "has no user_id column")
    attributes = [h for h in header if h != USER_COLUMN]
    if not attributes:
        raise _refuse(source, "", "has no attribute column besides user_id")
    if len(attributes) > MAX_ATTRIBUTES:
        raise _refuse(source, "", f"has {len(attributes)} attributes, more than {MAX_ATTRIBUTES}")
    for name in header:
        if not name or len(name) > MAX_NAME_CHARS:
            raise _refuse(source, "", f"has a column name empty or longer than {MAX_NAME_CHARS}")
    if len(set(header)) != len(header):
        raise _refuse(source, "", "has two columns of the same name")
    if len(body) > MAX_ROWS:
        raise _refuse(source, "", f"has more than {MAX_ROWS} rows")
    position = header.index(USER_COLUMN)
    ids: list[int] = []
    values: list[list[str]] = []
    seen: set[int] = set()
    for offset, row in enumerate(body):
        where = f" row {first_row + offset}"
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        if len(row) != len(header):
            raise _refuse(source, where, f"has {len(row)} cells, the header {len(header)}")
        raw = row[position].strip()
        if not _USER_ID.match(raw):
            raise _refuse(source, where, f"user_id {raw[:20]!r} is not a whole number")
        user = int(raw)
        if user in seen:
            raise _refuse(source, where, f"user_id {user} appears twice")
        seen.add(user)
        cells = [c.strip() for i, c in enumerate(row) if i != position]
        for cell in cells:
            if len(cell) > MAX_NAME_CHARS:
                raise _refuse(source, where, f"a value is longer than {MAX_NAME_CHARS} characters")
        ids.append(user)
        values.append([c or UNKNOWN for c in cells])
    frame = pd.DataFrame(values, columns=attributes, index=pd.Index(ids, dtype="int64"))
    for name in attributes:
        count = frame[name].nunique()
        if count > MAX_VALUES:
            raise _refuse(
                source, "", f"attribute {name!r} has {count} values, more than {MAX_VALUES}"
            )
    return StudentGroups(frame=frame, source=source)
