"""Converting a features store written in the former layout (a full state row per student per
day) into the compact one of ``lof.stores.compact`` (``lof migrate-store``).

Each former day is read (increments and states, exactly as stored) and written again through
the compact store, oldest first, so the deltas and checkpoints come out as if the days had been
written by the current code; only then are the former rows deleted. A migration interrupted
half-way is simply run again: rewriting a day is idempotent and the former rows are still
there. The predictions store is not touched (its layout is unchanged).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa

from lof.core.calendar import format_day
from lof.features import state as feature_state
from lof.features.definitions import COUNT_COLUMNS
from lof.stores import base
from lof.stores.dynamo_items import Item

if TYPE_CHECKING:  # boto3 is imported only when a DynamoDB store is migrated
    from lof.stores.dynamodb import DynamoFeatureStore


@dataclass
class Migration:
    """What a migration did: former days converted and former rows/items removed."""

    days: int
    removed: int


def migrate_store(url: str, *, progress: Callable[[date], None] | None = None) -> Migration:
    """Convert the features store at ``url`` in place (a no-op on a current store)."""
    if url.startswith("dynamodb:"):
        return _migrate_dynamodb(url, progress)
    return _migrate_sql(url, progress)


# --- SQL --------------------------------------------------------------------------------------


def _migrate_sql(url: str, progress: Callable[[date], None] | None) -> Migration:
    from lof.stores import sql

    store = sql.SqlFeatureStore(url, legacy_ok=True)
    tables = (sql.LEGACY_INCREMENTS, sql.LEGACY_STATES, sql.LEGACY_FEATURE_DAYS)

    def present() -> bool:
        return sa.inspect(store.engine).has_table(sql.LEGACY_FEATURE_DAYS.name)

    if not store._run(present, what="checking the features store layout"):
        return Migration(days=0, removed=0)

    def days() -> list[date]:
        with store.engine.connect() as conn:
            column = sql.LEGACY_FEATURE_DAYS.c.day
            return [
                base.as_date(v) for v in conn.execute(sa.select(column).order_by(column)).scalars()
            ]

    def rows(table: sa.Table, day: date) -> pd.DataFrame:
        query = sa.select(*[c for c in table.c if c.name != "day"]).where(table.c.day == day)
        with store.engine.connect() as conn:
            found = [dict(r._mapping) for r in conn.execute(query).fetchall()]
        for row in found:
            row["activity_ids"] = base.decode_ids(row["activity_ids"])
            row["session_ids"] = base.decode_ids(row["session_ids"])
        return feature_state.engagement_frame(found)

    former = store._run(days, what="listing the former feature days")
    for day in former:
        increments = store._run(
            partial(rows, sql.LEGACY_INCREMENTS, day), what="reading a former day"
        )
        states = store._run(partial(rows, sql.LEGACY_STATES, day), what="reading a former day")
        store.write_day(day=day, increments=increments, states=states)
        if progress is not None:
            progress(day)

    def drop() -> int:
        removed = 0
        with store.engine.begin() as conn:
            for table in tables:
                if sa.inspect(conn).has_table(table.name):
                    removed += int(
                        conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                    )
                    table.drop(conn)
        return removed

    removed = store._run(drop, what="removing the former feature tables")
    store.close()
    return Migration(days=len(former), removed=removed)


# --- DynamoDB ---------------------------------------------------------------------------------


def _migrate_dynamodb(url: str, progress: Callable[[date], None] | None) -> Migration:
    from lof.stores.dynamodb import DynamoFeatureStore

    store = DynamoFeatureStore(url, legacy_ok=True)

    def run() -> Migration:
        manifests = store._query("DAY")
        former = sorted(manifests, key=lambda item: item["sk"]["S"])
        for item in former:
            day = base.parse_day_key(item["sk"]["S"])
            gen = item["gen"]["S"]
            classes = base.decode_ids(item["classes"]["S"])
            frames = {part: _dynamo_rows(store, part, day, gen, classes) for part in ("I", "S")}
            store.write_day(day=day, increments=frames["I"], states=frames["S"])
            if progress is not None:
                progress(day)
        removed = 0
        for item in former:
            day = base.parse_day_key(item["sk"]["S"])
            gens = [item["gen"]["S"]]
            if "prev_gen" in item:
                gens.append(item["prev_gen"]["S"])
            keys = [{"pk": item["pk"], "sk": item["sk"]}]
            for gen in gens:
                for class_id in base.decode_ids(item["classes"]["S"]) + _prev_classes(item):
                    for part in ("I", "S"):
                        pk = f"{part}#{class_id}#{format_day(day)}#{gen}"
                        keys += [
                            {"pk": i["pk"], "sk": i["sk"]} for i in store._query(pk, keys_only=True)
                        ]
            store._batch_write(
                [{"DeleteRequest": {"Key": k}} for k in keys], what="removing former items"
            )
            removed += len(keys)
        for pending in store._query("PENDING", keys_only=True):
            store.client.delete_item(
                TableName=store.table, Key={"pk": pending["pk"], "sk": pending["sk"]}
            )
        return Migration(days=len(former), removed=removed)

    return store._guard(run, what=f"migrating {store.table}")


def _prev_classes(item: Item) -> tuple[int, ...]:
    return base.decode_ids(item["prev_classes"]["S"]) if "prev_classes" in item else ()


def _dynamo_rows(
    store: DynamoFeatureStore, part: str, day: date, gen: str, classes: tuple[int, ...]
) -> pd.DataFrame:
    rows = []
    n = len(COUNT_COLUMNS)
    for class_id in classes:
        for item in store._query(f"{part}#{class_id}#{format_day(day)}#{gen}"):
            values = base.loads(item["data"]["S"])
            row: dict[str, int | tuple[int, ...]] = {
                "class_id": class_id,
                "user_id": int(item["sk"]["S"]),
            }
            row.update(zip(COUNT_COLUMNS, values[:n], strict=True))
            row["activity_ids"] = tuple(values[n])
            row["session_ids"] = tuple(values[n + 1])
            rows.append(row)
    return feature_state.engagement_frame(rows)
