"""What the small stores next to the predictions share (feedback, interventions, privacy
records, access log): a SQL engine with clear errors and retries, a DynamoDB table with paged
queries and batches, and on both the table of one kind of teacher record.

All open from LOF_STORE_URL: SQL tables are created on first use, a DynamoDB table where the
URL allows it (``lof.stores.dynamodb.ensure_table``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from datetime import date
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError

from lof.core.calendar import format_day
from lof.core.errors import StoreError
from lof.stores.base import as_date
from lof.stores.dynamo_items import GetItemOutput, Item, WriteRequest, delete, dynamo_key, key_of
from lof.stores.guards import run_dynamo, run_sql

T = TypeVar("T")
Record = TypeVar("Record", bound=BaseModel)


class SqlTables:
    """Tables of ``metadata`` in the LOF_STORE_URL database (created on first use)."""

    what = "store"

    def __init__(self, url: str, metadata: sa.MetaData) -> None:
        from lof.core.config import redact_url
        from lof.stores.sql import create_store_engine

        self.url = redact_url(url)
        self.engine = create_store_engine(url)
        self.run(lambda: metadata.create_all(self.engine, checkfirst=True), what="creating")

    def run(self, fn: Callable[[], T], *, what: str) -> T:
        """One transaction, retried on dropped connections and deadlocks (lof.retry)."""
        return run_sql(fn, url=self.url, what=f"{what} {self.what}")

    def close(self) -> None:
        self.engine.dispose()


def batch_write(
    client: Any, table: str, requests: list[WriteRequest], *, what: str, url: str
) -> None:
    """BatchWriteItem in chunks of 25 (``lof.stores.dynamodb.write_chunk``)."""
    from lof.stores.dynamodb import BATCH_WRITE_MAX, write_chunk

    for start in range(0, len(requests), BATCH_WRITE_MAX):
        write_chunk(client, table, requests[start : start + BATCH_WRITE_MAX], what=what, url=url)


def delete_requests(items: Iterable[Item]) -> list[WriteRequest]:
    """DeleteRequests of these items' keys."""
    return [delete(key_of(i)) for i in items]


class DynamoTable:
    """One DynamoDB table ``<prefix><kind>`` with string keys ``pk``/``sk``."""

    kind = ""
    ttl_attribute: str | None = None
    """Set by a table whose items DynamoDB may expire itself (epoch seconds in that attribute)."""

    def __init__(self, url: str) -> None:
        from lof.stores.dynamodb import ensure_table, new_client, parse_url

        options = parse_url(url)
        self.url = url
        self.table = f"{options['prefix']}{self.kind}"
        self.client = new_client(endpoint=options["endpoint"], region=options["region"])
        self.guard(
            lambda: ensure_table(self.client, table=self.table, create=bool(options["create"])),
            what=self.opening(),
        )
        if self.ttl_attribute and options["create"]:
            self.guard(self._enable_ttl, what=f"enabling TTL on {self.table}")

    def opening(self) -> str:
        """What opening the table is called in its errors."""
        return f"opening table {self.table}"

    def _enable_ttl(self) -> None:
        """Turn on DynamoDB's expiry of ``ttl_attribute`` where lof creates its tables (on AWS
        the CloudFormation stack sets it)."""
        found = self.client.describe_time_to_live(TableName=self.table)
        if found.get("TimeToLiveDescription", {}).get("TimeToLiveStatus") in (
            "ENABLED",
            "ENABLING",
        ):
            return
        self.client.update_time_to_live(
            TableName=self.table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": self.ttl_attribute},
        )

    def guard(self, fn: Callable[[], T], *, what: str) -> T:
        return run_dynamo(fn, url=self.url, table=self.table, what=what)

    def pages(self, operation: str, request: dict[str, object]) -> Iterator[Item]:
        """Every item a Query or Scan returns, following pagination."""
        call = getattr(self.client, operation)
        request = {"TableName": self.table, "ConsistentRead": True, **request}
        while True:
            response = call(**request)
            yield from response.get("Items", [])
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            request = {**request, "ExclusiveStartKey": last}

    def query(self, pk: str, *, condition: str = "", **values: str) -> Iterator[Item]:
        """The items of partition ``pk`` (``condition`` on ``sk`` with ``:name`` values)."""
        names: Item = {":pk": {"S": pk}, **{f":{k}": {"S": v} for k, v in values.items()}}
        expression = "pk = :pk" + (f" AND {condition}" if condition else "")
        return self.pages(
            "query", {"KeyConditionExpression": expression, "ExpressionAttributeValues": names}
        )

    def batch(self, requests: list[WriteRequest], *, what: str) -> None:
        batch_write(self.client, self.table, requests, what=what, url=self.url)

    def delete_keys(self, items: list[Item], *, what: str) -> int:
        self.batch(delete_requests(items), what=what)
        return len(items)

    def close(self) -> None:
        self.client.close()


# --- teachers' records (feedback, interventions) ----------------------------------------------


def record_day(text: str) -> date:
    """The date of a record's YYYYMMDD day."""
    return date(int(text[:4]), int(text[4:6]), int(text[6:8]))


def is_dynamodb(url: str) -> bool:
    """Whether LOF_STORE_URL names DynamoDB (else a SQL database); StoreError when empty."""
    if not url:
        raise StoreError("LOF_STORE_URL is empty; set it to the predictions store's URL")
    return url.startswith("dynamodb:")


class RecordKind(Generic[Record]):
    """What both backends know of one kind of teacher record: its type, its key after the
    class (``key_fields``, also its order after the class) and the fields whose change
    replaces a stored record (``put`` is idempotent per key otherwise)."""

    record_type: type[Record]
    key_fields: tuple[str, ...] = ()
    content: tuple[str, ...] = ()

    def same(self, stored: Record, new: Record) -> bool:
        return all(getattr(stored, name) == getattr(new, name) for name in self.content)

    def order(self, record: Record) -> tuple[object, ...]:
        """The sort key of the stores' reads: class, then ``key_fields``."""
        return tuple(getattr(record, name) for name in ("class_id", *self.key_fields))


