"""Import: register the former system's pickled model as a new version (never promotes).

The CLI checks the file before this flow starts; the flow checks it again, as a deployment
run gets no CLI in front of it.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.parameters import Day, import_run_name
from flows.tasks import io_task, run_settings
from lof import legacy
from lof.core.calendar import parse_day
from lof.core.config import Settings
from lof.core.progress import interactive
from lof.training import legacy_import
from lof.training import retrain as training


@io_task()
def build_training_set(settings: Settings, as_of: str | None) -> training.TrainingSet:
    return training.build_training_set(
        settings=settings,
        semesters=None,
        as_of=parse_day(as_of, what="--as-of") if as_of else None,
        progress=interactive(),
    )


@task(cache_policy=NO_CACHE)
def register(
    settings: Settings, path: str, description: str | None, training_set: training.TrainingSet
) -> legacy_import.ImportResult:
    # No task retries: a retry would start a second run; MLflow calls retry themselves.
    return legacy_import.import_model(
        settings=settings, path=path, description=description, training_set=training_set
    )


@flow(name="import-model", flow_run_name=import_run_name, log_prints=True)
def import_model(
    path: str, description: str | None = None, as_of: Day | None = None
) -> legacy_import.ImportResult:
    """Wrap the classifier pickled at ``path``, score it on lof's examples (the finished
    semesters as of ``as_of``, YYYYMMDD, default today), register it."""
    settings = run_settings()
    legacy.load_classifier(path)  # fail before any I/O on a file that cannot be imported
    legacy.check_description(description)
    if as_of:
        parse_day(as_of, what="--as-of")
    training_set = build_training_set(settings, as_of)
    result = register(settings, path, description, training_set)
    get_run_logger().info(result.describe())
    return result
