"""The synthetic university: schema, invariants, Amplitude layout, learnability, determinism."""

from __future__ import annotations

import gzip
import hashlib
import re
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pandas as pd
import pytest
from sqlalchemy import create_engine, inspect, select, text

from lof.core.errors import DataError
from lof.sources import leb2
from lof.synthetic.university import synthesize

TODAY = date(2025, 3, 1)
SMALL = {"students": 80, "classes": 4, "days": 10, "events_per_student_day": 3.0}
DESIGN_COLUMNS = {
    "semesters": {"id", "slug"},
    "classes": {"id", "code", "type", "semester_id", "deleted_at"},
    "course_outcomes": {"id", "class_id", "course_id", "clo_id", "type", "deleted_at"},
    "activities": {"id", "class_id", "type", "start_date", "due_date", "deleted_at"},
    "criterias": {"id", "clo_id", "deleted_at"},
    "cri_levels": {"id", "cri_id", "level", "flag", "deleted_at"},
    "act_sub_points": {"activity_id", "user_id", "cri_id", "cri_level_id"},
    "activity_submissions": {
        "id",
        "activity_id",
        "user_id",
        "submitted_at",
        "spent_time",
        "deleted_at",
    },
}
FILE_NAME = re.compile(r"^100001_(\d{4}-\d\d-\d\d)_(\d{1,2})#(\d+)\.json\.gz$")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("synth")
    calls: list[tuple[str, int, int]] = []
    summary = synthesize(
        leb2_url=f"sqlite:///{root / 'leb2.db'}",
        amplitude_dir=root / "amplitude",
        today=TODAY,
        progress=lambda stage, done, total: calls.append((stage, done, total)),
        **SMALL,
    )
    engine = leb2.connect(f"sqlite:///{root / 'leb2.db'}")
    yield summary, engine, root, calls
    engine.dispose()


@pytest.fixture(scope="module")
def events(world) -> pd.DataFrame:
    _, _, root, _ = world
    rows = []
    for path in sorted((root / "amplitude" / "100001").iterdir()):
        day, hour, _ = FILE_NAME.match(path.name).groups()
        for line in gzip.decompress(path.read_bytes()).splitlines():
            event = orjson.loads(line)
            event["file"] = path.name
            event["file_hour"] = f"{day} {int(hour):02d}"
            event["url"] = event["event_properties"]["CURRENT_URL"]
            rows.append(event)
    return pd.DataFrame(rows)


def _table(engine, name: str) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(select(leb2.TABLES[name])).mappings().all())


def test_every_design_column_is_present(world) -> None:
    _, engine, _, _ = world
    inspector = inspect(engine)
    for table, columns in DESIGN_COLUMNS.items():
        assert columns <= {c["name"] for c in inspector.get_columns(table)}, table


def test_summary_matches_the_database(world) -> None:
    summary, engine, root, calls = world
    classes = _table(engine, "classes")
    assert summary.semesters == len(_table(engine, "semesters")) == 3
    assert summary.classes == len(classes) == 3 * (SMALL["classes"] + 1)
    live = classes[classes["deleted_at"].isna()]
    assert summary.classes_obem == (live["type"] == "obem").sum() == 9
    assert summary.classes_other == (live["type"] != "obem").sum() == 3
    assert summary.activities == len(_table(engine, "activities"))
    assert summary.records == len(_table(engine, "act_sub_points"))
    assert summary.submissions == len(_table(engine, "activity_submissions"))
    assert summary.amplitude_files == len(list((root / "amplitude" / "100001").iterdir()))
    assert calls[-1][0] == "amplitude" and calls[-1][1] == calls[-1][2]
    assert ("leb2", 15, 15) in calls


def test_soft_deleted_rows_in_every_table(world) -> None:
    summary, engine, _, _ = world
    for name in DESIGN_COLUMNS:
        if "deleted_at" in DESIGN_COLUMNS[name]:
            frame = _table(engine, name)
            assert frame["deleted_at"].notna().sum() > 0, name
            assert summary.deleted_rows[name] == frame["deleted_at"].notna().sum()


