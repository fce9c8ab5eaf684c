"""LEB2 queries against a small hand-built database, expected answers worked out by hand."""

from __future__ import annotations

import math
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine

from lof.core.errors import DataError
from lof.sources import leb2

D = date(2024, 3, 15)
UNTIL = datetime(2024, 3, 16)
GONE = datetime(2024, 1, 1)  # deleted_at of the soft-deleted rows


def _levels(cri_id: int, required: int) -> list[dict]:
    return [
        {"id": cri_id * 10 + lv, "cri_id": cri_id, "level": lv, "flag": int(lv == required)}
        for lv in range(1, 6)
    ]


def build_fixture(url: str) -> None:
    """Class 1 is the live one; classes 2-6 each miss one condition of being ongoing."""
    engine = create_engine(url)
    leb2.METADATA.create_all(engine)
    t = leb2.TABLES
    dt = datetime
    rows: dict[str, list[dict]] = {
        "semesters": [{"id": 1, "slug": "1/2024"}, {"id": 2, "slug": "2/2023"}],
        "classes": [
            {"id": 1, "code": "A101", "type": "obem", "semester_id": 1},
            {"id": 2, "code": "B101", "type": "obem", "semester_id": 1, "deleted_at": GONE},
            {"id": 3, "code": "C101", "type": "normal", "semester_id": 1},
            {"id": 4, "code": "D101", "type": "obem", "semester_id": 1},
            {"id": 5, "code": "E101", "type": "obem", "semester_id": 2},
            {"id": 6, "code": "F101", "type": "obem", "semester_id": 1},
        ],
        "course_outcomes": [
            {"id": 10, "class_id": 1, "course_id": 7, "clo_id": 1, "type": "ulti"},
            {"id": 11, "class_id": 1, "course_id": 7, "clo_id": 2, "type": "sub"},
            {"id": 12, "class_id": 2, "course_id": 8, "clo_id": 1, "type": "ulti"},
            {"id": 13, "class_id": 3, "course_id": 9, "clo_id": 1, "type": "ulti"},
            {"id": 14, "class_id": 4, "course_id": 9, "clo_id": 2, "type": "sub"},
            {"id": 15, "class_id": 5, "course_id": 9, "clo_id": 1, "type": "ulti"},
            {
                "id": 16,
                "class_id": 6,
                "course_id": 9,
                "clo_id": 1,
                "type": "ulti",
                "deleted_at": GONE,
            },
        ],
        "criterias": [
            {"id": 100, "clo_id": 10},
            {"id": 101, "clo_id": 11},
            {"id": 102, "clo_id": 10, "deleted_at": GONE},
            {"id": 103, "clo_id": 12},
            {"id": 104, "clo_id": 13},
            {"id": 105, "clo_id": 14},
            {"id": 106, "clo_id": 15},
            {"id": 107, "clo_id": 16},
            {"id": 108, "clo_id": 10},
        ],
        "cri_levels": [
            *_levels(100, 3),
            *_levels(101, 4),
            *_levels(102, 3),
            *_levels(103, 3),
            *_levels(104, 2),
            *_levels(105, 3),
            *_levels(106, 2),
            *_levels(107, 3),
            *_levels(108, 2),
            # an old required level and an old level row of criterion 100, both withdrawn
            {"id": 1009, "cri_id": 100, "level": 4, "flag": 1, "deleted_at": GONE},
            {"id": 1006, "cri_id": 100, "level": 5, "flag": 0, "deleted_at": GONE},
        ],
        "activities": [
            {
                "id": 1000,
                "class_id": 1,
                "type": "ASM",
                "start_date": dt(2024, 1, 10, 9),
                "due_date": dt(2024, 1, 20, 23, 59),
            },
            {
                "id": 1001,
                "class_id": 1,
                "type": "QUZ",
                "start_date": dt(2024, 2, 1, 9),
                "due_date": None,
            },
            {
                "id": 1002,
                "class_id": 1,
                "type": "ASM",
                "start_date": dt(2024, 2, 10, 9),
                "due_date": dt(2024, 2, 20, 23, 59),
                "deleted_at": dt(2024, 2, 11),
            },
            {
                "id": 1003,
                "class_id": 1,
                "type": "ASM",
                "start_date": dt(2024, 3, 20, 9),
                "due_date": dt(2024, 3, 30, 23, 59),
            },
            {
                "id": 1004,
                "class_id": 1,
                "type": "ASM",
                "start_date": dt(2024, 3, 1, 9),
                "due_date": dt(2024, 3, 10, 23, 59),
            },
            {
                "id": 2000,
                "class_id": 2,
                "type": "ASM",
                "start_date": dt(2024, 2, 1, 9),
                "due_date": dt(2024, 2, 9),
            },
            {
                "id": 3000,
                "class_id": 3,
                "type": "ASM",
                "start_date": dt(2024, 2, 1, 9),
                "due_date": dt(2024, 2, 9),
            },
            {
                "id": 4000,
                "class_id": 4,
                "type": "ASM",
                "start_date": dt(2024, 2, 1, 9),
                "due_date": dt(2024, 2, 9),
            },
            {
                "id": 5000,
                "class_id": 5,
                "type": "ASM",
                "start_date": dt(2023, 9, 1, 9),
                "due_date": dt(2023, 9, 10, 23, 59),
            },
            {
                "id": 5001,
                "class_id": 5,
                "type": "ASM",
                "start_date": dt(2024, 3, 1, 9),
                "due_date": None,
                "deleted_at": dt(2024, 3, 2),
            },
            {
                "id": 5002,
                "class_id": 5,
                "type": "QUZ",
                "start_date": dt(2023, 9, 15, 9),
                "due_date": dt(2023, 9, 30, 23, 59),
            },
            {
                "id": 6000,
                "class_id": 6,
                "type": "ASM",
                "start_date": dt(2024, 2, 1, 9),
                "due_date": dt(2024, 2, 9),
            },
        ],
        "activity_submissions": [
            # 601 submitted 1000 twice: the later submission counts
            {
                "id": 1,
                "activity_id": 1000,
                "user_id": 601,
                "submitted_at": dt(2024, 1, 15, 10),
                "spent_time": "1:00:00",
            },
            {
                "id": 2,
                "activity_id": 1000,
                "user_id": 601,
                "submitted_at": dt(2024, 1, 18, 12),
                "spent_time": "0:30:00",
            },
            {
                "id": 3,
                "activity_id": 1001,
                "user_id": 601,
                "submitted_at": dt(2024, 2, 3, 10),
                "spent_time": None,
            },
            {
                "id": 4,
                "activity_id": 1002,
                "user_id": 601,
                "submitted_at": dt(2024, 2, 12, 10),
                "spent_time": "0:10:00",
            },
            # after the end of day D: visible only without a cutoff
            {
                "id": 5,
                "activity_id": 1004,
                "user_id": 601,
                "submitted_at": dt(2024, 3, 16, 8),
                "spent_time": "0:20:00",
            },
            {
                "id": 6,
                "activity_id": 1000,
                "user_id": 602,
                "submitted_at": dt(2024, 1, 21, 1),
                "spent_time": "about an hour",
            },
            {
                "id": 7,
                "activity_id": 1001,
                "user_id": 602,
                "submitted_at": dt(2024, 2, 2, 10),
                "spent_time": "0:15:00",
                "deleted_at": dt(2024, 2, 2, 11),
            },
            {
                "id": 8,
                "activity_id": 1004,
                "user_id": 602,
                "submitted_at": dt(2024, 3, 5, 14),
                "spent_time": "2:05:09",
            },
            # 603's later resubmission was withdrawn: the first one counts
            {
                "id": 9,
                "activity_id": 1000,
                "user_id": 603,
                "submitted_at": dt(2024, 1, 12, 8),
                "spent_time": "0:45:30",
            },
            {
                "id": 10,
                "activity_id": 1000,
                "user_id": 603,
                "submitted_at": dt(2024, 1, 19, 8),
                "spent_time": "0:01:00",
                "deleted_at": dt(2024, 1, 19, 9),
            },
            {
                "id": 11,
                "activity_id": 1001,
                "user_id": 603,
                "submitted_at": dt(2024, 2, 2, 8),
                "spent_time": "0:05:00",
            },
            {
                "id": 12,
                "activity_id": 1000,
                "user_id": 604,
                "submitted_at": dt(2024, 1, 20, 8),
                "spent_time": "0:40:00",
            },
            {
                "id": 13,
                "activity_id": 1001,
                "user_id": 604,
                "submitted_at": dt(2024, 2, 5, 8),
                "spent_time": "0:40:00",
            },
            {
                "id": 14,
                "activity_id": 1004,
                "user_id": 604,
                "submitted_at": dt(2024, 3, 9, 8),
                "spent_time": "0:40:00",
            },
            {
                "id": 15,
                "activity_id": 2000,
                "user_id": 601,
                "submitted_at": dt(2024, 2, 3, 8),
                "spent_time": "0:40:00",
            },
            {
                "id": 16,
                "activity_id": 3000,
                "user_id": 601,
                "submitted_at": dt(2024, 2, 3, 8),
                "spent_time": "0:40:00",
            },
        ],
        "act_sub_points": [
            {"activity_id": 1000, "user_id": 601, "cri_id": 100, "cri_level_id": 1004},
            {"activity_id": 1000, "user_id": 601, "cri_id": 101, "cri_level_id": 1012},  # sub
            {"activity_id": 1000, "user_id": 601, "cri_id": 102, "cri_level_id": 1025},  # deleted
            {"activity_id": 1001, "user_id": 601, "cri_id": 100, "cri_level_id": 1003},
            {"activity_id": 1001, "user_id": 601, "cri_id": 108, "cri_level_id": 1082},
            {"activity_id": 1002, "user_id": 601, "cri_id": 100, "cri_level_id": 1005},
            {"activity_id": 1004, "user_id": 601, "cri_id": 100, "cri_level_id": 1005},
            {"activity_id": 1000, "user_id": 602, "cri_id": 100, "cri_level_id": 1002},
            {"activity_id": 1001, "user_id": 602, "cri_id": 100, "cri_level_id": 1005},
            {"activity_id": 1004, "user_id": 602, "cri_id": 100, "cri_level_id": 1006},
            {"activity_id": 1004, "user_id": 602, "cri_id": 108, "cri_level_id": 1081},
            {"activity_id": 1000, "user_id": 603, "cri_id": 100, "cri_level_id": 1003},
            {"activity_id": 1000, "user_id": 604, "cri_id": 100, "cri_level_id": 1002},
            {"activity_id": 1001, "user_id": 604, "cri_id": 100, "cri_level_id": 1002},
            {"activity_id": 1001, "user_id": 604, "cri_id": 108, "cri_level_id": 1083},
            {"activity_id": 1004, "user_id": 604, "cri_id": 100, "cri_level_id": 1003},
            {"activity_id": 2000, "user_id": 601, "cri_id": 103, "cri_level_id": 1034},
            {"activity_id": 3000, "user_id": 601, "cri_id": 104, "cri_level_id": 1044},
        ],
    }
    with engine.begin() as conn:
        for name, table_rows in rows.items():
            keys = {key for row in table_rows for key in row}
            keys |= {"deleted_at"} & set(t[name].c.keys())
            conn.execute(t[name].insert(), [{k: row.get(k) for k in keys} for row in table_rows])
    engine.dispose()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    path = Path(tmp_path_factory.mktemp("leb2")) / "leb2.db"
    build_fixture(f"sqlite:///{path}")
    engine = leb2.connect(f"sqlite:///{path}")
    yield engine
    engine.dispose()


