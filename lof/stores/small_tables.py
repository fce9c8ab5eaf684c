"""What the small stores next to the predictions share (privacy records, access log): a SQL
engine with clear errors and retries, and a DynamoDB table with paged queries and batches.

Both open from LOF_STORE_URL like the feedback store: SQL tables are created on first use, a
DynamoDB table where the URL allows it (``lof.stores.dynamodb.ensure_table``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from lof.core.errors import StoreError
from lof.core.retry import call_with_retries, is_transient_db_error

T = TypeVar("T")


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
        try:
            return call_with_retries(
                fn, is_transient=is_transient_db_error, attempts=3, what=f"{what} {self.what}"
            )
        except SQLAlchemyError as exc:
            orig = getattr(exc, "orig", None) or exc
            reason = " ".join(str(orig).split())[:200]
            raise StoreError(
                f"{what} {self.what} failed on LOF_STORE_URL={self.url!r}: "
                f"{type(orig).__name__}: {reason}; check the database server and retry"
            ) from None

    def close(self) -> None:
        self.engine.dispose()


def batch_write(
    client: Any, table: str, requests: list[dict[str, Any]], *, what: str, url: str
) -> None:
    """BatchWriteItem in chunks of 25 (``lof.stores.dynamodb.write_chunk``)."""
    from lof.stores.dynamodb import BATCH_WRITE_MAX, write_chunk

    for start in range(0, len(requests), BATCH_WRITE_MAX):
        write_chunk(client, table, requests[start : start + BATCH_WRITE_MAX], what=what, url=url)


def delete_requests(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """DeleteRequests of these items' keys."""
    return [{"DeleteRequest": {"Key": {"pk": i["pk"], "sk": i["sk"]}}} for i in items]


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
            what=f"opening table {self.table}",
        )
        if self.ttl_attribute and options["create"]:
            self.guard(self._enable_ttl, what=f"enabling TTL on {self.table}")

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
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            message = " ".join(str(error.get("Message", "")).split())[:200]
            raise StoreError(
                f"{what} failed on LOF_STORE_URL={self.url!r} table {self.table}: "
                f"{error.get('Code', '')}: {message}"
            ) from None
        except BotoCoreError as exc:
            raise StoreError(
                f"{what} failed on LOF_STORE_URL={self.url!r}: {type(exc).__name__}; check the "
                "endpoint, region and credentials"
            ) from None

    def pages(self, operation: str, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
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

    def query(self, pk: str, *, condition: str = "", **values: str) -> Iterator[dict[str, Any]]:
        """The items of partition ``pk`` (``condition`` on ``sk`` with ``:name`` values)."""
        names = {":pk": {"S": pk}, **{f":{k}": {"S": v} for k, v in values.items()}}
        expression = "pk = :pk" + (f" AND {condition}" if condition else "")
        return self.pages(
            "query", {"KeyConditionExpression": expression, "ExpressionAttributeValues": names}
        )

    def batch(self, requests: list[dict[str, Any]], *, what: str) -> None:
        batch_write(self.client, self.table, requests, what=what, url=self.url)

    def delete_keys(self, items: list[dict[str, Any]], *, what: str) -> int:
        self.batch(delete_requests(items), what=what)
        return len(items)

    def close(self) -> None:
        self.client.close()


__all__ = ["DynamoTable", "SqlTables", "batch_write", "delete_requests"]
