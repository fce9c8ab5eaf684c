"""The synthetic university's early-warning cases: late starters, week-3 stoppers, leniently
graded early work and extreme-activity students, seeded like the rest."""

from __future__ import annotations

import gzip
import re
from datetime import date, timedelta

import numpy as np
import orjson
import pandas as pd
import pytest
from sqlalchemy import select

from lof.sources import leb2
from lof.synthetic.university import NEVER, _early_cases, synthesize

TODAY = date(2025, 3, 1)
CLASS_IN_URL = re.compile(r"/class/(\d+)")


def test_disabled_cases_change_nothing() -> None:
    cases = _early_cases(class_id=3, n=40, first_day=TODAY, enabled=False)
    assert (cases.rate_factor == 1.0).all()
    assert (cases.active_from == TODAY.toordinal()).all()
    assert (cases.stop_day == NEVER).all()
    assert cases.lenient_until is None


def test_cases_are_seeded_and_exclusive() -> None:
    a = _early_cases(class_id=5, n=400, first_day=TODAY, enabled=True)
    b = _early_cases(class_id=5, n=400, first_day=TODAY, enabled=True)
    assert (a.active_from == b.active_from).all() and (a.stop_day == b.stop_day).all()
    late = a.active_from > TODAY.toordinal()
    stops = a.stop_day < NEVER
    assert not (late & stops).any()
    assert 0.05 < late.mean() < 0.16 and 0.03 < stops.mean() < 0.12
    delays = a.active_from[late] - TODAY.toordinal()
    assert delays.min() >= 10 and delays.max() <= 25
    weeks = a.stop_day[stops] - TODAY.toordinal()
    assert weeks.min() >= 14 and weeks.max() <= 21
    assert 1 <= (a.rate_factor > 1).sum() <= 3 and a.rate_factor.max() >= 12


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("synth-early")
    summary = synthesize(
        leb2_url=f"sqlite:///{root / 'leb2.db'}",
        amplitude_dir=root / "amplitude",
        today=TODAY,
        students=80,
        classes=4,
        days=10,
        events_per_student_day=3.0,
        early_cases=True,
    )
    rows = []
    for path in sorted((root / "amplitude" / "100001").iterdir()):
        for line in gzip.decompress(path.read_bytes()).splitlines():
            event = orjson.loads(line)
            found = CLASS_IN_URL.search(event["event_properties"]["CURRENT_URL"])
            if found:
                rows.append((int(found.group(1)), int(event["user_id"]), event["event_time"][:10]))
    events = pd.DataFrame(rows, columns=["class_id", "user_id", "day"])
    engine = leb2.connect(f"sqlite:///{root / 'leb2.db'}")
    yield summary, engine, events
    engine.dispose()


def _finished_classes(engine, summary) -> pd.DataFrame:
    with engine.connect() as conn:
        acts = pd.DataFrame(conn.execute(select(leb2.TABLES["activities"])).mappings().all())
        classes = pd.DataFrame(conn.execute(select(leb2.TABLES["classes"])).mappings().all())
    live = classes.loc[classes["deleted_at"].isna(), "id"]
    acts = acts[acts["deleted_at"].isna() & acts["class_id"].isin(live)]
    first = acts.groupby("class_id")["start_date"].min().dt.date
    last_finished = max(s.last_day for s in summary.finished)
    return first[first <= last_finished]


def test_each_finished_class_has_late_starters_and_an_extreme_student(world) -> None:
    summary, engine, events = world
    firsts = _finished_classes(engine, summary)
    assert len(firsts) >= 6
    late = 0
    for class_id, first_day in firsts.items():
        own = events[events["class_id"] == class_id]
        first_seen = pd.to_datetime(own.groupby("user_id")["day"].min()).dt.date
        late += int((first_seen >= first_day + timedelta(days=10)).sum())
        views = own.groupby("user_id").size()
        assert views.max() >= 8 * views.median(), class_id
    assert late >= len(firsts), late  # ~10% of ~50 per class start late (some also withdraw)


def test_some_class_grades_its_early_work_leniently(world) -> None:
    summary, engine, _ = world
    firsts = _finished_classes(engine, summary)
    with engine.connect() as conn:
        acts = pd.DataFrame(conn.execute(select(leb2.TABLES["activities"])).mappings().all())
        points = pd.DataFrame(conn.execute(select(leb2.TABLES["act_sub_points"])).mappings().all())
        levels = pd.DataFrame(conn.execute(select(leb2.TABLES["cri_levels"])).mappings().all())
    points = points.merge(
        levels[["id", "level"]].rename(columns={"id": "cri_level_id"}), on="cri_level_id"
    ).merge(acts[["id", "class_id", "start_date"]].rename(columns={"id": "activity_id"}))
    means = []
    for class_id, first_day in firsts.items():
        own = points[points["class_id"] == class_id]
        early = own["start_date"].dt.date <= first_day + timedelta(days=30)
        means.append((own.loc[early, "level"].mean(), own.loc[~early, "level"].mean()))
    lenient = [e for e, rest in means if e >= 4.0 and e > rest + 0.4]
    assert lenient, means
    assert np.isfinite([m for pair in means for m in pair]).all()
