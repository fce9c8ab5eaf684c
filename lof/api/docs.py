"""``/docs``: Swagger UI over ``/openapi.json``, only when LOF_API_DOCS is on.

Swagger UI's script and stylesheet come from the installed ``fastapi-offline`` package and are
served by the API itself: the page loads nothing from another origin (its CSP forbids it).
"""

from __future__ import annotations

from importlib.resources import files

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"
CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def include_docs(app: FastAPI) -> None:
    """Mount Swagger UI at ``/docs`` with its assets under ``/docs/assets``."""
    assets = files(fastapi_offline) / "static"
    app.mount(ASSETS_URL, StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        )
        page.headers.update({"content-security-policy": CSP, "x-content-type-options": "nosniff"})
        return page


__all__ = ["DOCS_URL", "include_docs"]
