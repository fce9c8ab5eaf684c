"""Student data that can be governed, end to end on a small synthetic university: a retrain
logged to a real `mlflow server`, the daily flow on the session's Prefect server, SQLite stores,
the API and class page in process (TestClient), the CLI in process (typer's runner).

One module world, changed step by step: two days scored, a student opts out, another is
forgotten, the days are scored again, a purge and the retention period remove old days and
the next run still catches up and computes what an untouched store computes.
"""

from __future__ import annotations

import os
import shutil
import struct
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from lof import scoring
from lof.api import create_app
from lof.api.routes.links import make_link
from lof.cli import app as cli
from lof.core.config import get_settings
from lof.features import drift
from lof.features.definitions import FEATURES
from lof.features.signals import SIGNALS
from lof.governance import erasure as governance
from lof.governance import optout, pseudonyms
from lof.registry import client as registry
from lof.registry import promotion
from lof.registry.tracking import DAILY_EXPERIMENT
from lof.sources import leb2
from lof.stores import compact, open_feature_store, open_prediction_store
from lof.stores.privacy import open_privacy_store
from lof.synthetic import university as synth
from lof.training import retrain as retraining
from lof.training.examples import (
    EXAMPLE_COLUMNS,
    TrainingSet,
    build_examples,
    default_semesters,
    pick_classes,
)
from tests.stores.conftest import sql_rows

# lof's loggers reach Prefect once a flow ran in the process; the examples are built outside one
pytestmark = pytest.mark.filterwarnings("ignore:Logger 'lof.*without a flow run id:UserWarning")

TODAY = date(2025, 3, 1)
DAYS = [TODAY - timedelta(days=n) for n in range(5, 0, -1)]  # the ongoing semester so far
SECRET = "student-data-secret-0123456789"
KEY = "student-data-key-0123456789"
LINK_SECRET = "student-data-link-secret-0123456789"
RAW_IDS = range(7_300_000_001, 7_300_000_061)  # the retrain's students: 10 digits, unmistakable


def ymd(day: date) -> str:
    return f"{day:%Y%m%d}"


def training_set() -> TrainingSet:
    """Labelled examples of 6 finished classes over 2 semesters, as lof.examples builds them."""
    rng = np.random.default_rng(3)
    rows = []
    for c in range(6):
        skill = rng.uniform(0, 1, 10)
        label = np.clip(np.round(1 + 4 * skill + rng.normal(0, 0.4, 10)), 1, 5).astype(int)
        for progress in (0.1, 0.25, 0.5, 0.75, 1.0):
            values = np.clip(
                skill[:, None] + rng.normal(0, 0.2, (10, len(FEATURES) + len(SIGNALS))), 0, 1
            )
            for s in range(10):
                row = dict(zip([*FEATURES, *SIGNALS], values[s], strict=True))
                rows.append(
                    {
                        **row,
                        "class_id": 900 + c,
                        "user_id": RAW_IDS[c * 10 + s],
                        "semester": "1/2024" if c < 3 else "2/2024",
                        "progress": progress,
                        "label": int(label[s]),
                        "required_level": 3,
                    }
                )
    examples = pd.DataFrame(rows)[list(EXAMPLE_COLUMNS)]
    classes = pd.DataFrame(
        {
            "class_id": range(900, 906),
            "semester": ["1/2024"] * 3 + ["2/2024"] * 3,
            "first_start": [pd.Timestamp("2024-01-10")] * 3 + [pd.Timestamp("2024-07-01")] * 3,
        }
    )
    return TrainingSet(
        examples=examples, classes=classes, semesters=["1/2024", "2/2024"], as_of=TODAY
    )


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, mlflow_server: str, prefect_api: None
) -> Iterator[dict]:
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith("LOF_") or name == "MLFLOW_TRACKING_URI":
            del os.environ[name]
    root = tmp_path_factory.mktemp("student-data")
    os.environ.update(
        LOF_HOME=str(root / "home"),
        LOF_LEB2_URL=f"sqlite:///{root / 'leb2.db'}",
        LOF_AMPLITUDE_SOURCE=str(root / "amplitude"),
        MLFLOW_TRACKING_URI=mlflow_server,
        LOF_MODEL_NAME=f"lof-sd-{uuid.uuid4().hex[:8]}",
        LOF_PSEUDONYM_SECRET=SECRET,
        LOF_API_KEYS=KEY,
        LOF_LINK_SECRET=LINK_SECRET,
    )
    try:
        synth.synthesize(
            leb2_url=os.environ["LOF_LEB2_URL"],
            amplitude_dir=root / "amplitude",
            seed=11,
            today=TODAY,
            students=40,
            classes=2,
            days=len(DAYS),
            amplitude_days=len(DAYS) + 1,
        )
        settings = get_settings()
        result = retraining.train_and_register(
            settings=settings, training=training_set(), candidate_names=["logreg"], n_splits=2
        )
        registry.transition_to_production(settings=settings, version=result.version)
        yield {"root": root, "settings": settings, "retrain": result}
    finally:
        os.environ.clear()
        os.environ.update(saved)


