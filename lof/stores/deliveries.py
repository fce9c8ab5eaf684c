"""Webhook deliveries already handled: a replayed event or delivery id starts nothing again.

S3, SNS and EventBridge deliver at least once, and anyone holding a signed request could send
it again; the webhooks remember each id they emitted an event for, for LOF_WEBHOOK_REPLAY_SECONDS,
next to the other stores (same LOF_STORE_URL, both backends):

* SQL: table ``lof_deliveries`` (``delivery_id`` primary key, ``expires_at`` unix seconds,
  indexed); each new id deletes the expired rows, so the table holds one window of ids.
* DynamoDB: table ``<prefix>deliveries``, ``pk="DELIVERY#<id>"``, ``sk="seen"``, with the TTL
  attribute ``expires_at``; DynamoDB deletes expired items within a day or two, and a read
  treats an expired item as absent meanwhile.

An id is remembered only after its event was emitted, so a failed emit stays retryable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from typing import Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from lof.stores.dynamo_items import GetItemOutput
from lof.stores.guards import run_dynamo, run_sql
from lof.stores.small_tables import is_dynamodb

T = TypeVar("T")
MAX_ID_CHARS = 160
TTL_ATTRIBUTE = "expires_at"

METADATA = sa.MetaData()
DELIVERIES = sa.Table(
    "lof_deliveries",
    METADATA,
    sa.Column("delivery_id", sa.String(MAX_ID_CHARS), primary_key=True),
    sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),
)


class DeliveryStore(Protocol):
    def seen(self, delivery_id: str, *, now: float | None = None) -> bool:
        """Whether ``delivery_id`` was handled and is still remembered."""

    def remember(self, delivery_id: str, *, ttl_seconds: int, now: float | None = None) -> None:
        """Keep ``delivery_id`` for ``ttl_seconds`` (again: the window starts anew)."""

    def close(self) -> None: ...


def _checked(delivery_id: str) -> str:
    if not delivery_id or len(delivery_id) > MAX_ID_CHARS:
        raise ValueError(f"a delivery id is 1-{MAX_ID_CHARS} characters")
    return delivery_id


def _now(now: float | None) -> int:
    return int(time.time() if now is None else now)


class SqlDeliveryStore:
    """Handled deliveries in the predictions' SQL database."""

    def __init__(self, url: str) -> None:
        from lof.core.config import redact_url
        from lof.stores.sql import create_store_engine

        self.url = redact_url(url)
        self.engine = create_store_engine(url)
        self._run(lambda: METADATA.create_all(self.engine, checkfirst=True), what="creating")

    def _run(self, fn: Callable[[], T], *, what: str) -> T:
        return run_sql(fn, url=self.url, what=f"{what} webhook deliveries")

    def seen(self, delivery_id: str, *, now: float | None = None) -> bool:
        query = sa.select(DELIVERIES.c.delivery_id).where(
            DELIVERIES.c.delivery_id == _checked(delivery_id),
            DELIVERIES.c.expires_at > _now(now),
        )

        def read() -> bool:
            with self.engine.connect() as conn:
                return conn.execute(query).first() is not None

        return self._run(read, what="reading")

    def remember(self, delivery_id: str, *, ttl_seconds: int, now: float | None = None) -> None:
        at = _now(now)
        row = {"delivery_id": _checked(delivery_id), "expires_at": at + ttl_seconds}

        def write() -> None:
            with self.engine.begin() as conn:
                conn.execute(sa.delete(DELIVERIES).where(DELIVERIES.c.expires_at <= at))
                conn.execute(
                    sa.delete(DELIVERIES).where(DELIVERIES.c.delivery_id == row["delivery_id"])
                )
                conn.execute(DELIVERIES.insert(), row)

        def attempt() -> None:
            with suppress(IntegrityError):  # the same id written concurrently: it is remembered
                write()

        self._run(attempt, what="writing")

    def close(self) -> None:
        self.engine.dispose()


class DynamoDeliveryStore:
    """Handled deliveries in a DynamoDB table whose items expire by TTL."""

    def __init__(self, url: str) -> None:
        from lof.stores.dynamodb import ensure_table, new_client, parse_url

        options = parse_url(url)
        self.url = url
        self.table = f"{options['prefix']}deliveries"
        self.client = new_client(endpoint=options["endpoint"], region=options["region"])
        create = bool(options["create"])
        self._guard(
            lambda: ensure_table(self.client, table=self.table, create=create),
            what="opening the deliveries table",
        )
        if create:  # on AWS the stack sets the TTL (deployments/s3-eventbridge.cfn.yaml)
            self._guard(self._enable_ttl, what="enabling the deliveries table's TTL")

    def _guard(self, fn: Callable[[], T], *, what: str) -> T:
        return run_dynamo(fn, url=self.url, table=self.table, what=what)

    def _enable_ttl(self) -> None:
        described = self.client.describe_time_to_live(TableName=self.table)
        if described.get("TimeToLiveDescription", {}).get("TimeToLiveStatus") in (
            "ENABLED",
            "ENABLING",
        ):
            return
        self.client.update_time_to_live(
            TableName=self.table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )

    @staticmethod
    def _key(delivery_id: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": f"DELIVERY#{_checked(delivery_id)}"}, "sk": {"S": "seen"}}

    def seen(self, delivery_id: str, *, now: float | None = None) -> bool:
        key = self._key(delivery_id)
        found: GetItemOutput = self._guard(
            lambda: self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True),
            what="reading webhook deliveries",
        )
        item = found.get("Item")
        return item is not None and int(item[TTL_ATTRIBUTE]["N"]) > _now(now)

    def remember(self, delivery_id: str, *, ttl_seconds: int, now: float | None = None) -> None:
        item = {**self._key(delivery_id), TTL_ATTRIBUTE: {"N": str(_now(now) + ttl_seconds)}}
        self._guard(
            lambda: self.client.put_item(TableName=self.table, Item=item),
            what="writing webhook deliveries",
        )

    def close(self) -> None:
        self.client.close()


def open_delivery_store(url: str) -> DeliveryStore:
    """The deliveries store of LOF_STORE_URL (a missing table created where the URL allows)."""
    if is_dynamodb(url):
        return DynamoDeliveryStore(url)
    return SqlDeliveryStore(url)


__all__ = ["DeliveryStore", "DynamoDeliveryStore", "SqlDeliveryStore", "open_delivery_store"]
