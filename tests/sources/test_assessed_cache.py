"""Assessed records through the checksum cache equal a full read, day after day, and see edits.

A synthetic university (``lof.synthetic.university``) in SQLite and the same data in MariaDB: the
checksum queries and the restricted reads must behave the same on both dialects.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from lof.core.calendar import end_of_day
from lof.sources import assessed_cache, leb2
from lof.synthetic import university as synth

TODAY = date(2025, 3, 1)


@pytest.fixture(scope="module")
def university(tmp_path_factory: pytest.TempPathFactory) -> str:
    home = tmp_path_factory.mktemp("assessed")
    url = f"sqlite:///{home / 'leb2.db'}"
    synth.synthesize(
        leb2_url=url, amplitude_dir=home / "amp", seed=3, today=TODAY, students=120, classes=3,
        days=30, amplitude_days=1,
    )  # fmt: skip
    return url


def _check_days(engine: sa.Engine, cache: Path, days: list[date]) -> list[dict[str, int]]:
    seen = []
    for day in days:
        ids = leb2.ongoing_classes(engine, day=day, window_months=4)["class_id"].tolist()
        full = leb2.assessed_records(engine, class_ids=ids, until=end_of_day(day))
        stats: dict[str, int] = {}
        got, submissions = assessed_cache.read(
            engine, class_ids=ids, until=end_of_day(day), cache=cache, stats=stats
        )
        pd.testing.assert_frame_equal(got, full)
        _check_submissions(engine, ids, day, submissions)
        seen.append(stats)
    return seen


def _check_submissions(engine: sa.Engine, ids: list[int], day: date, cached: pd.DataFrame) -> None:
    """The cached latest submissions equal a direct read, and so does what the signals get."""
    until = end_of_day(day)
    keys = ["class_id", "activity_id", "user_id"]
    direct = leb2.latest_submissions(engine, class_ids=ids, cutoff=until, started=True)
    pd.testing.assert_frame_equal(cached, direct.sort_values(keys).reset_index(drop=True))
    acts, subs = leb2.activity_status(engine, class_ids=ids, until=until)
    acts_c, subs_c = leb2.activity_status(
        engine, class_ids=ids, until=until, started_submissions=cached
    )
    pd.testing.assert_frame_equal(acts_c, acts)
    pd.testing.assert_frame_equal(
        subs_c.sort_values(keys).reset_index(drop=True),
        subs.sort_values(keys).reset_index(drop=True),
    )


def test_cached_reads_equal_full_reads_and_reread_only_changes(
    university: str, tmp_path: Path
) -> None:
    engine = leb2.connect(university)
    days = [TODAY - timedelta(days=n) for n in (12, 11, 3, 2, 2)]
    stats = _check_days(engine, tmp_path / "c.pkl", days)
    assert stats[0]["reread"] == stats[0]["activities"]  # no cache yet: everything
    assert stats[-1]["reread"] == 0  # same day again: nothing changed
    assert stats[-1]["rows"] > stats[0]["rows"]


# Each edit touches a record that counts on the day (its activity id, user id, criterion id).
EDITS = {
    "regrade": "UPDATE act_sub_points SET cri_level_id = (SELECT MAX(l.id) FROM cri_levels l "
    "WHERE l.cri_id = :c AND l.id <> act_sub_points.cri_level_id) "
    "WHERE activity_id = :a AND user_id = :u AND cri_id = :c",
    "grade removed": "DELETE FROM act_sub_points WHERE activity_id = :a AND user_id = :u",
    "submission deleted": "UPDATE activity_submissions SET deleted_at = '2025-01-01 00:00:00' "
    "WHERE activity_id = :a AND user_id = :u",
    "spent time edited": "UPDATE activity_submissions SET spent_time = '9:59:59' "
    "WHERE activity_id = :a AND user_id = :u",
    "submission moved later": "UPDATE activity_submissions SET submitted_at = "
    "'2025-02-28 23:58:30' WHERE activity_id = :a AND user_id = :u",
    "submission added": "INSERT INTO activity_submissions (activity_id, user_id, submitted_at, "
    "spent_time) VALUES (:a, :u + 1000000, '2025-02-27 08:00:00', '0:10:00')",
    "required level moved": "UPDATE cri_levels SET flag = 1 - flag WHERE cri_id = :c",
    "due date moved": "UPDATE activities SET due_date = '2025-02-01 12:00:00' WHERE id = :a",
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edit_in_leb2_is_seen(university: str, tmp_path: Path, edit: str) -> None:
    copy = tmp_path / "leb2.db"
    copy.write_bytes(Path(sa.make_url(university).database).read_bytes())
    engine = leb2.connect(f"sqlite:///{copy}")
    day = TODAY - timedelta(days=1)
    cache = tmp_path / "c.pkl"
    _check_days(engine, cache, [day])
    ids = leb2.ongoing_classes(engine, day=day, window_months=4)["class_id"].tolist()
    record = leb2.assessed_records(engine, class_ids=ids, until=end_of_day(day)).iloc[-1]
    params = {"a": int(record.activity_id), "u": int(record.user_id), "c": int(record.cri_id)}
    with engine.begin() as conn:
        assert conn.execute(sa.text(EDITS[edit]), params).rowcount >= 1
    (stats,) = _check_days(engine, cache, [day])  # equal to a full read after the edit
    assert 1 <= stats["reread"] < stats["activities"]


def test_same_results_on_mariadb(university: str, mariadb_url: str, tmp_path: Path) -> None:
    lite = leb2.connect(university)
    maria = sa.create_engine(mariadb_url)
    leb2.METADATA.create_all(maria)
    try:  # the MariaDB database is shared by the session: leave it as found
        with lite.connect() as src, maria.begin() as dst:
            for table in leb2.METADATA.sorted_tables:
                rows = [dict(r._mapping) for r in src.execute(sa.select(table))]
                if rows:
                    dst.execute(table.insert(), rows)
        engine = leb2.connect(mariadb_url)
        days = [TODAY - timedelta(days=n) for n in (10, 4, 4)]
        stats = _check_days(engine, tmp_path / "m.pkl", days)
        assert stats[-1]["reread"] == 0
        engine.dispose()
    finally:
        leb2.METADATA.drop_all(maria)
        maria.dispose()