def daily(day: date) -> dict:
    from flows.daily_scoring import daily_scoring

    return daily_scoring(date=ymd(day))


def scored_users(settings, day: date) -> dict[int, set[int]]:
    store = open_prediction_store(settings.store_url)
    return {
        c: {r["user_id"] for r in store.read_class_day(day=day, class_id=c)}
        for c in store_classes(settings)
    }


def store_classes(settings) -> list[int]:
    engine = leb2.connect(settings.leb2_url)
    return leb2.ongoing_classes(engine, day=DAYS[-1], window_months=4)["class_id"].tolist()


def feature_users(settings) -> set[int]:
    """Every student id in the features store's blobs, read from the table itself."""
    rows = sql_rows(settings.store_url, "SELECT data FROM lof_feature_blobs")
    return {int(u) for (data,) in rows for u in compact.decode(bytes(data)).users}


# --- MLflow ---------------------------------------------------------------------------------------


def mlflow_bytes(settings, experiment: str, folder: Path) -> list[tuple[str, bytes]]:
    """Every artifact file of the experiment's runs and logged models, and each run's
    parameters, tags, metric names and dataset records, as (what, bytes)."""
    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    found = client.get_experiment_by_name(experiment)
    out: list[tuple[str, bytes]] = []
    for run in client.search_runs([found.experiment_id]):
        data = run.data
        out.append(
            (f"run {run.info.run_id}", repr((data.params, data.tags, list(data.metrics))).encode())
        )
        for given in run.inputs.dataset_inputs:
            out.append((f"dataset of {run.info.run_id}", repr(given.dataset).encode()))
        target = folder / run.info.run_id
        mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, dst_path=str(target), tracking_uri=settings.mlflow_tracking_uri
        )
        out += [(str(p), p.read_bytes()) for p in target.rglob("*") if p.is_file()]
    for model in client.search_logged_models([found.experiment_id]):
        target = folder / model.model_id
        mlflow.artifacts.download_artifacts(
            artifact_uri=model.artifact_location,
            dst_path=str(target),
            tracking_uri=settings.mlflow_tracking_uri,
        )
        out += [(str(p), p.read_bytes()) for p in target.rglob("*") if p.is_file()]
    return out


def test_a_retrains_mlflow_record_holds_no_raw_student_id(world: dict, tmp_path: Path) -> None:
    settings, result = world["settings"], world["retrain"]
    files = mlflow_bytes(settings, retraining.RETRAIN_EXPERIMENT, tmp_path)
    assert any(name.endswith("holdout.parquet") for name, _ in files)
    for name, content in files:
        for user in RAW_IDS:
            assert str(user).encode() not in content, f"{user} in {name}"
            assert struct.pack("<q", user) not in content, f"{user} (int64) in {name}"

    # the holdout keys students by pseudonym, and the gate and drift reference still work
    holdout = registry.load_holdout(settings=settings, version=result.version)
    names = pseudonyms.optional(settings)
    assert "user_id" not in holdout.columns
    held = training_set().examples
    held = held[held["class_id"].isin(result.holdout_class_ids)].reset_index(drop=True)
    assert set(holdout["user_pseudonym"]) == set(names.many(held["user_id"]))
    model = promotion.load_version(settings=settings, version=result.version)
    assert promotion.holdout_score(model=model, holdout=holdout, threshold=None) == (
        promotion.holdout_score(model=model, holdout=held, threshold=None)
    )
    reference = drift.load_reference(
        tracking_uri=settings.mlflow_tracking_uri, run_id=result.run_id
    )
    assert reference is not None and set(reference["features"]) == set(FEATURES)


