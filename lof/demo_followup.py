"""The end of `lof demo`: actions for a share of flagged students, the outcome report they give,
and what changed on the last scored day for one class.

The demo's semester is still going on, so its final outcomes are not known: the outcomes are
drawn by ``lof.synthetic.interventions`` from each flagged student's risk, less its effect for those
with an action, and the report says so. The actions are stored like a teacher's (teacher
``t-synthetic``), so the class pages and ``GET /interventions`` show them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, TypedDict

from lof.api.changes import ClassChanges, class_changes, describe
from lof.synthetic.interventions import record_interventions, simulate_outcomes
from lof.training.outcomes import OutcomeReport, Outcomes, flag_table, outcome_report, read_history

if TYPE_CHECKING:
    from rich.console import Console

    from lof.core.config import Settings
    from lof.stores.base import PredictionStore
    from lof.stores.interventions import InterventionStore


class Followup(TypedDict):
    """What the end of the demo printed: the outcome report and the first class's changes."""

    report: OutcomeReport
    changes: ClassChanges | None


def synthetic_outcome_report(
    *,
    store: PredictionStore,
    actions: InterventionStore,
    class_ids: Sequence[int],
    first_day: date,
    last_day: date,
    semester: str,
    seed: int,
) -> OutcomeReport:
    """Record synthetic actions for the flagged students of ``class_ids`` (two days after their
    flag day, when that day was scored) and report on outcomes drawn with their effect."""
    history = read_history(store, class_ids)
    scored = max((d for days in history.values() for d in days), default=last_day)
    windows = {class_id: (first_day, last_day) for class_id in history}
    unknown = Outcomes(levels={}, required=dict.fromkeys(history, 1), default_level=1)
    flags = flag_table(history, windows=windows, actions=[], outcomes=unknown)
    flags = flags[[day + timedelta(days=2) <= scored for day in flags["flag_day"]]]
    flags = simulate_outcomes(flags, seed=seed)
    record_interventions(actions, flags)
    report = outcome_report(flags, semester=semester)
    report.notes.append(
        "Synthetic outcomes (lof.synth_interventions): the semester is still going on."
    )
    return report


def print_followup(
    *,
    settings: Settings,
    out: Console,
    class_ids: Sequence[int],
    first_day: date,
    last_day: date,
    semester: str,
    seed: int,
) -> Followup:
    """Print the synthetic outcome report, then the last day's changes of the first class."""
    from lof.stores import open_prediction_store
    from lof.stores.interventions import open_intervention_store

    store = open_prediction_store(settings.store_url)
    actions = open_intervention_store(settings.store_url)
    try:
        report = synthetic_outcome_report(
            store=store,
            actions=actions,
            class_ids=class_ids,
            first_day=first_day,
            last_day=last_day,
            semester=semester,
            seed=seed,
        )
        out.rule("outcome report (synthetic actions and outcomes)")
        out.print(report.message, highlight=False)
        out.print(
            f"{report.flagged} flagged, {report.treated} with an action. Method: {report.method}",
            highlight=False,
        )
        out.print(f"This is observational. {report.caveat}", highlight=False)
        changes = None
        if class_ids:
            changes = class_changes(store, class_id=class_ids[0], rise=settings.changes_rise)
            out.rule(f"what changed on the last day, class {class_ids[0]}")
            out.print("\n".join(describe(changes)), highlight=False)
    finally:
        actions.close()
        getattr(store, "close", lambda: None)()
    return {"report": report, "changes": changes}


__all__ = ["print_followup", "synthetic_outcome_report"]
