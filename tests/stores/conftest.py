"""The store tests' backends: every one lof supports, each on a real server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import sqlalchemy as sa

from lof.stores.dynamodb import parse_url


def drop_lof_tables(url: str) -> None:
    from lof.stores import access_log, privacy, sql
    from lof.stores import feedback as feedback_store
    from lof.stores import interventions as intervention_store

    engine = sa.create_engine(url)
    try:
        for metadata in (
            sql.METADATA,
            sql.LEGACY_METADATA,
            feedback_store.METADATA,
            intervention_store.METADATA,
            privacy.METADATA,
            access_log.METADATA,
        ):
            metadata.drop_all(engine)
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgres", "mariadb", "dynamodb"])
def any_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lof.db'}"
    if request.param in ("postgres", "mariadb"):
        url = request.getfixturevalue(f"{request.param}_url")
        drop_lof_tables(url)
        return url
    endpoint = request.getfixturevalue("moto_endpoint")
    return f"dynamodb://?endpoint={endpoint}&prefix=e{uuid.uuid4().hex[:8]}_&region=us-east-1"


def scan(url: str, kind: str) -> Iterator[dict]:
    options = parse_url(url)
    client = boto3.client("dynamodb", endpoint_url=options["endpoint"], region_name="us-east-1")
    for page in client.get_paginator("scan").paginate(TableName=f"{options['prefix']}{kind}"):
        yield from page["Items"]


def sql_rows(url: str, query: str) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(query))]
    finally:
        engine.dispose()
