"""The changes feed on three scored days (new, recovered, risen, unchanged), on SQLite and on
DynamoDB (real moto_server): the API route, the command and the class page's markers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from lof.api import create_app
from lof.api.changes import compare_days, pick_days
from lof.core import links
from tests.api._data import AWS_TEST_ENV, KEYS, settings_for
from tests.api._three_days import CLASS, D1, D2, D3, frame, write_three_days

AUTH = {"x-api-key": KEYS[0]}
SECRET = "changes-secret-0123456789"


@pytest.fixture(scope="module", params=["sqlite", "dynamodb"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp(f"changes-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{home / 'lof.db'}"
    else:
        endpoint = request.getfixturevalue("moto_endpoint")
        url = f"dynamodb://?endpoint={endpoint}&prefix=ch{uuid.uuid4().hex[:8]}_&region=us-east-1"
    with pytest.MonkeyPatch.context() as mp:
        for name, value in AWS_TEST_ENV.items():
            mp.setenv(name, value)
        write_three_days(url)
    return {"url": url, "home": home}


@pytest.fixture(scope="module")
def client(backend: dict) -> Iterator[TestClient]:
    settings = settings_for(backend["home"], backend["url"], link_secret=SECRET)
    app = create_app(settings)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in AWS_TEST_ENV.items():
            mp.setenv(name, value)
        with TestClient(app, raise_server_exceptions=False) as test_client:
            yield test_client
        app.state.feedback_holder.close()


def _changes(client: TestClient, **params: str) -> dict:
    response = client.get(f"/classes/{CLASS}/changes", params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def _users(body: dict, kind: str) -> list[int]:
    return [c["user_id"] for c in body[kind]]


def test_default_compares_the_latest_day_with_the_scored_day_before(client: TestClient) -> None:
    body = _changes(client)
    assert (body["since"], body["until"]) == (f"{D2:%Y%m%d}", f"{D3:%Y%m%d}")
    assert _users(body, "new") == [806, 801]  # by risk now, highest first
    assert _users(body, "recovered") == [802]
    assert _users(body, "risen") == [803]  # 805 rose by 0.10 only; 804 unchanged
    assert body["counts"] == {"new": 2, "recovered": 1, "risen": 1}
    first = {c["user_id"]: c for c in body["new"]}
    assert first[806]["risk_then"] is None and first[806]["risk_now"] == pytest.approx(0.9)
    assert first[801]["risk_then"] == pytest.approx(0.3) and first[801]["at_risk_now"]
    assert first[801]["reasons"] == [
        "3 activities past due not submitted (class median 0) (raises risk)"
    ]
    risen = body["risen"][0]
    assert (risen["risk_then"], risen["risk_now"]) == (pytest.approx(0.1), pytest.approx(0.4))
    assert body["rise"] == pytest.approx(0.15)


def test_since_and_until_pick_scored_days(client: TestClient) -> None:
    early = _changes(client, since=f"{D1:%Y%m%d}", until=f"{D2:%Y%m%d}")
    assert _users(early, "recovered") == [801] and not early["new"] and not early["risen"]
    # 20230322 has no predictions: it stands for D2, the latest scored day before it
    gap = _changes(client, since="20230322")
    assert gap["since"] == f"{D2:%Y%m%d}" and _users(gap, "recovered") == [802]
    before_all = _changes(client, since="20230101", until=f"{D1:%Y%m%d}")
    assert before_all["since"] is None
    assert _users(before_all, "new") == [802, 801, 804]  # all at risk on D1 are new


def test_refusals_are_problems(client: TestClient) -> None:
    wrong_order = client.get(
        f"/classes/{CLASS}/changes", params={"since": "20230323", "until": "20230320"}, headers=AUTH
    )
    assert wrong_order.status_code == 422 and "after until" in wrong_order.json()["detail"]
    bad_day = client.get(f"/classes/{CLASS}/changes", params={"since": "2023-13-01"}, headers=AUTH)
    assert bad_day.status_code == 422 and "since" in bad_day.json()["detail"]
    huge = client.get(f"/classes/{'9' * 400}/changes", headers=AUTH)
    assert huge.status_code == 422 and "class_id" in huge.json()["detail"]
    none = client.get("/classes/999/changes", headers=AUTH)
    assert none.status_code == 404 and "no predictions" in none.json()["detail"]
    too_early = client.get(f"/classes/{CLASS}/changes", params={"until": "20220101"}, headers=AUTH)
    assert too_early.status_code == 404 and "20230320" in too_early.json()["detail"]
    assert client.get(f"/classes/{CLASS}/changes").status_code == 401


def test_the_class_page_marks_the_changes(client: TestClient) -> None:
    token, _ = links.sign(
        secret=SecretStr(SECRET), class_id=CLASS, ttl_seconds=600, teacher_id="t-01"
    )
    page = client.get(f"/classes/{CLASS}/report", params={"token": token})
    assert page.status_code == 200
    html = page.text
    assert 'id="only-changes"' in html
    assert 'data-user-id="801" data-risk="0.700000" data-change="new"' in html
    assert 'data-user-id="804" data-risk="0.620000">' in html  # unchanged: no marker
    assert "Risk up since 2023-03-21 (was 10%)" in html
    assert "1 no longer at risk" in html
    # D2 follows D1 by a day: "yesterday"
    older = client.get(f"/classes/{CLASS}/report", params={"token": token, "date": "20230321"})
    assert "No longer at risk since yesterday" in older.text


def test_the_command_prints_the_changes(backend: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from lof.cli import app

    for name, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LOF_STORE_URL", backend["url"])
    monkeypatch.setenv("LOF_HOME", str(Path(backend["home"])))
    result = CliRunner().invoke(app, ["changes", "--class-id", str(CLASS), "--since", "20230321"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert (
        lines[0] == f"class {CLASS}: changes from 20230321 to 20230323 2 new, 1 recovered, 1 risen"
    )
    assert any(line.startswith("  806: newly at risk, - -> 90%") for line in lines)
    bad = CliRunner().invoke(app, ["changes", "--class-id", str(CLASS), "--since", "x"])
    assert bad.exit_code == 1 and "--since" in bad.output


def test_compare_days_rise_is_strict_and_setting_driven() -> None:
    then, now = frame(1).to_dict("records"), frame(2).to_dict("records")
    assert [c.user_id for c in compare_days(then, now, rise=0.05) if c.kind == "risen"] == [
        803,
        805,
    ]
    assert not [c for c in compare_days(then, now, rise=0.35) if c.kind == "risen"]
    assert pick_days([D1, D2, D3], since=None, until=D1) == (None, D1)
