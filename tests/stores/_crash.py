"""Kill a store write midway, as a crashed process would, without a hook in the stores' code.

SQL stores: an SQLAlchemy ``after_execute`` event on the store's engine raises once the write's
INSERTs have put ``rows`` rows into the open transaction. DynamoDB stores: the store's
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

    def after_execute(
        conn: Any, clause: Any, multiparams: Any, params: Any, options: Any, result: Any
    ) -> None:
        nonlocal written
        if isinstance(clause, sa.Insert):
            written += len(multiparams) if multiparams else 1
            if written >= rows:
                raise SimulatedCrash(f"simulated crash after {written} rows")

    sa.event.listen(engine, "after_execute", after_execute)
    try:
        yield
    finally:
        sa.event.remove(engine, "after_execute", after_execute)


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
