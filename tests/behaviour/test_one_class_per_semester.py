"""A department with one course and two earlier runs of it, driven through the CLI as an
operator would: `lof synth --classes 1`, `lof retrain`, `lof promote`, `lof daily`, against
SQLite LEB2 and stores, MLflow sqlite tracking under tmp_path and the session's Prefect server.

It checks what a tiny history needs: retrain trains (leave-one-class-out, no time holdout),
the registered model trained on every finished class, daily scoring uses the threshold stored
on the version, a day the daily flow scored is read back from the predictions store at the
next retrain (not reconstructed), and the gate refuses to compare versions on examples one of
them trained on unless forced."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lof.core.config import get_settings
from lof.features import definitions as feat
from lof.registry import client as registry
from lof.sources import leb2
from lof.stores import open_prediction_store
from lof.training import examples as example_set
from lof.training import retrain as training

TODAY = date(2025, 3, 1)


def lof(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    """Run the installed console script against the test Prefect server."""
    from prefect.settings import get_current_settings

    env = os.environ | {"PREFECT_API_URL": str(get_current_settings().api.url), "COLUMNS": "250"}
    exe = Path(sys.executable).with_name("lof")
    done = subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=900)
    if ok:
        assert done.returncode == 0, f"lof {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def ymd(day: date) -> str:
    return f"{day:%Y%m%d}"


@pytest.mark.usefixtures("prefect_api")
def test_one_class_per_semester_retrains_promotes_and_scores(lof_home: Path) -> None:
    lof("synth", "--students", "90", "--classes", "1", "--days", "12", "--today", ymd(TODAY))
    settings = get_settings()

    first = lof("retrain", "--as-of", ymd(TODAY))
    assert "leave-one-class-out" in first.stdout, first.stdout
    v1 = re.search(r"as version (\d+)", first.stdout).group(1)
    engine = leb2.connect(settings.leb2_url)
    finished = leb2.finished_classes(engine, as_of=TODAY)
    assert len(finished) == 2  # one class in each of the two finished semesters
    tags = registry.version_tags(settings=settings, version=v1)
    assert registry.decode_class_ids(tags[registry.TRAINING_CLASSES_TAG]) == set(
        finished["class_id"]
    )
    assert tags["holdout_kind"] == "leave-one-class-out"
    assert tags[registry.EVALUATION_MODEL_TAG] == ""  # no fit without a held-out class
    assert f"promoted version {v1}" in lof("promote", "--version", v1).stdout

    # Score a day of the latest finished class as the daily flow would have (a backtest day):
    # its 25% snapshot day. Then a grade of that class is revised in LEB2 afterwards.
    latest = finished.sort_values("first_start").iloc[-1]
    class_id = int(latest["class_id"])
    window = example_set.snapshot_days(
        first_day=pd.Timestamp(latest["first_start"]).date(), last_day=latest["last_day"]
    )
    day = window[0.25]
    lof("daily", "--date", ymd(day))
    store = open_prediction_store(settings.store_url)
    served = store.read_class_day(day=day, class_id=class_id)
    assert served
    threshold = float(tags[registry.THRESHOLD_TAG])
    assert all(r["at_risk"] == (r["risk_prob"] >= threshold) for r in served)
    leb2_file = settings.leb2_url.removeprefix("sqlite:///")
    with sqlite3.connect(leb2_file) as db:
        revised = db.execute(
            "UPDATE act_sub_points SET cri_level_id = ("
            " SELECT l2.id FROM cri_levels l1 JOIN cri_levels l2 ON l2.cri_id = l1.cri_id"
            " WHERE l1.id = act_sub_points.cri_level_id AND l2.level = 5 AND l2.deleted_at IS NULL"
            " LIMIT 1) WHERE activity_id IN (SELECT id FROM activities WHERE class_id = ?"
            " AND start_date < ?)",
            (class_id, f"{day:%Y-%m-%d} 00:00:00"),
        ).rowcount
    assert revised > 0

    # The next retrain reads that day from the predictions store: what was served.
    built = training.build_training_set(settings=settings, semesters=None, as_of=TODAY)
    part = built.examples[
        (built.examples["class_id"] == class_id) & np.isclose(built.examples["progress"], 0.25)
    ]
    raw = pd.DataFrame(
        [{"class_id": r["class_id"], "user_id": r["user_id"], **r["features"]} for r in served]
    )
    from lof.features.signals import SIGNALS
    from lof.model.outcome import MODEL_SIGNALS, training_features

    # The store keeps every input of the day: the 13 and the signals, as they were on the day
    # (the grade revised since changes neither the 13 nor attainment or score so far).
    inputs = [*feat.FEATURES, *SIGNALS]
    assert set(raw.columns) >= set(inputs)
    expected = feat.scale_within_class(features=raw[["class_id", "user_id", *inputs]])
    merged = part.merge(expected, on=["class_id", "user_id"], suffixes=("", "_served"))
    assert len(merged) == len(part) > 0
    for name in inputs:
        assert np.allclose(merged[name], merged[f"{name}_served"]), name
    assert built.examples_from_predictions == len(part)
    assert part[list(SIGNALS)].notna().all().all()
    assert training_features(built.examples) == [*feat.FEATURES, *MODEL_SIGNALS]
    assert built.examples_reconstructed == len(built.examples) - len(part)
    # A reconstruction would have seen the revised grades.
    from lof.core.calendar import end_of_day

    records = leb2.assessed_records(engine, class_ids=[class_id], until=end_of_day(day))
    now = feat.assessment_features(records=records).set_index("user_id")["avglevel"]
    then = raw.set_index("user_id")["avglevel"]
    both = now.index.intersection(then.index)
    assert len(both) and not np.allclose(now.loc[both], then.loc[both])

    second = lof("retrain", "--as-of", ymd(TODAY))
    v2 = re.search(r"as version (\d+)", second.stdout).group(1)
    # Both versions trained on both classes: there is nothing fair to compare them on.
    refused = lof("promote", "--version", v2, ok=False)
    assert refused.returncode != 0
    assert "cannot compare it with Production" in refused.stdout + refused.stderr
    assert "--force" in refused.stdout + refused.stderr
    assert registry.production_version(settings=settings) == v1
    lof("promote", "--version", v2, "--force")
    assert registry.production_version(settings=settings) == v2

    scored = lof("daily", "--date", ymd(TODAY - timedelta(days=1)))
    assert f"model v{v2}" in scored.stdout
    ongoing = leb2.ongoing_classes(engine, day=TODAY - timedelta(days=1), window_months=4)
    records = store.read_class_day(
        day=TODAY - timedelta(days=1), class_id=int(ongoing["class_id"].iloc[0])
    )
    assert records and {r["model_version"] for r in records} == {v2}
    cut = float(registry.version_tags(settings=settings, version=v2)[registry.THRESHOLD_TAG])
    assert all(r["at_risk"] == (r["risk_prob"] >= cut) for r in records)
    engine.dispose()
