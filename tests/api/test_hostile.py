"""Hostile requests against a real `lof serve` (uvicorn over HTTP, every secret set).

Each refusal is a fast, specific 4xx: nothing reaches a 5xx, no body is read before its
credential is checked or past its limit, and `/healthz` answers while a hostile request is in.
Raw sockets send what no well-behaved client would (a declared body that never comes, a chunked
body without end). Replays of webhook deliveries need a Prefect server to emit the first time:
they are tested in tests/api/routes/test_webhooks.py against the real one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from lof.api import create_app
from lof.cli import app as cli_app
from lof.core import links
from tests.servers import free_port, wait_for_port

from ._data import CLASS_A, DAY1, KEYS, USERS_A, fill, settings_for

LINK_SECRET = "hostile-link-secret-0123456789"
HOOK_SECRET = "hostile-hook-secret"
MLFLOW_SECRET = "hostile-mlflow-secret"
AUTH = {"x-api-key": KEYS[0]}
D1 = f"{DAY1:%Y%m%d}"
HUGE = "9" * 5000  # past Python's 4,300-digit int() limit


class Server:
    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"

    def rss(self) -> int:
        return psutil.Process(self.proc.pid).memory_info().rss


@contextmanager
def serving(home: Path, **settings: str) -> Iterator[Server]:
    """`lof serve` over the store and registry of ``home`` with every secret set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOF_")}
    env.update(
        LOF_HOME=str(home),
        LOF_STORE_URL=f"sqlite:///{home / 'lof.db'}",
        MLFLOW_TRACKING_URI=f"sqlite:///{home / 'mlflow.db'}",
        LOF_API_KEYS=",".join(KEYS),
        LOF_LINK_SECRET=LINK_SECRET,
        LOF_WEBHOOK_SECRET=HOOK_SECRET,
        LOF_MLFLOW_WEBHOOK_SECRET=MLFLOW_SECRET,
        LOF_STALE_AFTER_DAYS="off",
        **settings,
    )
    lof = shutil.which("lof", path=str(Path(sys.executable).parent)) or "lof"
    port = free_port()
    log = home / f"serve-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [lof, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, timeout=60, proc=proc)
        yield Server(proc, port, log)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, registry_template: Path) -> Path:
    """A filled SQLite store and a registry with a Production version."""
    home = tmp_path_factory.mktemp("hostile")
    fill(f"sqlite:///{home / 'lof.db'}")
    shutil.copy(registry_template, home / "mlflow.db")
    return home


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[Server]:
    with serving(home) as running:
        yield running


def token(teacher: str | None, class_id: int = CLASS_A) -> str:
    return links.sign(
        secret=SecretStr(LINK_SECRET), class_id=class_id, ttl_seconds=600, teacher_id=teacher
    )[0]


def send(server: Server, head: str, body: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(head.encode("latin-1") + b"\r\n\r\n" + body)
    return sock


def answer(sock: socket.socket) -> tuple[int, str]:
    """The status and the whole response (headers and body) read off a raw socket."""
    data = b""
    with sock:
        while b"\r\n\r\n" not in data or not _complete(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]), data.decode("utf-8", "replace")


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    return length is not None and len(body) >= int(length.group(1))


def test_ten_thousand_parameters_are_refused_while_healthz_answers(server: Server) -> None:
    params = "&".join(f"p{i}=1" for i in range(10_000))
    hostile = send(server, f"GET /classes/19/report?token=bad.bad&{params} HTTP/1.1\r\nHost: x")
    started = time.perf_counter()
    probe = httpx.get(f"{server.url}/healthz", timeout=10)
    probe_seconds = time.perf_counter() - started
    status, response = answer(hostile)
    assert probe.status_code == 200 and probe_seconds < 0.5, probe_seconds
    assert status == 414 and "text/html" in response  # a page route answers as a page
    assert "longer than a class page needs" in response
    assert "content-security-policy: default-src 'none'" in response.lower()


def test_too_many_short_parameters_are_400(server: Server) -> None:
    query = "&".join(f"p{i}" for i in range(100))
    response = httpx.get(f"{server.url}/predictions?{query}", headers=AUTH)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("the query has 100 parameters; at most 32")


def test_header_flood_is_431(server: Server) -> None:
    flood = {f"x-pad-{i}": "a" * 1000 for i in range(40)}
    response = httpx.get(f"{server.url}/healthz", headers=flood)
    assert response.status_code == 431 and "headers" in response.json()["detail"]


def test_declared_large_body_is_refused_before_it_is_sent(server: Server) -> None:
    """200 MB announced, nothing sent: the answer comes at once, no byte of it is awaited."""
    for path in ("/classes/12/feedback", "/webhooks/mlflow", "/feedback"):
        sock = send(
            server,
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 200000000",
        )
        status, response = answer(sock)
        assert status == 413 and "connection: close" in response.lower(), response[:300]


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/webhooks/mlflow", "X-MLflow-Signature"),
        ("/webhooks/s3", "webhook secret"),
        ("/feedback", "x-api-key"),
        ("/links", "x-api-key"),
    ],
)
def test_header_credentials_are_checked_before_the_body(
    server: Server, path: str, words: str
) -> None:
    """A body announced but never sent, without the credential: 401 without waiting for it."""
    sock = send(
        server,
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 10000",
    )
    status, response = answer(sock)
    assert status == 401 and words in response


