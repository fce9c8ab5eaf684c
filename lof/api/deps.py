"""The API's dependencies, as ``Annotated`` types: settings, the API key, the predictions store.

The predictions store is opened on the first request that needs it, so a cold Lambda or a
misconfigured store never prevents the process from starting and answering ``/healthz``.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable
from typing import Annotated, Generic, Protocol, TypeVar

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from lof.api.cache import BodyCache
from lof.api.problems import ApiProblem
from lof.core.config import Settings
from lof.core.errors import StoreError
from lof.stores.base import PredictionStore
from lof.stores.feedback import FeedbackStore

T = TypeVar("T")


class _Closable(Protocol):
    def close(self) -> None: ...


S = TypeVar("S", bound=_Closable)
API_KEY_HEADER = "x-api-key"


def unreachable_errors() -> tuple[type[BaseException], ...]:
    """Driver errors meaning the store cannot be used right now, whichever backend raises them."""
    import botocore.exceptions as bce
    import sqlalchemy.exc as sae

    return (
        sae.OperationalError,
        sae.InterfaceError,
        bce.EndpointConnectionError,
        bce.ConnectionClosedError,
        bce.ReadTimeoutError,
        bce.ConnectTimeoutError,
    )


def guard_store(call: Callable[[], T]) -> T:
    """Run a store call, turning a backend's connectivity errors into StoreError (-> 503)."""
    try:
        return call()
    except StoreError:
        raise
    except unreachable_errors() as exc:
        raise StoreError(f"predictions store unreachable ({type(exc).__name__})") from exc


class StoreHolder:
    """Opens the predictions store once, on first use; a failed open is retried next request."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._store: PredictionStore | None = None
        self._lock = threading.Lock()

    @property
    def opened(self) -> PredictionStore | None:
        return self._store

    def get(self) -> PredictionStore:
        store = self._store
        if store is not None:
            return store
        with self._lock:
            if self._store is None:
                from lof.stores import open_prediction_store

                self._store = guard_store(lambda: open_prediction_store(self._url))
            return self._store

    def close(self) -> None:
        close = getattr(self._store, "close", None)
        if callable(close):
            close()
        self._store = None


async def settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(settings_dep)]


async def store_holder_dep(request: Request) -> StoreHolder:
    holder: StoreHolder = request.app.state.store_holder
    return holder


async def store_dep(request: Request) -> PredictionStore:
    holder = await store_holder_dep(request)
    store = holder.opened
    if store is None:  # opening may connect: keep it off the event loop
        store = await run_in_threadpool(holder.get)
    return store


async def body_cache_dep(request: Request) -> BodyCache:
    cache: BodyCache = request.app.state.body_cache
    return cache


_api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER, auto_error=False, description="one of the keys of LOF_API_KEYS"
)


def key_matches(settings: Settings, key: str) -> bool:
    """Whether ``key`` equals one configured key (constant time)."""
    given = key.encode("utf-8", "surrogateescape")
    matched = False
    for candidate in settings.api_key_list:
        # every key is compared so timing does not tell which one nearly matched
        matched |= hmac.compare_digest(given, candidate.encode("utf-8"))
    return matched


async def api_key_dep(
    settings: SettingsDep,
    key: Annotated[str | None, Depends(_api_key_scheme)],
) -> None:
    """Accept the request only if its x-api-key equals one configured key (constant time)."""
    if not key:
        raise ApiProblem(401, f"missing {API_KEY_HEADER} header")
    if not key_matches(settings, key):
        raise ApiProblem(401, f"invalid {API_KEY_HEADER}")


async def has_api_key_dep(
    settings: SettingsDep,
    key: Annotated[str | None, Depends(_api_key_scheme)],
) -> bool:
    """Whether the request carries a valid x-api-key; never refuses (routes open to anyone
    that tell a key holder more)."""
    return bool(key) and key_matches(settings, key or "")


StoreDep = Annotated[PredictionStore, Depends(store_dep)]
StoreHolderDep = Annotated[StoreHolder, Depends(store_holder_dep)]
BodyCacheDep = Annotated[BodyCache, Depends(body_cache_dep)]
ApiKeyDep = Annotated[None, Depends(api_key_dep)]
HasApiKeyDep = Annotated[bool, Depends(has_api_key_dep)]

__all__ = [
    "API_KEY_HEADER",
    "ApiKeyDep",
    "BodyCacheDep",
    "HasApiKeyDep",
    "SettingsDep",
    "StoreDep",
    "StoreHolder",
    "StoreHolderDep",
    "guard_store",
    "store_dep",
]


class LazyStore(Generic[S]):
    """A small store next to the predictions (feedback, interventions), opened on first use
    from LOF_STORE_URL (like the predictions store) and closed with the app."""

    def __init__(self, url: str, opener: Callable[[str], S]) -> None:
        self._url = url
        self._opener = opener
        self._store: S | None = None
        self._lock = threading.Lock()

    def get(self) -> S:
        with self._lock:
            if self._store is None:
                self._store = guard_store(lambda: self._opener(self._url))
            return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def feedback_store(request: Request) -> FeedbackStore:
    return request.app.state.feedback_holder.get()
