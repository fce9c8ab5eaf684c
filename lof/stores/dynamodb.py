"""DynamoDB backend of the features and predictions stores (boto3, low-level client).

URL: ``dynamodb://`` with optional query ``endpoint=http://host:port`` (e.g. DynamoDB Local or
moto_server), ``prefix=`` (table name prefix, default ``lof_``) and ``region=`` (default: the
AWS environment). Tables ``<prefix>features`` and ``<prefix>predictions`` are created on first
use (on-demand billing), each with a string partition key ``pk`` and sort key ``sk``.

Key design (both tables; ``D`` = day as YYYYMMDD, ``G`` = generation id of one write):

* ``pk="DAY", sk=D`` — the day manifest: ``gen`` (the generation readers use), ``classes``
  (comma-joined class ids), ``rows``, ``written_at``. Its presence marks D complete;
  ``last_complete_day`` is one Query on ``pk="DAY"`` newest first, Limit 1.
* ``pk="PENDING", sk=D`` — the generation being written (so a crashed write's leftovers can be
  deleted by the next write of D).
* features: ``pk="S#<class>#D#G"`` (cumulative states) and ``pk="I#<class>#D#G"`` (the day's
  increments), ``sk=<user_id>``, attribute ``data`` = compact JSON of the five counts and the
  two sorted id lists. Reading day D for some classes is one GetItem (manifest) and one Query per
  class on D's keys only — the history length never matters.
* predictions: ``pk="P#<class>#D#G"``, ``sk=<user_id>``, ``data`` = compact JSON of the record
  (floats as repr, so they read back bit for bit). ``read_class_day`` = GetItem on the day
  manifest + one Query (never a Scan). ``pk="CLASS#<class>", sk="D#G"`` index items list a
  class's days (``list_days``, ``read_student_history`` then BatchGetItem the student's items).

Idempotence and atomicity: ``write_day`` records D as pending under a fresh generation G, writes
every item of G (BatchWriteItem in parallel, UnprocessedItems resent with backoff), then flips
the day manifest to G with one PutItem — the single atomic step readers consult. The manifest
also names the generation it replaced: that one stays until the next write of D deletes it, so
a reader that fetched the old manifest just before the flip still finds every item it points
at. A crash before the flip leaves D as it was (missing, or its previous complete content);
items of the dead generation are invisible and the next write of D deletes them. Throttling
and 5xx are retried by botocore (``standard`` mode).
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from typing import Any, NotRequired, TypedDict, TypeVar
from urllib.parse import parse_qs, urlparse

import boto3
import pandas as pd
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from lof.core.collector import no_cycle_collection
from lof.core.errors import StoreError
from lof.core.retry import call_with_retries
from lof.stores import base, compact
from lof.stores.dynamo_items import (
    GetItemOutput,
    Item,
    WriteRequest,
    delete,
    dynamo_key,
    key_of,
    put,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

WRITE_WORKERS = 8
READ_WORKERS = 8
BATCH_WRITE_MAX = 25
BATCH_GET_MAX = 100
UNPROCESSED_ATTEMPTS = 10
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]*$")
_ACCESS_CODES = {
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "MissingAuthenticationTokenException",
    "InvalidClientTokenId",
}


def parse_url(url: str) -> dict[str, str | None]:
    """``dynamodb://?endpoint=&prefix=&region=`` -> its parts; StoreError if malformed."""
    parsed = urlparse(url)
    if parsed.scheme != "dynamodb" or parsed.netloc or parsed.path not in ("", "/"):
        raise StoreError(
            f"LOF_STORE_URL={url!r} is not a DynamoDB URL; expected "
            "dynamodb:// or dynamodb://?endpoint=http://host:port&prefix=lof_&region=us-east-1"
        )
    query = parse_qs(parsed.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"endpoint", "prefix", "region", "create"})
    if unknown:
        raise StoreError(
            f"LOF_STORE_URL={url!r}: unknown option(s) {', '.join(unknown)}; "
            "allowed: endpoint, prefix, region, create"
        )
    parts = {key: values[-1] for key, values in query.items()}
    prefix = parts.get("prefix", "lof_")
    if not _TABLE_NAME.match(prefix or "") or len(prefix or "") > 200:
        raise StoreError(
            f"LOF_STORE_URL={url!r}: prefix {prefix!r} may only hold letters, digits, _ . -"
        )
    endpoint = parts.get("endpoint") or None
    if endpoint is not None and urlparse(endpoint).scheme not in ("http", "https"):
        raise StoreError(f"LOF_STORE_URL={url!r}: endpoint {endpoint!r} must be an http(s) URL")
    # Tables are created at run time only on request or on a local endpoint (DynamoDB Local,
    # moto); on AWS they come from the CloudFormation stack (deployments/), with their IAM.
    create = parts.get("create", "true" if endpoint else "false").lower()
    if create not in ("true", "false", "1", "0"):
        raise StoreError(f"LOF_STORE_URL={url!r}: create must be true or false")
    return {
        "endpoint": endpoint,
        "prefix": prefix,
        "region": parts.get("region") or None,
        "create": "true" if create in ("true", "1") else None,
    }


