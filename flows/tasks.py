"""Task options the flows share: retries with bounded backoff for I/O, never for clear errors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from lof.errors import LofError


def retry_unless_clear_failure(task: Any, task_run: Any, state: Any) -> bool:
    """Retry unexpected errors only: a LofError already went through the adapter's own retries."""
    try:
        state.result()
    except LofError:
        return False
    except Exception:
        return True
    return False


def io_task(*, backoff_seconds: float) -> Callable[[Callable[..., Any]], Any]:
    """A task that talks to another system: two retries, exponential backoff with jitter."""
    return task(
        retries=2,
        retry_delay_seconds=exponential_backoff(backoff_factor=backoff_seconds),
        retry_jitter_factor=0.5,
        retry_condition_fn=retry_unless_clear_failure,
        cache_policy=NO_CACHE,
    )


# Flow time limits: a hung run fails as TimedOut (and notifies) instead of blocking later days.
DAILY_TIMEOUT_SECONDS = 3 * 3600
BACKFILL_TIMEOUT_SECONDS = 24 * 3600
RETRAIN_TIMEOUT_SECONDS = 6 * 3600
PROMOTE_TIMEOUT_SECONDS = 3600


def send_lof_logs_to_prefect() -> None:
    """Route the ``lof`` library's loggers to the flow run's logs (the Prefect UI).

    The same as ``PREFECT_LOGGING_EXTRA_LOGGERS=lof``, done when a flow starts rather than at
    import, so importing ``lof`` configures nothing. Idempotent.
    """
    extra = logging.getLogger("prefect.extra")
    target = logging.getLogger("lof")
    for handler in extra.handlers:
        if handler not in target.handlers:
            target.addHandler(handler)
    if target.level == logging.NOTSET:
        target.setLevel(extra.level or logging.INFO)
