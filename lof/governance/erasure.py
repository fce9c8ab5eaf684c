"""Erasure, opt-out and retention of student data: what ``lof forget``, ``lof opt-out``,
``lof opt-in``, ``lof purge`` and the daily run's retention do, as plain functions.

Forget, in this order, so that an interruption anywhere is finished by running it again:

1. the students go on the opt-out list and an erasure entry is recorded (when, how many ids,
   their pseudonyms), so no run from now on brings them back;
2. each store is erased in turn (``FORGET_STEPS``): predictions and their class-day bodies,
   teachers' feedback, the features store, lof's files under LOF_HOME/cache; each step is
   idempotent and its count is added to the entry as soon as it is done;
3. the entry is marked finished.

Opt-out removes what is shown of a student (predictions, bodies, feedback) and keeps them out
of every later run; forget removes everything. Neither runs as a Prefect flow: a flow run's
parameters would keep the very ids being erased in Prefect's database.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Protocol

from lof.core.config import Settings
from lof.core.errors import DataError
from lof.governance import pseudonyms
from lof.sources import assessed_cache
from lof.stores import compact, open_feature_store, open_prediction_store
from lof.stores.access_log import open_access_log
from lof.stores.feedback import open_feedback_store
from lof.stores.interventions import open_intervention_store
from lof.stores.privacy import PrivacyStore, new_erasure, open_privacy_store

MAX_IDS = 1000
MAX_ID = 2**63 - 1
Progress = Callable[[str, int], None]


def check_user_ids(values: Sequence[object], *, option: str = "--user-id") -> list[int]:
    """The distinct positive integer ids of ``values`` (at most ``MAX_IDS``), or a DataError
    naming the first bad one."""
    if not values:
        raise DataError(f"give at least one {option} ID")
    if len(values) > MAX_IDS:
        raise DataError(f"{len(values)} {option} values; give at most {MAX_IDS} per command")
    ids = []
    for value in values:
        text = str(value).strip()
        number = int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else 0
        if not 0 < number <= MAX_ID:
            raise DataError(
                f"{option} {str(value)[:40]!r} is not a LEB2 user id; expected a positive "
                "integer, e.g. 4501"
            )
        ids.append(number)
    return sorted(set(ids))


@dataclass
class Removed:
    """What one command removed, per store, in the order it went."""

    counts: dict[str, int] = field(default_factory=dict)
    note: str = ""

    def lines(self) -> list[str]:
        return [f"{name}: {count} removed" for name, count in self.counts.items()]


# --- the stores a student is erased from ------------------------------------------------------


def erase_predictions(
    settings: Settings,
    user_ids: Collection[int],
    names: pseudonyms.Pseudonyms,
    privacy: PrivacyStore,
) -> int:
    """Their predictions and the class-day bodies holding them. Each class-day they leave is
    first recorded as one more student the class page does not show."""
    store = open_prediction_store(settings.store_url)
    try:
        held = store.user_class_days(user_ids)
        privacy.add_hidden((class_id, day, names.of(user)) for user, class_id, day in held)
        return int(store.erase_users(user_ids))
    finally:
        getattr(store, "close", lambda: None)()


def erase_feedback(settings: Settings, user_ids: Collection[int], *_: object) -> int:
    store = open_feedback_store(settings.store_url)
    try:
        return store.erase_users(user_ids)
    finally:
        store.close()


def erase_interventions(settings: Settings, user_ids: Collection[int], *_: object) -> int:
    store = open_intervention_store(settings.store_url)
    try:
        return store.erase_users(user_ids)
    finally:
        store.close()


def erase_features(settings: Settings, user_ids: Collection[int], *_: object) -> int:
    store = open_feature_store(settings.store_url)
    try:
        return int(store.erase_users(user_ids))
    finally:
        getattr(store, "close", lambda: None)()


def erase_local_files(settings: Settings, *_: object) -> int:
    """lof's per-student files under LOF_HOME/cache: the last written features state and the
    LEB2 assessed-records caches (the next run reads the store and LEB2 in full once)."""
    state = Path(settings.home) / "cache" / compact.STATE_FILE_NAME
    removed = 0
    if state.exists():
        state.unlink()
        removed = 1
    return removed + assessed_cache.remove_caches(settings.home)


Step = Callable[[Settings, Collection[int], pseudonyms.Pseudonyms, PrivacyStore], int]
FORGET_STEPS: tuple[tuple[str, Step], ...] = (
    ("predictions", erase_predictions),
    ("feedback", erase_feedback),
    ("interventions", erase_interventions),
    ("features", erase_features),
    ("local files", erase_local_files),
)
OPT_OUT_STEPS = FORGET_STEPS[:2]


def _run_steps(
    steps: Iterable[tuple[str, Step]],
    *,
    settings: Settings,
    user_ids: Collection[int],
    names: pseudonyms.Pseudonyms,
    privacy: PrivacyStore,
    removed: Removed,
    after_step: Callable[[], None] | None = None,
    progress: Progress | None = None,
) -> None:
    for name, step in steps:
        count = step(settings, user_ids, names, privacy)
        removed.counts[name] = removed.counts.get(name, 0) + count
        if after_step is not None:
            after_step()
        if progress is not None:
            progress(name, count)


def _privacy(
    settings: Settings, *, what: str, record: bool = True
) -> tuple[pseudonyms.Pseudonyms, PrivacyStore]:
    """The pseudonyms (ConfigError without the secret) and the privacy records, the secret
    checked against the one the list was recorded under (``record``: and recorded if none
    was, before the first record is written)."""
    names = pseudonyms.required(settings, what=what)
    privacy = open_privacy_store(settings.store_url)
    try:
        privacy.check_secret(names.fingerprint(), record=record)
    except Exception:
        privacy.close()
        raise
    return names, privacy


def forget(
    settings: Settings, user_ids: Collection[int], *, progress: Progress | None = None
) -> Removed:
    """Erase these students from every store lof writes (module docstring for the order)."""
    names, privacy = _privacy(settings, what="lof forget")
    try:
        hashes = [names.of(u) for u in user_ids]
        entry = privacy.start_erasure(new_erasure(hashes))
        privacy.opt_out(hashes, reason="forget")
        removed = Removed(counts=dict(entry.removed))
        if entry.done:
            removed.note = f"erasure {entry.id} was finished on {entry.finished_at}; checked again"
        elif entry.removed:
            removed.note = f"erasure {entry.id} started on {entry.started_at} is finished now"
        done = {name for name in entry.removed}

        def save() -> None:
            privacy.record_erasure(entry.id, removed=removed.counts, finished=False)

        pending = [(n, s) for n, s in FORGET_STEPS if n not in done or entry.done]
        _run_steps(
            pending,
            settings=settings,
            user_ids=user_ids,
            names=names,
            privacy=privacy,
            removed=removed,
            after_step=save,
            progress=progress,
        )
        # a finished entry checked again keeps the day it was finished
        privacy.record_erasure(entry.id, removed=removed.counts, finished=not entry.done)
        removed.note = removed.note or f"erasure {entry.id} recorded ({len(hashes)} id(s))"
        return removed
    finally:
        privacy.close()


def opt_out(
    settings: Settings, user_ids: Collection[int], *, progress: Progress | None = None
) -> Removed:
    """Put these students on the opt-out list, then remove what is shown of them (their
    predictions, class-day bodies and feedback). Their features stay until forget or the
    retention period; no later run adds to them."""
    names, privacy = _privacy(settings, what="an opt-out")
    try:
        added = privacy.opt_out([names.of(u) for u in user_ids], reason="opt-out")
        removed = Removed(note=f"{added} newly opted out, {len(user_ids) - added} already were")
        _run_steps(
            OPT_OUT_STEPS,
            settings=settings,
            user_ids=user_ids,
            names=names,
            privacy=privacy,
            removed=removed,
            progress=progress,
        )
        return removed
    finally:
        privacy.close()


def is_opted_out(settings: Settings, user_id: int) -> bool:
    names, privacy = _privacy(settings, what="an opt-out", record=False)
    try:
        return names.of(user_id) in privacy.opted_out()
    finally:
        privacy.close()


def opt_in(settings: Settings, user_ids: Collection[int]) -> Removed:
    """Take these students off the opt-out list: the next daily run scores them again (their
    events and records from then on; what was removed stays removed). The LEB2 caches, which
    were written without them, are removed so the next run reads LEB2 in full once."""
    names, privacy = _privacy(settings, what="an opt-in")
    try:
        taken = privacy.opt_in([names.of(u) for u in user_ids])
        files = assessed_cache.remove_caches(settings.home)
        return Removed(
            counts={"local files": files},
            note=f"{taken} taken off the opt-out list, {len(user_ids) - taken} were not on it",
        )
    finally:
        privacy.close()


# --- retention ----------------------------------------------------------------------------------


def retention_cut(settings: Settings, day: date) -> date | None:
    """The first day LOF_RETENTION_DAYS keeps when ``day`` is scored (None: keep everything)."""
    if settings.retention_days is None:
        return None
    return day - timedelta(days=settings.retention_days)


class _Purgeable(Protocol):
    def purge_before(self, cut: date) -> int: ...


def purge(settings: Settings, before: date, *, progress: Progress | None = None) -> Removed:
    """Remove the days before ``before`` from every store; the features store keeps the first
    day after as a full state (``CompactFeatures.purge_before``), and its latest day always."""
    url = settings.store_url
    removed = Removed()
    openers: tuple[tuple[str, Callable[[], _Purgeable]], ...] = (
        ("prediction days", lambda: open_prediction_store(url)),
        ("feedback", lambda: open_feedback_store(url)),
        ("interventions", lambda: open_intervention_store(url)),
        ("hidden-student records", lambda: open_privacy_store(url)),
        ("access log entries", lambda: open_access_log(url)),
        ("feature days", lambda: open_feature_store(url)),
    )
    for name, opener in openers:
        store = opener()
        try:
            removed.counts[name] = int(store.purge_before(before))
        finally:
            getattr(store, "close", lambda: None)()
        if progress is not None:
            progress(name, removed.counts[name])
    return removed


__all__ = [
    "FORGET_STEPS",
    "MAX_IDS",
    "Removed",
    "check_user_ids",
    "forget",
    "is_opted_out",
    "opt_in",
    "opt_out",
    "purge",
    "retention_cut",
]
