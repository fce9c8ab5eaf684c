"""Keyed pseudonyms of student ids (HMAC-SHA256 with LOF_PSEUDONYM_SECRET).

Why keyed: LEB2 user ids are small integers, so a plain hash of one is reversed by hashing every
possible id; with the secret, a pseudonym can be recomputed only by whoever holds it. The same
pseudonym of a student is used wherever lof keeps a student without their id: the rows MLflow
keeps (training examples, holdouts), the opt-out list and the erasure entries. Without the
secret, artifacts logged to MLflow carry no student key at all, and the commands that must
recognise a student later (opt-out, forget) refuse to run.

The secret must stay the same for as long as the opt-out list is used: lof records a fingerprint
of it with the first opt-out and refuses a different one (``lof.stores.privacy``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

import pandas as pd

from lof.core.config import Settings
from lof.core.errors import ConfigError

SECRET_VARIABLE = "LOF_PSEUDONYM_SECRET"
PSEUDONYM_COLUMN = "user_pseudonym"
_USER = b"lof-user:"
_CHECK = b"lof-secret-check"


class Pseudonyms:
    """The pseudonym of each user id under one secret (cached: the daily run asks again)."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._known: dict[int, str] = {}

    def of(self, user_id: int) -> str:
        found = self._known.get(user_id)
        if found is None:
            digest = hmac.digest(self._key, _USER + str(int(user_id)).encode(), "sha256")
            found = self._known[user_id] = digest[:16].hex()
        return found

    def many(self, user_ids: Iterable[int]) -> list[str]:
        return [self.of(int(u)) for u in user_ids]

    def fingerprint(self) -> str:
        """Tells two secrets apart without revealing either (stored with the opt-out list)."""
        return hmac.digest(self._key, _CHECK, "sha256")[:8].hex()


def optional(settings: Settings) -> Pseudonyms | None:
    secret = settings.pseudonym_secret
    return None if secret is None else Pseudonyms(secret.get_secret_value().encode("utf-8"))


def required(settings: Settings, *, what: str) -> Pseudonyms:
    """The pseudonyms, or a ConfigError naming the variable (``what`` needs them)."""
    found = optional(settings)
    if found is None:
        raise ConfigError(
            f"{SECRET_VARIABLE} is not set; {what} records students by a keyed pseudonym: set it "
            "to a long random string and keep it (the opt-out list is recorded under it)"
        )
    return found


def for_mlflow(frame: pd.DataFrame, pseudonyms: Pseudonyms | None) -> pd.DataFrame:
    """``frame`` as MLflow may keep it: its ``user_id`` column replaced by ``user_pseudonym``
    (dropped without a secret). The rows and every other column are unchanged: the promote
    gate and the drift reference never read a student's id, only their rows."""
    if "user_id" not in frame.columns:
        return frame
    out = frame.drop(columns=["user_id"])
    if pseudonyms is not None:
        position = list(frame.columns).index("user_id")
        out.insert(position, PSEUDONYM_COLUMN, pseudonyms.many(frame["user_id"].tolist()))
    return out


def api_key_id(key: str) -> str:
    """The access log's name of an API key: ``k-`` and the first 12 hex digits of its SHA-256
    (``printf %s "$KEY" | sha256sum | cut -c1-12``). The key itself is never recorded."""
    return "k-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


__all__ = ["PSEUDONYM_COLUMN", "Pseudonyms", "api_key_id", "for_mlflow", "optional", "required"]
