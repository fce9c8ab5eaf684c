"""Compact cumulative state for the features store: per-class binary blobs, deltas, checkpoints.

Why: a student's cumulative id sets grow with the semester, so storing the whole state every day
makes the store grow with days x ids. Here each day stores, per class, one blob (``S`` part)
holding only the students whose state changed since the day before, with their new counts and
the ids *added* that day; every ``CHECKPOINT_EVERY`` days a full copy of the state (``C`` part)
is stored as well, and only the latest ``CHECKPOINTS_KEPT`` checkpoints are kept. The state of
day D is the nearest checkpoint (or full blob) at or before D plus the deltas after it, applied
in order: at most ``CHECKPOINT_EVERY - 1`` deltas in the daily run, a longer walk back only when
an old day is reread after its checkpoint was pruned. Each id is thus stored about once in the
deltas plus twice in the kept checkpoints, and the store grows linearly with days.

A delta is written only when it is exact: the day before is complete, the class was in it,
every student of it is still there and no id disappeared; otherwise the class's blob is full.
Rewriting day D with a different state while D+1 holds a delta on D turns D+1's blob of that
class into a full one in the same atomic commit, so D+1 still reads as it was written.

Blob layout (little-endian): ``b"LF2"``, a flags byte (1 = full), the number k of integer
columns (u8), then zlib of: n (u32), the user ids (i64, first absolute then differences), the
integer columns (i64, n x k: the 5 counts then the early-warning event state, in
``STATE_INT_COLUMNS`` order), and per set column the lengths (u32, n) and the ids (i64, each
student's first absolute, then differences). Blobs written before the event state (``b"LF1"``,
no k byte, the 5 counts only) still decode, with 0 for the event state (no dated events).

The daily run also keeps each day it writes in a local file (``keep_states_in``, under
LOF_HOME/cache): the next day's run takes D-1 from it, with no checkpoint or delta to decode,
as long as the store still holds D-1 at the same generation; otherwise it reads the store.

Backends (``lof.stores.sql``, ``lof.stores.dynamodb``) implement ``_days``, ``_blobs`` and
``_commit``; everything else is shared here.
"""

from __future__ import annotations

import logging
import os
import pickle
import zlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType
from typing import TypeVar

import numpy as np
import pandas as pd

from lof.core.errors import StoreError
from lof.features.definitions import (
    COUNT_COLUMNS,
    SET_COLUMNS,
    STATE_INT_COLUMNS,
)
from lof.features.state import (
    ClassRows,
    as_full,
    class_rows,
    engagement_frame,
    insert_pairs,
    pair_keys,
    segment_diff,
    to_frame,
)
from lof.stores import base

try:  # ISA-L: the same zlib streams, deflated ~3x and inflated ~2x faster; zlib when missing.
    from isal import isal_zlib

    _deflate: ModuleType = isal_zlib
except ImportError:  # pragma: no cover - depends on the platform's wheels
    _deflate = zlib

log = logging.getLogger(__name__)
T = TypeVar("T")
MAGIC = b"LF2"
MAGIC_COUNTS_ONLY = b"LF1"  # before the event state: 5 count columns, no column-count byte
FULL = 1
CHECKPOINT_EVERY = 7
CHECKPOINTS_KEPT = 2
INCREMENT, STATE, CHECKPOINT = "I", "S", "C"
PARTS = (INCREMENT, STATE, CHECKPOINT)
MIGRATE_COMMAND = "lof migrate-store"
STATE_FILE_VERSION = 1
STATE_FILE_NAME = "features-state.pkl"
_NCOUNTS = len(STATE_INT_COLUMNS)


# --- the stored form of one class's rows ---------------------------------------------------


