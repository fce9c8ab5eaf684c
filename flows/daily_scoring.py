"""Daily scoring: yesterday's events and LEB2 state in, today's at-risk predictions out."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine

from flows.parameters import Day, daily_run_name
from flows.tasks import (
    DAILY_RETRY_DELAY_SECONDS,
    DAILY_TIMEOUT_SECONDS,
    io_task,
    outage_attempts,
    run_settings,
    send_lof_logs_to_prefect,
)
from lof import legacy, scoring
from lof.core.calendar import format_day, parse_day, yesterday_local
from lof.core.config import Settings
from lof.core.progress import count_bar, interactive
from lof.core.retry import call_with_retries, is_outage
from lof.features import drift
from lof.governance import erasure as governance
from lof.governance import optout
from lof.model import outcome as lof_model
from lof.model import reasons
from lof.model.classifier import Classifier
from lof.registry import client as registry
from lof.registry import tracking
from lof.sources import leb2
from lof.stores import open_feature_store, open_prediction_store
from lof.stores.base import FeatureStore, PredictionStore
from lof.stores.privacy import open_privacy_store


@io_task()
def find_ongoing_classes(settings: Settings, engine: Engine, day: date) -> pd.DataFrame:
    return leb2.ongoing_classes(
        engine,
        day=day,
        window_months=settings.ongoing_window_months,
        grace_days=settings.grace_days,
    )


@task(cache_policy=NO_CACHE)
def load_model(settings: Settings) -> tuple[Classifier, str]:
    model, version = registry.load_production_model(settings=settings)
    lof_model.check_model_features(model)
    return model, version


@io_task()
def load_exclusions(settings: Settings) -> optout.Exclusions:
    return optout.load(settings)


@io_task()
def build_features(
    settings: Settings,
    engine: Engine,
    feature_store: FeatureStore,
    day: date,
    classes: pd.DataFrame,
    exclusions: optout.Exclusions = optout.NO_EXCLUSIONS,
) -> scoring.DayFeatures:
    return scoring.compute_day_features(
        settings=settings,
        engine=engine,
        feature_store=feature_store,
        day=day,
        classes=classes,
        exclusions=exclusions,
    )


@io_task()
def write_features(feature_store: FeatureStore, day_features: scoring.DayFeatures) -> None:
    feature_store.write_day(
        day=day_features.day, increments=day_features.increment, states=day_features.states
    )


@task(cache_policy=NO_CACHE)
def predict(
    settings: Settings, model: Classifier, version: str, day_features: scoring.DayFeatures
) -> pd.DataFrame:
    inputs = legacy.model_inputs(model=model, raw=day_features.raw, scaled=day_features.scaled)
    predictions = lof_model.predict_frame(
        model=model,
        features=inputs,
        required_levels=day_features.classes[["class_id", "required_level"]],
        threshold=settings.risk_threshold,
    )
    out = scoring.attach_model_and_features(
        predictions, raw=day_features.raw, model_name=settings.model_name, model_version=version
    )
    out["reasons"] = reasons.explain(
        model=model,
        scaled=inputs,
        raw=day_features.raw,
        required=predictions["required_level"].to_numpy(),
        risk=predictions["risk_prob"].to_numpy(),
        at_risk=predictions["at_risk"].to_numpy(),
    )
    return out


@io_task()
def write_predictions(
    prediction_store: PredictionStore, day: date, predictions: pd.DataFrame
) -> None:
    prediction_store.write_day(day=day, predictions=predictions)


@io_task()
def record_hidden(
    settings: Settings, exclusions: optout.Exclusions, day_features: scoring.DayFeatures
) -> int:
    """Remember, per class, the opted-out students the day left out (the class page counts
    them); returns how many the day's classes do not show."""
    privacy = open_privacy_store(settings.store_url)
    try:
        hidden = optout.day_hidden(
            store=privacy,
            exclusions=exclusions,
            day=day_features.day,
            class_ids=day_features.classes["class_id"].tolist(),
            found=day_features.hidden,
        )
        privacy.replace_hidden(day=day_features.day, hidden=hidden)
        return sum(len(h) for h in hidden.values())
    finally:
        privacy.close()


@io_task()
def apply_retention(settings: Settings, day: date) -> dict[str, int]:
    """LOF_RETENTION_DAYS: remove the days before the cut from every store."""
    cut = governance.retention_cut(settings, day)
    if cut is None:
        return {}
    removed = governance.purge(settings, cut)
    get_run_logger().info(
        "retention (LOF_RETENTION_DAYS=%d): removed before %s: %s",
        settings.retention_days,
        format_day(cut),
        ", ".join(removed.lines()),
    )
    return removed.counts


@io_task()
def feature_drift(
    settings: Settings, version: str, day_features: scoring.DayFeatures
) -> dict[str, float]:
    """PSI per feature of the day's model inputs against the model's training examples."""
    reference = drift.load_reference(
        tracking_uri=settings.mlflow_tracking_uri or "",
        run_id=registry.version_info(settings=settings, version=version).run_id,
    )
    if reference is None:
        get_run_logger().info("model v%s has no drift reference: drift not measured", version)
        return {}
    return drift.day_psi(reference=reference, features=day_features.scaled)


@io_task()
def log_to_mlflow(
    settings: Settings,
    summary: scoring.DaySummary,
    day_features: scoring.DayFeatures,
    psi: dict[str, float],
) -> str:
    where = tracking.semester_of(classes=day_features.classes, day=summary.day)
    return tracking.log_scoring_run(
        settings=settings,
        day=summary.day,
        model_name=settings.model_name,
        model_version=summary.model_version,
        metrics=summary.metrics
        | scoring.feature_metrics(day_features.raw)
        | scoring.source_metrics(day_features)
        | drift.drift_metrics(psi),
        raw_features=day_features.raw,
        semester=where[0] if where else None,
        day_index=where[1] if where else None,
        per_class=summary.per_class,
    )


