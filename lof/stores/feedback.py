"""Teachers' feedback, stored next to the predictions (same LOF_STORE_URL, both backends).

* SQL: table ``lof_feedback``, primary key (class_id, day, user_id, teacher_id), so one class's
  export (optionally one day) is an index range.
* DynamoDB: table ``<prefix>feedback``, ``pk="FB#<class>"``, ``sk="<YYYYMMDD>#<user>#<teacher>"``,
  so one class's export is one Query; ``read_all`` (once per retrain) is a Scan of this small
  table only.

``put`` is idempotent per key: the same verdict and note again change nothing (not even
``updated_at``); a different one replaces the stored record.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import date
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from lof.core.calendar import format_day
from lof.core.errors import StoreError
from lof.feedback import FeedbackRecord
from lof.stores.guards import run_dynamo, run_sql

T = TypeVar("T")

METADATA = sa.MetaData()
FEEDBACK = sa.Table(
    "lof_feedback",
    METADATA,
    sa.Column("class_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("teacher_id", sa.String(64), primary_key=True),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("at_risk", sa.Boolean, nullable=False),
    sa.Column("source", sa.String(8), nullable=False),
    sa.Column("updated_at", sa.String(20), nullable=False),
)
_CONTENT = ("verdict", "note", "model_version", "at_risk")


class FeedbackStore(Protocol):
    def put(self, record: FeedbackRecord) -> FeedbackRecord:
        """Store ``record`` under its key; returns what is stored (unchanged if identical)."""

    def read_class(self, *, class_id: int, day: date | None = None) -> list[FeedbackRecord]:
        """The class's feedback (one day or all), by day, user_id, teacher_id."""

    def read_all(self) -> list[FeedbackRecord]:
        """Every stored record (retrain's per-version summary)."""

    def erase_users(self, user_ids: Collection[int]) -> int:
        """Delete every verdict on these students; returns how many."""

    def purge_before(self, cut: date) -> int:
        """Delete the verdicts on predictions of days before ``cut``; returns how many."""

    def close(self) -> None: ...


def _day(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:8]))


def _sorted(records: list[FeedbackRecord]) -> list[FeedbackRecord]:
    return sorted(records, key=lambda r: (r.class_id, r.predicted_dt, r.user_id, r.teacher_id))


def _same(stored: FeedbackRecord, new: FeedbackRecord) -> bool:
    return all(getattr(stored, name) == getattr(new, name) for name in _CONTENT)


class SqlFeedbackStore:
    """Feedback in the predictions' SQL database."""

    def __init__(self, url: str) -> None:
        from lof.core.config import redact_url
        from lof.stores.sql import create_store_engine

        self.url = redact_url(url)
        self.engine = create_store_engine(url)
        self._run(lambda: METADATA.create_all(self.engine, checkfirst=True), what="creating")

    def _run(self, fn: Callable[[], T], *, what: str) -> T:
        return run_sql(fn, url=self.url, what=f"{what} feedback")

    @staticmethod
    def _record(row: Any) -> FeedbackRecord:
        day = row.day if isinstance(row.day, date) else date.fromisoformat(str(row.day)[:10])
        return FeedbackRecord(
            class_id=int(row.class_id),
            predicted_dt=format_day(day),
            user_id=int(row.user_id),
            teacher_id=row.teacher_id,
            verdict=row.verdict,
            note=row.note,
            model_version=row.model_version,
            at_risk=bool(row.at_risk),
            source=row.source,
            updated_at=row.updated_at,
        )

    def put(self, record: FeedbackRecord) -> FeedbackRecord:
        key = {
            "class_id": record.class_id,
            "day": _day(record.predicted_dt),
            "user_id": record.user_id,
            "teacher_id": record.teacher_id,
        }
        where = sa.and_(*(FEEDBACK.c[name] == value for name, value in key.items()))

        def transaction() -> FeedbackRecord:
            with self.engine.begin() as conn:
                found = conn.execute(sa.select(FEEDBACK).where(where)).first()
                if found is not None:
                    stored = self._record(found)
                    if _same(stored, record):
                        return stored
                    conn.execute(sa.delete(FEEDBACK).where(where))
                values = record.model_dump(exclude={"class_id", "predicted_dt", "user_id"})
                conn.execute(FEEDBACK.insert(), {**key, **values})
            return record

        def attempt() -> FeedbackRecord:
            try:
                return transaction()
            except IntegrityError:  # a concurrent first write of the same key: read it again
                return transaction()

        return self._run(attempt, what="writing")

    def read_class(self, *, class_id: int, day: date | None = None) -> list[FeedbackRecord]:
        query = sa.select(FEEDBACK).where(FEEDBACK.c.class_id == class_id)
        if day is not None:
            query = query.where(FEEDBACK.c.day == day)
        return self._select(query.order_by(*FEEDBACK.primary_key.columns))

    def read_all(self) -> list[FeedbackRecord]:
        return self._select(sa.select(FEEDBACK).order_by(*FEEDBACK.primary_key.columns))

    def erase_users(self, user_ids: Collection[int]) -> int:
        ids = sorted({int(u) for u in user_ids})
        return self._delete(FEEDBACK.c.user_id.in_(ids), what="erasing")

    def purge_before(self, cut: date) -> int:
        return self._delete(FEEDBACK.c.day < cut, what="purging")

    def _delete(self, where: sa.ColumnElement[bool], *, what: str) -> int:
        def transaction() -> int:
            with self.engine.begin() as conn:
                return int(conn.execute(sa.delete(FEEDBACK).where(where)).rowcount or 0)

        return self._run(transaction, what=what)

    def _select(self, query: sa.Select) -> list[FeedbackRecord]:
        def read() -> list[FeedbackRecord]:
            with self.engine.connect() as conn:
                return [self._record(row) for row in conn.execute(query)]

        return self._run(read, what="reading")

    def close(self) -> None:
        self.engine.dispose()


