"""Did acting on a warning help? The outcome report of a finished semester.

For every student the daily run flagged at risk in a class of the semester, the *flag day* is the
first day they were flagged; they are *treated* when a teacher recorded an action for them in
that class on or after the flag day (``lof.interventions``). The outcome is the final level
below the class's required level (not attaining).

Method: each treated student is matched to the (up to ``NEIGHBOURS``) untreated flagged students
nearest in risk on the flag day and course progress on the flag day (the share of the class's
activity window gone by), both standardised over the flagged students: nearest neighbours with
replacement (scikit-learn's ``NearestNeighbors``), controls further than ``CALIPER`` standard
deviations away dropped, and a treated student without any left out. The estimate is the
difference in the share not attaining, treated minus the mean of their controls (negative:
fewer treated students failed), with a 95 % normal interval whose variance counts each control
as often as it is reused (a control matched to several treated students weighs more). In
simulations with a known effect (``lof.synthetic.interventions``) the interval holds it in 95 of
100 semesters. It is observational: teachers chose whom to act for, and what made them
choose (beyond risk and progress) is not measured, so the difference is an association, not a
proven effect. With fewer than ``MIN_MATCHED`` matched treated students the report says so and
gives no numbers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lof.core.calendar import format_day

if TYPE_CHECKING:
    from lof.core.config import Settings
    from lof.interventions import InterventionRecord
    from lof.stores.base import PredictionRecord, PredictionStore
    from lof.training.examples import TrainingSet

log = logging.getLogger(__name__)

MIN_MATCHED = 20
NEIGHBOURS = 3  # controls per treated student, at most (those within the caliper)
CALIPER = 0.25  # standard deviations of (risk, progress), Euclidean
LEVEL = 0.95
FLAG_COLUMNS = ("class_id", "user_id", "flag_day", "risk", "progress", "intervened", "failed")
METHOD = (
    "Nearest-neighbour matching with replacement of each flagged student with an action (on or "
    f"after the day they were first flagged) to up to {NEIGHBOURS} flagged students without "
    "one, on risk and course progress on the flag day (standardised; controls further than "
    f"{CALIPER} SD away dropped); the difference in the share not attaining the required level, "
    f"treated minus matched controls, with a {LEVEL:.0%} normal interval counting reused "
    "controls."
)
CAVEAT = (
    "Teachers chose whom to act for. Students are compared at similar risk and "
    "progress, but other reasons for the choice are not measured, so the difference is an "
    "association, not a proven effect of the actions."
)


@dataclass
class OutcomeReport:
    """What the report says about one semester (``enough`` False: counts only, no estimate)."""

    semester: str
    flagged: int
    treated: int
    untreated: int
    matched: int
    enough: bool
    failed_treated: float | None = None
    failed_controls: float | None = None
    difference: float | None = None
    interval: tuple[float, float] | None = None
    method: str = METHOD
    caveat: str = CAVEAT
    notes: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        if not self.enough:
            return (
                f"Too few interventions to compare: {self.matched} flagged student(s) with an "
                f"action matched to one without (at least {MIN_MATCHED} needed); no numbers "
                "are reported."
            )
        assert self.difference is not None and self.interval is not None
        low, high = self.interval
        return (
            f"Of {self.matched} flagged students with an action, {self.failed_treated:.0%} did "
            f"not attain the required level, against {self.failed_controls:.0%} of matched "
            f"flagged students without one: a difference of {self.difference:+.1%} "
            f"({LEVEL:.0%} interval {low:+.1%} to {high:+.1%})."
        )

    @property
    def key(self) -> str:
        """The semester in metric and file names ("2/2025" -> "2_2025")."""
        return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in self.semester)

    def metrics(self) -> dict[str, float]:
        """MLflow metrics under ``outcomes.<semester>.`` (counts always, numbers when enough)."""
        key = self.key
        out = {
            "flagged": float(self.flagged),
            "treated": float(self.treated),
            "untreated": float(self.untreated),
            "matched": float(self.matched),
        }
        if self.enough and self.interval is not None:
            out.update(
                failed_treated=float(self.failed_treated or 0.0),
                failed_controls=float(self.failed_controls or 0.0),
                difference=float(self.difference or 0.0),
                interval_low=self.interval[0],
                interval_high=self.interval[1],
            )
        return {f"outcomes.{key}.{name}": value for name, value in out.items()}

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "message": self.message}

    def markdown(self) -> str:
        lines = [
            f"# Outcome report, semester {self.semester}",
            "",
            self.message,
            "",
            "| flagged at risk | with an action | without | matched pairs |",
            "|---:|---:|---:|---:|",
            f"| {self.flagged} | {self.treated} | {self.untreated} | {self.matched} |",
            "",
            f"**Method.** {self.method}",
            "",
            f"**This is observational.** {self.caveat}",
        ]
        lines += ["", *(f"- {note}" for note in self.notes)] if self.notes else []
        return "\n".join(lines) + "\n"


def outcome_report(
    flags: pd.DataFrame,
    *,
    semester: str,
    min_matched: int = MIN_MATCHED,
) -> OutcomeReport:
    """The report of flagged students (``FLAG_COLUMNS``: risk and progress on the flag day,
    intervened and failed as booleans)."""
    from scipy.stats import norm
    from sklearn.neighbors import NearestNeighbors

    treated = flags[flags["intervened"].astype(bool)]
    untreated = flags[~flags["intervened"].astype(bool)]
    report = OutcomeReport(
        semester=semester,
        flagged=len(flags),
        treated=len(treated),
        untreated=len(untreated),
        matched=0,
        enough=False,
    )
    if treated.empty or untreated.empty:
        return report
    columns = ["risk", "progress"]
    values = flags[columns].to_numpy(dtype=float)
    scale = values.std(axis=0)
    scale[scale == 0] = 1.0
    center = values.mean(axis=0)
    control_x = (untreated[columns].to_numpy(dtype=float) - center) / scale
    treated_x = (treated[columns].to_numpy(dtype=float) - center) / scale
    k = min(NEIGHBOURS, len(untreated))
    distance, index = NearestNeighbors(n_neighbors=k).fit(control_x).kneighbors(treated_x)
    close = distance <= CALIPER
    kept = close[:, 0]
    report.matched = int(kept.sum())
    if report.matched < min_matched:
        return report
    failed_t = treated["failed"].to_numpy(dtype=float)[kept]
    control_failed = untreated["failed"].to_numpy(dtype=float)[index[kept]]
    # each treated student against the mean of their controls within the caliper
    failed_c = (control_failed * close[kept]).sum(axis=1) / close[kept].sum(axis=1)
    n = len(failed_t)
    # each control's weight in the controls' mean: a control matched to several treated
    # students counts several times, which the variance must count too
    weights = np.zeros(len(untreated))
    np.add.at(
        weights,
        index[kept][close[kept]],
        (1.0 / close[kept].sum(axis=1)).repeat(close[kept].sum(axis=1)),
    )
    used = untreated["failed"].to_numpy(dtype=float)[weights > 0]
    variance = failed_t.var(ddof=1) / n + used.var(ddof=1) * (weights**2).sum() / n**2
    half = float(norm.ppf(0.5 + LEVEL / 2) * np.sqrt(variance))
    difference = float(failed_t.mean() - failed_c.mean())
    report.enough = True
    report.failed_treated = float(failed_t.mean())
    report.failed_controls = float(failed_c.mean())
    report.difference = difference
    report.interval = (difference - half, difference + half)
    dropped = int((~kept).sum())
    if dropped:
        report.notes.append(f"{dropped} student(s) with an action had no close match; left out.")
    return report


def flag_table(
    history: Mapping[int, Mapping[date, Sequence[PredictionRecord]]],
    *,
    windows: Mapping[int, tuple[date, date]],
    actions: Iterable[InterventionRecord],
    outcomes: Outcomes,
) -> pd.DataFrame:
    """One row per flagged student of each class (``FLAG_COLUMNS``).

    ``history`` maps a class to its scored days' records; ``windows`` a class to the first and
    last day of its activity window (progress); ``actions`` are ``InterventionRecord``s;
    ``outcomes`` gives the final outcome (students without one are left out).
    """
    acted: dict[tuple[int, int], list[str]] = {}
    for action in actions:
        acted.setdefault((int(action.class_id), int(action.user_id)), []).append(action.action_dt)
    rows = []
    for class_id, days in history.items():
        first, last = windows[class_id]
        span = max((last - first).days, 1)
        flagged: dict[int, tuple[date, float]] = {}
        for day in sorted(days):
            for record in days[day]:
                uid = int(record["user_id"])
                if record["at_risk"] and uid not in flagged:
                    flagged[uid] = (day, float(record["risk_prob"]))
        for uid, (day, risk) in flagged.items():
            outcome = outcomes.failed(class_id, uid)
            if outcome is None:
                continue
            after = [d for d in acted.get((class_id, uid), []) if d >= format_day(day)]
            rows.append(
                {
                    "class_id": class_id,
                    "user_id": uid,
                    "flag_day": day,
                    "risk": risk,
                    "progress": min(max((day - first).days / span, 0.0), 1.0),
                    "intervened": bool(after),
                    "failed": bool(outcome),
                }
            )
    return pd.DataFrame(rows, columns=list(FLAG_COLUMNS))


def read_history(
    store: PredictionStore, class_ids: Iterable[int]
) -> dict[int, dict[date, list[PredictionRecord]]]:
    """Every scored day's records of these classes (one read per class-day)."""
    out: dict[int, dict[date, list[PredictionRecord]]] = {}
    for class_id in class_ids:
        days = store.list_days(class_id=int(class_id))
        if days:
            out[int(class_id)] = {
                d: store.read_class_day(day=d, class_id=int(class_id)) for d in days
            }
    return out


