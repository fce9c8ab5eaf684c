"""The 13 features of docs/domain.md §2.3: daily increments, the features of a cumulative state,
within-class scaling.

Pure functions on pandas frames: no I/O, no Prefect. Training and scoring share them. The one
state update (yesterday's state plus today's increment) is ``lof.features.state.accumulate``.

Frames used across lof (column order as listed):

* engagement frame (a day's increment, or the cumulative state as of a day): one row per
  (class_id, user_id) with ``class_id``, ``user_id`` (int64), the five counts of
  ``COUNT_COLUMNS`` (int64) and ``activity_ids``, ``session_ids`` (object: sorted tuples
  of ints, the sets behind the two distinct counts), then the event state of the early-warning
  signals (``lof.features.signals.EVENT_STATE_COLUMNS``, int64).
* assessed records frame: see ``lof.sources.leb2.assessed_records``.
* features frame: ``class_id``, ``user_id`` then the 13 ``FEATURES`` (float64), raw or scaled.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from lof.core.errors import DataError
from lof.features.signals import (
    EVENT_STATE_COLUMNS,
    SCALED_SIGNALS,
    as_datetimes,
)

COUNT_COLUMNS: tuple[str, ...] = (
    "class_view_count",
    "activity_page_view",
    "material_view",
    "act_quiz_view",
    "submit_button_clicked",
)
SET_COLUMNS: tuple[str, ...] = ("activity_ids", "session_ids")
# The two distinct-count features and the id set each counts.
DISTINCT_COUNTS: tuple[tuple[str, str], ...] = (
    ("specific_activity_view", "activity_ids"),
    ("session_id_count", "session_ids"),
)
# The event state of the early-warning signals (lof.signals): plain integer columns.
STATE_INT_COLUMNS: tuple[str, ...] = (*COUNT_COLUMNS, *EVENT_STATE_COLUMNS)
ENGAGEMENT_COLUMNS: tuple[str, ...] = (
    "class_id",
    "user_id",
    *COUNT_COLUMNS,
    *SET_COLUMNS,
    *EVENT_STATE_COLUMNS,
)

EVENT_FEATURES: tuple[str, ...] = (*COUNT_COLUMNS, "specific_activity_view", "session_id_count")
ASSESSMENT_FEATURES: tuple[str, ...] = (
    "activity_count_per_class",
    "total_submission",
    "avgspent_time",
    "avgseconds_early",
    "expectation_met_count",
    "avglevel",
)
FEATURES: tuple[str, ...] = (*EVENT_FEATURES, *ASSESSMENT_FEATURES)
LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5)


KEYS: list[str] = ["class_id", "user_id"]

# Compiled once: the event path of day_increments runs them on every counted event.
CLASS_RE = re.compile(r"class/(\d+)")
ACTIVITY_ID_RE = re.compile(r"activity/(\d+)")
ACT_QUIZ_RE = re.compile(r"(?:activity|quiz)/\d")

PAGE_LOAD = "Page Load"


URL_CACHE_MAX = 500_000


PageUrl = tuple[int, int, int, int, int, tuple[int, ...]]
"""A counted page's class id, its four page-kind flags (0/1) and the activity ids it names."""


def parse_page_url(url: str) -> PageUrl | None:
    """What a Page Load URL contributes: (class id, the 4 URL flags, activity ids), or None.

    The flags are activity page view (path ends with ``/activity``), material view, act/quiz
    view and submission, in ``COUNT_COLUMNS`` order after ``class_view_count``.
    """
    match = CLASS_RE.search(url)
    if match is None:
        return None
    path = url.split("#", 1)[0].split("?", 1)[0]
    activity_ids = (
        tuple(sorted({int(a) for a in ACTIVITY_ID_RE.findall(url)})) if "activity/" in url else ()
    )
    return (
        int(match.group(1)),
        int(path.endswith("/activity")),
        int("/learning-activities" in url),
        int(ACT_QUIZ_RE.search(url) is not None),
        int("submission" in url),
        activity_ids,
    )


_USER_ID_TYPES = (str, int, float)  # what int() takes of a JSON user_id


class _Tally:
    """One student's counts in one class on one day (``COUNT_COLUMNS``) and the ids seen."""

    __slots__ = ("activity_ids", "counts", "session_ids")

    def __init__(self) -> None:
        self.counts = [0, 0, 0, 0, 0]
        self.activity_ids: set[int] = set()
        self.session_ids: set[int] = set()


