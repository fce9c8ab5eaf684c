"""The inputs that carry early information (lof.signals.EARLY_SIGNALS): hand-computed values,
day-by-day state = whole period (the daily path and the store's path), and nothing after the
day scored changes them."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lof.features import definitions as feat
from lof.features import signals
from lof.features import state as state_update
from tests.features.test_signals import D, at, day_of, fixture_frames, page_load


def _scored(day: date = D, **changes):
    raw, state, records, activities, submissions = fixture_frames(until=day)
    raw = raw.assign(class_view_count=[7.0, 0.0, 4.0])  # 7: 5 + 2 views, 8: none, 9: 4
    records = records.assign(
        required_level=3,
        submitted_at=pd.to_datetime(
            ["2023-03-05 20:00", "2023-03-08 10:00", "2023-03-08 10:00", "2023-03-04 09:00"]
        ),
    )
    frames = {"records": records, "submissions": submissions, **changes}
    return signals.add_signals(raw=raw, states=state, activities=activities, day=day, **frames)


def test_early_signals_hand_computed():
    out = _scored()
    s7, s8, s9 = at(out, 1, 7), at(out, 1, 8), at(out, 1, 9)
    # class from 1 March, D = 10 March: 10 days run.
    # 7: events on 1 and 9 March: 2 active days, gap 2..8 March = 7 days, first on day one.
    assert (s7["active_share"], s7["longest_gap_days"], s7["first_event_delay"]) == (0.2, 7, 0)
    # 9: 2 March only: 1 active day, quiet 3..10 March = 8 days, first a day late.
    assert (s9["active_share"], s9["longest_gap_days"], s9["first_event_delay"]) == (0.1, 8, 1)
    # 8: never seen: gap and delay = the 10 days run.
    assert (s8["active_share"], s8["longest_gap_days"], s8["first_event_delay"]) == (0, 10, 10)
    # events on 25 Feb..10 March: 7, 0, 4 -> class median 4: log(8/5), log(1/5), 0
    assert s7["events_last_14d"] == pytest.approx(np.log(8 / 5))
    assert s8["events_last_14d"] == pytest.approx(np.log(1 / 5))
    assert s9["events_last_14d"] == 0.0
    # class page views 7, 0, 4: the same log ratios
    assert s7["views_log_ratio"] == pytest.approx(np.log(8 / 5))
    assert s8["views_log_ratio"] == pytest.approx(np.log(1 / 5))
    # level - required 3 over criterion records: 7: 0, +1, -1 -> 0; 8: -1; 9 none -> 0
    assert (s7["score_so_far"], s8["score_so_far"], s9["score_so_far"]) == (0.0, -1.0, 0.0)


def test_an_extreme_student_moves_only_their_own_log_ratio():
    classes = pd.Series([1] * 5)
    calm = signals.log_ratio_to_median([3, 4, 5, 6, 7], classes)
    wild = signals.log_ratio_to_median([3, 4, 5, 6, 7000], classes)
    np.testing.assert_allclose(calm[:4], wild[:4])
    assert wild[4] > 5


def test_nothing_after_the_day_scored_changes_an_input():
    before = _scored()
    _raw, _, records, _, submissions = fixture_frames()
    later_sub = pd.DataFrame(
        {
            "class_id": [1, 1],
            "activity_id": [13, 12],
            "user_id": [9, 8],
            "submitted_at": pd.to_datetime(["2023-03-11 09:00", "2023-03-12 10:00"]),
        }
    )
    later_record = pd.DataFrame(
        {
            "class_id": [1, 1],
            "user_id": [9, 8],
            "activity_id": [13, 12],
            "level": [5, 5],
            "required_level": [3, 3],
            "submitted_at": pd.to_datetime(["2023-03-11 09:00", "2023-03-12 10:00"]),
        }
    )
    base_records = records.assign(
        required_level=3,
        submitted_at=pd.to_datetime(
            ["2023-03-05 20:00", "2023-03-08 10:00", "2023-03-08 10:00", "2023-03-04 09:00"]
        ),
    )
    after = _scored(
        records=pd.concat([base_records, later_record], ignore_index=True),
        submissions=pd.concat([submissions, later_sub], ignore_index=True),
    )
    columns = list(signals.EARLY_SIGNALS)
    pd.testing.assert_frame_equal(before[columns], after[columns])
    # and events of later days are not in the state scored on D (the fixture cuts at D)
    cut = _scored(day=date(2023, 3, 5))
    assert at(cut, 1, 7)["active_share"] == pytest.approx(1 / 5)  # 1 March of 1..5 March


@st.composite
def dated_views(draw):
    return draw(st.integers(0, 30)), draw(st.integers(1, 4)), draw(st.integers(1, 3))


def _whole_period(views: dict[tuple[int, int], int], day: int) -> dict[int, tuple]:
    """Per user: first day, last day, active days, longest gap (closed or up to ``day``),
    events on day-13..day, straight from the daily counts."""
    out = {}
    for user in sorted({u for _, u in views}):
        days = sorted(d for d, u in views if u == user and d <= day)
        if not days:
            continue
        gaps = [b - a - 1 for a, b in itertools.pairwise(days)] + [day - days[-1]]
        recent = sum(views[(d, user)] for d in days if day - d < signals.LONG_WINDOW_DAYS)
        out[user] = (days[0], days[-1], len(days), max(gaps), recent)
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=st.lists(dated_views(), max_size=50), scored=st.integers(0, 35))
def test_day_by_day_state_equals_the_whole_period(stream, scored):
    first = date(2023, 3, 1)
    views: dict[tuple[int, int], int] = {}
    for offset, user, count in stream:
        views[(offset, user)] = views.get((offset, user), 0) + count
    state = None
    store_state: dict = {}
    for offset in range(scored + 1):
        events = [
            page_load(f"{offset}-{user}-{k}", 1, user)
            for (d, user), count in views.items()
            if d == offset
            for k in range(count)
        ]
        increment = day_of(events, first + timedelta(days=offset))
        state = state_update.accumulate_frames(previous=state, increment=increment)
        store_state = state_update.accumulate(
            store_state, state_update.split_frame(increment, what="the increment")
        )
    stored = state_update.to_frame(store_state)
    pd.testing.assert_frame_equal(
        stored.drop(columns=list(feat.SET_COLUMNS)).reset_index(drop=True),
        state.drop(columns=list(feat.SET_COLUMNS)).reset_index(drop=True),
        check_dtype=False,
    )
    day = first + timedelta(days=scored)
    got = signals.event_signals(states=state, day=day)
    base = first.toordinal()
    want = _whole_period(views, scored)
    got_map = {}
    for row in got.itertuples():
        gap = max(int(row.longest_gap), day.toordinal() - int(row.last_event_day))
        got_map[int(row.user_id)] = (
            int(row.first_event_day) - base,
            int(row.last_event_day) - base,
            int(row.active_days),
            gap,
            int(row.events_last_14d),
        )
    assert got_map == want
