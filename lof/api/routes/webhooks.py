"""Self-hosted promotion webhooks: S3 uploads and MLflow alias changes become Prefect events.

``POST /webhooks/s3`` takes an S3 event notification (the S3 ``Records`` JSON, the same inside an
SNS envelope, or EventBridge's ``Object Created`` event), authenticated with LOF_WEBHOOK_SECRET.
``POST /webhooks/mlflow`` takes MLflow's registry webhook ``model_version_alias.created``, signed
with LOF_MLFLOW_WEBHOOK_SECRET, so setting the ``production`` alias in the MLflow UI is a one-click
promotion through the same gate. Both emit ``lof.model.uploaded``; the promote deployment's
trigger runs the promote flow with the event's bucket, key, version and event id.

Every refusal is a 4xx with a reason and emits nothing; a registry or Prefect outage is a 503 so
the sender retries. Bodies are read only after the credential in the headers is checked (for
MLflow: the signature headers' form and age; the HMAC itself needs the body), and at most
``MAX_BODY_BYTES`` of them. A body is JSON of bounded depth (orjson stops at 1,024 levels)
parsed into the models below, so any other shape is a 400 naming the field. An event id
already handled (``lof.stores.deliveries``, LOF_WEBHOOK_REPLAY_SECONDS) is a 200 that emits
nothing: S3 delivers at least once, and a signed request must not start a promotion twice.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal, NotRequired, TypedDict, TypeVar

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
)
from starlette.concurrency import run_in_threadpool

from lof.api.limits import read_body
from lof.api.problems import ApiProblem, Problem, problem_response
from lof.core.config import Settings, get_settings
from lof.core.errors import StoreError
from lof.registry import client as registry
from lof.registry import promotion
from lof.stores.deliveries import DeliveryStore, open_delivery_store

log = logging.getLogger(__name__)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

SECRET_HEADER = "x-lof-webhook-secret"
MLFLOW_SIGNATURE_HEADER = "x-mlflow-signature"
MLFLOW_TIMESTAMP_HEADER = "x-mlflow-timestamp"
MLFLOW_DELIVERY_HEADER = "x-mlflow-delivery-id"
MLFLOW_MAX_AGE_SECONDS = 300
MAX_BODY_BYTES = 256 * 1024
MAX_RECORDS = 100
JSON_TYPES = ("application/json", "text/plain")  # SNS posts its JSON as text/plain
# MLflow's headers: "v1," + base64 of a SHA-256, unix seconds, the delivery's uuid
_MLFLOW_SIGNATURE = re.compile(r"v1,[A-Za-z0-9+/]{43}=")
_MLFLOW_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_MLFLOW_DELIVERY = re.compile(r"[A-Za-z0-9._:-]{1,128}")
M = TypeVar("M", bound="_Shape")


# --- the shapes a notification may take -------------------------------------------------------

Name = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Key = Annotated[str, StringConstraints(min_length=1, max_length=3 * 1024)]  # URL-encoded
Short = Annotated[str, StringConstraints(max_length=128)]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    what: ClassVar[str] = "a part of the body"  # in refusals: "expected <what>"


class S3Bucket(_Shape):
    name: Name


class S3Object(_Shape):
    key: Key
    eTag: Short = ""  # S3's own field names
    etag: Short = ""  # EventBridge spells it so
    sequencer: Short = ""


class S3Entity(_Shape):
    bucket: S3Bucket
    object: S3Object


class S3Record(_Shape):
    eventName: Short = ""
    eventTime: Short = ""
    s3: S3Entity


class S3Notification(_Shape):
    """S3's own event notification (direct, or the Message of an SNS Notification)."""

    what = "an S3 event notification"

    Records: list[S3Record] = Field(max_length=MAX_RECORDS)


class EventBridgeDetail(_Shape):
    bucket: S3Bucket
    object: S3Object