def report_from_stores(
    *,
    settings: Settings,
    semester: str,
    classes: pd.DataFrame,
    outcomes: Outcomes,
) -> OutcomeReport:
    """The report of ``classes`` (class_id, first_day, last_day) from the predictions and
    interventions stores of LOF_STORE_URL."""
    from lof.stores import open_prediction_store
    from lof.stores.interventions import open_intervention_store

    store = open_prediction_store(settings.store_url)
    actions = open_intervention_store(settings.store_url)
    try:
        history = read_history(store, classes["class_id"].tolist())
        records = actions.read_all()
    finally:
        actions.close()
        getattr(store, "close", lambda: None)()
    windows = {
        int(r.class_id): (r.first_day, r.last_day)
        for r in classes[["class_id", "first_day", "last_day"]].itertuples()
    }
    flags = flag_table(history, windows=windows, actions=records, outcomes=outcomes)
    report = outcome_report(flags, semester=semester)
    if not history:
        report.notes.append("No class of this semester has stored daily predictions.")
    return report


def semester_outcomes(settings: Settings, semester: str) -> OutcomeReport:
    """``lof outcomes --semester S``: the semester's finished classes and final levels from
    LEB2 (as at the end of today), flags and actions from the stores."""
    from lof.core.calendar import today_local
    from lof.sources import leb2
    from lof.training.examples import _as_of_cutoff, pick_classes

    as_of = today_local(settings.tz)
    engine = leb2.connect(settings.leb2_url)
    classes = pick_classes(engine=engine, semesters=[semester], as_of=as_of)
    cutoff = _as_of_cutoff(as_of)
    levels = leb2.final_levels(
        engine,
        class_ids=classes["class_id"].tolist(),
        rule=settings.label_rule,
        until=cutoff,
        deleted_before=cutoff,
    )
    return report_from_stores(
        settings=settings,
        semester=semester,
        classes=classes,
        outcomes=Outcomes.of(levels, classes, default_level=leb2.NO_RECORD_LEVEL),
    )


