"""``/predictions`` and a student's history: what the LEB2 backend reads
(docs/contracts.md §3.5)."""

from __future__ import annotations

from datetime import date

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from lof.api.cache import GZIP_MIN_BYTES, PRIVATE_HEADERS, Body, compress, wants_gzip
from lof.api.deps import ApiKeyDep, BodyCacheDep, StoreDep, guard_store
from lof.api.params import ClassIdPath, ClassIdQuery, PredictedDtQuery, UserIdPath
from lof.api.problems import ApiProblem, Problem
from lof.api.schemas import HistoryPoint, Prediction, StudentHistory
from lof.core.calendar import format_day
from lof.stores.base import PredictionRecord, PredictionStore, model_versions

PREDICTED_DT_HEADER = "x-lof-predicted-dt"
MODEL_VERSION_HEADER = "x-lof-model-version"

DATA_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": Problem, "description": "missing or invalid x-api-key"},
    422: {"model": Problem, "description": "malformed parameter"},
    500: {"model": Problem, "description": "unexpected failure (logged; no internals)"},
    503: {"model": Problem, "description": "predictions store unavailable"},
}
_NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "no predictions"}
}

router = APIRouter(tags=["predictions"])


def class_day_body(store: PredictionStore, *, class_id: int, day: date) -> Body:
    """The body of one class-day, or the 404 naming the latest day (blocking: threadpool).

    Normally one key lookup: the body was built (gzip, ETag) when the day was written. A day
    written before bodies existed, or whose body is missing, is rebuilt from the records; the
    store returns them in the ``Prediction`` shape already, so they are serialized directly.
    """
    read_body = getattr(store, "read_class_body", None)  # stores written before bodies existed
    stored = (
        None if read_body is None else guard_store(lambda: read_body(day=day, class_id=class_id))
    )
    if stored is not None:
        return Body(
            None,
            packed=stored.gzip,
            etag=stored.etag,
            modified=stored.written_at,
            model_version=stored.model_version,
        )
    records = guard_store(lambda: store.read_class_day(day=day, class_id=class_id))
    if not records:
        raise _no_predictions(store, class_id=class_id, day=day)
    return Body(orjson.dumps(records), model_version=model_versions(records))


def _no_predictions(store: PredictionStore, *, class_id: int, day: date) -> ApiProblem:
    days = guard_store(lambda: store.list_days(class_id=class_id))
    if days:
        latest = f"the latest day with predictions for class {class_id} is {format_day(days[-1])}"
    else:
        latest = f"class {class_id} has no predictions on any day"
    return ApiProblem(404, f"no predictions for class {class_id} on {format_day(day)}; {latest}")


async def _body_response(request: Request, body: Body, *, day: date) -> Response:
    """304 when the client's copy is current; gzip when accepted (made once per body)."""
    headers = {
        **PRIVATE_HEADERS,
        "vary": "accept-encoding, x-api-key",
        PREDICTED_DT_HEADER: format_day(day),
        MODEL_VERSION_HEADER: body.model_version,
        **body.headers(),
    }
    if body.not_modified(request.headers):
        return Response(status_code=304, headers=headers)
    if wants_gzip(request.headers.get("accept-encoding", "")) and (
        body.gzip is not None or len(body.plain) >= GZIP_MIN_BYTES
    ):
        if body.gzip is None:
            body.gzip = await run_in_threadpool(compress, body.plain)
        headers["content-encoding"] = "gzip"
        return Response(body.gzip, media_type="application/json", headers=headers)
    return Response(body.plain, media_type="application/json", headers=headers)


@router.get(
    "/predictions",
    response_model=list[Prediction],
    responses={**DATA_ERRORS, **_NOT_FOUND},
)
async def predictions(
    request: Request,
    _auth: ApiKeyDep,
    store: StoreDep,
    cache: BodyCacheDep,
    predicted_dt: PredictedDtQuery,
    class_id: ClassIdQuery,
) -> Response:
    """The class's predictions for that day, one per student of its cohort."""
    body = cache.get((class_id, predicted_dt))
    if body is None:
        body = await run_in_threadpool(class_day_body, store, class_id=class_id, day=predicted_dt)
        cache.put((class_id, predicted_dt), body)
    return await _body_response(request, body, day=predicted_dt)


def _record_point(record: PredictionRecord) -> dict[str, object]:
    return {name: record[name] for name in HistoryPoint.model_fields}


@router.get(
    "/classes/{class_id}/students/{user_id}/history",
    response_model=StudentHistory,
    responses={**DATA_ERRORS, **_NOT_FOUND},
)
def student_history(
    response: Response,
    _auth: ApiKeyDep,
    store: StoreDep,
    class_id: ClassIdPath,
    user_id: UserIdPath,
) -> dict[str, object]:
    """The student's daily risk and level probabilities over the class so far."""
    response.headers.update(PRIVATE_HEADERS)
    records = guard_store(lambda: store.read_student_history(class_id=class_id, user_id=user_id))
    if not records:
        raise ApiProblem(404, f"no predictions for student {user_id} in class {class_id}")
    return {
        "class_id": class_id,
        "user_id": user_id,
        "days": [_record_point(r) for r in records],
    }


__all__ = ["DATA_ERRORS", "MODEL_VERSION_HEADER", "PREDICTED_DT_HEADER", "class_day_body", "router"]
