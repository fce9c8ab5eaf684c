"""The privacy records and the access log on SQLite, PostgreSQL, MariaDB and DynamoDB (moto)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import boto3
import pytest

from lof.core.errors import ConfigError
from lof.stores.access_log import AccessEntry, open_access_log
from lof.stores.dynamodb import parse_url
from lof.stores.privacy import new_erasure, open_privacy_store
from tests.stores.conftest import scan, sql_rows

D1, D2, D3 = date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 3)


def test_opt_out_list_erasure_entries_and_hidden_students(any_store_url: str) -> None:
    store = open_privacy_store(any_store_url)
    store.check_secret("fp-one", record=False)  # nothing recorded yet: any secret passes
    store.check_secret("fp-one", record=True)
    with pytest.raises(ConfigError, match="LOF_PSEUDONYM_SECRET is not the secret"):
        store.check_secret("fp-two", record=True)

    assert store.opt_out(["a" * 32, "b" * 32], reason="opt-out") == 2
    assert store.opt_out(["b" * 32, "c" * 32], reason="forget") == 1
    assert store.opted_out() == {"a" * 32, "b" * 32, "c" * 32}
    assert store.opt_in(["a" * 32, "d" * 32]) == 1
    assert store.opted_out() == {"b" * 32, "c" * 32}

    entry = new_erasure(["c" * 32, "b" * 32, "b" * 32])
    assert entry.ids == 2 and entry.hashes == ("b" * 32, "c" * 32)
    assert store.start_erasure(entry) == entry
    store.record_erasure(entry.id, removed={"predictions": 3}, finished=False)
    again = store.start_erasure(new_erasure(["b" * 32, "c" * 32]))  # the same ids: same entry
    assert again.id == entry.id and again.removed == {"predictions": 3} and not again.done
    store.record_erasure(entry.id, removed={"predictions": 3, "features": 9}, finished=True)
    (done,) = store.erasures()
    assert done.done and done.removed == {"predictions": 3, "features": 9}

    store.add_hidden([(1, D1, "b" * 32), (1, D1, "b" * 32), (2, D1, "c" * 32)])
    store.replace_hidden(day=D2, hidden={1: {"b" * 32, "c" * 32}, 2: set()})
    store.replace_hidden(day=D2, hidden={1: {"c" * 32}})
    assert store.hidden_count(class_id=1, day=D1) == 1
    assert store.hidden_count(class_id=1, day=D2) == 1
    assert store.hidden_before(day=D3, class_ids=[1, 2, 3]) == {1: {"c" * 32}, 2: {"c" * 32}}
    assert store.hidden_before(day=D2, class_ids=[1]) == {1: {"b" * 32}}
    assert store.purge_before(D2) == 2
    assert store.hidden_count(class_id=1, day=D1) == 0
    assert store.hidden_count(class_id=1, day=D2) == 1
    assert store.opted_out() == {"b" * 32, "c" * 32}  # the list is not a dated record


def test_access_log_reads_by_day_and_class_and_obeys_retention(any_store_url: str) -> None:
    log = open_access_log(any_store_url, retention_days=30)
    noon = datetime(2024, 3, 1, 12, tzinfo=UTC)
    entries = [
        AccessEntry(at=noon, route="GET /predictions", status=200, class_id=12, day="20240229",
                    key_id="k-0123456789ab"),
        AccessEntry(at=noon + timedelta(days=1), route="GET /classes/{class_id}/report",
                    status=200, class_id=12, teacher_id="t-7"),
        AccessEntry(at=noon + timedelta(days=1, hours=1), route="POST /links", status=200,
                    class_id=13, teacher_id="t-8", key_id="k-0123456789ab"),
    ]  # fmt: skip
    log.append(entries)

    assert log.read(since=D1) == entries
    assert log.read(since=D2) == entries[1:]
    assert log.read(since=D1, class_id=12) == entries[:2]
    assert log.purge_before(D2) == 1
    assert log.read(since=D1) == entries[1:]
    if any_store_url.startswith("dynamodb"):  # DynamoDB also expires entries itself
        options = parse_url(any_store_url)
        client = boto3.client("dynamodb", endpoint_url=options["endpoint"])
        ttl = client.describe_time_to_live(TableName=f"{options['prefix']}access_log")
        assert ttl["TimeToLiveDescription"]["AttributeName"] == "ttl"
        expiries = sorted(int(i["ttl"]["N"]) for i in scan(any_store_url, "access_log"))
        assert expiries[0] == int((noon + timedelta(days=32)).timestamp())
    else:
        assert len(sql_rows(any_store_url, "SELECT id FROM lof_access_log")) == 2
