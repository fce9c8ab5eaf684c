"""How the small stores beside the predictions (feedback, webhook deliveries) call a backend:
one transaction retried on transient database errors (lof.retry), and any backend failure as one
StoreError line naming LOF_STORE_URL (password redacted by the caller), never a driver trace."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError

from lof.core.errors import StoreError
from lof.core.retry import call_with_retries, is_transient_db_error

T = TypeVar("T")


def run_sql(fn: Callable[[], T], *, url: str, what: str) -> T:
    """Run one transaction, retried on dropped connections and deadlocks (lof.retry)."""
    try:
        return call_with_retries(fn, is_transient=is_transient_db_error, attempts=3, what=what)
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        reason = " ".join(str(orig).split())[:200]
        raise StoreError(
            f"{what} failed on LOF_STORE_URL={url!r}: "
            f"{type(orig).__name__}: {reason}; check the database server and retry"
        ) from None


def run_dynamo(fn: Callable[[], T], *, url: str, table: str, what: str) -> T:
    """Run DynamoDB calls; a client or connection error is one StoreError line."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise StoreError(
            f"{what} failed on LOF_STORE_URL={url!r} table {table}: "
            f"{error.get('Code', '')}: {' '.join(str(error.get('Message', '')).split())[:200]}"
        ) from None
    except BotoCoreError as exc:
        raise StoreError(
            f"{what} failed on LOF_STORE_URL={url!r}: {type(exc).__name__}; check the "
            "endpoint, region and credentials"
        ) from None


__all__ = ["run_dynamo", "run_sql"]
