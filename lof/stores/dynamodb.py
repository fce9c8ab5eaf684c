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
  two sorted id lists, then the early-warning event state (``lof.signals``). Reading day D
  for some classes is one GetItem (manifest) and one Query per class on D's keys only — the
  history length never matters.
* predictions: ``pk="P#<class>#D#G"``, ``sk=<user_id>``, ``data`` = compact JSON of the record
  (floats as repr, so they read back bit for bit). ``read_class_day`` = GetItem on the day
  manifest + one Query (never a Scan). ``pk="CLASS#<class>", sk="D#G"`` index items list a
  class's days (``list_days``, ``read_student_history`` then BatchGetItem the student's items).

Idempotence and atomicity: ``write_day`` records D as pending under a fresh generation G, writes
every item of G (BatchWriteItem in parallel, UnprocessedItems retried with backoff), then flips
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
import random
import re
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from typing import Any, TypeVar
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

from lof.errors import StoreError
from lof.features import COUNT_COLUMNS, SET_COLUMNS
from lof.signals import EVENT_STATE_COLUMNS
from lof.stores import base

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
    unknown = sorted(set(query) - {"endpoint", "prefix", "region"})
    if unknown:
        raise StoreError(
            f"LOF_STORE_URL={url!r}: unknown option(s) {', '.join(unknown)}; "
            "allowed: endpoint, prefix, region"
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
    return {"endpoint": endpoint, "prefix": prefix, "region": parts.get("region") or None}


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


def _client(*, endpoint: str | None, region: str | None, attempts: int) -> Any:
    config = Config(
        retries={"mode": "standard", "max_attempts": attempts},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=max(WRITE_WORKERS, READ_WORKERS) + 2,
    )
    return boto3.session.Session().client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=region or os.environ.get("AWS_REGION") or None,
        config=config,
    )


def new_generation() -> str:
    """Time-ordered and unique, so two writes of a day never share item keys."""
    return f"{time.time_ns() // 1_000_000:012x}{uuid.uuid4().hex[:8]}"


