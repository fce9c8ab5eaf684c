"""The SQLite insert path of the SQL stores (``sql.insert_rows``) against SQLAlchemy's own."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime
from pathlib import Path

import sqlalchemy as sa

from lof.stores import sql

ROWS = {
    sql.PREDICTIONS: [
        {
            "class_id": 3,
            "day": date(2025, 3, 6),
            "user_id": user,
            "predicted_label": 2,
            "predicted_prob": '{"1":0.25,"2":0.75}',
            "risk_prob": 0.1 + 0.2,
            "at_risk": user % 2 == 0,
            "required_level": 3,
            "model_name": "lof-outcome",
            "model_version": "7",
            "features": '{"avglevel":2.5}',
            "reasons": "[]",
        }
        for user in (10, 11, 12)
    ],
    sql.PREDICTION_BODIES: [
        {
            "class_id": 3,
            "day": date(2025, 3, 6),
            "etag": '"abc"',
            "written_at": datetime(2025, 3, 7, 3, 0, 1),
            "model_version": "7",
            "body": b"\x1f\x8b\x00",
        }
    ],
}


def stored(path: Path, table: sa.Table) -> list[tuple]:
    """Each stored value with SQLite's own type of it, as another reader would find them."""
    columns = ", ".join(f"{c.name}, typeof({c.name})" for c in table.columns)
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT {columns} FROM {table.name} ORDER BY rowid").fetchall()


def test_sqlite_rows_are_stored_exactly_as_sqlalchemy_stores_them(tmp_path: Path) -> None:
    fast, core = tmp_path / "fast.db", tmp_path / "core.db"
    for path in (fast, core):
        engine = sql.create_store_engine(f"sqlite:///{path}")
        with engine.begin() as conn:
            for table, rows in ROWS.items():
                if path == fast:
                    sql.insert_rows(conn, table, rows)
                else:
                    conn.execute(table.insert(), rows)
        engine.dispose()
    for table in ROWS:
        assert stored(fast, table) == stored(core, table)
        assert len(stored(fast, table)) == len(ROWS[table])
