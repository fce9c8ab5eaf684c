"""The class page teachers open from the LMS, and its feedback form.

* ``GET /classes/{class_id}/report?token=&date=`` — server-rendered HTML (no JavaScript),
  authenticated by a signed link (``lof.core.links``) because a browser in the LMS cannot send
  ``x-api-key``; framing allowed only for LOF_FRAME_ANCESTORS.
* ``POST /classes/{class_id}/feedback`` — the page's plain HTML form (token in a hidden field),
  answered with a redirect back to the page.
* ``POST /links`` (``lof.api.routes.links``), ``POST /feedback``, ``GET /feedback``
  (``lof.api.routes.feedback``) — JSON for the LMS backend (API key), mounted with the page.

The page reads the class's scored days with one ``read_class_day`` per day (in parallel, the
latest ``TREND_DAYS`` only) instead of one history read per student: a class has fewer scored
days than students for most of a semester, and the day being shown is one of those reads.
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import TYPE_CHECKING, Annotated
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from lof import feedback as fb
from lof.api import report
from lof.api.deps import LazyStore, SettingsDep, feedback_store, guard_store, store_dep
from lof.api.limits import read_body
from lof.api.params import parse_date, parse_id, parse_predicted_dt
from lof.api.problems import ApiProblem
from lof.api.routes import feedback as feedback_routes
from lof.api.routes import links as links_routes
from lof.api.routes.privacy import not_shown
from lof.core import links
from lof.core.calendar import today_local
from lof.core.config import Settings
from lof.core.errors import ConfigError, StoreError
from lof.core.inputs import id_from_text
from lof.interventions import ACTION_LABELS
from lof.model.outcome import DEFAULT_THRESHOLD
from lof.stores.base import PredictionRecord, PredictionStore
from lof.stores.feedback import FeedbackStore, open_feedback_store

if TYPE_CHECKING:
    from lof.stores.interventions import InterventionStore

log = logging.getLogger("lof.pages")

TREND_DAYS = 60
READ_WORKERS = 8
FORM_MAX_BYTES = 16_384
VERDICT_LABELS = {
    "useful": "Useful",
    "not_useful": "Not useful",
    "already_known": "Already known",
}
_ADVICE = {
    "missing": "open the class page from LEB2 (the class's lof link), not by typing the address.",
    "malformed": "open the class page again from LEB2; if you copied the link, copy all of it.",
    "tampered": "open the class page again from LEB2 to get a valid link.",
    "expired": "open the class page again from LEB2 to get a fresh link.",
    "other_class": "open the page of this class from its own LEB2 course page.",
}
_HTML = {"content": {"text/html": {"schema": {"type": "string"}}}}


router = APIRouter()


# --- plumbing ---------------------------------------------------------------------------------


def security_headers(settings: Settings) -> dict[str, str]:
    """Headers of every page: no scripts, framing only by LOF_FRAME_ANCESTORS, no caching."""
    ancestors = links.frame_ancestors_directive(settings.frame_ancestors)
    headers = {
        "content-security-policy": (
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
            f"form-action 'self'; base-uri 'none'; frame-ancestors {ancestors}"
        ),
        "referrer-policy": "no-referrer",
        "x-content-type-options": "nosniff",
        "cache-control": "no-store",
    }
    if ancestors == "'none'":
        headers["x-frame-options"] = "DENY"
    elif ancestors == "'self'":
        headers["x-frame-options"] = "SAMEORIGIN"
    return headers


def _page(settings: Settings, html: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code=status_code, headers=security_headers(settings))


def message_page(
    settings: Settings,
    *,
    status_code: int,
    title: str,
    message: str,
    advice: str,
    back_url: str | None = None,
) -> HTMLResponse:
    html = report.render(
        "message.html", title=title, message=message, advice=advice, back_url=back_url
    )
    return _page(settings, html, status_code)


def _refused(settings: Settings, exc: links.LinkRefused) -> HTMLResponse:
    return message_page(
        settings,
        status_code=403,
        title="This link does not open the page",
        message=exc.message,
        advice=_ADVICE[exc.problem],
    )


def _not_enabled(settings: Settings) -> HTMLResponse:
    return message_page(
        settings,
        status_code=503,
        title="Class pages are not enabled",
        message="This lof server has no link secret configured.",
        advice="ask the lof operator to set LOF_LINK_SECRET.",
    )


def _store_down(settings: Settings) -> HTMLResponse:
    return message_page(
        settings,
        status_code=503,
        title="Predictions are unavailable",
        message="The predictions store cannot be reached right now.",
        advice="reload this page in a few minutes.",
    )


class LinkCheck:
    """Checks a class page's signed link (``lof.core.links``): the claims of a valid token for
    the class, or the page a teacher sees instead (403 refused, 503 no link secret).

    A dependency rather than a check at the top of each route: the routes decide when to call
    it (after their own input checks), and every page route refuses a link the same way.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(self, token: str | None, *, class_id: int) -> links.LinkClaims | HTMLResponse:
        try:
            return links.verify(token, secret=self.settings.link_secret, class_id=class_id)
        except ConfigError:
            return _not_enabled(self.settings)
        except links.LinkRefused as exc:
            return _refused(self.settings, exc)