def report_drift(settings: Settings, day: date, version: str, psi: dict[str, float]) -> None:
    """A warning and a Prefect artifact when some feature's PSI is over the threshold."""
    threshold = settings.drift_psi_threshold
    over = drift.drifted(psi, threshold=threshold)
    if not over:
        return
    get_run_logger().warning(
        "feature drift on %s against model v%s: %s (PSI > %g); the students no longer look "
        "like the ones the model learnt from, consider `lof retrain`",
        format_day(day),
        version,
        ", ".join(f"{name} {value:.2f}" for name, value in over.items()),
        threshold,
    )
    create_markdown_artifact(
        key="daily-feature-drift",
        markdown=drift.markdown_report(
            day=format_day(day), version=version, psi_by_feature=psi, threshold=threshold
        ),
        description=f"features drifted on {format_day(day)}: {', '.join(over)}",
    )


def fill_missing_days(
    settings: Settings,
    engine: Engine,
    feature_store: FeatureStore,
    day: date,
    classes: pd.DataFrame,
    exclusions: optout.Exclusions = optout.NO_EXCLUSIONS,
) -> list[date]:
    """Catch up: build the features store day by day up to D-1 so day D reads D-1's state."""
    missing = scoring.days_to_fill(feature_store=feature_store, classes=classes, day=day)
    if missing:
        get_run_logger().info(
            "features store is behind: filling %d day(s) %s..%s first",
            len(missing),
            format_day(missing[0]),
            format_day(missing[-1]),
        )
    with count_bar(interactive() and bool(missing), what="filling missed days") as advance:
        for n, past in enumerate(missing, start=1):
            past_classes = find_ongoing_classes(settings, engine, past)
            past_features = build_features(
                settings, engine, feature_store, past, past_classes, exclusions
            )
            write_features(feature_store, past_features)
            if advance is not None:
                advance(n, len(missing))
    return missing


@flow(
    name="daily-scoring",
    flow_run_name=daily_run_name,
    log_prints=True,
    timeout_seconds=DAILY_TIMEOUT_SECONDS,
)
def daily_scoring(date: Day | None = None) -> dict[str, Any]:
    """Score day ``date`` (YYYYMMDD; default yesterday in LOF_TIMEZONE) for every ongoing class.

    In a deployment's run, an outage of LEB2, Amplitude, the stores or MLflow that outlasts each
    adapter's own retries (a restart at 03:00) runs the day again after a pause, a bounded
    number of times (``outage_attempts``); a data or configuration error fails the run at once.
    Rerunning a day is idempotent.
    """
    send_lof_logs_to_prefect()
    settings = run_settings()
    day = parse_day(date, what="--date") if date else yesterday_local(settings.tz)
    return call_with_retries(
        lambda: score_day(settings, day),
        is_transient=is_outage,
        attempts=outage_attempts(),
        base_delay=DAILY_RETRY_DELAY_SECONDS,
        max_delay=4 * DAILY_RETRY_DELAY_SECONDS,
        min_delay=lambda _: DAILY_RETRY_DELAY_SECONDS,
        what=f"daily scoring of {format_day(day)}",
    )


def score_day(settings: Settings, day: date) -> dict[str, Any]:
    """One attempt at day ``day``: every step of the daily flow, in order."""
    logger = get_run_logger()
    exclusions = load_exclusions(settings)
    model, version = load_model(settings)
    engine = leb2.connect(settings.leb2_url)
    feature_store = open_feature_store(settings.store_url, state_dir=settings.home / "cache")
    prediction_store = open_prediction_store(settings.store_url)

    classes = find_ongoing_classes(settings, engine, day)
    filled = fill_missing_days(settings, engine, feature_store, day, classes, exclusions)
    day_features = build_features(settings, engine, feature_store, day, classes, exclusions)
    predictions = predict(settings, model, version, day_features)
    summary = scoring.summarize_day(day=day, predictions=predictions, model_version=version)

    # Predictions first: the features store's last complete day is what catch-up trusts, so it
    # may only move to D once D's predictions are stored.
    write_predictions(prediction_store, day, predictions)
    not_shown = record_hidden(settings, exclusions, day_features)
    write_features(feature_store, day_features)
    retention = apply_retention(settings, day)
    psi = feature_drift(settings, version, day_features)
    run_id = log_to_mlflow(settings, summary, day_features, psi)
    report_drift(settings, day, version, psi)

    per_class = summary.per_class.merge(classes[["class_id", "code"]], on="class_id", how="left")
    create_table_artifact(
        key="daily-scoring-summary",
        table=[
            {
                "class": f"{row.code} ({row.class_id})",
                "students scored": int(row.students),
                "at risk": int(row.at_risk),
            }
            for row in per_class.itertuples()
        ],
        description=f"lof predictions for {format_day(day)} with {settings.model_name} v{version}",
    )
    logger.info(
        "scored %s: %d classes, %d students, %d at risk (model v%s)",
        format_day(day),
        len(summary.per_class),
        int(summary.metrics["students"]),
        int(summary.metrics["at_risk"]),
        version,
    )
    return {
        "day": format_day(day),
        "model_version": version,
        "filled_days": [format_day(d) for d in filled],
        "per_class": per_class.to_dict(orient="records"),
        "mlflow_run_id": run_id,
        "drift": psi,
        "not_shown": not_shown,
        "retention": retention,
    }
