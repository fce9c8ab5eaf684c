"""Teachers' actions (``lof.interventions``), stored next to the predictions (LOF_STORE_URL).

* SQL: table ``lof_interventions``, primary key (class_id, user_id, teacher_id, day, action),
  an index on (class_id, day) for a class's export.
* DynamoDB: table ``<prefix>interventions``, ``pk="IV#<class>"``,
  ``sk="<YYYYMMDD>#<user>#<teacher>#<action>"``: one class's export is one Query; erasure and
  the retention purge a keys-only Scan of this small table, like the feedback's.

``put`` is idempotent per key: the same note again changes nothing (not even ``updated_at``); a
different note replaces the stored one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import date
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from lof.core.calendar import format_day
from lof.core.errors import StoreError
from lof.interventions import InterventionRecord
from lof.stores.guards import run_dynamo, run_sql

T = TypeVar("T")

METADATA = sa.MetaData()
INTERVENTIONS = sa.Table(
    "lof_interventions",
    METADATA,
    sa.Column("class_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("teacher_id", sa.String(64), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("action", sa.String(16), primary_key=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("source", sa.String(8), nullable=False),
    sa.Column("updated_at", sa.String(20), nullable=False),
    sa.Index("lof_interventions_class_day", "class_id", "day"),
)


class InterventionStore(Protocol):
    def put(self, record: InterventionRecord) -> InterventionRecord:
        """Store ``record`` under its key; returns what is stored (unchanged if identical)."""

    def read_class(self, *, class_id: int) -> list[InterventionRecord]:
        """The class's actions, by day, user_id, teacher_id, action."""

    def read_all(self) -> list[InterventionRecord]:
        """Every stored action (the outcome report of a semester)."""

    def erase_users(self, user_ids: Collection[int]) -> int:
        """Delete every action on these students; returns how many."""

    def purge_before(self, cut: date) -> int:
        """Delete the actions of days before ``cut``; returns how many."""

    def close(self) -> None: ...


def _day(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:8]))


def _order(record: InterventionRecord) -> tuple[Any, ...]:
    return (record.class_id, record.action_dt, record.user_id, record.teacher_id, record.action)


class SqlInterventionStore:
    """Actions in the predictions' SQL database."""

    def __init__(self, url: str) -> None:
        from lof.core.config import redact_url
        from lof.stores.sql import create_store_engine

        self.url = redact_url(url)
        self.engine = create_store_engine(url)
        self._run(lambda: METADATA.create_all(self.engine, checkfirst=True), what="creating")

    def _run(self, fn: Callable[[], T], *, what: str) -> T:
        return run_sql(fn, url=self.url, what=f"{what} interventions")

    @staticmethod
    def _record(row: Any) -> InterventionRecord:
        day = row.day if isinstance(row.day, date) else date.fromisoformat(str(row.day)[:10])
        return InterventionRecord(
            class_id=int(row.class_id),
            user_id=int(row.user_id),
            teacher_id=row.teacher_id,
            action_dt=format_day(day),
            action=row.action,
            note=row.note,
            source=row.source,
            updated_at=row.updated_at,
        )

    def put(self, record: InterventionRecord) -> InterventionRecord:
        key = {
            "class_id": record.class_id,
            "user_id": record.user_id,
            "teacher_id": record.teacher_id,
            "day": _day(record.action_dt),
            "action": record.action,
        }
        where = sa.and_(*(INTERVENTIONS.c[name] == value for name, value in key.items()))
        values = {"note": record.note, "source": record.source, "updated_at": record.updated_at}

        def transaction() -> InterventionRecord:
            with self.engine.begin() as conn:
                found = conn.execute(sa.select(INTERVENTIONS).where(where)).first()
                if found is not None:
                    stored = self._record(found)
                    if stored.note == record.note:
                        return stored
                    conn.execute(sa.update(INTERVENTIONS).where(where).values(**values))
                else:
                    conn.execute(INTERVENTIONS.insert(), {**key, **values})
            return record

        def attempt() -> InterventionRecord:
            try:
                return transaction()
            except IntegrityError:  # a concurrent first write of the same key: read it again
                return transaction()

        return self._run(attempt, what="writing")

    def read_class(self, *, class_id: int) -> list[InterventionRecord]:
        return self._select(sa.select(INTERVENTIONS).where(INTERVENTIONS.c.class_id == class_id))

    def read_all(self) -> list[InterventionRecord]:
        return self._select(sa.select(INTERVENTIONS))

    def erase_users(self, user_ids: Collection[int]) -> int:
        ids = sorted({int(u) for u in user_ids})
        return self._delete(INTERVENTIONS.c.user_id.in_(ids), what="erasing")

    def purge_before(self, cut: date) -> int:
        return self._delete(INTERVENTIONS.c.day < cut, what="purging")

    def _delete(self, where: sa.ColumnElement[bool], *, what: str) -> int:
        def transaction() -> int:
            with self.engine.begin() as conn:
                return int(conn.execute(sa.delete(INTERVENTIONS).where(where)).rowcount or 0)

        return self._run(transaction, what=what)

    def _select(self, query: sa.Select) -> list[InterventionRecord]:
        def read() -> list[InterventionRecord]:
            with self.engine.connect() as conn:
                return sorted((self._record(row) for row in conn.execute(query)), key=_order)

        return self._run(read, what="reading")

    def close(self) -> None:
        self.engine.dispose()


