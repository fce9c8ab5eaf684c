"""A registry outage fails `lof daily` in about 2 minutes, with one line naming the setting."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers import free_port, mlflow_server_command, running

# The bound is "about 2 minutes"; the assertion leaves room for a loaded 2-core test
# machine. MLflow's own defaults (7 retries, backoff factor 2) wait about 4 minutes per
# request on a refused connection, so the bound still tells the two apart.
OUTAGE_BOUND_SECONDS = 180


@pytest.fixture
def stopped_mlflow(tmp_path: Path) -> str:
    """The URL of a real `mlflow server` that answered once and is now stopped."""
    port = free_port()
    command = mlflow_server_command(
        port=port, backend=tmp_path / "mlflow.db", artifacts=(tmp_path / "artifacts").as_uri()
    )
    with running(command, port=port, log=tmp_path / "server.log", timeout=90) as url:
        pass
    return url


def test_daily_fails_fast_with_one_line_when_mlflow_is_down(
    lof_home: Path, stopped_mlflow: str, prefect_api: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lof daily` against a stopped tracking server exits 1 within the bound, printing one
    error line that names MLFLOW_TRACKING_URI and no traceback.

    The wall-clock assertion is the issue's done-when ("fails within about 2 minutes"): the
    retries of the registry calls are bounded by LOF_MLFLOW_HTTP_* (defaults), with a generous
    margin (OUTAGE_BOUND_SECONDS) so a busy machine does not make it flaky. The session's
    Prefect server is used so its start-up time is not counted.
    """
    from prefect.settings import get_current_settings

    for name in list(os.environ):
        if name.startswith("MLFLOW_HTTP_REQUEST_"):
            monkeypatch.delenv(name)
    env = os.environ | {
        "PREFECT_API_URL": str(get_current_settings().api.url),
        "MLFLOW_TRACKING_URI": stopped_mlflow,
        "COLUMNS": "200",
    }
    exe = Path(sys.executable).with_name("lof")
    began = time.monotonic()
    done = subprocess.run(
        [exe, "daily", "--date", "20250301"],
        env=env,
        capture_output=True,
        text=True,
        timeout=OUTAGE_BOUND_SECONDS + 120,
    )
    elapsed = time.monotonic() - began
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert elapsed < OUTAGE_BOUND_SECONDS, f"took {elapsed:.0f}s:\n{output}"
    errors = [line for line in output.splitlines() if "error:" in line]
    assert len(errors) == 1, output
    assert "MLFLOW_TRACKING_URI" in errors[0]
    assert "Traceback" not in output


def test_mlflow_http_settings_are_bounded_and_applied(
    lof_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lof.core.config import get_settings
    from lof.core.errors import ConfigError
    from lof.registry.client import bound_http

    for name, bad in (
        ("LOF_MLFLOW_HTTP_RETRIES", "11"),
        ("LOF_MLFLOW_HTTP_BACKOFF_FACTOR", "-1"),
        ("LOF_MLFLOW_HTTP_TIMEOUT_SECONDS", "0"),
    ):
        with monkeypatch.context() as scoped:
            scoped.setenv(name, bad)
            with pytest.raises(ConfigError, match=name):
                get_settings()
    for name in ("BACKOFF_FACTOR", "TIMEOUT"):  # restored after the test
        monkeypatch.setenv(f"MLFLOW_HTTP_REQUEST_{name}", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")
    monkeypatch.setenv("LOF_MLFLOW_HTTP_TIMEOUT_SECONDS", "10")
    bound_http(get_settings())
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"
    assert os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "2"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "10"
