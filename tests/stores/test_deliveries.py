"""The memory of handled webhook deliveries: one behaviour on SQLite, PostgreSQL and DynamoDB
(a real moto_server), bounded in time."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from lof.stores.deliveries import DELIVERIES, open_delivery_store

NOW = 1_800_000_000


@pytest.fixture(params=["sqlite", "postgresql", "dynamodb"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lof.db'}"
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        engine = sa.create_engine(url)
        DELIVERIES.drop(engine, checkfirst=True)
        engine.dispose()
        return url
    endpoint = request.getfixturevalue("moto_endpoint")
    return f"dynamodb://?endpoint={endpoint}&prefix=d{uuid.uuid4().hex[:8]}_&region=us-east-1"


def test_a_delivery_is_remembered_for_its_window_only(url: str) -> None:
    store = open_delivery_store(url)
    try:
        assert not store.seen("s3:abc", now=NOW)
        store.remember("s3:abc", ttl_seconds=600, now=NOW)
        store.remember("s3:abc", ttl_seconds=600, now=NOW)  # again: no error, one entry
        assert store.seen("s3:abc", now=NOW + 599)
        assert not store.seen("s3:abc", now=NOW + 600)
        assert not store.seen("mlflow:other", now=NOW)
        with pytest.raises(ValueError):
            store.seen("x" * 161)
    finally:
        store.close()
    reopened = open_delivery_store(url)  # kept in the store, not in the process
    try:
        assert reopened.seen("s3:abc", now=NOW + 1)
    finally:
        reopened.close()


def test_sql_prunes_expired_deliveries(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lof.db'}"
    store = open_delivery_store(url)
    try:
        for k in range(5):
            store.remember(f"old-{k}", ttl_seconds=600, now=NOW)
        store.remember("new", ttl_seconds=600, now=NOW + 601)
    finally:
        store.close()
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        kept = [row.delivery_id for row in conn.execute(sa.select(DELIVERIES))]
    engine.dispose()
    assert kept == ["new"]


def test_dynamodb_table_expires_items_by_ttl(moto_endpoint: str) -> None:
    import boto3

    prefix = f"d{uuid.uuid4().hex[:8]}_"
    url = f"dynamodb://?endpoint={moto_endpoint}&prefix={prefix}&region=us-east-1"
    open_delivery_store(url).close()
    client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    ttl = client.describe_time_to_live(TableName=f"{prefix}deliveries")["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED" and ttl["AttributeName"] == "expires_at"
