"""Day one on lof with the former system's artefacts, driven through the CLI as an operator
would: `lof import-model` a pickled MLPClassifier trained on former-style columns, `lof promote
--force` on the empty registry, `lof daily`, then a retrain with a former training file whose
new version is gated against the imported one. Real SQLite LEB2 and stores, Amplitude export
folder, MLflow sqlite tracking and the session's Prefect test server.

The pickle is made here by the current scikit-learn: a scikit-learn 1.0.2 pickle cannot be
produced on this Python. It records "1.0.2" as its version instead (see test_legacy), so the
import takes the InconsistentVersionWarning path a real former pickle takes.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from lof import legacy
from lof.core.config import get_settings
from lof.core.errors import ModelError
from lof.features.definitions import FEATURES, LEVELS
from lof.registry import client as registry
from lof.registry import promotion
from lof.stores import open_prediction_store
from lof.synthetic import university as synth
from lof.training import examples as example_set
from lof.training import legacy_import
from lof.training import retrain as training
from tests.servers import free_port

from .test_legacy import _pickle_claiming

TODAY = date(2025, 3, 1)
DAY = TODAY - timedelta(days=1)
# The module fixture runs three CLI commands, each starting Prefect: minutes on a busy host.
pytestmark = pytest.mark.timeout(1500)


def lof(*args: str) -> str:
    """Run the installed console script against the test Prefect server."""
    from prefect.settings import get_current_settings

    env = os.environ | {"PREFECT_API_URL": str(get_current_settings().api.url), "COLUMNS": "200"}
    exe = Path(sys.executable).with_name("lof")
    done = subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"lof {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def former_inputs(features: pd.DataFrame) -> pd.DataFrame:
    """lof-named features as the former model's N_ columns, in the former order."""
    renamed = {lof_name: former for former, lof_name in legacy.FORMER_TO_LOF.items()}
    return features[list(FEATURES)].rename(columns=renamed)[list(legacy.FORMER_COLUMNS)]


