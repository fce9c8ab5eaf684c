"""The daily job end to end, driven through the CLI as an operator would: `lof synth`,
`lof retrain`, `lof promote` (the promote flow), then `lof daily` / `lof backfill` for several
days, against a real `mlflow server` on loopback, SQLite stores and the session's Prefect
server. What must be scored each day is computed here independently, straight from the LEB2
tables and the Amplitude export files (docs/domain.md §2.1-2.3), not through lof's own adapters."""

from __future__ import annotations

import gzip
import json
import os
import re
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from lof.core.config import get_settings
from lof.registry import client as registry
from lof.registry import tracking
from lof.registry.tracking import DAILY_EXPERIMENT
from lof.stores import open_feature_store, open_prediction_store
from lof.training import registration

TODAY = date(2025, 3, 1)
DAYS = 6  # the ongoing semester's first activity starts TODAY - DAYS
CLASS_RE = re.compile(r"class/(\d+)")
FILE_RE = re.compile(r"_(\d{4}-\d{2}-\d{2})_(\d+)#\d+\.json\.gz$")


def lof(*args: str) -> str:
    """Run the installed console script, as an operator would, against the test Prefect server."""
    from prefect.settings import get_current_settings

    env = os.environ | {"PREFECT_API_URL": str(get_current_settings().api.url), "COLUMNS": "200"}
    exe = Path(sys.executable).with_name("lof")
    done = subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"lof {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def ymd(day: date) -> str:
    return f"{day:%Y%m%d}"


@pytest.fixture(scope="module")
def env(
    tmp_path_factory: pytest.TempPathFactory, mlflow_server: str, prefect_api: None
) -> Iterator[dict]:
    """A fresh LOF_HOME, the real tracking server and a model name of this module's own."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith("LOF_") or name == "MLFLOW_TRACKING_URI":
            del os.environ[name]
    home = tmp_path_factory.mktemp("daily-e2e")
    os.environ.update(
        LOF_HOME=str(home),
        MLFLOW_TRACKING_URI=mlflow_server,
        LOF_MODEL_NAME=f"lof-e2e-{uuid.uuid4().hex[:8]}",
    )
    try:
        yield {"home": home, "settings": get_settings()}
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def scored(env: dict) -> dict:
    """synth -> retrain -> promote -> daily on day 1, backfill days 2-3, skip day 4, daily day 5."""
    settings = env["settings"]
    lof("synth", "--students", "120", "--classes", "6", "--days", str(DAYS), "--today", ymd(TODAY))
    retrained = lof("retrain", "--as-of", ymd(TODAY))
    version = re.search(r"as version (\d+)", retrained).group(1)
    promoted = lof("promote", "--version", version)
    first = TODAY - timedelta(days=DAYS)
    days = [first + timedelta(days=n) for n in range(DAYS)]
    lof("daily", "--date", ymd(days[0]))
    lof("backfill", "--start", ymd(days[1]), "--end", ymd(days[2]))
    lof("daily", "--date", ymd(days[4]))  # days[3] is never asked for: the catch-up fills it
    scored_days = [days[0], days[1], days[2], days[4]]
    store = open_prediction_store(settings.store_url)
    with sqlite3.connect(leb2_path(settings)) as db:
        class_ids = [row[0] for row in db.execute("SELECT id FROM classes")]
    snapshot = {day: predictions_by_class(store, day, class_ids) for day in scored_days}
    return {
        "version": version,
        "promoted": promoted,
        "days": scored_days,
        "skipped": days[3],
        "snapshot": snapshot,
        "store": store,
        "class_ids": class_ids,
    }


def leb2_path(settings) -> Path:
    return Path(settings.leb2_url.removeprefix("sqlite:///"))


def predictions_by_class(store, day: date, class_ids: list[int]) -> dict[int, list[dict]]:
    """Every LEB2 class's predictions of ``day``, for the classes that have any."""
    found = {cid: store.read_class_day(day=day, class_id=cid) for cid in class_ids}
    return {cid: records for cid, records in found.items() if records}