def test_ongoing_classes_only_the_live_obem_ulti_class_in_window(engine) -> None:
    got = leb2.ongoing_classes(engine, day=D, window_months=4)
    assert got.to_dict(orient="records") == [
        {
            "class_id": 1,
            "code": "A101",
            "semester": "1/2024",
            "first_start": pd.Timestamp("2024-01-10 09:00"),
            "required_level": 3,
        }
    ]
    assert str(got["first_start"].dtype) == "datetime64[ns]"
    assert str(got["required_level"].dtype) == "int64"


def test_ongoing_boundaries(engine) -> None:
    # class 1's first activity starts on Jan 10 09:00: not ongoing the day before
    assert leb2.ongoing_classes(engine, day=date(2024, 1, 9))["class_id"].tolist() == []
    assert leb2.ongoing_classes(engine, day=date(2024, 1, 10))["class_id"].tolist() == [1]
    # class 5's last live activity is due 2023-09-30 (its deleted one never counts): ongoing
    # through the grace days after it, finished the day after
    assert leb2.ongoing_classes(engine, day=date(2023, 10, 14), grace_days=14)[
        "class_id"
    ].tolist() == [5]
    assert (
        leb2.ongoing_classes(engine, day=date(2023, 10, 15), grace_days=14)["class_id"].tolist()
        == []
    )
    assert leb2.ongoing_classes(engine, day=date(2023, 9, 30), grace_days=0)[
        "class_id"
    ].tolist() == [5]
    assert (
        leb2.ongoing_classes(engine, day=date(2023, 10, 1), grace_days=0)["class_id"].tolist() == []
    )
    # class 1's last due date is 2024-03-30 (an activity created ahead of time counts)
    assert leb2.ongoing_classes(engine, day=date(2024, 4, 13), grace_days=14)[
        "class_id"
    ].tolist() == [1]
    assert (
        leb2.ongoing_classes(engine, day=date(2024, 4, 14), grace_days=14)["class_id"].tolist()
        == []
    )