class EventBridgeEvent(_Shape):
    """EventBridge's event for S3 (``source`` aws.s3)."""

    what = "an EventBridge event from aws.s3"

    source: Literal["aws.s3"]
    detail_type: Short = Field(alias="detail-type")
    time: Short = ""
    detail: EventBridgeDetail


class SnsEnvelope(_Shape):
    """SNS's HTTP(S) delivery; a Notification's Message is the S3 notification as text."""

    what = "an SNS message"

    Type: Short
    Message: str = Field(default="", max_length=MAX_BODY_BYTES)
    TopicArn: Short = "?"


class MlflowEvent(_Shape):
    """MLflow's webhook payload: ``{entity, action, timestamp, data}``."""

    what = "MLflow's webhook payload {entity, action, data}"

    entity: Short
    action: Short
    data: dict[str, object]


class MlflowAlias(_Shape):
    """The ``data`` of ``model_version_alias.created``."""

    what = "MLflow's model_version_alias.created data {name, alias, version}"

    model_config = ConfigDict(extra="ignore", frozen=True, coerce_numbers_to_str=True)

    name: Name
    alias: Name
    version: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,10}$")]


class PlannedUpload(TypedDict):
    """An upload that starts a promotion, as the answer lists it."""

    bucket: str
    key: str
    version: str | None
    event_id: str
    prefect_event_id: NotRequired[str]


@dataclass(frozen=True)
class S3Upload:
    """One created object of a notification, key decoded."""

    bucket: str
    key: str
    event_id: str


# --- parsing (plain functions) ------------------------------------------------------------------


def s3_event_id(*, bucket: str, key: str, etag: str, sequencer: str, time_: str) -> str:
    """Stable across redeliveries of one notification, distinct for a new upload."""
    digest = hashlib.sha256("\n".join((bucket, key, etag, sequencer, time_)).encode()).hexdigest()
    return f"s3:{digest[:32]}"


def parse_json(body: bytes) -> object:
    """JSON of at most 1,024 levels (orjson's own bound: no recursion past it)."""
    if not body.strip():
        raise ApiProblem(400, "empty body; expected an S3 event notification as JSON")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiProblem(400, f"body is not valid JSON ({exc}); nothing was done") from None


