"""What changed in a class between two scored days: the feed an LMS polls for notifications.

A daily list of a class at risk is read once and then ignored; what a teacher acts on is what
changed. Between the day ``since`` (the comparison day) and ``until`` (default the latest scored
day), a student is

* ``new``: at risk on ``until`` and not on ``since`` (or not scored then);
* ``recovered``: at risk on ``since``, no longer on ``until``;
* ``risen``: neither of those, and the risk rose by more than ``rise`` (LOF_CHANGES_RISE).

Each change carries the risk then and now and the reasons of the latest prediction. The days
are the class's scored days: ``since`` or ``until`` falling on a day without predictions stands
for the latest scored day before it. Pure functions over store records, plus one reader.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Literal

from lof.core.calendar import format_day
from lof.core.errors import DataError
from lof.stores.base import PredictionRecord, PredictionStore

if TYPE_CHECKING:
    from lof.api.report import ClassReport

ChangeKind = Literal["new", "recovered", "risen"]
KINDS: tuple[ChangeKind, ...] = ("new", "recovered", "risen")
DEFAULT_RISE = 0.15


class NoScoredDay(DataError):
    """The class has no scored day on or before the day asked (-> 404)."""


@dataclass(frozen=True)
class Change:
    """One student's change between the two days."""

    user_id: int
    kind: ChangeKind
    risk_then: float | None
    risk_now: float
    at_risk_then: bool
    at_risk_now: bool
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ClassChanges:
    """The changes of a class from ``since_day`` (None: no scored day then) to ``until_day``."""

    class_id: int
    since_day: date | None
    until_day: date
    rise: float
    changes: list[Change]

    def of(self, kind: ChangeKind) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    def by_user(self) -> dict[int, Change]:
        return {c.user_id: c for c in self.changes}

    def as_json(self) -> dict[str, object]:
        """The body of ``GET /classes/{class_id}/changes``."""
        out: dict[str, object] = {
            "class_id": self.class_id,
            "since": format_day(self.since_day) if self.since_day else None,
            "until": format_day(self.until_day),
            "rise": self.rise,
            "counts": {kind: len(self.of(kind)) for kind in KINDS},
        }
        for kind in KINDS:
            out[kind] = [{k: v for k, v in asdict(c).items() if k != "kind"} for c in self.of(kind)]
        return out


def reason_texts(record: PredictionRecord, *, limit: int = 3) -> list[str]:
    """The record's reasons in words (``lof.report.format_reason``), at most ``limit``."""
    from lof.api.report import format_reason

    given = record.get("reasons") or []
    return [format_reason(item) for item in list(given)[:limit]]


def compare_days(
    then: Sequence[PredictionRecord], now: Sequence[PredictionRecord], *, rise: float
) -> list[Change]:
    """The changes from the records ``then`` to ``now`` (one class), by kind then risk now."""
    before = {int(r["user_id"]): r for r in then}
    out: list[Change] = []
    for record in now:
        uid = int(record["user_id"])
        risk_now = float(record["risk_prob"])
        at_risk_now = bool(record["at_risk"])
        old = before.get(uid)
        risk_then = None if old is None else float(old["risk_prob"])
        at_risk_then = False if old is None else bool(old["at_risk"])
        kind: ChangeKind | None = None
        if at_risk_now and not at_risk_then:
            kind = "new"
        elif at_risk_then and not at_risk_now:
            kind = "recovered"
        elif risk_then is not None and risk_now - risk_then > rise:
            kind = "risen"
        if kind is not None:
            out.append(
                Change(
                    user_id=uid,
                    kind=kind,
                    risk_then=risk_then,
                    risk_now=risk_now,
                    at_risk_then=at_risk_then,
                    at_risk_now=at_risk_now,
                    reasons=reason_texts(record),
                )
            )
    out.sort(key=lambda c: (KINDS.index(c.kind), -c.risk_now, c.user_id))
    return out