@pytest.fixture(scope="module")
def day_one(tmp_path_factory: pytest.TempPathFactory, prefect_api: None) -> Iterator[dict]:
    """A synthetic university, the former files made from it, then import, promote, daily."""
    from sklearn.neural_network import MLPClassifier

    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith("LOF_") or name == "MLFLOW_TRACKING_URI":
            del os.environ[name]
    root = tmp_path_factory.mktemp("day-one")
    os.environ.update(LOF_HOME=str(root / "home"), LOF_MODEL_NAME=f"lof-{uuid.uuid4().hex[:8]}")
    try:
        settings = get_settings()
        synth.synthesize(
            leb2_url=settings.leb2_url,
            amplitude_dir=Path(settings.amplitude_source),
            seed=7,
            today=TODAY,
            students=150,
            classes=6,
            days=4,
        )
        built = training.build_training_set(settings=settings, semesters=None, as_of=TODAY)
        final = built.examples[built.examples["progress"] == 1.0].reset_index(drop=True)
        former = former_inputs(final)
        file_a = root / "former_a.csv"  # unnamed index, Target, then the 13 N_ columns
        pd.concat([final["label"].astype(float).rename("Target"), former], axis=1).to_csv(file_a)
        file_b = root / "former_b.csv"  # the 13 N_ columns, then maxlevel
        former.assign(maxlevel=final["label"]).to_csv(file_b, index=False)

        train = pd.read_csv(file_a, index_col=0)
        mlp = MLPClassifier(hidden_layer_sizes=(100,), max_iter=400, random_state=0)
        mlp.fit(train[list(legacy.FORMER_COLUMNS)], train["Target"])
        assert list(mlp.classes_) == [1.0, 2.0, 3.0, 4.0, 5.0]
        pickled = root / "former_model.pkl"
        pickled.write_bytes(_pickle_claiming(mlp, "1.0.2"))

        imported = lof(
            "import-model",
            str(pickled),
            "--description",
            "former production MLP",
            "--as-of",
            f"{TODAY:%Y%m%d}",
        )
        version = re.search(r"as version (\d+)", imported).group(1)
        promoted = lof("promote", "--version", version, "--force")
        daily = lof("daily", "--date", f"{DAY:%Y%m%d}")
        yield {
            "settings": settings,
            "mlp": mlp,
            "pickled": pickled,
            "version": version,
            "output": {"import": imported, "promote": promoted, "daily": daily},
            "file_a": file_a,
            "file_b": file_b,
            "final": final,
        }
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_import_registers_a_tagged_version_with_signature_and_metrics(day_one):
    settings, version = day_one["settings"], day_one["version"]
    assert version == "1"
    assert "pickled with scikit-learn 1.0.2" in day_one["output"]["import"]
    info = registry.version_info(settings=settings, version=version)
    tags = info.tags
    assert tags["imported"] == "true"
    assert tags["source_file"] == "former_model.pkl"
    assert tags["source_sha256"] == hashlib.sha256(day_one["pickled"].read_bytes()).hexdigest()
    assert tags["pickled_with"] == "1.0.2"
    assert tags["input_scaling"] == legacy.WITHIN_CLASS
    # the promotion that followed the import says how and why below the given description
    assert info.description.startswith("former production MLP\n\nPromoted to Production on ")

    import mlflow.artifacts
    import mlflow.sklearn

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    mlmodel = yaml.safe_load(
        mlflow.artifacts.load_text(f"models:/{settings.model_name}/{version}/MLmodel")
    )
    inputs = yaml.safe_load(mlmodel["signature"]["inputs"])
    assert [column["name"] for column in inputs] == [*FEATURES, "required_level"]
    outputs = yaml.safe_load(mlmodel["signature"]["outputs"])
    assert [column["name"] for column in outputs][:2] == ["risk_prob", "prob_level_1"]
    assert mlmodel["flavors"]["python_function"]["loader_module"] == "lof.registry.pyfunc"
    assert mlmodel["flavors"]["sklearn"]["serialization_format"] == "skops"

    # The metrics are those of the pickle itself on lof's held-out examples, computed here
    # without lof's evaluation code.
    from sklearn.metrics import f1_score

    holdout = registry.load_holdout(settings=settings, version=version)
    at_50 = holdout[holdout["progress"] == 0.5]
    proba = day_one["mlp"].predict_proba(former_inputs(at_50))
    expected = f1_score(
        at_50["label"], np.asarray(LEVELS)[proba.argmax(axis=1)], average="macro", zero_division=0
    )
    run = registry.client(settings=settings).get_run(info.run_id)
    assert run.data.metrics["holdout.macro_f1_at_50"] == pytest.approx(expected)
    assert float(tags["macro_f1_at_50"]) == pytest.approx(expected)
    for point in (25, 50, 75, 100):
        assert f"holdout.at_risk_recall_at_{point}" in run.data.metrics
        assert f"all.brier_at_{point}" in run.data.metrics
    assert registry.read_state(settings=settings).stage_version == version
    staged = mlflow.sklearn.load_model(f"models:/{settings.model_name}/Production")
    assert isinstance(staged, legacy.LegacyModel)
    assert np.array_equal(
        staged.predict_proba(holdout), day_one["mlp"].predict_proba(former_inputs(holdout))
    )


def test_daily_predictions_are_the_pickles_own_on_the_same_scaled_inputs(day_one):
    settings, mlp = day_one["settings"], day_one["mlp"]
    assert f"model v{day_one['version']}" in day_one["output"]["daily"]
    store = open_prediction_store(settings.store_url)
    from lof.sources import leb2

    classes = leb2.ongoing_classes(
        leb2.connect(settings.leb2_url), day=DAY, window_months=settings.ongoing_window_months
    )
    checked = 0
    for class_id in classes["class_id"]:
        records = store.read_class_day(day=DAY, class_id=int(class_id))
        assert records, f"no predictions for class {class_id}"
        raw = pd.DataFrame([r["features"] for r in records])[list(FEATURES)]
        low, span = raw.min(), raw.max() - raw.min()
        scaled = ((raw - low) / span.where(span > 0)).fillna(0.0)  # within the class's cohort
        expected = mlp.predict_proba(former_inputs(scaled))
        stored = np.array([[r["predicted_prob"][str(level)] for level in LEVELS] for r in records])
        assert np.allclose(stored, expected, rtol=0, atol=1e-9)
        assert [r["predicted_label"] for r in records] == list(expected.argmax(axis=1) + 1)
        assert {r["model_version"] for r in records} == {day_one["version"]}
        checked += len(records)
    assert checked > 20