def test_chunked_body_is_stopped_at_the_limit(server: Server) -> None:
    """A form without end (no Content-Length, no token): the server stops reading it."""
    sock = send(
        server,
        "POST /classes/12/feedback HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked",
    )
    got: list[tuple[int, str]] = []
    reader = threading.Thread(target=lambda: got.append(answer(sock.dup())))
    reader.start()
    before, sent, chunk = server.rss(), 0, b"a" * 65536
    try:
        while sent < 64 * 2**20:
            sock.sendall(b"10000\r\n" + chunk + b"\r\n")
            sent += len(chunk)
    except OSError:  # closed by the server after its 413
        pass
    reader.join(timeout=10)
    sock.close()
    assert got and got[0][0] == 413 and "text/html" in got[0][1]
    assert sent < 64 * 2**20, "the server read the whole body"
    assert server.rss() - before < 16 * 2**20


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", f"/classes/{HUGE}/report?token=a.b", {}),
        ("GET", f"/feedback?class_id={HUGE}", {"headers": AUTH}),
        ("POST", "/links", {"headers": AUTH, "json": {"class_id": HUGE}}),
        ("POST", "/links", {"headers": AUTH, "json": {"class_id": 2**60}}),
        ("POST", "/feedback", {"headers": AUTH, "json": {"class_id": 12, "user_id": HUGE}}),
        ("GET", "/predictions?predicted_dt=20230325&class_id=12345678901234567", {"headers": AUTH}),
        ("GET", "/predictions?predicted_dt=00010101&class_id=12", {"headers": AUTH}),
        ("GET", f"/classes/{HUGE}/changes", {"headers": AUTH}),
        ("GET", "/classes/12/changes?since=00010101", {"headers": AUTH}),
        ("GET", "/classes/12/changes?since=2023032%0A", {"headers": AUTH}),
        ("GET", f"/interventions?class_id={HUGE}", {"headers": AUTH}),
        ("POST", "/interventions", {"headers": AUTH, "json": {"class_id": 12, "user_id": HUGE}}),
        ("POST", "/interventions", {"headers": AUTH, "json": [[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]}),
    ],
)
def test_oversized_ids_and_days_are_refused(
    server: Server, method: str, path: str, kwargs: dict
) -> None:
    response = httpx.request(method, f"{server.url}{path}", timeout=10, **kwargs)
    assert response.status_code in (414, 422), response.text[:300]


def test_an_oversized_intervention_is_413_while_healthz_answers(server: Server) -> None:
    body = {"class_id": 12, "user_id": 1, "action": "x" * 100_000}
    response = httpx.post(f"{server.url}/interventions", headers=AUTH, json=body, timeout=10)
    assert response.status_code == 413, response.text[:300]
    assert "send at most" in response.json()["detail"]
    assert httpx.get(f"{server.url}/healthz", timeout=10).elapsed.total_seconds() < 0.5


def test_oversized_id_in_the_form_is_a_page(server: Server) -> None:
    form = {"token": token("t-form"), "predicted_dt": D1, "user_id": HUGE, "verdict": "useful"}
    response = httpx.post(f"{server.url}/classes/{CLASS_A}/feedback", data=form)
    assert response.status_code == 422 and "text/html" in response.headers["content-type"]
    assert "user_id must be a positive integer" in response.text


def test_form_date_out_of_range_stays_a_page(server: Server) -> None:
    form = {"token": token("t-form"), "predicted_dt": "00010101", "user_id": str(USERS_A[0])}
    response = httpx.post(f"{server.url}/classes/{CLASS_A}/feedback", data=form | {"verdict": "x"})
    assert response.status_code == 422 and "text/html" in response.headers["content-type"]
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert "from 20000101 to 20991231; got &#39;00010101&#39;" in response.text


def _signed_s3(server: Server, body: object) -> httpx.Response:
    return httpx.post(
        f"{server.url}/webhooks/s3",
        content=body if isinstance(body, bytes) else json.dumps(body).encode(),
        headers={"x-lof-webhook-secret": HOOK_SECRET, "content-type": "application/json"},
        timeout=10,
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": "b"}}]}, "s3.bucket"),
        (
            {"Records": [{"s3": {"bucket": {"name": "b"}, "object": [{"key": "k"}]}}]},
            "Records[0].s3.object",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "depth limit"),
        ({"source": "aws.s3", "detail-type": "Object Created", "detail": []}, "detail"),
    ],
)
def test_malformed_signed_notifications_are_400_naming_the_field(
    server: Server, body: object, field: str
) -> None:
    response = _signed_s3(server, body)
    assert response.status_code == 400 and field in response.json()["detail"]


