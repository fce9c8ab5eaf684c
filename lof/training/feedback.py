"""The feedback step of a retrain: teachers' verdicts per model version, logged to MLflow.

The records and their sums are ``lof.feedback``'s; this step opens the feedback store and logs
the sums to the active run.
"""

from __future__ import annotations

import logging

from lof.core.config import Settings
from lof.feedback import summarize

log = logging.getLogger(__name__)


def _metric_key(version: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in version)


def log_feedback_metrics(*, settings: Settings) -> dict[str, dict[str, float]]:
    """Log teachers' feedback per model version to the active MLflow run (called by retrain).

    Feedback is a signal about models already in use, not an input of training: a store that
    cannot be read is logged as a warning and never fails the retrain.
    """
    import mlflow

    from lof.stores.feedback import open_feedback_store

    try:
        store = open_feedback_store(settings.store_url or "")
        try:
            summary = summarize(r.model_dump() for r in store.read_all())
        finally:
            store.close()
    except Exception as exc:  # any backend failure: retrain goes on without these metrics
        log.warning("feedback metrics skipped: %s", str(exc).splitlines()[0][:200] if exc else "")
        return {}
    metrics = {
        f"feedback.v{_metric_key(version)}.{name}": value
        for version, row in summary.items()
        for name, value in row.items()
    }
    metrics["feedback.count"] = float(sum(row["count"] for row in summary.values()))
    mlflow.log_metrics(metrics)
    return summary
