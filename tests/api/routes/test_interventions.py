"""Teachers' actions through the API and the page's form, on SQLite and on DynamoDB (real
moto_server): validated, idempotent per key, exported, marked on the class page."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from lof.api import create_app
from lof.core import links
from lof.feedback import NOTE_MAX_CHARS
from tests.api._data import AWS_TEST_ENV, KEYS, settings_for
from tests.api._three_days import CLASS, write_three_days

AUTH = {"x-api-key": KEYS[0]}
SECRET = "actions-secret-0123456789"


@pytest.fixture(scope="module", params=["sqlite", "dynamodb"])
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    home = tmp_path_factory.mktemp(f"actions-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{home / 'lof.db'}"
    else:
        endpoint = request.getfixturevalue("moto_endpoint")
        url = f"dynamodb://?endpoint={endpoint}&prefix=iv{uuid.uuid4().hex[:8]}_&region=us-east-1"
    with pytest.MonkeyPatch.context() as mp:
        for name, value in AWS_TEST_ENV.items():
            mp.setenv(name, value)
        write_three_days(url)
        app = create_app(settings_for(home, url, link_secret=SECRET))
        with TestClient(app, raise_server_exceptions=False) as test_client:
            yield test_client
        app.state.feedback_holder.close()
        app.state.intervention_holder.close()


def _entry(**overrides: object) -> dict:
    return {
        "class_id": CLASS,
        "user_id": 802,
        "teacher_id": "t-01",
        "action_dt": "20230321",
        "action": "meeting",
        "note": None,
    } | overrides


def _export(client: TestClient) -> list[dict]:
    response = client.get("/interventions", params={"class_id": CLASS}, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def _token(teacher: str | None = "t-07") -> str:
    token, _ = links.sign(
        secret=SecretStr(SECRET), class_id=CLASS, ttl_seconds=600, teacher_id=teacher
    )
    return token


def test_recording_is_idempotent_per_key_and_exported(client: TestClient) -> None:
    first = client.post("/interventions", json=_entry(), headers=AUTH)
    assert first.status_code == 200, first.text
    again = client.post("/interventions", json=_entry(), headers=AUTH)
    assert again.json() == first.json()  # unchanged, updated_at included
    noted = client.post("/interventions", json=_entry(note="plan agreed"), headers=AUTH)
    assert noted.json()["note"] == "plan agreed"
    client.post("/interventions", json=_entry(action="referred"), headers=AUTH)
    client.post("/interventions", json=_entry(teacher_id="t-02"), headers=AUTH)
    exported = _export(client)
    keys = [(r["user_id"], r["teacher_id"], r["action_dt"], r["action"]) for r in exported]
    assert sorted(keys) == [
        (802, "t-01", "20230321", "meeting"),
        (802, "t-01", "20230321", "referred"),
        (802, "t-02", "20230321", "meeting"),
    ]
    meeting = next(r for r in exported if r["teacher_id"] == "t-01" and r["action"] == "meeting")
    assert meeting["note"] == "plan agreed" and meeting["source"] == "api"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"action": "phoned"}, "action must be one of contacted, meeting, referred, other"),
        ({"action_dt": "20991231"}, "is in the future"),
        ({"action_dt": "2023-02-30"}, "action_dt must be a date as YYYYMMDD"),
        ({"action_dt": None}, "action_dt is required"),
        ({"user_id": 999}, "student 999 has no prediction in class"),
        ({"user_id": "9" * 400}, "user_id must be a positive integer"),
        ({"teacher_id": "t-1\n"}, "teacher_id must be"),
        ({"note": "x" * (NOTE_MAX_CHARS + 1)}, f"note is at most {NOTE_MAX_CHARS} characters"),
        ({"note": {"nested": [1]}}, "note must be text"),
    ],
)
def test_invalid_actions_are_refused_and_not_stored(
    client: TestClient, change: dict, words: str
) -> None:
    before = _export(client)
    response = client.post("/interventions", json=_entry(user_id=801) | change, headers=AUTH)
    assert response.status_code == 422, response.text
    assert words in response.json()["detail"]
    assert _export(client) == before


def test_the_routes_need_the_api_key(client: TestClient) -> None:
    assert client.post("/interventions", json=_entry()).status_code == 401
    assert client.get("/interventions", params={"class_id": CLASS}).status_code == 401
    bad = client.get("/interventions", params={"class_id": "x"}, headers=AUTH)
    assert bad.status_code == 422 and "class_id" in bad.json()["detail"]
    not_json = client.post("/interventions", content=b"[1]", headers=AUTH)
    assert not_json.status_code == 422 and '"action": "meeting"' in not_json.json()["detail"]


def test_the_page_form_records_the_links_teacher_and_marks_the_trend(client: TestClient) -> None:
    token = _token("t-07")
    form = {
        "token": token,
        "user_id": "801",
        "action_dt": "2023-03-21",  # as a browser's date field sends it
        "action": "contacted",
        "teacher_id": "t-someone-else",  # ignored: the link names the teacher
    }
    saved = client.post(f"/classes/{CLASS}/interventions", data=form, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    assert "recorded=801" in saved.headers["location"]
    (record,) = [r for r in _export(client) if r["user_id"] == 801]
    assert (record["teacher_id"], record["action_dt"], record["source"]) == (
        "t-07",
        "20230321",
        "page",
    )
    page = client.get(saved.headers["location"])
    assert "Your action for student 801 was recorded." in page.text
    row = re.search(r'<tr data-user-id="801".*?</tr>', page.text, re.S)
    assert row is not None
    assert "Contacted on 2023-03-21" in row[0]
    assert row[0].count('class="action-mark"') == 1
    other = re.search(r'<tr data-user-id="803".*?</tr>', page.text, re.S)
    assert other is not None and "action-mark" not in other[0]
    # an earlier day's page does not show an action recorded after it
    early = client.get(f"/classes/{CLASS}/report", params={"token": token, "date": "20230320"})
    assert "Contacted on" not in early.text


def test_the_page_form_refuses_teacherless_links_and_bad_input(client: TestClient) -> None:
    before = _export(client)
    base = {"user_id": "804", "action_dt": "20230321", "action": "meeting"}
    anonymous = client.post(f"/classes/{CLASS}/interventions", data=base | {"token": _token(None)})
    assert anonymous.status_code == 403 and "does not name a teacher" in anonymous.text
    bad = client.post(
        f"/classes/{CLASS}/interventions", data=base | {"token": _token(), "action": "x"}
    )
    assert bad.status_code == 422 and "Action not recorded" in bad.text
    tampered = client.post(
        f"/classes/{CLASS}/interventions", data=base | {"token": _token()[:-2] + "xx"}
    )
    assert tampered.status_code == 403
    assert _export(client) == before
