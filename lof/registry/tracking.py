"""MLflow record of each daily scoring run: model used, counts, share at risk, feature drift."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from datetime import date

import mlflow
import pandas as pd
from mlflow.data.pandas_dataset import from_pandas

from lof.core.calendar import format_day
from lof.core.config import Settings
from lof.governance import pseudonyms
from lof.registry import client as registry

DAILY_EXPERIMENT = "lof-daily-scoring"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
"""MLflow 3's mark of a model-training experiment (the value its UI's kind selector writes).

MLflow 3.17's UI no longer reads it: a global switch (its sidebar's GenAI / Model training,
remembered per browser, GenAI by default) picks the view, and the URL parameter
``UI_VIEW_PARAMETER`` overrides it, hence the parameter on every MLflow link lof gives."""
UI_VIEW_PARAMETER = "workflowType=machine_learning"


def semester_label(slugs: Iterable[str]) -> str:
    """Semester slugs as a run name part: ``1/2025``, ``2/2025`` -> ``1-2025+2-2025``."""
    return "+".join(str(slug).replace("/", "-") for slug in slugs)


def ui_url(*, settings: Settings, experiment_id: str, run_id: str | None = None) -> str | None:
    """The MLflow UI page of an experiment (or of one of its runs) in the model-training view;
    None when the tracking URI is no server (sqlite, a folder). Credentials are left out."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(settings.mlflow_tracking_uri or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    page = f"#/experiments/{experiment_id}" + (f"/runs/{run_id}" if run_id else "")
    return f"{base}/{page}?{UI_VIEW_PARAMETER}"


def local_artifact_location(*, settings: Settings, name: str) -> str | None:
    """Artifacts of a local (sqlite/file) tracking store go under LOF_HOME, not the working dir.

    A tracking server decides its own artifact store (S3 in production), so None there.
    """
    uri = settings.mlflow_tracking_uri or ""
    if not (uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri):
        return None
    return (settings.home / "mlartifacts" / name).as_uri()


def ensure_experiment(*, settings: Settings, name: str) -> str:
    """The id of experiment ``name``, created on first use, marked as a model-training
    experiment (``EXPERIMENT_KIND``; an experiment made before is marked on its next use)."""
    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(
            name,
            artifact_location=local_artifact_location(settings=settings, name=name),
            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
        )
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id


def log_scoring_run(
    *,
    settings: Settings,
    day: date,
    model_name: str,
    model_version: str,
    metrics: dict[str, float],
    raw_features: pd.DataFrame,
    semester: str | None = None,
    day_index: int | None = None,
    per_class: pd.DataFrame | None = None,
) -> str:
    """One run per scored day, tagged with the day; returns the run id.

    With a ``semester``, the day's run is a child of that semester's trend run, which gets the
    same metrics at ``step = day_index`` (days since the semester's first activity) so the
    MLflow UI charts a semester as one series, and ``per_class`` rows appended to its
    ``per_class_shares.json`` table (one row per class and day, not one metric key per class).
    """
    experiment_id = ensure_experiment(settings=settings, name=DAILY_EXPERIMENT)
    registry.use_tracking_server(settings)
    trend_id = (
        semester_run(
            settings=settings, experiment_id=experiment_id, semester=semester, model_name=model_name
        )
        if semester
        else None
    )
    tags = {"lof.day": format_day(day), "lof.model_version": str(model_version)}
    if trend_id:
        tags |= {"mlflow.parentRunId": trend_id, "lof.semester": str(semester)}
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"daily-{format_day(day)}", tags=tags
    ) as run:
        mlflow.log_params(
            {"day": format_day(day), "model_name": model_name, "model_version": str(model_version)}
        )
        mlflow.log_metrics(metrics)
        if not raw_features.empty:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=UserWarning)  # int id columns, by design
                logged = pseudonyms.for_mlflow(raw_features, pseudonyms.optional(settings))
                dataset = from_pandas(logged, name=f"features-{format_day(day)}")
                mlflow.log_input(dataset, context="scoring")
    if trend_id:
        log_semester_day(
            settings=settings,
            run_id=trend_id,
            day=day,
            day_index=day_index or 0,
            metrics=metrics,
            per_class=per_class,
        )
    _retire_earlier_runs(
        settings=settings,
        experiment_id=experiment_id,
        day=day,
        model_name=model_name,
        keep=run.info.run_id,
    )
    return run.info.run_id


def semester_of(*, classes: pd.DataFrame, day: date) -> tuple[str, int] | None:
    """The semester the day's scoring belongs to and the day's index in it (0 = first day).

    The semester of most of the day's ongoing classes (the look-back window may still hold a
    few of the previous one); its first day is its classes' earliest activity start.
    """
    if classes.empty or "semester" not in classes.columns:
        return None
    counts = classes["semester"].astype(str).value_counts()
    semester = sorted(counts[counts == counts.max()].index)[-1]
    first = pd.Timestamp(
        classes.loc[classes["semester"].astype(str) == semester, "first_start"].min()
    )
    return semester, max((day - first.date()).days, 0)


TREND_TAG = "lof.trend"
PER_CLASS_TABLE = "per_class_shares.json"


def semester_run(*, settings: Settings, experiment_id: str, semester: str, model_name: str) -> str:
    """The id of the semester's trend run in the daily experiment, created on first use."""
    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    found = client.search_runs(
        [experiment_id],
        f"tags.`{TREND_TAG}` = 'semester' and tags.`lof.semester` = '{semester}' "
        f"and tags.`lof.model_name` = '{model_name}'",
        max_results=1,
    )
    if found:
        return found[0].info.run_id
    run = client.create_run(
        experiment_id,
        run_name=f"semester-{semester_label([semester])}",
        tags={TREND_TAG: "semester", "lof.semester": semester, "lof.model_name": model_name},
    )
    client.log_param(run.info.run_id, "semester", semester)
    return run.info.run_id


def log_semester_day(
    *,
    settings: Settings,
    run_id: str,
    day: date,
    day_index: int,
    metrics: dict[str, float],
    per_class: pd.DataFrame | None,
) -> None:
    """Add the day to the semester's series: metrics at step ``day_index``, per-class rows.

    The trend run is ended again after each day (FINISHED, its end time the day's run): MLflow
    logs to an ended run, and the UI then shows no semester as running forever."""
    from mlflow.entities import Metric

    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    stamp = int(pd.Timestamp(day).timestamp() * 1000)  # x-axis "time" shows the scored day
    batch = [Metric(k, float(v), stamp, day_index) for k, v in metrics.items()]
    for start in range(0, len(batch), 1000):  # MLflow's batch limit
        client.log_batch(run_id, metrics=batch[start : start + 1000])
    if per_class is not None and not per_class.empty:
        table = per_class.copy()
        # ISO, not YYYYMMDD: MLflow re-reads the table to append, and would turn digits into ints
        table.insert(0, "day", day.isoformat())
        table.insert(1, "day_index", day_index)
        client.log_table(run_id, table, PER_CLASS_TABLE)
    client.set_terminated(run_id, "FINISHED")


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