class DynamoFeedbackStore:
    """Feedback in a DynamoDB table next to the predictions table."""

    def __init__(self, url: str) -> None:
        from lof.stores.dynamodb import new_client, parse_url

        options = parse_url(url)
        self.url = url
        self.table = f"{options['prefix']}feedback"
        self.create_table = bool(options["create"])
        self.client = new_client(endpoint=options["endpoint"], region=options["region"])
        self._guard(self._ensure_table, what="opening the feedback table")

    def _guard(self, fn: Callable[[], T], *, what: str) -> T:
        return run_dynamo(fn, url=self.url, table=self.table, what=what)

    def _ensure_table(self) -> None:
        from lof.stores.dynamodb import ensure_table

        ensure_table(self.client, table=self.table, create=self.create_table)

    @staticmethod
    def _key(record: FeedbackRecord) -> dict[str, dict[str, str]]:
        return {
            "pk": {"S": f"FB#{record.class_id}"},
            "sk": {"S": f"{record.predicted_dt}#{record.user_id}#{record.teacher_id}"},
        }

    @staticmethod
    def _from_item(item: dict[str, Any]) -> FeedbackRecord:
        return FeedbackRecord.model_validate_json(item["data"]["S"])

    def put(self, record: FeedbackRecord) -> FeedbackRecord:
        key = self._key(record)

        def write() -> FeedbackRecord:
            found = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True)
            if "Item" in found:
                stored = self._from_item(found["Item"])
                if _same(stored, record):
                    return stored
            self.client.put_item(
                TableName=self.table, Item={**key, "data": {"S": record.model_dump_json()}}
            )
            return record

        return self._guard(write, what="writing feedback")

    def read_class(self, *, class_id: int, day: date | None = None) -> list[FeedbackRecord]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"FB#{class_id}"}},
            "ConsistentRead": True,
        }
        if day is not None:
            request["KeyConditionExpression"] += " AND begins_with(sk, :day)"
            request["ExpressionAttributeValues"][":day"] = {"S": format_day(day) + "#"}
        return self._guard(lambda: self._pages("query", request), what="reading feedback")

    def read_all(self) -> list[FeedbackRecord]:
        request = {"TableName": self.table, "ConsistentRead": True}
        return self._guard(lambda: self._pages("scan", request), what="reading feedback")

    def erase_users(self, user_ids: Collection[int]) -> int:
        ids = {str(int(u)) for u in user_ids}
        return self._delete_where(lambda sk: sk.split("#")[1] in ids, what="erasing feedback")

    def purge_before(self, cut: date) -> int:
        key = format_day(cut)
        return self._delete_where(lambda sk: sk[:8] < key, what="purging feedback")

    def _delete_where(self, chosen: Callable[[str], bool], *, what: str) -> int:
        """Delete the items whose sort key (``<day>#<user>#<teacher>``) is ``chosen``: one Scan
        of this small table, keys only."""
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

    def _pages(self, operation: str, request: dict[str, Any]) -> list[FeedbackRecord]:
        records: list[FeedbackRecord] = []
        call = getattr(self.client, operation)
        while True:
            response = call(**request)
            records.extend(self._from_item(item) for item in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last:
                return _sorted(records)
            request = {**request, "ExclusiveStartKey": last}

    def close(self) -> None:
        self.client.close()


def open_feedback_store(url: str) -> FeedbackStore:
    """The feedback store of LOF_STORE_URL (a missing table created where the URL allows)."""
    if not url:
        raise StoreError("LOF_STORE_URL is empty; set it to the predictions store's URL")
    if url.startswith("dynamodb:"):
        return DynamoFeedbackStore(url)
    return SqlFeedbackStore(url)


__all__ = ["DynamoFeedbackStore", "FeedbackStore", "SqlFeedbackStore", "open_feedback_store"]
