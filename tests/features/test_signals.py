"""The early-warning signals (lof.signals): hand-computed fixtures, incremental = whole period."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lof.features import definitions as feat
from lof.features import signals
from lof.features import state as feature_state

BASE = "https://leb2.example.ac.th"
D = date(2023, 3, 10)


def page_load(uuid: str, class_id: int, user: int) -> dict:
    return {
        "uuid": uuid,
        "user_id": str(user),
        "session_id": 1,
        "event_type": "Page Load",
        "event_properties": {"CURRENT_URL": f"{BASE}/class/{class_id}/activity"},
    }


def day_of(events: list[dict], day: date) -> pd.DataFrame:
    return signals.stamp_increment(feat.day_increment(events=events), day=day)


def at(frame: pd.DataFrame, class_id: int, user_id: int) -> dict:
    match = frame[(frame["class_id"] == class_id) & (frame["user_id"] == user_id)]
    assert len(match) == 1
    return match.iloc[0].to_dict()


def fixture_frames(until: date = D):
    """Class 1: first activity 1 March, last due 31 March (window 30 days; D = 10 March is 9/30).

    Activities: a1 due 5 March, a2 due 9 March, a3 due 20 March (not yet), a4 no due date.
    Students: 7 submitted a1 (level 3) and a2 (level 4 and 2 on two criteria);
    8 submitted a1 only (level 2, submitted 4 March); 9 submitted nothing but viewed pages.
    """
    activities = pd.DataFrame(
        {
            "class_id": [1, 1, 1, 1],
            "activity_id": [11, 12, 13, 14],
            "start_date": pd.to_datetime(
                ["2023-03-01 08:00", "2023-03-03 08:00", "2023-03-10 08:00", "2023-03-02 08:00"]
            ),
            "due_date": pd.to_datetime(
                ["2023-03-05 23:59", "2023-03-09 23:59", "2023-03-31 23:59", None]
            ),
        }
    )
    submissions = pd.DataFrame(
        {
            "class_id": [1, 1, 1],
            "activity_id": [11, 12, 11],
            "user_id": [7, 7, 8],
            "submitted_at": pd.to_datetime(
                ["2023-03-05 20:00", "2023-03-08 10:00", "2023-03-04 09:00"]
            ),
        }
    )
    records = pd.DataFrame(
        {
            "class_id": [1, 1, 1, 1],
            "user_id": [7, 7, 7, 8],
            "activity_id": [11, 12, 12, 11],
            "level": [3, 4, 2, 2],
        }
    )
    # Events: 7 on 1 March (5 views) and 9 March (2); 9 on 2 March (4) only.
    state = None
    for day, events in (
        (date(2023, 3, 1), [page_load(f"a{i}", 1, 7) for i in range(5)]),
        (date(2023, 3, 2), [page_load(f"b{i}", 1, 9) for i in range(4)]),
        (date(2023, 3, 9), [page_load(f"c{i}", 1, 7) for i in range(2)]),
    ):
        if day <= until:  # the state as of the day scored
            state = feature_state.accumulate_frames(previous=state, increment=day_of(events, day))
    raw = pd.DataFrame({"class_id": [1, 1, 1], "user_id": [7, 8, 9]})
    return raw, state, records, activities, submissions


def test_signals_hand_computed():
    raw, state, records, activities, submissions = fixture_frames()
    out = signals.add_signals(
        raw=raw,
        states=state,
        records=records,
        activities=activities,
        submissions=submissions,
        day=D,
    )
    s7, s8, s9 = at(out, 1, 7), at(out, 1, 8), at(out, 1, 9)
    # due by D: a1, a2. 7: a1 = 3, a2 = mean(4, 2) = 3 -> 3; 8: a1 = 2, a2 missing = 1 -> 1.5
    assert s7["attainment_so_far"] == 3.0
    assert s8["attainment_so_far"] == 1.5
    assert s9["attainment_so_far"] == 1.0
    assert (s7["past_due_not_submitted"], s8["past_due_not_submitted"]) == (0.0, 1.0)
    assert s9["past_due_not_submitted"] == 2.0
    # last event: 7 on 9 March (1 day), 9 on 2 March (8 days), 8 never: class ran 10 days
    assert s7["days_since_last_event"] == 1.0
    assert s9["days_since_last_event"] == 8.0
    assert s8["days_since_last_event"] == 10.0
    # last submission: 7 on 8 March (2 days), 8 on 4 March (6), 9 never (10)
    assert s7["days_since_last_submission"] == 2.0
    assert s8["days_since_last_submission"] == 6.0
    assert s9["days_since_last_submission"] == 10.0
    # events on 4..10 March: 7 has the 2 of 9 March (1 March is out), 9 none
    assert (s7["events_last_7d"], s8["events_last_7d"], s9["events_last_7d"]) == (2.0, 0.0, 0.0)
    assert s7["window_elapsed"] == pytest.approx(9 / 30)
    assert s9["window_elapsed"] == s7["window_elapsed"]


def test_window_edges_and_nothing_due():
    raw, state, records, activities, submissions = fixture_frames(until=date(2023, 3, 5))
    early = signals.add_signals(
        raw=raw,
        states=state,
        records=records,
        activities=activities,
        submissions=submissions,
        day=date(2023, 3, 5),
    )
    # a1 is due at 23:59 on 5 March: due by the end of that day; 8 had submitted it
    assert at(early, 1, 8)["past_due_not_submitted"] == 0.0
    assert at(early, 1, 9)["past_due_not_submitted"] == 1.0
    # 7's 5 views of 1 March are inside 27 Feb..5 March; 9's 4 of 2 March too
    assert at(early, 1, 7)["events_last_7d"] == 5.0
    assert at(early, 1, 9)["events_last_7d"] == 4.0
    first = signals.add_signals(
        raw=raw,
        states=fixture_frames(until=date(2023, 3, 1))[1],
        records=records,
        activities=activities,
        submissions=submissions,
        day=date(2023, 3, 1),
    )
    assert (first["attainment_so_far"] == 0.0).all()  # nothing due yet
    assert (first["past_due_not_submitted"] == 0.0).all()
    assert (first["window_elapsed"] == 0.0).all()
    late = signals.add_signals(
        raw=raw,
        states=state,
        records=records,
        activities=activities,
        submissions=submissions,
        day=date(2023, 4, 20),
    )
    assert (late["window_elapsed"] == 1.0).all()
    assert at(late, 1, 9)["past_due_not_submitted"] == 3.0


def test_scaling_of_signals_within_class():
    raw, state, records, activities, submissions = fixture_frames()
    out = signals.add_signals(
        raw=feat.features_at(states=state, records=None, class_ids=[1]).merge(
            raw, on=["class_id", "user_id"], how="outer"
        ),
        states=state,
        records=records,
        activities=activities,
        submissions=submissions,
        day=D,
    ).fillna(0.0)
    scaled = feat.scale_within_class(features=out)
    # within class: past due 0, 1, 2 -> 0, 0.5, 1; attainment and window stay as they are
    assert sorted(scaled["past_due_not_submitted"]) == [0.0, 0.5, 1.0]
    assert sorted(scaled["attainment_so_far"]) == [1.0, 1.5, 3.0]
    assert np.allclose(scaled["window_elapsed"], 9 / 30)


def test_stored_frames_without_event_state_still_accumulate():
    """A state from before the event state (no such columns) reads as no dated events."""
    old = feat.day_increment(events=[page_load("x", 1, 7)]).drop(
        columns=list(signals.EVENT_STATE_COLUMNS)
    )
    new = day_of([page_load("y", 1, 7)], D)
    state = feature_state.accumulate_frames(previous=old, increment=new)
    got = at(state, 1, 7)
    assert got["class_view_count"] == 2
    assert got["last_event_day"] == D.toordinal()
    assert got["recent_0"] == 1


# --- property: incremental day by day == whole period ------------------------------------------


@st.composite
def dated_events(draw):
    offset = draw(st.integers(0, 20))
    return offset, {
        "uuid": f"u{draw(st.integers(0, 10_000))}",
        "user_id": str(draw(st.integers(1, 4))),
        "session_id": 1,
        "event_type": "Page Load",
        "event_properties": {
            "CURRENT_URL": f"{BASE}/class/{draw(st.sampled_from([1, 12]))}/activity"
        },
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=st.lists(dated_events(), max_size=60), scored=st.integers(0, 25))
def test_event_signals_incremental_equal_whole_period(stream, scored):
    first = date(2023, 3, 1)
    by_uuid: dict[str, tuple[int, dict]] = {}
    for offset, event in stream:
        by_uuid.setdefault(event["uuid"], (offset, event))
    days: dict[int, list[dict]] = {}
    for offset, event in by_uuid.values():
        days.setdefault(offset, []).append(event)
    day = first + timedelta(days=scored)

    state = None
    for offset in range(scored + 1):  # every day, quiet ones too, as the daily flow does
        increment = day_of(days.get(offset, []), first + timedelta(days=offset))
        state = feature_state.accumulate_frames(previous=state, increment=increment)
    got = signals.event_signals(states=state, day=day)

    counts: dict[date, dict[tuple[int, int], int]] = {}
    for offset, events in days.items():
        per = counts.setdefault(first + timedelta(days=offset), {})
        for event in events:
            class_id = int(event["event_properties"]["CURRENT_URL"].split("/")[-2])
            key = (class_id, int(event["user_id"]))
            per[key] = per.get(key, 0) + 1
    want = signals.whole_period_event_signals(events_by_day=counts, day=day)
    got_map = {
        (int(r.class_id), int(r.user_id)): (int(r.last_event_day), float(r.events_last_7d))
        for r in got.itertuples()
    }
    assert got_map == want

    # The same days in any grouping (a catch-up that reads several days at once is not a
    # thing, but merging is associative): two halves merged equal the day-by-day state.
    half = scored // 2
    left = right = None
    for offset in range(scored + 1):
        inc = day_of(days.get(offset, []), first + timedelta(days=offset))
        if offset <= half:
            left = feature_state.accumulate_frames(previous=left, increment=inc)
        else:
            right = feature_state.accumulate_frames(previous=right, increment=inc)
    both = feature_state.accumulate_frames(previous=left, increment=right)
    pd.testing.assert_frame_equal(
        both.reset_index(drop=True), state.reset_index(drop=True), check_dtype=False
    )


def test_whole_period_reference_counts_window_only():
    counts = {date(2023, 3, 1): {(1, 7): 5}, date(2023, 3, 9): {(1, 7): 2}}
    assert signals.whole_period_event_signals(events_by_day=counts, day=D) == {
        (1, 7): (date(2023, 3, 9).toordinal(), 2.0)
    }
