"""POST /webhooks/s3 and /webhooks/mlflow on a real registry, emitting to the real Prefect server.

"Nothing emitted" is checked on the Prefect server itself: after the refused requests, one good
request is sent and, once its event is readable, it must be the only one for the model.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from mlflow.webhooks.delivery import _generate_hmac_signature

from lof.api.problems import ApiProblem
from lof.api.routes import webhooks
from lof.core.config import Settings, get_settings
from tests.registry._support import model_file_key, register

SECRET = "s3-hook-secret"
MLFLOW_SECRET = "mlflow-hook-secret"
BUCKET = "lof-models"


def direct(bucket: str, raw_key: str, *, name: str = "ObjectCreated:Put") -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventTime": "2025-01-10T02:14:07.000Z",
                "eventName": name,
                "s3": {
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": raw_key, "size": 10, "eTag": "abc", "sequencer": "0A1"},
                },
            }
        ]
    }


def sns(message: dict[str, Any] | str) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:lof",
        "Message": message if isinstance(message, str) else json.dumps(message),
    }


def eventbridge(bucket: str, key: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "time": "2025-01-10T02:14:07Z",
        "detail": {
            "bucket": {"name": bucket},
            "object": {"key": key, "size": 10, "etag": "abc", "sequencer": "0A1"},
        },
    }


def encoded(key: str) -> str:
    return key.replace("/", "%2F")


def test_notification_shapes_are_parsed_and_keys_decoded() -> None:
    uploads, skipped = webhooks.parse_s3_notification(direct("b", "a+b%2Fc%2Bd.txt"))
    assert [u.key for u in uploads] == ["a b/c+d.txt"] and not skipped
    wrapped, _ = webhooks.parse_s3_notification(sns(direct("b", "x%2Fy")))
    assert wrapped[0].key == "x/y" and wrapped[0].event_id == (
        webhooks.parse_s3_notification(direct("b", "x%2Fy"))[0][0].event_id
    )
    bridged, _ = webhooks.parse_s3_notification(eventbridge("b", "x/y"))
    assert (bridged[0].bucket, bridged[0].key) == ("b", "x/y")
    for ignored in (
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"},
        direct("b", "k", name="ObjectRemoved:Delete"),
        {"Type": "SubscriptionConfirmation", "TopicArn": "t", "Token": "x"},
    ):
        assert webhooks.parse_s3_notification(ignored)[0] == []
    for bad in ({"hello": 1}, [1, 2], {"Records": "x"}, {"Records": [{"s3": {}}]}, sns("{trunc")):
        with pytest.raises(ApiProblem) as refused:
            webhooks.parse_s3_notification(bad)
        assert refused.value.status_code == 400 and refused.value.detail
    record = direct("b", "k")["Records"][0]
    for bad, field in (
        ({"Records": [record | {"s3": {"bucket": "b", "object": {"key": "k"}}}]}, "s3.bucket"),
        ({"Records": [record | {"s3": {"bucket": {"name": "b"}, "object": ["k"]}}]}, "s3.object"),
        ({"Records": [record] * 101}, "Records"),
        (eventbridge("b", "k") | {"detail": {"bucket": {"name": 5}}}, "detail.bucket.name"),
        (sns(eventbridge("b", "") | {"detail-type": 3}), "SNS Message: detail-type"),
    ):
        with pytest.raises(ApiProblem) as refused:
            webhooks.parse_s3_notification(bad)
        assert refused.value.status_code == 400 and field in refused.value.detail


def test_secret_is_checked_in_constant_time_forms() -> None:
    from pydantic import SecretStr

    secret = SecretStr(SECRET)
    basic = base64.b64encode(f"lof:{SECRET}".encode()).decode()
    assert webhooks.authorized({"x-lof-webhook-secret": SECRET}, secret)
    assert webhooks.authorized({"authorization": f"Bearer {SECRET}"}, secret)
    assert webhooks.authorized({"authorization": f"Basic {basic}"}, secret)
    assert not webhooks.authorized({"x-lof-webhook-secret": SECRET + "x"}, secret)
    assert not webhooks.authorized({"authorization": "Basic !!!"}, secret)
    assert not webhooks.authorized({}, secret)
    assert not webhooks.authorized({"x-lof-webhook-secret": ""}, None)


def mlflow_request(
    body: dict[str, Any], *, secret: str = MLFLOW_SECRET, age: int = 0
) -> tuple[bytes, dict[str, str]]:
    """Signed exactly as MLflow's webhook delivery signs (its own function)."""
    payload = json.dumps(body)
    delivery, stamp = str(uuid.uuid4()), str(int(time.time()) - age)
    return payload.encode(), {
        "content-type": "application/json",
        "x-mlflow-delivery-id": delivery,
        "x-mlflow-timestamp": stamp,
        "x-mlflow-signature": _generate_hmac_signature(secret, delivery, stamp, payload),
    }


