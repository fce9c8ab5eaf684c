"""Operations routes: liveness (``/healthz``) and readiness (``/readyz``).

Readiness asks three things, each bounded by ``READY_TIMEOUT_SECONDS``: the predictions store
answers, the registry has a model at the configured stage (remembered ``READY_CACHE_SECONDS`` so
frequent probes stay cheap), and the last scored day is recent enough (LOF_STALE_AFTER_DAYS).
Anyone gets only ready / not ready; the details (model, version, last day, why not ready) go to
a caller with a valid x-api-key, and a new reason for not being ready to the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from lof.api.deps import HasApiKeyDep, SettingsDep, StoreHolder, StoreHolderDep, guard_store
from lof.api.schemas import Health, Readiness
from lof.core.calendar import format_day, today_local
from lof.core.config import Settings
from lof.core.errors import LofError, StoreError
from lof.registry import client as registry

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 5.0
READY_CACHE_SECONDS = 15.0

router = APIRouter(tags=["ops"])


# --- the registry and the age of the predictions ------------------------------------------------


def _registry_path_missing(uri: str) -> str | None:
    """For a sqlite tracking URI, the file's path if it does not exist (not created by a probe)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
    return None if path.exists() else str(path)


def registry_version(*, settings: Settings) -> str | None:
    """The Production version as daily scoring and promotion see it (``registry``), or None."""
    missing = _registry_path_missing(settings.mlflow_tracking_uri or "")
    if missing is not None:
        raise LofError(f"no MLflow registry at {missing}; run `lof retrain` first")
    return registry.production_version(settings=settings)


def stale_reason(*, last_day: date | None, today: date, stale_after_days: int | None) -> str | None:
    """Why the predictions are too old to serve as current, or None if they are fresh enough.

    Day D is scored early on D+1, so a healthy store is one day behind today (local time);
    ``stale_after_days`` (LOF_STALE_AFTER_DAYS, None = never stale) is the lag allowed.
    """
    if stale_after_days is None:
        return None
    if last_day is None:
        return "no day has been scored yet; run `lof daily` (or the daily deployment)"
    age = (today - last_day).days
    if age > stale_after_days:
        return (
            f"predictions are stale: the last scored day is {format_day(last_day)}, {age} days "
            f"before today, more than LOF_STALE_AFTER_DAYS={stale_after_days}; check the daily "
            "scoring runs"
        )
    return None


class ReadyCache:
    """Remembers the registry answer for a few seconds so frequent probes stay cheap."""

    def __init__(self) -> None:
        self.at = float("-inf")
        self.version: str | None = None
        self.reason: str | None = None  # the last reason for not being ready, logged once


async def _ready_cache_dep(request: Request) -> ReadyCache:
    cache: ReadyCache = request.app.state.ready_cache
    return cache


ReadyCacheDep = Annotated[ReadyCache, Depends(_ready_cache_dep)]


# --- the probe's steps ------------------------------------------------------------------------


class NotReady(Exception):
    """Why the API cannot answer yet (the readiness body's ``reason``)."""

    def __init__(self, reason: str, *, store: str = "ok") -> None:
        super().__init__(reason)
        self.reason = reason
        self.store = store


def _ping(holder: StoreHolder) -> date | None:
    store = holder.get()
    guard_store(store.ping)
    return guard_store(store.last_complete_day)


async def _last_scored_day(holder: StoreHolder) -> date | None:
    """The store's last complete day; NotReady if the store does not answer in time."""
    try:
        return await asyncio.wait_for(run_in_threadpool(_ping, holder), READY_TIMEOUT_SECONDS)
    except (StoreError, TimeoutError) as exc:
        reason = str(exc) if isinstance(exc, StoreError) else "store ping timed out"
        raise NotReady(f"predictions store: {reason}", store="unreachable") from None


async def _stage_version(settings: Settings, cache: ReadyCache) -> str:
    """The version at the configured stage (cached); NotReady if there is none or no answer."""
    if time.monotonic() - cache.at > READY_CACHE_SECONDS or cache.version is None:
        try:
            version = await asyncio.wait_for(
                run_in_threadpool(registry_version, settings=settings), READY_TIMEOUT_SECONDS
            )
        except TimeoutError:
            raise NotReady("MLflow registry did not answer in time") from None
        except LofError as exc:
            raise NotReady(str(exc)) from None
        except Exception as exc:
            log.warning("readiness: MLflow registry unusable: %s", type(exc).__name__)
            raise NotReady(f"MLflow registry unusable ({type(exc).__name__})") from None
        cache.version, cache.at = version, time.monotonic()
    if cache.version is None:
        raise NotReady(
            f"no version of model {settings.model_name!r} at stage {settings.model_stage!r}; "
            "run `lof retrain` then `lof promote --version N`"
        )
    return cache.version


# --- routes -------------------------------------------------------------------------------------


@router.get("/healthz", response_model=Health)
async def healthz() -> dict[str, str]:
    """Liveness: the process answers (no auth, no I/O)."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "not ready, with the reason"}},
)
async def readyz(
    settings: SettingsDep, holder: StoreHolderDep, cache: ReadyCacheDep, has_key: HasApiKeyDep
) -> JSONResponse:
    """Readiness: the store answers, the registry has a model at the configured stage, and
    the last scored day is recent enough (LOF_STALE_AFTER_DAYS). Details need an x-api-key."""
    body: dict[str, Any] = {
        "status": "ready",
        "reason": None,
        "store": "ok",
        "model_name": settings.model_name,
        "model_stage": settings.model_stage,
        "model_version": None,
        "last_scored_day": None,
    }
    try:
        last_day = await _last_scored_day(holder)
        body["model_version"] = await _stage_version(settings, cache)
        body["last_scored_day"] = format_day(last_day) if last_day else None
        stale = stale_reason(
            last_day=last_day,
            today=today_local(settings.tz),
            stale_after_days=settings.stale_after_days,
        )
        if stale:
            raise NotReady(stale)
    except NotReady as exc:
        body.update(status="not ready", reason=exc.reason, store=exc.store)
    if body["reason"] != cache.reason:
        if body["reason"] is not None:
            log.warning("not ready: %s", body["reason"])
        cache.reason = body["reason"]
    status_code = 503 if body["reason"] else 200
    return JSONResponse(body if has_key else {"status": body["status"]}, status_code=status_code)


__all__ = ["ReadyCache", "registry_version", "router", "stale_reason"]