def _error_line(exc: BaseException, *, url: str, what: str) -> str:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _ACCESS_CODES or status == 403 or code == "403":
            label = "access denied, HTTP 403" if code.isdigit() else code
            return (
                f"{what} was refused on LOF_STORE_URL={url!r} ({label}); grant the credentials "
                "dynamodb:CreateTable/DescribeTable/GetItem/PutItem/DeleteItem/Query/"
                "BatchWriteItem/BatchGetItem on the lof tables"
            )
        return f"{what} failed on LOF_STORE_URL={url!r}: {code}: {_one_line(message)}"
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return (
            f"{what}: DynamoDB endpoint of LOF_STORE_URL={url!r} is unreachable; check the "
            "endpoint= option and the network"
        )
    if isinstance(exc, NoCredentialsError):
        return (
            f"{what}: no AWS credentials for LOF_STORE_URL={url!r}; set AWS_PROFILE or the "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY environment"
        )
    if isinstance(exc, NoRegionError):
        return (
            f"{what}: no AWS region for LOF_STORE_URL={url!r}; add ?region=... or set "
            "AWS_DEFAULT_REGION"
        )
    return f"{what} failed on LOF_STORE_URL={url!r}: {type(exc).__name__}: {_one_line(str(exc))}"


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


# botocore's standard retries are the one retry layer of every DynamoDB call (throttling, 5xx,
# dropped connections; backoff capped at 20 s): 5 attempts of at most 5 s to connect and 20 s
# to read, so an outage fails a call in about 2 minutes. The feedback store shares it.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=20,
    max_pool_connections=max(WRITE_WORKERS, READ_WORKERS) + 2,
)
# A probe client that gives up fast: a wrong endpoint should fail in seconds.
PROBE_CONFIG = CLIENT_CONFIG.merge(Config(retries={"mode": "standard", "max_attempts": 2}))


def new_client(*, endpoint: str | None, region: str | None, config: Config = CLIENT_CONFIG) -> Any:
    """A DynamoDB client of the shared configuration (region: the URL's, else AWS_REGION)."""
    return boto3.session.Session().client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=region or os.environ.get("AWS_REGION") or None,
        config=config,
    )