def link_check(settings: SettingsDep) -> LinkCheck:
    return LinkCheck(settings)


LinkCheckDep = Annotated[LinkCheck, Depends(link_check)]


# A refusal on a page route in a teacher's terms: (title, message, advice) by status; None as
# the message keeps the refusal's own words (they name the field and the value).
_PAGE_PATH = re.compile(r"/classes/[^/]+/(report|feedback|interventions)/?")
_ADDRESS = "open the class page again from LEB2."
_INVALID = "This address is not valid"
_NOWHERE = ("This page does not exist", "This address does not lead to a class page.", _ADDRESS)
_PAGE_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: (_INVALID, "The address holds more than a class page needs.", _ADDRESS),
    404: _NOWHERE,
    405: _NOWHERE,
    413: ("Feedback not saved", "The form sent was too large.", "shorten the note, send it again."),
    414: (_INVALID, "The address is longer than a class page needs.", _ADDRESS),
    422: (_INVALID, None, _ADDRESS),
    431: (_INVALID, "The request is larger than a class page needs.", _ADDRESS),
    503: ("Predictions are unavailable", None, "reload this page in a few minutes."),
}
_PAGE_FAILED = (
    "Something went wrong",
    "The page could not be shown; the error has been logged.",
    "reload this page in a few minutes; if it happens again, tell the lof operator.",
)


def page_problem(settings: Settings, path: str, status_code: int, detail: str) -> Response | None:
    """A refusal on a class page route as the page's HTML (``lof.api.problems.problem_for``):
    a teacher sees a page with the page's headers, never JSON; None for any other path."""
    match = _PAGE_PATH.fullmatch(path)
    if match is None:
        return None
    title, message, advice = _PAGE_ERRORS.get(status_code, _PAGE_FAILED)
    if match[1] == "feedback" and status_code < 500:
        title = "Feedback not saved"
    if match[1] == "interventions" and status_code < 500:
        title = "Action not recorded"
    return message_page(
        settings, status_code=status_code, title=title, message=message or detail, advice=advice
    )


def read_class_history(
    store: PredictionStore, *, class_id: int, days: list[date]
) -> dict[date, list[PredictionRecord]]:
    """Each day's records of the class, read in parallel (one query per day)."""
    if not days:
        return {}
    with ThreadPoolExecutor(max_workers=min(READ_WORKERS, len(days))) as pool:
        results = pool.map(
            lambda d: guard_store(lambda: store.read_class_day(day=d, class_id=class_id)), days
        )
        return dict(zip(days, results, strict=True))


