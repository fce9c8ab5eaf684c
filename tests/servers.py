"""Helpers for tests that start real servers on loopback."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mlflow_server_command(*, port: int, backend: Path, artifacts: str) -> list[str]:
    """The `mlflow server` command of the test servers: loopback, one worker, sqlite backend."""
    exe = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    return [
        exe,
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{backend}",
        "--artifacts-destination",
        artifacts,
    ]


def wait_for_port(
    port: int, *, timeout: float = 30.0, proc: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@contextmanager
def running(
    command: Sequence[str],
    *,
    port: int,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 30.0,
) -> Iterator[str]:
    """Start ``command`` (a server that listens on ``port``), yield its URL, stop it after."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            list(command), env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            wait_for_port(port, timeout=timeout, proc=proc)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server, killing it if it does not exit within 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
