"""What the flows share: task options, time limits, the run's settings, logging."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from lof.core.config import Settings, get_settings
from lof.registry.client import bound_http


def io_task() -> Callable[[Callable[..., Any]], Any]:
    """A task that talks to another system, without Prefect retries.

    Each adapter call already retries what is transient (lof.retry, botocore, MlflowClient):
    a second layer here would multiply an outage's wait.
    """
    return task(cache_policy=NO_CACHE)


def run_settings() -> Settings:
    """The settings of a flow run, with MLflow's HTTP retries bounded by them."""
    settings = get_settings()
    bound_http(settings)
    return settings


# Flow time limits: a hung run fails as TimedOut (and notifies) instead of blocking later days.
DAILY_TIMEOUT_SECONDS = 3 * 3600
BACKFILL_TIMEOUT_SECONDS = 24 * 3600
RETRAIN_TIMEOUT_SECONDS = 6 * 3600
PROMOTE_TIMEOUT_SECONDS = 3600
PURGE_TIMEOUT_SECONDS = 3 * 3600

# The daily run's own retry of an outage (lof.retry.is_outage): up to 3 attempts, at least
# 10 minutes apart, so a restart of a server at 03:00 does not leave the day unscored.
DAILY_ATTEMPTS = 3
DAILY_RETRY_DELAY_SECONDS = 600.0


def outage_attempts() -> int:
    """How many times a daily run tries a day through an outage: ``DAILY_ATTEMPTS`` for a
    deployment's run (the schedule, nobody watching), once for the CLI (someone is watching
    and reruns the command when the system is back)."""
    from prefect.runtime import deployment

    return DAILY_ATTEMPTS if deployment.id else 1


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
