"""Promotion logic and the promote flow on a real MLflow registry (SQLite, local artifacts)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flows.promote import promote
from lof.core.config import Settings
from lof.core.errors import ModelError
from lof.registry import client as registry
from lof.registry import promotion

from ._support import model_file_key, register, version

MODEL_ID = "m-" + "ab" * 16
RUN_ID = "cd" * 16


def test_keys_are_placed_in_the_mlflow_layout() -> None:
    new = promotion.parse_artifact_key(
        bucket="b", key=f"mlflow/3/models/{MODEL_ID}/artifacts/model.skops"
    )
    assert new is not None and new.model_id == MODEL_ID and new.starts_promotion
    old = promotion.parse_artifact_key(bucket="b", key=f"7/{RUN_ID}/artifacts/model/MLmodel")
    assert old is not None and (old.run_id, old.artifact_path) == (RUN_ID, "model")
    assert old.starts_promotion
    other = promotion.parse_artifact_key(
        bucket="b", key=f"mlflow/3/models/{MODEL_ID}/artifacts/conda.yaml"
    )
    assert other is not None and not other.starts_promotion
    assert promotion.parse_artifact_key(bucket="b", key="reports/2024/summary.csv") is None


@pytest.mark.parametrize(
    ("candidate", "production", "margin", "passes"),
    [
        (0.60, 0.60, 0.02, True),
        (0.59, 0.60, 0.02, True),
        (0.58, 0.60, 0.02, True),  # exactly the margin: not "worse by more than"
        (0.57, 0.60, 0.02, False),
        (0.60, 0.60, 0.0, True),
        (0.599, 0.60, 0.0, False),
        (0.90, 0.10, 0.0, True),
    ],
)
def test_gate_refuses_only_beyond_the_margin(
    candidate: float, production: float, margin: float, passes: bool
) -> None:
    assert (
        promotion.gate_passes(candidate_score=candidate, production_score=production, margin=margin)
        is passes
    )


def test_key_resolves_to_its_registered_version(registry_settings: Settings) -> None:
    first = register(registry_settings, "good")
    second = register(registry_settings, "bad", seed=1)
    key = model_file_key(registry_settings, second)
    ref = promotion.parse_artifact_key(bucket="lof", key=key)
    assert ref is not None
    assert promotion.find_version(settings=registry_settings, ref=ref) == second != first
    assert promotion.artifact_is_known(settings=registry_settings, ref=ref)
    unknown = promotion.parse_artifact_key(
        bucket="lof", key=f"mlflow/1/models/{MODEL_ID}/artifacts/model.skops"
    )
    assert unknown is not None
    assert not promotion.artifact_is_known(settings=registry_settings, ref=unknown)
    assert (
        promotion.wait_for_version(
            settings=registry_settings, ref=unknown, wait_seconds=0.3, poll_seconds=0.1
        )
        is None
    )


def test_missing_model_file_is_waited_for_then_reported(registry_settings: Settings) -> None:
    number = register(registry_settings, "good")
    assert promotion.missing_model_files(settings=registry_settings, version=number) == []
    model_id = version(registry_settings, number).source.removeprefix("models:/")
    stored = next(Path(registry_settings.home, "mlartifacts").rglob(f"{model_id}/artifacts"))
    shutil.move(stored / "model.skops", stored.parent / "model.skops.bak")
    assert promotion.missing_model_files(settings=registry_settings, version=number) == [
        "model.skops"
    ]
    with pytest.raises(ModelError, match=r"still lacks model.skops after 0.3s"):
        promotion.wait_for_model_files(
            settings=registry_settings, version=number, wait_seconds=0.3, poll_seconds=0.1
        )


def _tags(settings: Settings, number: str) -> dict[str, str]:
    return dict(version(settings, number).tags)


def _alias(settings: Settings) -> str:
    client = registry.client(settings=settings)
    return str(client.get_model_version_by_alias(settings.model_name, "production").version)


@pytest.mark.usefixtures("prefect_api")
def test_promote_flow_gates_transitions_and_is_idempotent(registry_settings: Settings) -> None:
    s = registry_settings
    v1 = register(s, "good", seed=0)
    first = promote(version=v1)
    assert first.status == "promoted" and first.previous is None
    assert version(s, v1).current_stage == "Production" and _alias(s) == v1
    tags = _tags(s, v1)
    assert tags["promotion_reason"] == "manual" and tags["promoted_by"] and tags["promoted_at"]

    # A worse candidate is refused: Failed state, one clear message, nothing changed.
    v2 = register(s, "bad", seed=1)
    state = promote(version=v2, return_state=True)
    assert state.is_failed()
    with pytest.raises(ModelError, match=rf"refused to promote version {v2}.*--force"):
        state.result()
    assert version(s, v2).current_stage == "None" and "promoted_at" not in _tags(s, v2)
    assert version(s, v1).current_stage == "Production" and _alias(s) == v1

    # A better one arriving as an S3 upload event is promoted; v1 archived.
    v3 = register(s, "good", seed=2)
    key = model_file_key(s, v3)
    result = promote(bucket="lof-models", key=key, event_id="s3:abc", reason="s3-upload")
    assert (result.status, result.version, result.previous) == ("promoted", v3, v1)
    assert result.gate is not None and result.gate.passed and result.gate.holdout_version == v3
    assert version(s, v3).current_stage == "Production" and _alias(s) == v3
    assert version(s, v1).current_stage == "Archived"
    assert _tags(s, v3)["promotion_event_id"] == "s3:abc"
    stamped = _tags(s, v3)["promoted_at"]

    # The same event again, and the MLmodel key of the same upload: nothing changes.
    again = promote(bucket="lof-models", key=key, event_id="s3:abc", reason="s3-upload")
    assert again.status == "already"
    mlmodel_key = key.rsplit("/", 1)[0] + "/MLmodel"
    same = promote(bucket="lof-models", key=mlmodel_key, event_id="s3:def", reason="s3-upload")
    assert same.status == "already"
    assert _tags(s, v3)["promoted_at"] == stamped and _tags(s, v3)["promotion_event_id"] == "s3:abc"

    # An upload event for an older version, and unrelated keys, are ignored.
    older = promote(bucket="lof-models", key=model_file_key(s, v1), event_id="s3:old")
    assert older.status == "ignored" and "older than Production" in older.message
    unrelated = promote(bucket="lof-models", key="exports/2024/report.csv", event_id="s3:x")
    assert unrelated.status == "ignored"
    conda = promote(bucket="lof-models", key=key.rsplit("/", 1)[0] + "/conda.yaml")
    assert conda.status == "ignored"
    assert version(s, v3).current_stage == "Production" and _alias(s) == v3

    # --force overrides the gate.
    forced = promote(version=v2, force=True)
    assert forced.status == "promoted" and version(s, v2).current_stage == "Production"
    assert version(s, v3).current_stage == "Archived"


@pytest.mark.usefixtures("prefect_api")
def test_refused_alias_promotion_points_the_alias_back(registry_settings: Settings) -> None:
    s = registry_settings
    v1 = register(s, "good", seed=0)
    assert promote(version=v1).status == "promoted"
    v2 = register(s, "bad", seed=1)
    registry.client(settings=s).set_registered_model_alias(s.model_name, "production", v2)
    state = promote(version=v2, reason="mlflow-alias", event_id="mlflow:1", return_state=True)
    assert state.is_failed()
    assert _alias(s) == v1 and version(s, v1).current_stage == "Production"


@pytest.mark.usefixtures("prefect_api")
def test_gate_without_holdout_refuses_unless_forced(registry_settings: Settings) -> None:
    from prefect.client.orchestration import get_client

    s = registry_settings
    v1 = register(s, "good", seed=0, holdout=False)
    assert promote(version=v1).status == "promoted"  # nothing at Production to compare with
    v2 = register(s, "good", seed=3, holdout=False)
    state = promote(version=v2, return_state=True)
    assert state.is_failed()
    line = state.message
    assert "\n" not in line and "no held-out data" in line
    assert f"`lof promote --version {v2} --force`" in line and "MLflow UI" in line
    with pytest.raises(ModelError) as raised:
        state.result()
    assert str(raised.value) == line
    with get_client(sync_client=True) as client:
        (artifact,) = [
            a
            for a in client.read_artifacts()
            if a.key == "promotion-refused" and a.flow_run_id == state.state_details.flow_run_id
        ]
    assert line in artifact.data
    assert version(s, v2).current_stage == "None" and _alias(s) == v1

    v3 = register(s, "good", seed=4, holdout=False)
    assert promote(version=v3, force=True).status == "promoted"
    # The MLflow UI path: a person sets the alias on v2; its webhook's run promotes it.
    registry.client(settings=s).set_registered_model_alias(s.model_name, "production", v2)
    by_alias = promote(version=v2, reason="mlflow-alias", event_id="mlflow:2")
    assert by_alias.status == "promoted" and by_alias.previous == v3
    assert version(s, v2).current_stage == "Production" and _alias(s) == v2
    assert version(s, v3).current_stage == "Archived"


@pytest.mark.usefixtures("prefect_api")
def test_unknown_version_and_missing_input_fail_clearly(registry_settings: Settings) -> None:
    register(registry_settings, "good")
    state = promote(version="99", return_state=True)
    assert state.is_failed()
    with pytest.raises(ModelError, match="has no version 99"):
        state.result()
    state = promote(return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match="needs a version"):
        state.result()