def test_required_levels_ignore_deleted_and_non_ulti(engine) -> None:
    got = leb2.required_levels(engine, class_ids=[1, 3, 4, 5, 6])
    # class 1: max(3, 2) over its live ulti criteria (the withdrawn flag on level 4 ignored);
    # class 4 has no ulti outcome and class 6's ulti outcome is deleted
    assert got.to_dict(orient="records") == [
        {"class_id": 1, "required_level": 3},
        {"class_id": 3, "required_level": 2},
        {"class_id": 5, "required_level": 2},
    ]


def _records(frame: pd.DataFrame) -> list[tuple]:
    return [
        (
            r.user_id,
            r.activity_id,
            r.cri_id,
            r.level,
            r.required_level,
            r.submission_id,
            r.submitted_at,
            None if math.isnan(r.spent_seconds) else r.spent_seconds,
            None if pd.isna(r.due_date) else r.due_date,
        )
        for r in frame.itertuples()
    ]


def test_assessed_records_as_of_day(engine) -> None:
    got = leb2.assessed_records(engine, class_ids=[1, 2, 3, 4, 5, 6], until=UNTIL)
    assert list(got.columns) == list(leb2.RECORD_COLUMNS)
    # class 2 is deleted; class 3 is not OBEM but its ulti records are records all the same
    assert got[got["class_id"] != 1][["class_id", "user_id", "activity_id"]].values.tolist() == [
        [3, 601, 3000]
    ]
    got = got[got["class_id"] == 1]
    ts = pd.Timestamp
    due_1000 = ts("2024-01-20 23:59")
    assert _records(got) == [
        (601, 1000, 100, 4, 3, 2, ts("2024-01-18 12:00"), 1800.0, due_1000),
        (601, 1001, 100, 3, 3, 3, ts("2024-02-03 10:00"), None, None),
        (601, 1001, 108, 2, 2, 3, ts("2024-02-03 10:00"), None, None),
        (602, 1000, 100, 2, 3, 6, ts("2024-01-21 01:00"), None, due_1000),
        (602, 1004, 108, 1, 2, 8, ts("2024-03-05 14:00"), 7509.0, ts("2024-03-10 23:59")),
        (603, 1000, 100, 3, 3, 9, ts("2024-01-12 08:00"), 2730.0, due_1000),
        (604, 1000, 100, 2, 3, 12, ts("2024-01-20 08:00"), 2400.0, due_1000),
        (604, 1001, 100, 2, 3, 13, ts("2024-02-05 08:00"), 2400.0, None),
        (604, 1001, 108, 3, 2, 13, ts("2024-02-05 08:00"), 2400.0, None),
        (604, 1004, 100, 3, 3, 14, ts("2024-03-09 08:00"), 2400.0, ts("2024-03-10 23:59")),
    ]
    # 601 submitted 1000 twice (both live, before D); 603's second submission was withdrawn
    assert got["submissions"].tolist() == [2, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    assert got["activity_start"].tolist()[0] == ts("2024-01-10 09:00")
    assert {str(got[c].dtype) for c in ("activity_start", "due_date", "submitted_at")} == {
        "datetime64[ns]"
    }


def test_assessed_records_without_cutoff_include_later_submissions(engine) -> None:
    got = leb2.assessed_records(engine, class_ids=[1], until=None)
    late = got[(got["user_id"] == 601) & (got["activity_id"] == 1004)]
    assert late[["submission_id", "level", "spent_seconds"]].values.tolist() == [[5, 5, 1200.0]]
    assert len(got) == 11
    # an earlier cutoff hides what was submitted or started later
    early = leb2.assessed_records(engine, class_ids=[1], until=datetime(2024, 1, 17))
    assert early["submissions"].tolist() == [1, 1]  # 601's resubmission came later
    assert _records(early) == [
        (
            601,
            1000,
            100,
            4,
            3,
            1,
            pd.Timestamp("2024-01-15 10:00"),
            3600.0,
            pd.Timestamp("2024-01-20 23:59"),
        ),
        (
            603,
            1000,
            100,
            3,
            3,
            9,
            pd.Timestamp("2024-01-12 08:00"),
            2730.0,
            pd.Timestamp("2024-01-20 23:59"),
        ),
    ]


def test_assessed_records_of_no_class_is_empty_with_columns(engine) -> None:
    got = leb2.assessed_records(engine, class_ids=[], until=UNTIL)
    assert got.empty
    assert list(got.columns) == list(leb2.RECORD_COLUMNS)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        # activities 1000, 1001, 1004 are assessed; 601: (4 + mean(3, 2) + 5) / 3 = 3.83 -> 4;
        # 602: (2 + 1 + 1) / 3 -> 1 (its 1001 submission is deleted: counts as level 1);
        # 603: (3 + 1 + 1) / 3 = 1.67 -> 2; 604: (2 + 2.5 + 3) / 3 = 2.5 -> 3 (half up)
        ("attainment", {601: 4, 602: 1, 603: 2, 604: 3}),
        ("max", {601: 5, 602: 2, 603: 3, 604: 3}),
        # 601: (4+3+2+5)/4 = 3.5 -> 4; 602: (2+1)/2 = 1.5 -> 2; 604: (2+2+3+3)/4 = 2.5 -> 3
        ("mean", {601: 4, 602: 2, 603: 3, 604: 3}),
    ],
)
def test_final_levels_rules(engine, rule: str, expected: dict[int, int]) -> None:
    got = leb2.final_levels(engine, class_ids=[1], rule=rule, until=None)
    assert list(got.columns) == ["class_id", "user_id", "label"]
    assert dict(zip(got["user_id"], got["label"], strict=True)) == expected
    assert set(got["class_id"]) == {1}


