"""``create_app``: the API over one set of settings, no I/O until a request needs it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from lof.api import ops, predictions, privacy, webhooks
from lof.api.cache import CACHE_BYTES, CACHE_SECONDS, BodyCache
from lof.api.deps import API_KEY_HEADER, StoreHolder
from lof.api.ops import ReadyCache
from lof.api.problems import install_problem_handlers
from lof.config import Settings, get_settings

log = logging.getLogger(__name__)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    app.state.store_holder.close()
    privacy.close(app)


def create_app(
    settings: Settings | None = None,
    *,
    cache_seconds: float = CACHE_SECONDS,
    cache_bytes: int = CACHE_BYTES,
) -> FastAPI:
    """The API over ``settings`` (read from the environment if not given); no I/O until used.

    ``cache_seconds`` bounds how long a served class-day may lag a rewrite of that day (0 turns
    the cache off); ``cache_bytes`` bounds its memory.
    """
    settings = settings or get_settings()
    app = FastAPI(
        title="lof predictions API",
        version="1",
        description=(
            "Daily learning-outcome predictions of OBEM classes for the LEB2 backend. "
            f"Data endpoints need the `{API_KEY_HEADER}` header."
        ),
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.store_holder = StoreHolder(settings.store_url or "")
    app.state.ready_cache = ReadyCache()
    app.state.body_cache = BodyCache(ttl=cache_seconds, max_bytes=cache_bytes)
    if not settings.api_key_list:
        log.warning("LOF_API_KEYS is not set: every data request will be refused with 401")

    install_problem_handlers(app)
    app.include_router(ops.router)
    app.include_router(predictions.router)
    app.include_router(webhooks.router)
    # imported here: the class page's module imports this package's dependencies
    from lof.pages import include_pages

    include_pages(app, settings)
    privacy.install(app, settings)  # after every router: the access log sees them all
    return app


__all__ = ["create_app"]
