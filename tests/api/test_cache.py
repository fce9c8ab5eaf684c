"""The class-day body cache and gzip answers (real SQLite store, real write path)."""

from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lof.api import create_app
from lof.api.cache import Body, BodyCache, compress, wants_gzip
from lof.stores import open_prediction_store

from ._data import CLASS_A, DAY2, KEYS, USERS_A, fill, prediction_frame, settings_for

URL = "/predictions?predicted_dt=20230325&class_id=12"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'lof.db'}"
    fill(url)
    return url


def test_gzip_when_asked_and_identical_content(tmp_path: Path, sqlite_url: str) -> None:
    app = create_app(settings_for(tmp_path, sqlite_url))
    with TestClient(app) as client:
        zipped = client.get(URL, headers={"x-api-key": KEYS[0], "accept-encoding": "gzip"})
        plain = client.get(URL, headers={"x-api-key": KEYS[0], "accept-encoding": "identity"})
        refused = client.get(URL, headers={"x-api-key": KEYS[0], "accept-encoding": "gzip;q=0"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) < int(plain.headers["content-length"])
    assert "content-encoding" not in plain.headers
    assert "content-encoding" not in refused.headers
    assert zipped.headers["vary"] == "accept-encoding, x-api-key"
    assert zipped.headers["cache-control"] == "private, no-cache"
    assert zipped.json() == plain.json() == refused.json()
    assert {r["user_id"] for r in plain.json()} == set(USERS_A)


def test_cached_day_is_served_until_ttl_and_uncached_sees_rewrite(
    tmp_path: Path, sqlite_url: str
) -> None:
    headers = {"x-api-key": KEYS[0]}
    cached = create_app(settings_for(tmp_path, sqlite_url))
    fresh = create_app(settings_for(tmp_path, sqlite_url), cache_seconds=0)
    with TestClient(cached) as c1, TestClient(fresh) as c2:
        before = c1.get(URL, headers=headers).json()
        assert c2.get(URL, headers=headers).json() == before

        store = open_prediction_store(sqlite_url)
        store.write_day(
            day=DAY2, predictions=prediction_frame(class_id=CLASS_A, users=USERS_A, seed=99)
        )
        store.close()

        assert c1.get(URL, headers=headers).json() == before  # within the cache's TTL
        after = c2.get(URL, headers=headers).json()
    assert after != before
    assert {r["user_id"] for r in after} == set(USERS_A)
    assert cached.state.body_cache.size > 0
    assert fresh.state.body_cache.size == 0


def test_missing_day_is_not_cached(tmp_path: Path, sqlite_url: str) -> None:
    headers = {"x-api-key": KEYS[0]}
    app = create_app(settings_for(tmp_path, sqlite_url))
    url = "/predictions?predicted_dt=20230326&class_id=12"
    with TestClient(app) as client:
        assert client.get(url, headers=headers).status_code == 404
        store = open_prediction_store(sqlite_url)
        store.write_day(
            day=date(2023, 3, 26),
            predictions=prediction_frame(class_id=CLASS_A, users=USERS_A, seed=5),
        )
        store.close()
        response = client.get(url, headers=headers)
    assert response.status_code == 200
    assert len(response.json()) == len(USERS_A)


def test_cache_is_bounded_in_bytes_oldest_out() -> None:
    cache = BodyCache(ttl=60, max_bytes=1000)
    for day in range(1, 6):
        cache.put((1, date(2023, 3, day)), Body(b"x" * 200))  # counts 400 bytes each
    assert cache.size <= 1000
    assert cache.get((1, date(2023, 3, 1))) is None
    assert cache.get((1, date(2023, 3, 5))) is not None
    cache.put((2, date(2023, 3, 1)), Body(b"y" * 600))  # larger than the bound: not kept
    assert cache.get((2, date(2023, 3, 1))) is None
    off = BodyCache(ttl=0, max_bytes=1000)
    off.put((1, date(2023, 3, 1)), Body(b"z"))
    assert off.get((1, date(2023, 3, 1))) is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("br;q=1.0, GZIP;q=0.5", True),
        ("*", True),
        ("gzip;q=0", False),
        ("identity", False),
        ("", False),
        ("deflate", False),
    ],
)
def test_accept_encoding_parsing(header: str, expected: bool) -> None:
    assert wants_gzip(header) is expected


def test_gzip_body_is_valid_json() -> None:
    body = Body(json.dumps([{"a": 1}] * 100).encode())

    assert json.loads(gzip.decompress(compress(body.plain))) == [{"a": 1}] * 100
