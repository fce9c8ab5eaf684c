"""Self-hosted promotion webhooks: S3 uploads and MLflow alias changes become Prefect events.

``POST /webhooks/s3`` takes an S3 event notification (the S3 ``Records`` JSON, the same inside an
SNS envelope, or EventBridge's ``Object Created`` event), authenticated with LOF_WEBHOOK_SECRET.
``POST /webhooks/mlflow`` takes MLflow's registry webhook ``model_version_alias.created``, signed
with LOF_MLFLOW_WEBHOOK_SECRET, so setting the ``production`` alias in the MLflow UI is a one-click
promotion through the same gate. Both emit ``lof.model.uploaded``; the promote deployment's
trigger runs the promote flow with the event's bucket, key, version and event id.

Every refusal is a 4xx with a reason and emits nothing; a registry or Prefect outage is a 503 so
the sender retries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr
from starlette.concurrency import run_in_threadpool

from lof import promotion, registry
from lof.api.problems import ApiProblem, problem_response
from lof.config import Settings, get_settings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

SECRET_HEADER = "x-lof-webhook-secret"
MLFLOW_SIGNATURE_HEADER = "x-mlflow-signature"
MLFLOW_TIMESTAMP_HEADER = "x-mlflow-timestamp"
MLFLOW_DELIVERY_HEADER = "x-mlflow-delivery-id"
MLFLOW_MAX_AGE_SECONDS = 300
MAX_BODY_BYTES = 256 * 1024
JSON_TYPES = ("application/json", "text/plain")  # SNS posts its JSON as text/plain


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


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise ApiProblem(400, "empty body; expected an S3 event notification as JSON")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiProblem(
            400, f"body is not valid JSON ({exc.__class__.__name__}: {exc}); nothing was done"
        ) from None


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
        raise ApiProblem(400, f"{where} is missing or not a string")
    return str(value)


def _records(body: dict[str, Any]) -> tuple[list[S3Upload], list[str]]:
    uploads: list[S3Upload] = []
    skipped: list[str] = []
    records = body["Records"]
    if not isinstance(records, list):
        raise ApiProblem(400, "Records is not a list")
    for index, record in enumerate(records):
        where = f"Records[{index}]"
        if not isinstance(record, dict) or not isinstance(record.get("s3"), dict):
            raise ApiProblem(400, f"{where} has no s3 object; not an S3 event record")
        name = str(record.get("eventName", ""))
        s3 = record["s3"]
        bucket = _text((s3.get("bucket") or {}).get("name"), f"{where}.s3.bucket.name")
        obj = s3.get("object") or {}
        key = promotion.decode_key(_text(obj.get("key"), f"{where}.s3.object.key"))
        if not name.startswith("ObjectCreated"):
            skipped.append(f"{name or 'unnamed event'} for s3://{bucket}/{key}")
            continue
        event_id = s3_event_id(
            bucket=bucket,
            key=key,
            etag=str(obj.get("eTag", "")),
            sequencer=str(obj.get("sequencer", "")),
            time_=str(record.get("eventTime", "")),
        )
        uploads.append(S3Upload(bucket=bucket, key=key, event_id=event_id))
    return uploads, skipped


def _eventbridge(body: dict[str, Any]) -> tuple[list[S3Upload], list[str]]:
    detail = body.get("detail")
    if not isinstance(detail, dict):
        raise ApiProblem(400, "EventBridge event has no detail object")
    bucket = _text((detail.get("bucket") or {}).get("name"), "detail.bucket.name")
    obj = detail.get("object") or {}
    key = promotion.decode_key(_text(obj.get("key"), "detail.object.key"))
    if body.get("detail-type") != "Object Created":
        return [], [f"{body.get('detail-type')} for s3://{bucket}/{key}"]
    event_id = s3_event_id(
        bucket=bucket,
        key=key,
        etag=str(obj.get("etag", "")),
        sequencer=str(obj.get("sequencer", "")),
        time_=str(body.get("time", "")),
    )
    return [S3Upload(bucket=bucket, key=key, event_id=event_id)], []


def parse_s3_notification(body: Any, *, depth: int = 0) -> tuple[list[S3Upload], list[str]]:
    """The created objects of a notification, and why anything else in it was skipped."""
    if not isinstance(body, dict):
        raise ApiProblem(400, "body is JSON but not an object; expected an S3 notification")
    if body.get("Event") == "s3:TestEvent":
        return [], [f"s3:TestEvent for bucket {body.get('Bucket', '?')}"]
    if "Records" in body:
        return _records(body)
    if body.get("source") == "aws.s3" and "detail-type" in body:
        return _eventbridge(body)
    sns_type = body.get("Type")
    if sns_type == "Notification" and "Message" in body and depth == 0:
        message = body["Message"]
        if not isinstance(message, str):
            raise ApiProblem(400, "SNS Message is not a string")
        try:
            return parse_s3_notification(parse_json(message.encode()), depth=1)
        except ApiProblem as exc:
            raise ApiProblem(exc.status_code, f"SNS Message: {exc.detail}") from None
    if sns_type in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        return [], [
            f"SNS {sns_type} for {body.get('TopicArn', '?')}: confirm it with "
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


def authorized(headers: Any, secret: SecretStr | None) -> bool:
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


def mlflow_signature_valid(
    *, secret: SecretStr | None, headers: Any, body: bytes, now: float | None = None
) -> bool:
    """MLflow's scheme: v1,base64(HMAC-SHA256(secret, f"{delivery_id}.{timestamp}.{body}"))."""
    if secret is None or not secret.get_secret_value():
        return False
    signature = headers.get(MLFLOW_SIGNATURE_HEADER) or ""
    timestamp = headers.get(MLFLOW_TIMESTAMP_HEADER) or ""
    delivery = headers.get(MLFLOW_DELIVERY_HEADER) or ""
    if not signature.startswith("v1,") or not timestamp.isdigit() or not delivery:
        return False
    if abs((now if now is not None else time.time()) - int(timestamp)) > MLFLOW_MAX_AGE_SECONDS:
        return False
    try:
        content = f"{delivery}.{timestamp}.{body.decode()}".encode()
    except UnicodeDecodeError:
        return False
    digest = hmac.new(secret.get_secret_value().encode(), content, hashlib.sha256).digest()
    return _same(signature[3:], base64.b64encode(digest).decode())


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
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Which uploads start a promotion (with their version when already registered).

    Raises a 404 for a model-artifact key MLflow does not know, before anything is emitted.
    """
    accepted: list[dict[str, Any]] = []
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
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    return problem_response(exc.status_code, exc.detail, headers=headers)


async def _json_body(request: Request) -> bytes:
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type not in JSON_TYPES and not content_type.endswith("+json"):
        raise ApiProblem(
            415,
            f"content type {content_type or '(none)'!r} is not accepted; "
            "send the notification as application/json",
        )
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ApiProblem(413, f"body larger than {MAX_BODY_BYTES} bytes")
    return body


# --- routes -------------------------------------------------------------------------------------


@router.post("/s3", status_code=202, summary="S3 upload notification -> promote event")
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
        accepted, ignored = await run_in_threadpool(
            plan_uploads, settings=settings, uploads=uploads
        )
        for reason in skipped:
            log.info("webhook ignored %s", reason)
        ignored = [{"object": "", "reason": reason} for reason in skipped] + ignored
        for item in ignored:
            if item["object"]:
                log.info("webhook ignored %s: %s", item["object"], item["reason"])
        for item in accepted:
            item["prefect_event_id"] = await run_in_threadpool(
                emit_promotion_event,
                settings=settings,
                version=item["version"],
                event_id=item["event_id"],
                reason="s3-upload",
                bucket=item["bucket"],
                key=item["key"],
            )
    except ApiProblem as exc:
        return _rejected(exc, request)
    status = "accepted" if accepted else "ignored"
    return JSONResponse(
        {"status": status, "accepted": accepted, "ignored": ignored},
        status_code=202 if accepted else 200,
    )


@router.post("/mlflow", status_code=202, summary="MLflow alias webhook -> promote event")
async def mlflow_webhook(request: Request) -> JSONResponse:
    """``model_version_alias.created`` for alias ``production``: promote through the gate."""
    try:
        settings = _settings(request)
        body = await _json_body(request)
        if not mlflow_signature_valid(
            secret=settings.mlflow_webhook_secret, headers=request.headers, body=body
        ):
            raise ApiProblem(
                401,
                "missing, stale or wrong X-MLflow-Signature: configure the MLflow webhook "
                "with the secret of LOF_MLFLOW_WEBHOOK_SECRET",
            )
        data = parse_json(body)
        if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
            raise ApiProblem(
                400, "unknown event shape: expected MLflow's {entity, action, data} payload"
            )
        entity, action, payload = data.get("entity"), data.get("action"), data["data"]
        if (entity, action) != ("model_version_alias", "created"):
            return JSONResponse(
                {"status": "ignored", "reason": f"{entity}.{action} does not promote"}, 200
            )
        name = payload.get("name")
        alias = payload.get("alias")
        version = str(payload.get("version") or "")
        expected = registry.production_alias(settings)
        if name != settings.model_name or alias != expected:
            return JSONResponse(
                {
                    "status": "ignored",
                    "reason": f"alias {alias!r} of {name!r} is not {expected!r} "
                    f"of {settings.model_name!r}",
                },
                200,
            )
        if not version.isdigit():
            raise ApiProblem(400, "data.version is missing or not a version number")
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
        delivery = request.headers.get(MLFLOW_DELIVERY_HEADER, "")
        event_id = f"mlflow:{delivery}"
        prefect_id = await run_in_threadpool(
            lambda: emit_promotion_event(
                settings=settings, version=version, event_id=event_id, reason="mlflow-alias"
            )
        )
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
