"""Terminal output shared by the `lof` commands and `lof demo`: consoles, progress, tables."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from lof.core.errors import ConfigError

if TYPE_CHECKING:  # lof.synth pulls numpy and SQLAlchemy: not at every command's start
    from lof.synthetic.university import SynthSummary

# Messages and progress go to stderr so that stdout carries only the command's result.
console = Console(stderr=True)
out = Console()


def day_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def run_synth(
    *,
    seed: int,
    students: int | None = None,
    classes: int | None = None,
    days: int | None = None,
    events_per_student_day: float | None = None,
    today: str | None = None,
    replace: bool = True,
    groups: Path | None = None,
) -> SynthSummary:
    """Write the synthetic LEB2 and Amplitude files under the settings, with a progress bar;
    with ``groups``, also the university's student groups file there, its late starters in
    the data (``lof.synthetic.university.group_traits``)."""
    from lof.core.calendar import parse_day
    from lof.core.config import get_settings
    from lof.synthetic import university as synth_module

    settings = get_settings()
    if settings.amplitude_is_http:
        raise ConfigError(
            "LOF_AMPLITUDE_SOURCE is an Export API URL; lof synth writes files: "
            "set it to a folder (or unset it for the default under LOF_HOME)"
        )
    options = {
        "seed": seed,
        "students": students,
        "classes": classes,
        "days": days,
        "events_per_student_day": events_per_student_day,
    }
    knobs: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
    if today:
        knobs["today"] = parse_day(today, what="--today")
    settings.home.mkdir(parents=True, exist_ok=True)
    with day_progress() as progress:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                label = "LEB2 classes" if stage == "leb2" else "Amplitude days"
                tasks[stage] = progress.add_task(label, total=total, detail="")
            progress.update(tasks[stage], completed=done, total=total)

        summary = synth_module.synthesize(
            leb2_url=settings.leb2_url,
            amplitude_dir=Path(settings.amplitude_source),
            replace=replace,
            progress=report,
            timezone_name=settings.timezone,
            project_id=settings.amplitude_project_id,
            late_starters=groups is not None,
            **knobs,
        )
    if groups is not None:
        synth_module.write_student_groups(groups, seed=seed, students=summary.students)
        out.print(f"student groups (intake, campus) written to {groups}")
    return summary


def print_synth_summary(summary: SynthSummary) -> None:
    table = Table(title="Synthetic university")
    for column in ("semester", "days", "state"):
        table.add_column(column)
    for sem in summary.semester_ranges:
        table.add_row(
            sem.slug, f"{sem.first_day} .. {sem.last_day}", "ongoing" if sem.ongoing else "finished"
        )
    out.print(table)
    out.print(
        f"{summary.classes_obem} OBEM and {summary.classes_other} other classes, "
        f"{summary.students} students, {summary.enrolments} enrolments, "
        f"{summary.activities} activities, {summary.records} assessed records, "
        f"{summary.events} Amplitude events in {summary.amplitude_files} files"
    )


def print_day_result(result: dict[str, Any]) -> None:
    table = Table(title=f"Predictions for {result['day']} (model v{result['model_version']})")
    for column in ("class", "students", "at risk"):
        table.add_column(column, justify="right" if column != "class" else "left")
    for row in result["per_class"]:
        table.add_row(
            f"{row['code']} ({row['class_id']})", str(row["students"]), str(row["at_risk"])
        )
    out.print(table)
    if result.get("not_shown"):
        out.print(f"not shown (opted out): {result['not_shown']} student(s)")
    if result.get("retention"):
        removed = ", ".join(f"{name} {n}" for name, n in result["retention"].items())
        out.print(f"retention: removed {removed}")