@dataclass(frozen=True)
class Outcomes:
    """Final outcomes: ``levels`` (class, user) -> final level, ``required`` class -> required
    level; a student without a level has ``default_level`` (None: no outcome, left out)."""

    levels: Mapping[tuple[int, int], int]
    required: Mapping[int, int]
    default_level: int | None = None

    def failed(self, class_id: int, user_id: int) -> bool | None:
        """Whether the student finished below the required level (None: unknown)."""
        required = self.required.get(class_id)
        level = self.levels.get((class_id, user_id), self.default_level)
        if required is None or level is None:
            return None
        return level < required

    @classmethod
    def of(
        cls, levels: pd.DataFrame, classes: pd.DataFrame, *, default_level: int | None = None
    ) -> Outcomes:
        """From a frame of class_id, user_id, label (repeated rows allowed: one per progress
        point) and the classes' required_level."""
        required = {int(r.class_id): int(r.required_level) for r in classes.itertuples()}
        known = {
            (int(r.class_id), int(r.user_id)): int(r.label)
            for r in levels.drop_duplicates(["class_id", "user_id"]).itertuples()
        }
        return cls(levels=known, required=required, default_level=default_level)


def log_outcome_reports(*, settings: Settings, training: TrainingSet) -> list[OutcomeReport]:
    """At retrain: the report of each finished semester trained on, logged to the active MLflow
    run (``outcomes/<semester>.md`` and ``.json``, metrics ``outcomes.<semester>.*``, the
    semester's "/" written "_").

    A signal about the warnings in use, not an input of training: any failure is logged as a
    warning and never fails the retrain.
    """
    import mlflow

    reports = []
    try:
        examples = training.examples
        examples = examples[examples["class_id"] > 0]
        classes = training.classes
        for semester in training.semesters:
            chosen = classes[classes["semester"] == semester]
            if chosen.empty:
                continue
            labels = examples[examples["class_id"].isin(chosen["class_id"])]
            report = report_from_stores(
                settings=settings,
                semester=str(semester),
                classes=chosen,
                outcomes=Outcomes.of(labels, chosen),  # visitors and opted-out left out
            )
            mlflow.log_text(report.markdown(), f"outcomes/{report.key}.md")
            mlflow.log_text(json.dumps(report.as_dict(), indent=2), f"outcomes/{report.key}.json")
            mlflow.log_metrics(report.metrics())
            reports.append(report)
    except Exception as exc:  # any store or LEB2 failure: retrain goes on without the report
        log.warning("outcome report skipped: %s", str(exc).splitlines()[0][:200] if exc else "")
    return reports


__all__ = [
    "CAVEAT",
    "METHOD",
    "MIN_MATCHED",
    "OutcomeReport",
    "Outcomes",
    "flag_table",
    "log_outcome_reports",
    "outcome_report",
    "report_from_stores",
    "semester_outcomes",
]
