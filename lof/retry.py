"""Bounded exponential backoff with jitter for transient failures."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


def backoff_delays(*, attempts: int, base: float, cap: float) -> list[float]:
    """Delays before retries 1..attempts-1: full jitter over base * 2**n, capped."""
    return [random.uniform(0, min(cap, base * 2**n)) for n in range(attempts - 1)]


def call_with_retries(
    fn: Callable[[], T],
    *,
    is_transient: Callable[[BaseException], bool],
    attempts: int = 5,
    base_delay: float = 0.5,
    max_delay: float = 8.0,
    what: str = "operation",
) -> T:
    """Call ``fn``; retry it while it raises transient errors, at most ``attempts`` times."""
    delays = backoff_delays(attempts=attempts, base=base_delay, cap=max_delay)
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts - 1 or not is_transient(exc):
                raise
            delay = delays[attempt]
            log.warning(
                "%s failed (%s); retry %d/%d in %.1fs",
                what,
                type(exc).__name__,
                attempt + 1,
                attempts - 1,
                delay,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")
