"""Retrain: examples from finished classes, candidates compared in MLflow, the winner registered.

The flow never promotes: the new version waits for `lof promote` (or the upload event).
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.parameters import Day, retrain_run_name
from flows.tasks import RETRAIN_TIMEOUT_SECONDS, io_task, run_settings, send_lof_logs_to_prefect
from lof.core.calendar import parse_day
from lof.core.config import Settings
from lof.core.progress import interactive
from lof.training import retrain as training


@io_task()
def build_training_set(
    settings: Settings, semesters: list[str] | None, as_of: str | None, dataset: str | None
) -> training.TrainingSet:
    return training.build_training_set(
        settings=settings,
        semesters=semesters,
        as_of=parse_day(as_of, what="--as-of") if as_of else None,
        dataset=dataset,
        progress=interactive(),
    )


@task(cache_policy=NO_CACHE)
def train_and_register(
    settings: Settings, training_set: training.TrainingSet
) -> training.RetrainResult:
    # No task retries: a retry would start a second parent run; MLflow calls retry themselves.
    return training.train_and_register(settings=settings, training=training_set)


@flow(
    name="retrain",
    flow_run_name=retrain_run_name,
    log_prints=True,
    timeout_seconds=RETRAIN_TIMEOUT_SECONDS,
)
def retrain(
    semesters: list[str] | None = None, as_of: Day | None = None, dataset: str | None = None
) -> training.RetrainResult:
    """Train on ``semesters`` (default: every finished one) as of day ``as_of`` (YYYYMMDD)."""
    send_lof_logs_to_prefect()
    settings = run_settings()
    logger = get_run_logger()
    if as_of:
        parse_day(as_of, what="--as-of")  # fail before any I/O on a malformed day
    training_set = build_training_set(settings, semesters, as_of, dataset)
    sources = training_set.sources()
    logger.info(
        "training on %s: %d examples (%d from --dataset) from %d classes; %d examples from the "
        "features the daily flow stored, %d reconstructed (%d days from the features store, %d "
        "from Amplitude); %d cohort members without an assessed record labelled 1, %d visitors "
        "left out",
        ", ".join(training_set.semesters),
        len(training_set.examples),
        training_set.legacy_rows,
        len(training_set.classes),
        sources["examples_from_predictions"],
        sources["examples_reconstructed"],
        sources["days_from_store"],
        sources["days_from_amplitude"],
        sources["students_without_record"],
        sources["visitors_left_out"],
    )
    result = train_and_register(settings, training_set)
    logger.info(
        "evaluation: %s; registered the chosen candidate refitted on every example",
        result.holdout_kind,
    )
    create_markdown_artifact(
        key="retrain-comparison",
        markdown=result.markdown(),
        description=f"candidates compared for {settings.model_name} v{result.version}",
    )
    logger.info(result.describe())
    return result