def ensure_table(client: Any, *, table: str, create: bool) -> None:
    """Wait until ``table`` (pk/sk strings) is active; create it first when allowed.

    On AWS the tables come from deployments/s3-eventbridge.cfn.yaml, so a missing one is an
    error unless the URL asks for ``create=true`` (or names a local ``endpoint=``).
    """
    try:
        status = client.describe_table(TableName=table)["Table"]["TableStatus"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        if not create:
            raise StoreError(
                f"DynamoDB table {table} does not exist; create it with "
                "deployments/s3-eventbridge.cfn.yaml (or add create=true to LOF_STORE_URL)"
            ) from None
        try:
            client.create_table(
                TableName=table,
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
            log.info("created DynamoDB table %s", table)
        except ClientError as create_exc:
            if create_exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
                raise
        status = "CREATING"
    if status != "ACTIVE":
        client.get_waiter("table_exists").wait(
            TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )


def new_generation() -> str:
    """Time-ordered and unique, so two writes of a day never share item keys."""
    return f"{time.time_ns() // 1_000_000:012x}{uuid.uuid4().hex[:8]}"


PENDING_GRACE_SECONDS = 3600


def generation_age(gen: str) -> float:
    """Seconds since generation ``gen`` was started (its first 12 hex digits: milliseconds)."""
    try:
        return time.time() - int(gen[:12], 16) / 1000
    except ValueError:
        return float("inf")


class _Unprocessed(Exception):
    """DynamoDB took only part of a batch (throttling): the rest is sent again."""


def _until_processed(fn: Callable[[], None], *, what: str) -> None:
    """Resend a batch's unprocessed part with backoff; the calls' own errors are botocore's."""
    call_with_retries(
        fn,
        is_transient=lambda exc: isinstance(exc, _Unprocessed),
        attempts=UNPROCESSED_ATTEMPTS,
        base_delay=0.05,
        max_delay=5.0,
        what=what,
    )


def write_chunk(client: Any, table: str, chunk: list[WriteRequest], *, what: str, url: str) -> None:
    """One BatchWriteItem (at most 25 requests), its unprocessed part sent again with backoff."""
    pending = chunk

    def write() -> None:
        nonlocal pending
        response = client.batch_write_item(RequestItems={table: pending})
        pending = response.get("UnprocessedItems", {}).get(table, [])
        if pending:
            raise _Unprocessed()

    try:
        _until_processed(write, what=what)
    except _Unprocessed:
        raise StoreError(
            f"{what}: DynamoDB left {len(pending)} items unprocessed after "
            f"{UNPROCESSED_ATTEMPTS} attempts on LOF_STORE_URL={url!r} (throttled); "
            "rerun later or raise the table's capacity"
        ) from None


class Manifest(TypedDict):
    """A day's manifest as read: the generation readers use, its classes, and the generation it
    replaced with that one's classes (``prev``) while it is kept for readers in flight."""

    gen: str
    classes: tuple[int, ...]
    prev: NotRequired[tuple[str, tuple[int, ...]]]


class _DynamoBase:
    """Table handling shared by both stores: creation, batches, pagination, generations."""

    kind = ""
    parts: tuple[str, ...] = ()

    def __init__(self, url: str) -> None:
        self.url = url
        options = parse_url(url)
        self.table = f"{options['prefix']}{self.kind}"
        try:
            probe = new_client(
                endpoint=options["endpoint"], region=options["region"], config=PROBE_CONFIG
            )
            self.client = new_client(endpoint=options["endpoint"], region=options["region"])
        except (BotoCoreError, ValueError) as exc:
            raise StoreError(_error_line(exc, url=url, what="opening the store")) from None
        self.create_tables = bool(options["create"])
        self._guard(lambda: self._ensure_table(probe), what=f"opening table {self.table}")

    # --- plumbing -----------------------------------------------------------------------------

    def _guard(self, fn: Callable[[], T], *, what: str) -> T:
        try:
            return fn()
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(_error_line(exc, url=self.url, what=what)) from None

    def _ensure_table(self, probe: Any) -> None:
        ensure_table(probe, table=self.table, create=self.create_tables)

    def ping(self) -> None:
        self._guard(
            lambda: self.client.describe_table(TableName=self.table), what="reaching the store"
        )

    def close(self) -> None:
        self.client.close()

    def _get(self, pk: str, sk: str) -> Item | None:
        response: GetItemOutput = self.client.get_item(
            TableName=self.table, Key=dynamo_key(pk, sk), ConsistentRead=True
        )
        return response.get("Item")

    def _query(self, pk: str, *, keys_only: bool = False, **extra: object) -> list[Item]:
        """Every item of one partition (following pagination)."""
        request: dict[str, object] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": True,
            **extra,
        }
        if keys_only:
            request["ProjectionExpression"] = "pk, sk"
        items: list[Item] = []
        while True:
            response = self.client.query(**request)
            items.extend(response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last or "Limit" in extra:
                return items
            request["ExclusiveStartKey"] = last

    def _batch_write(self, requests: list[WriteRequest], *, what: str) -> None:
        chunks = [
            requests[i : i + BATCH_WRITE_MAX] for i in range(0, len(requests), BATCH_WRITE_MAX)
        ]
        if len(chunks) <= 1:
            for chunk in chunks:
                self._write_chunk(chunk, what=what)
            return
        with ThreadPoolExecutor(max_workers=WRITE_WORKERS) as pool:
            for future in [pool.submit(self._write_chunk, c, what=what) for c in chunks]:
                future.result()

    def _write_chunk(self, chunk: list[WriteRequest], *, what: str) -> None:
        write_chunk(self.client, self.table, chunk, what=what, url=self.url)

    def _batch_get(self, keys: list[tuple[str, str]]) -> list[Item]:
        items: list[Item] = []
        for i in range(0, len(keys), BATCH_GET_MAX):
            pending = [dynamo_key(pk, sk) for pk, sk in keys[i : i + BATCH_GET_MAX]]

            def read() -> None:
                nonlocal pending
                response = self.client.batch_get_item(
                    RequestItems={self.table: {"Keys": pending, "ConsistentRead": True}}
                )
                items.extend(response.get("Responses", {}).get(self.table, []))
                pending = response.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
                if pending:
                    raise _Unprocessed()

            try:
                _until_processed(read, what=f"reading {self.table}")
            except _Unprocessed:
                raise StoreError(
                    f"reading {self.table}: DynamoDB left {len(pending)} keys unprocessed on "
                    f"LOF_STORE_URL={self.url!r} (throttled); retry later"
                ) from None
        return items

    # --- day manifests and generations --------------------------------------------------------

    def _day_items(self, kind: str, *, before: date | None = None) -> list[Item]:
        """The day items of partition ``kind`` (manifests, pending writes): all of them, or
        those of the days before ``before``."""
        if before is None:
            return self._query(kind)
        return self._query(
            kind,
            KeyConditionExpression="pk = :pk AND sk < :before",
            ExpressionAttributeValues={
                ":pk": {"S": kind},
                ":before": {"S": base.day_key(before)},
            },
        )

    def _manifest(self, day: date) -> Manifest | None:
        item = self._get("DAY", base.day_key(day))
        if item is None:
            return None
        manifest: Manifest = {"gen": item["gen"]["S"], "classes": _ids(item["classes"]["S"])}
        if "prev_gen" in item:
            manifest["prev"] = (item["prev_gen"]["S"], _ids(item["prev_classes"]["S"]))
        return manifest

    def _data_pk(self, part: str, class_id: int, day: date, gen: str) -> str:
        return f"{part}#{class_id}#{base.day_key(day)}#{gen}"

    def _generation_pks(self, day: date, gen: str, classes: Iterable[int]) -> list[str]:
        return [self._data_pk(p, c, day, gen) for c in classes for p in self.parts]

    def _extra_keys(self, day: date, gen: str, classes: Iterable[int]) -> list[tuple[str, str]]:
        """Keys outside the data partitions that belong to a generation (none by default)."""
        return []

    def _delete_generation(self, day: date, gen: str, classes: Collection[int]) -> None:
        keys: list[tuple[str, str]] = list(self._extra_keys(day, gen, classes))
        pks = self._generation_pks(day, gen, classes)
        with ThreadPoolExecutor(max_workers=READ_WORKERS) as pool:
            for items in pool.map(lambda pk: self._query(pk, keys_only=True), pks):
                keys.extend((i["pk"]["S"], i["sk"]["S"]) for i in items)
        requests = [delete(dynamo_key(pk, sk)) for pk, sk in keys]
        self._batch_write(requests, what=f"deleting generation {gen} of {base.day_key(day)}")

    def _clear_leftovers(self, *, day: date, day_key: str, current: Manifest | None) -> None:
        """Delete generations of ``day`` no reader can still need, before writing a new one."""
        pending = self._get("PENDING", day_key)
        if pending is not None and (current is None or pending["gen"]["S"] != current["gen"]):
            # Leftovers of a write of this day that crashed before its flip.
            self._delete_generation(day, pending["gen"]["S"], _ids(pending["classes"]["S"]))
        if current is not None and "prev" in current:
            # Two generations old now: no reader can still be on its way to it.
            self._delete_generation(day, *current["prev"])

    def _generation_requests(
        self,
        *,
        day: date,
        gen: str,
        classes: list[int],
        items: dict[int, dict[str, list[tuple[int, str]]]],
    ) -> list[WriteRequest]:
        """The put requests of generation ``gen``: its data rows, then its extra keys."""
        requests = [
            put(
                {
                    "pk": {"S": self._data_pk(part, class_id, day, gen)},
                    "sk": {"S": str(user_id)},
                    "data": {"S": data},
                }
            )
            for class_id in classes
            for part, rows in items[class_id].items()
            for user_id, data in rows
        ]
        requests += [put(dynamo_key(pk, sk)) for pk, sk in self._extra_keys(day, gen, classes)]
        return requests

    @staticmethod
    def _manifest_item(
        *, day_key: str, gen: str, classes: list[int], rows: int, current: Manifest | None
    ) -> Item:
        """The day's manifest pointing to ``gen``, keeping the generation it replaces."""
        manifest: Item = {
            "pk": {"S": "DAY"},
            "sk": {"S": day_key},
            "gen": {"S": gen},
            "classes": {"S": base.encode_ids(classes)},
            "rows": {"N": str(rows)},
            "written_at": {"S": datetime.now(UTC).isoformat(timespec="seconds")},
        }
        if current is not None:
            manifest["prev_gen"] = {"S": current["gen"]}
            manifest["prev_classes"] = {"S": base.encode_ids(current["classes"])}
        return manifest

    def _drop_pending(self, *, key: str, gen: str) -> None:
        """Delete the pending record of ``gen``, unless a newer write of the day replaced it."""
        try:
            self.client.delete_item(
                TableName=self.table,
                Key={"pk": {"S": "PENDING"}, "sk": {"S": key}},
                ConditionExpression="gen = :gen",
                ExpressionAttributeValues={":gen": {"S": gen}},
            )
        except ClientError as exc:
            # Another write of the same day started meanwhile; its pending record stays.
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def _write_generation(
        self,
        *,
        day: date,
        items: dict[int, dict[str, list[tuple[int, str]]]],
        before_flip: Callable[[Manifest | None], None] | None = None,
        after_flip: Callable[[], None] | None = None,
    ) -> None:
        """Write day ``day`` as a new generation and flip the manifest to it (module docstring)."""
        key = base.day_key(day)
        what = f"writing {self.kind} of {key}"
        classes = sorted(items)

        def run() -> None:
            current = self._manifest(day)
            self._clear_leftovers(day=day, day_key=key, current=current)
            gen = new_generation()
            self.client.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": "PENDING"},
                    "sk": {"S": key},
                    "gen": {"S": gen},
                    "classes": {"S": base.encode_ids(classes)},
                },
            )
            requests = self._generation_requests(day=day, gen=gen, classes=classes, items=items)
            self._batch_write(requests, what=what)
            rows = sum(len(r) for parts in items.values() for r in parts.values())
            manifest = self._manifest_item(
                day_key=key, gen=gen, classes=classes, rows=rows, current=current
            )
            if before_flip is not None:
                before_flip(current)
            self.client.put_item(TableName=self.table, Item=manifest)
            if after_flip is not None:
                after_flip()
            self._drop_pending(key=key, gen=gen)

        self._guard(run, what=what)

    def last_complete_day(self) -> date | None:
        items = self._guard(
            lambda: self._query("DAY", keys_only=True, ScanIndexForward=False, Limit=1),
            what=f"reading {self.table}",
        )
        return base.parse_day_key(items[0]["sk"]["S"]) if items else None

    def is_complete(self, *, day: date) -> bool:
        return self._guard(lambda: self._manifest(day), what=f"reading {self.table}") is not None


