"""A SQL store made before the early-warning signals is upgraded in place on first open."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from lof.signals import EVENT_STATE_COLUMNS
from lof.stores import open_feature_store, open_prediction_store
from lof.stores.sql import METADATA

DAY = date(2023, 3, 1)


def old_schema(url: str) -> None:
    """The tables as they were, with one state row and one prediction, and their manifests."""
    engine = sa.create_engine(url)
    METADATA.drop_all(engine)
    old = sa.MetaData()
    for table in METADATA.sorted_tables:
        keep = [c for c in table.c if c.name not in (*EVENT_STATE_COLUMNS, "reasons")]
        sa.Table(
            table.name,
            old,
            *[
                sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
                for c in keep
            ],
        )
    old.create_all(engine)
    counts = {
        "class_view_count": 5,
        "activity_page_view": 1,
        "material_view": 0,
        "act_quiz_view": 2,
        "submit_button_clicked": 0,
    }
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO lof_feature_states (day, class_id, user_id, class_view_count, "
                "activity_page_view, material_view, act_quiz_view, submit_button_clicked, "
                "activity_ids, session_ids) VALUES (:day, 1, 7, :class_view_count, "
                ":activity_page_view, :material_view, :act_quiz_view, :submit_button_clicked, "
                "'3,4', '9')"
            ),
            {"day": DAY, **counts},
        )
        conn.execute(
            sa.text(
                "INSERT INTO lof_predictions (class_id, day, user_id, predicted_label, "
                "predicted_prob, risk_prob, at_risk, required_level, model_name, model_version, "
                "features) VALUES (1, :day, 7, 2, :prob, 0.2, false, 3, 'm', '1', :features)"
            ),
            {"day": DAY, "prob": '{"1":0.2,"2":0.8}', "features": '{"avglevel":2.0}'},
        )
        for manifest in ("lof_feature_days", "lof_prediction_days"):
            conn.execute(
                sa.text(f"INSERT INTO {manifest} (day, rows, written_at) VALUES (:day, 1, :at)"),
                {"day": DAY, "at": "2023-03-02 00:00:00"},
            )
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    return request.getfixturevalue("postgres_url")


def test_old_tables_get_the_new_columns_and_keep_their_rows(url: str) -> None:
    old_schema(url)
    features = open_feature_store(url)
    states = features.read_states(day=DAY)
    assert states.loc[0, "class_view_count"] == 5
    assert states.loc[0, "activity_ids"] == (3, 4)
    assert all(states.loc[0, c] == 0 for c in EVENT_STATE_COLUMNS)
    predictions = open_prediction_store(url)
    [record] = predictions.read_class_day(day=DAY, class_id=1)
    assert record["reasons"] == [] and record["risk_prob"] == 0.2
    columns = {c["name"] for c in sa.inspect(features.engine).get_columns("lof_predictions")}
    assert "reasons" in columns
    # opening again changes nothing
    assert open_feature_store(url).read_states(day=DAY).equals(states)
