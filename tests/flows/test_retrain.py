"""The retrain flow end to end on a synthetic university: real SQLite LEB2, Amplitude export
folder, MLflow sqlite tracking under tmp_path and the session's Prefect test server."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from lof.core.config import get_settings
from lof.core.errors import DataError, ModelError
from lof.features.definitions import FEATURES
from lof.model import outcome as lof_model
from lof.registry import client as registry
from lof.sources import leb2
from lof.synthetic import university as synth
from lof.training import examples as example_set
from lof.training import retrain as training
from tests.servers import free_port

TODAY = date(2025, 3, 1)


@pytest.fixture(scope="module")
def university(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two finished semesters and an ongoing one (seed 7), written once for the module."""
    root = tmp_path_factory.mktemp("university")
    leb2_url = f"sqlite:///{root / 'leb2.db'}"
    summary = synth.synthesize(
        leb2_url=leb2_url, amplitude_dir=root / "amplitude", seed=7, today=TODAY
    )
    return {"root": root, "leb2_url": leb2_url, "summary": summary}


@pytest.fixture
def settings(lof_home: Path, university: dict, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LOF_LEB2_URL", university["leb2_url"])
    monkeypatch.setenv("LOF_AMPLITUDE_SOURCE", str(university["root"] / "amplitude"))
    return get_settings()


def _versions(settings) -> list:
    return registry.client(settings=settings).search_model_versions(f"name='{settings.model_name}'")


def test_retrain_flow_selects_on_risk_and_registers_the_refit(settings, university, prefect_api):
    from flows.retrain import retrain

    result = retrain(as_of="20250301")

    finished = [s.slug for s in university["summary"].finished]
    assert result.semesters == finished
    assert result.holdout_kind == "time"
    comparison = result.comparison.set_index("candidate")
    assert set(comparison.index) == {"logreg", "hist_gb", "hist_gb_calibrated", "mlp_baseline"}
    # Selection reads the grouped-CV risk ROC-AUC at 25%/50%, never the holdout.
    cv = comparison["cv_risk_roc_auc_10_25_50"]
    assert cv[result.candidate] == cv.max()
    # The chosen model ranks risk well on classes it never saw, per progress point.
    for point in (10, 25, 50, 75):
        assert f"holdout_risk_roc_auc_at_{point}" in comparison.columns
        assert f"holdout_risk_ece_at_{point}" in comparison.columns
    chosen = comparison.loc[result.candidate, "holdout_risk_roc_auc_10_25_50"]
    assert chosen > 0.75, result.describe()
    low, high = comparison.loc[result.candidate, ["holdout_ci_low", "holdout_ci_high"]]
    assert low <= chosen <= high
    assert "evaluation time" in result.describe()
    # Lead time, per candidate, in the summary printed after a retrain.
    assert "caught by 25%" in result.describe() and "false alarms@25%" in result.describe()
    caught = comparison["holdout_lead_caught_by_25"]
    assert ((caught >= 0) & (caught <= 1)).all()

    client = registry.client(settings=settings)
    experiment = client.get_experiment_by_name(training.RETRAIN_EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    parent = client.get_run(result.run_id)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == result.run_id]
    assert {r.data.tags["lof.candidate"] for r in children} == set(comparison.index)
    for child in children:
        for name in (
            "cv.risk_roc_auc_10_25_50",
            "cv.ci_low",
            "holdout.risk_roc_auc_at_25",
            "holdout.risk_pr_auc_at_50",
            "holdout.risk_brier_at_10",
            "holdout.risk_ece_at_75",
            "holdout.at_risk_precision_at_50",
            "holdout.at_risk_recall_at_50",
            "holdout.macro_f1_at_50",
            "holdout.lead_caught_by_10",
            "holdout.lead_caught_by_25",
            "holdout.lead_caught_by_50",
            "holdout.lead_median_first_flag",
            "holdout.lead_false_alarms_at_25",
            "cv.lead_caught_by_25",
        ):
            assert name in child.data.metrics, name
        plots = {a.path for a in client.list_artifacts(child.info.run_id, "plots")}
        assert plots == {
            "plots/confusion_matrix.png",
            "plots/metrics_by_progress.png",
            "plots/calibration_curve.png",
        }
    assert parent.data.params["semesters"] == ",".join(finished)
    assert parent.data.params["holdout_kind"] == "time"
    assert int(parent.data.params["examples_reconstructed"]) == result.n_examples
    assert parent.data.tags["lof.fit.registered"].startswith("model: ")
    assert parent.data.tags["lof.fit.evaluation"].startswith("evaluation_model: ")
    contexts = {
        tag.value
        for dataset_input in parent.inputs.dataset_inputs
        for tag in dataset_input.tags
        if tag.key == "mlflow.data.context"
    }
    assert contexts == {"training", "holdout"}

    versions = _versions(settings)
    assert [str(v.version) for v in versions] == [result.version] == ["1"]
    tags = versions[0].tags
    assert tags["semester"] == ",".join(finished)
    assert tags["candidate"] == result.candidate
    assert tags["selection_metric"] == "risk_roc_auc_10_25_50"
    assert tags["holdout_kind"] == "time"
    assert len(tags["training_fingerprint"]) == 64
    assert float(tags["risk_roc_auc_10_25_50"]) == pytest.approx(chosen)
    # The registered model is the refit: it trained on the held-out classes too.
    trained = registry.decode_class_ids(tags[registry.TRAINING_CLASSES_TAG])
    held = registry.decode_class_ids(tags[registry.HOLDOUT_CLASSES_TAG])
    evaluation = registry.decode_class_ids(tags[registry.EVALUATION_CLASSES_TAG])
    assert held and held <= trained and trained == held | evaluation
    assert not held & evaluation
    assert set(result.holdout_class_ids) == held
    assert versions[0].run_id == result.run_id
    assert registry.production_version(settings=settings) is None  # retrain never promotes

    model = registry.load_model_version(settings=settings, version="1")
    assert isinstance(model, lof_model.RiskModel)
    assert set(model.training_class_ids) == trained
    assert float(tags[registry.THRESHOLD_TAG]) == pytest.approx(model.threshold)
    assert 0.0 < model.threshold < 1.0 and result.threshold == pytest.approx(model.threshold)
    fit_without_holdout = registry.load_model_uri(
        settings=settings, uri=tags[registry.EVALUATION_MODEL_TAG]
    )
    assert set(fit_without_holdout.training_class_ids) == evaluation

    holdout = registry.load_holdout(settings=settings, version="1")
    # MLflow keeps no student id (no LOF_PSEUDONYM_SECRET here: no student column at all)
    assert list(holdout.columns) == [c for c in example_set.HOLDOUT_COLUMNS if c != "user_id"]
    assert set(holdout["class_id"]) == held
    assert sorted(holdout["progress"].unique()) == [0.1, 0.25, 0.5, 0.75, 1.0]
    pyfunc = mlflow.pyfunc.load_model(f"models:/{settings.model_name}/1")
    # The signature lists the model's own inputs: the 13, then the early-warning signals, then
    # the class's required level the risk is measured against.
    inputs = lof_model.input_features(model)
    assert inputs[: len(FEATURES)] == list(FEATURES) and len(inputs) > len(FEATURES)
    assert pyfunc.metadata.get_input_schema().input_names() == [*inputs, "required_level"]
    served = pyfunc.predict(holdout[[*inputs, "required_level"]].head(7))
    proba = lof_model.level_probabilities(model=model, features=holdout.head(7))
    risk = lof_model.model_risk(model, proba, holdout["required_level"].head(7).to_numpy())
    np.testing.assert_allclose(served["risk_prob"], risk, rtol=0, atol=1e-12)


def test_every_cohort_member_is_an_example(settings, university, monkeypatch):
    """Students with page views but no assessed record are examples with label 1; a visitor
    (no record, at most LOF_VISITOR_MAX_VIEWS class page views) is not."""
    built = training.build_training_set(settings=settings, semesters=None, as_of=TODAY)
    examples = built.examples
    engine = leb2.connect(settings.leb2_url)
    ids = built.classes["class_id"].tolist()
    assessed = leb2.final_levels(engine, class_ids=ids, rule="attainment")
    keys = ["class_id", "user_id"]
    merged = examples.merge(
        assessed.assign(assessed=True), on=keys, how="left", suffixes=("", "_r")
    )
    without = merged[merged["assessed"].isna()]
    assert len(without), "the synthetic university has early withdrawers"
    assert (without["label"] == 1).all()
    # every progress point holds them (they were in the cohort from their first page view)
    assert set(without["progress"]) == set(lof_model.PROGRESS_POINTS)
    assert built.students_without_record == without[keys].drop_duplicates().shape[0]
    # the assessed ones keep their level
    with_record = merged[merged["assessed"].notna()]
    assert (with_record["label"] == with_record["label_r"]).all()

    monkeypatch.setenv("LOF_VISITOR_MAX_VIEWS", "1000")
    strict = training.build_training_set(settings=get_settings(), semesters=None, as_of=TODAY)
    assert strict.students_without_record == 0
    assert strict.visitors_left_out >= built.students_without_record
    assert len(strict.examples) == len(examples) - len(without)


def test_semester_without_finished_classes_is_a_clear_error(settings, university):
    ongoing = university["summary"].ongoing.slug
    with pytest.raises(DataError, match=f"semester {ongoing} has no finished"):
        training.run_retrain(settings=settings, semesters=[ongoing], as_of=TODAY)
    with pytest.raises(DataError, match="semester 9/1999 not found"):
        training.run_retrain(settings=settings, semesters=["9/1999"], as_of=TODAY)
    assert _versions(settings) == []


def test_dataset_with_wrong_columns_registers_nothing(settings, tmp_path):
    bad = tmp_path / "legacy.csv"
    pd.DataFrame({"Target": [1, 2], **{f: [0.1, 0.2] for f in FEATURES[:-1]}}).to_csv(
        bad, index=False
    )
    with pytest.raises(DataError, match="lacks column\\(s\\) avglevel"):
        training.run_retrain(settings=settings, as_of=TODAY, dataset=bad)
    assert _versions(settings) == []


def test_class_without_labels_is_named(settings, university, tmp_path, monkeypatch):
    copy = tmp_path / "leb2.db"
    shutil.copy(university["root"] / "leb2.db", copy)
    with sqlite3.connect(copy) as conn:
        class_id = conn.execute(
            "SELECT c.id FROM classes c JOIN semesters s ON s.id = c.semester_id "
            "WHERE c.type = 'obem' AND c.deleted_at IS NULL ORDER BY c.id LIMIT 1"
        ).fetchone()[0]
        conn.execute(
            "DELETE FROM act_sub_points WHERE activity_id IN "
            "(SELECT id FROM activities WHERE class_id = ?)",
            (class_id,),
        )
    monkeypatch.setenv("LOF_LEB2_URL", f"sqlite:///{copy}")
    with pytest.raises(DataError, match=f"class\\(es\\) {class_id} .* have no labels"):
        training.run_retrain(settings=get_settings(), as_of=TODAY)
    assert _versions(settings) == []


def test_failure_after_training_registers_nothing(settings, monkeypatch):
    """A plot that fails mid-run (fault injected into lof.plots.plot_calibration, as no real
    part fails on demand there) leaves the run failed and the registry without a version; the
    error is not taken for an MLflow outage."""
    from lof.training import plots

    def broken(**kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(plots, "plot_calibration", broken)
    with pytest.raises(OSError, match="disk full"):  # not an MLflow outage: kept as raised
        training.run_retrain(
            settings=settings,
            as_of=TODAY,
            candidate_names=["logreg", "mlp_baseline"],
            mlp_max_iter=5,
            n_splits=2,
        )
    assert _versions(settings) == []
    client = registry.client(settings=settings)
    experiment = client.get_experiment_by_name(training.RETRAIN_EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    assert runs and all(
        r.info.status == "FAILED" for r in runs if "lof.candidate" not in r.data.tags
    )


def test_unreachable_mlflow_is_one_line_naming_the_setting(settings, monkeypatch):
    """No server behind MLFLOW_TRACKING_URI: one ModelError naming the setting, nothing else."""
    built = training.build_training_set(settings=settings, semesters=None, as_of=TODAY)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("LOF_MLFLOW_HTTP_RETRIES", "0")
    try:
        with pytest.raises(ModelError, match="nothing was registered; check MLFLOW_TRACKING_URI"):
            training.train_and_register(
                settings=get_settings(),
                training=built,
                candidate_names=["logreg"],
                n_splits=2,
            )
    finally:
        registry.use_tracking_server(settings)  # the URIs and HTTP bounds the other tests use
    assert _versions(settings) == []


def test_as_of_backtest_uses_only_what_was_known(settings, university):
    first = university["summary"].finished[0]
    built = training.build_training_set(
        settings=settings, semesters=None, as_of=first.last_day + timedelta(days=1)
    )
    assert built.semesters == [first.slug]
    assert set(built.examples["semester"]) == {first.slug}
    assert built.examples["label"].between(1, 5).all()