def _ids(text: str) -> tuple[int, ...]:
    return base.decode_ids(text)


BLOB_CHUNK = 350_000  # DynamoDB items stop at 400 KB


class DynamoFeatureStore(compact.CompactFeatures, _DynamoBase):
    """Features store on DynamoDB: compact per-class blobs (``lof.stores.compact``).

    * ``pk="FDAY", sk=D`` — the day manifest: ``gen``, ``classes``, ``chain``, ``ckpt``,
      ``rows``, ``written_at`` and ``prev_gen`` (the generation it replaced, deleted by the next
      write of D so a reader in flight still finds it). Its presence marks D complete.
    * ``pk="F#<part>#D#G", sk="<class, 12 digits>#<chunk>"``, attribute ``b`` — the blobs of
      generation G of day D, split into chunks under DynamoDB's item size limit. Items per day
      follow the classes and the bytes the day's active students, not the cohort.
    * ``pk="FPENDING", sk=D`` — a generation being written (a crashed write's leftovers are
      deleted by the next write of D).

    A commit writes every blob of a new generation, then flips the manifest(s) — with one
    TransactWriteItems when it rewrites two days — so a reader sees a day whole or not at all.
    """

    kind = "features"
    parts = ()

    def __init__(self, url: str, *, legacy_ok: bool = False) -> None:
        super().__init__(url)
        if not legacy_ok:
            self._refuse_legacy()

    def _refuse_legacy(self) -> None:
        legacy = self._guard(
            lambda: self._query("DAY", keys_only=True, Limit=1), what=f"reading {self.table}"
        )
        if legacy:
            raise StoreError(
                f"the features store at LOF_STORE_URL={self.url!r} holds days in the former "
                f"layout (a full state per day); run `{compact.MIGRATE_COMMAND}` once to convert "
                "it, then rerun"
            )

    def _guarded(self, fn: Callable[[], T], what: str) -> T:
        return self._guard(fn, what=what)

    def _days(self, *, first: date | None, last: date) -> dict[date, compact.DayMeta]:
        low = "00000000" if first is None else base.day_key(first)
        high = base.day_key(min(last, date(9999, 12, 31)))
        items = self._query(
            "FDAY",
            KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues={
                ":pk": {"S": "FDAY"},
                ":lo": {"S": low},
                ":hi": {"S": high},
            },
        )
        out = {}
        for item in items:
            day = base.parse_day_key(item["sk"]["S"])
            out[day] = compact.DayMeta(
                day=day,
                classes=_ids(item["classes"]["S"]),
                chain=int(item["chain"]["N"]),
                checkpoint=bool(item["ckpt"]["BOOL"]),
                rows=int(item["rows"]["N"]),
                stamp=item["gen"]["S"],
            )
        return out

    def _blob_items(
        self, part: str, day: date, gen: str, class_ids: Collection[int] | None
    ) -> list[Item]:
        pk = f"F#{part}#{base.day_key(day)}#{gen}"
        if class_ids is None:
            return self._query(pk)
        return self._query(
            pk,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues={
                ":pk": {"S": pk},
                ":lo": {"S": f"{min(class_ids):012d}#"},
                ":hi": {"S": f"{max(class_ids):012d}#~"},
            },
        )

    def _blobs(
        self, meta: compact.DayMeta, part: str, class_ids: Collection[int] | None
    ) -> dict[int, bytes]:
        if class_ids is not None and len(class_ids) == 0:
            return {}
        wanted = None if class_ids is None else {int(c) for c in class_ids}
        chunks: dict[int, list[tuple[int, bytes]]] = {}
        for item in self._blob_items(part, meta.day, meta.stamp, wanted):
            class_text, chunk = item["sk"]["S"].split("#")
            class_id = int(class_text)
            if wanted is None or class_id in wanted:
                chunks.setdefault(class_id, []).append((int(chunk), bytes(item["b"]["B"])))
        return {c: b"".join(data for _, data in sorted(parts)) for c, parts in chunks.items()}

    def _delete_blobs(self, day: date, gen: str, parts: Iterable[str]) -> None:
        keys = []
        for part in parts:
            for item in self._query(f"F#{part}#{base.day_key(day)}#{gen}", keys_only=True):
                keys.append(delete(key_of(item)))
        self._batch_write(keys, what=f"deleting generation {gen} of {base.day_key(day)}")

    def _commit(
        self,
        writes: list[compact.DayWrite],
        *,
        drop_checkpoints: list[compact.DayMeta],
    ) -> dict[date, str]:
        stamps: dict[date, str] = {}
        manifests = []
        requests: list[WriteRequest] = []
        for write in writes:
            key = base.day_key(write.day)
            current = self._get("FDAY", key)
            pending = self._get("FPENDING", key)
            if pending is not None and (
                current is None or pending["gen"]["S"] != current["gen"]["S"]
            ):
                # Leftovers of a write of this day that crashed before its flip.
                self._delete_blobs(write.day, pending["gen"]["S"], compact.PARTS)
            if current is not None and "prev_gen" in current:
                # Two generations old now: no reader can still be on its way to it.
                self._delete_blobs(write.day, current["prev_gen"]["S"], compact.PARTS)
            gen = new_generation()
            stamps[write.day] = gen
            self.client.put_item(
                TableName=self.table,
                Item={"pk": {"S": "FPENDING"}, "sk": {"S": key}, "gen": {"S": gen}},
            )
            for (part, class_id), data in sorted(write.blobs.items()):
                for n, start in enumerate(range(0, max(len(data), 1), BLOB_CHUNK)):
                    item: Item = {
                        "pk": {"S": f"F#{part}#{key}#{gen}"},
                        "sk": {"S": f"{class_id:012d}#{n:03d}"},
                        "b": {"B": data[start : start + BLOB_CHUNK]},
                    }
                    requests.append(put(item))
            manifest: Item = {
                "pk": {"S": "FDAY"},
                "sk": {"S": key},
                "gen": {"S": gen},
                "classes": {"S": base.encode_ids(write.classes)},
                "chain": {"N": str(write.chain)},
                "ckpt": {"BOOL": write.checkpoint},
                "rows": {"N": str(write.rows)},
                "written_at": {"S": datetime.now(UTC).isoformat(timespec="seconds")},
            }
            if current is not None:
                manifest["prev_gen"] = current["gen"]
            manifests.append(manifest)
        self._batch_write(requests, what="writing features")
        if len(manifests) == 1:
            self.client.put_item(TableName=self.table, Item=manifests[0])
        else:
            self.client.transact_write_items(
                TransactItems=[{"Put": {"TableName": self.table, "Item": m}} for m in manifests]
            )
        for write in writes:
            self.client.delete_item(
                TableName=self.table,
                Key={"pk": {"S": "FPENDING"}, "sk": {"S": base.day_key(write.day)}},
            )
        for meta in drop_checkpoints:
            self.client.update_item(
                TableName=self.table,
                Key={"pk": {"S": "FDAY"}, "sk": {"S": base.day_key(meta.day)}},
                UpdateExpression="SET ckpt = :f",
                ExpressionAttributeValues={":f": {"BOOL": False}},
            )
            self._delete_blobs(meta.day, meta.stamp, (compact.CHECKPOINT,))
        return stamps

    def _drop_days(self, before: date) -> None:
        for kind in ("FPENDING", "FDAY"):
            for item in self._day_items(kind, before=before):
                day = base.parse_day_key(item["sk"]["S"])
                for gen in (item["gen"]["S"], item.get("prev_gen", {}).get("S")):
                    if gen:
                        self._delete_blobs(day, gen, compact.PARTS)
                key = {"pk": item["pk"], "sk": item["sk"]}
                self.client.delete_item(TableName=self.table, Key=key)

    def _drop_replaced(self) -> None:
        """Delete every generation no manifest reads: the one each day's last write replaced
        (kept for readers in flight) and those of writes that crashed."""
        current = {item["sk"]["S"]: item for item in self._day_items("FDAY")}
        for key, item in current.items():
            if "prev_gen" in item:
                day = base.parse_day_key(key)
                self._delete_blobs(day, item["prev_gen"]["S"], compact.PARTS)
                self.client.update_item(
                    TableName=self.table,
                    Key={"pk": item["pk"], "sk": item["sk"]},
                    UpdateExpression="REMOVE prev_gen",
                )
        for item in self._day_items("FPENDING"):
            key, gen = item["sk"]["S"], item["gen"]["S"]
            if generation_age(gen) < PENDING_GRACE_SECONDS:
                continue  # a write may still be on its way to flipping to it
            if key not in current or current[key]["gen"]["S"] != gen:
                self._delete_blobs(base.parse_day_key(key), gen, compact.PARTS)
            self.client.delete_item(TableName=self.table, Key={"pk": item["pk"], "sk": item["sk"]})

    def last_complete_day(self) -> date | None:
        items = self._guard(
            lambda: self._query("FDAY", keys_only=True, ScanIndexForward=False, Limit=1),
            what=f"reading {self.table}",
        )
        return base.parse_day_key(items[0]["sk"]["S"]) if items else None

    def is_complete(self, *, day: date) -> bool:
        found = self._guard(lambda: self._get("FDAY", base.day_key(day)), what="reading")
        return found is not None


