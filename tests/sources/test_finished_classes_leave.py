"""A class is scored from its first activity start until its last due date plus LOF_GRACE_DAYS,
then leaves the daily run and its catch-up, on a synthetic university in MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from lof import scoring
from lof.core.config import Settings
from lof.features import definitions as feat
from lof.sources import leb2
from lof.stores import open_feature_store
from lof.synthetic.university import synthesize
from tests.conftest import MARIADB_ROOT, _scratch_database

TODAY = date(2025, 3, 1)
SIZE = {"students": 60, "classes": 3, "days": 12, "events_per_student_day": 1.0}
GRACE = 10


@pytest.fixture(scope="module")
def university(mariadb_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Its own MariaDB database (the session's ``mariadb_url`` starts the server)."""
    root = tmp_path_factory.mktemp("finished")
    for url in _scratch_database(MARIADB_ROOT, quote="`"):
        synthesize(leb2_url=url, amplitude_dir=root / "amp", today=TODAY, amplitude_days=0, **SIZE)
        yield Settings(
            home=root / "home",
            leb2_url=url,
            amplitude_source=str(root / "amp"),
            store_url=f"sqlite:///{root / 'lof.db'}",
            grace_days=GRACE,
        )


def _last_class(settings: Settings) -> tuple[int, date]:
    """The finished class that ends last, and its last day (latest due date or start)."""
    finished = leb2.finished_classes(leb2.connect(settings.leb2_url), as_of=TODAY)
    row = finished.sort_values(["last_day", "class_id"]).iloc[-1]
    return int(row["class_id"]), row["last_day"]


def _scored_classes(settings: Settings, day: date) -> set[int]:
    engine = leb2.connect(settings.leb2_url)
    store = open_feature_store(settings.store_url, state_dir=settings.home / "cache")
    features = scoring.compute_day_features(
        settings=settings, engine=engine, feature_store=store, day=day
    )
    return set(features.scaled["class_id"].astype(int))


def test_a_class_past_its_last_due_date_and_grace_is_not_scored(university: Settings) -> None:
    class_id, last_day = _last_class(university)
    last_scored = last_day + timedelta(days=GRACE)
    assert class_id in _scored_classes(university, last_day)
    assert class_id in _scored_classes(university, last_scored)
    assert class_id not in _scored_classes(university, last_scored + timedelta(days=1))
    # months later (the former rule kept classes "ongoing" 4 months after an activity start)
    engine = leb2.connect(university.leb2_url)
    later = leb2.ongoing_classes(engine, day=last_day + timedelta(days=60), grace_days=GRACE)
    assert class_id not in set(later["class_id"])


def test_catch_up_does_not_fill_the_days_of_finished_classes(
    university: Settings, tmp_path: Path
) -> None:
    """After the last finished class's grace ends, no class is ongoing until the next semester
    starts: a store that is behind has nothing to fill, and a day of a semester that started
    later fills only from that semester's first activity start."""
    _, last_day = _last_class(university)
    engine = leb2.connect(university.leb2_url)
    store = open_feature_store(f"sqlite:///{tmp_path / 'behind.db'}")
    empty = feat.empty_engagement()
    store.write_day(day=last_day, increments=empty, states=empty)
    gap = last_day + timedelta(days=GRACE + 20)
    classes = leb2.ongoing_classes(engine, day=gap, grace_days=GRACE)
    assert classes.empty
    assert scoring.days_to_fill(feature_store=store, classes=classes, day=gap) == []
    today = TODAY - timedelta(days=1)
    ongoing = leb2.ongoing_classes(engine, day=today, grace_days=GRACE)
    missing = scoring.days_to_fill(feature_store=store, classes=ongoing, day=today)
    first = pd.Timestamp(ongoing["first_start"].min()).date()
    assert missing[0] == first > last_day + timedelta(days=GRACE)
    for day in (missing[0], missing[-1]):
        filled = leb2.ongoing_classes(engine, day=day, grace_days=GRACE)
        assert set(filled["class_id"]) <= set(ongoing["class_id"])
