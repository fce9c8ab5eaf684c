"""Signed links, the page's headers, `POST /links` and `lof link` (pure parts and a TestClient)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from lof.api import create_app
from lof.api.routes.pages import security_headers
from lof.cli import app as cli_app
from lof.core import links
from lof.core.errors import ConfigError, DataError
from tests.api._data import CLASS_A, CLASS_B, KEYS, fill, settings_for

from ._demo import SECRET

SECRET_STR = SecretStr(SECRET)


def test_sign_and_verify_round_trip() -> None:
    token, claims = links.sign(
        secret=SECRET_STR, class_id=12, ttl_seconds=600, teacher_id="t-1", now=1_700_000_000
    )
    assert claims.expires_at == 1_700_000_600
    got = links.verify(token, secret=SECRET_STR, class_id=12, now=1_700_000_599)
    assert got == claims
    with pytest.raises(links.LinkRefused) as refused:
        links.verify(token, secret=SECRET_STR, class_id=12, now=1_700_000_600)
    assert refused.value.problem == "expired"
    with pytest.raises(links.LinkRefused) as refused:
        links.verify(token, secret=SECRET_STR, class_id=13, now=1_700_000_000)
    assert refused.value.problem == "other_class"
    with pytest.raises(links.LinkRefused) as refused:
        links.verify(token, secret=SecretStr("another-secret-of-length"), class_id=12)
    assert refused.value.problem == "tampered"


def test_every_changed_character_is_refused() -> None:
    token, _ = links.sign(secret=SECRET_STR, class_id=12, ttl_seconds=600)
    for i, ch in enumerate(token):
        if ch == ".":
            continue
        changed = token[:i] + ("A" if ch != "A" else "B") + token[i + 1 :]
        with pytest.raises(links.LinkRefused) as refused:
            links.verify(changed, secret=SECRET_STR, class_id=12)
        assert refused.value.problem in ("tampered", "malformed")


@pytest.mark.parametrize("token", [None, "", "abc", "a.b.c", "!!!.???", "x" * 700 + ".y"])
def test_garbage_tokens_are_refused(token: str | None) -> None:
    with pytest.raises(links.LinkRefused):
        links.verify(token, secret=SECRET_STR, class_id=12)


def test_signing_needs_a_secret_and_a_clean_teacher_id() -> None:
    with pytest.raises(ConfigError, match="LOF_LINK_SECRET is not set"):
        links.sign(secret=None, class_id=1, ttl_seconds=60)
    with pytest.raises(ValueError, match="teacher_id must be"):
        links.sign(secret=SECRET_STR, class_id=1, ttl_seconds=60, teacher_id="a b")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("'self'", "'self'"),
        ("self", "'self'"),
        ("none", "'none'"),
        ("", "'none'"),
        ("https://lms.example.ac.th, https://*.example.ac.th", None),
        ("'self' http://localhost:3000", "'self' http://localhost:3000"),
    ],
)
def test_frame_ancestors(value: str, expected: str | None) -> None:
    got = links.frame_ancestors_directive(value)
    assert got == (expected or "https://lms.example.ac.th https://*.example.ac.th")


@pytest.mark.parametrize(
    "value", ["javascript:alert(1)", "https://lms.example/path", "*", "'none' https://a.example"]
)
def test_bad_frame_ancestors_setting_is_refused(value: str, tmp_path: Path) -> None:
    from lof.core.config import get_settings

    with pytest.raises(ConfigError, match="LOF_FRAME_ANCESTORS"):
        get_settings(home=tmp_path, frame_ancestors=value)


def test_short_secret_and_bad_public_url_are_refused(tmp_path: Path) -> None:
    from lof.core.config import get_settings

    with pytest.raises(ConfigError, match="LOF_LINK_SECRET is too short"):
        get_settings(home=tmp_path, link_secret="short")
    with pytest.raises(ConfigError, match="LOF_PUBLIC_URL"):
        get_settings(home=tmp_path, public_url="lof.example")
    settings = get_settings(home=tmp_path, link_secret=SECRET)
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())


def test_headers_follow_the_frame_setting(tmp_path: Path) -> None:
    from lof.core.config import get_settings

    lms = security_headers(get_settings(home=tmp_path, frame_ancestors="https://lms.example.ac.th"))
    assert lms["content-security-policy"].endswith("frame-ancestors https://lms.example.ac.th")
    assert "x-frame-options" not in lms
    assert "script-src" not in lms["content-security-policy"]  # default-src 'none': no scripts
    default = security_headers(get_settings(home=tmp_path))
    assert "frame-ancestors 'self'" in default["content-security-policy"]
    assert default["x-frame-options"] == "SAMEORIGIN"
    assert default["referrer-policy"] == "no-referrer"
    assert (
        security_headers(get_settings(home=tmp_path, frame_ancestors="none"))["x-frame-options"]
        == "DENY"
    )


@pytest.mark.parametrize(
    ("text", "seconds"), [("3600", 3600), ("45m", 2700), ("8h", 28800), ("7D", 604800)]
)
def test_parse_ttl(text: str, seconds: int) -> None:
    assert links.parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "1y", "-5", "59", "91d", "h"])
def test_parse_ttl_refuses(text: str) -> None:
    with pytest.raises(DataError):
        links.parse_ttl(text, what="--ttl")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home = tmp_path_factory.mktemp("links")
    url = f"sqlite:///{home / 'lof.db'}"
    fill(url)
    settings = settings_for(
        home, url, link_secret=SECRET, public_url="https://lof.example.ac.th/", link_ttl_seconds=900
    )
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
    app.state.feedback_holder.close()


def test_post_links_returns_a_working_url(client: TestClient) -> None:
    response = client.post(
        "/links", json={"class_id": CLASS_A, "teacher_id": "t-9"}, headers={"x-api-key": KEYS[0]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["url"].startswith(f"https://lof.example.ac.th/classes/{CLASS_A}/report?token=")
    token = body["url"].split("token=", 1)[1]
    claims = links.verify(token, secret=SECRET_STR, class_id=CLASS_A)
    assert claims.teacher_id == "t-9" and claims.expires_at == body["expires_at"]
    page = client.get(body["url"].removeprefix("https://lof.example.ac.th"))
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert page.headers["cache-control"] == "no-store"
    assert '<th scope="row">' in page.text and "<caption>" in page.text
    other = client.get(f"/classes/{CLASS_B}/report", params={"token": token})
    assert other.status_code == 403 and "another class" in other.text


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"class_id": "x"}, "class_id must be a positive integer"),
        ({}, "class_id is required"),
        ({"class_id": 12, "ttl_seconds": 10}, "ttl_seconds must be an integer from 60"),
        ({"class_id": 12, "ttl_seconds": "600"}, "ttl_seconds must be an integer"),
        ({"class_id": 12, "teacher_id": "a b"}, "teacher_id must be"),
    ],
)
def test_post_links_refuses_bad_requests(client: TestClient, body: dict, words: str) -> None:
    response = client.post("/links", json=body, headers={"x-api-key": KEYS[0]})
    assert response.status_code == 422 and words in response.json()["detail"]


def test_post_links_needs_key_and_secret(client: TestClient, tmp_path: Path) -> None:
    assert client.post("/links", json={"class_id": 12}).status_code == 401
    app = create_app(settings_for(tmp_path, f"sqlite:///{tmp_path / 'lof.db'}"))
    with TestClient(app) as no_secret:
        response = no_secret.post("/links", json={"class_id": 12}, headers={"x-api-key": KEYS[0]})
        assert response.status_code == 503 and "LOF_LINK_SECRET" in response.json()["detail"]
        page = no_secret.get("/classes/12/report", params={"token": "a.b"})
        assert page.status_code == 503 and "LOF_LINK_SECRET" in page.text


def test_page_answers_for_missing_days_and_bad_input(client: TestClient) -> None:
    def token(class_id: int) -> str:
        return links.sign(secret=SECRET_STR, class_id=class_id, ttl_seconds=600)[0]

    missing_day = client.get(
        f"/classes/{CLASS_A}/report", params={"token": token(CLASS_A), "date": "20200101"}
    )
    assert missing_day.status_code == 404 and "2023-03-25" in missing_day.text
    nothing = client.get("/classes/99/report", params={"token": token(99)})
    assert nothing.status_code == 404 and "no predictions on any day" in nothing.text
    bad_date = client.get(
        f"/classes/{CLASS_A}/report", params={"token": token(CLASS_A), "date": "2023-99-01"}
    )
    assert bad_date.status_code == 422 and "date must be" in bad_date.text


def test_lof_link_prints_a_url_that_verifies(
    lof_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOF_LINK_SECRET", SECRET)
    monkeypatch.setenv("LOF_PUBLIC_URL", "http://127.0.0.1:8123")
    result = CliRunner().invoke(cli_app, ["link", "--class-id", "12", "--ttl", "2h"])
    assert result.exit_code == 0, result.output
    url = result.stdout.strip().splitlines()[-1]
    assert url.startswith("http://127.0.0.1:8123/classes/12/report?token=")
    claims = links.verify(url.split("token=")[1], secret=SECRET_STR, class_id=12)
    assert claims.teacher_id is None
    assert SECRET not in result.output
    bad = CliRunner().invoke(cli_app, ["link", "--class-id", "12", "--ttl", "soon"])
    assert bad.exit_code == 1 and "--ttl 'soon' is not a duration" in bad.output
    monkeypatch.delenv("LOF_LINK_SECRET")
    unset = CliRunner().invoke(cli_app, ["link", "--class-id", "12"])
    assert unset.exit_code == 1 and "LOF_LINK_SECRET is not set" in unset.output


class _Counting:
    """The real store, counting the reads the page makes."""

    def __init__(self, store: object) -> None:
        self.store = store
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> object:
        attr = getattr(self.store, name)
        if not callable(attr):
            return attr

        def counted(*args: object, **kwargs: object) -> object:
            self.calls[name] = self.calls.get(name, 0) + 1
            return attr(*args, **kwargs)

        return counted


def test_page_reads_one_query_per_scored_day_not_per_student(client: TestClient) -> None:
    holder = client.app.state.store_holder  # type: ignore[attr-defined]
    real = holder.get()
    counting = _Counting(real)
    holder._store = counting
    try:
        token = links.sign(secret=SECRET_STR, class_id=CLASS_A, ttl_seconds=600)[0]
        page = client.get(f"/classes/{CLASS_A}/report", params={"token": token})
        assert page.status_code == 200
        assert page.text.count('<tr data-user-id="') == 5  # 5 students, 2 scored days
    finally:
        holder._store = real
    assert counting.calls == {"list_days": 1, "read_class_day": 2}
