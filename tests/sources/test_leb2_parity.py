"""SQLite and MariaDB answer every LEB2 query identically on the same synthetic university."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from lof.sources import leb2
from lof.synthetic.university import synthesize

TODAY = date(2025, 3, 1)
SIZE = {"students": 60, "classes": 3, "days": 12, "events_per_student_day": 1.0}


@pytest.fixture(scope="module")
def engines(mariadb_url: str, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("parity")
    sqlite_url = f"sqlite:///{root / 'leb2.db'}"
    for url, folder in ((sqlite_url, "a"), (mariadb_url, "b")):
        synthesize(
            leb2_url=url,
            amplitude_dir=root / folder,
            today=TODAY,
            amplitude_days=0,
            replace=True,
            **SIZE,
        )
    pair = leb2.connect(sqlite_url), leb2.connect(mariadb_url)
    yield pair
    for engine in pair:
        engine.dispose()


def _same(left: pd.DataFrame, right: pd.DataFrame) -> None:
    assert len(left) > 0
    pd.testing.assert_frame_equal(left, right, check_exact=True)


def test_semesters_parity(engines) -> None:
    lite, maria = engines
    _same(leb2.semesters(lite), leb2.semesters(maria))


def test_ongoing_and_finished_parity(engines) -> None:
    lite, maria = engines
    for day in (TODAY - timedelta(days=1), TODAY - timedelta(days=12), date(2024, 8, 1)):
        _same(
            leb2.ongoing_classes(lite, day=day, window_months=4),
            leb2.ongoing_classes(maria, day=day, window_months=4),
        )
    _same(leb2.finished_classes(lite, as_of=TODAY), leb2.finished_classes(maria, as_of=TODAY))
    slug = leb2.semesters(lite)["slug"].iloc[0]
    _same(
        leb2.finished_classes(lite, as_of=TODAY, semesters=[slug]),
        leb2.finished_classes(maria, as_of=TODAY, semesters=[slug]),
    )


def test_records_levels_and_labels_parity(engines) -> None:
    lite, maria = engines
    ids = list(range(1, 20))
    for until in (None, datetime(2025, 2, 25), datetime(2024, 7, 1)):
        _same(
            leb2.assessed_records(lite, class_ids=ids, until=until),
            leb2.assessed_records(maria, class_ids=ids, until=until),
        )
    _same(leb2.required_levels(lite, class_ids=ids), leb2.required_levels(maria, class_ids=ids))
    for rule in ("attainment", "max", "mean"):
        _same(
            leb2.final_levels(lite, class_ids=ids, rule=rule),
            leb2.final_levels(maria, class_ids=ids, rule=rule),
        )
