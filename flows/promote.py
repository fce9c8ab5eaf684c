"""Promote: gate a registered version and move it to Production (by event or one click)."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.tasks import PROMOTE_TIMEOUT_SECONDS, io_task, run_settings, send_lof_logs_to_prefect
from lof import promotion, registry
from lof.config import Settings
from lof.errors import DataError, ModelError


@io_task()
def resolve_candidate(settings: Settings, bucket: str, key: str) -> str | None:
    """The registered version an uploaded object belongs to, or None (logged why)."""
    logger = get_run_logger()
    ref = promotion.parse_artifact_key(bucket=bucket, key=key)
    if ref is None:
        logger.info("ignored s3://%s/%s: not an MLflow model artifact", bucket, key)
        return None
    if not ref.starts_promotion:
        logger.info("ignored s3://%s/%s: not the model file of %s", bucket, key, ref.owner)
        return None
    version = promotion.wait_for_version(settings=settings, ref=ref)
    if version is None:
        logger.info(
            "ignored s3://%s/%s: %s is not a registered version of %r",
            bucket,
            key,
            ref.owner,
            settings.model_name,
        )
    return version


@io_task()
def wait_for_model_files(settings: Settings, version: str) -> None:
    promotion.wait_for_model_files(settings=settings, version=version)


@io_task()
def check_already_done(settings: Settings, version: str, event_id: str | None) -> str | None:
    return promotion.already_done(settings=settings, version=version, event_id=event_id)


@io_task()
def find_production(settings: Settings) -> str | None:
    return promotion.stage_version(settings=settings)


@task(cache_policy=NO_CACHE)
def score_gate(
    settings: Settings, candidate: str, production: str | None, force: bool
) -> promotion.GateReport:
    return promotion.run_gate(
        settings=settings, candidate=candidate, production=production, force=force
    )


@io_task()
def move_to_production(
    settings: Settings, version: str, reason: str, event_id: str | None, promoted_by: str
) -> None:
    registry.transition_to_production(
        settings=settings,
        version=version,
        reason=reason,
        event_id=event_id,
        promoted_by=promoted_by,
    )


@io_task()
def restore_alias(settings: Settings, production: str | None) -> None:
    promotion.restore_alias(settings=settings, production=production)


def _blank(value: str | None) -> str | None:
    """Trigger templates render a missing field as ''; treat it as not given."""
    if value is None:
        return None
    value = str(value).strip()
    return value or None


@flow(name="promote", timeout_seconds=PROMOTE_TIMEOUT_SECONDS)
def promote(
    version: str | None = None,
    bucket: str | None = None,
    key: str | None = None,
    force: bool = False,
    event_id: str | None = None,
    reason: str = "manual",
) -> promotion.PromotionResult:
    """Gate ``version`` (or the version an uploaded S3 object belongs to) and promote it."""
    send_lof_logs_to_prefect()
    settings = run_settings()
    logger = get_run_logger()
    version, bucket, key, event_id = map(_blank, (version, bucket, key, event_id))
    reason = _blank(reason) or "manual"

    if version is None:
        if key is None:
            raise DataError(
                "promote needs a version (lof promote --version N) or the bucket and key "
                "of an uploaded model file"
            )
        version = resolve_candidate(settings, bucket or "", key)
        if version is None:
            return promotion.PromotionResult(
                status="ignored",
                message=f"ignored s3://{bucket}/{key}: not a registered model file",
                event_id=event_id,
            )

    done = check_already_done(settings, version, event_id)
    if done:
        logger.info(done)
        return promotion.PromotionResult(
            status="already", message=done, version=version, event_id=event_id
        )

    production = find_production(settings)
    if key is not None and production is not None and int(version) < int(production):
        message = (
            f"ignored s3://{bucket}/{key}: version {version} is older than Production "
            f"v{production}; roll back by hand with `lof promote --version {version}`"
        )
        logger.info(message)
        return promotion.PromotionResult(
            status="ignored", message=message, version=version, previous=production
        )

    wait_for_model_files(settings, version)
    report = score_gate(settings, version, production, force)
    logger.info(report.describe())
    if not report.passed:
        if reason == "mlflow-alias":
            restore_alias(settings, production)
            logger.info("alias %r points back at v%s", promotion.PRODUCTION_ALIAS, production)
        raise ModelError(promotion.refusal_message(report, settings=settings))

    promoted_by = promotion.promoter(reason=reason, event_id=event_id)
    if flow_run.id:
        promoted_by += f" run {flow_run.id}"
    move_to_production(settings, version, reason, event_id, promoted_by)
    message = (
        f"promoted version {version} of {settings.model_name!r} to {settings.model_stage}"
        + (f" (v{production} archived)" if production and production != version else "")
        + f"; {report.describe()}"
    )
    logger.info(message)
    return promotion.PromotionResult(
        status="promoted",
        message=message,
        version=version,
        previous=production,
        event_id=event_id,
        gate=report,
    )
