"""Privacy records, stored next to the predictions (same LOF_STORE_URL, both backends).

* the **opt-out list**: the keyed pseudonym (``lof.governance.pseudonyms``) of each student who
  opted out or was forgotten, never their id; the daily run, the retrain and the class pages
  consult it;
* the **erasure entries** of ``lof forget``: when, how many ids, their pseudonyms, what each
  store removed; an entry without ``finished_at`` is an erasure that has not completed;
* the students each **class page does not show**: per (class, day) the pseudonyms of the
  opted-out members of the class's cohort, so a page can say how many (never who);
* the fingerprint of the secret the list was recorded under, so a changed LOF_PSEUDONYM_SECRET
  is refused instead of silently letting opted-out students back in.

SQL tables ``lof_opt_outs``, ``lof_erasures``, ``lof_hidden`` (primary key class_id, day,
user_hash) and ``lof_privacy_meta``. DynamoDB table ``<prefix>privacy``: ``pk="OPTOUT"``,
``sk=<pseudonym>``; ``pk="ERASURE"``, ``sk=<entry id>``; ``pk="META"``, ``sk="secret"``;
``pk="HIDDEN#<class>"``, ``sk="<YYYYMMDD>#<pseudonym>"``. Everything here is small: the
retention purge of hidden rows on DynamoDB is one Scan of this table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Protocol

import orjson
import sqlalchemy as sa

from lof.core.calendar import format_day
from lof.core.errors import ConfigError
from lof.stores.base import parse_day_key
from lof.stores.dynamo_items import Item, dynamo_key, put
from lof.stores.small_tables import DynamoTable, SqlTables
from lof.stores.sql import LONG_TEXT

METADATA = sa.MetaData()
HASH = sa.String(32)
OPT_OUTS = sa.Table(
    "lof_opt_outs",
    METADATA,
    sa.Column("user_hash", HASH, primary_key=True),
    sa.Column("reason", sa.String(8), nullable=False),
    sa.Column("since", sa.String(20), nullable=False),
)
ERASURES = sa.Table(
    "lof_erasures",
    METADATA,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("started_at", sa.String(20), nullable=False),
    sa.Column("finished_at", sa.String(20), nullable=True),
    sa.Column("ids", sa.Integer, nullable=False),
    sa.Column("hashes", LONG_TEXT, nullable=False),
    sa.Column("removed", sa.Text, nullable=True),
)
HIDDEN = sa.Table(
    "lof_hidden",
    METADATA,
    sa.Column("class_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("user_hash", HASH, primary_key=True),
)
META = sa.Table(
    "lof_privacy_meta",
    METADATA,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
)
REASONS = ("opt-out", "forget")


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ErasureEntry:
    """One ``lof forget``: when it started and finished, how many ids, their pseudonyms and
    what each store removed. Its id follows from the pseudonyms, so a rerun with the same ids
    finds and finishes the same entry."""

    id: str
    started_at: str
    ids: int
    hashes: tuple[str, ...]
    finished_at: str | None = None
    removed: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.finished_at is not None


def new_erasure(hashes: Collection[str]) -> ErasureEntry:
    ordered = tuple(sorted(set(hashes)))
    entry_id = hashlib.sha256(",".join(ordered).encode()).hexdigest()[:16]
    return ErasureEntry(id=entry_id, started_at=now_text(), ids=len(ordered), hashes=ordered)


def _secret_refused() -> ConfigError:
    return ConfigError(
        "LOF_PSEUDONYM_SECRET is not the secret the opt-out list was recorded under; set it "
        "back to that value (with another one, opted-out students would be scored again)"
    )


class PrivacyStore(Protocol):
    def check_secret(self, fingerprint: str, *, record: bool) -> None:
        """ConfigError if the list was recorded under another secret; ``record``: remember
        this one if none is recorded yet (before writing the first record)."""

    def opt_out(self, hashes: Collection[str], *, reason: str) -> int:
        """Add these pseudonyms to the opt-out list; returns how many were not on it."""

    def opt_in(self, hashes: Collection[str]) -> int:
        """Take them off the list; returns how many were on it."""

    def opted_out(self) -> set[str]: ...

    def start_erasure(self, entry: ErasureEntry) -> ErasureEntry:
        """Record ``entry`` unless an entry of the same id exists; returns the stored one."""

    def record_erasure(self, entry_id: str, *, removed: Mapping[str, int], finished: bool) -> None:
        """Save what the erasure removed so far (and, ``finished``, when it completed)."""

    def erasures(self) -> list[ErasureEntry]: ...

    def add_hidden(self, rows: Iterable[tuple[int, date, str]]) -> None:
        """Record (class, day, pseudonym) rows (kept once)."""

    def replace_hidden(self, *, day: date, hidden: Mapping[int, Collection[str]]) -> None:
        """Day ``day``'s rows of these classes become exactly ``hidden``."""

    def hidden_before(self, *, day: date, class_ids: Collection[int]) -> dict[int, set[str]]:
        """Each class's pseudonyms on its latest day before ``day`` that has any."""

    def hidden_count(self, *, class_id: int, day: date) -> int: ...

    def purge_before(self, cut: date) -> int:
        """Remove the hidden rows of days before ``cut``; returns how many."""

    def close(self) -> None: ...