def shaped(model: type[M], data: object, *, where: str = "") -> M:
    """``data`` as ``model``, or the 400 naming the first field that is not as expected."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        field = where
        for part in error["loc"]:
            field += f"[{part}]" if isinstance(part, int) else f"{'.' if field else ''}{part}"
        raise ApiProblem(
            400, f"{field or 'body'}: {error['msg']}; expected {model.what}; nothing was done"
        ) from None


def _upload(bucket: str, obj: S3Object, *, time_: str) -> S3Upload:
    key = promotion.decode_key(obj.key)
    event_id = s3_event_id(
        bucket=bucket,
        key=key,
        etag=obj.eTag or obj.etag,
        sequencer=obj.sequencer,
        time_=time_,
    )
    return S3Upload(bucket=bucket, key=key, event_id=event_id)


def _records(body: Mapping[str, object]) -> tuple[list[S3Upload], list[str]]:
    uploads: list[S3Upload] = []
    skipped: list[str] = []
    for record in shaped(S3Notification, body).Records:
        upload = _upload(record.s3.bucket.name, record.s3.object, time_=record.eventTime)
        if record.eventName.startswith("ObjectCreated"):
            uploads.append(upload)
        else:
            where = f"s3://{upload.bucket}/{upload.key}"
            skipped.append(f"{record.eventName or 'unnamed event'} for {where}")
    return uploads, skipped


def _eventbridge(body: Mapping[str, object]) -> tuple[list[S3Upload], list[str]]:
    event = shaped(EventBridgeEvent, body)
    upload = _upload(event.detail.bucket.name, event.detail.object, time_=event.time)
    if event.detail_type != "Object Created":
        return [], [f"{event.detail_type} for s3://{upload.bucket}/{upload.key}"]
    return [upload], []


def parse_s3_notification(body: object, *, depth: int = 0) -> tuple[list[S3Upload], list[str]]:
    """The created objects of a notification, and why anything else in it was skipped."""
    if not isinstance(body, dict):
        raise ApiProblem(400, "body is JSON but not an object; expected an S3 notification")
    if body.get("Event") == "s3:TestEvent":
        return [], [f"s3:TestEvent for bucket {str(body.get('Bucket', '?'))[:255]}"]
    if "Records" in body:
        return _records(body)
    if body.get("source") == "aws.s3" and "detail-type" in body:
        return _eventbridge(body)
    if "Type" in body:
        envelope = shaped(SnsEnvelope, body)
        if envelope.Type == "Notification" and depth == 0:
            try:
                return parse_s3_notification(parse_json(envelope.Message.encode()), depth=1)
            except ApiProblem as exc:
                raise ApiProblem(exc.status_code, f"SNS Message: {exc.detail}") from None
        if envelope.Type in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
            return [], [
                f"SNS {envelope.Type} for {envelope.TopicArn}: confirm it with "
                "`aws sns confirm-subscription` and the Token it carries"
            ]
    raise ApiProblem(
        400,
        "unknown event shape: expected S3 event Records, an SNS Notification wrapping them, "
        "or an EventBridge 'Object Created' event from aws.s3",
    )


# --- authentication -----------------------------------------------------------------------------


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def authorized(headers: Mapping[str, str], secret: SecretStr | None) -> bool:
    """The shared secret as x-lof-webhook-secret, a Bearer token, or a Basic password (SNS)."""
    if secret is None or not secret.get_secret_value():
        return False
    expected = secret.get_secret_value()
    given = headers.get(SECRET_HEADER)
    if given is not None:
        return _same(given, expected)
    scheme, _, value = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer":
        return _same(value.strip(), expected)
    if scheme.lower() == "basic":
        try:
            password = base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return False
        return _same(password, expected)
    return False


@dataclass(frozen=True)
class MlflowSigned:
    """The signature headers of an MLflow delivery, well formed and recent."""

    signature: str
    timestamp: str
    delivery: str


def mlflow_signed(
    headers: Mapping[str, str], *, secret: SecretStr | None, now: float | None = None
) -> MlflowSigned | None:
    """The signature headers if a secret is set and they have MLflow's form and a timestamp
    within ``MLFLOW_MAX_AGE_SECONDS`` of now: checked before the body is read."""
    if secret is None or not secret.get_secret_value():
        return None
    signed = MlflowSigned(
        signature=headers.get(MLFLOW_SIGNATURE_HEADER) or "",
        timestamp=headers.get(MLFLOW_TIMESTAMP_HEADER) or "",
        delivery=headers.get(MLFLOW_DELIVERY_HEADER) or "",
    )
    if not (
        _MLFLOW_SIGNATURE.fullmatch(signed.signature)
        and _MLFLOW_TIMESTAMP.fullmatch(signed.timestamp)
        and _MLFLOW_DELIVERY.fullmatch(signed.delivery)
    ):
        return None
    age = (now if now is not None else time.time()) - int(signed.timestamp)
    return signed if abs(age) <= MLFLOW_MAX_AGE_SECONDS else None


def mlflow_signature_valid(*, secret: SecretStr, signed: MlflowSigned, body: bytes) -> bool:
    """MLflow's scheme: v1,base64(HMAC-SHA256(secret, f"{delivery_id}.{timestamp}.{body}"))."""
    content = f"{signed.delivery}.{signed.timestamp}.".encode() + body
    digest = hmac.new(secret.get_secret_value().encode(), content, hashlib.sha256).digest()
    return _same(signed.signature[3:], base64.b64encode(digest).decode())


# --- emitting -----------------------------------------------------------------------------------


