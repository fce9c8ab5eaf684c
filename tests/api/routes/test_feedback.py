"""Feedback through the API and the page's form, on SQLite and on DynamoDB (real moto_server)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import mlflow
import pytest
from fastapi.testclient import TestClient

from lof.api import create_app
from lof.core import links
from lof.feedback import NOTE_MAX_CHARS
from lof.training.feedback import log_feedback_metrics
from tests.api._data import (
    AWS_TEST_ENV,
    CLASS_A,
    CLASS_B,
    DAY1,
    DAY2,
    KEYS,
    USERS_A,
    USERS_B,
    fill,
    settings_for,
)

from ._demo import SECRET

AUTH = {"x-api-key": KEYS[0]}
D1, D2 = f"{DAY1:%Y%m%d}", f"{DAY2:%Y%m%d}"


@pytest.fixture(scope="module", params=["sqlite", "dynamodb"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp(f"feedback-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{home / 'lof.db'}"
    else:
        endpoint = request.getfixturevalue("moto_endpoint")
        url = f"dynamodb://?endpoint={endpoint}&prefix=fb{uuid.uuid4().hex[:8]}_&region=us-east-1"
    with pytest.MonkeyPatch.context() as mp:
        for name, value in AWS_TEST_ENV.items():
            mp.setenv(name, value)
        written = fill(url)
    return {"url": url, "home": home, "written": written}


@pytest.fixture(scope="module")
def client(backend: dict) -> Iterator[TestClient]:
    settings = settings_for(backend["home"], backend["url"], link_secret=SECRET)
    app = create_app(settings)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in AWS_TEST_ENV.items():
            mp.setenv(name, value)
        with TestClient(app, raise_server_exceptions=False) as test_client:
            test_client.app_settings = settings  # type: ignore[attr-defined]
            yield test_client
        app.state.feedback_holder.close()


def _export(client: TestClient, class_id: int, **params: str) -> list[dict]:
    response = client.get("/feedback", params={"class_id": class_id, **params}, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def _entry(**overrides: object) -> dict:
    return {
        "class_id": CLASS_A,
        "predicted_dt": D2,
        "user_id": USERS_A[0],
        "teacher_id": "t-01",
        "verdict": "useful",
        "note": None,
    } | overrides


POSTED = ("class_id", "predicted_dt", "user_id", "teacher_id", "verdict", "note")


def test_rewrite_of_a_key_is_idempotent(client: TestClient) -> None:
    entry = _entry(user_id=USERS_A[1], teacher_id="t-idem")
    first = client.post("/feedback", json=entry, headers=AUTH)
    assert first.status_code == 200, first.text
    again = client.post("/feedback", json=entry, headers=AUTH)
    assert again.json() == first.json()  # same content: nothing rewritten, not even updated_at
    mine = [r for r in _export(client, CLASS_A) if r["teacher_id"] == "t-idem"]
    assert len(mine) == 1
    changed = client.post(
        "/feedback", json=entry | {"verdict": "not_useful", "note": "already met"}, headers=AUTH
    )
    assert changed.status_code == 200
    mine = [r for r in _export(client, CLASS_A) if r["teacher_id"] == "t-idem"]
    assert [(r["verdict"], r["note"]) for r in mine] == [("not_useful", "already met")]
    other_teacher = client.post("/feedback", json=entry | {"teacher_id": "t-idem2"}, headers=AUTH)
    assert other_teacher.status_code == 200
    keys = {(r["user_id"], r["teacher_id"]) for r in _export(client, CLASS_A, date=D2)}
    assert {(USERS_A[1], "t-idem"), (USERS_A[1], "t-idem2")} <= keys


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"verdict": "great"}, "verdict must be one of useful, not_useful, already_known"),
        ({"verdict": None}, "verdict must be one of"),
        ({"note": "x" * (NOTE_MAX_CHARS + 1)}, f"note is at most {NOTE_MAX_CHARS} characters"),
        ({"teacher_id": "has space"}, "teacher_id must be"),
        ({"teacher_id": None}, "teacher_id is required"),
        ({"predicted_dt": "2023-13-45"}, "predicted_dt"),
        ({"predicted_dt": None}, "predicted_dt is required"),
        ({"user_id": "abc"}, "user_id must be a positive integer"),
        ({"user_id": 999999}, "has no prediction in class"),
        ({"class_id": -3}, "class_id must be a positive integer"),
        ({"predicted_dt": "20240101"}, "has no prediction in class"),
    ],
)
def test_bad_values_get_422_and_store_nothing(client: TestClient, change: dict, words: str) -> None:
    before = _export(client, CLASS_A)
    response = client.post("/feedback", json=_entry(teacher_id="t-bad") | change, headers=AUTH)
    assert response.status_code == 422
    assert words in response.json()["detail"]
    assert _export(client, CLASS_A) == before


def test_body_must_be_a_json_object(client: TestClient) -> None:
    for body in (b"", b"[1, 2]", b"{not json"):
        response = client.post(
            "/feedback", content=body, headers=AUTH | {"content-type": "application/json"}
        )
        assert response.status_code == 422
        assert "JSON object" in response.json()["detail"]


def test_feedback_needs_the_api_key(client: TestClient) -> None:
    assert client.post("/feedback", json=_entry()).status_code == 401
    assert client.get("/feedback", params={"class_id": CLASS_A}).status_code == 401
    assert client.get("/feedback", params={"class_id": "x"}, headers=AUTH).status_code == 422


def test_export_equals_what_was_posted(client: TestClient) -> None:
    posted = [
        _entry(class_id=CLASS_B, predicted_dt=D2, user_id=USERS_B[0], teacher_id="t-x"),
        _entry(
            class_id=CLASS_B,
            predicted_dt=D2,
            user_id=USERS_B[1],
            teacher_id="t-x",
            verdict="already_known",
            note="ภาษาไทย & <b>markup</b> stays text",
        ),
        _entry(
            class_id=CLASS_B,
            predicted_dt=D2,
            user_id=USERS_B[1],
            teacher_id="t-y",
            verdict="not_useful",
            note="n" * NOTE_MAX_CHARS,
        ),
    ]
    for entry in posted:
        assert client.post("/feedback", json=entry, headers=AUTH).status_code == 200
    exported = _export(client, CLASS_B)
    assert [{k: r[k] for k in POSTED} for r in exported] == sorted(
        posted, key=lambda e: (e["predicted_dt"], e["user_id"], e["teacher_id"])
    )
    assert all(r["source"] == "api" and r["model_version"] == "4" for r in exported)
    assert _export(client, CLASS_B, date=D1) == []


def _token(class_id: int, teacher: str | None = "t-form") -> str:
    from pydantic import SecretStr

    token, _ = links.sign(
        secret=SecretStr(SECRET), class_id=class_id, ttl_seconds=600, teacher_id=teacher
    )
    return token


def test_form_post_saves_with_the_links_teacher(client: TestClient, backend: dict) -> None:
    written = backend["written"][(DAY1, CLASS_A)]
    user = int(written["user_id"].iloc[2])
    form = {"token": _token(CLASS_A), "predicted_dt": D1, "user_id": str(user)}
    form |= {"verdict": "useful", "note": "", "teacher_id": "someone-else"}
    response = client.post(f"/classes/{CLASS_A}/feedback", data=form, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith(f"/classes/{CLASS_A}/report?token=")
    mine = [r for r in _export(client, CLASS_A, date=D1) if r["user_id"] == user]
    assert [(r["teacher_id"], r["verdict"], r["note"], r["source"]) for r in mine] == [
        ("t-form", "useful", None, "page")
    ]
    page = client.get(response.headers["location"])
    assert page.status_code == 200
    assert f"your feedback on student {user} was saved" in page.text


def test_a_link_without_a_teacher_cannot_give_feedback(client: TestClient) -> None:
    """A teacherless link's form never stores a verdict: not under a teacher id it types (which
    would overwrite that teacher's own verdict), nor under none."""
    named = {"token": _token(CLASS_A, "t-owner"), "predicted_dt": D1}
    named |= {"user_id": str(USERS_A[3]), "verdict": "useful"}
    saved = client.post(f"/classes/{CLASS_A}/feedback", data=named, follow_redirects=False)
    assert saved.status_code == 303
    before = _export(client, CLASS_A, date=D1)
    teacherless = {"token": _token(CLASS_A, None), "predicted_dt": D1, "user_id": str(USERS_A[3])}
    for typed in ({}, {"teacher_id": "t-owner"}):
        response = client.post(
            f"/classes/{CLASS_A}/feedback",
            data=teacherless | typed | {"verdict": "not_useful"},
            follow_redirects=False,
        )
        assert response.status_code == 403 and "text/html" in response.headers["content-type"]
        assert "does not name a teacher" in response.text
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert _export(client, CLASS_A, date=D1) == before
    page = client.get(f"/classes/{CLASS_A}/report", params={"token": _token(CLASS_A, None)})
    assert page.status_code == 200 and 'name="verdict"' not in page.text
    assert "cannot\ngive feedback" in page.text


