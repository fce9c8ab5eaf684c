"""The access log's writer: one entry per authenticated class page view, feedback post, link
issued and API data request (``lof.stores.access_log`` says what an entry holds).

An ASGI middleware sees each request after it is answered: the route it matched, the status,
the class and day it named (path, query, or the small JSON/form body of a POST, read as it
passes), and who asked: the API key's id, or the teacher the page's signed link names. Only
requests that passed authentication are recorded, so no anonymous caller can fill the log.

Entries are buffered and written by a background thread every ``FLUSH_SECONDS`` in one batch,
so a request never waits for the log's write. What a crash can lose: the entries of the last
``FLUSH_SECONDS`` (and, while the store is down, at most ``MAX_PENDING`` are kept to retry;
beyond that they are dropped and counted in a warning). A clean shutdown writes the buffer; the
Lambda handler writes it after each invocation (``flush``).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import parse_qs, unquote_plus

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lof.api.deps import API_KEY_HEADER
from lof.api.params import id_from_text
from lof.core import links
from lof.core.config import Settings
from lof.core.errors import ConfigError
from lof.governance.pseudonyms import api_key_id
from lof.stores.access_log import AccessEntry, AccessLog

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
MAX_PENDING = 10_000
BODY_LIMIT = 65_536
OPT_OUT_PATH = "/students/{user_id}/opt-out"
KEY, LINK = "key", "link"
LOGGED: dict[tuple[str, str], str] = {
    ("GET", "/predictions"): KEY,
    ("GET", "/classes/{class_id}/students/{user_id}/history"): KEY,
    ("POST", "/links"): KEY,
    ("POST", "/feedback"): KEY,
    ("GET", "/feedback"): KEY,
    ("GET", "/classes/{class_id}/changes"): KEY,
    ("GET", OPT_OUT_PATH): KEY,
    ("PUT", OPT_OUT_PATH): KEY,
    ("DELETE", OPT_OUT_PATH): KEY,
    ("GET", "/classes/{class_id}/report"): LINK,
    ("POST", "/classes/{class_id}/feedback"): LINK,
    ("POST", "/interventions"): KEY,
    ("GET", "/interventions"): KEY,
    ("POST", "/classes/{class_id}/interventions"): LINK,
}
"""The routes recorded (method, path template) and how each authenticates."""
_BODY_NAMES_CLASS = re.compile(
    r"^/(links|feedback|interventions|classes/[^/]{1,40}/(feedback|interventions))$"
)


class AccessRecorder:
    """Buffers entries and writes them in batches from one background thread."""

    def __init__(
        self, open_log: Callable[[], AccessLog], *, flush_seconds: float = FLUSH_SECONDS
    ) -> None:
        self._open_log = open_log
        self._log: AccessLog | None = None
        self._flush_seconds = flush_seconds
        self._pending: list[AccessEntry] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def add(self, entry: AccessEntry) -> None:
        with self._lock:
            if len(self._pending) >= MAX_PENDING:
                self.dropped += 1
                return
            self._pending.append(entry)
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._loop, name="lof-access-log", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._flush_seconds):
            self.flush()

    def flush(self) -> int:
        """Write what is buffered; returns how many entries were written."""
        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, []
                dropped, self.dropped = self.dropped, 0
            if dropped:
                log.warning(
                    "access log: %d entries dropped while the store was unavailable", dropped
                )
            if not batch:
                return 0
            try:
                if self._log is None:
                    self._log = self._open_log()
                self._log.append(batch)
            except Exception as exc:  # the store is down: keep them for the next flush
                log.warning("access log: %d entries not written yet: %s", len(batch), exc)
                with self._lock:
                    room = MAX_PENDING - len(self._pending)
                    self._pending[:0] = batch[:room]
                    self.dropped += max(len(batch) - room, 0)
                return 0
            return len(batch)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()
        if self._log is not None:
            self._log.close()
            self._log = None


class AccessLogMiddleware:
    """Records each answered request of a ``LOGGED`` route that passed authentication."""

    def __init__(self, app: ASGIApp, *, recorder: AccessRecorder, settings: Settings) -> None:
        self.app = app
        self.recorder = recorder
        self.secret = settings.link_secret
        self.key_ids = {key: api_key_id(key) for key in settings.api_key_list}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0
        body: bytearray | None = None
        if scope["method"] == "POST" and _BODY_NAMES_CLASS.match(scope["path"]):
            body = bytearray()

        async def reading() -> Message:
            message = await receive()
            if body is not None and message["type"] == "http.request":
                body.extend(message.get("body", b"")[: BODY_LIMIT - len(body)])
            return message

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, reading if body is not None else receive, sending)
        route = getattr(scope.get("route"), "path", "")
        kind = LOGGED.get((scope["method"], route))
        if kind is None or status in (0, 401, 403):
            return
        entry = self._entry(scope, kind=kind, route=route, status=status, body=body)
        if entry is not None:
            self.recorder.add(entry)

    def _entry(
        self, scope: Scope, *, kind: str, route: str, status: int, body: bytearray | None
    ) -> AccessEntry | None:
        given = _query(scope.get("query_string", b""))
        if body:
            given = {**_body_fields(scope, body), **given}
        given.update(scope.get("path_params", ()))
        class_id = _id(given.get("class_id"))
        day = _day(given.get("predicted_dt") or given.get("date"))
        teacher = given.get("teacher_id")
        key_id = None
        if kind == KEY:
            key_id = self.key_ids.get(_header(scope, API_KEY_HEADER) or "")
            if key_id is None:
                return None
        else:
            try:
                token = given.get("token")
                claims = links.verify(
                    token if isinstance(token, str) else None,
                    secret=self.secret,
                    class_id=class_id or 0,
                )
            except (links.LinkRefused, ConfigError):
                return None
            teacher = claims.teacher_id
        if not (isinstance(teacher, str) and links.TEACHER_ID.match(teacher)):
            teacher = None
        return AccessEntry(
            at=datetime.now(UTC),
            route=f"{scope['method']} {route}",
            status=status,
            class_id=class_id,
            day=day,
            teacher_id=teacher,
            key_id=key_id,
        )


_QUERY_NAMES = frozenset({"class_id", "predicted_dt", "date", "token"})


def _query(raw: bytes) -> dict[str, object]:
    """The query values the log reads (the first of each name); cheaper than ``parse_qs`` of
    the whole query on every request."""
    out: dict[str, object] = {}
    for part in raw.decode("latin-1").split("&"):
        name, _, value = part.partition("=")
        if name in _QUERY_NAMES and name not in out:
            out[name] = unquote_plus(value) if "%" in value or "+" in value else value
    return out


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.encode("latin-1")
    for key, value in scope.get("headers", ()):
        if key.lower() == wanted:
            return str(value.decode("latin-1"))
    return None


def _body_fields(scope: Scope, body: bytearray) -> Mapping[str, object]:
    """The fields of a JSON object or form body (nothing if it is neither)."""
    if "json" in (_header(scope, "content-type") or ""):
        try:
            data = orjson.loads(bytes(body))
        except orjson.JSONDecodeError:
            return {}
        return data if isinstance(data, dict) else {}
    text = bytes(body).decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


def _id(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return id_from_text(value) if isinstance(value, str) else None


def _day(value: object) -> str | None:
    """The YYYYMMDD a request named (quotes tolerated), unchecked beyond its form: the route
    itself answers a day that does not exist with 422, and the log keeps what was asked."""
    if not isinstance(value, str):
        return None
    text = value.strip().strip("\"'")
    return text if len(text) == 8 and text.isascii() and text.isdigit() else None


__all__ = ["LOGGED", "OPT_OUT_PATH", "AccessLogMiddleware", "AccessRecorder"]
