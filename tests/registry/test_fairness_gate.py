"""The promote gate's opt-in group rule (LOF_PROMOTE_MAX_GAP_INCREASE) on a real MLflow
registry (SQLite, local artifacts) and the promote flow on the session's Prefect server."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from flows.promote import promote
from lof.core.config import Settings, get_settings
from lof.core.errors import ModelError
from lof.features.definitions import FEATURES
from lof.governance import pseudonyms
from lof.registry import promotion

from ._support import EXPERIMENT, version

SECRET = "fairness-gate-secret-0123456789"


def _examples(*, n: int, seed: int) -> pd.DataFrame:
    """Students of two cohorts whose outcome shows in different features: cohort a's in
    avglevel, cohort b's (odd user ids) in material_view."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.random((n, len(FEATURES))), columns=list(FEATURES))
    frame.insert(0, "user_id", np.arange(1, n + 1))
    frame.insert(0, "class_id", 100 + np.arange(n) % 4)
    frame["progress"] = np.where(np.arange(n) < n // 2, 0.25, 0.5)
    shown = np.where(frame["user_id"] % 2 == 1, frame["material_view"], frame["avglevel"])
    frame["label"] = np.clip((shown * 5).astype(int) + 1, 1, 5)
    frame["required_level"] = 3
    return frame


def _fitted(train: pd.DataFrame) -> Any:
    model = Pipeline([("model", LogisticRegression(max_iter=500))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(train[list(FEATURES)], train["label"])
    return model


def _register(settings: Settings, model: Any, held_out: pd.DataFrame) -> str:
    """Log the model and its holdout (students by pseudonym, as retrain stores it) and
    register a version, with MLflow's own API."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    client = mlflow.MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    if client.get_experiment_by_name(EXPERIMENT) is None:
        client.create_experiment(
            EXPERIMENT, artifact_location=(settings.home / "mlartifacts").as_uri()
        )
    mlflow.set_experiment(EXPERIMENT)
    example = held_out[list(FEATURES)].head(3)
    with mlflow.start_run() as run, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(example, model.predict_proba(example)),
            input_example=example,
            pip_requirements=["scikit-learn", "skops"],
        )
        stored = pseudonyms.for_mlflow(held_out, pseudonyms.optional(settings))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "holdout.parquet"
            stored.to_parquet(path, index=False)
            mlflow.log_artifact(str(path), artifact_path="holdout")
    try:
        client.get_registered_model(settings.model_name)
    except Exception:
        client.create_registered_model(settings.model_name)
    created = client.create_model_version(
        name=settings.model_name, source=info.model_uri, run_id=run.info.run_id,
        model_id=info.model_id,
    )  # fmt: skip
    return str(created.version)


@pytest.fixture
def fair_settings(
    registry_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    held_out = _examples(n=400, seed=7)
    groups_file = tmp_path / "groups.csv"
    pd.DataFrame(
        {
            "user_id": held_out["user_id"],
            "cohort": np.where(held_out["user_id"] % 2 == 1, "cohort-b", "cohort-a"),
        }
    ).to_csv(groups_file, index=False)
    monkeypatch.setenv("LOF_PSEUDONYM_SECRET", SECRET)
    monkeypatch.setenv("LOF_STUDENT_GROUPS", str(groups_file))
    monkeypatch.setenv("LOF_PROMOTE_MARGIN", "1.0")  # only the group rule decides here
    monkeypatch.setenv("LOF_GROUP_MIN_SIZE", "20")
    return get_settings()


@pytest.mark.usefixtures("prefect_api")
def test_gate_refuses_a_wider_group_gap_and_force_overrides(
    fair_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = fair_settings
    held_out = _examples(n=400, seed=7)
    both = _fitted(_examples(n=2000, seed=1))  # learns both cohorts' signs
    only_a = _examples(n=2000, seed=2)
    only_a = only_a[only_a["user_id"] % 2 == 0]  # never saw a cohort-b student
    v1 = _register(s, both, held_out)
    assert promote(version=v1).status == "promoted"
    v2 = _register(s, _fitted(only_a), held_out)

    # Off by default: the same candidate passes the gate (margin 1.0).
    report = promotion.run_gate(settings=s, candidate=v2, production=v1, force=False)
    assert report.passed and not report.fairness

    monkeypatch.setenv("LOF_PROMOTE_MAX_GAP_INCREASE", "0.05")
    s = get_settings()
    report = promotion.run_gate(settings=s, candidate=v2, production=v1, force=False)
    assert not report.passed and report.comparable
    assert "largest ROC-AUC gap between cohort groups at" in report.fairness
    assert "LOF_PROMOTE_MAX_GAP_INCREASE 0.05" in report.fairness
    increase = float(report.fairness.split("larger by ")[1].split(",")[0])
    assert increase > 0.2

    state = promote(version=v2, return_state=True)
    assert state.is_failed()
    with pytest.raises(ModelError) as raised:
        state.result()
    line = str(raised.value)
    assert "\n" not in line and f"refused to promote version {v2}" in line
    assert "cohort" in line and f"`lof promote --version {v2} --force`" in line
    assert version(s, v2).current_stage == "None" and version(s, v1).current_stage == "Production"

    # A version no wider than Production passes the rule.
    same = _register(s, both, held_out)
    assert promotion.run_gate(settings=s, candidate=same, production=v1, force=False).passed

    forced = promote(version=v2, force=True)
    assert forced.status == "promoted" and version(s, v2).current_stage == "Production"


def test_the_group_rule_without_groups_or_pseudonyms_refuses_saying_what_to_set(
    fair_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    held_out = _examples(n=200, seed=7)
    monkeypatch.setenv("LOF_PROMOTE_MAX_GAP_INCREASE", "0.05")
    monkeypatch.setenv("LOF_STUDENT_GROUPS", "")
    s = get_settings()
    v1 = _register(s, _fitted(_examples(n=400, seed=1)), held_out)
    v2 = _register(s, _fitted(_examples(n=400, seed=3)), held_out)
    report = promotion.run_gate(settings=s, candidate=v2, production=v1, force=False)
    assert not report.passed and "set LOF_STUDENT_GROUPS" in report.fairness
