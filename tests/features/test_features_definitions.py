"""Hand-computed fixtures pinning each of the 13 feature definitions (docs/domain.md §2.3)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lof.core.errors import DataError
from lof.features import definitions as feat
from lof.features import state as feature_state

BASE = "https://leb2.example.ac.th"


def page_load(uuid: str, url: str, *, user: str | int | None = "7", session: int | None = 1):
    return {
        "uuid": uuid,
        "user_id": user,
        "session_id": session,
        "event_type": "Page Load",
        "event_time": "2023-03-24 10:00:00.000000",
        "event_properties": {"CURRENT_URL": url},
    }


def row(frame: pd.DataFrame, class_id: int, user_id: int) -> dict:
    match = frame[(frame["class_id"] == class_id) & (frame["user_id"] == user_id)]
    assert len(match) == 1, f"expected one row for ({class_id}, {user_id}), got {len(match)}"
    return match.iloc[0].to_dict()


def test_event_features_each_definition():
    events = [
        # 1 view; path ends with /activity (2); no activity id
        page_load("u1", f"{BASE}/class/1/activity", session=10),
        # query string is not part of the path: still ends with /activity
        page_load("u2", f"{BASE}/class/1/activity?tab=all#top", session=10),
        # path ends with /activity only in the query -> not an activity page view
        page_load("u3", f"{BASE}/class/1/home?next=/activity", session=11),
        # material (3)
        page_load("u4", f"{BASE}/class/1/learning-activities", session=11),
        # act/quiz view (4) and activity id 55 (6)
        page_load("u5", f"{BASE}/class/1/activity/55", session=12),
        # quiz/<digits> (4); submission (5)
        page_load("u6", f"{BASE}/class/1/quiz/3/submission", session=12),
        # two activity ids in one URL; act/quiz view counted once for the event
        page_load("u7", f"{BASE}/class/1/activity/55/compare/activity/56", session=12),
        # quiz without digits: not an act/quiz view
        page_load("u8", f"{BASE}/class/1/quiz/", session=None),
    ]
    inc = feat.day_increment(events=events)
    got = row(feat.engagement_features(states=inc), 1, 7)
    assert got["class_view_count"] == 8
    assert got["activity_page_view"] == 2
    assert got["material_view"] == 1
    assert got["act_quiz_view"] == 3
    assert got["submit_button_clicked"] == 1
    assert got["specific_activity_view"] == 2  # {55, 56}
    assert got["session_id_count"] == 3  # {10, 11, 12}; None is no session
    state = row(inc, 1, 7)
    assert state["activity_ids"] == (55, 56)
    assert state["session_ids"] == (10, 11, 12)


def test_only_page_loads_of_the_class_count():
    events = [
        page_load("a", f"{BASE}/class/1/activity/1"),
        {**page_load("b", f"{BASE}/class/1/activity/2"), "event_type": "Click"},
        {**page_load("c", f"{BASE}/class/1/activity/3"), "event_type": "page load"},
        page_load("d", f"{BASE}/class/12/activity/4"),  # class 12, not class 1
        page_load("e", f"{BASE}/home"),  # no class at all
        page_load("f", f"{BASE}/class/abc/activity/5"),  # no class id
        {"uuid": "g", "user_id": "7", "event_type": "Page Load"},  # no URL
        page_load("h", f"{BASE}/class/1/x?from=class/12"),  # first class/ wins: class 1
    ]
    inc = feat.day_increment(events=events)
    assert sorted(zip(inc["class_id"], inc["user_id"], strict=True)) == [(1, 7), (12, 7)]
    assert row(inc, 1, 7)["class_view_count"] == 2
    assert row(inc, 1, 7)["activity_ids"] == (1,)
    assert row(inc, 12, 7)["class_view_count"] == 1
    only_one = feat.day_increment(events=events, class_ids=[1])
    assert only_one["class_id"].tolist() == [1]


def test_class_1_never_matches_class_12():
    inc = feat.day_increment(
        events=[page_load("a", f"{BASE}/class/12/activity"), page_load("b", f"{BASE}/class/1")],
        class_ids=[1],
    )
    assert row(inc, 1, 7)["class_view_count"] == 1
    assert row(inc, 1, 7)["activity_page_view"] == 0


def test_duplicate_uuids_count_once_and_anonymous_users_are_skipped():
    agg = feat.EngagementAggregator()
    for event in [
        page_load("same", f"{BASE}/class/1/activity/5", session=1),
        page_load("same", f"{BASE}/class/1/activity/5", session=1),
        page_load("other", f"{BASE}/class/1/activity/5", session=2),
        page_load("anon", f"{BASE}/class/1/activity/6", user=None),
        page_load("bad-user", f"{BASE}/class/1/activity/6", user="guest"),
        page_load("neg", f"{BASE}/class/1/activity/5", session=-1),
    ]:
        agg.add(event)
    frame = agg.frame()
    assert row(frame, 1, 7)["class_view_count"] == 3
    assert row(frame, 1, 7)["session_ids"] == (1, 2)  # -1 is Amplitude's "no session"
    assert (agg.counted, agg.duplicates, agg.unattributed) == (3, 1, 2)


def test_increment_frame_shape_and_dtypes():
    inc = feat.day_increment(events=[page_load("a", f"{BASE}/class/3/activity/2")])
    assert list(inc.columns) == list(feat.ENGAGEMENT_COLUMNS)
    for column in ("class_id", "user_id", *feat.COUNT_COLUMNS):
        assert inc[column].dtype == np.int64
    assert inc["activity_ids"].dtype == object
    empty = feat.day_increment(events=[])
    assert list(empty.columns) == list(feat.ENGAGEMENT_COLUMNS) and len(empty) == 0


def test_accumulate_adds_counts_and_unions_sets():
    day1 = feat.day_increment(
        events=[
            page_load("a", f"{BASE}/class/1/activity/5", session=1),
            page_load("b", f"{BASE}/class/2/activity/9", user="8", session=4),
        ]
    )
    day2 = feat.day_increment(
        events=[
            page_load("c", f"{BASE}/class/1/activity/5", session=1),
            page_load("d", f"{BASE}/class/1/activity/6", session=2),
            page_load("e", f"{BASE}/class/3", user="9", session=3),
        ]
    )
    state = feature_state.accumulate_frames(previous=day1, increment=day2)
    assert list(zip(state["class_id"], state["user_id"], strict=True)) == [(1, 7), (2, 8), (3, 9)]
    assert row(state, 1, 7)["class_view_count"] == 3
    assert row(state, 1, 7)["activity_ids"] == (5, 6)
    assert row(state, 1, 7)["session_ids"] == (1, 2)  # not 1 + 2 = 3 sessions
    assert row(state, 2, 8)["activity_ids"] == (9,)
    assert state["class_view_count"].dtype == np.int64
    # previous as stored (comma-joined text) and an empty increment
    stored = day1.assign(activity_ids=["5", "9"], session_ids=["1", "4"])
    again = feature_state.accumulate_frames(previous=stored, increment=None)
    assert row(again, 1, 7)["activity_ids"] == (5,)
    assert feature_state.accumulate_frames(previous=None, increment=None).empty


def test_accumulate_rejects_a_frame_without_the_columns():
    with pytest.raises(DataError, match="activity_ids"):
        feature_state.accumulate_frames(
            previous=pd.DataFrame({"class_id": [1], "user_id": [2]}), increment=None
        )


def records_frame(rows: list[dict]) -> pd.DataFrame:
    defaults = {
        "activity_start": pd.Timestamp("2023-03-01"),
        "cri_id": 1,
        "required_level": 3,
        "spent_seconds": np.nan,
        "due_date": pd.NaT,
        "submissions": 1,
    }
    frame = pd.DataFrame([{**defaults, **r} for r in rows])
    for column in ("due_date", "submitted_at", "activity_start"):
        frame[column] = pd.to_datetime(frame[column])
    return frame


def test_assessment_features_each_definition():
    records = records_frame(
        [
            # submission 100 on activity 10, assessed on two criteria
            dict(class_id=1, user_id=7, activity_id=10, cri_id=1, level=4, submission_id=100,
                 submitted_at="2023-03-02 10:00", due_date="2023-03-02 12:00",
                 spent_seconds=600.0),
            dict(class_id=1, user_id=7, activity_id=10, cri_id=2, level=2, submission_id=100,
                 submitted_at="2023-03-02 10:00", due_date="2023-03-02 12:00",
                 spent_seconds=600.0),
            # submission 101: late by 30 min, spent time NULL (= 0)
            dict(class_id=1, user_id=7, activity_id=11, cri_id=1, level=3, submission_id=101,
                 submitted_at="2023-03-05 12:30", due_date="2023-03-05 12:00",
                 spent_seconds=np.nan),
            # submission 102: no due date (early = 0), the latest of three on activity 12
            dict(class_id=1, user_id=7, activity_id=12, cri_id=1, level=1, submission_id=102,
                 submitted_at="2023-03-06 08:00", due_date=None, spent_seconds=300.0,
                 submissions=3),
            # another student and another class
            dict(class_id=1, user_id=8, activity_id=10, cri_id=1, level=5, submission_id=200,
                 submitted_at="2023-03-02 09:00", due_date="2023-03-02 12:00",
                 spent_seconds=60.0, required_level=5),
            dict(class_id=2, user_id=7, activity_id=30, cri_id=9, level=2, submission_id=300,
                 submitted_at="2023-03-02 09:00", due_date=None),
        ]
    )  # fmt: skip
    out = feat.assessment_features(records=records)
    assert list(out.columns) == ["class_id", "user_id", *feat.ASSESSMENT_FEATURES]
    got = row(out, 1, 7)
    assert got["activity_count_per_class"] == 3
    assert got["total_submission"] == 5  # 1 + 1 + 3, resubmissions included
    assert got["avgspent_time"] == pytest.approx((600 + 0 + 300) / 3)  # per submission
    assert got["avgseconds_early"] == pytest.approx((7200 - 1800 + 0) / 3)
    assert got["expectation_met_count"] == 2  # levels 4 and 3 >= required 3
    assert got["avglevel"] == pytest.approx((4 + 2 + 3 + 1) / 4)  # per record
    other = row(out, 1, 8)
    assert other["expectation_met_count"] == 1
    assert other["avgseconds_early"] == 3 * 3600
    class2 = row(out, 2, 7)
    assert (class2["avgspent_time"], class2["avgseconds_early"]) == (0.0, 0.0)
    assert all(out[name].dtype == np.float64 for name in feat.ASSESSMENT_FEATURES)


def test_assessment_features_of_no_records_is_an_empty_frame():
    out = feat.assessment_features(records=pd.DataFrame())
    assert out.empty and list(out.columns) == ["class_id", "user_id", *feat.ASSESSMENT_FEATURES]
    with pytest.raises(DataError, match="submission_id"):
        feat.assessment_features(records=pd.DataFrame({"class_id": [1], "user_id": [1]}))


def test_combine_is_the_cohort_with_missing_zero():
    engagement = feat.engagement_features(
        states=feat.day_increment(
            events=[
                page_load("a", f"{BASE}/class/1/activity/5"),
                page_load("b", f"{BASE}/class/9/activity/5"),  # class not in the cohort
            ]
        )
    )
    assessment = feat.assessment_features(
        records=records_frame(
            [
                dict(
                    class_id=1,
                    user_id=8,
                    activity_id=10,
                    level=3,
                    submission_id=1,
                    submitted_at="2023-03-02",
                ),
            ]
        )
    )
    out = feat.combine(engagement=engagement, assessment=assessment, cohort_class_ids=[1, 2])
    assert list(out.columns) == ["class_id", "user_id", *feat.FEATURES]
    assert list(zip(out["class_id"], out["user_id"], strict=True)) == [(1, 7), (1, 8)]
    assert row(out, 1, 7)["avglevel"] == 0.0 and row(out, 1, 7)["class_view_count"] == 1
    assert row(out, 1, 8)["class_view_count"] == 0.0 and row(out, 1, 8)["avglevel"] == 3.0
    assert not out[list(feat.FEATURES)].isna().any().any()
    same = feat.features_at(
        states=feat.day_increment(events=[page_load("a", f"{BASE}/class/1/activity/5")]),
        records=None,
        class_ids=[1],
    )
    assert row(same, 1, 7)["specific_activity_view"] == 1.0


def test_scale_within_class_min_max_and_constant_zero():
    raw = pd.DataFrame(
        {
            "class_id": [1, 1, 1, 2, 2],
            "user_id": [1, 2, 3, 1, 2],
            **{name: [0.0, 5.0, 10.0, 100.0, 100.0] for name in feat.FEATURES},
        }
    )
    raw["avglevel"] = [2.0, 2.0, 2.0, 1.0, 3.0]
    out = feat.scale_within_class(features=raw)
    assert out.loc[out["class_id"] == 1, "class_view_count"].tolist() == [0.0, 0.5, 1.0]
    assert out.loc[out["class_id"] == 2, "class_view_count"].tolist() == [0.0, 0.0]  # constant
    assert out.loc[out["class_id"] == 1, "avglevel"].tolist() == [0.0, 0.0, 0.0]
    assert out.loc[out["class_id"] == 2, "avglevel"].tolist() == [0.0, 1.0]
    assert raw["class_view_count"].tolist()[1] == 5.0  # input untouched
    assert not math.isnan(out[list(feat.FEATURES)].to_numpy().sum())
    assert feat.scale_within_class(features=raw.iloc[:0]).empty
