"""Teachers' feedback, stored next to the predictions (same LOF_STORE_URL, both backends).

* SQL: table ``lof_feedback``, primary key (class_id, day, user_id, teacher_id), so one class's
  export (optionally one day) is an index range.
* DynamoDB: table ``<prefix>feedback``, ``pk="FB#<class>"``, ``sk="<YYYYMMDD>#<user>#<teacher>"``,
  so one class's export is one Query; ``read_all`` (once per retrain) is a Scan of this small
  table only.

``put`` is idempotent per key: the same verdict and note again change nothing (not even
``updated_at``); a different one replaces the stored record.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Protocol

import sqlalchemy as sa

from lof.feedback import FeedbackRecord
from lof.stores.small_tables import DynamoRecordTable, SqlRecordTable, is_dynamodb

METADATA = sa.MetaData()
FEEDBACK = sa.Table(
    "lof_feedback",
    METADATA,
    sa.Column("class_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("teacher_id", sa.String(64), primary_key=True),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("at_risk", sa.Boolean, nullable=False),
    sa.Column("source", sa.String(8), nullable=False),
    sa.Column("updated_at", sa.String(20), nullable=False),
)
_KEY = ("predicted_dt", "user_id", "teacher_id")
_CONTENT = ("verdict", "note", "model_version", "at_risk")


class FeedbackStore(Protocol):
    def put(self, record: FeedbackRecord) -> FeedbackRecord:
        """Store ``record`` under its key; returns what is stored (unchanged if identical)."""

    def read_class(self, *, class_id: int, day: date | None = None) -> list[FeedbackRecord]:
        """The class's feedback (one day or all), by day, user_id, teacher_id."""

    def read_all(self) -> list[FeedbackRecord]:
        """Every stored record (retrain's per-version summary)."""

    def erase_users(self, user_ids: Collection[int]) -> int:
        """Delete every verdict on these students; returns how many."""

    def purge_before(self, cut: date) -> int:
        """Delete the verdicts on predictions of days before ``cut``; returns how many."""

    def close(self) -> None: ...


class SqlFeedbackStore(SqlRecordTable[FeedbackRecord]):
    """Feedback in the predictions' SQL database."""

    what = "feedback"
    table = FEEDBACK
    record_type = FeedbackRecord
    content = _CONTENT
    day_field = "predicted_dt"

    def read_class(self, *, class_id: int, day: date | None = None) -> list[FeedbackRecord]:
        query = sa.select(FEEDBACK).where(FEEDBACK.c.class_id == class_id)
        if day is not None:
            query = query.where(FEEDBACK.c.day == day)
        return self.select(query.order_by(*FEEDBACK.primary_key.columns))

    def read_all(self) -> list[FeedbackRecord]:
        return self.select(sa.select(FEEDBACK).order_by(*FEEDBACK.primary_key.columns))


class DynamoFeedbackStore(DynamoRecordTable[FeedbackRecord]):
    """Feedback in a DynamoDB table next to the predictions table."""

    kind = "feedback"
    partition = "FB"
    record_type = FeedbackRecord
    key_fields = _KEY
    content = _CONTENT

    def read_class(self, *, class_id: int, day: date | None = None) -> list[FeedbackRecord]:
        return self.read_partition(class_id, day=day)


def open_feedback_store(url: str) -> FeedbackStore:
    """The feedback store of LOF_STORE_URL (a missing table created where the URL allows)."""
    if is_dynamodb(url):
        return DynamoFeedbackStore(url)
    return SqlFeedbackStore(url)


__all__ = ["DynamoFeedbackStore", "FeedbackStore", "SqlFeedbackStore", "open_feedback_store"]
