"""``GET /classes/{class_id}/changes``: who is newly at risk, no longer at risk, or rising.

The LMS backend polls it (daily, after the scoring run) for its own notifications; the class
page shows the same changes (``lof.api.changes`` computes them).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from lof.api import changes as ch
from lof.api.cache import PRIVATE_HEADERS
from lof.api.deps import ApiKeyDep, SettingsDep, StoreDep, guard_store
from lof.api.params import ClassIdPath, QuotedDay
from lof.api.problems import ApiProblem, Problem
from lof.api.routes.predictions import DATA_ERRORS
from lof.core.errors import DataError
from lof.core.inputs import DATE_FORM

router = APIRouter(tags=["changes"])


class ChangeOut(BaseModel):
    user_id: int
    risk_then: float | None = Field(description="risk on `since`; null if not scored then")
    risk_now: float
    at_risk_then: bool
    at_risk_now: bool
    reasons: list[str] = Field(description="the latest prediction's reasons, in words")


class ChangesOut(BaseModel):
    """The changes of a class between two scored days."""

    class_id: int
    since: str | None = Field(description="the scored day compared against; null if none")
    until: str
    rise: float = Field(description="the rise in risk listed as `risen` (LOF_CHANGES_RISE)")
    counts: dict[str, int]
    new: list[ChangeOut]
    recovered: list[ChangeOut]
    risen: list[ChangeOut]


@router.get(
    "/classes/{class_id}/changes",
    response_model=ChangesOut,
    responses={**DATA_ERRORS, 404: {"model": Problem, "description": "no scored day"}},
)
async def class_changes(
    _auth: ApiKeyDep,
    store: StoreDep,
    settings: SettingsDep,
    class_id: ClassIdPath,
    since: Annotated[
        QuotedDay | None,
        Query(description=f"compare with this day, {DATE_FORM}; default the scored day before"),
    ] = None,
    until: Annotated[
        QuotedDay | None,
        Query(description=f"up to this day, {DATE_FORM}; default the latest scored day"),
    ] = None,
) -> JSONResponse:
    """Students newly at risk, no longer at risk, and whose risk rose, from `since` to `until`.

    A day without predictions stands for the latest scored day before it.
    """

    def read() -> dict[str, object]:
        found = guard_store(
            lambda: ch.class_changes(
                store,
                class_id=class_id,
                since=since,
                until=until,
                rise=settings.changes_rise,
            )
        )
        return found.as_json()

    try:
        body = await run_in_threadpool(read)
    except ch.NoScoredDay as exc:
        raise ApiProblem(404, str(exc)) from None
    except DataError as exc:
        raise ApiProblem(422, str(exc)) from None
    return JSONResponse(body, headers=PRIVATE_HEADERS)


__all__ = ["router"]