# --- opt-out, forget, purge through the daily flow ------------------------------------------


def test_opted_out_and_forgotten_students_are_left_out_everywhere(
    world: dict, tmp_path: Path
) -> None:
    settings = world["settings"]
    d1, d2, d3, d4, d5 = DAYS
    daily(d1)
    daily(d2)
    before = scored_users(settings, d2)
    class_id = max(before, key=lambda c: len(before[c]))
    x, y, z = sorted(before[class_id])[:3]  # x is forgotten, y opts out; z through the API
    assert {x, y} <= scored_users(settings, d1)[class_id]

    governance.opt_out(settings, [y])
    governance.forget(settings, [x])
    for day in (d1, d2):
        assert not {x, y} & set().union(*scored_users(settings, day).values())
    assert x not in feature_users(settings) and y in feature_users(settings)

    result = daily(d3)  # the new day leaves both out, and nothing of theirs is stored
    assert not {x, y} & set().union(*scored_users(settings, d3).values())
    assert result["not_shown"] >= 2
    states = open_feature_store(settings.store_url).read_states(day=d3)
    assert not {x, y} & set(states["user_id"])
    daily(d2)  # scoring a day again leaves them out too
    assert not {x, y} & set().union(*scored_users(settings, d2).values())
    assert x not in feature_users(settings)
    privacy = open_privacy_store(settings.store_url)
    assert privacy.hidden_count(class_id=class_id, day=d3) >= 2

    # the API and the class page: z opts out through the API, the page counts who it hides
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        auth = {"x-api-key": KEY}
        answer = client.put(f"/students/{z}/opt-out", headers=auth)
        assert answer.status_code == 200 and answer.json()["removed"]["predictions"] >= 3
        assert client.get(f"/students/{z}/opt-out", headers=auth).json()["opted_out"] is True
        shown = client.get(
            "/predictions", params={"predicted_dt": ymd(d3), "class_id": class_id}, headers=auth
        )
        assert shown.status_code == 200 and not {x, y, z} & {r["user_id"] for r in shown.json()}
        link = make_link(settings, class_id=class_id, teacher_id="t-0042", ttl_seconds=600)
        page = client.get(link.url.removeprefix(settings.public_url) + f"&date={ymd(d3)}")
        assert page.status_code == 200
        hidden = privacy.hidden_count(class_id=class_id, day=d3)
        assert f'id="not-shown-count">{hidden} students of this class opted out' in page.text
        assert str(x) not in page.text and str(z) not in page.text
        assert client.delete(f"/students/{z}/opt-out", headers=auth).json()["opted_out"] is False
        client.app.state.access_recorder.flush()

    # training leaves them out too (the finished classes' cohorts, scaled without them)
    engine = leb2.connect(settings.leb2_url)
    finished = default_semesters(engine=engine, as_of=TODAY)[-1:]
    classes = pick_classes(engine=engine, semesters=finished, as_of=TODAY).head(1)
    examples, _ = build_examples(settings=settings, engine=engine, classes=classes, as_of=TODAY)
    members = sorted(set(examples["user_id"]) - {x, y})[:2]
    governance.opt_out(settings, members[:1])
    kept, _ = build_examples(
        settings=settings,
        engine=engine,
        classes=classes,
        as_of=TODAY,
        exclusions=optout.load(settings),
    )
    assert members[0] not in set(kept["user_id"]) and members[1] in set(kept["user_id"])

    # a purge by hand, then the retention period in the daily run: the next run catches up
    reference_home = tmp_path / "untouched"
    shutil.copytree(settings.home, reference_home)
    runner = CliRunner()
    purged = runner.invoke(cli, ["purge", "--before", ymd(d3)])
    assert purged.exit_code == 0, purged.output
    assert "prediction days: 2 removed" in purged.output
    assert open_prediction_store(settings.store_url).list_days(class_id=class_id) == [d3]
    os.environ["LOF_RETENTION_DAYS"] = "1"
    try:
        result = daily(d5)  # fills d4's features first; then removes what is before d4
    finally:
        del os.environ["LOF_RETENTION_DAYS"]
    assert result["retention"]["prediction days"] == 1
    assert result["filled_days"] == [ymd(d4)]
    features = open_feature_store(settings.store_url)
    assert not features.is_complete(day=d3) and features.is_complete(day=d4)
    expected = untouched_day_features(settings, reference_home, [d4, d5])
    served = pd.DataFrame(
        [
            {"class_id": r["class_id"], "user_id": r["user_id"], **r["features"]}
            for r in scored_records(settings, d5)
        ]
    )
    assert served.sort_values(["class_id", "user_id"]).to_dict(orient="records") == expected


