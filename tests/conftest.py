"""Session-wide real servers: MariaDB, PostgreSQL, moto_server, Prefect, and a per-test LOF_HOME."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

from tests.servers import free_port, mlflow_server_command, running, wait_for_port

MARIADB_ROOT = "mysql+pymysql://root@127.0.0.1:3306"
POSTGRES_ROOT = "postgresql+psycopg2://postgres@127.0.0.1:5432"


def _scratch_database(root_url: str, *, quote: str) -> Iterator[str]:
    """Create a uniquely named database on a real server and drop it afterwards."""
    from sqlalchemy import create_engine, text

    name = f"lof_test_{uuid.uuid4().hex[:10]}"
    engine = create_engine(
        f"{root_url}/{'postgres' if 'postgresql' in root_url else ''}", isolation_level="AUTOCOMMIT"
    )
    with engine.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {quote}{name}{quote}"))
    try:
        yield f"{root_url}/{name}"
    finally:
        with engine.connect() as conn:
            if "postgresql" in root_url:
                conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        engine.dispose()


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """A fresh database on the MariaDB server of 127.0.0.1:3306 (started if it is down)."""
    try:
        wait_for_port(3306, timeout=0.5)
    except RuntimeError:
        subprocess.run(
            [
                "start-stop-daemon",
                "--start",
                "--oknodo",
                "--background",
                "--exec",
                "/usr/sbin/mariadbd",
            ],
            check=False,
        )
        wait_for_port(3306, timeout=30)
    yield from _scratch_database(MARIADB_ROOT, quote="`")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the PostgreSQL server of 127.0.0.1:5432."""
    yield from _scratch_database(POSTGRES_ROOT, quote='"')


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real moto_server over HTTP on a loopback port (DynamoDB, S3, SQS)."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    with running([exe, "-H", "127.0.0.1", "-p", str(port)], port=port, log=log) as url:
        yield url


@pytest.fixture(autouse=True)
def _aws_test_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials so boto3 never looks for real ones; requests only go to moto_server."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def lof_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean LOF_HOME with the embedded defaults; the caller's LOF_* variables are cleared."""
    for name in list(os.environ):
        if name.startswith("LOF_") or name == "MLFLOW_TRACKING_URI":
            monkeypatch.delenv(name)
    home = tmp_path / "lof-home"
    home.mkdir()
    monkeypatch.setenv("LOF_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """The session's one Prefect test server; tests that run flows depend on it."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on loopback with a sqlite backend and local artifacts."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    command = mlflow_server_command(
        port=port, backend=root / "mlflow.db", artifacts=(root / "artifacts").as_uri()
    )
    with running(command, port=port, log=root / "server.log", timeout=90) as url:
        yield url
