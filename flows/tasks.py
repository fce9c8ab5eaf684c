"""Task options the flows share: retries with bounded backoff for I/O, never for clear errors."""

from __future__ import annotations

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