def test_queries_ignore_soft_deleted_rows(world) -> None:
    _, engine, _, _ = world
    deleted = {
        name: set(frame.loc[frame["deleted_at"].notna(), "id"])
        for name in ("classes", "activities", "criterias", "activity_submissions")
        for frame in [_table(engine, name)]
    }
    finished = leb2.finished_classes(engine, as_of=TODAY)
    ongoing = leb2.ongoing_classes(engine, day=TODAY - timedelta(days=1), window_months=4)
    ids = [*finished["class_id"], *ongoing["class_id"]]
    assert not set(ids) & deleted["classes"]
    records = leb2.assessed_records(engine, class_ids=ids, until=None)
    assert len(records) > 100
    assert not set(records["activity_id"]) & deleted["activities"]
    assert not set(records["cri_id"]) & deleted["criterias"]
    assert not set(records["submission_id"]) & deleted["activity_submissions"]
    # the deleted classes do hold records: the queries really drop them
    with_deleted = leb2.assessed_records(engine, class_ids=deleted["classes"], until=None)
    assert with_deleted.empty
    points = _table(engine, "act_sub_points")
    activities = _table(engine, "activities")
    in_deleted = activities[activities["class_id"].isin(deleted["classes"])]["id"]
    assert points["activity_id"].isin(in_deleted).any()


def test_nulls_present(world) -> None:
    _, engine, _, _ = world
    assert _table(engine, "activities")["due_date"].isna().sum() > 0
    assert _table(engine, "activity_submissions")["spent_time"].isna().sum() > 0
    finished = leb2.finished_classes(engine, as_of=TODAY)
    records = leb2.assessed_records(engine, class_ids=finished["class_id"], until=None)
    assert records["due_date"].isna().any()
    assert records["spent_seconds"].isna().any()
    assert records["spent_seconds"].notna().mean() > 0.8


def test_exactly_one_required_level_per_criterion(world) -> None:
    _, engine, _, _ = world
    levels = _table(engine, "cri_levels")
    live = levels[levels["deleted_at"].isna()]
    per_cri = live.groupby("cri_id").agg(flags=("flag", "sum"), levels=("level", "nunique"))
    assert (per_cri["flags"] == 1).all()
    assert (per_cri["levels"] == 5).all()
    assert set(live["level"]) == {1, 2, 3, 4, 5}
    # a withdrawn required level exists, and the class's required level ignores it
    assert (levels.loc[levels["deleted_at"].notna(), "flag"] == 1).any()
    required = leb2.required_levels(engine, class_ids=range(1, 100))
    assert set(required["required_level"]) <= {2, 3}
    assert (required["required_level"] == 3).mean() > 0.5


def test_semester_layout(world) -> None:
    summary, engine, _, _ = world
    ongoing = summary.ongoing
    assert ongoing.first_day == TODAY - timedelta(days=SMALL["days"])
    assert ongoing.last_day == TODAY - timedelta(days=1)
    assert len(summary.finished) == 2
    assert len({s.slug for s in summary.semester_ranges}) == 3
    classes = _table(engine, "classes")
    live_obem = classes[(classes["deleted_at"].isna()) & (classes["type"] == "obem")]
    ongoing_ids = set(live_obem.loc[live_obem["semester_id"] == ongoing.semester_id, "id"])
    day = ongoing.first_day
    seen: set[int] = set()
    while day <= ongoing.last_day:
        got = set(leb2.ongoing_classes(engine, day=day, window_months=4)["class_id"])
        assert got <= ongoing_ids, day  # the previous semester is never ongoing meanwhile
        seen |= got
        day += timedelta(days=1)
    assert seen == ongoing_ids
    first = leb2.ongoing_classes(engine, day=ongoing.first_day, window_months=4)
    assert first["first_start"].min().date() == ongoing.first_day
    finished = leb2.finished_classes(engine, as_of=TODAY)
    assert set(finished["class_id"]) == set(live_obem["id"]) - ongoing_ids
    assert set(finished["semester"]) == {s.slug for s in summary.finished}
    # the LMS created some of the ongoing semester's activities ahead of time
    activities = _table(engine, "activities")
    ahead = activities[activities["class_id"].isin(ongoing_ids)]["start_date"]
    assert (ahead >= datetime.combine(TODAY, datetime.min.time())).any()
    # nothing was submitted today or later
    subs = _table(engine, "activity_submissions")
    assert subs["submitted_at"].max() < datetime.combine(TODAY, datetime.min.time())


