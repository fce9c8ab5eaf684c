"""The API's one problem type: every 4xx/5xx answer is JSON ``{"detail": "<one line>"}``.

Endpoints, dependencies and routers raise ``ApiProblem``; ``install_problem_handlers`` renders it
and turns every other failure into the same body: a malformed or missing parameter (422), an
unknown route (404/405), the predictions store unreachable (503), anything unexpected (500,
logged, no internals). ``Problem`` is that body's OpenAPI schema.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lof.core.errors import LofError, StoreError
from lof.core.inputs import DATE_FORM, ID_FORM

log = logging.getLogger(__name__)

# the form a missing parameter is asked for in, by parameter name
PARAM_FORMS = {"predicted_dt": DATE_FORM, "class_id": ID_FORM, "user_id": ID_FORM}
# the pydantic error type of a malformed quote-tolerant id or day (lof.api.params)
PARAM_ERROR = "lof_param"


class Problem(BaseModel):
    """Why a request was refused or failed, in one line."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"detail": "predicted_dt must be a date as YYYYMMDD, e.g. 20230325"}]
        }
    )

    detail: str


class ApiProblem(HTTPException):
    """An HTTP answer with a one-line detail, rendered as ``Problem``.

    A Starlette ``HTTPException``, so that a router mounted on a bare FastAPI app answers with the
    same body through FastAPI's default handler.
    """

    detail: str

    def __init__(
        self, status_code: int, detail: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status_code, detail, headers)

    def __str__(self) -> str:
        return self.detail


def problem_response(
    status_code: int, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


# ``app.state.page_problem``: renders a refusal on a page route as that page's HTML (lof.pages);
# None for any other path, which gets the JSON Problem.
PageProblem = Callable[[str, int, str], Response | None]


def problem_for(
    scope: Scope, status_code: int, detail: str, headers: Mapping[str, str] | None = None
) -> Response:
    """The refusal of the request of ``scope``: the page's HTML on a page route, else JSON."""
    state = getattr(scope.get("app"), "state", None)
    page: PageProblem | None = getattr(state, "page_problem", None)
    response = None if page is None else page(scope.get("path", ""), status_code, detail)
    if response is None:
        return problem_response(status_code, detail, headers=headers)
    response.headers.update(headers or {})
    return response


def shown(value: str) -> str:
    """A client's value quoted for a message, cut to a readable length."""
    return repr(value if len(value) <= 40 else value[:40] + "...")


def validation_detail(exc: RequestValidationError) -> str:
    """One line for a request FastAPI could not validate.

    Missing parameters are named first (all of them); otherwise the first malformed id or day,
    with the value received.
    """
    errors = list(exc.errors())
    others = [err for err in errors if err.get("type") != PARAM_ERROR]
    if not others and errors:
        err = errors[0]
        form = (err.get("ctx") or {}).get("form", "valid")
        return f"{_param_name(err)} must be {form}; got {shown(str(err.get('input', '')))}"
    parts = []
    for err in others:
        name = _param_name(err)
        form = PARAM_FORMS.get(name)
        if err.get("type") == "missing" and form:
            parts.append(f"{name} is required: {form}")
        elif form:
            parts.append(f"{name} must be {form}")
        else:
            parts.append(f"{name}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "malformed request"


def _param_name(err: Mapping[str, Any]) -> str:
    loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "header", "body")]
    return ".".join(loc) or "request"


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return problem_for(request.scope, 422, validation_detail(exc))


async def _on_http(request: Request, exc: Exception) -> Response:
    """``ApiProblem`` and Starlette's own (unknown route, method not allowed)."""
    assert isinstance(exc, HTTPException)
    return problem_for(request.scope, exc.status_code, str(exc.detail), headers=exc.headers)


async def _on_store_error(request: Request, exc: Exception) -> Response:
    log.warning("predictions store unavailable on %s: %s", request.url.path, exc)
    return problem_for(request.scope, 503, "the predictions store is unavailable; retry later")


async def _on_lof_error(request: Request, exc: Exception) -> Response:
    log.error("request %s failed: %s", request.url.path, exc)
    return problem_for(request.scope, 500, "internal error; it has been logged")


class CatchAll:
    """Last resort: any unexpected exception becomes a JSON 500 without internals, logged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            response = problem_for(scope, 500, "internal error; it has been logged")
            await response(scope, receive, send)


def install_problem_handlers(app: FastAPI) -> None:
    """Every failure of ``app`` answers as ``Problem``."""
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(HTTPException, _on_http)  # ApiProblem included
    app.add_exception_handler(StoreError, _on_store_error)
    app.add_exception_handler(LofError, _on_lof_error)
    app.add_middleware(CatchAll)


__all__ = [
    "DATE_FORM",
    "ID_FORM",
    "ApiProblem",
    "CatchAll",
    "Problem",
    "install_problem_handlers",
    "problem_for",
    "problem_response",
    "validation_detail",
]
