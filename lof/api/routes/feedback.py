"""Teachers' feedback through the API (API key): ``POST /feedback`` saves a verdict on one
student's prediction, ``GET /feedback`` exports a class's verdicts. The class page's form
(``lof.api.routes.pages``) saves through ``save_feedback`` too."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from lof import feedback as fb
from lof.api.cache import PRIVATE_HEADERS
from lof.api.deps import ApiKeyDep, StoreDep, feedback_store, guard_store
from lof.api.json_bodies import JSON_ERRORS, json_body, json_object
from lof.api.params import parse_date, parse_id, parse_predicted_dt
from lof.api.problems import ApiProblem
from lof.stores.base import PredictionStore
from lof.stores.feedback import FeedbackStore

router = APIRouter()


def save_feedback(
    *,
    store: PredictionStore,
    fstore: FeedbackStore,
    entry: fb.FeedbackIn,
    source: str,
) -> fb.FeedbackRecord:
    day = parse_predicted_dt(entry.predicted_dt)
    records = guard_store(lambda: store.read_class_day(day=day, class_id=entry.class_id))
    prediction = next((r for r in records if int(r["user_id"]) == entry.user_id), None)
    if prediction is None:
        raise fb.FeedbackInvalid(
            f"student {entry.user_id} has no prediction in class {entry.class_id} on "
            f"{entry.predicted_dt}; feedback is given on a prediction of the class page"
        )
    record = fb.make_record(entry, prediction=prediction, source=source)  # type: ignore[arg-type]
    return guard_store(lambda: fstore.put(record))


@router.post(
    "/feedback",
    response_model=fb.FeedbackRecord,
    responses=JSON_ERRORS,
    openapi_extra=json_body(fb.FeedbackIn),
    tags=["feedback"],
)
async def post_feedback(request: Request, _auth: ApiKeyDep, store: StoreDep) -> JSONResponse:
    """Store a teacher's verdict on one student's warning (the same key again replaces it)."""
    data = await json_object(request)
    try:
        entry = fb.parse_feedback(data)
        fstore = await run_in_threadpool(feedback_store, request)
        saved = await run_in_threadpool(
            save_feedback, store=store, fstore=fstore, entry=entry, source="api"
        )
    except fb.FeedbackInvalid as exc:
        raise ApiProblem(422, str(exc)) from None
    return JSONResponse(saved.model_dump(), headers=PRIVATE_HEADERS)


@router.get(
    "/feedback",
    response_model=list[fb.FeedbackRecord],
    responses=JSON_ERRORS,
    tags=["feedback"],
)
async def export_feedback(
    request: Request,
    _auth: ApiKeyDep,
    class_id: Annotated[str, Query(description="LEB2 class id", examples=["12"])],
    date: Annotated[str | None, Query(description="only this day, YYYYMMDD")] = None,
) -> JSONResponse:
    """Every verdict given on the class's predictions (optionally one day)."""
    cid = parse_id(class_id, name="class_id")
    day = parse_date(date) if date else None
    fstore = await run_in_threadpool(feedback_store, request)
    records = await run_in_threadpool(
        lambda: guard_store(lambda: fstore.read_class(class_id=cid, day=day))
    )
    return JSONResponse([r.model_dump() for r in records], headers=PRIVATE_HEADERS)


__all__ = ["router", "save_feedback"]
