"""Property: features accumulated day by day equal the features computed over the period at once."""

from __future__ import annotations

import itertools

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lof.features import definitions as feat
from lof.features import state as feature_state

URL_PARTS = st.sampled_from(
    [
        "",
        "/activity",
        "/activity/{a}",
        "/activity/{a}/submission",
        "/quiz/{a}",
        "/learning-activities",
        "/learning-activities/activity/{a}",
        "/home?next=/activity",
        "/activity/{a}?from=activity/{b}",
    ]
)


@st.composite
def events(draw):
    class_id = draw(st.sampled_from([1, 2, 12]))
    part = draw(URL_PARTS).format(a=draw(st.integers(1, 6)), b=draw(st.integers(1, 6)))
    return {
        "uuid": f"u{draw(st.integers(0, 10_000))}",
        "user_id": str(draw(st.integers(1, 4))),
        "session_id": draw(st.one_of(st.none(), st.integers(-1, 5))),
        "event_type": draw(st.sampled_from(["Page Load", "Page Load", "Page Load", "Click"])),
        "event_properties": {"CURRENT_URL": f"https://leb2.example/class/{class_id}{part}"},
    }


def unique_uuids(stream: list[dict]) -> list[dict]:
    """A day window is read once, so an event (uuid) belongs to exactly one day."""
    seen: dict[str, dict] = {}
    for event in stream:
        seen.setdefault(event["uuid"], event)
    return list(seen.values())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=st.lists(events(), max_size=60), cuts=st.lists(st.integers(0, 60), max_size=6))
def test_incremental_equals_whole_period(stream, cuts):
    stream = unique_uuids(stream)
    bounds = sorted({0, len(stream), *(c for c in cuts if c <= len(stream))})
    days = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    class_ids = [1, 12]

    state = None
    for day_events in days:
        increment = feat.day_increment(events=day_events, class_ids=class_ids)
        state = feature_state.accumulate_frames(previous=state, increment=increment)
    incremental = feat.features_at(states=state, records=None, class_ids=class_ids)

    whole_state = feat.day_increment(events=stream, class_ids=class_ids)
    whole = feat.features_at(states=whole_state, records=None, class_ids=class_ids)

    pd.testing.assert_frame_equal(incremental, whole)
    if state is not None:
        pd.testing.assert_frame_equal(
            state.reset_index(drop=True), whole_state.reset_index(drop=True)
        )
    assert set(whole["class_id"]) <= set(class_ids)
