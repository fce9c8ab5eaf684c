"""The predictions API for the LEB2 backend (docs/contracts.md §3.5): FastAPI, API keys,
Lambda-ready.

* ``factory`` — ``create_app``: settings, problem handlers and the routers below;
* routers (``lof.api.routes``) — ``ops`` (``/healthz``, ``/readyz``), ``predictions``
  (``/predictions``, a student's history), ``privacy`` (opt-out), ``webhooks`` (``/webhooks/*``,
  promotion events), ``pages`` (the class page and its form), ``links`` (``/links``) and
  ``feedback`` (``/feedback``);
* ``deps`` (settings, API key, predictions and feedback stores as ``Annotated`` dependencies),
  ``params`` (quote-tolerant ids and days), ``json_bodies`` (bounded JSON bodies), ``problems``
  (the one error body), ``schemas``, ``cache``, ``limits`` (what is refused before any work),
  ``access`` (the access log's writer), ``report`` (the class page's content), ``docs`` (Swagger
  UI, only if enabled);
* ``entry`` — ``get_app``, the Lambda ``handler`` and ``serve`` (uvicorn).

Nothing happens at import time: ``lof.api.app`` (for ``uvicorn lof.api:app``) and
``lof.api.handler`` build the app on first use. May import every package below it (core,
features, feedback, sources, stores, model, governance, registry); never ``lof.training``,
``flows`` or the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lof.api.entry import get_app, handler, serve
from lof.api.factory import create_app

if TYPE_CHECKING:
    from fastapi import FastAPI


def __getattr__(name: str) -> FastAPI:
    # `uvicorn lof.api:app` and Mangum-style imports find `app` without building it at import
    if name == "app":
        return get_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["create_app", "get_app", "handler", "serve"]