class EngagementAggregator:
    """Folds one day's Amplitude events into per-(class, student) increments.

    Kept as a small stateful object rather than a pandas pipeline so a day of a large
    university (~1M events) streams through in memory that grows with students, not events
    (besides the day's uuids). Parsed URLs are cached: a day has far fewer distinct pages
    than page views.

    Events are deduplicated by ``uuid`` within the aggregator (one day, plus the uuids it is
    seeded with): the first occurrence wins, later copies are counted in ``duplicates``.
    Events without a numeric ``user_id`` (anonymous visitors) cannot be attributed and are
    counted in ``unattributed``. Negative ``session_id`` values (Amplitude's "out of session")
    are not sessions and are not counted.
    """

    __slots__ = (
        "_seen",
        "_state",
        "_urls",
        "class_ids",
        "counted",
        "duplicates",
        "unattributed",
    )

    def __init__(
        self, *, class_ids: Collection[int] | None = None, seen: set[str] | None = None
    ) -> None:
        """``seen``: uuids already counted elsewhere (an earlier day), skipped as duplicates."""
        self.class_ids: frozenset[int] | None = (
            None if class_ids is None else frozenset(int(c) for c in class_ids)
        )
        self._state: dict[tuple[int, int], _Tally] = {}
        self._seen: set[str] = set() if seen is None else seen
        self._urls: dict[str, PageUrl | tuple[()]] = {}
        self.counted = 0
        self.duplicates = 0
        self.unattributed = 0

    def add(self, event: Mapping[str, object]) -> bool:
        """Count one parsed event if it is a Page Load of a wanted class; True if counted."""
        if event.get("event_type") != PAGE_LOAD:
            return False
        props = event.get("event_properties")
        if not isinstance(props, dict):
            return False
        url = props.get("CURRENT_URL")
        if type(url) is not str:
            return False
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = parse_page_url(url) or ()  # () remembers a URL that is not a class page
            if len(self._urls) < URL_CACHE_MAX:
                self._urls[url] = parsed
        if not parsed:
            return False
        class_id, activity_page, material, act_quiz, submission, activity_ids = parsed
        if self.class_ids is not None and class_id not in self.class_ids:
            return False
        uuid = event.get("uuid")
        if uuid is not None:
            uuid = uuid if type(uuid) is str else str(uuid)
            if uuid in self._seen:
                self.duplicates += 1
                return False
            self._seen.add(uuid)
        raw_user = event.get("user_id")
        try:
            user_id = int(raw_user) if isinstance(raw_user, _USER_ID_TYPES) else None
        except ValueError:
            user_id = None
        if user_id is None:
            self.unattributed += 1
            return False
        key = (class_id, user_id)
        tally = self._state.get(key)
        if tally is None:
            tally = _Tally()
            self._state[key] = tally
        counts = tally.counts
        counts[0] += 1
        counts[1] += activity_page
        counts[2] += material
        counts[3] += act_quiz
        counts[4] += submission
        if activity_ids:
            tally.activity_ids.update(activity_ids)
        session = event.get("session_id")
        if type(session) is int and session >= 0:
            tally.session_ids.add(session)
        self.counted += 1
        return True

    @property
    def seen_uuids(self) -> set[str]:
        return self._seen

    def frame(self) -> pd.DataFrame:
        """The increment as an engagement frame (sorted by class_id, user_id)."""
        keys = sorted(self._state)
        data: dict[str, np.ndarray | pd.Series] = {
            "class_id": np.fromiter((k[0] for k in keys), dtype=np.int64, count=len(keys)),
            "user_id": np.fromiter((k[1] for k in keys), dtype=np.int64, count=len(keys)),
        }
        tallies = [self._state[k] for k in keys]
        for i, column in enumerate(COUNT_COLUMNS):
            data[column] = np.fromiter(
                (t.counts[i] for t in tallies), dtype=np.int64, count=len(keys)
            )
        data["activity_ids"] = _object_series([tuple(sorted(t.activity_ids)) for t in tallies])
        data["session_ids"] = _object_series([tuple(sorted(t.session_ids)) for t in tallies])
        for column in EVENT_STATE_COLUMNS:  # set by lof.signals.stamp_increment, once dated
            data[column] = np.zeros(len(keys), dtype=np.int64)
        return pd.DataFrame(data, columns=list(ENGAGEMENT_COLUMNS))


