"""The one retry policy of lof's adapters: bounded attempts, capped exponential backoff, jitter.

Built on tenacity. What is worth another attempt is decided by the caller's ``is_transient``
(by exception type or status/error code, never by message text); anything else is raised at
once, unchanged, so an unexpected exception keeps its traceback. After the last attempt the
last exception is raised as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

# MySQL client/server codes that mean "try again": too many connections (1040), lock wait
# timeout (1205), deadlock (1213), can't connect (2003, a restart), server gone away (2006),
# lost connection during a query (2013), lost connection on a read (2055).
TRANSIENT_MYSQL_CODES = frozenset({1040, 1205, 1213, 2003, 2006, 2013, 2055})
# PostgreSQL SQLSTATE classes and codes: 08 connection exception, 40001 serialization failure,
# 40P01 deadlock, 53300 too many connections, 57P01-57P03 admin shutdown / crash / starting up.
TRANSIENT_PG_CLASSES = frozenset({"08"})
TRANSIENT_PG_CODES = frozenset({"40001", "40P01", "53300", "57P01", "57P02", "57P03"})
# SQLite result codes: SQLITE_BUSY (5) and SQLITE_LOCKED (6), another writer holds the lock.
TRANSIENT_SQLITE_CODES = frozenset({5, 6})


class TransientError(Exception):
    """An adapter's failure worth another attempt (429, 5xx, timeout, truncated body)."""


def call_with_retries(
    fn: Callable[[], T],
    *,
    is_transient: Callable[[BaseException], bool],
    attempts: int = 5,
    base_delay: float = 0.5,
    max_delay: float = 8.0,
    what: str = "operation",
    min_delay: Callable[[BaseException], float | None] | None = None,
) -> T:
    """Call ``fn``; retry it while it raises transient errors, at most ``attempts`` calls.

    The delay before retry n is uniform in [0, min(max_delay, base_delay * 2**(n-1))] (full
    jitter), raised to ``min_delay(exc)`` when that gives one (e.g. a server's Retry-After).
    """
    jitter = wait_random_exponential(multiplier=base_delay, max=max_delay)

    def wait(state: RetryCallState) -> float:
        delay = jitter(state)
        failure = state.outcome.exception() if state.outcome else None
        floor = min_delay(failure) if min_delay is not None and failure is not None else None
        return max(delay, floor) if floor is not None else delay

    def warn(state: RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome else None
        log.warning(
            "%s failed (%s); retry %d/%d in %.1fs",
            what,
            type(failure).__name__,
            state.attempt_number,
            attempts - 1,
            state.upcoming_sleep,
        )

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait,
        retry=retry_if_exception(is_transient),
        before_sleep=warn,
        reraise=True,
    )
    return retrying(fn)


def is_transient_db_error(exc: BaseException) -> bool:
    """Whether a database error is worth retrying: a dropped connection, a restart, a deadlock.

    Decided by the error's type and the driver's code (pymysql's ``args[0]``, psycopg2's
    ``pgcode``, sqlite3's ``sqlite_errorcode``), never by its text.
    """
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    orig = exc.orig
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and not isinstance(args[0], bool):
        return args[0] in TRANSIENT_MYSQL_CODES
    sqlite_code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int):
        return sqlite_code & 0xFF in TRANSIENT_SQLITE_CODES
    pgcode = getattr(orig, "pgcode", None)
    if isinstance(pgcode, str) and pgcode:
        return pgcode in TRANSIENT_PG_CODES or pgcode[:2] in TRANSIENT_PG_CLASSES
    # psycopg2 reports a connection that failed or dropped (refused, closed by the server) as
    # an OperationalError without a SQLSTATE: nothing answered, so it may on the next try.
    return _is_psycopg2_operational(orig) and pgcode is None


def _is_psycopg2_operational(orig: BaseException | None) -> bool:
    try:
        import psycopg2
    except ImportError:
        return False
    return isinstance(orig, psycopg2.OperationalError)


def is_outage(exc: BaseException) -> bool:
    """Whether a whole run failed because a system was unreachable or overloaded, so running it
    again later may succeed: a transient database error, a refused or dropped connection, a
    timeout, an adapter's ``TransientError``, AWS throttling or 5xx, MLflow unavailable.

    Looks through the chain of causes (adapters wrap their last failure in a ``LofError``); a
    ``DataError`` or ``ConfigError`` is never an outage, whatever it was raised from.
    """
    from lof.core.errors import ConfigError, DataError

    if isinstance(exc, DataError | ConfigError):
        return False
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if (
            isinstance(current, TransientError | ConnectionError | TimeoutError)
            or is_transient_db_error(current)
            or _is_network_error(current)
            or _is_aws_unavailable(current)
        ):
            return True
        current = current.__cause__ or current.__context__
    return mlflow_unavailable(exc)


def _is_network_error(exc: BaseException) -> bool:
    import httpx
    import requests

    return isinstance(
        exc,
        httpx.TransportError
        | requests.ConnectionError
        | requests.Timeout
        | requests.exceptions.RetryError,
    )


_AWS_RETRY_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
        "ServiceUnavailable",
        "InternalServerError",
        "InternalError",
    }
)


def _is_aws_unavailable(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    if isinstance(exc, ConnectionError | HTTPClientError):
        return True
    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    return error.get("Code") in _AWS_RETRY_CODES or int(status) >= 500


_UNAVAILABLE_CODES = frozenset(
    {"TEMPORARILY_UNAVAILABLE", "RESOURCE_EXHAUSTED", "REQUEST_LIMIT_EXCEEDED", "DEADLINE_EXCEEDED"}
)
"""MLflow error codes of a server that is there but cannot answer now (503, 429, 504)."""


def mlflow_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) means the tracking server or registry
    could not be reached or answered with a server-side error, by type and error code.

    MLflow's REST client wraps a refused connection or a timeout in a plain
    ``MlflowException`` raised while handling the ``requests`` error, so the chain is walked;
    ``RestException`` is an error response of the server itself.
    """
    import requests
    from mlflow.exceptions import MlflowException, RestException

    network = (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.RetryError,
        ConnectionError,
        TimeoutError,
    )
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, network):
            return True
        if isinstance(current, RestException) and current.get_http_status_code() >= 500:
            return True
        if isinstance(current, MlflowException) and current.error_code in _UNAVAILABLE_CODES:
            return True
        current = current.__cause__ or current.__context__
    return False
