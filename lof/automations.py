"""The daily run's notifications as Prefect automations (deployments/automations.yaml).

The file is the source of truth; ``apply_automations`` fills in what only a workspace knows
(the notification block's id) and the deadline, validates every automation against the
installed Prefect's schema, and replaces automations of the same name, so running it twice
leaves one copy of each.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

import yaml

from lof.core.errors import ConfigError

if TYPE_CHECKING:
    from prefect.events.schemas.automations import AutomationCore

BLOCK_PLACEHOLDER = "{{ notify_block_id }}"
DAILY_DEPLOYMENT = "daily-scoring"


def daily_schedule_hour(prefect_yaml: Path) -> int:
    """The local hour the daily deployment is scheduled at (its cron's hour field)."""
    config = yaml.safe_load(prefect_yaml.read_text())
    for deployment in config.get("deployments", []):
        if deployment.get("name") == DAILY_DEPLOYMENT and deployment.get("schedules"):
            hour = str(deployment["schedules"][0]["cron"]).split()[1]
            if hour.isdigit():
                return int(hour)
    raise ConfigError(f"{prefect_yaml}: no daily-scoring deployment with a cron at a fixed hour")


def load_automations(
    path: Path, *, notify_block_id: UUID, deadline_hour: int | None, schedule_hour: int
) -> list[AutomationCore]:
    """The file's automations, completed and validated (``AutomationCore`` models).

    ``deadline_hour`` (local) sets the proactive trigger's window: from the scheduled start to
    that hour, so a run still not completed then notifies.
    """
    from prefect.events.schemas.automations import AutomationCore
    from pydantic import ValidationError

    text = path.read_text().replace(BLOCK_PLACEHOLDER, str(notify_block_id))
    data = yaml.safe_load(text)
    entries = data.get("automations", []) if isinstance(data, dict) else data
    automations = []
    for entry in entries:
        trigger = entry.get("trigger", {})
        if deadline_hour is not None and trigger.get("posture") == "Proactive":
            hours = (deadline_hour - schedule_hour) % 24
            if hours == 0:
                raise ConfigError(
                    f"--deadline-hour {deadline_hour} is the schedule's own hour; "
                    "give a later local hour"
                )
            trigger["within"] = hours * 3600
        try:
            automations.append(AutomationCore.model_validate(entry))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(
                f"{path}: automation {entry.get('name')!r} is invalid at {where}: {first['msg']}"
            ) from None
    return automations


async def apply_automations(
    *, path: Path, prefect_yaml: Path, notify_block: str, deadline_hour: int | None
) -> list[tuple[str, UUID]]:
    """Create the file's automations in the Prefect workspace; returns (name, id) pairs.

    ``notify_block`` is a notification block's slug, ``<block-type>/<name>`` (e.g.
    ``slack-webhook/lof-ops``), created beforehand in the UI or with ``prefect block create``.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    block_type, _, block_name = notify_block.partition("/")
    if not block_type or not block_name:
        raise ConfigError(
            f"--notify-block {notify_block!r}: expected <block-type>/<name>, "
            "e.g. slack-webhook/lof-ops"
        )
    async with get_client() as client:
        try:
            block = await client.read_block_document_by_name(
                name=block_name, block_type_slug=block_type, include_secrets=False
            )
        except ObjectNotFound:
            raise ConfigError(
                f"--notify-block {notify_block!r}: no such block in this Prefect workspace; "
                "create it first (Prefect UI > Blocks, or `prefect block create`)"
            ) from None
        automations = load_automations(
            path,
            notify_block_id=block.id,
            deadline_hour=deadline_hour,
            schedule_hour=daily_schedule_hour(prefect_yaml),
        )
        created = []
        for automation in automations:
            for old in await client.read_automations_by_name(automation.name):
                await client.delete_automation(old.id)
            created.append((automation.name, await client.create_automation(automation)))
    return created
