"""Request limits checked before any work: URL, query parameters, headers and body size.

``RequestLimits`` is a pure ASGI middleware, the app's outermost: it reads only the raw request
line and headers (``scope``), so a refused request costs microseconds whatever its size and
FastAPI never parses its parameters (collecting 10,000 of them takes seconds of the event loop).
A body whose Content-Length passes the limit is refused before a byte of it is read; one sent
without a length (chunked) is stopped as soon as it passes the limit. A 413 closes the
connection, so the server does not go on receiving the rest of the body.

``read_body`` reads a route's body under that route's own, smaller limit (a form, a webhook).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lof.api.problems import ApiProblem, problem_for

MAX_HEADER_BYTES = 32 * 1024
CLOSE = {"connection": "close"}


@dataclass(frozen=True)
class Limits:
    """LOF_MAX_URL_BYTES, LOF_MAX_QUERY_PARAMS and LOF_MAX_BODY_BYTES."""

    url_bytes: int
    query_params: int
    body_bytes: int


class BodyTooLarge(ApiProblem):
    """413, and the connection closed so the rest of the body is not received."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"request body larger than {limit} bytes; send at most {limit} bytes", CLOSE
        )


def _content_length(scope: Scope) -> int | None:
    """The declared body size; -1 if the header is malformed."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() and len(value) <= 18 else -1
    return None


def refusal(scope: Scope, limits: Limits) -> tuple[int, str] | None:
    """Why the request of ``scope`` is refused before it reaches the app, if it is."""
    path = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string") or b""
    url_bytes = len(path) + len(query)
    if url_bytes > limits.url_bytes:
        return 414, (
            f"the URL is {url_bytes} bytes long; at most {limits.url_bytes} are accepted "
            "(send only the documented parameters)"
        )
    params = query.count(b"&") + 1 if query else 0
    if params > limits.query_params:
        return 400, (
            f"the query has {params} parameters; at most {limits.query_params} are accepted "
            "(send only the documented parameters)"
        )
    header_bytes = sum(len(name) + len(value) for name, value in scope["headers"])
    if header_bytes > MAX_HEADER_BYTES:
        return 431, f"the headers are {header_bytes} bytes; at most {MAX_HEADER_BYTES} are accepted"
    length = _content_length(scope)
    if length == -1:
        return 400, "the Content-Length header is not a number of bytes"
    if length is not None and length > limits.body_bytes:
        return 413, f"request body larger than {limits.body_bytes} bytes; send at most that"
    return None


class RequestLimits:
    """Refuses what passes ``limits`` before the app runs; bounds the body while it streams."""

    def __init__(self, app: ASGIApp, *, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = refusal(scope, self.limits)
        if refused is not None:
            status, detail = refused
            await problem_for(scope, status, detail, headers=CLOSE)(scope, receive, send)
            return
        limit = self.limits.body_bytes
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, bounded_receive, send)


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, read only up to ``limit`` bytes; ``BodyTooLarge`` past it."""
    declared = _content_length(request.scope)
    if declared is not None and declared > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


__all__ = ["MAX_HEADER_BYTES", "BodyTooLarge", "Limits", "RequestLimits", "read_body", "refusal"]
