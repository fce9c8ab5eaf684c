"""MLflow record of each daily scoring run: model used, counts, share at risk, feature drift."""

from __future__ import annotations

from datetime import date

import mlflow
import pandas as pd

from lof.calendar import format_day
from lof.config import Settings

DAILY_EXPERIMENT = "lof-daily-scoring"


def log_scoring_run(
    *,
    settings: Settings,
    day: date,
    model_name: str,
    model_version: str,
    metrics: dict[str, float],
    raw_features: pd.DataFrame,
) -> str:
    """One run per scored day, tagged with the day; returns the run id."""
    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(DAILY_EXPERIMENT)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(DAILY_EXPERIMENT)
    )
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=f"daily-{format_day(day)}",
        tags={"lof.day": format_day(day), "lof.model_version": str(model_version)},
    ) as run:
        mlflow.log_params(
            {"day": format_day(day), "model_name": model_name, "model_version": str(model_version)}
        )
        mlflow.log_metrics(metrics)
        if not raw_features.empty:
            dataset = mlflow.data.from_pandas(raw_features, name=f"features-{format_day(day)}")
            mlflow.log_input(dataset, context="scoring")
        return run.info.run_id