def emit_promotion_event(
    *,
    settings: Settings,
    version: str | None,
    event_id: str,
    reason: str,
    bucket: str | None = None,
    key: str | None = None,
) -> str:
    """Emit ``lof.model.uploaded`` and wait for the server to take it; returns its event id.

    POST /api/events answers only once the event is accepted, unlike the fire-and-forget
    ``emit_event``: a 202 to the sender therefore means a promotion will be considered, and any
    failure is a 503 so S3/SNS/EventBridge deliver again.
    """
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.events import Event, Resource
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        # Without it Prefect would emit to a throwaway in-process server: nothing would run.
        raise ApiProblem(
            503, "PREFECT_API_URL is not set for the API; nothing was emitted; retry later"
        )
    labels = {
        "prefect.resource.id": f"lof.model.{settings.model_name}",
        "prefect.resource.name": settings.model_name,
        "lof.model.version": version or "",
    }
    if bucket is not None:
        labels["lof.s3.bucket"] = bucket
        labels["lof.s3.key"] = key or ""
    event = Event(
        event=promotion.EVENT_NAME,
        resource=Resource(labels),
        payload={
            "model_name": settings.model_name,
            "version": version or "",
            "bucket": bucket or "",
            "key": key or "",
            "event_id": event_id,
            "reason": reason,
        },
    )
    try:
        with get_client(sync_client=True) as prefect:
            prefect.request("POST", "/events", json=[event.model_dump(mode="json")])
    except (httpx.HTTPError, OSError) as exc:
        log.warning("Prefect refused or missed a promotion event: %s", type(exc).__name__)
        raise ApiProblem(
            503, "Prefect did not take the promotion event (check PREFECT_API_URL); retry later"
        ) from None
    log.info(
        "emitted %s for %s v%s (%s)", promotion.EVENT_NAME, settings.model_name, version, event_id
    )
    return str(event.id)


# --- resolution ---------------------------------------------------------------------------------


def _registry_down(exc: Exception) -> ApiProblem:
    log.warning("model registry unavailable for a webhook: %s", type(exc).__name__)
    return ApiProblem(503, "the model registry is unavailable; retry later")


def plan_uploads(
    *, settings: Settings, uploads: list[S3Upload]
) -> tuple[list[PlannedUpload], list[dict[str, str]]]:
    """Which uploads start a promotion (with their version when already registered).

    Raises a 404 for a model-artifact key MLflow does not know, before anything is emitted.
    """
    accepted: list[PlannedUpload] = []
    ignored: list[dict[str, str]] = []
    for upload in uploads:
        where = f"s3://{upload.bucket}/{upload.key}"
        ref = promotion.parse_artifact_key(bucket=upload.bucket, key=upload.key)
        if ref is None:
            ignored.append({"object": where, "reason": "not an MLflow model artifact"})
            continue
        if ref.file_name not in promotion.MODEL_FILE_NAMES:
            ignored.append({"object": where, "reason": f"not the model file of {ref.owner}"})
            continue
        try:
            known = promotion.artifact_is_known(settings=settings, ref=ref)
            version = promotion.find_version(settings=settings, ref=ref) if known else None
        except Exception as exc:
            raise _registry_down(exc) from None
        if not known:
            raise ApiProblem(
                404,
                f"unknown object {where}: the model registry has no {ref.owner}; "
                "nothing was emitted",
            )
        accepted.append(
            {
                "bucket": upload.bucket,
                "key": upload.key,
                "version": version,
                "event_id": upload.event_id,
            }
        )
    return accepted, ignored


def _settings(request: Request) -> Settings:
    state_settings = getattr(request.app.state, "settings", None)
    return state_settings if isinstance(state_settings, Settings) else get_settings()


def _rejected(exc: ApiProblem, request: Request) -> JSONResponse:
    log.info("webhook %s refused (%d): %s", request.url.path, exc.status_code, exc.detail)
    headers = dict(exc.headers or {})
    if exc.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return problem_response(exc.status_code, exc.detail, headers=headers or None)


