"""`lof demo`: the whole life of lof on a synthetic university, with the embedded defaults."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from lof.console import day_progress, print_synth_summary, run_synth
from lof.core.calendar import days_between, format_day
from lof.core.config import Settings, get_settings
from lof.core.errors import ConfigError


def embedded_state(settings: Settings) -> list[Path]:
    """Files of a previous demo under LOF_HOME: only the embedded defaults, never a real store."""
    home = settings.home
    candidates = {
        settings.store_url: home / "lof.db",
        settings.mlflow_tracking_uri: home / "mlflow.db",
    }
    paths = [path for url, path in candidates.items() if url == f"sqlite:///{path}"]
    return [*paths, home / "mlartifacts"]


def check_demo_settings(settings: Settings) -> None:
    """The demo rewrites LEB2 and the Amplitude folder: refuse anything but local files."""
    if not settings.leb2_url.startswith("sqlite:"):
        raise ConfigError(
            "lof demo writes a synthetic LEB2 database; LOF_LEB2_URL points at a server: "
            "unset it (or use a sqlite:/// URL) to run the demo"
        )
    if settings.amplitude_is_http:
        raise ConfigError(
            "lof demo writes Amplitude files; LOF_AMPLITUDE_SOURCE is an Export API URL: "
            "unset it to run the demo"
        )


def run_demo(*, seed: int, console: Console, out: Console, groups: bool = False) -> dict[str, Any]:
    from flows.daily_scoring import daily_scoring
    from flows.promote import promote
    from flows.retrain import retrain

    settings = get_settings()
    check_demo_settings(settings)
    for path in embedded_state(settings):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()

    out.rule("1/4 synthesize a university")
    groups_file = settings.home / "student-groups.csv" if groups else None
    summary = run_synth(seed=seed, replace=True, groups=groups_file)
    if groups_file is not None:  # the retrain below reads it (evaluation only)
        os.environ["LOF_STUDENT_GROUPS"] = str(groups_file)
    print_synth_summary(summary)

    out.rule("2/4 retrain on the finished semesters")
    trained = retrain()
    out.print(trained.describe())
    if trained.model_card:
        out.print(f"model card: `lof card --version {trained.version}` ({trained.model_card})")

    out.rule(f"3/4 promote version {trained.version} to Production")
    promoted = promote(version=str(trained.version), reason="lof demo")
    out.print(promoted.describe())

    ongoing = summary.ongoing
    days = list(days_between(ongoing.first_day, ongoing.last_day))
    out.rule(f"4/4 score semester {ongoing.slug} day by day ({len(days)} days)")
    results = []
    with day_progress() as progress:
        task_id = progress.add_task("daily scoring", total=len(days), detail="")
        for day in days:
            progress.update(task_id, detail=format_day(day))
            results.append(daily_scoring(date=format_day(day)))
            progress.advance(task_id)

    last = results[-1]
    table = Table(title=f"At risk on {last['day']}, {settings.model_name} v{last['model_version']}")
    for column in ("class", "students", "at risk", "share"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in last["per_class"]:
        table.add_row(
            f"{row['code']} ({row['class_id']})",
            str(row["students"]),
            str(row["at_risk"]),
            f"{row['at_risk'] / row['students']:.0%}" if row["students"] else "-",
        )
    out.print(table)
    first_class = last["per_class"][0]["class_id"] if last["per_class"] else 1
    out.print(
        "\nNext:\n"
        f"  MLflow UI : .venv/bin/mlflow ui --backend-store-uri {settings.mlflow_tracking_uri}\n"
        "  API       : LOF_API_KEYS=demo-key .venv/bin/lof serve, then\n"
        f"              curl -H 'x-api-key: demo-key' "
        f"'http://127.0.0.1:8000/predictions?predicted_dt={last['day']}&class_id={first_class}'\n"
        f"  One class : .venv/bin/lof show --date {last['day']} --class-id {first_class}"
    )
    from lof.demo_followup import print_followup

    followup = print_followup(
        settings=settings,
        out=out,
        class_ids=[int(row["class_id"]) for row in last["per_class"]],
        first_day=ongoing.first_day,
        last_day=ongoing.last_day,
        semester=ongoing.slug,
        seed=seed,
    )
    return {
        "days": [format_day(d) for d in days],
        "last": last,
        "version": trained.version,
        **followup,
    }