def build_page(
    *,
    store: PredictionStore,
    fstore: FeedbackStore,
    settings: Settings,
    class_id: int,
    day: date | None,
    claims: links.LinkClaims,
    istore: InterventionStore | None = None,
) -> tuple[report.ClassReport | None, list[date], date | None]:
    """The report for ``day`` (default: the latest scored day), the class's days, the day."""
    all_days = guard_store(lambda: store.list_days(class_id=class_id))
    if not all_days:
        return None, all_days, day
    day = day or all_days[-1]
    if day not in all_days:
        return None, all_days, day
    upto = [d for d in all_days if d <= day][-TREND_DAYS:]
    history = read_class_history(store, class_id=class_id, days=upto)
    verdicts: dict[int, str] = {}
    if claims.teacher_id is not None:
        for record in fstore.read_class(class_id=class_id, day=day):
            if record.teacher_id == claims.teacher_id:
                verdicts[record.user_id] = record.verdict
    built = report.build_report(
        class_id=class_id,
        day=day,
        day_records=history[day],
        history=history,
        threshold=shown_threshold(history[day], override=settings.risk_threshold),
        feedback=verdicts,
    )
    from lof.api.changes import mark_changes

    mark_changes(built, history=history, rise=settings.changes_rise)
    if istore is not None:
        from lof.api.report import mark_actions

        mark_actions(built, history=history, records=istore.read_class(class_id=class_id))
    return built, all_days, day


def shown_threshold(records: list[PredictionRecord], *, override: float | None) -> float:
    """The at-risk line drawn on the trends: LOF_RISK_THRESHOLD when set, else the lowest risk
    flagged that day (each version carries its own threshold; records do not name it)."""
    if override is not None:
        return override
    flagged = [float(r["risk_prob"]) for r in records if r.get("at_risk")]
    return min(flagged) if flagged else DEFAULT_THRESHOLD


def base_path(request: Request) -> str:
    """The prefix the app is served under (``/prod`` behind an API Gateway stage, the path of
    LOF_PUBLIC_URL): the page's own links and form actions start with it."""
    return str(request.scope.get("root_path") or "").rstrip("/")


def _report_url(
    class_id: int, *, root: str, token: str, day: date | None = None, **extra: str
) -> str:
    query = {"token": token, **({"date": day.strftime("%Y%m%d")} if day else {}), **extra}
    return f"{root}/classes/{class_id}/report?{urlencode(query)}"


# --- the page ---------------------------------------------------------------------------------

ClassIdPath = Annotated[str, PathParam(description="LEB2 class id", examples=["12"])]
TokenQuery = Annotated[str | None, Query(description="the signed link's token")]


@router.get(
    "/classes/{class_id}/report",
    response_class=HTMLResponse,
    responses={
        200: _HTML,
        400: {**_HTML, "description": "more query parameters than LOF_MAX_QUERY_PARAMS"},
        403: {**_HTML, "description": "missing, expired, tampered or other-class link"},
        404: {**_HTML, "description": "no predictions for the class (on that day)"},
        414: {**_HTML, "description": "address longer than LOF_MAX_URL_BYTES"},
        422: {**_HTML, "description": "malformed class id or date"},
        503: {**_HTML, "description": "link secret not set or store unavailable"},
    },
    tags=["class page"],
)
async def class_report(
    request: Request,
    settings: SettingsDep,
    check_link: LinkCheckDep,
    class_id: ClassIdPath,
    token: TokenQuery = None,
    date: Annotated[str | None, Query(description="YYYYMMDD; default the latest day")] = None,
    saved: Annotated[str | None, Query(description="user id whose feedback was saved")] = None,
    recorded: Annotated[str | None, Query(description="user id whose action was recorded")] = None,
) -> Response:
    """The class's students by risk, with trends, reasons and a feedback form (HTML)."""
    try:
        cid = parse_id(class_id, name="class_id")
        day = parse_date(date) if date else None
    except ApiProblem as exc:
        return _invalid_address(settings, exc)
    claims = check_link(token, class_id=cid)
    if isinstance(claims, Response):
        return claims
    assert token is not None
    try:
        store = await _prediction_store(request)
        fstore = await run_in_threadpool(feedback_store, request)
        istore = await run_in_threadpool(request.app.state.intervention_holder.get)
        built, all_days, shown_day = await run_in_threadpool(
            build_page,
            store=store,
            fstore=fstore,
            settings=settings,
            class_id=cid,
            day=day,
            claims=claims,
            istore=istore,
        )
    except StoreError as exc:
        log.warning("class page of class %d: store unavailable: %s", cid, exc)
        return _store_down(settings)
    root = base_path(request)
    if built is None:
        return _no_predictions(
            settings, root=root, cid=cid, token=token, all_days=all_days, day=shown_day
        )
    built.not_shown = await run_in_threadpool(not_shown, request, class_id=cid, day=built.day)
    return _report_page(
        settings,
        root=root,
        built=built,
        all_days=all_days,
        shown_day=shown_day,
        cid=cid,
        token=token,
        claims=claims,
        saved=saved,
        recorded=recorded,
    )