def test_amplitude_files_and_events(world, events: pd.DataFrame) -> None:
    summary, engine, root, _ = world
    names = [p.name for p in (root / "amplitude" / "100001").iterdir()]
    assert all(FILE_NAME.match(n) for n in names)
    assert any(n.endswith("#1.json.gz") for n in names)
    assert summary.events == len(events)
    upload_hour = events["server_upload_time"].str.slice(0, 13)
    assert (upload_hour == events["file_hour"]).all()
    assert events["event_time"].str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}").all()
    assert (events["server_upload_time"] >= events["event_time"]).all()
    assert events["user_id"].map(type).eq(str).all()
    users = events["user_id"].astype(int)
    assert users.between(600000, 600000 + SMALL["students"] - 1).all()
    assert events["session_id"].between(1_600_000_000_000, 1_800_000_000_000).all()
    share = (events["event_type"] == "Page Load").mean()
    assert 0.7 < share < 0.95
    assert {"Click", "Start Session"} <= set(events["event_type"])
    # duplicates (same uuid, re-sent), some of them in another file
    dup = events[events["uuid"].duplicated(keep=False)]
    assert len(dup) > 0
    assert (dup.groupby("uuid")["file"].nunique() > 1).any()
    urls = events["url"]
    for shape in (
        r"/class/\d+$",
        r"/class/\d+/activity$",
        r"/class/\d+/learning-activities/\d+",
        r"/class/\d+/activity/\d+$",
        r"/class/\d+/quiz/\d+$",
        r"/class/\d+/activity/\d+/submission$",
        r"/class/\d+/activity\?",
        r"#",
        r"\.th/(?:home|profile|notifications|calendar)$",
    ):
        assert urls.str.contains(shape).any(), shape
    # every local data day of every semester has events
    tz = ZoneInfo("Asia/Bangkok")
    local_days = set(
        pd.to_datetime(events["event_time"]).dt.tz_localize("UTC").dt.tz_convert(tz).dt.date
    )
    for sem in summary.semester_ranges:
        day = sem.first_day
        while day <= sem.last_day:
            assert day in local_days, day
            day += timedelta(days=1)
    # class pages only of live classes, by their own students
    class_ids = urls.str.extract(r"/class/(\d+)")[0].dropna().astype(int)
    classes = _table(engine, "classes")
    assert set(class_ids) <= set(classes.loc[classes["deleted_at"].isna(), "id"])


def test_a_model_can_learn_the_label(world, events: pd.DataFrame) -> None:
    """Engagement and assessment relate to the final level, strongly but not perfectly."""
    _, engine, _, _ = world
    finished = leb2.finished_classes(engine, as_of=TODAY)
    labels = leb2.final_levels(engine, class_ids=finished["class_id"], rule="attainment")
    page = events[(events["event_type"] == "Page Load")]
    page = page.assign(class_id=page["url"].str.extract(r"/class/(\d+)")[0]).dropna(
        subset=["class_id"]
    )
    views = (
        page.assign(class_id=page["class_id"].astype(int), user_id=page["user_id"].astype(int))
        .groupby(["class_id", "user_id"])
        .size()
        .rename("views")
        .reset_index()
    )
    joined = labels.merge(views, on=["class_id", "user_id"], how="left").fillna({"views": 0})
    corr = joined[["views", "label"]].corr(method="spearman").iloc[0, 1]
    assert 0.3 < corr < 0.95
    records = leb2.assessed_records(engine, class_ids=finished["class_id"], until=None)
    per = records.groupby(["class_id", "user_id"]).agg(
        n=("activity_id", "nunique"), level=("level", "mean")
    )
    joined = labels.merge(per.reset_index(), on=["class_id", "user_id"])
    assert joined[["n", "label"]].corr(method="spearman").iloc[0, 1] > 0.3
    assert joined[["level", "label"]].corr(method="spearman").iloc[0, 1] > 0.3
    assert joined["label"].nunique() >= 4
    # some students start well and stop: good early levels, a low final level
    assert ((joined["level"] >= 3) & (joined["label"] <= 2)).any()


