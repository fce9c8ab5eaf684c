"""Early-warning signals: the second feature set, beside the 13 of docs/domain.md §2.3.

The 13 features are cumulative counts and means; they say little about work that is due and
not handed in, or a student who has gone quiet. These signals say it, per class cohort
student as of day D (pure functions on pandas frames, shared by training and scoring):

* ``attainment_so_far``: over the class's activities due by the end of D, the student's level
  on each (the mean of their assessed records on it; none = level 1), averaged; 0 while no
  activity is due. The label rule (docs/domain.md §2.4, ``attainment``) applied to what is due
  so far.
* ``past_due_not_submitted``: activities due by the end of D without a live submission of the
  student before the end of D.
* ``days_since_last_event``: days from the last day with a counted event (docs/domain.md §2.3) to D;
  never seen = the days the class has run (D - first day + 1).
* ``days_since_last_submission``: the same from the local day of the student's latest live
  submission in the class.
* ``events_last_7d``: counted events on days D-6..D. Scaled within the class's cohort like
  the 13, so the model sees it relative to the class.
* ``window_elapsed``: the share of the class's activity window (first activity start to the
  last start or due date) elapsed at D, 0-1. The same for the whole class: it lets the model
  read the others against the point of the course.

Inputs that carry early information (what a teacher sees in the first weeks):

* ``events_last_14d``: counted events on days D-13..D, as the log ratio to the class's median
  (``log((1 + x) / (1 + median))``): one extreme student does not squeeze everyone else, as
  min-max scaling does.
* ``views_log_ratio``: the same log ratio for the class page views so far (``class_view_count``).
* ``active_share``: days with a counted event over the days the class has run (0-1).
* ``longest_gap_days``: the longest run of days without a counted event since the student's
  first one, the current run up to D included; never seen = the days the class has run.
* ``first_event_delay``: days from the class's first day to the student's first counted event;
  never seen = the days the class has run.
* ``score_so_far``: the mean, over the student's assessed criterion records as of D (one per
  activity and criterion: the finest grading LEB2 keeps), of level minus the required level;
  0 without any.

Event signals come from the cumulative engagement state: besides the counts and id sets, each
row keeps ``last_event_day`` (the ordinal of its last day with a counted event, 0 = none),
``recent_0..recent_13`` (counted events on that day and the 13 days before it),
``first_event_day`` (ordinal, 0 = none), ``active_days`` and ``longest_gap`` (the longest run of
days without events between two days with events). A day's increment is stamped with its day
(``stamp_increment``); merging two such rows (``merge_event_state``) aligns both windows on the
later day and joins the day ranges, so the state after any split of the period into days
equals the state of the whole period at once. A student without events today keeps their row
as it was; the window and the current gap are read against D only when the signals are
computed. A state written before the last three columns (and recent_7..13) existed reads them as 0:
its first event day is then taken as its last, and active days count from there.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime, time, timedelta

import numpy as np
import pandas as pd

WINDOW_DAYS = 7
LONG_WINDOW_DAYS = 14
RECENT_COLUMNS: tuple[str, ...] = tuple(f"recent_{k}" for k in range(LONG_WINDOW_DAYS))
SPAN_COLUMNS: tuple[str, ...] = ("first_event_day", "active_days", "longest_gap")
# Appended after the former columns (last day, recent_0..6): an older stored state reads as 0.
EVENT_STATE_COLUMNS: tuple[str, ...] = ("last_event_day", *RECENT_COLUMNS, *SPAN_COLUMNS)

EARLY_SIGNALS: tuple[str, ...] = (
    "events_last_14d",
    "views_log_ratio",
    "active_share",
    "longest_gap_days",
    "first_event_delay",
    "score_so_far",
)
SIGNALS: tuple[str, ...] = (
    "attainment_so_far",
    "past_due_not_submitted",
    "days_since_last_event",
    "days_since_last_submission",
    "events_last_7d",
    "window_elapsed",
    *EARLY_SIGNALS,
)
UNSCALED_SIGNALS: frozenset[str] = frozenset(
    {"attainment_so_far", "window_elapsed", *EARLY_SIGNALS}
)
"""Signals the model takes as they are: already on a scale shared by every class (levels,
share of the course, days, log ratios to the class median). The others are min-max scaled
within the class's cohort like the 13."""
SCALED_SIGNALS: tuple[str, ...] = tuple(s for s in SIGNALS if s not in UNSCALED_SIGNALS)

