"""Backfill: run the daily computation for each day of a past range, in order."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.daily_scoring import daily_scoring
from flows.parameters import Day, backfill_run_name
from flows.tasks import BACKFILL_TIMEOUT_SECONDS, send_lof_logs_to_prefect
from lof.core.calendar import days_between, format_day, parse_day
from lof.core.errors import DataError


@flow(name="backfill", flow_run_name=backfill_run_name, timeout_seconds=BACKFILL_TIMEOUT_SECONDS)
def backfill(start: Day, end: Day) -> list[dict[str, Any]]:
    """Score every day from ``start`` to ``end`` (YYYYMMDD, both included)."""
    send_lof_logs_to_prefect()
    first, last = parse_day(start, what="--start"), parse_day(end, what="--end")
    if last < first:
        raise DataError(f"--end {end} is before --start {start}; give the earlier day first")
    logger = get_run_logger()
    results = []
    for day in days_between(first, last):
        logger.info("backfilling %s", format_day(day))
        results.append(daily_scoring(date=format_day(day)))
    return results
