"""deployments/ and prefect.yaml: the Cloud webhook template, the trigger, `prefect deploy`."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENTS = ROOT / "deployments"


def promote_trigger() -> dict[str, Any]:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (promote,) = [d for d in config["deployments"] if d["name"] == "promote"]
    (trigger,) = promote["triggers"]
    return trigger


def render_trigger_parameters(event: dict[str, Any]) -> dict[str, Any]:
    """Render the promote trigger's parameters the way the Prefect server's action does."""
    from prefect.server.events.actions import RunDeployment
    from prefect.server.events.schemas.events import ReceivedEvent
    from prefect.utilities.schema_tools.hydration import HydrationContext, hydrate

    parameters = copy.deepcopy(promote_trigger()["parameters"])
    RunDeployment._upgrade_v1_templates(parameters)
    # The server gives a webhook's event its id (and occurred, unless the template sets it).
    context = {"event": ReceivedEvent(**{"id": str(uuid.uuid4()), **event})}
    return hydrate(
        parameters,
        HydrationContext(
            raise_on_error=True,
            render_jinja=True,
            jinja_context=context,
            render_workspace_variables=False,
        ),
    )


def test_cloud_webhook_template_turns_eventbridge_into_the_promote_event() -> None:
    """Rendered with Jinja on AWS's sample shape; the trigger then yields the flow parameters."""
    sample = json.loads((DEPLOYMENTS / "eventbridge-sample-event.json").read_text())
    template = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(
        (DEPLOYMENTS / "prefect-cloud-webhook.j2").read_text()
    )
    event = json.loads(template.render(body=sample, headers={}))
    key = sample["detail"]["object"]["key"]
    assert event["event"] == "lof.model.uploaded"
    assert event["resource"]["prefect.resource.id"] == "lof.model.lof-outcome"
    assert event["resource"]["lof.s3.key"] == key
    assert event["payload"]["bucket"] == "lof-mlflow-artifacts"
    assert event["payload"]["event_id"] == f"eventbridge:{sample['id']}"
    assert event["occurred"] == sample["time"]

    trigger = promote_trigger()
    assert event["event"] in trigger["expect"]
    assert trigger["match"]["prefect.resource.id"] == "lof.model.*"
    params = render_trigger_parameters(event)
    assert params == {
        "version": "",
        "bucket": "lof-mlflow-artifacts",
        "key": key,
        "event_id": f"eventbridge:{sample['id']}",
        "reason": "s3-upload",
        "force": False,
    }

    # A key with characters needing JSON escapes still renders valid JSON.
    odd = copy.deepcopy(sample)
    odd["detail"]["object"]["key"] = 'we"ird\\key'
    assert json.loads(template.render(body=odd, headers={}))["payload"]["key"] == 'we"ird\\key'


def test_trigger_parameters_have_defaults_for_missing_fields() -> None:
    """An event without payload fields still creates a run (no template fails)."""
    bare = {
        "id": str(uuid.uuid4()),
        "occurred": "2025-01-10T02:14:07Z",
        "event": "lof.model.uploaded",
        "resource": {"prefect.resource.id": "lof.model.lof-outcome"},
    }
    params = render_trigger_parameters(bare)
    assert params["version"] == "" and params["key"] == "" and params["reason"] == "s3-upload"
    assert params["event_id"] == bare["id"]


def test_eventbridge_rule_filters_model_files_and_sends_the_secret() -> None:
    class Loader(yaml.SafeLoader):
        pass

    for tag in ("!Ref", "!GetAtt", "!Sub"):
        Loader.add_constructor(tag, lambda loader, node: loader.construct_scalar(node))
    stack = yaml.load((DEPLOYMENTS / "s3-eventbridge.cfn.yaml").read_text(), Loader=Loader)
    rule = stack["Resources"]["ModelUploadRule"]["Properties"]
    assert rule["EventPattern"]["detail-type"] == ["Object Created"]
    auth = stack["Resources"]["WebhookConnection"]["Properties"]["AuthParameters"]
    assert auth["ApiKeyAuthParameters"]["ApiKeyName"] == "x-lof-webhook-secret"
    assert stack["Parameters"]["WebhookSecret"]["NoEcho"] is True