KEYS = ["class_id", "user_id"]
ACTIVITY_COLUMNS: tuple[str, ...] = ("class_id", "activity_id", "start_date", "due_date")
SUBMISSION_COLUMNS: tuple[str, ...] = ("class_id", "activity_id", "user_id", "submitted_at")


# --- the event state --------------------------------------------------------------------------


def stamp_increment(increment: pd.DataFrame, *, day: date) -> pd.DataFrame:
    """The day's increment with its event state: last event day = ``day``, its count in recent_0.

    Every increment row has at least one counted event. Stamping again gives the same frame.
    """
    out = increment.copy()
    n = len(out)
    out["last_event_day"] = np.full(n, day.toordinal(), dtype=np.int64)
    out["recent_0"] = out["class_view_count"].astype(np.int64).to_numpy()
    for column in RECENT_COLUMNS[1:]:
        out[column] = np.zeros(n, dtype=np.int64)
    out["first_event_day"] = np.full(n, day.toordinal(), dtype=np.int64)
    out["active_days"] = np.ones(n, dtype=np.int64)
    out["longest_gap"] = np.zeros(n, dtype=np.int64)
    return out


def merge_event_state(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two (n, len(EVENT_STATE_COLUMNS)) event states combined, row by row.

    The windows merge as ``merge_recent``; the day ranges join: the earlier first day, the
    active days added (the two cover different days, as a state and the next day's increment
    do), the longest gap the larger of both and the gap between them. A row without events
    (last day 0) leaves the other as it is.
    """
    last_col, first_col = 0, 1 + LONG_WINDOW_DAYS
    window = slice(1, first_col)
    out = np.zeros_like(a)
    out[:, 0], out[:, window] = merge_recent(
        last_a=a[:, last_col], recent_a=a[:, window], last_b=b[:, last_col], recent_b=b[:, window]
    )
    seen_a, seen_b = a[:, last_col] > 0, b[:, last_col] > 0
    big = np.iinfo(np.int64).max
    first_a = np.where(
        seen_a & (a[:, first_col] > 0), a[:, first_col], np.where(seen_a, a[:, 0], big)
    )
    first_b = np.where(
        seen_b & (b[:, first_col] > 0), b[:, first_col], np.where(seen_b, b[:, 0], big)
    )
    first = np.minimum(first_a, first_b)
    out[:, first_col] = np.where(seen_a | seen_b, first, 0)
    out[:, first_col + 1] = a[:, first_col + 1] + b[:, first_col + 1]
    a_first = first_a <= first_b
    earlier_last = np.where(a_first, a[:, 0], b[:, 0])
    later_first = np.where(a_first, first_b, first_a)
    between = np.where(seen_a & seen_b, np.maximum(later_first - earlier_last - 1, 0), 0)
    out[:, first_col + 2] = np.maximum(
        np.maximum(a[:, first_col + 2], b[:, first_col + 2]), between
    )
    return out


def merge_recent(
    *, last_a: np.ndarray, recent_a: np.ndarray, last_b: np.ndarray, recent_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Two rows' event states combined: both windows shifted to the later last day and added.

    ``last_*`` are (n,) int arrays (0 = no events), ``recent_*`` (n, w) int arrays, column k
    = events k days before the row's last day. Symmetric and associative, so any split into
    days gives the whole period's state.
    """
    last = np.maximum(last_a, last_b)
    out = np.zeros_like(recent_a)
    for last_x, recent_x in ((last_a, recent_a), (last_b, recent_b)):
        shift = last - last_x
        for k in range(recent_x.shape[1]):
            source = k - shift
            ok = (source >= 0) & (last_x > 0)
            rows = np.flatnonzero(ok)
            if len(rows):
                out[rows, k] += recent_x[rows, source[rows]]
    return last, out


def _event_state(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    last = frame["last_event_day"].fillna(0).astype(np.int64).to_numpy()
    recent = frame.loc[:, list(RECENT_COLUMNS)].fillna(0).astype(np.int64).to_numpy()
    return last, recent


def event_signals(*, states: pd.DataFrame, day: date) -> pd.DataFrame:
    """class_id, user_id, the first and last event days, active days, the longest closed gap,
    and the events of the last 7 and 14 days of cumulative states as of ``day``."""
    last, recent = _event_state(states)
    age = day.toordinal() - last
    counted = np.where(last[:, None] > 0, recent, 0)
    k = np.arange(recent.shape[1])[None, :]
    week = np.where(k <= (WINDOW_DAYS - 1 - age)[:, None], counted, 0).sum(axis=1)
    fortnight = np.where(k <= (LONG_WINDOW_DAYS - 1 - age)[:, None], counted, 0).sum(axis=1)
    spans = {
        c: (states[c].fillna(0).astype(np.int64).to_numpy() if c in states.columns else 0 * last)
        for c in SPAN_COLUMNS
    }
    first = np.where(spans["first_event_day"] > 0, spans["first_event_day"], last)
    return pd.DataFrame(
        {
            "class_id": states["class_id"].astype(np.int64).to_numpy(),
            "user_id": states["user_id"].astype(np.int64).to_numpy(),
            "last_event_day": last,
            "first_event_day": np.where(last > 0, first, 0),
            "active_days": np.where(last > 0, np.maximum(spans["active_days"], 1), 0),
            "longest_gap": spans["longest_gap"],
            "events_last_7d": week.astype(np.float64),
            "events_last_14d": fortnight.astype(np.float64),
        }
    )


# --- the class's activities -------------------------------------------------------------------


def class_windows(activities: pd.DataFrame) -> pd.DataFrame:
    """class_id, first_day, last_day (date ordinals) of each class's live activities."""
    if activities is None or len(activities) == 0:
        return pd.DataFrame({"class_id": [], "first_day": [], "last_day": []}, dtype=np.int64)
    start = as_datetimes(activities["start_date"])
    due = as_datetimes(activities["due_date"])
    frame = pd.DataFrame(
        {
            "class_id": activities["class_id"].astype(np.int64).to_numpy(),
            "first": start.dt.normalize(),
            "last": due.where(due.notna() & (due > start), start).dt.normalize(),
        }
    )
    grouped = frame.groupby("class_id").agg(first=("first", "min"), last=("last", "max"))
    return pd.DataFrame(
        {
            "class_id": grouped.index.to_numpy(dtype=np.int64),
            "first_day": [d.toordinal() for d in grouped["first"]],
            "last_day": [d.toordinal() for d in grouped["last"]],
        }
    ).astype(np.int64)


def as_datetimes(values: pd.Series) -> pd.Series:
    """``values`` as datetimes; a column that already is one passes as it is (converting it
    again walks every value as a Python object, a cost that grows with the semester)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    return pd.to_datetime(values)


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _day_ordinals(values: pd.Series) -> np.ndarray:
    """The date ordinal of each datetime (0 for none), in numpy: one Timestamp per student
    costs more than the rest of the signals."""
    if values.dtype == "datetime64[ns]":
        days = values.to_numpy().astype("datetime64[D]")
        return np.where(np.isnat(days), 0, days.astype(np.int64) + _EPOCH_ORDINAL)
    return np.array(
        [d.toordinal() if isinstance(d, pd.Timestamp) else 0 for d in values], dtype=np.int64
    )


def _end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time.min)


def _days_run(*, out: pd.DataFrame, acts: pd.DataFrame, today: int) -> np.ndarray:
    """Days each row's class has run by ``today`` (at least 1); sets ``window_elapsed``."""
    windows = class_windows(acts).set_index("class_id")
    first = out["class_id"].map(windows["first_day"]).fillna(today).astype(np.int64).to_numpy()
    last = out["class_id"].map(windows["last_day"]).fillna(today).astype(np.int64).to_numpy()
    out["window_elapsed"] = np.clip((today - first) / np.maximum(last - first, 1), 0.0, 1.0)
    return np.maximum(today - first + 1, 1).astype(np.float64)


def _add_event_signals(
    *,
    out: pd.DataFrame,
    states: pd.DataFrame | None,
    day: date,
    keys: pd.MultiIndex,
    days_run: np.ndarray,
) -> None:
    """Events: days since the last one (days run when none), events in the last 7 and 14 days,
    active days, the longest gap and the delay of the first event (``EARLY_SIGNALS``)."""
    class_first = day.toordinal() - days_run + 1
    if "class_view_count" in out.columns:  # the raw 13: page views relative to the class
        out["views_log_ratio"] = log_ratio_to_median(out["class_view_count"], out["class_id"])
    if states is None or not len(states):
        out["days_since_last_event"] = days_run
        out["longest_gap_days"] = days_run
        out["first_event_delay"] = days_run
        return
    ev = event_signals(states=states, day=day).set_index(KEYS)
    found = ev.reindex(keys)
    last = found["last_event_day"].fillna(0).to_numpy()
    seen = last > 0
    since = np.maximum(day.toordinal() - last, 0)
    out["days_since_last_event"] = np.where(seen, since, days_run)
    out["events_last_7d"] = found["events_last_7d"].fillna(0.0).to_numpy()
    fortnight = found["events_last_14d"].fillna(0.0)
    out["events_last_14d"] = log_ratio_to_median(fortnight, out["class_id"])
    active = found["active_days"].fillna(0).to_numpy()
    out["active_share"] = np.clip(active / days_run, 0.0, 1.0)
    gap = np.maximum(found["longest_gap"].fillna(0).to_numpy(), since)
    out["longest_gap_days"] = np.where(seen, gap, days_run)
    first = found["first_event_day"].fillna(0).to_numpy()
    out["first_event_delay"] = np.where(seen, np.maximum(first - class_first, 0), days_run)


def log_ratio_to_median(values: pd.Series | np.ndarray, class_ids: pd.Series) -> np.ndarray:
    """``log((1 + x) / (1 + the class's median of x))`` per row: 0 at the median, +-0.69 at
    twice / half of it; an extreme student moves only their own value."""
    x = pd.Series(np.asarray(values, dtype=np.float64), index=class_ids.index)
    median = x.groupby(class_ids).transform("median")
    return np.log1p(x.clip(lower=0).to_numpy()) - np.log1p(median.clip(lower=0).to_numpy())


def _score_so_far(
    *, records: pd.DataFrame | None, keys: pd.MultiIndex, until: datetime
) -> np.ndarray:
    """Mean of (level - required level) over each row's assessed criterion records of work
    submitted before ``until``; 0 without any."""
    if records is None or not len(records) or "required_level" not in records.columns:
        return np.zeros(len(keys))
    rec = records
    if "submitted_at" in rec.columns:  # work handed in after the day scored is not known then
        rec = rec.loc[(as_datetimes(rec["submitted_at"]) < until).to_numpy()]
    rec = _frame(rec, ("class_id", "user_id", "level", "required_level"))
    margin = pd.to_numeric(rec["level"], errors="coerce") - pd.to_numeric(
        rec["required_level"], errors="coerce"
    )
    grouped = margin.groupby(
        [rec["class_id"].astype(np.int64), rec["user_id"].astype(np.int64)]
    ).mean()
    return grouped.reindex(keys).fillna(0.0).to_numpy(dtype=np.float64)


def _due_activities(*, acts: pd.DataFrame, until: datetime) -> pd.DataFrame:
    """The distinct (class_id, activity_id) started and due before ``until``."""
    due = as_datetimes(acts["due_date"])
    started = as_datetimes(acts["start_date"]) < until
    due_acts = acts.loc[due.notna() & (due < until) & started, ["class_id", "activity_id"]]
    return due_acts.astype(np.int64).drop_duplicates()


def _add_submission_signals(
    *,
    out: pd.DataFrame,
    submissions: pd.DataFrame | None,
    due_acts: pd.DataFrame,
    n_due: np.ndarray,
    until: datetime,
    today: int,
    keys: pd.MultiIndex,
    days_run: np.ndarray,
) -> None:
    """Days since the last submission (days run when none) and due work not handed in."""
    subs = _frame(submissions, SUBMISSION_COLUMNS)
    sub_at = as_datetimes(subs["submitted_at"])
    subs = subs.loc[sub_at < until].copy()
    subs["at"] = sub_at[sub_at < until]
    for column in ("class_id", "activity_id", "user_id"):
        subs[column] = subs[column].astype(np.int64)
    latest = subs.groupby(KEYS)["at"].max()
    latest_day = latest.reindex(keys)
    has_sub = latest_day.notna().to_numpy()
    sub_days = _day_ordinals(latest_day)
    out["days_since_last_submission"] = np.where(has_sub, np.maximum(today - sub_days, 0), days_run)
    handed = subs.merge(due_acts, on=["class_id", "activity_id"], how="inner")
    handed_count = handed.drop_duplicates([*KEYS, "activity_id"]).groupby(KEYS).size()
    handed_in = handed_count.reindex(keys).fillna(0).to_numpy()
    out["past_due_not_submitted"] = np.maximum(n_due - handed_in, 0).astype(np.float64)


def _attainment_so_far(
    *,
    records: pd.DataFrame | None,
    due_acts: pd.DataFrame,
    n_due: np.ndarray,
    keys: pd.MultiIndex,
) -> np.ndarray:
    """Mean level over each row's due activities, a missing one counting as level 1."""
    rec = _frame(records, ("class_id", "user_id", "activity_id", "level"))
    rec = rec.astype({"class_id": np.int64, "user_id": np.int64, "activity_id": np.int64})
    rec = rec.merge(due_acts, on=["class_id", "activity_id"], how="inner")
    rec["level"] = pd.to_numeric(rec["level"], errors="coerce").astype(np.float64)
    per_activity = rec.groupby([*KEYS, "activity_id"])["level"].mean()
    level_sum = per_activity.groupby(level=KEYS).sum().reindex(keys).fillna(0.0).to_numpy()
    level_n = per_activity.groupby(level=KEYS).size().reindex(keys).fillna(0).to_numpy()
    # Missing activities count as level 1.
    attainment = (level_sum + (n_due - level_n)) / np.maximum(n_due, 1)
    return np.where(n_due > 0, attainment, 0.0)


def add_signals(
    *,
    raw: pd.DataFrame,
    states: pd.DataFrame | None,
    records: pd.DataFrame | None,
    activities: pd.DataFrame | None,
    submissions: pd.DataFrame | None,
    day: date,
) -> pd.DataFrame:
    """``raw`` (the cohort's 13 raw features, one row per class_id, user_id) plus ``SIGNALS``.

    ``activities``: the classes' live activities (``ACTIVITY_COLUMNS``, naive local datetimes);
    ``submissions``: live submissions before the end of ``day`` (``SUBMISSION_COLUMNS``; only
    each student's latest per activity matters, ``lof.sources.leb2.latest_submissions``);
    ``records``: assessed records as of ``day`` (``lof.sources.leb2.assessed_records``).
    """
    out = raw.copy()
    n = len(out)
    for name in SIGNALS:
        out[name] = np.zeros(n, dtype=np.float64)
    if n == 0:
        return out
    until = _end_of(day)
    today = day.toordinal()
    keys = pd.MultiIndex.from_arrays(
        [out["class_id"].astype(np.int64), out["user_id"].astype(np.int64)]
    )
    acts = _frame(activities, ACTIVITY_COLUMNS)
    days_run = _days_run(out=out, acts=acts, today=today)
    _add_event_signals(out=out, states=states, day=day, keys=keys, days_run=days_run)

    due_acts = _due_activities(acts=acts, until=until)
    n_due = out["class_id"].map(due_acts.groupby("class_id").size()).fillna(0).to_numpy()
    _add_submission_signals(
        out=out,
        submissions=submissions,
        due_acts=due_acts,
        n_due=n_due,
        until=until,
        today=today,
        keys=keys,
        days_run=days_run,
    )
    out["attainment_so_far"] = _attainment_so_far(
        records=records, due_acts=due_acts, n_due=n_due, keys=keys
    )
    out["score_so_far"] = _score_so_far(records=records, keys=keys, until=until)
    for name in SIGNALS:
        out[name] = out[name].astype(np.float64)
    return out


def _frame(frame: pd.DataFrame | None, columns: Collection[str]) -> pd.DataFrame:
    if frame is None or len(frame) == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns}).astype(
            {c: np.int64 for c in columns if c.endswith("_id")}
        )
    return frame.loc[:, list(columns)]


def whole_period_event_signals(
    *, events_by_day: dict[date, dict[tuple[int, int], int]], day: date
) -> dict[tuple[int, int], tuple[int, float]]:
    """(last event day ordinal, events on D-6..D) per (class, user), straight from the daily
    counts of the whole period: the reference the incremental state must equal."""
    out: dict[tuple[int, int], tuple[int, float]] = {}
    for when, counts in events_by_day.items():
        for key, count in counts.items():
            if count <= 0 or when > day:
                continue
            last, recent = out.get(key, (0, 0.0))
            in_window = (day - when).days < WINDOW_DAYS
            out[key] = (max(last, when.toordinal()), recent + (count if in_window else 0))
    return out