def _invalid_address(settings: Settings, exc: ApiProblem) -> HTMLResponse:
    return message_page(
        settings,
        status_code=422,
        title="This address is not valid",
        message=exc.detail,
        advice="open the class page again from LEB2.",
    )


def _no_predictions(
    settings: Settings,
    *,
    root: str,
    cid: int,
    token: str,
    all_days: list[date],
    day: date | None,
) -> HTMLResponse:
    """404 for a class without predictions on ``day``, pointing to its latest day if any."""
    if all_days:
        latest = all_days[-1]
        return message_page(
            settings,
            status_code=404,
            title="No predictions for that day",
            message=f"Class {cid} has no predictions on {report.iso(day)}.",  # type: ignore[arg-type]
            advice=f"see the latest day, {report.iso(latest)}.",
            back_url=_report_url(cid, root=root, token=token),
        )
    return message_page(
        settings,
        status_code=404,
        title="No predictions yet",
        message=f"Class {cid} has no predictions on any day yet.",
        advice="come back after the next daily scoring run (around 03:00).",
    )


def _report_page(
    settings: Settings,
    *,
    root: str,
    built: report.ClassReport,
    all_days: list[date],
    shown_day: date | None,
    cid: int,
    token: str,
    claims: links.LinkClaims,
    saved: str | None,
    recorded: str | None = None,
) -> HTMLResponse:
    """The rendered class report, with links to its other recent days and the feedback form."""
    saved_note = None
    saved_user = id_from_text(saved) if saved else None
    if saved_user is not None:
        saved_note = f"Thank you: your feedback on student {saved_user} was saved."
    recorded_user = id_from_text(recorded) if recorded else None
    if recorded_user is not None:
        saved_note = f"Your action for student {recorded_user} was recorded."
    html = report.render(
        "report.html",
        report=built,
        other_days=[d for d in all_days[-8:] if d != shown_day],
        day_url=lambda d: _report_url(cid, root=root, token=token, day=d),
        saved=saved_note,
        any_model_reasons=any(s.reasons_kind == "model" for s in built.students),
        feedback_enabled=claims.teacher_id is not None,
        feedback_action=f"{root}/classes/{cid}/feedback",
        token=token,
        verdict_labels=VERDICT_LABELS,
        note_max=fb.NOTE_MAX_CHARS,
        action_action=f"{root}/classes/{cid}/interventions",
        action_labels=ACTION_LABELS,
        today=report.iso(today_local(settings.tz)),
    )
    return _page(settings, html)


async def _prediction_store(request: Request) -> PredictionStore:
    return await store_dep(request)


def form_body(properties: dict[str, dict[str, object]]) -> dict[str, object]:
    """The OpenAPI request body of a class page form: the link's token and ``properties``, all
    required but the note."""
    fields = {"token": {"type": "string"}, **properties}
    return {
        "requestBody": {
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": fields,
                        "required": [name for name in fields if name != "note"],
                    }
                }
            }
        }
    }


_FORM_BODY = form_body(
    {
        "predicted_dt": {"type": "string", "example": "20230325"},
        "user_id": {"type": "string", "example": "4501"},
        "verdict": {"type": "string", "enum": list(fb.VERDICTS)},
        "note": {"type": "string", "maxLength": fb.NOTE_MAX_CHARS},
    }
)


@dataclass(frozen=True)
class TeacherForm:
    """A class page form that may be acted on: its fields, the class, the link's token and the
    teacher the link names."""

    class_id: int
    token: str
    teacher_id: str
    fields: dict[str, str]


