"""The access log: who opened which class's data, and when (same LOF_STORE_URL, both backends).

One entry per class page view, feedback post, link issued and API data request (the API
writes them, ``lof.api.access``): when (UTC), the route, the HTTP status, the class, the day
asked for, the teacher id the link or the request names, and the API key's id
(``lof.governance.pseudonyms.api_key_id``), never the key, nor a student id.

* SQL: table ``lof_access_log``, indexed on ``at``, so ``lof audit --since`` is a range read.
* DynamoDB: table ``<prefix>access_log``, ``pk="LOG"``, ``sk="<ISO time>#<random>"`` (one
  partition, read and purged by sort-key ranges), and, when LOF_RETENTION_DAYS is set, a
  ``ttl`` attribute so DynamoDB also expires entries by itself.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

import sqlalchemy as sa

from lof.stores.dynamo_items import Item, put
from lof.stores.small_tables import DynamoTable, SqlTables
from lof.stores.sql import insert_rows

METADATA = sa.MetaData()
ACCESS_LOG = sa.Table(
    "lof_access_log",
    METADATA,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("at", sa.DateTime, nullable=False, index=True),
    sa.Column("route", sa.String(80), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("class_id", sa.BigInteger, nullable=True),
    sa.Column("day", sa.String(8), nullable=True),
    sa.Column("teacher_id", sa.String(64), nullable=True),
    sa.Column("key_id", sa.String(16), nullable=True),
)


@dataclass(slots=True)
class AccessEntry:
    """One access: ``at`` (UTC), ``route`` (method and path template), ``status``,
    ``class_id``, ``day`` (YYYYMMDD), ``teacher_id``, ``key_id`` (None when not known)."""

    at: datetime
    route: str
    status: int
    class_id: int | None = None
    day: str | None = None
    teacher_id: str | None = None
    key_id: str | None = None


def start_of(day: date) -> datetime:
    """The UTC instant a day's entries start at (the log keeps UTC times)."""
    return datetime.combine(day, time.min, tzinfo=UTC)


class AccessLog(Protocol):
    def append(self, entries: list[AccessEntry]) -> None: ...

    def read(self, *, since: date, class_id: int | None = None) -> list[AccessEntry]:
        """Entries from the start of ``since`` (UTC) on, oldest first."""

    def purge_before(self, cut: date) -> int:
        """Remove the entries before the start of ``cut``; returns how many."""

    def close(self) -> None: ...


def _naive(moment: datetime) -> datetime:
    """The naive UTC time SQL columns keep (entries are made in UTC already)."""
    return (
        moment.replace(tzinfo=None)
        if moment.tzinfo is UTC
        else moment.astimezone(UTC).replace(tzinfo=None)
    )


class SqlAccessLog(SqlTables):
    """The access log in the predictions' SQL database."""

    what = "the access log"

    def __init__(self, url: str) -> None:
        super().__init__(url, METADATA)

    def append(self, entries: list[AccessEntry]) -> None:
        if not entries:
            return
        rows = [
            {
                "at": _naive(e.at),
                "route": e.route[:80],
                "status": e.status,
                "class_id": e.class_id,
                "day": e.day,
                "teacher_id": e.teacher_id,
                "key_id": e.key_id,
            }
            for e in entries
        ]

        def transaction() -> None:
            with self.engine.begin() as conn:
                if conn.dialect.name == "sqlite":  # one executemany (sql.insert_rows)
                    insert_rows(conn, ACCESS_LOG, [{"id": None, **row} for row in rows])
                else:
                    conn.execute(ACCESS_LOG.insert(), rows)

        self.run(transaction, what="writing")

    def read(self, *, since: date, class_id: int | None = None) -> list[AccessEntry]:
        query = sa.select(ACCESS_LOG).where(ACCESS_LOG.c.at >= _naive(start_of(since)))
        if class_id is not None:
            query = query.where(ACCESS_LOG.c.class_id == int(class_id))
        query = query.order_by(ACCESS_LOG.c.at, ACCESS_LOG.c.id)

        def read() -> list[AccessEntry]:
            with self.engine.connect() as conn:
                return [
                    AccessEntry(
                        at=row.at.replace(tzinfo=UTC),
                        route=row.route,
                        status=int(row.status),
                        class_id=None if row.class_id is None else int(row.class_id),
                        day=row.day,
                        teacher_id=row.teacher_id,
                        key_id=row.key_id,
                    )
                    for row in conn.execute(query)
                ]

        return self.run(read, what="reading")

    def purge_before(self, cut: date) -> int:
        def transaction() -> int:
            with self.engine.begin() as conn:
                done = conn.execute(
                    sa.delete(ACCESS_LOG).where(ACCESS_LOG.c.at < _naive(start_of(cut)))
                )
                return int(done.rowcount or 0)

        return self.run(transaction, what="purging")