def alias_event(name: str, version: str, alias: str = "production") -> dict[str, Any]:
    return {
        "entity": "model_version_alias",
        "action": "created",
        "timestamp": "2025-01-10T02:14:07+00:00",
        "data": {"name": name, "alias": alias, "version": version},
    }


@pytest.fixture
def hook_settings(registry_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("LOF_MODEL_NAME", f"lof-hook-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("LOF_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("LOF_MLFLOW_WEBHOOK_SECRET", MLFLOW_SECRET)
    return get_settings()


def client_for(settings: Settings) -> Iterator[TestClient]:
    app = FastAPI()
    app.state.settings = settings
    app.include_router(webhooks.router)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def client(hook_settings: Settings) -> Iterator[TestClient]:
    yield from client_for(hook_settings)


def events_for(settings: Settings, *, expect: int, timeout: float = 30.0) -> list[Any]:
    """The model's lof.model.uploaded events on the Prefect server, once ``expect`` arrived."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    wanted = EventFilter(
        event=EventNameFilter(name=["lof.model.uploaded"]),
        resource=EventResourceFilter(id=[f"lof.model.{settings.model_name}"]),
    )
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as prefect:
        while True:
            events = prefect.read_events(filter=wanted, limit=50).events
            if len(events) >= expect or time.monotonic() > deadline:
                return events
            time.sleep(0.3)


H = {"x-lof-webhook-secret": SECRET, "content-type": "application/json"}


@pytest.mark.usefixtures("prefect_api")
def test_bad_requests_get_a_reason_and_emit_nothing(
    client: TestClient, hook_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = register(hook_settings, "good")
    key = model_file_key(hook_settings, version)
    good = json.dumps(direct(BUCKET, encoded(key)))
    unknown_key = key.replace(key.split("/models/")[1][:34], "m-" + "0" * 32)

    def refused(status: int, *, body: str = good, headers: dict | None = None, path="s3") -> str:
        response = client.post(f"/webhooks/{path}", content=body, headers=headers or H)
        assert response.status_code == status, response.text
        reason = response.json()["detail"]
        assert isinstance(reason, str) and len(reason) > 10
        return reason

    assert "secret" in refused(401, headers={"content-type": "application/json"})
    assert "secret" in refused(401, headers={**H, "x-lof-webhook-secret": "wrong"})
    assert "secret" in refused(401, headers={**H, "x-lof-webhook-secret": ""})
    assert "content type" in refused(415, headers={**H, "content-type": "text/html"})
    assert "content type" in refused(
        415, headers={**H, "content-type": "application/x-www-form-urlencoded"}
    )
    assert "JSON" in refused(400, body=good[: len(good) // 2])
    assert "JSON" in refused(400, body="")
    assert "unknown event shape" in refused(400, body=json.dumps({"detail": {"x": 1}}))
    assert "not an object" in refused(400, body="[1, 2]")
    assert "Records[0].s3.object: Field required" in refused(
        400, body=json.dumps({"Records": [{"s3": {"bucket": {"name": "b"}}}]})
    )
    assert "SNS" in refused(400, body=json.dumps(sns(5)))  # type: ignore[arg-type]
    assert "unknown object" in refused(404, body=json.dumps(direct(BUCKET, unknown_key)))

    mlflow_body, _ = mlflow_request(alias_event(hook_settings.model_name, version))
    assert "Signature" in refused(401, body=mlflow_body.decode(), path="mlflow")
    _, wrong = mlflow_request(alias_event(hook_settings.model_name, version), secret="nope")
    assert "Signature" in refused(401, body=mlflow_body.decode(), headers=wrong, path="mlflow")
    stale_body, stale = mlflow_request(alias_event(hook_settings.model_name, version), age=3600)
    assert "stale" in refused(401, body=stale_body.decode(), headers=stale, path="mlflow")
    shape_body, shape_headers = mlflow_request({"nothing": "here"})
    assert "entity: Field required" in refused(
        400, body=shape_body.decode(), headers=shape_headers, path="mlflow"
    )
    ghost_body, ghost = mlflow_request(alias_event(hook_settings.model_name, "42"))
    assert "no version 42" in refused(404, body=ghost_body.decode(), headers=ghost, path="mlflow")

    # Accepted but not promoting: test event, unrelated key, other files of the model.
    for body in (
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET},
        direct(BUCKET, "exports%2Freport+2024.csv"),
        direct(BUCKET, encoded(key.rsplit("/", 1)[0] + "/MLmodel")),
        sns({"Type": "SubscriptionConfirmation", "TopicArn": "t"}),
    ):
        response = client.post("/webhooks/s3", json=body, headers=H)
        assert response.status_code == 200 and response.json()["status"] == "ignored"
        assert response.json()["ignored"][0]["reason"]
    other_alias_body, other_alias = mlflow_request(
        alias_event(hook_settings.model_name, version, alias="staging")
    )
    response = client.post("/webhooks/mlflow", content=other_alias_body, headers=other_alias)
    assert response.status_code == 200 and response.json()["status"] == "ignored"

    # No secret configured: every request is refused, even one carrying a plausible secret.
    monkeypatch.delenv("LOF_WEBHOOK_SECRET")
    for no_secret in client_for(get_settings()):
        assert no_secret.post("/webhooks/s3", content=good, headers=H).status_code == 401

    # Without a Prefect server to reach, the sender is told to retry.
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert "PREFECT_API_URL" in refused(503)
    # A Prefect server that is down: the event is not taken, so the answer is no 202.
    from tests.servers import free_port

    with temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}):
        assert "retry later" in refused(503)

    # The sentinel: once its event is on the server, it is the only one.
    accepted = client.post("/webhooks/s3", content=good, headers=H)
    assert accepted.status_code == 202, accepted.text
    item = accepted.json()["accepted"][0]
    assert (item["bucket"], item["key"], item["version"]) == (BUCKET, key, version)
    events = events_for(hook_settings, expect=1)
    assert [str(e.id) for e in events] == [item["prefect_event_id"]]
    time.sleep(1.0)
    assert len(events_for(hook_settings, expect=2, timeout=0.5)) == 1


@pytest.mark.usefixtures("prefect_api")
def test_every_accepted_shape_emits_the_promote_event_once(
    client: TestClient, hook_settings: Settings
) -> None:
    version = register(hook_settings, "good")
    key = model_file_key(hook_settings, version)
    responses = [
        client.post("/webhooks/s3", json=direct(BUCKET, encoded(key)), headers=H),
        client.post("/webhooks/s3", json=eventbridge(BUCKET, key), headers=H),
    ]
    body, headers = mlflow_request(alias_event(hook_settings.model_name, version))
    responses.append(client.post("/webhooks/mlflow", content=body, headers=headers))
    # Replays: the same S3 event (here its SNS copy) and the same MLflow delivery start nothing.
    sns_copy = client.post(
        "/webhooks/s3",
        content=json.dumps(sns(direct(BUCKET, encoded(key)))),
        headers={"authorization": f"Bearer {SECRET}", "content-type": "text/plain"},
    )
    mlflow_again = client.post("/webhooks/mlflow", content=body, headers=headers)
    assert [r.status_code for r in responses] == [202, 202, 202], [r.text for r in responses]
    s3_items = [r.json()["accepted"][0] for r in responses[:2]]
    assert all(i["version"] == version and i["key"] == key for i in s3_items)
    assert s3_items[0]["event_id"] != s3_items[1]["event_id"]
    assert sns_copy.status_code == 200 and sns_copy.json()["accepted"] == []
    assert f"event {s3_items[0]['event_id']} already handled" in sns_copy.text
    assert mlflow_again.status_code == 200 and "already handled" in mlflow_again.json()["reason"]

    events = events_for(hook_settings, expect=3)
    by_id = {str(e.id): e for e in events}
    emitted = [i["prefect_event_id"] for i in s3_items] + [responses[2].json()["prefect_event_id"]]
    assert sorted(by_id) == sorted(emitted)
    first = by_id[emitted[0]]
    assert first.event == "lof.model.uploaded"
    assert first.payload == {
        "model_name": hook_settings.model_name,
        "version": version,
        "bucket": BUCKET,
        "key": key,
        "event_id": s3_items[0]["event_id"],
        "reason": "s3-upload",
    }
    assert first.resource["lof.s3.key"] == key
    alias = by_id[emitted[2]]
    assert alias.payload["reason"] == "mlflow-alias" and alias.payload["version"] == version
    assert alias.payload["bucket"] == "" and alias.payload["event_id"].startswith("mlflow:")
    time.sleep(1.0)
    assert len(events_for(hook_settings, expect=4, timeout=0.5)) == 3


def test_the_api_app_serves_the_webhooks(hook_settings: Settings) -> None:
    """lof.api mounts this router: the same refusals come from the real app."""
    from lof.api import create_app

    with TestClient(create_app(hook_settings), raise_server_exceptions=False) as api:
        paths = set(api.app.openapi()["paths"])  # type: ignore[attr-defined]
        assert {"/webhooks/s3", "/webhooks/mlflow"} <= paths
        refused = api.post("/webhooks/s3", json={"Records": []})
        assert refused.status_code == 401 and "secret" in refused.json()["detail"]
        empty = api.post("/webhooks/s3", json={"Records": []}, headers=H)
        assert empty.status_code == 200 and empty.json()["status"] == "ignored"