def test_final_levels_respects_until(engine) -> None:
    got = leb2.final_levels(engine, class_ids=[1], rule="max", until=datetime(2024, 1, 17))
    assert got.to_dict(orient="records") == [
        {"class_id": 1, "user_id": 601, "label": 4},
        {"class_id": 1, "user_id": 603, "label": 3},
    ]


def test_unknown_label_rule_is_a_clear_error(engine) -> None:
    with pytest.raises(DataError, match="LOF_LABEL_RULE"):
        leb2.final_levels(engine, class_ids=[1], rule="median")  # type: ignore[arg-type]


def test_finished_classes(engine) -> None:
    got = leb2.finished_classes(engine, as_of=date(2024, 4, 1), semesters=None)
    assert got.to_dict(orient="records") == [
        {
            "class_id": 1,
            "code": "A101",
            "semester": "1/2024",
            "first_start": pd.Timestamp("2024-01-10 09:00"),
            "last_day": date(2024, 3, 30),
            "n_activities": 4,
        },
        {
            "class_id": 5,
            "code": "E101",
            "semester": "2/2023",
            "first_start": pd.Timestamp("2023-09-01 09:00"),
            "last_day": date(2023, 9, 30),
            "n_activities": 2,
        },
    ]
    # activity 1003 is still due on Mar 30: class 1 is not finished before then
    assert leb2.finished_classes(engine, as_of=date(2024, 3, 30), semesters=None)[
        "class_id"
    ].tolist() == [5]
    only = leb2.finished_classes(engine, as_of=date(2024, 4, 1), semesters=["1/2024"])
    assert only["class_id"].tolist() == [1]


