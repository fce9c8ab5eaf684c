"""``create_app``: the API over one set of settings, no I/O until a request needs it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlparse

from fastapi import FastAPI

from lof.api.cache import CACHE_BYTES, CACHE_SECONDS, BodyCache
from lof.api.deps import API_KEY_HEADER, StoreHolder
from lof.api.limits import Limits, RequestLimits
from lof.api.problems import install_problem_handlers
from lof.api.routes import changes, interventions, ops, predictions, privacy, webhooks
from lof.api.routes.ops import ReadyCache
from lof.api.routes.pages import include_pages
from lof.core.config import Settings, get_settings

log = logging.getLogger(__name__)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    app.state.store_holder.close()
    webhooks.close_replay_memory(app)
    privacy.close(app)


def create_app(
    settings: Settings | None = None,
    *,
    cache_seconds: float = CACHE_SECONDS,
    cache_bytes: int = CACHE_BYTES,
) -> FastAPI:
    """The API over ``settings`` (read from the environment if not given); no I/O until used.

    ``cache_seconds`` bounds how long a served class-day may lag a rewrite of that day (0 turns
    the cache off); ``cache_bytes`` bounds its memory. ``/openapi.json`` and ``/docs`` exist only
    with LOF_API_DOCS on.
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
        openapi_url="/openapi.json" if settings.api_docs else None,
        docs_url=None,
        redoc_url=None,
        # Served under the path of LOF_PUBLIC_URL (an API Gateway stage, /prod, or a reverse
        # proxy's prefix): routes match with or without it, and the class page's links keep it.
        root_path=urlparse(settings.public_url).path.rstrip("/"),
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
    app.include_router(changes.router)
    app.include_router(webhooks.router)
    include_pages(app, settings)
    interventions.include_interventions(app, settings)
    privacy.install(app, settings)  # after every router: the access log sees them all
    if settings.api_docs:
        from lof.api.docs import include_docs

        include_docs(app)
    limits = Limits(
        url_bytes=settings.max_url_bytes,
        query_params=settings.max_query_params,
        body_bytes=settings.max_body_bytes,
    )
    app.add_middleware(RequestLimits, limits=limits)  # the last added runs first
    return app


__all__ = ["create_app"]
