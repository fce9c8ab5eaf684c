"""The registered model's pyfunc, loaded by alias from a real `mlflow server`, serves the risk
and level probabilities the daily scoring computes, under a signature naming those columns."""

from __future__ import annotations

import uuid
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.exceptions import MlflowException

from lof.core.config import Settings, get_settings
from lof.core.errors import DataError
from lof.features.definitions import FEATURES
from lof.model import outcome as lof_model
from lof.registry import client as registry
from lof.registry import pyfunc, tracking

from ._support import examples, fitted

REQUIRED = {100: 2, 101: 3, 102: 4, 103: 5}


@pytest.fixture
def server_settings(
    lof_home: Path, mlflow_server: str, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("LOF_MODEL_NAME", f"lof-pyfunc-{uuid.uuid4().hex[:8]}")
    return get_settings()


def test_the_production_pyfunc_serves_lofs_risk_and_level_probabilities(
    server_settings: Settings,
) -> None:
    s = server_settings
    model = lof_model.RiskModel(fitted("good"), coef=1.3, intercept=-0.2, threshold=0.35)
    rows = examples(n=40, seed=5)
    rows["required_level"] = rows["class_id"].map(REQUIRED)
    experiment = tracking.ensure_experiment(settings=s, name="lof-retrain")
    registry.use_tracking_server(s)
    with mlflow.start_run(experiment_id=experiment) as run:
        logged = registry.log_model(model=model, input_example=rows[[*FEATURES, "required_level"]])
    version = registry.register_version(
        settings=s,
        model_uri=logged.model_uri,
        run_id=run.info.run_id,
        tags={},
        model_id=logged.model_id,
    )
    registry.transition_to_production(settings=s, version=version)

    served = mlflow.pyfunc.load_model(f"models:/{s.model_name}@{registry.production_alias(s)}")
    signature = served.metadata.signature
    assert signature.inputs.input_names() == [*FEATURES, "required_level"]
    assert signature.outputs.input_names() == [
        "risk_prob",
        *(f"prob_level_{level}" for level in range(1, 6)),
    ]
    output = served.predict(rows[[*FEATURES, "required_level"]])
    assert list(output.columns) == signature.outputs.input_names()

    daily_model, daily_version = registry.load_production_model(settings=s)
    assert daily_version == version and isinstance(daily_model, lof_model.RiskModel)
    daily = lof_model.predict_frame(
        model=daily_model,
        features=rows[["class_id", "user_id", *FEATURES]],
        required_levels=REQUIRED,
    )
    np.testing.assert_allclose(output["risk_prob"], daily["risk_prob"], rtol=0, atol=1e-12)
    levels = np.array([[p[str(level)] for level in range(1, 6)] for p in daily["predicted_prob"]])
    np.testing.assert_allclose(output[list(pyfunc.LEVEL_COLUMNS)], levels, rtol=0, atol=1e-12)
    # the calibration is served: the raw risk of the same rows differs
    raw = lof_model.risk_probabilities(levels, rows["required_level"].to_numpy())
    assert not np.allclose(raw, output["risk_prob"])

    outside = rows[[*FEATURES, "required_level"]].head(3).assign(required_level=[3, 9, 0])
    with pytest.raises(DataError, match="2 row\\(s\\) with required_level outside the levels 1-5"):
        served.predict(outside)
    with pytest.raises(MlflowException, match="required_level"):
        served.predict(rows[list(FEATURES)].head(3))
