"""Purge: remove every store's days before a cut (what LOF_RETENTION_DAYS does each day)."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.parameters import Day, purge_run_name
from flows.tasks import PURGE_TIMEOUT_SECONDS, io_task, run_settings, send_lof_logs_to_prefect
from lof.core.calendar import format_day, parse_day
from lof.core.config import Settings
from lof.governance import erasure as governance


@io_task()
def purge_stores(settings: Settings, before: str) -> dict[str, int]:
    return governance.purge(settings, parse_day(before, what="--before")).counts


@flow(name="purge", flow_run_name=purge_run_name, timeout_seconds=PURGE_TIMEOUT_SECONDS)
def purge(before: Day) -> dict[str, int]:
    """Remove the predictions, bodies, feedback, hidden-student records, access log entries and
    feature days before ``before`` (YYYYMMDD); the features store keeps what the next day needs."""
    send_lof_logs_to_prefect()
    settings = run_settings()
    removed = purge_stores(settings, before)
    get_run_logger().info(
        "purged before %s: %s",
        format_day(parse_day(before, what="--before")),
        ", ".join(f"{name} {count}" for name, count in removed.items()),
    )
    return removed
