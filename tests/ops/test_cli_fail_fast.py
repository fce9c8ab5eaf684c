"""Bad CLI input is refused before any Prefect flow, hence before any Prefect server, starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Runs the CLI in a fresh interpreter and reports what got imported or started: a temporary
# Prefect server cannot start without importing prefect.server.api.server, nor without a
# child process (uvicorn).
PROBE = """
import json, sys
import psutil
from typer.testing import CliRunner
from lof.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
print(json.dumps({
    "code": result.exit_code,
    "output": result.output,
    "server_imported": "prefect.server.api.server" in sys.modules,
    "flows_imported": sorted(m for m in sys.modules if m.startswith("flows.")),
    "children": [p.name() for p in psutil.Process().children(recursive=True)],
}))
"""


def run_cli(*args: str, env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def env(lof_home: Path) -> dict[str, str]:
    return {**os.environ, "PREFECT_API_URL": "", "LOF_HOME": str(lof_home)}


@pytest.mark.parametrize(
    ("args", "extra_env", "message"),
    [
        (["daily", "--date", "notadate"], {}, "--date 'notadate' is not a day"),
        (["daily", "--date", "20250101"], {"LOF_LEB2_URL": "nota url"}, "LOF_LEB2_URL"),
        (["daily"], {"MLFLOW_TRACKING_URI": "http://"}, "MLFLOW_TRACKING_URI"),
        (["backfill", "--start", "20250110", "--end", "2025011"], {}, "--end '2025011'"),
        (["backfill", "--start", "20250110", "--end", "20250101"], {}, "is before --start"),
        (["retrain", "--as-of", "2025-13-01"], {}, "--as-of '2025-13-01' is not a day"),
        (["retrain", "--dataset", "/no/such.csv"], {}, "dataset file /no/such.csv does not exist"),
        (["promote", "--version", "latest"], {}, "--version 'latest' is not a model version"),
        (["promote", "--version", "3"], {"LOF_TIMEZONE": "Mars/Olympus"}, "LOF_TIMEZONE"),
        (["forget", "--user-id", "12x"], {}, "--user-id '12x' is not a LEB2 user id"),
        (["forget", "--user-id", "12"], {}, "LOF_PSEUDONYM_SECRET is not set"),
        (["opt-out", "--user-id", "7"], {"LOF_PSEUDONYM_SECRET": "short"}, "too short"),
        (["purge", "--before", "2025-13-01"], {}, "--before '2025-13-01' is not a day"),
        (["purge", "--before", "20250101"], {"LOF_RETENTION_DAYS": "0"}, "LOF_RETENTION_DAYS"),
        (["audit", "--since", "yesterday"], {}, "--since 'yesterday' is not a day"),
    ],
)
def test_bad_input_is_refused_without_starting_prefect(
    env: dict[str, str], args: list[str], extra_env: dict[str, str], message: str
) -> None:
    report = run_cli(*args, env={**env, **extra_env})
    assert report["code"] == 1, report
    assert message in report["output"], report["output"]
    assert report["output"].count("error:") == 1 and "Traceback" not in report["output"]
    assert report["server_imported"] is False
    assert report["flows_imported"] == []
    assert report["children"] == []


STARTUP_WAIT = """
from lof import cli
cli._quiet_prefect()
from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as wait
print(wait.value())
"""


@pytest.mark.parametrize(("given", "expected"), [(None, 120), ("45", 45)])
def test_a_temporary_prefect_server_is_given_time_to_start(given: str | None, expected: int):
    """Prefect's 20 s wait fails a run on a busy machine before it starts; an operator's wins."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
    }
    if given is not None:
        env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = given
    done = subprocess.run(
        [sys.executable, "-c", STARTUP_WAIT], env=env, capture_output=True, text=True, check=True
    )
    assert int(done.stdout.split()[-1]) == expected
