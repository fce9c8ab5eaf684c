"""The daily state update: yesterday's cumulative state plus today's increment, as arrays.

A class's engagement rows are kept as arrays (``ClassRows``: users sorted, the integer columns,
the id sets as lengths and values), so the daily run never turns the state's ids into
per-student tuples and back, and its cost follows the day's ids rather than the semester's.
``accumulate`` is lof's one state update (counts add up, the event states merge, the id sets
are unioned), for the daily run and the training set alike (``accumulate_frames`` takes and
gives engagement frames); ``summary_frame`` is what the features and signals read of a state.
The features store keeps ``ClassRows`` as they are (``lof.stores.compact``). Pure functions: no
I/O. May import ``lof.core`` and the rest of ``lof.features``.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lof.core.errors import DataError
from lof.features.definitions import (
    DISTINCT_COUNTS,
    ENGAGEMENT_COLUMNS,
    SET_COLUMNS,
    STATE_INT_COLUMNS,
    sorted_ids,
)
from lof.features.signals import EVENT_STATE_COLUMNS, merge_event_state

_NCOUNTS = len(STATE_INT_COLUMNS)
_EVENT = [STATE_INT_COLUMNS.index(c) for c in EVENT_STATE_COLUMNS]


def engagement_frame(rows: Iterable[Mapping[str, int | Iterable[int]]]) -> pd.DataFrame:
    """The engagement frame of ``lof.features.definitions`` (sorted by class_id, user_id) from
    plain rows (a store's, or none)."""
    rows = sorted(rows, key=lambda r: (r["class_id"], r["user_id"]))
    data: dict[str, pd.Series] = {}
    for c in ("class_id", "user_id", *STATE_INT_COLUMNS):
        data[c] = pd.Series([r.get(c, 0) for r in rows], dtype="int64")
    for c in SET_COLUMNS:
        data[c] = pd.Series([_id_tuple(r[c], column=c) for r in rows], dtype=object)
    return pd.DataFrame(data, columns=list(ENGAGEMENT_COLUMNS))


def _id_tuple(value: int | Iterable[int], *, column: str) -> tuple[int, ...]:
    if isinstance(value, int):
        raise DataError(f"column {column} holds the number {value}; expected a tuple of ids")
    return tuple(value)


def segment_diff(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    out = np.diff(values, prepend=np.int64(0)) if len(values) else values.copy()
    if len(values):
        starts = np.concatenate(([0], np.cumsum(lengths)))[:-1][lengths > 0]
        out[starts] = values[starts]
    return out


def as_full(rows: ClassRows) -> ClassRows:
    return ClassRows(rows.users, rows.counts, rows.lengths, rows.values, full=True)


def pair_keys(
    owners_a: np.ndarray, values_a: np.ndarray, owners_b: np.ndarray, values_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(owner, id) pairs of two sides as int64 keys ordered like the pairs: owner in the high
    bits when the ids allow (no sort needed), else ids ranked over both sides first."""
    values = (values_a, values_b)
    top = max((int(v.max()) for v in values if len(v)), default=0)
    low = min((int(v.min()) for v in values if len(v)), default=0)
    owners = max((int(o.max()) for o in (owners_a, owners_b) if len(o)), default=0)
    shift = max(top.bit_length(), 1)
    if low >= 0 and shift + owners.bit_length() <= 62:
        return (owners_a << shift) | values_a, (owners_b << shift) | values_b
    universe = np.unique(np.concatenate(values))
    width = np.int64(len(universe) + 1)
    return (
        owners_a * width + np.searchsorted(universe, values_a),
        owners_b * width + np.searchsorted(universe, values_b),
    )


# --- one class's engagement rows as arrays ----------------------------------------------------


@dataclass
class ClassRows:
    """One class's engagement rows: users sorted, integer columns (n x ``STATE_INT_COLUMNS``:
    counts and event state), per set lengths and ids."""

    users: np.ndarray
    counts: np.ndarray
    lengths: list[np.ndarray]
    values: list[np.ndarray]
    full: bool = True
    since: tuple[weakref.ref[ClassRows], ClassRows] | None = field(
        default=None, repr=False, compare=False
    )
    """Set by ``accumulate``: (a weak reference to the state these rows grew from, the delta on
    it), so a write on top of that very state takes the delta instead of searching the whole
    state for it. Weak, so a run of days does not keep every earlier state alive."""

    @property
    def n(self) -> int:
        return len(self.users)

    def owners(self, k: int) -> np.ndarray:
        """The row index of each id of set column ``k``."""
        return np.repeat(np.arange(self.n), self.lengths[k])


# --- frames <-> arrays ------------------------------------------------------------------------


def split_frame(frame: pd.DataFrame, *, what: str) -> dict[int, ClassRows]:
    """Validate an engagement frame once and split it into per-class arrays (a frame without
    the early-warning event state has no dated events: 0)."""
    frame = frame.assign(**{c: 0 for c in EVENT_STATE_COLUMNS if c not in frame.columns})
    missing = [c for c in ENGAGEMENT_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"{what} lacks column(s) {', '.join(missing)}; expected {', '.join(ENGAGEMENT_COLUMNS)}"
        )
    if len(frame) == 0:
        return {}
    try:
        keys = frame[["class_id", "user_id"]].to_numpy(dtype=np.int64)
        counts = frame[list(STATE_INT_COLUMNS)].to_numpy(dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(
            f"{what} has a non-integer id or count; build it with lof.features"
        ) from None
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    keys, counts = keys[order], counts[order]
    same = (np.diff(keys[:, 0]) == 0) & (np.diff(keys[:, 1]) == 0)
    if same.any():
        first = dict(zip(("class_id", "user_id"), keys[1:][same][0].tolist(), strict=True))
        raise DataError(
            f"{what} has {int(same.sum()) + 1} rows sharing a key, e.g. {first}; "
            "expected one row per class_id, user_id"
        )
    sets: list[tuple[np.ndarray, np.ndarray]] = []
    for column in SET_COLUMNS:
        cells = frame[column].tolist()
        cells = [cells[i] for i in order]
        tuples = []
        for cell in cells:
            if not (isinstance(cell, tuple) and (not cell or type(cell[0]) is int)):
                try:
                    cell = sorted_ids(cell)
                except (TypeError, ValueError):
                    raise DataError(
                        f"{what}: column {column} holds {cell!r}, expected a tuple of ints; "
                        "build the frame with lof.features"
                    ) from None
            tuples.append(cell)
        lengths = np.fromiter(map(len, tuples), np.int64, len(tuples))
        values = np.fromiter(itertools.chain.from_iterable(tuples), np.int64, int(lengths.sum()))
        diffs = segment_diff(values, lengths)
        starts = np.concatenate(([0], np.cumsum(lengths)))[:-1][lengths > 0]
        inner = np.ones(len(values), bool)
        inner[starts] = False
        if (diffs[inner] <= 0).any():
            # Unsorted or repeated ids: normalise those cells (rare: lof builds sorted tuples).
            tuples = [sorted_ids(t) for t in tuples]
            lengths = np.fromiter(map(len, tuples), np.int64, len(tuples))
            values = np.fromiter(
                itertools.chain.from_iterable(tuples), np.int64, int(lengths.sum())
            )
        sets.append((lengths, values))
    out: dict[int, ClassRows] = {}
    bounds = np.flatnonzero(np.diff(keys[:, 0])) + 1
    edges = [0, *bounds.tolist(), len(keys)]
    value_edges = [np.concatenate(([0], np.cumsum(ln))) for ln, _ in sets]
    for a, b in itertools.pairwise(edges):
        out[int(keys[a, 0])] = ClassRows(
            users=keys[a:b, 1].copy(),
            counts=counts[a:b].copy(),
            lengths=[ln[a:b].copy() for ln, _ in sets],
            values=[v[ve[a] : ve[b]].copy() for (_, v), ve in zip(sets, value_edges, strict=True)],
        )
    return out


def class_rows(given: pd.DataFrame | Mapping[int, ClassRows], *, what: str) -> dict[int, ClassRows]:
    if isinstance(given, pd.DataFrame):
        return split_frame(given, what=what)
    return {int(c): _checked(rows, what=what) for c, rows in given.items()}


def _checked(rows: ClassRows, *, what: str) -> ClassRows:
    """Arrays handed to a write have the shapes ``encode`` relies on (lof builds them so)."""
    if (
        not isinstance(rows, ClassRows)
        or rows.counts.shape != (rows.n, _NCOUNTS)
        or len(rows.lengths) != len(SET_COLUMNS)
        or len(rows.values) != len(SET_COLUMNS)
        or any(len(ln) != rows.n for ln in rows.lengths)
        or [int(ln.sum()) for ln in rows.lengths] != [len(v) for v in rows.values]
        or (rows.n > 1 and bool((np.diff(rows.users) <= 0).any()))
    ):
        raise DataError(
            f"{what}: malformed class arrays; build them with lof.stores.compact "
            "(split_frame, accumulate)"
        )
    return rows if rows.full else as_full(rows)


def _integer_columns(classes: Mapping[int, ClassRows]) -> dict[str, np.ndarray | pd.Series]:
    """class_id, user_id and the ``STATE_INT_COLUMNS`` of all classes, sorted by class."""
    ids = sorted(classes)
    chosen = [classes[c] for c in ids]
    data: dict[str, np.ndarray | pd.Series] = {
        "class_id": np.concatenate(
            [np.zeros(0, np.int64)]
            + [np.full(r.n, c, np.int64) for c, r in zip(ids, chosen, strict=True)]
        ),
        "user_id": np.concatenate([np.zeros(0, np.int64)] + [r.users for r in chosen]),
    }
    counts = np.concatenate([np.zeros((0, _NCOUNTS), np.int64)] + [r.counts for r in chosen])
    for i, column in enumerate(STATE_INT_COLUMNS):
        data[column] = counts[:, i].astype(np.int64)
    return data


def to_frame(classes: Mapping[int, ClassRows]) -> pd.DataFrame:
    """The engagement frame (sorted by class_id, user_id; sets as sorted tuples)."""
    if not classes:
        return engagement_frame([])
    chosen = [classes[c] for c in sorted(classes)]
    data = _integer_columns(classes)
    for k, column in enumerate(SET_COLUMNS):
        cells: list[tuple[int, ...]] = []
        for rows in chosen:
            listed = rows.values[k].tolist()
            edges = np.concatenate(([0], np.cumsum(rows.lengths[k]))).tolist()
            cells.extend(tuple(listed[a:b]) for a, b in itertools.pairwise(edges))
        column_values = np.empty(len(cells), dtype=object)
        for i, cell in enumerate(cells):
            column_values[i] = cell
        data[column] = pd.Series(column_values, dtype=object)
    return pd.DataFrame(data, columns=list(ENGAGEMENT_COLUMNS))


def accumulate(
    previous: Mapping[int, ClassRows], increment: Mapping[int, ClassRows]
) -> dict[int, ClassRows]:
    """Yesterday's cumulative state plus today's increment -> today's state, per class.

    Distinct counts over the whole period come out exactly as if computed at once
    (docs/domain.md §2.3), whatever the split into days. Why arrays: the daily run never turns
    the state's ids into per-student tuples (and back), so its cost follows the day's ids
    rather than the semester's. Counts add up, the event states merge as
    ``lof.features.signals.merge_event_state`` does, the id sets are unioned by one merge of
    two sorted arrays per set column.
    """
    out: dict[int, ClassRows] = {}
    for class_id in sorted(set(previous) | set(increment)):
        before, today = previous.get(class_id), increment.get(class_id)
        if today is None or today.n == 0:
            if before is not None:
                out[class_id] = _unchanged(before)
            continue
        out[class_id] = _accumulate_class(before if before is not None else _no_rows(), today)
    return out


def accumulate_frames(
    *, previous: pd.DataFrame | None, increment: pd.DataFrame | None
) -> pd.DataFrame:
    """``accumulate`` on engagement frames (sorted by class_id, user_id; sets as sorted tuples)."""
    before = split_frame(previous, what="the previous state") if previous is not None else {}
    today = split_frame(increment, what="the increment") if increment is not None else {}
    return to_frame(accumulate(before, today))


def _unchanged(before: ClassRows) -> ClassRows:
    """``before`` as today's full state, its delta on ``before`` empty."""
    nothing = _no_rows()
    nothing.full = False
    return ClassRows(
        before.users,
        before.counts,
        before.lengths,
        before.values,
        since=(weakref.ref(before), nothing),
    )


def _no_rows() -> ClassRows:
    empty = np.zeros(0, np.int64)
    return ClassRows(
        users=empty,
        counts=np.zeros((0, _NCOUNTS), np.int64),
        lengths=[empty for _ in SET_COLUMNS],
        values=[empty for _ in SET_COLUMNS],
    )


def _accumulate_class(before: ClassRows, today: ClassRows) -> ClassRows:
    users = np.union1d(before.users, today.users)
    at_before = np.searchsorted(users, before.users)
    at_today = np.searchsorted(users, today.users)
    sides = []
    for rows, at in ((before, at_before), (today, at_today)):
        spread = np.zeros((len(users), _NCOUNTS), np.int64)
        spread[at] = rows.counts
        sides.append(spread)
    counts = sides[0] + sides[1]  # the counts add up; the event state merges instead
    counts[:, _EVENT] = merge_event_state(sides[0][:, _EVENT], sides[1][:, _EVENT])
    # What ``delta`` would find: students whose counts changed or who have new ids.
    changed = np.zeros(len(users), bool)
    changed[at_today] = (counts[at_today] != sides[0][at_today]).any(axis=1)
    changed[at_today[~np.isin(today.users, before.users)]] = True
    lengths, values, added = [], [], []
    for k in range(len(SET_COLUMNS)):
        owners, merged, new_owners, new_values = insert_pairs(
            at_before[before.owners(k)],
            before.values[k],
            at_today[today.owners(k)],
            today.values[k],
        )
        values.append(merged)
        lengths.append(np.bincount(owners, minlength=len(users)).astype(np.int64))
        changed[new_owners] = True
        added.append((new_owners, new_values))
    touched = np.flatnonzero(changed)
    change = ClassRows(
        users=users[touched],
        counts=counts[touched],
        lengths=[np.bincount(o, minlength=len(users))[touched].astype(np.int64) for o, _ in added],
        values=[v for _, v in added],
        full=False,
    )
    return ClassRows(users, counts, lengths, values, full=True, since=(weakref.ref(before), change))


def insert_pairs(
    owners: np.ndarray, values: np.ndarray, more_owners: np.ndarray, more_values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The (owner, id) pairs of one side (sorted by owner then id, each once) with those of
    ``more`` that it lacks inserted in place; also the inserted ones, in that order.

    Why: the other side is a day's ids, small next to a semester's state, so a search and
    one insertion cost less than sorting everything again.
    """
    keys, more_keys = pair_keys(owners, values, more_owners, more_values)
    order = np.argsort(more_keys, kind="stable")
    more_keys, more_owners, more_values = more_keys[order], more_owners[order], more_values[order]
    new = np.ones(len(more_keys), bool)
    new[1:] = more_keys[1:] != more_keys[:-1]
    at = np.searchsorted(keys, more_keys)
    inside = at < len(keys)
    new[inside] &= keys[at[inside]] != more_keys[inside]
    at, more_owners, more_values = at[new], more_owners[new], more_values[new]
    return (
        np.insert(owners, at, more_owners),
        np.insert(values, at, more_values),
        more_owners,
        more_values,
    )


def summary_frame(classes: Mapping[int, ClassRows]) -> pd.DataFrame:
    """What the features and signals read of a state, without its ids: class_id, user_id, the
    integer columns and the distinct counts (``lof.features.definitions.DISTINCT_COUNTS``),
    sorted."""
    chosen = [classes[c] for c in sorted(classes)]
    data = _integer_columns(classes)
    for name, column in DISTINCT_COUNTS:
        k = SET_COLUMNS.index(column)
        data[name] = np.concatenate(
            [np.zeros(0, np.int64)] + [r.lengths[k] for r in chosen]
        ).astype(np.float64)
    return pd.DataFrame(data)