def test_finished_classes_unknown_semester(engine) -> None:
    with pytest.raises(
        DataError, match=r"semester 9/2099 not found in LEB2 \(known: 1/2024, 2/2023\)"
    ):
        leb2.finished_classes(engine, as_of=date(2024, 4, 1), semesters=["9/2099"])


def test_semesters(engine) -> None:
    got = leb2.semesters(engine)
    assert got.to_dict(orient="records") == [
        {
            "semester_id": 1,
            "slug": "1/2024",
            "first_start": pd.Timestamp("2024-01-10 09:00"),
            "last_day": date(2024, 3, 30),
        },
        {
            "semester_id": 2,
            "slug": "2/2023",
            "first_start": pd.Timestamp("2023-09-01 09:00"),
            "last_day": date(2023, 9, 30),
        },
    ]


def test_parse_spent_time() -> None:
    values = pd.Series(["1:00:00", "0:05:09", "12:59:59", None, "", "1:60:00", "abc", " 2:00:01 "])
    got = leb2.parse_spent_time(values).tolist()
    assert got[:3] == [3600.0, 309.0, 46799.0]
    assert all(math.isnan(v) for v in got[3:7])
    assert got[7] == 7201.0


def test_activity_status_as_of_a_day_sees_rows_deleted_since(engine) -> None:
    now_acts, now_subs = leb2.activity_status(engine, class_ids=[1], until=UNTIL)
    assert sorted(now_acts["activity_id"]) == [1000, 1001, 1003, 1004]
    assert 1002 not in set(now_subs["activity_id"])
    # As of 2024-02-11 (activity 1002 deleted that day): it and its submission were live.
    then_acts, then_subs = leb2.activity_status(
        engine, class_ids=[1], until=UNTIL, deleted_before=datetime(2024, 2, 11)
    )
    assert sorted(then_acts["activity_id"]) == [1000, 1001, 1002, 1003, 1004]
    assert ((then_subs["activity_id"] == 1002) & (then_subs["user_id"] == 601)).any()