def month_back(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    for day in range(moment.day, 0, -1):
        try:
            return moment.replace(year=year, month=month + 1, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def expected_ongoing(
    db: sqlite3.Connection, day: date, window_months: int, grace_days: int
) -> set[int]:
    """OBEM, live, with a live ulti outcome that has a required level, its first activity
    started by the end of ``day``, and ``day`` not past its last due date (or later activity
    start) plus the grace days; without any due date, an activity started within the window."""
    end = datetime.combine(day + timedelta(days=1), datetime.min.time())
    since = month_back(end, window_months)
    rows = db.execute(
        """
        SELECT c.id FROM classes c
        JOIN (SELECT class_id, MIN(start_date) AS first_start, MAX(start_date) AS last_start,
                     MAX(due_date) AS last_due
              FROM activities WHERE deleted_at IS NULL GROUP BY class_id) a ON a.class_id = c.id
        WHERE c.type = 'obem' AND c.deleted_at IS NULL
          AND EXISTS (
            SELECT 1 FROM course_outcomes o
            JOIN criterias cr ON cr.clo_id = o.id AND cr.deleted_at IS NULL
            JOIN cri_levels l ON l.cri_id = cr.id AND l.deleted_at IS NULL AND l.flag = 1
            WHERE o.class_id = c.id AND o.type = 'ulti' AND o.deleted_at IS NULL)
          AND a.first_start < ?
          AND ((a.last_due IS NOT NULL AND date(MAX(a.last_due, a.last_start)) >= ?)
               OR (a.last_due IS NULL AND a.last_start >= ?))
        """,
        (
            f"{end:%Y-%m-%d %H:%M:%S}",
            f"{day - timedelta(days=grace_days):%Y-%m-%d}",
            f"{since:%Y-%m-%d %H:%M:%S}",
        ),
    )
    return {row[0] for row in rows}


def expected_cohorts(settings, day: date) -> dict[int, set[int]]:
    """Per ongoing class: students with an assessed record as of ``day`` or a counted Page Load
    event for the class from the local day of its first activity up to ``day``."""
    end = f"{day + timedelta(days=1):%Y-%m-%d} 00:00:00"
    with sqlite3.connect(leb2_path(settings)) as db:
        ongoing = expected_ongoing(db, day, settings.ongoing_window_months, settings.grace_days)
        cohorts: dict[int, set[int]] = {cid: set() for cid in ongoing}
        records = db.execute(
            """
            SELECT DISTINCT a.class_id, p.user_id FROM act_sub_points p
            JOIN activities a ON a.id = p.activity_id AND a.deleted_at IS NULL
            JOIN criterias cr ON cr.id = p.cri_id AND cr.deleted_at IS NULL
            JOIN course_outcomes o ON o.id = cr.clo_id AND o.class_id = a.class_id
                 AND o.type = 'ulti' AND o.deleted_at IS NULL
            JOIN cri_levels l ON l.id = p.cri_level_id AND l.deleted_at IS NULL
            JOIN activity_submissions s ON s.activity_id = p.activity_id
                 AND s.user_id = p.user_id AND s.deleted_at IS NULL
            WHERE a.start_date < ? AND s.submitted_at < ?
            """,
            (end, end),
        )
        for class_id, user_id in records:
            if class_id in cohorts:
                cohorts[class_id].add(int(user_id))
        first_local_day = {
            class_id: datetime.fromisoformat(start).date()
            for class_id, start in db.execute(
                "SELECT class_id, MIN(start_date) FROM activities "
                "WHERE deleted_at IS NULL GROUP BY class_id"
            )
        }
    # A local day D (UTC+7) is the upload hours (D-1)T17 .. DT16 UTC.
    last_hour = datetime.combine(day, datetime.min.time()) + timedelta(hours=16)
    for path in sorted(Path(settings.amplitude_source).rglob("*.json.gz")):
        match = FILE_RE.search(path.name)
        hour = datetime.fromisoformat(match.group(1)) + timedelta(hours=int(match.group(2)))
        if hour > last_hour:
            continue
        with gzip.open(path, "rb") as lines:
            for line in lines:
                event = orjson.loads(line)
                user = event.get("user_id")
                url = (event.get("event_properties") or {}).get("CURRENT_URL") or ""
                found = CLASS_RE.search(url)
                if event.get("event_type") != "Page Load" or not found or not user:
                    continue
                class_id = int(found.group(1))
                if class_id not in cohorts or not str(user).isdigit():
                    continue
                first = datetime.combine(first_local_day[class_id], datetime.min.time())
                if hour >= first - timedelta(hours=7):
                    cohorts[class_id].add(int(user))
    return cohorts


def test_promote_went_through_the_promote_flow(scored: dict, env: dict) -> None:
    settings = env["settings"]
    client = registry.client(settings=settings)
    version = client.get_model_version(settings.model_name, scored["version"])
    assert version.current_stage == "Production"
    assert (
        client.get_model_version_by_alias(settings.model_name, "production").version
        == (scored["version"])
    )
    assert re.fullmatch(r".+ \(lof promote\) run [0-9a-f-]{36}", version.tags["promoted_by"])
    assert f"version {scored['version']}" in scored["promoted"]


def test_every_cohort_student_of_every_ongoing_class_is_scored_each_day(
    scored: dict, env: dict
) -> None:
    settings = env["settings"]
    for day in scored["days"]:
        expected = expected_cohorts(settings, day)
        got = {
            cid: {record["user_id"] for record in records}
            for cid, records in scored["snapshot"][day].items()
        }
        assert expected, f"no ongoing class on {day}: the synthetic university is wrong"
        assert set(got) == set(expected), f"classes scored on {day} (nothing else may be)"
        for class_id, users in expected.items():
            assert got[class_id] == users, f"class {class_id} on {day}"
        for records in scored["snapshot"][day].values():
            for record in records:
                assert record["predicted_dt"] == ymd(day)
                assert record["model_version"] == scored["version"]
                # the threshold chosen at retrain and stored on the version (no override set)
                threshold = float(
                    registry.version_tags(settings=settings, version=scored["version"])[
                        registry.THRESHOLD_TAG
                    ]
                )
                assert record["at_risk"] == (record["risk_prob"] >= threshold)
                assert sum(record["predicted_prob"].values()) == pytest.approx(1.0)


def test_each_day_has_an_mlflow_run_naming_the_promoted_version(scored: dict, env: dict) -> None:
    settings = env["settings"]
    client = registry.client(settings=settings)
    experiment = client.get_experiment_by_name(DAILY_EXPERIMENT)
    runs = client.search_runs(
        [experiment.experiment_id], f"params.model_name = '{settings.model_name}'"
    )
    by_day = {run.data.params["day"]: run for run in runs}
    assert set(by_day) == {ymd(day) for day in scored["days"]}
    for day in scored["days"]:
        run = by_day[ymd(day)]
        assert run.data.tags["lof.model_version"] == scored["version"]
        students = sum(len(records) for records in scored["snapshot"][day].values())
        assert run.data.metrics["students"] == students
        assert run.inputs.dataset_inputs, f"no feature table logged for {day}"
        metrics = run.data.metrics
        assert metrics["amplitude.lines"] >= metrics["amplitude.counted"] > 0


def test_days_of_one_semester_are_steps_of_one_series_with_drift(scored: dict, env: dict) -> None:
    """The semester's trend run holds each scored day at step = day index; each day's run is
    its child; per-class shares are a table, not metric keys. The semester's first days are
    before the first progress band of the training examples (lof.drift): no drift figure yet,
    rather than a comparison with later stages that would cry wolf."""
    import json

    from lof.features.definitions import FEATURES

    settings = env["settings"]
    client = registry.client(settings=settings)
    experiment = client.get_experiment_by_name(DAILY_EXPERIMENT)
    (trend,) = client.search_runs(
        [experiment.experiment_id],
        f"tags.`lof.trend` = 'semester' and tags.`lof.model_name` = '{settings.model_name}'",
    )
    first = TODAY - timedelta(days=DAYS)
    steps = [(day - first).days for day in scored["days"]]
    for key in ("students", "share_at_risk"):
        history = client.get_metric_history(trend.info.run_id, key)
        assert sorted(m.step for m in history) == steps, key
    assert client.get_metric_history(trend.info.run_id, "drift.psi.max") == []
    days = client.search_runs(
        [experiment.experiment_id], f"params.model_name = '{settings.model_name}'"
    )
    for run in days:
        assert run.data.tags["mlflow.parentRunId"] == trend.info.run_id
        metrics = run.data.metrics
        assert not [k for k in metrics if k.startswith("drift.psi.")]
        assert {f"feature.{name}.mean" for name in FEATURES} <= set(metrics)
        assert not [k for k in metrics if k.startswith("share_at_risk.class_")]
    table = json.loads(
        Path(client.download_artifacts(trend.info.run_id, tracking.PER_CLASS_TABLE)).read_text()
    )
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    for day in scored["days"]:
        on_day = {row["class_id"]: row for row in rows if row["day"] == day.isoformat()}
        assert set(on_day) == set(scored["snapshot"][day]), day
        for class_id, records in scored["snapshot"][day].items():
            assert on_day[class_id]["students"] == len(records)
            assert on_day[class_id]["at_risk"] == sum(r["at_risk"] for r in records)


def test_retrain_metrics_are_attached_to_the_logged_model(scored: dict, env: dict) -> None:
    settings = env["settings"]
    client = registry.client(settings=settings)
    version = client.get_model_version(settings.model_name, scored["version"])
    run = client.get_run(version.run_id)
    # The run also logs the fit that did not see the holdout; the registered one is REGISTERED_FIT.
    (logged,) = [
        m
        for m in client.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"source_run_id = '{version.run_id}'",
        )
        if m.name == registration.REGISTERED_FIT
    ]
    keys = {m.key for m in logged.metrics}
    assert "holdout.macro_f1" in keys, keys
    assert {m.model_id for m in logged.metrics} == {logged.model_id}
    assert {m.value for m in logged.metrics if m.key == "holdout.macro_f1"} == {
        run.data.metrics["holdout.macro_f1"]
    }


def test_the_skipped_day_was_filled_first(scored: dict, env: dict) -> None:
    features = open_feature_store(env["settings"].store_url)
    assert features.is_complete(day=scored["skipped"])
    assert features.last_complete_day() == scored["days"][-1]
    # Only features are caught up; predictions exist for the days asked for.
    assert not scored["store"].is_complete(day=scored["skipped"])


def test_rerunning_days_gives_identical_results(scored: dict, env: dict) -> None:
    features = open_feature_store(env["settings"].store_url)
    middle, last = scored["days"][1], scored["days"][-1]
    states_before = features.read_states(day=last)
    lof("daily", "--date", ymd(middle))
    lof("daily", "--date", ymd(last))
    for day in (middle, last):
        again = predictions_by_class(scored["store"], day, scored["class_ids"])
        assert again == scored["snapshot"][day]
    assert features.read_states(day=last).equals(states_before)
    # The rerun's MLflow run replaces the day's earlier one: one live run per day.
    client = registry.client(settings=env["settings"])
    experiment = client.get_experiment_by_name(DAILY_EXPERIMENT)
    for day in (middle, last):
        runs = client.search_runs(
            [experiment.experiment_id],
            f"params.model_name = '{env['settings'].model_name}' and params.day = '{ymd(day)}'",
        )
        assert len(runs) == 1, f"{len(runs)} live MLflow runs for {day}"


# --- clear failures, nothing written ------------------------------------------------------------


def assert_nothing_written(scored: dict, env: dict, day: date) -> None:
    features = open_feature_store(env["settings"].store_url)
    assert features.last_complete_day() == scored["days"][-1]
    assert not features.is_complete(day=day)
    assert not scored["store"].is_complete(day=day)
    assert predictions_by_class(scored["store"], day, scored["class_ids"]) == {}


def test_no_model_at_the_stage_is_one_line_saying_how_to_get_one(scored: dict) -> None:
    from prefect.settings import get_current_settings

    env = os.environ | {
        "PREFECT_API_URL": str(get_current_settings().api.url),
        "LOF_MODEL_STAGE": "Staging",
    }
    exe = Path(sys.executable).with_name("lof")
    done = subprocess.run(
        [exe, "daily", "--date", ymd(TODAY - timedelta(days=1))],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert os.environ["LOF_MODEL_NAME"] in lines[0] and "Staging" in lines[0]
    assert "lof retrain" in lines[0] and "lof promote" in lines[0]


def test_a_model_expecting_other_features_fails_before_writing(
    scored: dict, env: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from flows.daily_scoring import daily_scoring
    from lof.core.errors import ModelError
    from lof.features.definitions import FEATURES

    monkeypatch.setenv("LOF_MODEL_NAME", f"{os.environ['LOF_MODEL_NAME']}-legacy")
    settings = get_settings()
    columns = [*FEATURES[:-1], "final_grade"]
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.random((60, len(columns))), columns=columns)
    legacy = LogisticRegression().fit(frame, np.resize([1, 2, 3, 4, 5], 60))
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    experiment_id = tracking.ensure_experiment(settings=settings, name="lof-e2e-legacy")
    with mlflow.start_run(experiment_id=experiment_id, run_name="legacy-shaped model"):
        logged = registry.log_model(model=legacy, input_example=frame.head(3))
        version = registry.register_version(
            settings=settings,
            model_uri=logged.model_uri,
            run_id=mlflow.active_run().info.run_id,
            tags={},
            model_id=logged.model_id,
        )
    registry.transition_to_production(settings=settings, version=version)
    day = TODAY - timedelta(days=1)

    with pytest.raises(ModelError, match="final_grade") as failure:
        daily_scoring(date=ymd(day))
    assert "avglevel" in str(failure.value) and "lof retrain" in str(failure.value)
    assert_nothing_written(scored, env, day)


def test_unreachable_leb2_fails_with_the_cause_and_writes_nothing(
    scored: dict, env: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.daily_scoring import daily_scoring
    from lof.core.errors import SourceError
    from tests.servers import free_port

    password = "leb2-secret-pw"
    monkeypatch.setenv("LOF_LEB2_URL", f"mysql+pymysql://lof:{password}@127.0.0.1:{free_port()}/x")
    day = TODAY - timedelta(days=1)
    with pytest.raises(SourceError) as failure:
        daily_scoring(date=ymd(day))
    assert "LEB2" in str(failure.value) and password not in str(failure.value)
    assert_nothing_written(scored, env, day)


def test_unreachable_amplitude_fails_with_the_cause_and_writes_nothing(
    scored: dict, env: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.daily_scoring import daily_scoring
    from lof.core.errors import SourceError
    from tests.servers import free_port

    secret = "amplitude-secret-key"
    monkeypatch.setenv("LOF_AMPLITUDE_SOURCE", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("LOF_AMPLITUDE_API_KEY", "api-key")
    monkeypatch.setenv("LOF_AMPLITUDE_SECRET_KEY", secret)
    monkeypatch.setenv("LOF_HTTP_RETRIES", "2")
    day = TODAY - timedelta(days=1)
    with pytest.raises(SourceError) as failure:
        daily_scoring(date=ymd(day))
    assert "Amplitude" in str(failure.value) and secret not in str(failure.value)
    assert_nothing_written(scored, env, day)


def test_a_store_failure_mid_write_leaves_both_stores_as_they_were(
    scored: dict, env: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The predictions store dies after part of day D: D stays invisible everywhere, the
    features store does not move past D-1 (so catch-up redoes D), and a rerun completes it."""
    from flows.daily_scoring import daily_scoring
    from lof.core.errors import StoreError
    from lof.stores.sql import SqlPredictionStore
    from tests.stores._crash import SimulatedCrash, crash_after_rows

    write_day = SqlPredictionStore.write_day

    def dies_midway(self, **kwargs) -> None:
        try:
            with crash_after_rows(self, 5):
                write_day(self, **kwargs)
        except SimulatedCrash:
            raise StoreError("predictions store went away mid-write") from None

    monkeypatch.setattr(SqlPredictionStore, "write_day", dies_midway)
    day = TODAY - timedelta(days=1)
    with pytest.raises(StoreError, match="mid-write"):
        daily_scoring(date=ymd(day))
    assert_nothing_written(scored, env, day)

    monkeypatch.setattr(SqlPredictionStore, "write_day", write_day)
    daily_scoring(date=ymd(day))
    assert open_feature_store(env["settings"].store_url).last_complete_day() == day
    scored_today = predictions_by_class(scored["store"], day, scored["class_ids"])
    cohorts = {cid: {r["user_id"] for r in records} for cid, records in scored_today.items()}
    assert cohorts == expected_cohorts(env["settings"], day)


def test_reasons_are_stored_with_each_prediction_and_shown(scored: dict) -> None:
    """Every prediction carries its reasons (at most 3 that raise risk, largest first, then at
    most 2 that lower it, rendered with the class median); every at-risk prediction's first
    reason raises risk; `lof show` prints them as the API does."""
    day = scored["days"][-1]
    by_class = scored["snapshot"][day]
    with_reasons = at_risk = 0
    for records in by_class.values():
        for record in records:
            reasons = record["reasons"]
            directions = [r["direction"] for r in reasons]
            raising = directions.count("raises risk")
            assert directions == ["raises risk"] * raising + ["lowers risk"] * (
                len(reasons) - raising
            )
            assert raising <= 3 and len(reasons) - raising <= 2
            effects = [r["effect"] for r in reasons]
            assert effects[:raising] == sorted(effects[:raising], reverse=True)
            assert effects[raising:] == sorted(effects[raising:])
            for reason in reasons:
                assert "(class median " in reason["text"]
                assert reason["direction"] == (
                    "raises risk" if reason["effect"] > 0 else "lowers risk"
                )
                compared = "; " in reason["text"]  # an at-risk student at the class median
                assert compared or reason["value"] != reason["class_median"]
            if record["at_risk"]:
                at_risk += 1
                assert reasons and reasons[0]["direction"] == "raises risk", record
            with_reasons += bool(reasons)
    assert with_reasons > 0, "no student of any class got a reason"
    assert at_risk > 0, "no student of any class was at risk"
    class_id = max(by_class, key=lambda c: len(by_class[c]))
    shown = json.loads(lof("show", "--date", ymd(day), "--class-id", str(class_id)))
    assert [r["reasons"] for r in shown] == [r["reasons"] for r in by_class[class_id]]