def _segment_undiff(diffs: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    if not len(diffs):
        return diffs
    total = np.cumsum(diffs)
    starts = np.concatenate(([0], np.cumsum(lengths)))[:-1][lengths > 0]
    # Each segment's running sum restarts at its first (absolute) value.
    return total - np.repeat(total[starts] - diffs[starts], lengths[lengths > 0])


def encode(rows: ClassRows) -> bytes:
    """The compact binary form of one class's rows (module docstring)."""
    parts = [
        np.uint32(rows.n).tobytes(),
        np.diff(rows.users, prepend=np.int64(0)).astype("<i8").tobytes(),
        rows.counts.astype("<i8").tobytes(),
    ]
    for lengths, values in zip(rows.lengths, rows.values, strict=True):
        parts.append(lengths.astype("<u4").tobytes())
        parts.append(segment_diff(values.astype(np.int64), lengths).astype("<i8").tobytes())
    body = _deflate.compress(b"".join(parts), 1)
    return MAGIC + bytes([FULL if rows.full else 0, rows.counts.shape[1]]) + body


def decode(blob: bytes) -> ClassRows:
    if blob[:3] == MAGIC:
        width, start = int(blob[4]), 5
    elif blob[:3] == MAGIC_COUNTS_ONLY:
        width, start = len(COUNT_COLUMNS), 4
    else:
        raise StoreError("features store blob has an unknown format; the store may be damaged")
    if width > _NCOUNTS:
        raise StoreError(
            f"features store blob has {width} integer columns, this lof knows {_NCOUNTS}; "
            "upgrade lof to read this store"
        )
    full = bool(blob[3] & FULL)
    raw = _deflate.decompress(blob[start:])
    n = int(np.frombuffer(raw, "<u4", 1, 0)[0])
    pos = 4
    users = np.cumsum(np.frombuffer(raw, "<i8", n, pos)).astype(np.int64)
    pos += 8 * n
    stored = np.frombuffer(raw, "<i8", n * width, pos).reshape(n, width)
    pos += 8 * n * width
    counts = np.zeros((n, _NCOUNTS), np.int64)
    counts[:, :width] = stored  # columns missing from an older blob: 0
    lengths, values = [], []
    for _ in SET_COLUMNS:
        ln = np.frombuffer(raw, "<u4", n, pos).astype(np.int64)
        pos += 4 * n
        total = int(ln.sum())
        diffs = np.frombuffer(raw, "<i8", total, pos)
        pos += 8 * total
        lengths.append(ln)
        values.append(_segment_undiff(diffs, ln))
    return ClassRows(users=users, counts=counts, lengths=lengths, values=values, full=full)


# --- deltas -----------------------------------------------------------------------------------


def delta(previous: ClassRows, current: ClassRows) -> ClassRows:
    """``current`` as a delta on ``previous`` when exact, else ``current`` marked full."""
    position = np.searchsorted(current.users, previous.users)
    position = np.minimum(position, max(current.n - 1, 0))
    if previous.n and (current.n == 0 or (current.users[position] != previous.users).any()):
        return as_full(current)  # a student left the class's state
    changed = np.ones(current.n, bool)
    kept = np.zeros(current.n, bool)
    kept[position[: previous.n]] = previous.n > 0
    changed[kept] = (current.counts[position] != previous.counts).any(axis=1)
    added: list[np.ndarray] = []
    for k in range(len(SET_COLUMNS)):
        prev_keys, cur_keys = pair_keys(
            position[previous.owners(k)] if previous.n else np.zeros(0, np.int64),
            previous.values[k],
            current.owners(k),
            current.values[k],
        )
        # Both key arrays are sorted (students and their ids are): a search, no set operation.
        at = np.searchsorted(cur_keys, prev_keys)
        if len(prev_keys) and (
            (at >= len(cur_keys)).any()
            or (cur_keys[np.minimum(at, len(cur_keys) - 1)] != prev_keys).any()
        ):
            return as_full(current)  # an id disappeared
        new = np.ones(len(cur_keys), bool)
        new[at] = False
        added.append(new)
        changed[current.owners(k)[new]] = True
    rows = np.flatnonzero(changed)
    lengths, values = [], []
    for k, new in enumerate(added):
        owners = current.owners(k)
        keep = new & changed[owners]
        lengths.append(np.bincount(owners[keep], minlength=current.n)[rows].astype(np.int64))
        values.append(current.values[k][keep])
    return ClassRows(
        users=current.users[rows],
        counts=current.counts[rows],
        lengths=lengths,
        values=values,
        full=False,
    )


def apply(state: ClassRows, *changes: ClassRows) -> ClassRows:
    """The state after these deltas, oldest first (a full one restarts from itself).

    All of them are merged in one pass: the latest counts of each student win, and the ids the
    deltas added (few next to the state's) are inserted into the state's sorted pairs at once.
    """
    for k, change in enumerate(changes):
        if change.full:
            return apply(as_full(change), *changes[k + 1 :])
    if not changes:
        return state
    layers = (state, *changes)
    users = np.unique(np.concatenate([r.users for r in layers]))
    counts = np.zeros((len(users), _NCOUNTS), np.int64)
    positions = [np.searchsorted(users, r.users) for r in layers]
    for rows, position in zip(layers, positions, strict=True):
        counts[position] = rows.counts
    lengths, values = [], []
    for k in range(len(SET_COLUMNS)):
        owners, merged, _, _ = insert_pairs(
            positions[0][state.owners(k)],
            state.values[k],
            np.concatenate([p[r.owners(k)] for r, p in zip(changes, positions[1:], strict=True)]),
            np.concatenate([r.values[k] for r in changes]),
        )
        lengths.append(np.bincount(owners, minlength=len(users)).astype(np.int64))
        values.append(merged)
    return ClassRows(users=users, counts=counts, lengths=lengths, values=values, full=True)


def same_rows(a: ClassRows, b: ClassRows) -> bool:
    return (
        np.array_equal(a.users, b.users)
        and np.array_equal(a.counts, b.counts)
        and all(np.array_equal(x, y) for x, y in zip(a.lengths, b.lengths, strict=True))
        and all(np.array_equal(x, y) for x, y in zip(a.values, b.values, strict=True))
    )


def without_users(rows: ClassRows, users: np.ndarray) -> ClassRows:
    """``rows`` without these (sorted) users, their counts and ids; ``rows`` itself when none
    of them is there. Every other student's values are untouched."""
    keep = ~np.isin(rows.users, users, assume_unique=True)
    if keep.all():
        return rows
    return ClassRows(
        users=rows.users[keep],
        counts=rows.counts[keep],
        lengths=[ln[keep] for ln in rows.lengths],
        values=[v[keep[rows.owners(k)]] for k, v in enumerate(rows.values)],
        full=rows.full,
    )


# --- the store logic shared by the backends ---------------------------------------------------


@dataclass
class DayMeta:
    """What a backend knows of one complete day: its classes, chain length, checkpoint."""

    day: date
    classes: tuple[int, ...]
    chain: int
    checkpoint: bool
    rows: int = 0
    stamp: str = ""  # the generation of the day's last write


@dataclass
class DayWrite:
    """Everything one day's commit stores: its blobs per (part, class) and its manifest."""

    day: date
    blobs: dict[tuple[str, int], bytes]
    classes: tuple[int, ...]
    chain: int
    checkpoint: bool
    rows: int


class CompactFeatures:
    """The features store's behaviour on top of three backend primitives."""

    # --- backend primitives (implemented by the SQL and DynamoDB stores) ----------------------

    def _days(self, *, first: date | None, last: date) -> dict[date, DayMeta]:
        """Complete days in [first, last] (first None = from the beginning)."""
        raise NotImplementedError

    def _blobs(
        self, meta: DayMeta, part: str, class_ids: Collection[int] | None
    ) -> dict[int, bytes]:
        raise NotImplementedError

    def _commit(
        self,
        writes: list[DayWrite],
        *,
        drop_checkpoints: list[DayMeta],
    ) -> dict[date, str]:
        """Atomically replace the days of ``writes`` and drop those checkpoints' C blobs;
        returns each written day's new stamp (its generation)."""
        raise NotImplementedError

    def _drop_replaced(self) -> None:
        """Delete the content of earlier writes a backend keeps for readers in flight."""
        raise NotImplementedError

    def _drop_days(self, before: date) -> None:
        """Remove every day before ``before``: blobs first, then manifests (rerun-safe)."""
        raise NotImplementedError

    # --- reads --------------------------------------------------------------------------------

    def _meta(self, day: date) -> DayMeta | None:
        return self._days(first=day, last=day).get(day)

    def _state_rows(
        self, day: date, class_ids: Collection[int] | None, meta: DayMeta | None = None
    ) -> dict[int, ClassRows]:
        """Each class's state as of ``day``: nearest checkpoint/full blob, then the deltas."""
        meta = meta if meta is not None else self._meta(day)
        if meta is None:
            return {}
        wanted = set(meta.classes) if class_ids is None else set(meta.classes) & set(class_ids)
        if not wanted:
            return {}
        cached = self._cached(meta, wanted)
        if cached is not None:
            return cached
        chain: list[dict[int, ClassRows]] = []  # newest first
        open_classes = set(wanted)
        current: DayMeta | None = meta
        window: dict[date, DayMeta] = {}
        while open_classes:
            if current is None:
                raise StoreError(
                    f"features store: the state of {base.day_key(day)} needs day "
                    "deltas that are missing; rewrite the days from the classes' first day "
                    "(lof backfill)"
                )
            found: dict[int, ClassRows] = {}
            if current.checkpoint:
                for class_id, blob in self._blobs(current, CHECKPOINT, open_classes).items():
                    found[class_id] = decode(blob)
            rest = open_classes - set(found)
            if rest:
                for class_id, blob in self._blobs(current, STATE, rest).items():
                    found[class_id] = decode(blob)
            chain.append(found)
            open_classes = {c for c in open_classes if c in found and not found[c].full}
            previous = current.day - timedelta(days=1)
            if open_classes:
                if previous not in window:
                    # Fetch the manifests the walk may need in one read.
                    window = self._days(
                        first=previous - timedelta(days=max(current.chain, 1) + 1),
                        last=previous,
                    )
                current = window.get(previous)
        layers: dict[int, list[ClassRows]] = {}
        for found in reversed(chain):
            for class_id, rows in found.items():
                if class_id in layers:
                    layers[class_id].append(rows)
                elif rows.full:
                    layers[class_id] = [rows]
        states = {c: apply(rows[0], *rows[1:]) for c, rows in layers.items()}
        out = {c: states[c] for c in sorted(wanted) if c in states}
        self._cache = (meta.day, meta.stamp, out, None if class_ids is None else set(wanted))
        return out

    def read_states(self, *, day: date, class_ids: Collection[int] | None = None) -> pd.DataFrame:
        return to_frame(self.read_state_rows(day=day, class_ids=class_ids))

    def read_state_rows(
        self, *, day: date, class_ids: Collection[int] | None = None
    ) -> dict[int, ClassRows]:
        """``read_states`` as per-class arrays, for ``accumulate`` (no per-student tuples)."""
        if class_ids is not None and len(class_ids) == 0:
            return {}
        wanted = None if class_ids is None else {int(c) for c in class_ids}
        return self._guarded(lambda: self._state_rows(day, wanted), "reading states")

    def read_increments(
        self, *, day: date, class_ids: Collection[int] | None = None
    ) -> pd.DataFrame:
        if class_ids is not None and len(class_ids) == 0:
            return engagement_frame([])
        wanted = None if class_ids is None else {int(c) for c in class_ids}

        def read() -> dict[int, ClassRows]:
            meta = self._meta(day)
            if meta is None:
                return {}
            return {c: decode(b) for c, b in self._blobs(meta, INCREMENT, wanted).items()}

        return to_frame(self._guarded(read, "reading increments"))

    def last_complete_day(self) -> date | None:
        raise NotImplementedError

    def is_complete(self, *, day: date) -> bool:
        return self._guarded(lambda: self._meta(day), "reading the day manifest") is not None

    # --- the write ----------------------------------------------------------------------------

    def write_day(
        self,
        *,
        day: date,
        increments: pd.DataFrame | Mapping[int, ClassRows],
        states: pd.DataFrame | Mapping[int, ClassRows],
    ) -> None:
        """Replace day ``day`` (increments and states) and mark it complete, atomically.

        Each is an engagement frame or per-class arrays (``split_frame``, ``accumulate``).
        """
        key = base.day_key(day)
        new_increments = class_rows(increments, what=f"features increments of {key}")
        new_states = class_rows(states, what=f"features states of {key}")
        self._guarded(
            lambda: self._write(day, new_increments, new_states),
            f"writing features of {key}",
        )

    def _write(
        self,
        day: date,
        increments: dict[int, ClassRows],
        states: dict[int, ClassRows],
    ) -> None:
        near = self._days(first=day - timedelta(days=1), last=day + timedelta(days=1))
        before, old, after = (near.get(day + timedelta(days=d)) for d in (-1, 0, 1))
        previous = self._state_rows(day - timedelta(days=1), states, before) if before else {}
        blobs: dict[tuple[str, int], bytes] = {}
        for class_id, rows in increments.items():
            blobs[INCREMENT, class_id] = encode(rows)
        chain = (before.chain + 1) if before is not None else 0
        for class_id, rows in states.items():
            if class_id not in previous:
                change = rows
            elif rows.since is not None and rows.since[0]() is previous[class_id]:
                change = rows.since[1]  # accumulated on the very state stored for D-1
            else:
                change = delta(previous[class_id], rows)
            blobs[STATE, class_id] = encode(change)
        every = self._days(first=None, last=date.max)
        kept = sorted(m.day for m in every.values() if m.checkpoint and m.day != day)
        newer = [d for d in kept if d > day]
        checkpoint = chain >= CHECKPOINT_EVERY and len(newer) < CHECKPOINTS_KEPT
        if checkpoint:
            for class_id, rows in states.items():
                blobs[CHECKPOINT, class_id] = encode(rows)
            chain = 0
            kept = sorted([*kept, day])
        drop = [every[d] for d in kept[:-CHECKPOINTS_KEPT] if d != day]
        rows_total = sum(r.n for r in increments.values()) + sum(r.n for r in states.values())
        writes = [
            DayWrite(
                day=day,
                blobs=blobs,
                classes=tuple(sorted(states)),
                chain=chain,
                checkpoint=checkpoint,
                rows=rows_total,
            )
        ]
        if old is not None and after is not None:
            fixed = self._fix_next_day(old, after, states)
            if fixed is not None:
                writes.append(fixed)
        stamps = self._commit(writes, drop_checkpoints=drop)
        self._cache = (day, stamps[day], states, None)
        self._save_state(day, stamps[day], states)

    def _fix_next_day(
        self, old: DayMeta, after: DayMeta, states: dict[int, ClassRows]
    ) -> DayWrite | None:
        """D+1's blobs, with full ones for the classes whose delta was on D's old state."""
        next_blobs = self._blobs(after, STATE, None)
        deltas = {c for c, b in next_blobs.items() if not (b[3] & FULL)}
        if not deltas:
            return None
        old_states = self._state_rows(old.day, deltas, old)
        changed = {c for c in deltas if c not in states or not same_rows(old_states[c], states[c])}
        if not changed:
            return None
        next_states = self._state_rows(after.day, changed, after)
        blobs: dict[tuple[str, int], bytes] = {}
        for part in PARTS:
            if part == CHECKPOINT and not after.checkpoint:
                continue
            stored = next_blobs if part == STATE else self._blobs(after, part, None)
            for class_id, blob in stored.items():
                blobs[part, class_id] = blob
        for class_id in changed:
            blobs[STATE, class_id] = encode(next_states[class_id])
        return DayWrite(
            day=after.day,
            blobs=blobs,
            classes=after.classes,
            chain=after.chain,
            checkpoint=after.checkpoint,
            rows=after.rows,
        )

    # --- erasure and retention ------------------------------------------------------------------

    def _day_blobs(self, meta: DayMeta) -> dict[tuple[str, int], bytes]:
        return {
            (part, class_id): blob
            for part in PARTS
            if part != CHECKPOINT or meta.checkpoint
            for class_id, blob in self._blobs(meta, part, None).items()
        }

    def erase_users(self, user_ids: Collection[int]) -> int:
        """Remove these students from every blob of every day: a day holding one of them is
        rewritten whole, atomically; blobs without them keep their bytes and every other
        student's values are unchanged (a delta minus a student still applies exactly to a
        state minus that student). Returns the student rows removed; a rerun removes none."""
        users = np.unique(np.fromiter((int(u) for u in user_ids), np.int64))

        def run() -> int:
            removed = 0
            every = self._days(first=None, last=date.max)
            for day in sorted(every):
                meta = every[day]
                blobs = self._day_blobs(meta)
                gone = 0
                for key, blob in blobs.items():
                    rows = decode(blob)
                    kept = without_users(rows, users)
                    if kept is not rows:
                        blobs[key] = encode(kept)
                        gone += rows.n - kept.n
                if gone:
                    write = DayWrite(
                        day=day,
                        blobs=blobs,
                        classes=meta.classes,
                        chain=meta.chain,
                        checkpoint=meta.checkpoint,
                        rows=max(meta.rows - gone, 0),
                    )
                    self._commit([write], drop_checkpoints=[])
                    removed += gone
            self._drop_replaced()  # the rewritten days' former content, and any older one
            self._cache = None
            return removed

        return self._guarded(run, "erasing students from the features store")

    def purge_before(self, cut: date) -> int:
        """Remove the days before ``cut``; returns how many.

        The next run must still build on the days kept, so the first day kept is re-based
        first: its state blobs become the full state (as a checkpoint is), its chain 0, so
        neither it nor a later day walks back past it. The latest complete day is always kept,
        even when it is older than the cut: it is the state the next run adds to.
        """

        def run() -> int:
            every = self._days(first=None, last=date.max)
            if not every:
                return 0
            first = min([d for d in every if d >= cut] or [max(every)])
            old = [d for d in every if d < first]
            if not old:
                return 0
            meta = every[first]
            blobs = self._day_blobs(meta)
            states = [b for (part, _), b in blobs.items() if part == STATE]
            if not (meta.checkpoint or all(b[3] & FULL for b in states)):
                for class_id, rows in self._state_rows(first, None, meta).items():
                    blobs[STATE, class_id] = encode(as_full(rows))
                write = DayWrite(
                    day=first,
                    blobs=blobs,
                    classes=meta.classes,
                    chain=0,
                    checkpoint=False,
                    rows=meta.rows,
                )
                self._commit([write], drop_checkpoints=[])
            self._drop_days(first)
            self._drop_replaced()  # the first day's former generation among them
            self._cache = None
            return len(old)

        return self._guarded(run, "purging the features store")

    # --- a one-entry cache: the daily run reads D-1's state, then writes D on top of it --------

    _cache: tuple[date, str, dict[int, ClassRows], set[int] | None] | None = None

    def _cached(self, meta: DayMeta, wanted: set[int]) -> dict[int, ClassRows] | None:
        """The state this process last read or wrote, if that day's generation is unchanged;
        else the one the last write left in ``state_file``, on the same condition."""
        if self._cache is None or self._cache[:2] != (meta.day, meta.stamp):
            self._load_state(meta)
        if self._cache is None:
            return None
        day, stamp, rows, known = self._cache
        if day != meta.day or stamp != meta.stamp or not (known is None or wanted <= known):
            return None
        return {c: rows[c] for c in sorted(wanted) if c in rows}

    # --- the last written state on local disk, for the next run's read of D-1 ----------------

    state_file: Path | None = None
    """Set by ``keep_states_in``. Why: the daily run is a new process each day; reading
    yesterday's state back from this file costs a copy of its arrays, where the store costs
    decoding a checkpoint and its deltas, which grow with the semester."""

    def keep_states_in(self, folder: Path) -> None:
        """Keep the state of each day written in ``folder``. The file is used only while the
        store holds that day at the same generation (a stamp unique to each write of a day),
        so another writer or another store can never make it stale."""
        self.state_file = Path(folder) / STATE_FILE_NAME

    def _save_state(self, day: date, stamp: str, states: dict[int, ClassRows]) -> None:
        if self.state_file is None:
            return
        arrays = {c: (r.users, r.counts, r.lengths, r.values) for c, r in states.items()}
        temporary = self.state_file.with_suffix(f".{os.getpid()}.tmp")
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            with temporary.open("wb") as handle:
                # The day first, so a reader looking for another day stops after a few bytes.
                pickle.dump((STATE_FILE_VERSION, day, stamp), handle, protocol=5)
                pickle.dump(arrays, handle, protocol=5)
            os.replace(temporary, self.state_file)
        except OSError as exc:  # the next run then reads the store, nothing else is lost
            log.warning("cannot keep the features state in %s: %s", self.state_file, exc)

    def _load_state(self, meta: DayMeta) -> None:
        if self.state_file is None or not self.state_file.exists():
            return
        try:
            with self.state_file.open("rb") as handle:  # lof's own file, under LOF_HOME
                if pickle.load(handle) != (STATE_FILE_VERSION, meta.day, meta.stamp):
                    return  # another day, or the day was written again since
                arrays = pickle.load(handle)
            rows = {c: ClassRows(*parts) for c, parts in arrays.items()}
        except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError):
            log.warning("ignoring unreadable features state file %s", self.state_file)
            return
        self._cache = (meta.day, meta.stamp, rows, None)

    def _guarded(self, fn: Callable[[], T], what: str) -> T:
        """Run ``fn`` with the backend's retries and one-line errors."""
        raise NotImplementedError