def pick_days(
    days: Sequence[date], *, since: date | None, until: date | None
) -> tuple[date | None, date]:
    """The scored days compared: ``until`` (default the latest) and ``since`` (default the
    scored day before it), each the latest scored day on or before the day given."""
    if until is not None and since is not None and since > until:
        raise DataError(
            f"since {format_day(since)} is after until {format_day(until)}; "
            "give since on or before until"
        )
    scored = sorted(days)
    upto = [d for d in scored if until is None or d <= until]
    if not upto:
        raise NoScoredDay(
            "no scored day on or before "
            + (format_day(until) if until else "today")
            + (f"; the first is {format_day(scored[0])}" if scored else "; none yet")
        )
    until_day = upto[-1]
    before = [d for d in upto if d < until_day]
    if since is None:
        return (before[-1] if before else None), until_day
    chosen = [d for d in upto if d <= since]
    since_day = chosen[-1] if chosen else None
    return since_day, until_day


def class_changes(
    store: PredictionStore,
    *,
    class_id: int,
    since: date | None = None,
    until: date | None = None,
    rise: float = DEFAULT_RISE,
) -> ClassChanges:
    """The class's changes read from the predictions store (two class-day reads)."""
    days = store.list_days(class_id=class_id)
    if not days:
        raise NoScoredDay(f"class {class_id} has no predictions on any day")
    since_day, until_day = pick_days(days, since=since, until=until)
    now = store.read_class_day(day=until_day, class_id=class_id)
    then = [] if since_day is None else store.read_class_day(day=since_day, class_id=class_id)
    if since_day == until_day:
        then = now
    return ClassChanges(
        class_id=class_id,
        since_day=since_day,
        until_day=until_day,
        rise=rise,
        changes=compare_days(then, now, rise=rise),
    )


def describe(changes: ClassChanges) -> list[str]:
    """The changes as lines for a terminal (``lof changes``, ``lof demo``)."""
    since = format_day(changes.since_day) if changes.since_day else "(no earlier scored day)"
    lines = [
        f"class {changes.class_id}: changes from {since} to {format_day(changes.until_day)} "
        + ", ".join(f"{len(changes.of(k))} {k}" for k in KINDS)
    ]
    labels = {"new": "newly at risk", "recovered": "no longer at risk", "risen": "risk rose"}
    for c in changes.changes:
        then = "-" if c.risk_then is None else f"{c.risk_then:.0%}"
        why = f"; {'; '.join(c.reasons)}" if c.reasons else ""
        lines.append(f"  {c.user_id}: {labels[c.kind]}, {then} -> {c.risk_now:.0%}{why}")
    return lines


def mark_changes(
    built: ClassReport, *, history: Mapping[date, Sequence[PredictionRecord]], rise: float
) -> None:
    """Mark the class page's rows (``lof.report.ClassReport``) with their change since the
    scored day before the page's day (none on the first scored day)."""
    earlier = sorted(d for d in history if d < built.day)
    if not earlier:
        return
    since = earlier[-1]
    found = compare_days(history[since], history[built.day], rise=rise)
    built.changes_since = since
    built.change_counts = {kind: sum(c.kind == kind for c in found) for kind in KINDS}
    by_user = {c.user_id: c for c in found}
    when = "yesterday" if (built.day - since).days == 1 else f"{since.isoformat()}"
    for row in built.students:
        change = by_user.get(row.user_id)
        if change is None:
            continue
        row.change = change.kind
        then = "not scored" if change.risk_then is None else f"{change.risk_then:.0%}"
        row.change_note = {
            "new": f"New since {when}",
            "recovered": f"No longer at risk since {when}",
            "risen": f"Risk up since {when} (was {then})",
        }[change.kind]


__all__ = [
    "DEFAULT_RISE",
    "KINDS",
    "Change",
    "ClassChanges",
    "NoScoredDay",
    "class_changes",
    "compare_days",
    "describe",
    "mark_changes",
    "pick_days",
]