def _object_series(values: Sequence[object]) -> pd.Series:
    # Element by element: numpy would turn equal-length tuples into a 2-D array.
    array = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        array[i] = value
    return pd.Series(array, dtype=object)


def empty_engagement() -> pd.DataFrame:
    """An engagement frame with no rows and the contract's dtypes."""
    return EngagementAggregator().frame()


def day_increment(
    *, events: Iterable[Mapping[str, object]], class_ids: Collection[int] | None = None
) -> pd.DataFrame:
    """One day's engagement increment from parsed Amplitude events (deduplicated by uuid)."""
    aggregator = EngagementAggregator(class_ids=class_ids)
    for event in events:
        aggregator.add(event)
    return aggregator.frame()


def _ids(value: object) -> frozenset[int]:
    """A set column's value as a set: tuples/lists/sets, comma-joined text, or None/NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return frozenset()
    if isinstance(value, str):
        return frozenset(map(int, filter(None, value.split(","))))
    if not isinstance(value, Iterable):
        raise TypeError(f"expected ids, got {type(value).__name__}")
    return frozenset(map(int, value))


def sorted_ids(value: object) -> tuple[int, ...]:
    """A set column's value as a sorted tuple of distinct ints (the stores' and frames' form).

    lof's own frames already hold such tuples; they are passed through after a C-speed check.
    """
    if isinstance(value, tuple) and (not value or type(value[0]) is int):
        listed = list(value)
        if listed == sorted(listed) and len(set(listed)) == len(listed):
            return value
    return tuple(sorted(_ids(value)))


def _count(value: object) -> int:
    return len(value) if isinstance(value, tuple) else len(_ids(value))


def _normalized(frame: pd.DataFrame | None) -> pd.DataFrame:
    if frame is None or len(frame) == 0:
        return empty_engagement()
    absent = [c for c in EVENT_STATE_COLUMNS if c not in frame.columns]
    if absent:  # a frame from before the event state: no dated events
        frame = frame.assign(**{c: np.zeros(len(frame), dtype=np.int64) for c in absent})
    missing = [c for c in ENGAGEMENT_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"engagement frame lacks column(s) {', '.join(missing)}; "
            f"expected {', '.join(ENGAGEMENT_COLUMNS)}"
        )
    return frame.loc[:, list(ENGAGEMENT_COLUMNS)]


def engagement_features(*, states: pd.DataFrame | None) -> pd.DataFrame:
    """The 7 event features of cumulative states: the 5 counts and the 2 distinct counts.

    ``states`` holds either the id sets or already their sizes (the ``DISTINCT_COUNTS`` names,
    as ``lof.features.state.summary_frame`` gives them to the daily run).
    """
    counted = states is not None and all(name in states.columns for name, _ in DISTINCT_COUNTS)
    frame = states if states is not None and counted else _normalized(states)
    out = pd.DataFrame(
        {
            "class_id": frame["class_id"].astype(np.int64).to_numpy(),
            "user_id": frame["user_id"].astype(np.int64).to_numpy(),
        }
    )
    for column in COUNT_COLUMNS:
        out[column] = frame[column].astype(np.float64).to_numpy()
    for name, column in DISTINCT_COUNTS:
        if counted:
            out[name] = frame[name].astype(np.float64).to_numpy()
            continue
        out[name] = np.array(
            [len(v) if type(v) is tuple else _count(v) for v in frame[column].tolist()],
            dtype=np.float64,
        )
    return out.sort_values(KEYS, kind="stable").reset_index(drop=True)


RECORD_COLUMNS: tuple[str, ...] = (
    "class_id",
    "user_id",
    "activity_id",
    "due_date",
    "level",
    "required_level",
    "submission_id",
    "submitted_at",
    "spent_seconds",
    "submissions",
)


def _empty_features(names: Iterable[str]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"class_id": pd.Series(dtype=np.int64), "user_id": pd.Series(dtype=np.int64)}
    )
    for name in names:
        frame[name] = pd.Series(dtype=np.float64)
    return frame


def assessment_features(*, records: pd.DataFrame | None) -> pd.DataFrame:
    """The 6 assessment features of the assessed records as of a day (docs/domain.md §2.3, 8-13).

    Per-submission features (time spent, seconds early) average over distinct submissions,
    not over records: a submission assessed on three criteria is one submission. The assessed
    submission is the student's latest on the activity; ``total_submission`` also counts the
    earlier ones (``submissions``), so resubmitting shows.
    """
    if records is None or len(records) == 0:
        return _empty_features(ASSESSMENT_FEATURES)
    missing = [c for c in RECORD_COLUMNS if c not in records.columns]
    if missing:
        raise DataError(
            f"assessed records lack column(s) {', '.join(missing)}; "
            "build them with lof.sources.leb2.assessed_records"
        )
    rec = records.loc[:, list(RECORD_COLUMNS)].copy()
    rec["class_id"] = rec["class_id"].astype(np.int64)
    rec["user_id"] = rec["user_id"].astype(np.int64)
    level = pd.to_numeric(rec["level"], errors="coerce").astype(np.float64)
    required = pd.to_numeric(rec["required_level"], errors="coerce").astype(np.float64)
    rec["level"] = level
    rec["met"] = (level >= required).astype(np.float64)

    per_record = rec.groupby(KEYS, sort=True).agg(
        activity_count_per_class=("activity_id", "nunique"),
        expectation_met_count=("met", "sum"),
        avglevel=("level", "mean"),
    )

    subs = rec.drop_duplicates(subset=[*KEYS, "submission_id"]).copy()
    subs["spent"] = pd.to_numeric(subs["spent_seconds"], errors="coerce").fillna(0.0)
    due = as_datetimes(subs["due_date"])
    submitted = as_datetimes(subs["submitted_at"])
    subs["early"] = (due - submitted).dt.total_seconds().fillna(0.0)
    subs["submissions"] = pd.to_numeric(subs["submissions"], errors="coerce").fillna(1.0)
    per_submission = subs.groupby(KEYS, sort=True).agg(
        total_submission=("submissions", "sum"),
        avgspent_time=("spent", "mean"),
        avgseconds_early=("early", "mean"),
    )

    out = per_record.join(per_submission, how="left").reset_index()
    for name in ASSESSMENT_FEATURES:
        out[name] = out[name].astype(np.float64).fillna(0.0)
    return out.loc[:, [*KEYS, *ASSESSMENT_FEATURES]]


def combine(
    *,
    engagement: pd.DataFrame | None,
    assessment: pd.DataFrame | None,
    cohort_class_ids: Collection[int] | None,
) -> pd.DataFrame:
    """The raw 13 features of each class's cohort: students with events or records, missing = 0."""
    eng = (
        engagement
        if engagement is not None and len(engagement)
        else _empty_features(EVENT_FEATURES)
    )
    ass = (
        assessment
        if assessment is not None and len(assessment)
        else _empty_features(ASSESSMENT_FEATURES)
    )
    eng = eng.loc[:, [*KEYS, *EVENT_FEATURES]]
    ass = ass.loc[:, [*KEYS, *ASSESSMENT_FEATURES]]
    out = eng.merge(ass, on=KEYS, how="outer", sort=True)
    if cohort_class_ids is not None:
        wanted = [int(c) for c in cohort_class_ids]
        out = out[out["class_id"].isin(wanted)]
    out = out.reset_index(drop=True)
    out["class_id"] = out["class_id"].astype(np.int64)
    out["user_id"] = out["user_id"].astype(np.int64)
    for name in FEATURES:
        out[name] = out[name].astype(np.float64).fillna(0.0)
    return out.loc[:, [*KEYS, *FEATURES]]


def features_at(
    *,
    states: pd.DataFrame | None,
    records: pd.DataFrame | None,
    class_ids: Collection[int] | None,
) -> pd.DataFrame:
    """Raw 13 features from cumulative states and assessed records (the one shared path)."""
    return combine(
        engagement=engagement_features(states=states),
        assessment=assessment_features(records=records),
        cohort_class_ids=class_ids,
    )


def scale_within_class(*, features: pd.DataFrame) -> pd.DataFrame:
    """Min-max scale each feature within each class's cohort; a constant feature becomes 0.

    Early-warning signals present in the frame are scaled the same way, except those on a
    scale shared by every class (``lof.features.signals.UNSCALED_SIGNALS``), which stay as they are.
    """
    out = features.copy()
    if len(out) == 0:
        return out
    names = [n for n in (*FEATURES, *SCALED_SIGNALS) if n in out.columns]
    values = out[names].astype(np.float64)
    grouped = values.groupby(out["class_id"])
    low = grouped.transform("min")
    span = grouped.transform("max") - low
    scaled = (values - low) / span.where(span > 0)
    out[names] = scaled.fillna(0.0).to_numpy()
    return out