def _entry(
    *,
    id: str,
    started_at: str,
    ids: int | str,
    hashes: str,
    finished_at: str | None = None,
    removed: str | None = None,
) -> ErasureEntry:
    """An erasure entry from its stored columns (``hashes`` comma-joined, ``removed`` JSON)."""
    return ErasureEntry(
        id=id,
        started_at=started_at,
        finished_at=finished_at,
        ids=int(ids),
        hashes=tuple(h for h in hashes.split(",") if h),
        removed=orjson.loads(removed) if removed else {},
    )


class SqlPrivacyStore(SqlTables):
    """Privacy records in the predictions' SQL database."""

    what = "privacy records"

    def __init__(self, url: str) -> None:
        super().__init__(url, METADATA)

    def check_secret(self, fingerprint: str, *, record: bool) -> None:
        def transaction() -> None:
            with self.engine.begin() as conn:
                found = conn.execute(
                    sa.select(META.c.value).where(META.c.name == "secret")
                ).scalar()
                if found is None and record:
                    conn.execute(META.insert(), {"name": "secret", "value": fingerprint})
                elif found is not None and found != fingerprint:
                    raise _secret_refused()

        self.run(transaction, what="checking")

    def opt_out(self, hashes: Collection[str], *, reason: str) -> int:
        def transaction() -> int:
            with self.engine.begin() as conn:
                known = set(conn.execute(sa.select(OPT_OUTS.c.user_hash)).scalars())
                new = sorted(set(hashes) - known)
                if new:
                    since = now_text()
                    conn.execute(
                        OPT_OUTS.insert(),
                        [{"user_hash": h, "reason": reason, "since": since} for h in new],
                    )
                return len(new)

        return self.run(transaction, what="writing")

    def opt_in(self, hashes: Collection[str]) -> int:
        def transaction() -> int:
            with self.engine.begin() as conn:
                result = conn.execute(
                    sa.delete(OPT_OUTS).where(OPT_OUTS.c.user_hash.in_(sorted(set(hashes))))
                )
                return int(result.rowcount or 0)

        return self.run(transaction, what="writing")

    def opted_out(self) -> set[str]:
        def read() -> set[str]:
            with self.engine.connect() as conn:
                return set(conn.execute(sa.select(OPT_OUTS.c.user_hash)).scalars())

        return self.run(read, what="reading")

    def start_erasure(self, entry: ErasureEntry) -> ErasureEntry:
        def transaction() -> ErasureEntry:
            with self.engine.begin() as conn:
                found = conn.execute(sa.select(ERASURES).where(ERASURES.c.id == entry.id)).first()
                if found is not None:
                    return _entry(**found._asdict())
                conn.execute(
                    ERASURES.insert(),
                    {
                        "id": entry.id,
                        "started_at": entry.started_at,
                        "finished_at": None,
                        "ids": entry.ids,
                        "hashes": ",".join(entry.hashes),
                        "removed": None,
                    },
                )
                return entry

        return self.run(transaction, what="writing")

    def record_erasure(self, entry_id: str, *, removed: Mapping[str, int], finished: bool) -> None:
        values = {"removed": orjson.dumps(dict(removed)).decode()}
        if finished:
            values["finished_at"] = now_text()

        def transaction() -> None:
            with self.engine.begin() as conn:
                conn.execute(sa.update(ERASURES).where(ERASURES.c.id == entry_id).values(values))

        self.run(transaction, what="writing")

    def erasures(self) -> list[ErasureEntry]:
        def read() -> list[ErasureEntry]:
            with self.engine.connect() as conn:
                rows = conn.execute(sa.select(ERASURES).order_by(ERASURES.c.started_at))
                return [_entry(**row._asdict()) for row in rows]

        return self.run(read, what="reading")

    def add_hidden(self, rows: Iterable[tuple[int, date, str]]) -> None:
        wanted = {(int(c), d, h) for c, d, h in rows}
        if not wanted:
            return

        def transaction() -> None:
            with self.engine.begin() as conn:
                for class_id, day in sorted({(c, d) for c, d, _ in wanted}):
                    known = set(
                        conn.execute(
                            sa.select(HIDDEN.c.user_hash).where(
                                HIDDEN.c.class_id == class_id, HIDDEN.c.day == day
                            )
                        ).scalars()
                    )
                    new = sorted(
                        h for c, d, h in wanted if (c, d) == (class_id, day) and h not in known
                    )
                    if new:
                        conn.execute(
                            HIDDEN.insert(),
                            [{"class_id": class_id, "day": day, "user_hash": h} for h in new],
                        )

        self.run(transaction, what="writing")

    def replace_hidden(self, *, day: date, hidden: Mapping[int, Collection[str]]) -> None:
        if not hidden:
            return

        def transaction() -> None:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.delete(HIDDEN).where(
                        HIDDEN.c.day == day, HIDDEN.c.class_id.in_(sorted(map(int, hidden)))
                    )
                )
                rows = [
                    {"class_id": int(c), "day": day, "user_hash": h}
                    for c, hashes in sorted(hidden.items())
                    for h in sorted(set(hashes))
                ]
                if rows:
                    conn.execute(HIDDEN.insert(), rows)

        self.run(transaction, what="writing")

    def hidden_before(self, *, day: date, class_ids: Collection[int]) -> dict[int, set[str]]:
        ids = sorted({int(c) for c in class_ids})
        if not ids:
            return {}
        latest = (
            sa.select(HIDDEN.c.class_id, sa.func.max(HIDDEN.c.day).label("day"))
            .where(HIDDEN.c.class_id.in_(ids), HIDDEN.c.day < day)
            .group_by(HIDDEN.c.class_id)
            .subquery()
        )
        query = sa.select(HIDDEN.c.class_id, HIDDEN.c.user_hash).join(
            latest, sa.and_(HIDDEN.c.class_id == latest.c.class_id, HIDDEN.c.day == latest.c.day)
        )

        def read() -> dict[int, set[str]]:
            out: dict[int, set[str]] = {}
            with self.engine.connect() as conn:
                for class_id, user_hash in conn.execute(query):
                    out.setdefault(int(class_id), set()).add(user_hash)
            return out

        return self.run(read, what="reading")

    def hidden_count(self, *, class_id: int, day: date) -> int:
        query = sa.select(sa.func.count()).where(
            HIDDEN.c.class_id == int(class_id), HIDDEN.c.day == day
        )

        def read() -> int:
            with self.engine.connect() as conn:
                return int(conn.execute(query).scalar_one())

        return self.run(read, what="reading")

    def purge_before(self, cut: date) -> int:
        def transaction() -> int:
            with self.engine.begin() as conn:
                return int(conn.execute(sa.delete(HIDDEN).where(HIDDEN.c.day < cut)).rowcount or 0)

        return self.run(transaction, what="purging")


