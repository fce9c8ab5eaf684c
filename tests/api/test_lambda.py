"""AWS Lambda: API Gateway REST (v1) and HTTP (v2) events through ``lof.api.handler`` (Mangum)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

import lof.api as api
import lof.api.entry as entry

from ._data import KEYS, USERS_A, fill

CONTEXT = SimpleNamespace(function_name="lof-predictions", aws_request_id="req-1")


@pytest.fixture
def lambda_env(lof_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The handler's process: settings from the environment, app not built yet."""
    url = f"sqlite:///{lof_home / 'lof.db'}"
    fill(url)
    monkeypatch.setenv("LOF_STORE_URL", url)
    monkeypatch.setenv("LOF_API_KEYS", ",".join(KEYS))
    monkeypatch.setattr(entry, "_app", None)
    monkeypatch.setattr(entry, "_handler", None)
    return lof_home


def rest_v1_event(path: str, query: dict[str, str], headers: dict[str, str]) -> dict:
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": "GET",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": "GET",
            "path": f"/prod{path}",
            "stage": "prod",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "leb2-backend"},
            "accountId": "123456789012",
            "apiId": "abc123",
        },
        "body": None,
        "isBase64Encoded": False,
    }


def http_v2_event(path: str, raw_query: str, headers: dict[str, str]) -> dict:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.ap-southeast-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": "GET",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "leb2-backend",
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "25/Mar/2023:03:00:00 +0000",
            "timeEpoch": 1679713200000,
        },
        "isBase64Encoded": False,
    }


def test_rest_v1_event_with_quoted_values(lambda_env: Path) -> None:
    event = rest_v1_event(
        "/predictions",
        {"predicted_dt": '"20230325"', "class_id": '"12"'},
        {"x-api-key": KEYS[0], "accept": "application/json"},
    )
    response = api.handler(event, CONTEXT)
    assert response["statusCode"] == 200, response["body"]
    assert response["headers"]["content-type"] == "application/json"
    body = json.loads(response["body"])
    assert sorted(r["user_id"] for r in body) == sorted(USERS_A)
    assert {r["predicted_dt"] for r in body} == {"20230325"}


def test_http_v2_event_and_errors(lambda_env: Path) -> None:
    ok = api.handler(
        http_v2_event(
            "/predictions", "predicted_dt=%2220230324%22&class_id=12", {"x-api-key": KEYS[1]}
        ),
        CONTEXT,
    )
    assert ok["statusCode"] == 200, ok["body"]
    assert len(json.loads(ok["body"])) == len(USERS_A)

    denied = api.handler(
        http_v2_event("/predictions", "predicted_dt=20230324&class_id=12", {}), CONTEXT
    )
    assert denied["statusCode"] == 401
    assert json.loads(denied["body"]) == {"detail": "missing x-api-key header"}

    missing = api.handler(
        http_v2_event("/predictions", "predicted_dt=20230401&class_id=12", {"x-api-key": KEYS[0]}),
        CONTEXT,
    )
    assert missing["statusCode"] == 404
    assert "20230325" in json.loads(missing["body"])["detail"]

    health = api.handler(http_v2_event("/healthz", "", {}), CONTEXT)
    assert health["statusCode"] == 200
    assert json.loads(health["body"]) == {"status": "ok"}


def test_lambda_answers_in_plain_json_even_when_gzip_is_accepted(lambda_env: Path) -> None:
    """A gzip body would leave Mangum base64-encoded, which a REST API returns as text."""
    headers = {"x-api-key": KEYS[0], "Accept-Encoding": "gzip, deflate"}
    for event in (
        rest_v1_event("/predictions", {"predicted_dt": "20230325", "class_id": "12"}, headers),
        http_v2_event("/predictions", "predicted_dt=20230325&class_id=12", headers),
    ):
        response = api.handler(event, CONTEXT)
        assert response["statusCode"] == 200 and not response["isBase64Encoded"]
        assert "content-encoding" not in response["headers"]
        assert len(json.loads(response["body"])) == len(USERS_A)


def test_the_class_page_behind_the_prod_stage_keeps_the_stage_in_its_links(
    lambda_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """API Gateway hands the Lambda the path without the stage; LOF_PUBLIC_URL names it."""
    from pydantic import SecretStr

    from lof.core import links

    secret = "stage-link-secret-0123456789abcdef"
    monkeypatch.setenv("LOF_LINK_SECRET", secret)
    monkeypatch.setenv(
        "LOF_PUBLIC_URL", "https://abc123.execute-api.ap-southeast-1.amazonaws.com/prod"
    )
    token, _ = links.sign(
        secret=SecretStr(secret), class_id=12, ttl_seconds=600, teacher_id="t-0042"
    )
    page = api.handler(
        rest_v1_event("/classes/12/report", {"token": token}, {"accept": "text/html"}), CONTEXT
    )
    assert page["statusCode"] == 200, page["body"]
    assert 'action="/prod/classes/12/feedback"' in page["body"]
    assert 'href="/prod/classes/12/report?token=' in page["body"]
    assert 'href="/classes/' not in page["body"] and 'action="/classes/' not in page["body"]
