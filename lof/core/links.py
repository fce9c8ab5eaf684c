"""Signed, expiring links to a class page: the LMS cannot send ``x-api-key`` from a browser.

A token is ``<payload>.<signature>``, both base64url without padding: the payload is compact
JSON ``{"c": class_id, "e": expiry (unix seconds), "t": teacher id (optional)}`` and the
signature HMAC-SHA256 over a versioned prefix and the payload with ``LOF_LINK_SECRET``. Nothing
is stored server-side: rotating the secret revokes every link.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlencode, urlparse

import orjson
from pydantic import SecretStr

from lof.core.errors import ConfigError, DataError

if TYPE_CHECKING:
    from typing_extensions import TypeIs

_PREFIX = b"lof-class-link-v1."
# \A and \Z: "$" would also match before a final newline ("t-1\n" is not "t-1")
TEACHER_ID = re.compile(r"\A[A-Za-z0-9_.@+-]{1,64}\Z")
TEACHER_ID_FORM = "1-64 letters, digits or _ . @ + -"
MAX_TOKEN_CHARS = 600
_KEYWORDS = {"'self'", "'none'"}
_ORIGIN = re.compile(r"^https?://(\*\.)?[A-Za-z0-9.-]+(:\d{1,5})?$")

LinkProblem = Literal["missing", "malformed", "tampered", "expired", "other_class"]


class LinkRefused(Exception):
    """A token that does not open this page; ``problem`` says why (shown to the teacher)."""

    def __init__(self, problem: LinkProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message


@dataclass(frozen=True)
class LinkClaims:
    class_id: int
    expires_at: int
    teacher_id: str | None = None


def valid_teacher_id(value: object) -> TypeIs[str]:
    """Whether ``value`` is a teacher id: ``TEACHER_ID_FORM``, nothing before or after."""
    return isinstance(value, str) and TEACHER_ID.fullmatch(value) is not None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _secret_bytes(secret: SecretStr | None) -> bytes:
    if secret is None or not secret.get_secret_value():
        raise ConfigError(
            "LOF_LINK_SECRET is not set; set it to a long random string (the same for the API "
            "and `lof link`) to sign class page links"
        )
    return secret.get_secret_value().encode("utf-8")


def _signature(key: bytes, payload: str) -> bytes:
    return hmac.new(key, _PREFIX + payload.encode("ascii"), hashlib.sha256).digest()


def sign(
    *,
    secret: SecretStr | None,
    class_id: int,
    ttl_seconds: int,
    teacher_id: str | None = None,
    now: float | None = None,
) -> tuple[str, LinkClaims]:
    """A token for ``class_id`` valid ``ttl_seconds`` from ``now``, and what it claims."""
    if teacher_id is not None and not valid_teacher_id(teacher_id):
        raise ValueError(f"teacher_id must be {TEACHER_ID_FORM}; got {teacher_id[:70]!r}")
    key = _secret_bytes(secret)
    claims = LinkClaims(
        class_id=int(class_id),
        expires_at=int(time.time() if now is None else now) + int(ttl_seconds),
        teacher_id=teacher_id,
    )
    body: dict[str, object] = {"c": claims.class_id, "e": claims.expires_at}
    if teacher_id is not None:
        body["t"] = teacher_id
    payload = _b64(orjson.dumps(body))
    return f"{payload}.{_b64(_signature(key, payload))}", claims


def verify(
    token: str | None, *, secret: SecretStr | None, class_id: int, now: float | None = None
) -> LinkClaims:
    """The claims of a valid, unexpired token for ``class_id``; LinkRefused otherwise.

    The signature is checked before anything in the payload is trusted.
    """
    key = _secret_bytes(secret)
    if not token:
        raise LinkRefused("missing", "This page needs a signed link; none was given.")
    payload, dot, signature = token.partition(".")
    if not dot or len(token) > MAX_TOKEN_CHARS:
        raise LinkRefused("malformed", "This link is incomplete or damaged.")
    if not (payload.isascii() and signature.isascii()):
        raise LinkRefused("malformed", "This link is incomplete or damaged.")
    # the canonical text of the signature is compared, so no two tokens share one signature
    expected = _b64(_signature(key, payload))
    if not hmac.compare_digest(signature.encode("ascii"), expected.encode("ascii")):
        raise LinkRefused("tampered", "This link is not valid (it was changed or mistyped).")
    try:
        body = orjson.loads(_unb64(payload))
        claims = LinkClaims(
            class_id=int(body["c"]), expires_at=int(body["e"]), teacher_id=body.get("t")
        )
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise LinkRefused("malformed", "This link is incomplete or damaged.") from None
    if claims.class_id != class_id:
        raise LinkRefused("other_class", "This link opens another class's page, not this one.")
    if claims.expires_at <= (time.time() if now is None else now):
        raise LinkRefused("expired", "This link has expired.")
    return claims


_TTL_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
TTL_MIN, TTL_MAX = 60, 90 * 86_400


def parse_ttl(value: str, *, what: str = "ttl") -> int:
    """Seconds from ``3600``, ``45m``, ``8h`` or ``7d``; DataError outside 1 minute..90 days."""
    text = value.strip().lower()
    unit = _TTL_UNITS.get(text[-1:]) if text else None
    number = text[:-1] if unit else text
    if not number.isdigit():
        raise DataError(f"{what} {value!r} is not a duration; expected e.g. 3600, 45m, 8h or 7d")
    seconds = int(number) * (unit or 1)
    if not TTL_MIN <= seconds <= TTL_MAX:
        raise DataError(f"{what} {value!r} is out of range; use 1 minute to 90 days")
    return seconds


def class_page_url(*, base_url: str, class_id: int, token: str) -> str:
    """The page URL a teacher opens (the token in the query, so the LMS can embed it)."""
    return f"{base_url.rstrip('/')}/classes/{class_id}/report?{urlencode({'token': token})}"


def frame_ancestors_directive(value: str) -> str:
    """The CSP ``frame-ancestors`` sources from LOF_FRAME_ANCESTORS (spaces or commas).

    ``'self'``/``'none'`` (quotes optional) or http(s) origins such as https://lms.example.ac.th
    or https://*.example.ac.th; anything else raises ValueError naming it.
    """
    sources: list[str] = []
    for item in value.replace(",", " ").split():
        quoted = item if item.startswith("'") else f"'{item}'"
        if quoted.lower() in _KEYWORDS:
            sources.append(quoted.lower())
            continue
        parsed = urlparse(item)
        if not _ORIGIN.match(item) or parsed.path:
            raise ValueError(
                f"LOF_FRAME_ANCESTORS holds {item[:80]!r}: expected origins such as "
                "https://lms.example.ac.th, or 'self' / 'none'"
            )
        sources.append(item)
    if not sources:
        return "'none'"
    if "'none'" in sources and len(sources) > 1:
        raise ValueError("LOF_FRAME_ANCESTORS: 'none' cannot be combined with origins")
    return " ".join(sources)


__all__ = [
    "LinkClaims",
    "LinkRefused",
    "class_page_url",
    "frame_ancestors_directive",
    "parse_ttl",
    "sign",
    "valid_teacher_id",
    "verify",
]
