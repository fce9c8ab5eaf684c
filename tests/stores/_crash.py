"""Kill a store write midway, as a crashed process would, without a hook in the stores' code.

SQL stores: SQLAlchemy events on the store's engine raise once the write's INSERTs (Core
statements, or driver-level ones as the SQLite fast path sends) have put ``rows`` rows into the
open transaction. DynamoDB stores: the store's
``_batch_write`` sends only the first ``rows`` put requests, then raises (items already sent stay,
as they would after a real crash).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa


class SimulatedCrash(RuntimeError):
    """The write was stopped by ``crash_after_rows``."""


@contextmanager
def crash_after_rows(store: Any, rows: int) -> Iterator[None]:
    """Within the block, the store's writes stop with SimulatedCrash after ``rows`` rows."""
    engine = getattr(store, "engine", None)
    if isinstance(engine, sa.Engine):
        with _sql_crash(engine, rows):
            yield
    else:
        with _dynamodb_crash(store, rows):
            yield


@contextmanager
def _sql_crash(engine: sa.Engine, rows: int) -> Iterator[None]:
    written = 0

    def count(inserted: int) -> None:
        nonlocal written
        written += inserted
        if written >= rows:
            raise SimulatedCrash(f"simulated crash after {written} rows")

    def after_execute(
        conn: Any, clause: Any, multiparams: Any, params: Any, options: Any, result: Any
    ) -> None:
        if isinstance(clause, sa.Insert):
            count(len(multiparams) if multiparams else 1)

    def after_cursor_execute(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if context.compiled is None and statement.lstrip().upper().startswith("INSERT"):
            count(len(parameters) if many else 1)

    events = (("after_execute", after_execute), ("after_cursor_execute", after_cursor_execute))
    for name, listener in events:
        sa.event.listen(engine, name, listener)
    try:
        yield
    finally:
        for name, listener in events:
            sa.event.remove(engine, name, listener)


@contextmanager
def _dynamodb_crash(store: Any, rows: int) -> Iterator[None]:
    batch_write = store._batch_write
    sent = 0

    def crashing(requests: list[dict[str, Any]], *, what: str) -> None:
        nonlocal sent
        puts = [r for r in requests if "PutRequest" in r]
        if sent + len(puts) < rows:
            sent += len(puts)
            batch_write(requests, what=what)
            return
        kept = rows - sent
        batch_write([r for r in requests if "PutRequest" not in r] + puts[:kept], what=what)
        raise SimulatedCrash(f"simulated crash after {rows} rows")

    store._batch_write = crashing
    try:
        yield
    finally:
        del store._batch_write
