"""Class-day bodies in memory, and gzip negotiation.

A class-day's body is built once, when the day is written (gzip, with an ETag), and read back with
one key lookup; ``BodyCache`` keeps recent bodies for ``cache_seconds`` as a convenience. ETag and
Last-Modified let the LEB2 backend poll cheaply (304); gzip goes to clients that accept it: a
300-student class is ~200 kB of JSON (~35 kB gzip).
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from collections import OrderedDict
from datetime import UTC, date, datetime
from email.utils import formatdate, parsedate_to_datetime

from starlette.datastructures import Headers

CACHE_SECONDS = 60.0
CACHE_BYTES = 32 * 2**20
GZIP_MIN_BYTES = 1024
# Data answered for one API key: a shared cache must neither keep it nor serve it to another key;
# the client's own cache may keep it and revalidates each time (ETag / If-None-Match, 304).
PRIVATE_HEADERS = {"cache-control": "private, no-cache", "vary": "x-api-key"}


class Body:
    """One class-day's JSON body (plain and/or gzip, each made once) and its validators."""

    __slots__ = ("_plain", "etag", "gzip", "model_version", "modified")

    def __init__(
        self,
        plain: bytes | None,
        *,
        packed: bytes | None = None,
        etag: str | None = None,
        modified: datetime | None = None,
        model_version: str = "",
    ) -> None:
        self._plain = plain
        self.gzip = packed
        self.etag = etag or '"' + hashlib.sha256(plain or b"").hexdigest()[:32] + '"'
        self.modified = modified
        self.model_version = model_version  # the X-Lof-Model-Version header

    @property
    def plain(self) -> bytes:
        if self._plain is None:
            self._plain = gzip.decompress(self.gzip or b"")
        return self._plain

    @property
    def size(self) -> int:
        if self._plain is None:
            return 8 * len(self.gzip or b"")  # bound: its plain form, once a client asks for it
        return 2 * len(self._plain)  # bound: the gzip form of JSON is smaller than the plain one

    def headers(self) -> dict[str, str]:
        out = {"etag": self.etag}
        if self.modified is not None:
            out["last-modified"] = formatdate(self.modified.timestamp(), usegmt=True)
        return out

    def not_modified(self, headers: Headers) -> bool:
        """RFC 9110: If-None-Match wins over If-Modified-Since."""
        match = headers.get("if-none-match")
        if match is not None:
            tags = {t.strip().removeprefix("W/") for t in match.split(",")}
            return "*" in tags or self.etag in tags
        since = headers.get("if-modified-since")
        if since and self.modified is not None:
            try:
                parsed = parsedate_to_datetime(since)
            except (TypeError, ValueError):
                return False
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return self.modified.replace(microsecond=0) <= parsed
        return False


def compress(data: bytes) -> bytes:
    """gzip with a fixed mtime, so one body always compresses to the same bytes."""
    return gzip.compress(data, compresslevel=6, mtime=0)


class BodyCache:
    """Recent class-day bodies, bounded in bytes and age.

    The LEB2 backend asks for the same class-day many times while predictions change once a day
    (03:00), so a short-lived copy saves the store read; a rewritten day (backfill) is seen after
    at most ``ttl`` seconds. Only found days are kept, never a 404.
    """

    def __init__(self, *, ttl: float, max_bytes: int) -> None:
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[tuple[int, date], tuple[float, Body]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, date]) -> Body | None:
        if self.ttl <= 0:
            return None
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[0] < time.monotonic():
                self._drop(key)
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: tuple[int, date], body: Body) -> None:
        if self.ttl <= 0 or body.size > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                self._drop(key)
            self._items[key] = (time.monotonic() + self.ttl, body)
            self.size += body.size
            while self.size > self.max_bytes:
                self._drop(next(iter(self._items)))

    def _drop(self, key: tuple[int, date]) -> None:
        self.size -= self._items.pop(key)[1].size


def wants_gzip(accept_encoding: str) -> bool:
    for part in accept_encoding.lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


__all__ = [
    "CACHE_BYTES",
    "CACHE_SECONDS",
    "GZIP_MIN_BYTES",
    "PRIVATE_HEADERS",
    "Body",
    "BodyCache",
    "compress",
    "wants_gzip",
]
