"""The predictions API over real stores (SQLite, DynamoDB on moto_server) filled by write_day."""

from __future__ import annotations

import logging
from datetime import date

import pytest
from fastapi.testclient import TestClient

from lof.api import create_app
from lof.features.definitions import FEATURES

from ._data import (
    CLASS_A,
    CLASS_B,
    CLASS_EMPTY,
    DAY1,
    DAY2,
    KEYS,
    USERS_A,
    settings_for,
)


def _day(value: date) -> str:
    return value.strftime("%Y%m%d")


def test_predictions_return_what_the_daily_flow_wrote(client: TestClient, backend, auth) -> None:
    response = client.get(
        "/predictions", params={"predicted_dt": _day(DAY2), "class_id": CLASS_A}, headers=auth
    )
    assert response.status_code == 200, response.text
    body = response.json()
    written = backend["written"][(DAY2, CLASS_A)].set_index("user_id")
    assert sorted(r["user_id"] for r in body) == sorted(USERS_A)
    for record in body:
        row = written.loc[record["user_id"]]
        assert record["predicted_dt"] == "20230325"
        assert record["class_id"] == CLASS_A
        assert record["predicted_label"] == row["predicted_label"]
        assert record["predicted_prob"] == pytest.approx(row["predicted_prob"])
        assert record["risk_prob"] == pytest.approx(row["risk_prob"])
        assert record["at_risk"] is bool(row["at_risk"])
        assert record["required_level"] == 3
        assert record["model_version"] == "4"
        assert list(record["features"]) == list(FEATURES)
        assert record["features"] == pytest.approx(row["features"])


def test_other_class_same_day_is_separate(client: TestClient, auth) -> None:
    response = client.get(
        "/predictions", params={"predicted_dt": _day(DAY2), "class_id": CLASS_B}, headers=auth
    )
    assert response.status_code == 200
    assert {r["class_id"] for r in response.json()} == {CLASS_B}
    assert len(response.json()) == 2


@pytest.mark.parametrize(
    "query",
    [
        'predicted_dt="20230324"&class_id="12"',
        "predicted_dt='20230324'&class_id='12'",
        "predicted_dt=%2220230324%22&class_id=%2212%22",
        'predicted_dt=" 20230324 "&class_id=12',
    ],
)
def test_quoted_values_as_the_lms_backend_sends_them(client: TestClient, auth, query) -> None:
    plain = client.get("/predictions?predicted_dt=20230324&class_id=12", headers=auth)
    quoted = client.get(f"/predictions?{query}", headers=auth)
    assert quoted.status_code == 200, quoted.text
    assert quoted.json() == plain.json()
    assert {r["predicted_dt"] for r in quoted.json()} == {"20230324"}


def test_second_configured_key_is_accepted(client: TestClient) -> None:
    response = client.get(
        "/predictions",
        params={"predicted_dt": "20230325", "class_id": 12},
        headers={"x-api-key": KEYS[1]},
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-api-key": ""},
        {"x-api-key": "wrong"},
        {"x-api-key": KEYS[0] + "x"},
        {"x-api-key": KEYS[0][:-1]},
    ],
)
def test_missing_or_invalid_key_is_401(client: TestClient, headers) -> None:
    for url in (
        "/predictions?predicted_dt=20230325&class_id=12",
        "/classes/12/students/4501/history",
    ):
        response = client.get(url, headers=headers)
        assert response.status_code == 401
        assert "x-api-key" in response.json()["detail"]
        assert KEYS[0] not in response.text


def test_auth_is_checked_before_parameters(client: TestClient) -> None:
    response = client.get("/predictions?predicted_dt=nope", headers={"x-api-key": "wrong"})
    assert response.status_code == 401


def test_no_keys_configured_refuses_everything_and_warns(backend, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="lof.api"):
        app = create_app(settings_for(backend["home"], backend["url"], keys=None))
    assert "LOF_API_KEYS" in caplog.text
    with TestClient(app, raise_server_exceptions=False) as client:
        for key in ("", "anything", KEYS[0]):
            response = client.get(
                "/predictions?predicted_dt=20230325&class_id=12", headers={"x-api-key": key}
            )
            assert response.status_code == 401
        assert client.get("/healthz").status_code == 200


