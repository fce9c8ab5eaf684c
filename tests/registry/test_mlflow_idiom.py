"""MLflow 3 as lof uses it, on a real registry (SQLite): the alias is Production, the pyfunc
serves what its signature says, experiments are model-training ones, trend runs end, and the
registered model and its versions describe themselves."""

from __future__ import annotations

from datetime import date

import mlflow
import numpy as np
import pandas as pd

from lof.core.config import Settings
from lof.features.definitions import FEATURES
from lof.model import outcome as lof_model
from lof.registry import client as registry
from lof.registry import tracking

from ._support import examples, fitted


def test_a_registered_version_describes_itself_serves_its_signature_and_is_promoted_by_alias(
    registry_settings: Settings,
) -> None:
    s = registry_settings
    experiment = tracking.ensure_experiment(settings=s, name="lof-retrain")
    kind = mlflow.MlflowClient(s.mlflow_tracking_uri).get_experiment(experiment).tags
    assert kind[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"

    model = lof_model.RiskModel(fitted("good"), coef=1.2, intercept=-0.1, threshold=0.4)
    example = examples(n=6, seed=3)[list(FEATURES)]
    registry.use_tracking_server(s)
    with mlflow.start_run(experiment_id=experiment) as run:
        logged = registry.log_model(model=model, input_example=example)
    version = registry.register_version(
        settings=s,
        model_uri=logged.model_uri,
        run_id=run.info.run_id,
        tags={"semester": "1/2025"},
        model_id=logged.model_id,
        description=f"Semesters 1/2025: logreg.\n\n{registry.NOT_PROMOTED}",
    )
    client = registry.client(settings=s)
    assert client.get_registered_model(s.model_name).description == registry.MODEL_DESCRIPTION

    served = mlflow.pyfunc.load_model(logged.model_uri)
    names = served.metadata.get_output_schema().input_names()
    assert names == ["risk_prob", *(f"prob_level_{level}" for level in range(1, 6))]
    output = served.predict(example.assign(required_level=3))
    assert list(output.columns) == names  # what the pyfunc returns is what the signature says
    levels = output[names[1:]].to_numpy()
    assert levels.shape == (6, 5) and np.allclose(levels.sum(axis=1), 1.0)
    assert np.allclose(levels, model.predict_proba(example))
    assert np.allclose(output["risk_prob"], model.risk(levels, np.full(6, 3)))

    registry.transition_to_production(
        settings=s, version=version, reason="manual", promoted_by="ops", note="gate passes"
    )
    info = client.get_model_version(s.model_name, version)
    assert "production" in info.aliases and info.current_stage == "Production"
    assert info.description.startswith("Semesters 1/2025: logreg.")
    assert registry.NOT_PROMOTED not in info.description
    assert info.description.endswith("by ops (manual): gate passes")
    # the alias decides: a stage moved by hand elsewhere does not change Production
    client.transition_model_version_stage(s.model_name, version, "Archived")
    assert registry.production_version(settings=s) == version


def test_a_semester_trend_run_is_ended_after_each_day(registry_settings: Settings) -> None:
    s = registry_settings
    raw = pd.DataFrame()
    for index, day in enumerate((date(2025, 3, 1), date(2025, 3, 2))):
        tracking.log_scoring_run(
            settings=s,
            day=day,
            model_name=s.model_name,
            model_version="1",
            metrics={"students": 10.0 + index},
            raw_features=raw,
            semester="2/2024",
            day_index=index,
        )
    client = mlflow.MlflowClient(s.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(tracking.DAILY_EXPERIMENT)
    assert experiment.tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    (trend,) = client.search_runs(
        [experiment.experiment_id], f"tags.`{tracking.TREND_TAG}` = 'semester'"
    )
    assert trend.info.run_name == "semester-2-2024" and trend.info.status == "FINISHED"
    steps = [(m.step, m.value) for m in client.get_metric_history(trend.info.run_id, "students")]
    assert sorted(steps) == [(0, 10.0), (1, 11.0)]
