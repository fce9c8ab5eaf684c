"""Feature drift: the reference stored with a model version, PSI per feature, the warning."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pandas as pd
import pytest

from lof.features import drift
from lof.features.definitions import FEATURES


def examples(n: int, *, seed: int, shift: dict[str, float] | None = None) -> pd.DataFrame:
    """Scaled features as the model sees them: within-class min-max values in [0, 1], many 0s."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"class_id": rng.integers(1, 6, n), "user_id": np.arange(n)})
    for i, name in enumerate(FEATURES):
        values = rng.beta(1.5 + i % 3, 2.0, n)
        values[rng.random(n) < 0.15] = 0.0
        frame[name] = values
    for name, power in (shift or {}).items():
        frame[name] = frame[name] ** power  # most students now near 0 on this feature
    return frame


def test_psi_is_small_for_the_same_population_and_large_for_a_shifted_one() -> None:
    reference = drift.build_reference(examples=examples(4000, seed=1))
    assert set(reference["features"]) == set(FEATURES)
    assert all(len(f["shares"]) == len(f["edges"]) + 1 for f in reference["features"].values())
    same = drift.day_psi(reference=reference, features=examples(600, seed=2))
    assert max(same.values()) < 0.1, same
    shifted = drift.day_psi(
        reference=reference, features=examples(600, seed=3, shift={"avglevel": 4.0})
    )
    assert shifted["avglevel"] > 0.25
    assert max(v for k, v in shifted.items() if k != "avglevel") < 0.1
    assert drift.drifted(shifted, threshold=0.25) == {"avglevel": shifted["avglevel"]}
    assert drift.day_psi(reference=reference, features=examples(0, seed=4)) == {}


@pytest.mark.usefixtures("prefect_api")
def test_a_shifted_day_warns_and_leaves_an_artifact(
    registry_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reference travels with a registered version's run (as at registration); the daily
    flow's drift tasks read it back for the version being used and flag the shifted feature."""
    import mlflow
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.runtime import flow_run

    from flows.daily_scoring import feature_drift, report_drift
    from lof import scoring

    settings = registry_settings
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    # An experiment of this store: the process may still hold another store's active one.
    experiment = mlflow.set_experiment("drift-reference")
    with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
        drift.log_reference(examples=examples(3000, seed=5))
    client = mlflow.MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    client.create_registered_model(settings.model_name)
    version = client.create_model_version(
        settings.model_name, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
    ).version

    day = pd.Timestamp("2025-03-01").date()
    empty = pd.DataFrame()
    shifted = scoring.DayFeatures(
        day, empty, empty, empty, empty, examples(500, seed=6, shift={"material_view": 5.0})
    )

    @flow(name="lof-drift-probe")
    def probe() -> tuple[dict[str, float], str]:
        psi = feature_drift(settings, str(version), shifted)
        report_drift(settings, day, str(version), psi)
        return psi, str(flow_run.id)

    psi, run_id = probe()
    assert drift.drifted(psi, threshold=settings.drift_psi_threshold).keys() == {"material_view"}
    with get_client(sync_client=True) as prefect:
        artifacts = prefect.read_artifacts()
        mine = [
            a for a in artifacts if a.key == "daily-feature-drift" and str(a.flow_run_id) == run_id
        ]
        assert len(mine) == 1 and "| material_view |" in mine[0].data
        assert "**drifted**" in mine[0].data
        deadline, warned = time.monotonic() + 30, []
        while time.monotonic() < deadline and not warned:
            logs = prefect.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[uuid.UUID(run_id)]))
            )
            warned = [log for log in logs if "feature drift on 20250301" in log.message]
            time.sleep(0.5)
    assert warned and warned[0].level == 30 and "material_view" in warned[0].message
