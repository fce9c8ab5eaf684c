"""Teachers' actions (``lof.interventions``), stored next to the predictions (LOF_STORE_URL).

* SQL: table ``lof_interventions``, primary key (class_id, user_id, teacher_id, day, action),
  an index on (class_id, day) for a class's export.
* DynamoDB: table ``<prefix>interventions``, ``pk="IV#<class>"``,
  ``sk="<YYYYMMDD>#<user>#<teacher>#<action>"``: one class's export is one Query; erasure and
  the retention purge a keys-only Scan of this small table, like the feedback's.

``put`` is idempotent per key: the same note again changes nothing (not even ``updated_at``); a
different note replaces the stored one.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Protocol

import sqlalchemy as sa

from lof.interventions import InterventionRecord
from lof.stores.small_tables import DynamoRecordTable, SqlRecordTable, is_dynamodb

METADATA = sa.MetaData()
INTERVENTIONS = sa.Table(
    "lof_interventions",
    METADATA,
    sa.Column("class_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("teacher_id", sa.String(64), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("action", sa.String(16), primary_key=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("source", sa.String(8), nullable=False),
    sa.Column("updated_at", sa.String(20), nullable=False),
    sa.Index("lof_interventions_class_day", "class_id", "day"),
)
_KEY = ("action_dt", "user_id", "teacher_id", "action")
_CONTENT = ("note",)


class InterventionStore(Protocol):
    def put(self, record: InterventionRecord) -> InterventionRecord:
        """Store ``record`` under its key; returns what is stored (unchanged if identical)."""

    def read_class(self, *, class_id: int) -> list[InterventionRecord]:
        """The class's actions, by day, user_id, teacher_id, action."""

    def read_all(self) -> list[InterventionRecord]:
        """Every stored action (the outcome report of a semester)."""

    def erase_users(self, user_ids: Collection[int]) -> int:
        """Delete every action on these students; returns how many."""

    def purge_before(self, cut: date) -> int:
        """Delete the actions of days before ``cut``; returns how many."""

    def close(self) -> None: ...


class SqlInterventionStore(SqlRecordTable[InterventionRecord]):
    """Actions in the predictions' SQL database."""

    what = "interventions"
    table = INTERVENTIONS
    record_type = InterventionRecord
    key_fields = _KEY
    content = _CONTENT
    day_field = "action_dt"

    def read_class(self, *, class_id: int) -> list[InterventionRecord]:
        query = sa.select(INTERVENTIONS).where(INTERVENTIONS.c.class_id == class_id)
        return sorted(self.select(query), key=self.order)

    def read_all(self) -> list[InterventionRecord]:
        return sorted(self.select(sa.select(INTERVENTIONS)), key=self.order)


class DynamoInterventionStore(DynamoRecordTable[InterventionRecord]):
    """Actions in a DynamoDB table next to the predictions table."""

    kind = "interventions"
    partition = "IV"
    record_type = InterventionRecord
    key_fields = _KEY
    content = _CONTENT

    def read_class(self, *, class_id: int) -> list[InterventionRecord]:
        return self.read_partition(class_id)


def open_intervention_store(url: str) -> InterventionStore:
    """The interventions store of LOF_STORE_URL (a missing table created where the URL allows)."""
    if is_dynamodb(url):
        return DynamoInterventionStore(url)
    return SqlInterventionStore(url)


__all__ = [
    "DynamoInterventionStore",
    "InterventionStore",
    "SqlInterventionStore",
    "open_intervention_store",
]