class DynamoInterventionStore:
    """Actions in a DynamoDB table next to the predictions table."""

    def __init__(self, url: str) -> None:
        from lof.stores.dynamodb import new_client, parse_url

        options = parse_url(url)
        self.url = url
        self.table = f"{options['prefix']}interventions"
        self.create_table = bool(options["create"])
        self.client = new_client(endpoint=options["endpoint"], region=options["region"])
        self._guard(self._ensure_table, what="opening the interventions table")

    def _guard(self, fn: Callable[[], T], *, what: str) -> T:
        return run_dynamo(fn, url=self.url, table=self.table, what=what)

    def _ensure_table(self) -> None:
        from lof.stores.dynamodb import ensure_table

        ensure_table(self.client, table=self.table, create=self.create_table)

    @staticmethod
    def _key(record: InterventionRecord) -> dict[str, dict[str, str]]:
        return {
            "pk": {"S": f"IV#{record.class_id}"},
            "sk": {"S": f"{record.action_dt}#{record.user_id}#{record.teacher_id}#{record.action}"},
        }

    @staticmethod
    def _from_item(item: dict[str, Any]) -> InterventionRecord:
        return InterventionRecord.model_validate_json(item["data"]["S"])

    def put(self, record: InterventionRecord) -> InterventionRecord:
        key = self._key(record)

        def write() -> InterventionRecord:
            found = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True)
            if "Item" in found:
                stored = self._from_item(found["Item"])
                if stored.note == record.note:
                    return stored
            self.client.put_item(
                TableName=self.table, Item={**key, "data": {"S": record.model_dump_json()}}
            )
            return record

        return self._guard(write, what="writing interventions")

    def read_class(self, *, class_id: int) -> list[InterventionRecord]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"IV#{class_id}"}},
            "ConsistentRead": True,
        }
        return self._guard(lambda: self._pages("query", request), what="reading interventions")

    def read_all(self) -> list[InterventionRecord]:
        request = {"TableName": self.table, "ConsistentRead": True}
        return self._guard(lambda: self._pages("scan", request), what="reading interventions")

    def erase_users(self, user_ids: Collection[int]) -> int:
        ids = {str(int(u)) for u in user_ids}
        return self._delete_where(lambda sk: sk.split("#")[1] in ids, what="erasing interventions")

    def purge_before(self, cut: date) -> int:
        key = format_day(cut)
        return self._delete_where(lambda sk: sk[:8] < key, what="purging interventions")

    def _delete_where(self, chosen: Callable[[str], bool], *, what: str) -> int:
        from lof.stores.small_tables import batch_write, delete_requests

        def run() -> int:
            request: dict[str, Any] = {"TableName": self.table, "ProjectionExpression": "pk, sk"}
            found: list[dict[str, Any]] = []
            while True:
                response = self.client.scan(**request)
                found.extend(i for i in response.get("Items", []) if chosen(i["sk"]["S"]))
                if not response.get("LastEvaluatedKey"):
                    break
                request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
            batch_write(self.client, self.table, delete_requests(found), what=what, url=self.url)
            return len(found)

        return self._guard(run, what=what)

    def _pages(self, operation: str, request: dict[str, Any]) -> list[InterventionRecord]:
        records: list[InterventionRecord] = []
        call = getattr(self.client, operation)
        while True:
            response = call(**request)
            records.extend(self._from_item(item) for item in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last:
                return sorted(records, key=_order)
            request = {**request, "ExclusiveStartKey": last}

    def close(self) -> None:
        self.client.close()


def open_intervention_store(url: str) -> InterventionStore:
    """The interventions store of LOF_STORE_URL (a missing table created where the URL allows)."""
    if not url:
        raise StoreError("LOF_STORE_URL is empty; set it to the predictions store's URL")
    if url.startswith("dynamodb:"):
        return DynamoInterventionStore(url)
    return SqlInterventionStore(url)


__all__ = [
    "DynamoInterventionStore",
    "InterventionStore",
    "SqlInterventionStore",
    "open_intervention_store",
]
