"""The routes of teachers' actions (``lof.interventions``), mounted with the class page.

* ``POST /classes/{class_id}/interventions`` — the page's plain HTML form (token in a hidden
  field), answered with a redirect back to the page; the action is the link's teacher's.
* ``POST /interventions``, ``GET /interventions?class_id=N`` — JSON for the LMS (API key).
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from lof import interventions as iv
from lof.api import json_bodies
from lof.api.cache import PRIVATE_HEADERS
from lof.api.deps import ApiKeyDep, LazyStore, SettingsDep, StoreDep, guard_store
from lof.api.params import parse_id
from lof.api.problems import ApiProblem
from lof.api.routes import pages
from lof.core.calendar import today_local
from lof.core.config import Settings
from lof.core.errors import StoreError
from lof.stores.base import PredictionStore
from lof.stores.interventions import InterventionStore, open_intervention_store

log = logging.getLogger("lof.pages")

router = APIRouter()


def intervention_store(request: Request) -> InterventionStore:
    holder: LazyStore[InterventionStore] = request.app.state.intervention_holder
    return holder.get()


def _today(settings: Settings) -> date:
    return today_local(settings.tz)


def save_intervention(
    *, store: PredictionStore, istore: InterventionStore, entry: iv.InterventionIn, source: str
) -> iv.InterventionRecord:
    """Store ``entry`` once the student is known to the class (a prediction on some day)."""
    history = guard_store(
        lambda: store.read_student_history(class_id=entry.class_id, user_id=entry.user_id)
    )
    if not history:
        raise iv.InterventionInvalid(
            f"student {entry.user_id} has no prediction in class {entry.class_id}; actions are "
            "recorded for students of the class page"
        )
    record = iv.make_record(entry, source=source)  # type: ignore[arg-type]
    return guard_store(lambda: istore.put(record))


_FORM_BODY = pages.form_body(
    {
        "user_id": {"type": "string", "example": "4501"},
        "action_dt": {"type": "string", "example": "20230327"},
        "action": {"type": "string", "enum": list(iv.ACTIONS)},
        "note": {"type": "string", "maxLength": iv.NOTE_MAX_CHARS},
    }
)
_HTML = {"content": {"text/html": {"schema": {"type": "string"}}}}
_NOT_RECORDED = "Action not recorded"


@router.post(
    "/classes/{class_id}/interventions",
    response_class=HTMLResponse,
    status_code=303,
    responses={
        303: {"description": "recorded; back to the class page"},
        403: {
            **_HTML,
            "description": "missing, expired, tampered, other-class or teacherless link",
        },
        413: {**_HTML, "description": "form too large"},
        422: {**_HTML, "description": "invalid action, not recorded"},
        503: {**_HTML, "description": "link secret not set or store unavailable"},
    },
    openapi_extra=_FORM_BODY,
    tags=["class page"],
)
async def class_intervention_form(
    request: Request,
    settings: SettingsDep,
    check_link: pages.LinkCheckDep,
    class_id: pages.ClassIdPath,
) -> Response:
    """The page's action form (works without JavaScript): record, then back to the page.

    The action is the link's teacher's: a link that names no teacher cannot record one.
    """
    form = await pages.read_teacher_form(
        request,
        settings,
        check_link,
        class_id,
        title=_NOT_RECORDED,
        cannot="actions cannot be recorded",
    )
    if isinstance(form, Response):
        return form
    cid, token = form.class_id, form.token
    root = pages.base_path(request)
    back = pages._report_url(cid, root=root, token=token)
    try:
        entry = iv.parse_intervention(
            form.fields, teacher_id=form.teacher_id, class_id=cid, today=_today(settings)
        )
        store = await pages._prediction_store(request)
        istore = await run_in_threadpool(intervention_store, request)
        saved = await run_in_threadpool(
            save_intervention, store=store, istore=istore, entry=entry, source="page"
        )
    except iv.InterventionInvalid as exc:
        return pages.message_page(
            settings,
            status_code=422,
            title=_NOT_RECORDED,
            message=str(exc),
            advice="go back to the class page, correct it and send it again.",
            back_url=back,
        )
    except StoreError as exc:
        log.warning("action form of class %d: store unavailable: %s", cid, exc)
        return pages._store_down(settings)
    url = pages._report_url(cid, root=root, token=token, recorded=str(saved.user_id))
    return RedirectResponse(url, status_code=303, headers=pages.security_headers(settings))


@router.post(
    "/interventions",
    response_model=iv.InterventionRecord,
    responses=json_bodies.JSON_ERRORS,
    openapi_extra=json_bodies.json_body(iv.InterventionIn),
    tags=["interventions"],
)
async def post_intervention(
    request: Request, _auth: ApiKeyDep, store: StoreDep, settings: SettingsDep
) -> JSONResponse:
    """Record a teacher's action for a student (the same key again changes nothing; a new
    note replaces the former one)."""

    data = await json_bodies.json_object(request)
    try:
        entry = iv.parse_intervention(data, today=_today(settings))
        istore = await run_in_threadpool(intervention_store, request)
        saved = await run_in_threadpool(
            save_intervention, store=store, istore=istore, entry=entry, source="api"
        )
    except iv.InterventionInvalid as exc:
        raise ApiProblem(422, str(exc)) from None
    return JSONResponse(saved.model_dump(), headers=PRIVATE_HEADERS)


@router.get(
    "/interventions",
    response_model=list[iv.InterventionRecord],
    responses=json_bodies.JSON_ERRORS,
    tags=["interventions"],
)
async def export_interventions(
    request: Request,
    _auth: ApiKeyDep,
    class_id: Annotated[str, Query(description="LEB2 class id", examples=["12"])],
) -> JSONResponse:
    """Every action recorded for the class's students, by day."""
    cid = parse_id(class_id, name="class_id")
    istore = await run_in_threadpool(intervention_store, request)
    records = await run_in_threadpool(lambda: guard_store(lambda: istore.read_class(class_id=cid)))
    return JSONResponse([r.model_dump() for r in records], headers=PRIVATE_HEADERS)


def include_interventions(app: FastAPI, settings: Settings) -> None:
    """Mount the action routes on the API app (called with the class page's)."""
    app.state.intervention_holder = LazyStore(settings.store_url or "", open_intervention_store)
    app.include_router(router)


__all__ = ["include_interventions", "intervention_store", "router", "save_intervention"]
