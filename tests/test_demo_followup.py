"""The end of `lof demo` on a stored semester (SQLite): synthetic actions are stored, the
outcome report has numbers, and the last day's changes of one class are printed last."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from lof.demo_followup import print_followup
from lof.features.definitions import FEATURES
from lof.stores import open_prediction_store
from lof.stores.interventions import open_intervention_store
from tests.api._data import settings_for

FIRST = date(2025, 9, 1)
DAYS = 8
CLASSES = (41, 42)
STUDENTS = 200  # per class


def write_semester(url: str) -> None:
    rng = np.random.default_rng(4)
    base = {c: rng.uniform(0.0, 1.0, STUDENTS) for c in CLASSES}
    store = open_prediction_store(url)
    for i in range(DAYS):
        rows = []
        for class_id in CLASSES:
            risks = np.clip(base[class_id] + rng.normal(0, 0.08, STUDENTS), 0.0, 1.0)
            for j, risk in enumerate(risks):
                rows.append(
                    {
                        "class_id": class_id,
                        "user_id": class_id * 1000 + j,
                        "predicted_label": 2 if risk >= 0.5 else 4,
                        "predicted_prob": {"1": risk, "4": 1 - risk},
                        "risk_prob": float(risk),
                        "at_risk": bool(risk >= 0.5),
                        "required_level": 3,
                        "model_name": "lof-outcome",
                        "model_version": "1",
                        "features": dict.fromkeys(FEATURES, 1.0),
                    }
                )
        store.write_day(day=FIRST + timedelta(days=i), predictions=pd.DataFrame(rows))


def test_the_demo_ends_with_a_report_and_the_last_days_changes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lof.db'}"
    write_semester(url)
    settings = settings_for(tmp_path, url)
    console = Console(record=True, width=200)
    done = print_followup(
        settings=settings,
        out=console,
        class_ids=list(CLASSES),
        first_day=FIRST,
        last_day=FIRST + timedelta(days=90),
        semester="2025-1",
        seed=7,
    )
    report = done["report"]
    assert report.enough and report.interval is not None
    stored = open_intervention_store(url).read_all()
    assert len(stored) == report.treated > 0
    assert {r.teacher_id for r in stored} == {"t-synthetic"}
    last = FIRST + timedelta(days=DAYS - 1)
    assert max(r.action_dt for r in stored) <= f"{last:%Y%m%d}"  # on scored days only
    text = console.export_text()
    assert "flagged students with an action, " in text and "observational" in text
    changes = done["changes"]
    assert changes.until_day == last and changes.since_day == last - timedelta(days=1)
    assert (
        text.rstrip()
        .splitlines()[-1 - len(changes.changes)]
        .startswith(f"class {CLASSES[0]}: changes from")
    )
