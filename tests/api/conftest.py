"""Prediction stores filled by the real write path (SQLite, DynamoDB on moto), apps over them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lof.api import create_app

from ._data import AWS_TEST_ENV, KEYS, build_registry, fill, settings_for


@pytest.fixture(scope="module", params=["sqlite", "dynamodb"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A filled store on one backend: its URL, its LOF_HOME and the frames written."""
    home = tmp_path_factory.mktemp(f"api-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{home / 'lof.db'}"
    else:
        endpoint = request.getfixturevalue("moto_endpoint")
        prefix = f"api{uuid.uuid4().hex[:8]}_"
        url = f"dynamodb://?endpoint={endpoint}&prefix={prefix}&region=us-east-1"
    with pytest.MonkeyPatch.context() as mp:  # module scope runs before the autouse credentials
        for name, value in AWS_TEST_ENV.items():
            mp.setenv(name, value)
        written = fill(url)
    return {"kind": request.param, "url": url, "home": home, "written": written}


@pytest.fixture(scope="module")
def app(backend: dict) -> FastAPI:
    """The API with its OpenAPI documents on (LOF_API_DOCS), which some tests read."""
    return create_app(settings_for(backend["home"], backend["url"], api_docs=True))


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def auth() -> dict[str, str]:
    return {"x-api-key": KEYS[0]}


@pytest.fixture(scope="session")
def registry_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow registry database to copy into a test's LOF_HOME (see build_registry)."""
    path = tmp_path_factory.mktemp("registry") / "mlflow.db"
    build_registry(path)
    return path