def test_huge_mlflow_timestamp_is_401(server: Server) -> None:
    headers = {
        "content-type": "application/json",
        "x-mlflow-delivery-id": "d-1",
        "x-mlflow-timestamp": "9" * 400,
        "x-mlflow-signature": "v1," + "A" * 43 + "=",
    }
    response = httpx.post(f"{server.url}/webhooks/mlflow", content=b"{}", headers=headers)
    assert response.status_code == 401 and "X-MLflow-Signature" in response.json()["detail"]


def test_a_teacherless_link_cannot_overwrite_a_teachers_verdict(server: Server) -> None:
    user = str(USERS_A[1])
    own = {"token": token("t-001"), "predicted_dt": D1, "user_id": user, "verdict": "useful"}
    page = f"{server.url}/classes/{CLASS_A}/feedback"
    assert httpx.post(page, data=own).status_code == 303
    forged = own | {"token": token(None), "teacher_id": "t-001", "verdict": "not_useful"}
    refused = httpx.post(page, data=forged)
    assert refused.status_code == 403 and "does not name a teacher" in refused.text
    exported = httpx.get(
        f"{server.url}/feedback", params={"class_id": CLASS_A, "date": D1}, headers=AUTH
    ).json()
    assert [(r["teacher_id"], r["verdict"]) for r in exported if r["user_id"] == int(user)] == [
        ("t-001", "useful")
    ]


def test_teacher_ids_with_a_trailing_newline_are_refused(
    server: Server, lof_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    response = httpx.post(
        f"{server.url}/links", json={"class_id": CLASS_A, "teacher_id": "t-nl\n"}, headers=AUTH
    )
    assert response.status_code == 422 and "teacher_id must be" in response.json()["detail"]
    entry = {"class_id": CLASS_A, "predicted_dt": D1, "user_id": USERS_A[0], "verdict": "useful"}
    feedback = httpx.post(
        f"{server.url}/feedback", json=entry | {"teacher_id": "t-nl\n"}, headers=AUTH
    )
    assert feedback.status_code == 422 and "teacher_id must be" in feedback.json()["detail"]
    monkeypatch.setenv("LOF_LINK_SECRET", LINK_SECRET)
    cli = CliRunner().invoke(cli_app, ["link", "--class-id", "12", "--teacher-id", "t-nl\n"])
    assert cli.exit_code == 1 and "teacher_id must be" in cli.output


def test_data_answers_are_private_to_their_key(server: Server) -> None:
    for response in (
        httpx.get(f"{server.url}/predictions?predicted_dt={D1}&class_id=12", headers=AUTH),
        httpx.get(f"{server.url}/classes/12/students/{USERS_A[0]}/history", headers=AUTH),
        httpx.get(f"{server.url}/feedback?class_id=12", headers=AUTH),
        httpx.post(f"{server.url}/links", json={"class_id": 12}, headers=AUTH),
    ):
        assert response.status_code == 200, response.text[:200]
        assert response.headers["cache-control"] == "private, no-cache"
        assert "x-api-key" in response.headers["vary"]


def test_readyz_tells_strangers_only_whether_it_is_ready(server: Server) -> None:
    stranger = httpx.get(f"{server.url}/readyz")
    assert stranger.status_code == 200 and stranger.json() == {"status": "ready"}
    holder = httpx.get(f"{server.url}/readyz", headers=AUTH).json()
    assert holder["model_version"] and holder["store"] == "ok"


def test_docs_are_off_by_default(server: Server) -> None:
    for path in ("/docs", "/openapi.json", "/redoc"):
        assert httpx.get(f"{server.url}{path}").status_code == 404


def test_docs_when_on_load_nothing_from_elsewhere(tmp_path: Path) -> None:
    app = create_app(settings_for(tmp_path, f"sqlite:///{tmp_path / 'lof.db'}", api_docs=True))
    with TestClient(app) as client:
        page = client.get("/docs")
        assert (
            page.status_code == 200
            and "default-src 'none'" in page.headers["content-security-policy"]
        )
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text) + re.findall(
            r"url: *'([^']+)'", page.text
        )
        assert sources and all(s.startswith("/") for s in sources), sources
        for source in sources:
            assert client.get(source).status_code == 200, source
        assert client.get("/openapi.json").json()["paths"]


def _client_logged(server: Server) -> str:
    """The client address the access log shows for a request with forged forwarded headers."""
    marker = f"/healthz?probe={time.time_ns()}"
    forged = {"x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https"}
    assert httpx.get(f"{server.url}{marker}", headers=forged).status_code == 200
    deadline = time.monotonic() + 5
    line = ""
    while not line and time.monotonic() < deadline:
        line = next((x for x in server.log.read_text().splitlines() if marker in x), "")
    return line.split()[1] if line else ""


def test_forwarded_headers_are_believed_only_from_configured_proxies(
    server: Server, home: Path
) -> None:
    assert _client_logged(server).startswith("127.0.0.1:")
    with serving(home, LOF_FORWARDED_ALLOW_IPS="127.0.0.1") as behind_a_proxy:
        assert _client_logged(behind_a_proxy).startswith("203.0.113.7:")