def scored_records(settings, day: date) -> list[dict]:
    store = open_prediction_store(settings.store_url)
    return [r for c in store_classes(settings) for r in store.read_class_day(day=day, class_id=c)]


def untouched_day_features(settings, home: Path, days: list[date]) -> list[dict]:
    """The raw features of the last of ``days`` computed on a copy of the store taken before
    the purge, day after day as the daily run does."""
    url = f"sqlite:///{home / 'lof.db'}"
    copy = settings.model_copy(update={"home": home, "store_url": url})
    store = open_feature_store(url)
    engine = leb2.connect(settings.leb2_url)
    for day in days:
        computed = scoring.compute_day_features(
            settings=copy,
            engine=engine,
            feature_store=store,
            day=day,
            exclusions=optout.load(copy),
        )
        store.write_day(day=day, increments=computed.increment, states=computed.states)
    names = [*FEATURES, *SIGNALS]  # every input the day stored
    raw = computed.raw[["class_id", "user_id", *names]].sort_values(["class_id", "user_id"])
    return raw.astype({name: float for name in names}).to_dict(orient="records")


def test_the_access_log_and_lof_audit(world: dict) -> None:
    """Each authenticated access is recorded with the key's id or the link's teacher, never a
    key or a student id; `lof audit` prints them; the daily runs' MLflow datasets hold no
    student id column."""
    settings = world["settings"]
    class_id, day = store_classes(settings)[0], ymd(DAYS[0])
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        auth = {"x-api-key": KEY}
        client.get("/predictions", params={"predicted_dt": day, "class_id": class_id}, headers=auth)
        client.get("/predictions", params={"predicted_dt": day, "class_id": class_id})  # no key
        client.post("/links", json={"class_id": class_id, "teacher_id": "t-0042"}, headers=auth)
        link = make_link(settings, class_id=class_id, teacher_id="t-0042", ttl_seconds=600)
        client.get(link.url.removeprefix(settings.public_url) + f"&date={day}")
        client.get(f"/students/{RAW_IDS[0]}/opt-out", headers=auth)
        client.get("/healthz")
        client.app.state.access_recorder.flush()
    shown = CliRunner().invoke(cli, ["audit", "--since", day, "--class-id", str(class_id)])
    assert shown.exit_code == 0, shown.output
    lines = [line.split("\t") for line in shown.stdout.splitlines()]
    assert lines[0] == ["at_utc", "route", "status", "class_id", "day", "teacher_id", "key_id"]
    mine = [line[1:] for line in lines[1:]][-3:]
    key_id = pseudonyms.api_key_id(KEY)
    assert mine[0][:5] == ["GET /predictions", mine[0][1], str(class_id), day, ""]
    assert mine[0][5] == key_id and mine[1] == [
        "POST /links",
        "200",
        str(class_id),
        "",
        "t-0042",
        key_id,
    ]
    assert mine[2][0] == "GET /classes/{class_id}/report" and mine[2][3:] == [day, "t-0042", ""]
    everything = CliRunner().invoke(cli, ["audit", "--since", day]).stdout
    assert f"GET /students/{{user_id}}/opt-out\t200\t\t\t\t{key_id}" in everything
    assert KEY not in everything and str(RAW_IDS[0]) not in everything
    assert "/healthz" not in everything and everything.count("GET /predictions\t") == (
        shown.stdout.count("GET /predictions\t")
    )  # the request without a key is not recorded

    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(DAILY_EXPERIMENT)
    datasets = [
        given.dataset
        # the session's MLflow server is shared: only this university's runs
        for run in client.search_runs(
            [experiment.experiment_id], f"params.model_name = '{settings.model_name}'"
        )
        for given in run.inputs.dataset_inputs
    ]
    assert datasets and all('"user_id"' not in d.schema for d in datasets)
    assert all('"user_pseudonym"' in d.schema for d in datasets)