def test_form_refuses_bad_links_and_bad_values(client: TestClient) -> None:
    base = {"predicted_dt": D1, "user_id": str(USERS_A[0]), "verdict": "useful"}
    before = _export(client, CLASS_A)
    other = client.post(f"/classes/{CLASS_A}/feedback", data=base | {"token": _token(CLASS_B)})
    assert other.status_code == 403 and "another class" in other.text
    tampered = _token(CLASS_A)[:-3] + "AAA"
    bad = client.post(f"/classes/{CLASS_A}/feedback", data=base | {"token": tampered})
    assert bad.status_code == 403
    wrong = client.post(
        f"/classes/{CLASS_A}/feedback",
        data=base | {"token": _token(CLASS_A), "verdict": "maybe"},
    )
    assert wrong.status_code == 422 and "verdict must be one of" in wrong.text
    assert _export(client, CLASS_A) == before


def test_retrain_hook_logs_counts_and_useful_share(
    client: TestClient, backend: dict, tmp_path
) -> None:
    day2 = backend["written"][(DAY2, CLASS_A)]
    warned = int(day2.loc[day2["at_risk"], "user_id"].iloc[0])
    for teacher, verdict in (("t-m1", "useful"), ("t-m2", "not_useful"), ("t-m3", "useful")):
        entry = _entry(user_id=warned, teacher_id=teacher, verdict=verdict)
        assert client.post("/feedback", json=entry, headers=AUTH).status_code == 200
    every = _export(client, CLASS_A) + _export(client, CLASS_B)
    warnings = [r for r in every if r["at_risk"]]
    assert len(warnings) >= 3
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run() as run:
        summary = log_feedback_metrics(settings=client.app_settings)  # type: ignore[attr-defined]
    metrics = mlflow.MlflowClient(tracking_uri=uri).get_run(run.info.run_id).data.metrics
    assert metrics["feedback.count"] == len(every)
    assert metrics["feedback.v4.count"] == len(every)
    for verdict in ("useful", "not_useful", "already_known"):
        assert metrics[f"feedback.v4.{verdict}"] == sum(r["verdict"] == verdict for r in every)
    share = sum(r["verdict"] == "useful" for r in warnings) / len(warnings)
    assert metrics["feedback.v4.useful_share"] == pytest.approx(share)
    assert metrics["feedback.v4.warnings"] == len(warnings)
    assert summary["4"]["count"] == len(every)
