"""/readyz turns not-ready on a stale store; /predictions names its day and model version."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from lof.api import create_app
from lof.core.calendar import format_day, today_local
from lof.stores import open_prediction_store
from tests.api._data import KEYS, REGISTERED_VERSION, prediction_frame, settings_for


def test_readyz_flips_to_not_ready_when_the_last_scored_day_is_too_old(
    tmp_path: Path, registry_template: Path
) -> None:
    shutil.copy(registry_template, tmp_path / "mlflow.db")
    url = f"sqlite:///{tmp_path / 'lof.db'}"
    settings = settings_for(tmp_path, url, stale_after_days=2)
    today = today_local(settings.tz)
    store = open_prediction_store(url)
    old = today - timedelta(days=5)
    store.write_day(day=old, predictions=prediction_frame(class_id=12, users=(1, 2), seed=1))

    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        stale = client.get("/readyz", headers={"x-api-key": KEYS[0]})
        assert stale.status_code == 503
        assert stale.json()["last_scored_day"] == format_day(old)
        assert stale.json()["model_version"] == REGISTERED_VERSION
        assert f"last scored day is {format_day(old)}, 5 days" in stale.json()["reason"]
        assert "LOF_STALE_AFTER_DAYS=2" in stale.json()["reason"]

        yesterday = today - timedelta(days=1)
        frame = prediction_frame(class_id=12, users=(1, 2), seed=2)
        store.write_day(day=yesterday, predictions=frame)
        fresh = client.get("/readyz", headers={"x-api-key": KEYS[0]})
        assert fresh.status_code == 200, fresh.text
        assert fresh.json()["status"] == "ready"
        assert fresh.json()["last_scored_day"] == format_day(yesterday)

        answer = client.get(
            f"/predictions?predicted_dt={format_day(yesterday)}&class_id=12",
            headers={"x-api-key": KEYS[0]},
        )
        assert answer.status_code == 200
        assert answer.headers["x-lof-predicted-dt"] == format_day(yesterday)
        assert answer.headers["x-lof-model-version"] == "4"  # what the rows were scored with
        again = client.get(  # a cached body keeps its headers
            f"/predictions?predicted_dt=%22{format_day(yesterday)}%22&class_id=12",
            headers={"x-api-key": KEYS[0]},
        )
        assert again.headers["x-lof-model-version"] == "4"


def test_readyz_on_an_empty_store_is_not_ready_unless_staleness_is_off(
    tmp_path: Path, registry_template: Path
) -> None:
    shutil.copy(registry_template, tmp_path / "mlflow.db")
    url = f"sqlite:///{tmp_path / 'lof.db'}"
    with TestClient(create_app(settings_for(tmp_path, url))) as client:
        empty = client.get("/readyz", headers={"x-api-key": KEYS[0]})
    assert empty.status_code == 503 and "no day has been scored yet" in empty.json()["reason"]
    off = settings_for(tmp_path, url, stale_after_days=None)
    with TestClient(create_app(off)) as client:
        assert client.get("/readyz", headers={"x-api-key": KEYS[0]}).status_code == 200
