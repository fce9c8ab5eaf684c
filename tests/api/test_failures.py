"""Readiness, unreachable stores (503), the catch-all 500, and what the module does on import."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lof.api import create_app
from lof.core.config import get_settings
from lof.core.errors import StoreError
from tests.servers import free_port

from ._data import (
    KEYS,
    REGISTERED_VERSION,
    UNPROMOTED_MODEL,
    settings_for,
)

AUTH = {"x-api-key": KEYS[0]}
QUERY = "/predictions?predicted_dt=20230325&class_id=12"


def test_readyz_reports_store_and_production_version(backend, registry_template: Path) -> None:
    settings = settings_for(backend["home"], backend["url"], stale_after_days=None)
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        before = client.get("/readyz", headers=AUTH)
        assert before.status_code == 503
        assert before.json()["store"] == "ok"
        assert "lof retrain" in before.json()["reason"]
        assert not (backend["home"] / "mlflow.db").exists(), "a probe must not create a registry"

        shutil.copy(registry_template, backend["home"] / "mlflow.db")
        ready = client.get("/readyz", headers=AUTH)
        stranger = client.get("/readyz")
    assert stranger.status_code == 200 and stranger.json() == {"status": "ready"}
    assert ready.status_code == 200, ready.text
    assert ready.json() == {
        "status": "ready",
        "reason": None,
        "store": "ok",
        "model_name": "lof-outcome",
        "model_stage": "Production",
        "model_version": REGISTERED_VERSION,
        "last_scored_day": "20230325",
    }


@pytest.mark.parametrize("model_name", [UNPROMOTED_MODEL, "never-registered"])
def test_readyz_503_when_model_has_no_production_version(
    tmp_path: Path, registry_template: Path, model_name: str
) -> None:
    shutil.copy(registry_template, tmp_path / "mlflow.db")
    store_url = f"sqlite:///{tmp_path / 'lof.db'}"
    app = create_app(settings_for(tmp_path, store_url, model_name=model_name))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/readyz", headers=AUTH)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert f"no version of model {model_name!r} at stage 'Production'" in body["reason"]
    assert "lof promote --version N" in body["reason"]


def _unreachable_urls(tmp_path: Path, moto_endpoint: str) -> dict[str, str]:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    closed = free_port()
    return {
        "sqlite under a file": f"sqlite:///{blocker / 'lof.db'}",
        "postgresql closed port": f"postgresql+psycopg2://postgres:s3cret@127.0.0.1:{closed}/lof",
        "mysql closed port": f"mysql+pymysql://root:s3cret@127.0.0.1:{closed}/lof",
        "dynamodb closed port": f"dynamodb://?endpoint=http://127.0.0.1:{closed}&region=us-east-1",
    }


@pytest.mark.parametrize(
    "case",
    ["sqlite under a file", "postgresql closed port", "mysql closed port", "dynamodb closed port"],
)
def test_unreachable_store_is_503_without_internals(
    tmp_path: Path, moto_endpoint: str, case: str, caplog
) -> None:
    url = _unreachable_urls(tmp_path, moto_endpoint)[case]
    app = create_app(settings_for(tmp_path, url))
    with caplog.at_level(logging.WARNING), TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/healthz").status_code == 200
        response = client.get(QUERY, headers=AUTH)
        history = client.get("/classes/12/students/4501/history", headers=AUTH)
        ready = client.get("/readyz", headers=AUTH)
        stranger = client.get("/readyz")
    assert stranger.status_code == 503 and stranger.json() == {"status": "not ready"}
    assert response.status_code == 503, response.text
    assert response.json() == {"detail": "the predictions store is unavailable; retry later"}
    assert history.status_code == 503
    assert ready.status_code == 503
    assert ready.json()["store"] == "unreachable"
    assert "LOF_STORE_URL" in ready.json()["reason"]
    assert "s3cret" not in ready.text + caplog.text
    assert "LOF_STORE_URL" in caplog.text


def test_store_recovers_after_a_failed_open(tmp_path: Path) -> None:
    blocker = tmp_path / "later"
    blocker.write_text("not yet a folder")
    app = create_app(settings_for(tmp_path, f"sqlite:///{blocker / 'lof.db'}"))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get(QUERY, headers=AUTH).status_code == 503
        blocker.unlink()
        response = client.get(QUERY, headers=AUTH)
    assert response.status_code == 404
    assert "has no predictions on any day" in response.json()["detail"]


class _BrokenStore:
    """Stand-in for a store with a programming error: no real backend fails this way on demand."""

    def read_class_day(self, *, day, class_id):
        raise RuntimeError("secret internal state /srv/lof/internal.py line 42")

    def read_student_history(self, *, class_id, user_id):
        raise StoreError("reading predictions failed on LOF_STORE_URL='sqlite:///x'")

    def ping(self) -> None:
        return None


def test_unexpected_error_is_json_500_without_internals(tmp_path: Path, caplog) -> None:
    app = create_app(settings_for(tmp_path, f"sqlite:///{tmp_path / 'lof.db'}"))
    app.state.store_holder._store = _BrokenStore()
    with caplog.at_level(logging.ERROR), TestClient(app, raise_server_exceptions=False) as client:
        response = client.get(QUERY, headers=AUTH)
        store_error = client.get("/classes/12/students/1/history", headers=AUTH)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": "internal error; it has been logged"}
    assert "secret internal state" in caplog.text
    assert store_error.status_code == 503


def test_webhook_router_is_included_when_present(tmp_path: Path) -> None:
    app = create_app(settings_for(tmp_path, f"sqlite:///{tmp_path / 'lof.db'}"))
    paths = set(app.openapi()["paths"])
    present = importlib.util.find_spec("lof.api.routes.webhooks") is not None
    assert ("/webhooks/s3" in paths) is present
    assert "/predictions" in paths


def test_import_has_no_side_effects_and_app_is_lazy(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOF_")}
    env.update(LOF_HOME=str(home), LOF_API_KEYS="k", MLFLOW_TRACKING_URI="")
    env.pop("MLFLOW_TRACKING_URI")
    code = (
        "import os, lof.api as api, lof.api.entry as entry\n"
        "assert entry._app is None and entry._handler is None\n"
        f"assert not os.path.exists({str(home)!r})\n"
        "app = api.app\n"
        "assert api.get_app() is app\n"
        f"assert not os.path.exists({str(home)!r}), 'building the app must not touch LOF_HOME'\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_settings_from_environment(lof_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOF_API_KEYS", " k1 , k2 ,")
    app = create_app()
    assert app.state.settings.api_key_list == ["k1", "k2"]
    assert app.state.settings.store_url == get_settings().store_url
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get(QUERY, headers={"x-api-key": "k2"})
    assert response.status_code == 404
