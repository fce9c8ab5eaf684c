"""Reasons travel with each prediction: store (SQLite, DynamoDB on moto_server) -> API -> schema."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api._data import CLASS_A, DAY2, USERS_A, reasons_of


def test_reasons_are_returned_as_written(client: TestClient, backend, auth) -> None:
    response = client.get(
        "/predictions", params={"predicted_dt": "20230325", "class_id": CLASS_A}, headers=auth
    )
    assert response.status_code == 200, response.text
    body = {r["user_id"]: r for r in response.json()}
    assert sorted(body) == sorted(USERS_A)
    written = backend["written"][(DAY2, CLASS_A)].set_index("user_id")
    for user, record in body.items():
        assert record["reasons"] == written.loc[user, "reasons"] == reasons_of(user)
    even = next(u for u in USERS_A if u % 2 == 0)
    assert body[even]["reasons"][0]["effect"] == 0.1 + 0.2  # floats read back exactly
    assert all(body[u]["reasons"] == [] for u in USERS_A if u % 2)


def test_openapi_documents_reasons_with_an_example(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    prediction = schema["components"]["schemas"]["Prediction"]
    assert prediction["properties"]["reasons"]["items"] == {"$ref": "#/components/schemas/Reason"}
    example = prediction["examples"][0]["reasons"]
    assert example[0]["text"] == "3 activities past due not submitted (class median 0)"
    reason = schema["components"]["schemas"]["Reason"]
    assert set(reason["required"]) == {
        "feature",
        "text",
        "direction",
        "value",
        "class_median",
        "effect",
    }
