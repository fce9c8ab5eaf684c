"""End to end on loopback: S3 upload -> notification -> webhook -> Prefect trigger -> promote.

Real parts: moto_server (S3 artifact store with notifications to SQS), a real `mlflow server`
storing artifacts in that bucket, the session's Prefect server, and the promote deployment served
by `prefect.serve` in its own process with the trigger of prefect.yaml. The S3 notification is read
from SQS exactly as S3 sent it (URL-encoded key) and posted to POST /webhooks/s3.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flows.promote import promote
from lof.api.routes.webhooks import router
from lof.core.config import Settings, get_settings
from lof.registry import client as registry
from tests.servers import free_port, mlflow_server_command, running, stop

from ._support import register, version

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "lof-e2e-models"
SECRET = "e2e-secret"


@pytest.fixture(scope="module")
def artifact_store(moto_endpoint: str) -> Iterator[dict[str, str]]:
    """The bucket MLflow stores artifacts in, notifying an SQS queue of every created object."""
    aws = {"endpoint_url": moto_endpoint, "region_name": "us-east-1"}
    creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    s3 = boto3.client("s3", **aws, **creds)
    sqs = boto3.client("sqs", **aws, **creds)
    s3.create_bucket(Bucket=BUCKET)
    queue = sqs.create_queue(QueueName=f"lof-e2e-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    yield {"queue": queue, "endpoint": moto_endpoint}


@pytest.fixture(scope="module")
def s3_mlflow_server(
    artifact_store: dict[str, str],
    migrated_mlflow_db: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """`mlflow server` with a SQLite backend and its artifacts in the moto bucket."""
    home = tmp_path_factory.mktemp("mlflow-server")
    shutil.copy(migrated_mlflow_db, home / "mlflow.db")
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_S3_ENDPOINT_URL": artifact_store["endpoint"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    command = mlflow_server_command(
        port=port, backend=home / "mlflow.db", artifacts=f"s3://{BUCKET}/mlflow"
    )
    with running(command, port=port, log=home / "server.log", env=env, cwd=home, timeout=90) as url:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield url


def read_notifications(queue: str, *, endpoint: str, until_key_endswith: str) -> list[str]:
    """SQS message bodies (S3's own JSON) up to the one for the wanted key, bounded."""
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    bodies: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for message in sqs.receive_message(
            QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", []):
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
            bodies.append(message["Body"])
            records = json.loads(message["Body"]).get("Records", [])
            if any(r["s3"]["object"]["key"].endswith(until_key_endswith) for r in records):
                return bodies
    raise AssertionError(f"no notification for *{until_key_endswith} within 30s")


def wait_for_runs(deployment: str, *, count: int, timeout: float = 90.0) -> list[Any]:
    """The deployment's flow runs once ``count`` of them reached a final state."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment]))
            )
            final = [r for r in runs if r.state is not None and r.state.is_final()]
            if len(final) >= count:
                return sorted(final, key=lambda r: r.expected_start_time)
            if time.monotonic() > deadline:
                states = [(r.name, r.state.name if r.state else None) for r in runs]
                raise AssertionError(f"{count} final runs expected within {timeout}s: {states}")
            time.sleep(0.5)


@pytest.fixture
def e2e_settings(
    lof_home: Path, s3_mlflow_server: str, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", s3_mlflow_server)
    monkeypatch.setenv("LOF_MODEL_NAME", f"lof-e2e-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("LOF_WEBHOOK_SECRET", SECRET)
    return get_settings()


@pytest.fixture
def served_promote(e2e_settings: Settings, tmp_path: Path) -> Iterator[str]:
    """The promote deployment served, with its event trigger, by a separate process."""
    from prefect.settings import PREFECT_API_URL

    name = f"promote-e2e-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "LOF_E2E_DEPLOYMENT": name,
        "PYTHONPATH": str(ROOT),
    }
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("_serve_promote.py"))],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield name
    finally:
        stop(proc)
        log.close()


def wait_until_served(name: str, *, timeout: float = 60.0) -> None:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            try:
                deployment = client.read_deployment_by_name(f"promote/{name}")
            except Exception:
                deployment = None
            if deployment is not None and client.read_resource_related_automations(
                f"prefect.deployment.{deployment.id}"
            ):
                return
            time.sleep(0.5)
    raise AssertionError(f"deployment promote/{name} was not served within {timeout}s")


@pytest.mark.usefixtures("prefect_api")
def test_s3_upload_promotes_through_the_trigger_once_and_refuses_a_worse_model(
    e2e_settings: Settings, served_promote: str, artifact_store: dict[str, str]
) -> None:
    s = e2e_settings
    queue, endpoint = artifact_store["queue"], artifact_store["endpoint"]
    app = FastAPI()
    app.state.settings = s
    app.include_router(router)
    hook = TestClient(app)
    headers = {"x-lof-webhook-secret": SECRET, "content-type": "application/json"}

    v1 = register(s, "good", seed=0)
    assert promote(version=v1).status == "promoted"
    read_notifications(queue, endpoint=endpoint, until_key_endswith="model.skops")

    v2 = register(s, "good", seed=2)
    (notification,) = [
        body
        for body in read_notifications(queue, endpoint=endpoint, until_key_endswith="model.skops")
        if json.loads(body)["Records"][0]["s3"]["object"]["key"].endswith("model.skops")
    ]
    assert "%2F" in notification  # S3 (moto) sends the key URL-encoded
    wait_until_served(served_promote)

    response = hook.post("/webhooks/s3", content=notification, headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["accepted"][0]["version"] == v2
    (first,) = wait_for_runs(served_promote, count=1)
    assert first.state.is_completed(), first.state
    assert first.parameters["key"].startswith("mlflow/") and first.parameters["event_id"]

    assert version(s, v2).current_stage == "Production"
    assert version(s, v1).current_stage == "Archived"
    client = registry.client(settings=s)
    assert str(client.get_model_version_by_alias(s.model_name, "production").version) == v2
    assert version(s, v2).tags["promotion_reason"] == "s3-upload"
    model, loaded = registry.load_production_model(settings=s)
    assert loaded == v2 and hasattr(model, "predict_proba")
    stamped = dict(version(s, v2).tags)

    # The same notification again (S3 delivers at least once): remembered, nothing emitted.
    again = hook.post("/webhooks/s3", content=notification, headers=headers)
    assert again.status_code == 200 and again.json()["accepted"] == []
    assert "already handled" in again.json()["ignored"][0]["reason"]
    assert dict(version(s, v2).tags) == stamped
    assert version(s, v2).current_stage == "Production"

    # A worse candidate: its run fails, nothing changes.
    v3 = register(s, "bad", seed=1)
    (worse,) = [
        body
        for body in read_notifications(queue, endpoint=endpoint, until_key_endswith="model.skops")
        if json.loads(body)["Records"][0]["s3"]["object"]["key"].endswith("model.skops")
    ]
    assert hook.post("/webhooks/s3", content=worse, headers=headers).status_code == 202
    runs = wait_for_runs(served_promote, count=2)  # none started by the replay
    assert len(runs) == 2 and runs[0].state.is_completed()
    assert runs[-1].state.is_failed() and runs[-1].parameters["version"] == v3
    assert version(s, v3).current_stage == "None"
    assert version(s, v2).current_stage == "Production"
    assert str(client.get_model_version_by_alias(s.model_name, "production").version) == v2