def test_both_former_file_styles_feed_a_retrain(day_one):
    settings, final = day_one["settings"], day_one["final"]
    for path in (day_one["file_a"], day_one["file_b"]):
        built = training.build_training_set(
            settings=settings, semesters=None, as_of=TODAY, dataset=path
        )
        rows = built.examples[built.examples["class_id"] == example_set.LEGACY_CLASS_ID]
        assert built.legacy_rows == len(rows) == len(final)
        assert rows["label"].tolist() == final["label"].tolist()
        assert np.allclose(rows[list(FEATURES)].to_numpy(), final[list(FEATURES)].to_numpy())


def test_first_retrain_after_the_import_is_gated_against_it(day_one):
    settings, mlp = day_one["settings"], day_one["mlp"]
    result = training.run_retrain(
        settings=settings,
        as_of=TODAY,
        dataset=day_one["file_b"],
        candidate_names=["logreg"],
        n_splits=2,
    )
    assert result.version == "2"
    assert f"of which {len(day_one['final'])} from --dataset" in result.describe()

    report = promotion.run_gate(
        settings=settings, candidate=result.version, production=day_one["version"], force=False
    )
    assert report.production == day_one["version"]
    assert report.holdout_version == result.version
    from sklearn.metrics import roc_auc_score

    # The gate's metric of the pickle itself on the candidate's holdout, computed here without
    # lof's evaluation code: mean risk ROC-AUC at 10%, 25% and 50%, risk = P(level < required).
    holdout = registry.load_holdout(settings=settings, version=result.version)
    assert report.rows == len(holdout)
    proba = mlp.predict_proba(former_inputs(holdout))
    levels = np.asarray(LEVELS)[None, :]
    required = holdout["required_level"].to_numpy()[:, None]
    risk = (proba * (levels < required)).sum(axis=1)
    below = holdout["label"].to_numpy() < holdout["required_level"].to_numpy()
    progress = holdout["progress"].to_numpy()
    expected = np.mean(
        [
            roc_auc_score(below[np.isclose(progress, p)], risk[np.isclose(progress, p)])
            for p in (0.1, 0.25, 0.5)
        ]
    )
    assert report.metric == promotion.GATE_METRIC == "risk_roc_auc_10_25_50"
    assert report.production_score == pytest.approx(expected)
    assert report.passed == (report.candidate_score >= expected - settings.promote_margin - 1e-12)


def test_unreachable_mlflow_is_one_line_naming_the_setting(day_one, monkeypatch):
    """No server behind MLFLOW_TRACKING_URI: one ModelError naming it, nothing registered."""
    settings = day_one["settings"]
    built = training.build_training_set(settings=settings, semesters=None, as_of=TODAY)
    before = registry.client(settings=settings).search_model_versions(
        f"name='{settings.model_name}'"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("LOF_MLFLOW_HTTP_RETRIES", "0")
    try:
        with pytest.raises(ModelError, match="nothing was registered; check MLFLOW_TRACKING_URI"):
            legacy_import.import_model(
                settings=get_settings(), path=day_one["pickled"], training_set=built
            )
    finally:
        registry.use_tracking_server(settings)  # the URIs and HTTP bounds the other tests use
    after = registry.client(settings=settings).search_model_versions(
        f"name='{settings.model_name}'"
    )
    assert len(after) == len(before)