async def _json_body(request: Request) -> bytes:
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type not in JSON_TYPES and not content_type.endswith("+json"):
        raise ApiProblem(
            415,
            f"content type {content_type or '(none)'!r} is not accepted; "
            "send the notification as application/json",
        )
    return await read_body(request, MAX_BODY_BYTES)


# --- replay memory ------------------------------------------------------------------------------

_memory_lock = threading.Lock()


def _replay_memory(app: FastAPI, settings: Settings) -> DeliveryStore:
    """The app's memory of handled deliveries, opened on first use (blocking: threadpool)."""
    with _memory_lock:
        memory: DeliveryStore | None = getattr(app.state, "replay_memory", None)
        if memory is None:
            memory = open_delivery_store(settings.store_url or "")
            app.state.replay_memory = memory
        return memory


def close_replay_memory(app: FastAPI) -> None:
    memory: DeliveryStore | None = getattr(app.state, "replay_memory", None)
    if memory is not None:
        memory.close()
        app.state.replay_memory = None


async def _remembered(request: Request, settings: Settings, ids: list[str]) -> set[str]:
    """Which of ``ids`` were handled already; a 503 if the memory cannot be read."""

    def seen() -> set[str]:
        memory = _replay_memory(request.app, settings)
        return {delivery for delivery in ids if memory.seen(delivery)}

    try:
        return await run_in_threadpool(seen)
    except StoreError as exc:
        raise _memory_down(exc) from None


async def _remember(request: Request, settings: Settings, delivery: str) -> None:
    def write() -> None:
        memory = _replay_memory(request.app, settings)
        memory.remember(delivery, ttl_seconds=settings.webhook_replay_seconds)

    try:
        await run_in_threadpool(write)
    except StoreError as exc:  # emitted: the promote flow's own dedupe covers a redelivery
        log.warning("webhook delivery %s emitted but not remembered: %s", delivery, exc)


def _memory_down(exc: StoreError) -> ApiProblem:
    log.warning("webhook delivery memory unavailable: %s", exc)
    return ApiProblem(503, "the store of handled deliveries is unavailable; retry later")


# --- routes -------------------------------------------------------------------------------------

