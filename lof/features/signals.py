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

Event signals come from the cumulative engagement state: besides the counts and id sets, each
row keeps ``last_event_day`` (the ordinal of its last day with a counted event, 0 = none) and
``recent_0..recent_6`` (counted events on that day and the 6 days before it). A day's increment
is stamped with its day (``stamp_increment``); merging two such rows (``merge_recent``) aligns
both windows on the later day, so the state after any split of the period into days equals
the state of the whole period at once. A student without events today keeps their row as it
was; the window is read against D only when the signals are computed.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime, time, timedelta

import numpy as np
import pandas as pd

WINDOW_DAYS = 7
RECENT_COLUMNS: tuple[str, ...] = tuple(f"recent_{k}" for k in range(WINDOW_DAYS))
EVENT_STATE_COLUMNS: tuple[str, ...] = ("last_event_day", *RECENT_COLUMNS)

SIGNALS: tuple[str, ...] = (
    "attainment_so_far",
    "past_due_not_submitted",
    "days_since_last_event",
    "days_since_last_submission",
    "events_last_7d",
    "window_elapsed",
)
UNSCALED_SIGNALS: frozenset[str] = frozenset({"attainment_so_far", "window_elapsed"})
"""Signals the model takes as they are: already on a scale shared by every class (levels,
share of the course). The others are min-max scaled within the class's cohort like the 13."""
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
    return out


def merge_recent(
    *, last_a: np.ndarray, recent_a: np.ndarray, last_b: np.ndarray, recent_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Two rows' event states combined: both windows shifted to the later last day and added.

    ``last_*`` are (n,) int arrays (0 = no events), ``recent_*`` (n, 7) int arrays, column k
    = events k days before the row's last day. Symmetric and associative, so any split into
    days gives the whole period's state.
    """
    last = np.maximum(last_a, last_b)
    out = np.zeros_like(recent_a)
    for last_x, recent_x in ((last_a, recent_a), (last_b, recent_b)):
        shift = last - last_x
        for k in range(WINDOW_DAYS):
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
    """class_id, user_id, last_event_day and events_last_7d of cumulative states as of ``day``."""
    last, recent = _event_state(states)
    age = day.toordinal() - last
    keep = np.arange(WINDOW_DAYS)[None, :] <= (WINDOW_DAYS - 1 - age)[:, None]
    counts = np.where(keep & (last[:, None] > 0), recent, 0).sum(axis=1)
    return pd.DataFrame(
        {
            "class_id": states["class_id"].astype(np.int64).to_numpy(),
            "user_id": states["user_id"].astype(np.int64).to_numpy(),
            "last_event_day": last,
            "events_last_7d": counts.astype(np.float64),
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
    """Events: days since the last one (days run when none), events in the last 7 days."""
    if states is None or not len(states):
        out["days_since_last_event"] = days_run
        return
    ev = event_signals(states=states, day=day).set_index(KEYS)
    found = ev.reindex(keys)
    seen = found["last_event_day"].fillna(0).to_numpy() > 0
    since = day.toordinal() - found["last_event_day"].fillna(0).to_numpy()
    out["days_since_last_event"] = np.where(seen, np.maximum(since, 0), days_run)
    out["events_last_7d"] = found["events_last_7d"].fillna(0.0).to_numpy()


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