def test_latest_submissions_are_each_pair_latest_live_submission(engine) -> None:
    """One row per student and activity: the latest live submission before the cutoff, with
    the activities started by then and the others splitting the rows between them."""
    keys = ["class_id", "activity_id", "user_id"]
    with engine.connect() as conn:
        raw = pd.read_sql(
            "SELECT a.class_id, s.activity_id, s.user_id, s.submitted_at "
            "FROM activity_submissions s JOIN activities a ON a.id = s.activity_id "
            "WHERE a.class_id = 1 AND a.deleted_at IS NULL AND s.deleted_at IS NULL "
            "AND s.submitted_at < :until",
            conn,
            params={"until": str(UNTIL)},
        )
    raw["submitted_at"] = pd.to_datetime(raw["submitted_at"]).astype("datetime64[ns]")
    expected = raw.groupby(keys, as_index=False)["submitted_at"].max()
    got = leb2.latest_submissions(engine, class_ids=[1], cutoff=UNTIL)
    assert len(got) == len(expected) > 0
    pd.testing.assert_frame_equal(got.sort_values(keys).reset_index(drop=True), expected)
    started = leb2.latest_submissions(engine, class_ids=[1], cutoff=UNTIL, started=True)
    later = leb2.latest_submissions(engine, class_ids=[1], cutoff=UNTIL, started=False)
    both = pd.concat([started, later]).sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(both, expected)
    _, status = leb2.activity_status(engine, class_ids=[1], until=UNTIL)
    pd.testing.assert_frame_equal(status.sort_values(keys).reset_index(drop=True), expected)


def test_a_class_without_due_dates_is_ongoing_within_the_window_of_its_last_start() -> None:
    ts = pd.Timestamp
    classes = pd.DataFrame(
        {
            "first_start": [ts("2024-01-10 09:00"), ts("2024-01-10 09:00")],
            "last_start": [ts("2024-02-01 09:00"), ts("2024-02-01 09:00")],
            "last_due": [pd.NaT, ts("2024-02-10 23:59")],
        }
    )
    mask = leb2.ongoing_mask
    assert mask(classes, day=date(2024, 5, 31), window_months=4, grace_days=14).tolist() == [
        True,
        False,
    ]
    assert mask(classes, day=date(2024, 6, 1), window_months=4, grace_days=14).tolist() == [
        False,
        False,
    ]
    assert mask(classes, day=date(2024, 2, 24), window_months=4, grace_days=14).tolist() == [
        True,
        True,
    ]
    assert mask(classes, day=date(2024, 1, 9), window_months=4, grace_days=14).tolist() == [
        False,
        False,
    ]