class DynamoPrivacyStore(DynamoTable):
    """Privacy records in the DynamoDB table ``<prefix>privacy``."""

    kind = "privacy"

    def _item(self, pk: str, sk: str, **values: str | int) -> Item:
        item = dynamo_key(pk, sk)
        for name, value in values.items():
            item[name] = {"N": str(value)} if isinstance(value, int) else {"S": value}
        return item

    def check_secret(self, fingerprint: str, *, record: bool) -> None:
        def check() -> None:
            key = dynamo_key("META", "secret")
            found = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True)
            if "Item" not in found:
                if record:
                    self.client.put_item(
                        TableName=self.table, Item=self._item("META", "secret", value=fingerprint)
                    )
                return
            if found["Item"]["value"]["S"] != fingerprint:
                raise _secret_refused()

        self.guard(check, what="checking the privacy records")

    def opt_out(self, hashes: Collection[str], *, reason: str) -> int:
        def write() -> int:
            new = sorted(set(hashes) - self._opted_out())
            since = now_text()
            self.batch(
                [put(self._item("OPTOUT", h, reason=reason, since=since)) for h in new],
                what="recording opt-outs",
            )
            return len(new)

        return self.guard(write, what="recording opt-outs")

    def opt_in(self, hashes: Collection[str]) -> int:
        def write() -> int:
            listed = self._opted_out()
            present = [dynamo_key("OPTOUT", h) for h in sorted(set(hashes) & listed)]
            return self.delete_keys(present, what="removing opt-outs")

        return self.guard(write, what="removing opt-outs")

    def _opted_out(self) -> set[str]:
        return {item["sk"]["S"] for item in self.query("OPTOUT")}

    def opted_out(self) -> set[str]:
        return self.guard(self._opted_out, what="reading the opt-out list")

    @staticmethod
    def _entry(item: Item) -> ErasureEntry:
        return _entry(
            id=item["sk"]["S"],
            started_at=item["started_at"]["S"],
            ids=item["ids"]["N"],
            hashes=item["hashes"]["S"],
            finished_at=item["finished_at"]["S"] if "finished_at" in item else None,
            removed=item["removed"]["S"] if "removed" in item else None,
        )

    def start_erasure(self, entry: ErasureEntry) -> ErasureEntry:
        def write() -> ErasureEntry:
            key = dynamo_key("ERASURE", entry.id)
            found = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True)
            if "Item" in found:
                return self._entry(found["Item"])
            item = self._item(
                "ERASURE",
                entry.id,
                started_at=entry.started_at,
                ids=entry.ids,
                hashes=",".join(entry.hashes),
            )
            self.client.put_item(TableName=self.table, Item=item)
            return entry

        return self.guard(write, what="recording the erasure")

    def record_erasure(self, entry_id: str, *, removed: Mapping[str, int], finished: bool) -> None:
        update = "SET removed = :removed" + (", finished_at = :at" if finished else "")
        values: Item = {":removed": {"S": orjson.dumps(dict(removed)).decode()}}
        if finished:
            values[":at"] = {"S": now_text()}
        self.guard(
            lambda: self.client.update_item(
                TableName=self.table,
                Key=dynamo_key("ERASURE", entry_id),
                UpdateExpression=update,
                ExpressionAttributeValues=values,
            ),
            what="recording the erasure",
        )

    def erasures(self) -> list[ErasureEntry]:
        entries = self.guard(
            lambda: [self._entry(item) for item in self.query("ERASURE")],
            what="reading the erasures",
        )
        return sorted(entries, key=lambda e: e.started_at)

    def add_hidden(self, rows: Iterable[tuple[int, date, str]]) -> None:
        requests = [
            put(self._item(f"HIDDEN#{int(c)}", f"{format_day(d)}#{h}"))
            for c, d, h in sorted({(int(c), d, h) for c, d, h in rows})
        ]
        self.guard(lambda: self.batch(requests, what="recording hidden"), what="recording hidden")

    def _day_items(self, class_id: int, day: date) -> list[Item]:
        return list(
            self.query(f"HIDDEN#{class_id}", condition="begins_with(sk, :d)", d=format_day(day))
        )

    def replace_hidden(self, *, day: date, hidden: Mapping[int, Collection[str]]) -> None:
        def write() -> None:
            for class_id, hashes in sorted(hidden.items()):
                stale = [
                    i for i in self._day_items(int(class_id), day) if i["sk"]["S"][9:] not in hashes
                ]
                self.delete_keys(stale, what="replacing hidden")
            self.add_hidden((c, day, h) for c, hashes in hidden.items() for h in hashes)

        self.guard(write, what="recording hidden")

    def hidden_before(self, *, day: date, class_ids: Collection[int]) -> dict[int, set[str]]:
        def read() -> dict[int, set[str]]:
            out: dict[int, set[str]] = {}
            for class_id in sorted({int(c) for c in class_ids}):
                latest = ""
                for item in self.query(
                    f"HIDDEN#{class_id}", condition="sk < :d", d=format_day(day)
                ):
                    when, _, user_hash = item["sk"]["S"].partition("#")
                    if when > latest:
                        latest, out[class_id] = when, set()
                    if when == latest:
                        out[class_id].add(user_hash)
            return out

        return self.guard(read, what="reading hidden")

    def hidden_count(self, *, class_id: int, day: date) -> int:
        return self.guard(lambda: len(self._day_items(int(class_id), day)), what="reading hidden")

    def purge_before(self, cut: date) -> int:
        def purge() -> int:
            items = self.pages(
                "scan",
                {
                    "FilterExpression": "begins_with(pk, :h)",
                    "ExpressionAttributeValues": {":h": {"S": "HIDDEN#"}},
                    "ProjectionExpression": "pk, sk",
                },
            )
            old = [i for i in items if parse_day_key(i["sk"]["S"][:8]) < cut]
            return self.delete_keys(old, what="purging hidden")

        return self.guard(purge, what="purging hidden")


def open_privacy_store(url: str) -> PrivacyStore:
    """The privacy records of LOF_STORE_URL (tables created where the URL allows)."""
    if url.startswith("dynamodb:"):
        return DynamoPrivacyStore(url)
    return SqlPrivacyStore(url)


__all__ = [
    "REASONS",
    "DynamoPrivacyStore",
    "ErasureEntry",
    "PrivacyStore",
    "SqlPrivacyStore",
    "new_erasure",
    "open_privacy_store",
]