async def read_teacher_form(
    request: Request,
    settings: Settings,
    check_link: LinkCheck,
    class_id: str,
    *,
    title: str,
    cannot: str,
) -> TeacherForm | Response:
    """A page form (feedback, an action) with its class and a link that names a teacher, or the
    page a teacher sees instead: 422 for a malformed class id, the link's refusal, 403 for a
    link that names no teacher (``cannot`` says what it cannot do). The body is read first,
    under the form limit: the token, the credential, is in it."""
    body = await read_body(request, FORM_MAX_BYTES)
    fields = {
        k: v[0]
        for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()
    }
    try:
        cid = parse_id(class_id, name="class_id")
    except ApiProblem as exc:
        return message_page(
            settings, status_code=422, title=title, message=exc.detail, advice=_ADDRESS
        )
    token = fields.get("token")
    claims = check_link(token, class_id=cid)
    if isinstance(claims, Response):
        return claims
    if token is None or claims.teacher_id is None:
        return message_page(
            settings,
            status_code=403,
            title=title,
            message=f"This link does not name a teacher, so {cannot} with it.",
            advice="open the class page from your own LEB2 course page: that link names you.",
        )
    return TeacherForm(class_id=cid, token=token, teacher_id=claims.teacher_id, fields=fields)


@router.post(
    "/classes/{class_id}/feedback",
    response_class=HTMLResponse,
    status_code=303,
    responses={
        303: {"description": "saved; back to the class page"},
        403: {**_HTML, "description": "missing, expired, tampered or other-class link"},
        413: {**_HTML, "description": "form too large"},
        422: {**_HTML, "description": "invalid feedback, not saved"},
        503: {**_HTML, "description": "link secret not set or store unavailable"},
    },
    openapi_extra=_FORM_BODY,
    tags=["class page"],
)
async def class_feedback_form(
    request: Request, settings: SettingsDep, check_link: LinkCheckDep, class_id: ClassIdPath
) -> Response:
    """The page's feedback form (works without JavaScript): save, then back to the page.

    The verdict is the link's teacher's: a link that names no teacher cannot give feedback.
    """
    form = await read_teacher_form(
        request,
        settings,
        check_link,
        class_id,
        title="Feedback not saved",
        cannot="feedback cannot be given",
    )
    if isinstance(form, Response):
        return form
    cid, token = form.class_id, form.token
    root = base_path(request)
    back = _report_url(cid, root=root, token=token)
    try:
        entry = fb.parse_feedback(form.fields, teacher_id=form.teacher_id, class_id=cid)
        store = await _prediction_store(request)
        fstore = await run_in_threadpool(feedback_store, request)
        saved = await run_in_threadpool(
            feedback_routes.save_feedback, store=store, fstore=fstore, entry=entry, source="page"
        )
    except fb.FeedbackInvalid as exc:
        return message_page(
            settings,
            status_code=422,
            title="Feedback not saved",
            message=str(exc),
            advice="go back to the class page, correct it and send it again.",
            back_url=back,
        )
    except StoreError as exc:
        log.warning("feedback form of class %d: store unavailable: %s", cid, exc)
        return _store_down(settings)
    url = _report_url(
        cid,
        root=root,
        token=token,
        day=parse_predicted_dt(saved.predicted_dt),
        saved=str(saved.user_id),
    )
    return RedirectResponse(url, status_code=303, headers=security_headers(settings))


_TOKEN_IN_URL = re.compile(r"(token=)[^&\s]+")


class RedactTokens(logging.Filter):
    """Access logs show ``token=***``: a link's token opens the page until it expires."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_IN_URL.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        elif isinstance(record.msg, str):
            record.msg = _TOKEN_IN_URL.sub(r"\1***", record.msg)
        return True


def include_pages(app: FastAPI, settings: Settings) -> None:
    """Mount the class page, links and feedback routes on the API app."""
    app.state.feedback_holder = LazyStore(settings.store_url or "", open_feedback_store)
    app.state.page_problem = partial(page_problem, settings)
    app.include_router(router)
    app.include_router(links_routes.router)
    app.include_router(feedback_routes.router)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in access.filters):
        access.addFilter(RedactTokens())


__all__ = ["include_pages", "router", "security_headers"]