_OPTIONAL = ("day", "teacher_id", "key_id")


class DynamoAccessLog(DynamoTable):
    """The access log in the DynamoDB table ``<prefix>access_log``."""

    kind = "access_log"
    ttl_attribute = "ttl"

    def __init__(self, url: str, *, retention_days: int | None = None) -> None:
        super().__init__(url)
        self.retention_days = retention_days

    def _item(self, entry: AccessEntry) -> Item:
        at = entry.at.astimezone(UTC)
        item: Item = {
            "pk": {"S": "LOG"},
            "sk": {"S": f"{at.isoformat(timespec='microseconds')}#{secrets.token_hex(4)}"},
            "route": {"S": entry.route[:80]},
            "status": {"N": str(entry.status)},
        }
        if entry.class_id is not None:
            item["class_id"] = {"N": str(entry.class_id)}
        for name in _OPTIONAL:
            value = getattr(entry, name)
            if value is not None:
                item[name] = {"S": value}
        if self.retention_days is not None:
            expires = at + timedelta(days=self.retention_days + 1)
            item["ttl"] = {"N": str(int(expires.timestamp()))}
        return item

    def append(self, entries: list[AccessEntry]) -> None:
        requests = [put(self._item(e)) for e in entries]
        self.guard(lambda: self.batch(requests, what="writing the access log"), what="writing")

    @staticmethod
    def _entry(item: Item) -> AccessEntry:
        return AccessEntry(
            at=datetime.fromisoformat(item["sk"]["S"].split("#", 1)[0]),
            route=item["route"]["S"],
            status=int(item["status"]["N"]),
            class_id=int(item["class_id"]["N"]) if "class_id" in item else None,
            **{name: item[name]["S"] for name in _OPTIONAL if name in item},
        )

    def _since(self, moment: datetime, *, before: bool) -> Iterable[Item]:
        condition = "sk < :at" if before else "sk >= :at"
        return self.query("LOG", condition=condition, at=moment.isoformat(timespec="microseconds"))

    def read(self, *, since: date, class_id: int | None = None) -> list[AccessEntry]:
        def read() -> list[AccessEntry]:
            entries = [self._entry(i) for i in self._since(start_of(since), before=False)]
            return [e for e in entries if class_id is None or e.class_id == int(class_id)]

        return self.guard(read, what="reading the access log")

    def purge_before(self, cut: date) -> int:
        return self.guard(
            lambda: self.delete_keys(
                list(self._since(start_of(cut), before=True)), what="purging the access log"
            ),
            what="purging the access log",
        )


def open_access_log(url: str, *, retention_days: int | None = None) -> AccessLog:
    """The access log of LOF_STORE_URL (``retention_days``: DynamoDB items get a ``ttl``)."""
    if url.startswith("dynamodb:"):
        return DynamoAccessLog(url, retention_days=retention_days)
    return SqlAccessLog(url)


__all__ = ["AccessEntry", "AccessLog", "DynamoAccessLog", "SqlAccessLog", "open_access_log"]