class _DynamoBase:
    """Table handling shared by both stores: creation, batches, pagination, generations."""

    kind = ""
    parts: tuple[str, ...] = ()

    def __init__(self, url: str) -> None:
        self.url = url
        options = parse_url(url)
        self.table = f"{options['prefix']}{self.kind}"
        try:
            # A probe client that gives up fast: a wrong endpoint should fail in seconds.
            probe = _client(endpoint=options["endpoint"], region=options["region"], attempts=2)
            self.client = _client(
                endpoint=options["endpoint"], region=options["region"], attempts=8
            )
        except (BotoCoreError, ValueError) as exc:
            raise StoreError(_error_line(exc, url=url, what="opening the store")) from None
        self._guard(lambda: self._ensure_table(probe), what=f"opening table {self.table}")

    # --- plumbing -----------------------------------------------------------------------------

    def _guard(self, fn: Callable[[], T], *, what: str) -> T:
        try:
            return fn()
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(_error_line(exc, url=self.url, what=what)) from None

    def _ensure_table(self, probe: Any) -> None:
        try:
            described = probe.describe_table(TableName=self.table)
            status = described["Table"]["TableStatus"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            try:
                probe.create_table(
                    TableName=self.table,
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
                log.info("created DynamoDB table %s", self.table)
            except ClientError as create_exc:
                if create_exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
                    raise
            status = "CREATING"
        if status != "ACTIVE":
            self.client.get_waiter("table_exists").wait(
                TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
            )

    def ping(self) -> None:
        self._guard(
            lambda: self.client.describe_table(TableName=self.table), what="reaching the store"
        )

    def close(self) -> None:
        self.client.close()

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": pk}, "sk": {"S": sk}},
            ConsistentRead=True,
        )
        return response.get("Item")

    def _query(self, pk: str, *, keys_only: bool = False, **extra: Any) -> list[dict[str, Any]]:
        """Every item of one partition (following pagination)."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": True,
            **extra,
        }
        if keys_only:
            request["ProjectionExpression"] = "pk, sk"
        items: list[dict[str, Any]] = []
        while True:
            response = self.client.query(**request)
            items.extend(response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last or "Limit" in extra:
                return items
            request["ExclusiveStartKey"] = last

    def _batch_write(self, requests: list[dict[str, Any]], *, what: str) -> None:
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

    def _write_chunk(self, chunk: list[dict[str, Any]], *, what: str) -> None:
        pending = chunk
        for attempt in range(UNPROCESSED_ATTEMPTS):
            response = self.client.batch_write_item(RequestItems={self.table: pending})
            pending = response.get("UnprocessedItems", {}).get(self.table, [])
            if not pending:
                return
            time.sleep(random.uniform(0, min(5.0, 0.05 * 2**attempt)))
        raise StoreError(
            f"{what}: DynamoDB left {len(pending)} items unprocessed after "
            f"{UNPROCESSED_ATTEMPTS} attempts on LOF_STORE_URL={self.url!r} (throttled); "
            "rerun later or raise the table's capacity"
        )

    def _batch_get(self, keys: list[tuple[str, str]]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for i in range(0, len(keys), BATCH_GET_MAX):
            pending: list[dict[str, Any]] = [
                {"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in keys[i : i + BATCH_GET_MAX]
            ]
            for attempt in range(UNPROCESSED_ATTEMPTS):
                response = self.client.batch_get_item(
                    RequestItems={self.table: {"Keys": pending, "ConsistentRead": True}}
                )
                items.extend(response.get("Responses", {}).get(self.table, []))
                pending = response.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
                if not pending:
                    break
                time.sleep(random.uniform(0, min(5.0, 0.05 * 2**attempt)))
            else:
                raise StoreError(
                    f"reading {self.table}: DynamoDB left {len(pending)} keys unprocessed on "
                    f"LOF_STORE_URL={self.url!r} (throttled); retry later"
                )
        return items

    # --- day manifests and generations --------------------------------------------------------

    def _manifest(self, day: date) -> dict[str, Any] | None:
        item = self._get("DAY", base.day_key(day))
        if item is None:
            return None
        manifest = {"gen": item["gen"]["S"], "classes": _ids(item["classes"]["S"])}
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
        requests = [
            {"DeleteRequest": {"Key": {"pk": {"S": pk}, "sk": {"S": sk}}}} for pk, sk in keys
        ]
        self._batch_write(requests, what=f"deleting generation {gen} of {base.day_key(day)}")

    def _write_generation(
        self,
        *,
        day: date,
        items: dict[int, dict[str, list[tuple[int, str]]]],
        fail_after_rows: int | None,
    ) -> None:
        """Write day ``day`` as a new generation and flip the manifest to it (module docstring)."""
        key = base.day_key(day)
        what = f"writing {self.kind} of {key}"
        classes = sorted(items)

        def run() -> None:
            current = self._manifest(day)
            pending = self._get("PENDING", key)
            if pending is not None and (current is None or pending["gen"]["S"] != current["gen"]):
                # Leftovers of a write of this day that crashed before its flip.
                self._delete_generation(day, pending["gen"]["S"], _ids(pending["classes"]["S"]))
            if current is not None and "prev" in current:
                # Two generations old now: no reader can still be on its way to it.
                self._delete_generation(day, *current["prev"])
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
            requests = [
                {
                    "PutRequest": {
                        "Item": {
                            "pk": {"S": self._data_pk(part, class_id, day, gen)},
                            "sk": {"S": str(user_id)},
                            "data": {"S": data},
                        }
                    }
                }
                for class_id in classes
                for part, rows in items[class_id].items()
                for user_id, data in rows
            ]
            requests += [
                {"PutRequest": {"Item": {"pk": {"S": pk}, "sk": {"S": sk}}}}
                for pk, sk in self._extra_keys(day, gen, classes)
            ]
            if fail_after_rows is not None and fail_after_rows < len(requests) + 1:
                self._batch_write(requests[:fail_after_rows], what=what)
                raise base.SimulatedCrash(f"simulated crash after {fail_after_rows} rows")
            self._batch_write(requests, what=what)
            rows = sum(len(r) for parts in items.values() for r in parts.values())
            manifest = {
                "pk": {"S": "DAY"},
                "sk": {"S": key},
                "gen": {"S": gen},
                "classes": {"S": base.encode_ids(classes)},
                "rows": {"N": str(rows)},
                "written_at": {"S": datetime.now(UTC).isoformat(timespec="seconds")},
            }
            if current is not None:
                manifest["prev_gen"] = {"S": current["gen"]}
                manifest["prev_classes"] = {"S": base.encode_ids(current["classes"])}
            self.client.put_item(TableName=self.table, Item=manifest)
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


class DynamoFeatureStore(_DynamoBase):
    """Features store on DynamoDB (see the module docstring for the key design)."""

    kind = "features"
    parts = ("I", "S")

    def write_day(
        self,
        *,
        day: date,
        increments: pd.DataFrame,
        states: pd.DataFrame,
        _fail_after_rows: int | None = None,
    ) -> None:
        """Replace day ``day`` (increments and states) and mark it complete, atomically."""
        items: dict[int, dict[str, list[tuple[int, str]]]] = {}
        for part, frame, what in (("I", increments, "increments"), ("S", states, "states")):
            rows = base.engagement_rows(frame, what=f"features {what} of {base.day_key(day)}")
            for row in rows:
                data = base.dumps(
                    [row[c] for c in (*COUNT_COLUMNS, *SET_COLUMNS, *EVENT_STATE_COLUMNS)]
                )
                parts = items.setdefault(row["class_id"], {"I": [], "S": []})
                parts[part].append((row["user_id"], data))
        self._write_generation(day=day, items=items, fail_after_rows=_fail_after_rows)

    def read_states(self, *, day: date, class_ids: Collection[int] | None = None) -> pd.DataFrame:
        return self._read_part("S", day=day, class_ids=class_ids)

    def read_increments(
        self, *, day: date, class_ids: Collection[int] | None = None
    ) -> pd.DataFrame:
        return self._read_part("I", day=day, class_ids=class_ids)

    def _read_part(
        self, part: str, *, day: date, class_ids: Collection[int] | None
    ) -> pd.DataFrame:
        def read() -> list[dict[str, Any]]:
            manifest = self._manifest(day)
            if manifest is None:
                return []
            classes = manifest["classes"]
            if class_ids is not None:
                wanted = {int(c) for c in class_ids}
                classes = tuple(c for c in classes if c in wanted)
            pks = {self._data_pk(part, c, day, manifest["gen"]): c for c in classes}
            rows: list[dict[str, Any]] = []
            with ThreadPoolExecutor(max_workers=READ_WORKERS) as pool:
                for class_id, items in zip(pks.values(), pool.map(self._query, pks), strict=True):
                    rows.extend(_engagement_row(class_id, item) for item in items)
            return rows

        return base.engagement_frame(self._guard(read, what=f"reading {self.table}"))


def _engagement_row(class_id: int, item: dict[str, Any]) -> dict[str, Any]:
    values = base.loads(item["data"]["S"])
    row: dict[str, Any] = {"class_id": class_id, "user_id": int(item["sk"]["S"])}
    n = len(COUNT_COLUMNS)
    row.update(zip(COUNT_COLUMNS, values[:n], strict=True))
    row["activity_ids"] = tuple(values[n])
    row["session_ids"] = tuple(values[n + 1])
    # Items written before the signals' event state end here: no dated events.
    state = values[n + 2 :] or [0] * len(EVENT_STATE_COLUMNS)
    row.update(zip(EVENT_STATE_COLUMNS, state, strict=True))
    return row


class DynamoPredictionStore(_DynamoBase):
    """Predictions store on DynamoDB (see the module docstring for the key design)."""

    kind = "predictions"
    parts = ("P",)

    def _extra_keys(self, day: date, gen: str, classes: Iterable[int]) -> list[tuple[str, str]]:
        return [(f"CLASS#{c}", f"{base.day_key(day)}#{gen}") for c in classes]

    def write_day(
        self, *, day: date, predictions: pd.DataFrame, _fail_after_rows: int | None = None
    ) -> None:
        """Replace day ``day``'s predictions and mark it complete, atomically."""
        rows = base.prediction_rows(predictions, what=f"predictions of {base.day_key(day)}")
        items: dict[int, dict[str, list[tuple[int, str]]]] = {}
        for row in rows:
            data = {k: row[k] for k in base.PREDICTION_COLUMNS if k not in ("class_id", "user_id")}
            items.setdefault(row["class_id"], {"P": []})["P"].append(
                (row["user_id"], base.dumps(data))
            )
        self._write_generation(day=day, items=items, fail_after_rows=_fail_after_rows)

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


def _record(class_id: int, day: date, item: dict[str, Any]) -> base.PredictionRecord:
    row = base.loads(item["data"]["S"])
    row["class_id"] = class_id
    row["user_id"] = int(item["sk"]["S"])
    return base.prediction_record(row, day=day)
