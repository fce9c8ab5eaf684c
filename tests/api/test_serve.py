"""`lof.api.serve`: a real uvicorn server on loopback answering over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.servers import free_port

from ._data import KEYS, USERS_A, fill


def test_serve_runs_uvicorn_over_the_environment_settings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lof.db'}"
    fill(url)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOF_")}
    env.update(LOF_HOME=str(tmp_path), LOF_STORE_URL=url, LOF_API_KEYS=KEYS[1])
    proc = subprocess.Popen(
        [sys.executable, "-c", f"from lof.api import serve; serve(host='127.0.0.1', port={port})"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        health = _wait_health(base, proc)
        assert health.json() == {"status": "ok"}
        response = httpx.get(
            f'{base}/predictions?predicted_dt="20230325"&class_id="12"',
            headers={"x-api-key": KEYS[1]},
            timeout=10,
        )
        assert response.status_code == 200
        assert response.headers["content-encoding"] == "gzip"
        assert sorted(r["user_id"] for r in response.json()) == sorted(USERS_A)
        assert "server" not in response.headers
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0].decode()
    assert KEYS[1] not in output


def _wait_health(base: str, proc: subprocess.Popen) -> httpx.Response:
    for _ in range(300):
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.communicate()[0].decode()[-2000:]}")
        try:
            return httpx.get(f"{base}/healthz", timeout=1)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the server did not answer /healthz within 30 s")
