"""Students' opt-out through the API (API key), the access log, and the class page's count of
students it does not show.

* ``GET /students/{user_id}/opt-out`` — whether the student is on the opt-out list;
* ``PUT /students/{user_id}/opt-out`` — opt out (idempotent): the student's predictions,
  class-day bodies and feedback are removed at once, and no later run uses them;
* ``DELETE /students/{user_id}/opt-out`` — opt in again: scored from the next daily run.

They need LOF_PSEUDONYM_SECRET (the list holds pseudonyms); without it they answer 503 saying
so. ``install`` mounts these routes and the access log's middleware on the app.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date
from typing import ParamSpec, TypeVar

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from lof.api.access import OPT_OUT_PATH, AccessLogMiddleware, AccessRecorder
from lof.api.deps import ApiKeyDep, SettingsDep, guard_store
from lof.api.params import UserIdPath
from lof.api.problems import ApiProblem
from lof.api.routes.predictions import DATA_ERRORS
from lof.core.config import Settings
from lof.core.errors import ConfigError, StoreError
from lof.governance import erasure as governance
from lof.stores.access_log import open_access_log
from lof.stores.privacy import PrivacyStore, open_privacy_store

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger(__name__)
router = APIRouter(tags=["privacy"])


class OptOut(BaseModel):
    """A student's place on the opt-out list, and what an opt-out removed."""

    user_id: int
    opted_out: bool
    removed: dict[str, int] = Field(
        default_factory=dict, description="rows or items removed per store"
    )


def _call(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a governance call; a missing or changed LOF_PSEUDONYM_SECRET is a 503 saying so."""
    try:
        return guard_store(lambda: fn(*args, **kwargs))
    except ConfigError as exc:
        raise ApiProblem(503, str(exc)) from None


@router.get(OPT_OUT_PATH, response_model=OptOut, responses=DATA_ERRORS)
async def opt_out_status(_auth: ApiKeyDep, settings: SettingsDep, user_id: UserIdPath) -> OptOut:
    """Whether the student is on the opt-out list."""
    listed = await run_in_threadpool(_call, governance.is_opted_out, settings, user_id)
    return OptOut(user_id=user_id, opted_out=listed)


@router.put(OPT_OUT_PATH, response_model=OptOut, responses=DATA_ERRORS)
async def opt_out(_auth: ApiKeyDep, settings: SettingsDep, user_id: UserIdPath) -> OptOut:
    """Opt the student out: not scored, stored, shown or trained on from now on; their
    predictions and feedback are removed now."""
    removed = await run_in_threadpool(_call, governance.opt_out, settings, [user_id])
    return OptOut(user_id=user_id, opted_out=True, removed=removed.counts)


@router.delete(OPT_OUT_PATH, response_model=OptOut, responses=DATA_ERRORS)
async def opt_in(_auth: ApiKeyDep, settings: SettingsDep, user_id: UserIdPath) -> OptOut:
    """Opt the student in again: scored from the next daily run."""
    await run_in_threadpool(_call, governance.opt_in, settings, [user_id])
    return OptOut(user_id=user_id, opted_out=False)


class _PrivacyHolder:
    """The privacy records, opened on the first page that needs them."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._store: PrivacyStore | None = None
        self._lock = threading.Lock()

    def get(self) -> PrivacyStore:
        with self._lock:
            if self._store is None:
                self._store = guard_store(lambda: open_privacy_store(self._url))
            return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def not_shown(request: Request, *, class_id: int, day: date) -> int:
    """How many opted-out students the class's page leaves out that day (0 if unknown: the
    page still shows what it can; the failure is logged)."""
    try:
        store = request.app.state.privacy_holder.get()
        return int(guard_store(lambda: store.hidden_count(class_id=class_id, day=day)))
    except StoreError as exc:
        log.warning("class page of class %d: opt-out count unavailable: %s", class_id, exc)
        return 0


def install(app: FastAPI, settings: Settings) -> None:
    """Mount the opt-out routes and record accesses (``lof.api.access``)."""
    app.state.privacy_holder = _PrivacyHolder(settings.store_url or "")
    recorder = AccessRecorder(
        lambda: open_access_log(settings.store_url or "", retention_days=settings.retention_days)
    )
    app.state.access_recorder = recorder
    app.include_router(router)
    app.add_middleware(AccessLogMiddleware, recorder=recorder, settings=settings)


def close(app: FastAPI) -> None:
    """Write the access log's buffer and close the privacy records (app shutdown)."""
    app.state.access_recorder.close()
    app.state.privacy_holder.close()


__all__ = ["OptOut", "close", "install", "not_shown", "router"]