class DynamoPredictionStore(_DynamoBase):
    """Predictions store on DynamoDB (see the module docstring for the key design)."""

    kind = "predictions"
    parts = ("P",)

    def _extra_keys(self, day: date, gen: str, classes: Iterable[int]) -> list[tuple[str, str]]:
        return [(f"CLASS#{c}", f"{base.day_key(day)}#{gen}") for c in classes]

    def write_day(self, *, day: date, predictions: pd.DataFrame) -> None:
        """Replace day ``day``'s predictions and mark it complete, atomically."""
        items: dict[int, dict[str, list[tuple[int, str]]]] = {}
        now = datetime.now(UTC).replace(microsecond=0)
        with no_cycle_collection():
            rows = base.prediction_rows(predictions, what=f"predictions of {base.day_key(day)}")
            for row in rows:
                data = {
                    k: row[k] for k in base.PREDICTION_COLUMNS if k not in ("class_id", "user_id")
                }
                items.setdefault(row["class_id"], {"P": []})["P"].append(
                    (row["user_id"], base.dumps(data))
                )
            bodies = base.class_day_bodies(rows, day=day, written_at=now)
            del rows
        key = base.day_key(day)

        def drop_old_bodies(current: Manifest | None) -> None:
            # Before the flip: until the new bodies are in, readers fall back to the store.
            if current is None:
                return
            requests = [delete(body_key(c, key)) for c in current["classes"]]
            self._batch_write(requests, what=f"replacing the bodies of {key}")

        def put_bodies() -> None:
            requests = [
                put({**body_key(class_id, key), **_body_item(body)})
                for class_id, body in bodies.items()
            ]
            self._batch_write(requests, what=f"writing the bodies of {key}")

        self._write_generation(
            day=day,
            items=items,
            before_flip=drop_old_bodies,
            after_flip=put_bodies,
        )

    def read_class_body(self, *, day: date, class_id: int) -> base.StoredBody | None:
        """One GetItem. Bodies go in after the day's flip and out before the next one, so a
        body present is always the day's current content."""
        item = self._guard(
            lambda: self._get(f"BODY#{int(class_id)}", base.day_key(day)),
            what=f"reading the body of class {class_id}",
        )
        if item is None:
            return None
        return base.StoredBody(
            gzip=bytes(item["body"]["B"]),
            etag=item["etag"]["S"],
            written_at=datetime.fromisoformat(item["at"]["S"]),
            model_version=item.get("mv", {}).get("S", ""),
        )

    def read_class_day(self, *, day: date, class_id: int) -> list[base.PredictionRecord]:
        def read() -> list[base.PredictionRecord]:
            manifest = self._manifest(day)
            if manifest is None or int(class_id) not in manifest["classes"]:
                return []
            items = self._query(self._data_pk("P", int(class_id), day, manifest["gen"]))
            records = [_record(int(class_id), day, item) for item in items]
            return sorted(records, key=lambda r: r["user_id"])

        return self._guard(read, what=f"reading predictions of class {class_id}")

    def _live_days(self, class_id: int) -> list[tuple[date, str]]:
        """(day, generation) of the class's complete days, oldest first."""
        entries = [
            tuple(item["sk"]["S"].split("#", 1))
            for item in self._query(f"CLASS#{int(class_id)}", keys_only=True)
        ]
        if not entries:
            return []
        days = sorted({day for day, _ in entries})
        live = {
            item["sk"]["S"]: item["gen"]["S"]
            for item in self._batch_get([("DAY", d) for d in days])
        }
        return sorted(
            (base.parse_day_key(day), gen) for day, gen in entries if live.get(day) == gen
        )

    def list_days(self, *, class_id: int) -> list[date]:
        return self._guard(
            lambda: [day for day, _ in self._live_days(class_id)],
            what=f"listing prediction days of class {class_id}",
        )

    def read_student_history(self, *, class_id: int, user_id: int) -> list[base.PredictionRecord]:
        def read() -> list[base.PredictionRecord]:
            days = self._live_days(class_id)
            keys = [(self._data_pk("P", int(class_id), d, g), str(int(user_id))) for d, g in days]
            records = [
                _record(int(class_id), base.parse_day_key(item["pk"]["S"].split("#")[2]), item)
                for item in self._batch_get(keys)
            ]
            return sorted(records, key=lambda r: r["predicted_dt"])

        return self._guard(read, what=f"reading predictions of student {user_id}")

    # --- erasure and retention ----------------------------------------------------------------

    def _generations(self) -> list[tuple[int, date, str]]:
        """(class, day, generation) of every generation stored: live, kept for readers in
        flight, or left by a crashed write (each one's ``CLASS#`` index item names it)."""
        classes: set[int] = set()
        for kind in ("DAY", "PENDING"):
            for item in self._day_items(kind):
                for name in ("classes", "prev_classes"):
                    if name in item:
                        classes.update(_ids(item[name]["S"]))

        def listed(class_id: int) -> list[tuple[int, date, str]]:
            out = []
            for item in self._query(f"CLASS#{class_id}", keys_only=True):
                day, gen = item["sk"]["S"].split("#", 1)
                out.append((class_id, base.parse_day_key(day), gen))
            return out

        with ThreadPoolExecutor(max_workers=READ_WORKERS) as pool:
            return [g for found in pool.map(listed, sorted(classes)) for g in found]

    def _items_of(self, user_ids: Collection[int]) -> list[Item]:
        keys = [
            (self._data_pk("P", class_id, day, gen), str(int(user)))
            for class_id, day, gen in self._generations()
            for user in sorted({int(u) for u in user_ids})
        ]
        return self._batch_get(keys)

    def user_class_days(self, user_ids: Collection[int]) -> list[tuple[int, int, date]]:
        """(user_id, class_id, day) of every stored prediction of these students: one
        BatchGetItem key per student and class-day generation, never a Scan."""

        def read() -> list[tuple[int, int, date]]:
            found = set()
            for item in self._items_of(user_ids):
                _, class_id, day, _ = item["pk"]["S"].split("#")
                found.add((int(item["sk"]["S"]), int(class_id), base.parse_day_key(day)))
            return sorted(found)

        return self._guard(read, what="finding students' predictions")

    def erase_users(self, user_ids: Collection[int]) -> int:
        """Rebuild each class-day body holding these students without them, then delete their
        items of every generation; returns the items deleted (a rerun deletes none)."""
        ids = {int(u) for u in user_ids}

        def erase() -> int:
            items = self._items_of(ids)
            now = datetime.now(UTC).replace(microsecond=0)
            for pk in sorted({item["pk"]["S"] for item in items}):
                _, class_id, day, _ = pk.split("#")
                key = body_key(int(class_id), day)
                body = self.read_class_body(day=base.parse_day_key(day), class_id=int(class_id))
                rebuilt = None if body is None else base.body_without(body, ids, written_at=now)
                if rebuilt is None and body is not None:
                    self.client.delete_item(TableName=self.table, Key=key)
                elif rebuilt is not None and rebuilt is not body:
                    self.client.put_item(TableName=self.table, Item={**key, **_body_item(rebuilt)})
            requests = [delete(key_of(item)) for item in items]
            self._batch_write(requests, what="erasing students' predictions")
            return len(items)

        return self._guard(erase, what="erasing students from the predictions")

    def purge_before(self, cut: date) -> int:
        """Delete every generation, body and manifest of the days before ``cut`` (manifest
        last, so an interrupted purge is finished by the next); returns the days removed."""

        def purge() -> int:
            for item in self._day_items("PENDING", before=cut):
                day = base.parse_day_key(item["sk"]["S"])
                self._delete_generation(day, item["gen"]["S"], _ids(item["classes"]["S"]))
                self.client.delete_item(
                    TableName=self.table, Key={"pk": item["pk"], "sk": item["sk"]}
                )
            days = self._day_items("DAY", before=cut)
            for item in days:
                key = item["sk"]["S"]
                day, classes = base.parse_day_key(key), _ids(item["classes"]["S"])
                bodies = [delete(body_key(c, key)) for c in classes]
                self._batch_write(bodies, what=f"purging the bodies of {key}")
                self._delete_generation(day, item["gen"]["S"], classes)
                if "prev_gen" in item:
                    self._delete_generation(
                        day, item["prev_gen"]["S"], _ids(item["prev_classes"]["S"])
                    )
                self.client.delete_item(
                    TableName=self.table, Key={"pk": item["pk"], "sk": item["sk"]}
                )
            return len(days)

        return self._guard(purge, what="purging predictions")


def body_key(class_id: int, day_key: str) -> Item:
    """The key of a class-day's stored body."""
    return dynamo_key(f"BODY#{class_id}", day_key)


def _body_item(body: base.StoredBody) -> Item:
    """A body's attributes as the predictions table keeps them."""
    return {
        "etag": {"S": body.etag},
        "at": {"S": body.written_at.isoformat()},
        "mv": {"S": body.model_version},
        "body": {"B": body.gzip},
    }


def _record(class_id: int, day: date, item: Item) -> base.PredictionRecord:
    row = base.loads(item["data"]["S"])
    row["class_id"] = class_id
    row["user_id"] = int(item["sk"]["S"])
    return base.prediction_record(row, day=day)
