"""Operating the flows on a Prefect server: lof logs in the run logs, the notification file."""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lof.automations import load_automations

ROOT = Path(__file__).resolve().parents[2]
AUTOMATIONS = ROOT / "deployments" / "automations.yaml"


def test_automation_file_validates_against_the_installed_prefect_schema() -> None:
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    block_id = uuid.uuid4()
    automations = load_automations(
        AUTOMATIONS, notify_block_id=block_id, deadline_hour=None, schedule_hour=3
    )
    assert all(isinstance(a, AutomationCore) for a in automations)
    by_posture = {a.trigger.posture: a for a in automations}
    assert set(by_posture) == {Posture.Reactive, Posture.Proactive}
    failed = by_posture[Posture.Reactive].trigger
    assert isinstance(failed, EventTrigger)
    assert {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"} <= failed.expect
    late = by_posture[Posture.Proactive].trigger
    assert late.after == {"prefect.flow-run.Pending"} and late.expect == {
        "prefect.flow-run.Completed"
    }
    assert late.within.total_seconds() == 4 * 3600  # 03:00 schedule, 07:00 deadline
    for automation in automations:
        assert set(automation.trigger.match_related.get("prefect.resource.name")) == {
            "daily-scoring",
            "daily-scoring-ecs",
        }
        (action,) = automation.actions
        assert isinstance(action, SendNotification) and action.block_document_id == block_id

    moved = load_automations(
        AUTOMATIONS, notify_block_id=block_id, deadline_hour=9, schedule_hour=3
    )
    (proactive,) = [a for a in moved if a.trigger.posture == Posture.Proactive]
    assert proactive.trigger.within.total_seconds() == 6 * 3600


@pytest.mark.usefixtures("prefect_api")
def test_lof_automations_creates_them_once_on_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.blocks.notifications import SlackWebhook
    from prefect.client.orchestration import get_client

    from lof.cli import app

    block_id = SlackWebhook(url="https://hooks.slack.invalid/services/T/B/X").save(
        "lof-ops-test", overwrite=True
    )
    monkeypatch.chdir(ROOT)
    args = ["automations", "--notify-block", "slack-webhook/lof-ops-test", "--deadline-hour", "8"]
    for _ in range(2):  # a second run replaces, not duplicates
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    missing = CliRunner().invoke(app, ["automations", "--notify-block", "slack-webhook/nope"])
    assert missing.exit_code == 1 and "no such block" in missing.output

    with get_client(sync_client=True) as client:
        failed = client.read_automations_by_name("lof daily-scoring failed")
        late = client.read_automations_by_name("lof daily-scoring not completed by the deadline")
    assert len(failed) == 1 and len(late) == 1
    assert late[0].trigger.within.total_seconds() == 5 * 3600
    assert late[0].actions[0].block_document_id == block_id


@pytest.mark.usefixtures("prefect_api")
def test_lof_library_logs_reach_the_flow_run_logs() -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.runtime import flow_run

    from flows.tasks import send_lof_logs_to_prefect

    marker = f"lof library line {uuid.uuid4().hex}"

    @flow(name="lof-logging-probe")
    def probe() -> str:
        send_lof_logs_to_prefect()
        send_lof_logs_to_prefect()  # idempotent: one handler, one line
        logging.getLogger("lof.scoring").info(marker)
        return str(flow_run.id)

    run_id = probe()
    messages: list[str] = []
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[uuid.UUID(run_id)]))
            )
            messages = [log.message for log in logs]
            if marker in messages:
                break
            time.sleep(0.5)
    assert messages.count(marker) == 1, messages
