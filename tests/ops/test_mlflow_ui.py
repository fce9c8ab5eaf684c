"""lof's experiments in the MLflow UI: a real `mlflow server` and a real headless Chromium open
the link lof gives on the experiment's training runs, not on MLflow's GenAI (traces) view."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import mlflow
import pytest

from lof.core.config import Settings, get_settings
from lof.registry import tracking
from tests.api.routes._demo import Page, chromium


@pytest.fixture
def server_settings(
    lof_home: Path, mlflow_server: str, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    return get_settings()


def _text_once(page: Page, wanted: str, *, timeout: float = 90.0) -> str:
    """The page's visible text once it shows ``wanted`` (the UI renders after its API calls)."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = page.js("document.body ? document.body.innerText : ''") or ""
        if wanted in text:
            return text
        time.sleep(0.5)
    return text


def test_the_experiment_link_opens_on_its_training_runs(
    server_settings: Settings, tmp_path: Path
) -> None:
    s = server_settings
    client = mlflow.MlflowClient(s.mlflow_tracking_uri)
    name = f"lof-retrain-ui-{uuid.uuid4().hex[:6]}"
    before = client.create_experiment(name)  # an experiment made before lof marked them
    assert tracking.EXPERIMENT_KIND_TAG not in client.get_experiment(before).tags
    experiment = tracking.ensure_experiment(settings=s, name=name)
    assert experiment == before
    tags = client.get_experiment(experiment).tags
    assert tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    run_name = f"retrain-1-2025+2-2025-{uuid.uuid4().hex[:4]}"
    run = client.create_run(experiment, run_name=run_name)
    client.log_metric(run.info.run_id, "holdout.risk_roc_auc_25_50", 0.74)
    client.set_terminated(run.info.run_id)

    url = tracking.ui_url(settings=s, experiment_id=experiment)
    assert url == f"{s.mlflow_tracking_uri}/#/experiments/{experiment}?{tracking.UI_VIEW_PARAMETER}"
    with chromium(tmp_path / "profile", log=tmp_path / "chromium.log") as page:
        assert page.open(url) == 200
        text = _text_once(page, run_name)
        (tmp_path / "experiment.png").write_bytes(page.screenshot())
        assert run_name in text, f"the runs table never showed {run_name}: {text[:500]!r}"
        assert "Runs" in text and "Usage" not in text

        # MLflow 3.17 opens its GenAI overview without the parameter whatever the tag says;
        # when this fails, the UI reads the tag again and lof's links can drop the parameter.
        page.send("Page.navigate", url="about:blank")  # a fresh load, not a hash change
        page.wait_event("Page.loadEventFired")
        assert page.open(url.split("?")[0]) == 200
        bare = _text_once(page, "Traces", timeout=60)
        assert run_name not in bare and "Overview" in bare


def test_links_need_a_tracking_server_and_carry_no_credentials(
    lof_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://ops:s3cret@mlflow.example.edu:8443/ml/")
    link = tracking.ui_url(settings=get_settings(), experiment_id="4", run_id="abc")
    assert link == (
        "https://mlflow.example.edu:8443/ml/#/experiments/4/runs/abc?workflowType=machine_learning"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{lof_home / 'mlflow.db'}")
    assert tracking.ui_url(settings=get_settings(), experiment_id="4") is None