def without_image_build(tmp_path: Path) -> Path:
    """prefect.yaml with the ECS deployments' Docker build and push steps removed and their
    image named directly: no Docker engine runs here, so the image cannot be built. Everything
    else (both pools, schedules, triggers, pull steps) is deployed as written."""
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    for deployment in config["deployments"]:
        if deployment["work_pool"]["name"] == "lof-ecs":
            assert "build_docker_image" in str(deployment.pop("build"))
            assert "push_docker_image" in str(deployment.pop("push"))
            pool = copy.deepcopy(deployment["work_pool"])
            assert pool["job_variables"]["image"] == "{{ build-image.image }}"
            pool["job_variables"]["image"] = "lof:test"
            deployment["work_pool"] = pool
    path = tmp_path / "prefect.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.usefixtures("prefect_api")
def test_prefect_deploy_all_creates_schedules_and_the_trigger(tmp_path: Path) -> None:
    """Both pools: the local process pool and an ECS pool (`ecs`, prefect-aws's worker type;
    Prefect Cloud's `ecs:push` has the same job variables). The image build is skipped, see
    ``without_image_build``."""
    project = ROOT
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "LOF_PROJECT_DIR": str(project),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_CLI_PROMPT": "false",
    }
    prefect = str(Path(sys.executable).parent / "prefect")
    for pool, kind in (("lof-process", "process"), ("lof-ecs", "ecs")):
        subprocess.run(
            [prefect, "work-pool", "create", pool, "--type", kind, "--overwrite"],
            env=env,
            cwd=project,
            check=True,
            capture_output=True,
            timeout=120,
        )
    prefect_file = without_image_build(tmp_path)
    done = subprocess.run(
        [prefect, "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    with get_client(sync_client=True) as client:
        by_name = {
            d.name: d
            for d in client.read_deployments()
            if d.name in {"daily-scoring", "retrain", "promote", "backfill"}
        }
        assert set(by_name) == {"daily-scoring", "retrain", "promote", "backfill"}
        daily = by_name["daily-scoring"].schedules[0].schedule
        assert (daily.cron, daily.timezone) == ("0 3 * * *", "Asia/Bangkok")
        # a second daily run while one runs is cancelled, never queued behind a hung one
        assert by_name["daily-scoring"].global_concurrency_limit.limit == 1
        assert by_name["daily-scoring"].concurrency_options.collision_strategy == "CANCEL_NEW"
        retrain = by_name["retrain"].schedules[0].schedule
        assert retrain.cron == "0 2 10 1,6 *" and retrain.timezone == "Asia/Bangkok"
        assert by_name["backfill"].schedules == [] and by_name["promote"].schedules == []
        assert all(d.work_pool_name == "lof-process" for d in by_name.values())
        assert by_name["promote"].pull_steps[0]["prefect.deployments.steps.set_working_directory"][
            "directory"
        ] == str(project)

        ecs = {
            d.name: d
            for d in client.read_deployments()
            if d.name in {"daily-scoring-ecs", "retrain-ecs", "promote-ecs", "backfill-ecs"}
        }
        assert len(ecs) == 4
        for deployment in ecs.values():
            assert deployment.work_pool_name == "lof-ecs"
            assert deployment.job_variables["image"] == "lof:test"
            assert deployment.pull_steps == [
                {"prefect.deployments.steps.set_working_directory": {"directory": "/opt/lof"}}
            ]
        assert ecs["daily-scoring-ecs"].concurrency_options.collision_strategy == "CANCEL_NEW"
        assert client.read_work_pool("lof-ecs").type == "ecs"

        automations = client.read_resource_related_automations(
            f"prefect.deployment.{by_name['promote'].id}"
        )
        (automation,) = automations
        assert automation.trigger.expect == {"lof.model.uploaded"}
        (action,) = automation.actions
        assert action.deployment_id == by_name["promote"].id
        assert "default(" in action.parameters["version"]