class SqlRecordTable(SqlTables, RecordKind[Record]):
    """One kind of record in table ``table``: its primary key is the record's key, with the
    record's day (field ``day_field``, YYYYMMDD) in column ``day``."""

    table: sa.Table
    day_field = ""

    def __init__(self, url: str) -> None:
        super().__init__(url, self.table.metadata)

    def record(self, row: sa.RowMapping) -> Record:
        values = {name: value for name, value in row.items() if name != "day"}
        values[self.day_field] = format_day(as_date(row["day"]))
        return self.record_type.model_validate(values)

    def put(self, record: Record) -> Record:
        columns = record.model_dump(exclude={self.day_field})
        columns["day"] = record_day(getattr(record, self.day_field))
        key = {column.name: columns[column.name] for column in self.table.primary_key.columns}
        values = {name: value for name, value in columns.items() if name not in key}
        where = sa.and_(*(self.table.c[name] == value for name, value in key.items()))

        def transaction() -> Record:
            with self.engine.begin() as conn:
                found = conn.execute(sa.select(self.table).where(where)).first()
                if found is None:
                    conn.execute(self.table.insert(), {**key, **values})
                else:
                    stored = self.record(found._mapping)
                    if self.same(stored, record):
                        return stored
                    conn.execute(sa.update(self.table).where(where).values(values))
            return record

        def attempt() -> Record:
            try:
                return transaction()
            except IntegrityError:  # a concurrent first write of the same key: read it again
                return transaction()

        return self.run(attempt, what="writing")

    def select(self, query: sa.Select) -> list[Record]:
        """The records ``query`` (a select of the whole table) finds, in its order."""

        def read() -> list[Record]:
            with self.engine.connect() as conn:
                return [self.record(row._mapping) for row in conn.execute(query)]

        return self.run(read, what="reading")

    def erase_users(self, user_ids: Collection[int]) -> int:
        ids = sorted({int(u) for u in user_ids})
        return self._delete(self.table.c.user_id.in_(ids), what="erasing")

    def purge_before(self, cut: date) -> int:
        return self._delete(self.table.c.day < cut, what="purging")

    def _delete(self, where: sa.ColumnElement[bool], *, what: str) -> int:
        def transaction() -> int:
            with self.engine.begin() as conn:
                return int(conn.execute(sa.delete(self.table).where(where)).rowcount or 0)

        return self.run(transaction, what=what)


class DynamoRecordTable(DynamoTable, RecordKind[Record]):
    """One kind of record in table ``<prefix><kind>``: partition ``<partition>#<class>`` per
    class, sort key ``key_fields`` joined by ``#`` (the record's day and user first), the
    record as JSON in attribute ``data``. Erasure and the retention purge are a keys-only Scan
    of this small table."""

    partition = ""

    def opening(self) -> str:
        return f"opening the {self.kind} table"

    def item_key(self, record: Record) -> Item:
        class_id, *key = self.order(record)
        return dynamo_key(f"{self.partition}#{class_id}", "#".join(map(str, key)))

    def read_partition(self, class_id: int, *, day: date | None = None) -> list[Record]:
        """The class's records (of one day, or all)."""
        pk = f"{self.partition}#{class_id}"
        if day is None:
            return self.read(lambda: self.query(pk))
        prefix = format_day(day) + "#"
        return self.read(lambda: self.query(pk, condition="begins_with(sk, :day)", day=prefix))

    def _from_item(self, item: Item) -> Record:
        return self.record_type.model_validate_json(item["data"]["S"])

    def put(self, record: Record) -> Record:
        key = self.item_key(record)

        def write() -> Record:
            found: GetItemOutput = self.client.get_item(
                TableName=self.table, Key=key, ConsistentRead=True
            )
            if "Item" in found:
                stored = self._from_item(found["Item"])
                if self.same(stored, record):
                    return stored
            self.client.put_item(
                TableName=self.table, Item={**key, "data": {"S": record.model_dump_json()}}
            )
            return record

        return self.guard(write, what=f"writing {self.kind}")

    def read(self, items: Callable[[], Iterable[Item]]) -> list[Record]:
        """The records of ``items`` (a query or scan of this table), in ``order``."""
        return self.guard(
            lambda: sorted(map(self._from_item, items()), key=self.order),
            what=f"reading {self.kind}",
        )

    def read_all(self) -> list[Record]:
        return self.read(lambda: self.pages("scan", {}))

    def erase_users(self, user_ids: Collection[int]) -> int:
        ids = {str(int(u)) for u in user_ids}
        return self._delete_where(lambda sk: sk.split("#")[1] in ids, what=f"erasing {self.kind}")

    def purge_before(self, cut: date) -> int:
        day = format_day(cut)
        return self._delete_where(lambda sk: sk[:8] < day, what=f"purging {self.kind}")

    def _delete_where(self, chosen: Callable[[str], bool], *, what: str) -> int:
        """Delete the items whose sort key is ``chosen``: one Scan, keys only."""

        def run() -> int:
            keys = self.pages("scan", {"ProjectionExpression": "pk, sk"})
            return self.delete_keys([k for k in keys if chosen(k["sk"]["S"])], what=what)

        return self.guard(run, what=what)


__all__ = [
    "DynamoRecordTable",
    "DynamoTable",
    "RecordKind",
    "SqlRecordTable",
    "SqlTables",
    "batch_write",
    "delete_requests",
    "is_dynamodb",
    "record_day",
]
