"""MLflow record of each daily scoring run: model used, counts, share at risk, feature drift."""

from __future__ import annotations

import warnings
from datetime import date

import mlflow
import pandas as pd

from lof.calendar import format_day
from lof.config import Settings

DAILY_EXPERIMENT = "lof-daily-scoring"


def local_artifact_location(*, settings: Settings, name: str) -> str | None:
    """Artifacts of a local (sqlite/file) tracking store go under LOF_HOME, not the working dir.

    A tracking server decides its own artifact store (S3 in production), so None there.
    """
    uri = settings.mlflow_tracking_uri or ""
    if not (uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri):
        return None
    return (settings.home / "mlartifacts" / name).as_uri()


def ensure_experiment(*, settings: Settings, name: str) -> str:
    """The id of experiment ``name``, created on first use."""
    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(
        name, artifact_location=local_artifact_location(settings=settings, name=name)
    )


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
    experiment_id = ensure_experiment(settings=settings, name=DAILY_EXPERIMENT)
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
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=UserWarning)  # int id columns, by design
                dataset = mlflow.data.from_pandas(raw_features, name=f"features-{format_day(day)}")
                mlflow.log_input(dataset, context="scoring")
    _retire_earlier_runs(
        settings=settings,
        experiment_id=experiment_id,
        day=day,
        model_name=model_name,
        keep=run.info.run_id,
    )
    return run.info.run_id


def _retire_earlier_runs(
    *, settings: Settings, experiment_id: str, day: date, model_name: str, keep: str
) -> None:
    """A rerun of day D replaces its record: earlier runs of D move to MLflow's deleted runs
    (restorable there), so the experiment shows one run per day."""
    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    earlier = client.search_runs(
        [experiment_id],
        f"tags.`lof.day` = '{format_day(day)}' and params.model_name = '{model_name}'",
    )
    for run in earlier:
        if run.info.run_id != keep:
            client.delete_run(run.info.run_id)
