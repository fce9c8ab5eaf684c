"""deployments/ and prefect.yaml: the Cloud webhook template, the trigger, `prefect deploy`."""

from __future__ import annotations

import copy
import json
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


def test_days_and_versions_validate_as_a_person_types_them() -> None:
    """`prefect deployment run -p date=20261206 -p version=2` sends JSON numbers: the flows'
    parameter schemas (what the server checks) take them, and still refuse what is no day or
    version; the flows then read them as text."""
    from prefect.utilities.callables import parameter_schema
    from prefect.utilities.schema_tools.validation import ValidationError, validate

    from flows.backfill import backfill
    from flows.daily_scoring import daily_scoring
    from flows.promote import promote
    from flows.retrain import retrain

    cases = [
        (daily_scoring, {"date": 20261206}, {"date": 2026126}),
        (daily_scoring, {"date": "20261206"}, {"date": "yesterday"}),
        (backfill, {"start": 20261201, "end": "2026-12-06"}, {"start": 20261201, "end": 1.5}),
        (retrain, {"as_of": 20260110}, {"as_of": True}),
        (promote, {"version": 2}, {"version": 0}),
        (promote, {"version": ""}, {"version": "v2"}),
    ]
    for flow, typed, wrong in cases:
        schema = parameter_schema(flow).model_dump()
        validate(typed, schema, raise_on_error=True)
        with pytest.raises(ValidationError):
            validate(wrong, schema, raise_on_error=True)
    from pydantic import TypeAdapter

    from flows.parameters import Day, Version

    assert TypeAdapter(Day).validate_python(20261206) == "20261206"
    assert TypeAdapter(Version).validate_python(2) == "2"
