"""/predictions served from the body written with the day: one key lookup, ETag and 304s
(real SQLite store and DynamoDB on moto_server, filled by the real write path)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lof.api import create_app
from lof.stores import open_prediction_store

from ._data import AWS_TEST_ENV, CLASS_A, DAY2, KEYS, USERS_A, fill, prediction_frame, settings_for

URL = "/predictions?predicted_dt=20230325&class_id=12"
AUTH = {"x-api-key": KEYS[0]}


@pytest.fixture(params=["sqlite", "dynamodb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'lof.db'}"
    else:
        for name, value in AWS_TEST_ENV.items():
            monkeypatch.setenv(name, value)
        endpoint = request.getfixturevalue("moto_endpoint")
        url = f"dynamodb://?endpoint={endpoint}&prefix=c{uuid.uuid4().hex[:8]}_&region=us-east-1"
    fill(url)
    return url


def _count_store_calls(app, store_url: str) -> list[str]:
    """Every statement / DynamoDB operation the app's store sends."""
    calls: list[str] = []
    store = app.state.store_holder.get()
    if store_url.startswith("dynamodb://"):
        store.client.meta.events.register(
            "before-call.dynamodb.*", lambda model, **_: calls.append(model.name)
        )
    else:
        import sqlalchemy as sa

        sa.event.listen(
            store.engine, "before_cursor_execute", lambda _c, _cur, st, *_: calls.append(st)
        )
    return calls


def test_uncached_class_day_is_one_key_lookup(tmp_path: Path, store_url: str) -> None:
    app = create_app(settings_for(tmp_path, store_url), cache_seconds=0)
    with TestClient(app) as client:
        assert client.get(URL, headers=AUTH).status_code == 200  # opens the store
        calls = _count_store_calls(app, store_url)
        response = client.get(URL, headers={**AUTH, "accept-encoding": "gzip"})
    assert response.status_code == 200
    assert {r["user_id"] for r in response.json()} == set(USERS_A)
    if store_url.startswith("dynamodb://"):
        assert calls == ["GetItem"]
    else:
        assert len(calls) == 1 and "lof_prediction_bodies" in calls[0]


def test_etag_and_last_modified_give_304s_until_the_day_is_rewritten(
    tmp_path: Path, store_url: str
) -> None:
    app = create_app(settings_for(tmp_path, store_url), cache_seconds=0)
    with TestClient(app) as client:
        first = client.get(URL, headers=AUTH)
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        same = client.get(URL, headers={**AUTH, "if-none-match": etag})
        listed = client.get(URL, headers={**AUTH, "if-none-match": f'"other", W/{etag}'})
        since = client.get(URL, headers={**AUTH, "if-modified-since": modified})
        older = client.get(
            URL, headers={**AUTH, "if-modified-since": "Mon, 01 Jan 2001 00:00:00 GMT"}
        )
        wrong = client.get(URL, headers={**AUTH, "if-none-match": '"nope"'})

        store = open_prediction_store(store_url)
        store.write_day(
            day=DAY2, predictions=prediction_frame(class_id=CLASS_A, users=USERS_A, seed=99)
        )
        after = client.get(URL, headers={**AUTH, "if-none-match": etag})
        unauthorised = client.get(URL, headers={"if-none-match": etag})
    assert first.status_code == 200 and etag.startswith('"')
    assert same.status_code == listed.status_code == since.status_code == 304
    assert same.content == b"" and same.headers["etag"] == etag
    assert older.status_code == wrong.status_code == 200
    assert older.json() == first.json()
    assert after.status_code == 200 and after.headers["etag"] != etag
    assert after.json() != first.json()
    assert unauthorised.status_code == 401