def _dump(root: Path) -> tuple[dict[str, list], dict[str, str]]:
    engine = create_engine(f"sqlite:///{root / 'leb2.db'}")
    with engine.connect() as conn:
        rows = {
            name: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {name} ORDER BY id"))]
            for name in leb2.TABLE_NAMES
        }
    engine.dispose()
    files = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "amplitude" / "100001").iterdir())
    }
    return rows, files


def test_same_seed_same_rows_and_bytes(tmp_path: Path) -> None:
    def run(name: str, seed: int) -> tuple[dict, dict]:
        synthesize(
            leb2_url=f"sqlite:///{tmp_path / name / 'leb2.db'}",
            amplitude_dir=tmp_path / name / "amplitude",
            today=TODAY,
            seed=seed,
            amplitude_days=4,
            **SMALL,
        )
        return _dump(tmp_path / name)

    first, again, other = run("a", 7), run("b", 7), run("c", 8)
    assert first[0] == again[0]
    assert first[1] == again[1]
    assert len(first[1]) > 20
    assert first[0]["act_sub_points"] != other[0]["act_sub_points"]
    assert first[1] != other[1]


def test_amplitude_days_writes_only_the_last_days(tmp_path: Path) -> None:
    summary = synthesize(
        leb2_url=f"sqlite:///{tmp_path / 'leb2.db'}",
        amplitude_dir=tmp_path / "amplitude",
        today=TODAY,
        amplitude_days=2,
        **SMALL,
    )
    days = {FILE_NAME.match(p.name).group(1) for p in (tmp_path / "amplitude" / "100001").iterdir()}
    # local days Feb 27 and 28 are uploaded from Feb 26 17:00 UTC on (late uploads spill over)
    assert days <= {"2025-02-26", "2025-02-27", "2025-02-28", "2025-03-01"}
    assert {"2025-02-27", "2025-02-28"} <= days
    assert summary.events > 0


def test_refuses_existing_data_unless_replace(tmp_path: Path) -> None:
    kwargs = {
        "leb2_url": f"sqlite:///{tmp_path / 'leb2.db'}",
        "amplitude_dir": tmp_path / "amplitude",
        "today": TODAY,
        "amplitude_days": 1,
        **SMALL,
    }
    first = synthesize(**kwargs)
    with pytest.raises(DataError, match=r"already holds LEB2 data .* replace=True"):
        synthesize(**kwargs)
    again = synthesize(**kwargs, replace=True)
    assert again.records == first.records
    rows, files = _dump(tmp_path)
    assert len(rows["act_sub_points"]) == first.records
    assert len(files) == first.amplitude_files
    counts = Counter(n.split("_")[1] for n in files)
    assert counts


def test_hidden_traits_cover_every_enrolment_and_change_no_data(tmp_path: Path) -> None:
    def run(name: str, keep: bool):
        summary = synthesize(
            leb2_url=f"sqlite:///{tmp_path / name / 'leb2.db'}",
            amplitude_dir=tmp_path / name / "amplitude",
            today=TODAY,
            amplitude_days=4,
            keep_traits=keep,
            **SMALL,
        )
        return summary, _dump(tmp_path / name)

    (kept, kept_data), (plain, plain_data) = run("kept", True), run("plain", False)
    assert plain.traits is None and kept.traits
    assert kept_data == plain_data
    assert sum(len(t.users) for t in kept.traits) == kept.enrolments
    for t in kept.traits:
        assert len(t.users) == len(t.ability) == len(t.engagement) == len(t.stop_day)
        assert len(t.begin_day) == len(t.users)