_ANSWERS: dict[int | str, dict[str, object]] = {
    200: {
        "description": "nothing to promote, or already handled: nothing emitted",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    202: {
        "description": "promote event emitted",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    **{
        status: {"model": Problem, "description": description}
        for status, description in (
            (400, "malformed body, with the field"),
            (401, "missing or wrong secret or signature"),
            (404, "a model file or version the registry does not know"),
            (413, "body too large"),
            (415, "not JSON"),
            (503, "registry, Prefect or the store unavailable: send again later"),
        )
    },
}
_JSON_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


@router.post(
    "/s3",
    status_code=202,
    summary="S3 upload notification -> promote event",
    responses=_ANSWERS,
    openapi_extra=_JSON_BODY,
)
async def s3_webhook(request: Request) -> JSONResponse:
    """Turn an S3 ``ObjectCreated`` notification for a model file into ``lof.model.uploaded``."""
    try:
        settings = _settings(request)
        if not authorized(request.headers, settings.webhook_secret):
            raise ApiProblem(
                401,
                "missing or wrong webhook secret: send LOF_WEBHOOK_SECRET as the "
                f"{SECRET_HEADER} header or a Bearer token",
            )
        uploads, skipped = parse_s3_notification(parse_json(await _json_body(request)))
        handled = await _remembered(request, settings, [u.event_id for u in uploads])
        ignored = [{"object": "", "reason": reason} for reason in skipped]
        fresh: dict[str, S3Upload] = {}
        for upload in uploads:
            if upload.event_id in handled:
                ignored.append(
                    {
                        "object": f"s3://{upload.bucket}/{upload.key}",
                        "reason": f"event {upload.event_id} already handled; nothing emitted",
                    }
                )
            else:
                fresh.setdefault(upload.event_id, upload)
        accepted, planned_out = await run_in_threadpool(
            plan_uploads, settings=settings, uploads=list(fresh.values())
        )
        ignored += planned_out
        for item in ignored:
            log.info("webhook ignored %s: %s", item["object"] or "an event", item["reason"])
        for planned in accepted:
            planned["prefect_event_id"] = await run_in_threadpool(
                emit_promotion_event,
                settings=settings,
                version=planned["version"],
                event_id=planned["event_id"],
                reason="s3-upload",
                bucket=planned["bucket"],
                key=planned["key"],
            )
            await _remember(request, settings, planned["event_id"])
    except ApiProblem as exc:
        return _rejected(exc, request)
    status = "accepted" if accepted else "ignored"
    return JSONResponse(
        {"status": status, "accepted": accepted, "ignored": ignored},
        status_code=202 if accepted else 200,
    )


@router.post(
    "/mlflow",
    status_code=202,
    summary="MLflow alias webhook -> promote event",
    responses=_ANSWERS,
    openapi_extra=_JSON_BODY,
)
async def mlflow_webhook(request: Request) -> JSONResponse:
    """``model_version_alias.created`` for alias ``production``: promote through the gate."""
    try:
        settings = _settings(request)
        secret = settings.mlflow_webhook_secret
        signed = mlflow_signed(request.headers, secret=secret)
        body = await _json_body(request) if signed is not None else b""
        if (
            secret is None
            or signed is None
            or not mlflow_signature_valid(secret=secret, signed=signed, body=body)
        ):
            raise ApiProblem(
                401,
                "missing, stale or wrong X-MLflow-Signature: configure the MLflow webhook "
                "with the secret of LOF_MLFLOW_WEBHOOK_SECRET",
            )
        event_id = f"mlflow:{signed.delivery}"
        if await _remembered(request, settings, [event_id]):
            reason = f"delivery {signed.delivery} already handled; nothing emitted"
            return JSONResponse({"status": "ignored", "reason": reason}, 200)
        event = shaped(MlflowEvent, parse_json(body))
        if (event.entity, event.action) != ("model_version_alias", "created"):
            return JSONResponse(
                {"status": "ignored", "reason": f"{event.entity}.{event.action} does not promote"},
                200,
            )
        alias = shaped(MlflowAlias, event.data, where="data")
        expected = registry.production_alias(settings)
        if alias.name != settings.model_name or alias.alias != expected:
            return JSONResponse(
                {
                    "status": "ignored",
                    "reason": f"alias {alias.alias!r} of {alias.name!r} is not {expected!r} "
                    f"of {settings.model_name!r}",
                },
                200,
            )
        version = alias.version
        try:
            done = await run_in_threadpool(
                lambda: _alias_already_live(settings=settings, version=version)
            )
        except ApiProblem:
            raise
        except Exception as exc:
            raise _registry_down(exc) from None
        if done:
            return JSONResponse({"status": "ignored", "reason": done}, 200)
        prefect_id = await run_in_threadpool(
            lambda: emit_promotion_event(
                settings=settings, version=version, event_id=event_id, reason="mlflow-alias"
            )
        )
        await _remember(request, settings, event_id)
    except ApiProblem as exc:
        return _rejected(exc, request)
    return JSONResponse(
        {
            "status": "accepted",
            "version": version,
            "event_id": event_id,
            "prefect_event_id": prefect_id,
        },
        202,
    )


def _alias_already_live(*, settings: Settings, version: str) -> str | None:
    """Why the alias event needs no promotion (the promote flow itself set the alias): the
    promote flow's own "already done" rule on the registry's state."""
    state = registry.read_state(settings=settings)
    if state.get(version) is None:
        raise ApiProblem(
            404, f"model {settings.model_name!r} has no version {version}; nothing was emitted"
        )
    request = promotion.PromotionRequest(version=version, reason="mlflow-alias")
    return promotion.already_done(request=request, state=state)
