"""Deployment entry points: uvicorn (`lof serve`) and AWS Lambda (Mangum), one app per process.

Nothing happens at import time: the app is built on the first call of ``get_app`` (through
``lof.api.app``, ``handler`` or ``serve``).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from fastapi import FastAPI

from lof.api.factory import create_app

if TYPE_CHECKING:
    from mangum import Mangum
    from mangum.types import LambdaContext, LambdaEvent

log = logging.getLogger(__name__)

_app: FastAPI | None = None
_handler: Mangum | None = None
_build_lock = threading.Lock()


def get_app() -> FastAPI:
    """The process's app over the environment's settings, built on first call."""
    global _app
    with _build_lock:
        if _app is None:
            _app = create_app()
        return _app


def handler(event: LambdaEvent, context: LambdaContext) -> dict[str, object]:
    """AWS Lambda entry point (API Gateway REST v1 / HTTP v2 events) for the same app."""
    global _handler
    if _handler is None:
        from mangum import Mangum

        _handler = Mangum(get_app(), lifespan="off")
    try:
        return _handler(_without_accept_encoding(event), context)
    finally:
        # A frozen Lambda runs no background thread: the invocation's accesses go now.
        get_app().state.access_recorder.flush()


def _without_accept_encoding(event: LambdaEvent) -> LambdaEvent:
    """Behind API Gateway the app never gzips: Mangum would return the gzip bytes base64-encoded,
    which a REST API without binary media types hands to the client as text. API Gateway's own
    compression (minimumCompressionSize) does that job there."""
    out = dict(event)
    for field in ("headers", "multiValueHeaders"):
        if isinstance(out.get(field), dict):
            out[field] = {k: v for k, v in out[field].items() if k.lower() != "accept-encoding"}
    return out


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the API with uvicorn (blocking); used by `lof serve`."""
    import uvicorn

    app = get_app()
    # X-Forwarded-For/-Proto are believed only from LOF_FORWARDED_ALLOW_IPS (default: nobody)
    trusted = app.state.settings.forwarded_allow_ips
    log.info("serving the predictions API on http://%s:%d", host, port)
    uvicorn.run(
        app,
        host=host,
        port=port,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
        server_header=False,
    )


__all__ = ["get_app", "handler", "serve"]
