"""Promote: gate a registered version and move it to Production (by event or one click).

The flow only sequences tasks: read the registry's state, decide (``promotion.decide``), act.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Failed

from flows.parameters import Version, promote_run_name
from flows.tasks import PROMOTE_TIMEOUT_SECONDS, io_task, run_settings, send_lof_logs_to_prefect
from lof.core.config import Settings
from lof.core.errors import DataError, ModelError
from lof.registry import client as registry
from lof.registry import promotion


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
def read_state(settings: Settings) -> registry.RegistryState:
    return registry.read_state(settings=settings)


@task(cache_policy=NO_CACHE)
def score_gate(
    settings: Settings, candidate: str, production: str | None, force: bool
) -> promotion.GateReport:
    return promotion.run_gate(
        settings=settings, candidate=candidate, production=production, force=force
    )


@io_task()
def move_to_production(
    settings: Settings,
    version: str,
    reason: str,
    event_id: str | None,
    promoted_by: str,
    note: str,
) -> None:
    registry.transition_to_production(
        settings=settings,
        version=version,
        reason=reason,
        event_id=event_id,
        promoted_by=promoted_by,
        note=note,
    )


@io_task()
def restore_alias(settings: Settings, production: str | None) -> None:
    registry.point_alias(settings=settings, version=production)


def _blank(value: str | None) -> str | None:
    """Trigger templates render a missing field as ''; treat it as not given."""
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def not_promoted(version: str, line: str) -> Any:
    """End the run Failed with ``line`` as its message (no traceback) and a Prefect artifact
    saying the same; a caller of the flow (``lof promote``) gets the line as a ModelError."""
    get_run_logger().error(line)
    create_markdown_artifact(
        key="promotion-refused",
        markdown=f"## Version {version} was not promoted\n\n{line}\n",
        description=line[:250],
    )
    return Failed(message=line, data=ModelError(line))


def _result(
    decision: promotion.Decision,
    request: promotion.PromotionRequest,
    state: registry.RegistryState,
    gate: promotion.GateReport | None = None,
) -> promotion.PromotionResult:
    return promotion.PromotionResult(
        status=decision.status,
        message=decision.reason,
        version=request.version,
        previous=state.serving_before(request.version) if decision.status != "already" else None,
        event_id=request.event_id,
        gate=gate,
    )


@flow(name="promote", flow_run_name=promote_run_name, timeout_seconds=PROMOTE_TIMEOUT_SECONDS)
def promote(
    version: Version | None = None,
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

    request = promotion.PromotionRequest(
        version=version,
        event_id=event_id,
        reason=reason,
        upload=f"s3://{bucket}/{key}" if key is not None else None,
    )
    state = read_state(settings)
    previous = state.serving_before(version)
    decision = promotion.decide(request=request, state=state, model_name=settings.model_name)
    if decision.action == "refuse":
        return not_promoted(version, decision.reason)
    if decision.action == "ignore":
        logger.info(decision.reason)
        return _result(decision, request, state)

    wait_for_model_files(settings, version)
    report = score_gate(settings, version, previous, force)
    logger.info(report.describe())
    decision = promotion.decide(
        request=request, state=state, model_name=settings.model_name, gate=report
    )
    if decision.action == "refuse":
        if decision.restore_alias:
            restore_alias(settings, previous)
            logger.info("the alias points back at v%s", previous)
        return not_promoted(version, decision.reason)

    promoted_by = promotion.promoter(reason=reason, event_id=event_id)
    if flow_run.id:
        promoted_by += f" run {flow_run.id}"
    note = report.describe() if report.comparable else decision.reason
    move_to_production(settings, version, reason, event_id, promoted_by, note)
    logger.info(decision.reason)
    return _result(decision, request, state, report)