def test_keys_never_logged(backend, caplog) -> None:
    with caplog.at_level(logging.DEBUG):
        app = create_app(settings_for(backend["home"], backend["url"]))
        with TestClient(app, raise_server_exceptions=False) as client:
            client.get(
                "/predictions?predicted_dt=20230325&class_id=12", headers={"x-api-key": KEYS[0]}
            )
            client.get(
                "/predictions?predicted_dt=20230325&class_id=12", headers={"x-api-key": "bad"}
            )
    for key in KEYS:
        assert key not in caplog.text
    assert KEYS[0] not in repr(app.state.settings)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            "predicted_dt=2023-3-25&class_id=12",
            "predicted_dt must be a date as YYYYMMDD, e.g. 20230325",
        ),
        (
            "predicted_dt=20231345&class_id=12",
            "predicted_dt must be a date as YYYYMMDD, e.g. 20230325",
        ),
        (
            "predicted_dt=20230230&class_id=12",
            "predicted_dt must be a date as YYYYMMDD, e.g. 20230325",
        ),
        (
            "predicted_dt=tomorrow&class_id=12",
            "predicted_dt must be a date as YYYYMMDD, e.g. 20230325",
        ),
        ("predicted_dt=&class_id=12", "predicted_dt must be a date as YYYYMMDD"),
        ("predicted_dt=20230325&class_id=abc", "class_id must be a positive integer, e.g. 12"),
        ("predicted_dt=20230325&class_id=-3", "class_id must be a positive integer"),
        ("predicted_dt=20230325&class_id=0", "class_id must be a positive integer"),
        ("predicted_dt=20230325&class_id=1.5", "class_id must be a positive integer"),
        ("predicted_dt=20230325&class_id=99999999999999999999999", "class_id must be a positive"),
        ("class_id=12", "predicted_dt is required: a date as YYYYMMDD"),
        ("predicted_dt=20230325", "class_id is required: a positive integer"),
    ],
)
def test_malformed_values_are_422_with_the_expected_form(client, auth, query, expected) -> None:
    response = client.get(f"/predictions?{query}", headers=auth)
    assert response.status_code == 422
    assert expected in response.json()["detail"]


def test_no_predictions_that_day_is_404_naming_the_latest_day(client: TestClient, auth) -> None:
    response = client.get("/predictions?predicted_dt=20230401&class_id=12", headers=auth)
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "class 12" in detail and "20230401" in detail
    assert "latest day with predictions for class 12 is 20230325" in detail

    response = client.get("/predictions?predicted_dt=20230324&class_id=13", headers=auth)
    assert response.status_code == 404
    assert "is 20230325" in response.json()["detail"]


def test_class_without_any_prediction_is_404_saying_so(client: TestClient, auth) -> None:
    response = client.get(
        f"/predictions?predicted_dt=20230325&class_id={CLASS_EMPTY}", headers=auth
    )
    assert response.status_code == 404
    assert f"class {CLASS_EMPTY} has no predictions on any day" in response.json()["detail"]


def test_student_history_oldest_day_first(client: TestClient, backend, auth) -> None:
    user = USERS_A[2]
    response = client.get(f'/classes/"{CLASS_A}"/students/{user}/history', headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["class_id"] == CLASS_A and body["user_id"] == user
    assert [p["predicted_dt"] for p in body["days"]] == ["20230324", "20230325"]
    for point, day in zip(body["days"], (DAY1, DAY2), strict=True):
        row = backend["written"][(day, CLASS_A)].set_index("user_id").loc[user]
        assert point["risk_prob"] == pytest.approx(row["risk_prob"])
        assert point["predicted_prob"] == pytest.approx(row["predicted_prob"])
        assert point["at_risk"] is bool(row["at_risk"])


def test_student_history_unknown_is_404_and_bad_id_422(client: TestClient, auth) -> None:
    missing = client.get(f"/classes/{CLASS_A}/students/999/history", headers=auth)
    assert missing.status_code == 404
    assert "student 999" in missing.json()["detail"]
    bad = client.get(f"/classes/{CLASS_A}/students/x1/history", headers=auth)
    assert bad.status_code == 422
    assert "user_id must be a positive integer" in bad.json()["detail"]


def test_healthz_needs_no_key(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_openapi_documents_the_contract(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/predictions"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"predicted_dt", "class_id"}
    assert {"200", "401", "404", "422", "503"} <= set(operation["responses"])
    assert schema["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "x-api-key"
    prediction = schema["components"]["schemas"]["Prediction"]
    assert prediction["examples"][0]["features"]["avglevel"] == 2.75
    features = schema["components"]["schemas"]["Features"]
    assert list(features["properties"]) == list(FEATURES)
    assert "/healthz" in schema["paths"] and "/readyz" in schema["paths"]


def test_no_cors_headers(client: TestClient, auth) -> None:
    response = client.get(
        "/predictions?predicted_dt=20230325&class_id=12",
        headers={**auth, "Origin": "https://evil.example"},
    )
    assert "access-control-allow-origin" not in response.headers
