"""The `lof` command: each command runs the same Prefect flow its deployment runs."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer

from lof.console import console, out, print_day_result, print_synth_summary, run_synth
from lof.core.errors import ConfigError, LofError

if TYPE_CHECKING:
    from lof.core.config import Settings

app = typer.Typer(
    name="lof",
    help="lof — the learning-outcome forecaster: daily at-risk predictions for OBEM classes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
P = ParamSpec("P")
R = TypeVar("R")


def _quiet_prefect() -> None:
    """Terminal defaults: no analytics, and warnings only unless LOF_VERBOSE is set."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    # The temporary server a run starts migrates a new database first; Prefect's 20 s wait is
    # too short on a busy 2-core machine, and the run then fails before doing anything.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if not os.environ.get("LOF_VERBOSE"):
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("PREFECT_LOGGING_LOG_PRINTS", "false")
        # A failed run is reported once, as one line, by clear_failures: no engine traceback.
        os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL", "CRITICAL")
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def clear_failures(command: Callable[P, R]) -> Callable[P, R]:
    """Print a LofError as one line and exit 1; keep tracebacks for real bugs."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        _quiet_prefect()
        try:
            return command(*args, **kwargs)
        except LofError as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def _settings() -> Settings:
    from lof.core.config import get_settings

    return get_settings()


def check_before_prefect(**days: str | None) -> Settings:
    """Read the settings and parse the command's days before any Prefect flow starts.

    Running a flow in-process starts a temporary Prefect server (15-20 s); a typo in a day or a
    setting must answer at once instead. ``days`` maps an option name (``--date``) to its value.
    """
    from lof.core.calendar import parse_day

    settings = _settings()
    for option, value in days.items():
        if value is not None:
            parse_day(value, what=option)
    return settings


@app.command()
@clear_failures
def synth(
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same data.")] = 7,
    students: Annotated[int | None, typer.Option(help="Students in the university.")] = None,
    classes: Annotated[int | None, typer.Option(help="Classes per semester.")] = None,
    days: Annotated[int | None, typer.Option(help="Days of data in the ongoing semester.")] = None,
    events_per_student_day: Annotated[
        float | None, typer.Option(help="Mean Amplitude events per active student-day.")
    ] = None,
    today: Annotated[str | None, typer.Option(help="Pretend today is YYYYMMDD.")] = None,
    replace: Annotated[bool, typer.Option(help="Overwrite an existing synthetic LEB2.")] = True,
    groups: Annotated[
        Path | None,
        typer.Option(
            help="Also write the student groups file (user_id,intake,campus) here; its "
            "second-round intake starts classes late more often (for LOF_STUDENT_GROUPS)."
        ),
    ] = None,
) -> None:
    """Write a synthetic LEB2 database and Amplitude exports (the demo's size by default)."""
    summary = run_synth(
        groups=groups,
        seed=seed,
        students=students,
        classes=classes,
        days=days,
        events_per_student_day=events_per_student_day,
        today=today,
        replace=replace,
    )
    print_synth_summary(summary)


@app.command()
@clear_failures
def daily(
    date: Annotated[
        str | None, typer.Option("--date", help="Day to score, YYYYMMDD (default: yesterday).")
    ] = None,
) -> None:
    """Score one day (default yesterday in LOF_TIMEZONE) for every ongoing class."""
    check_before_prefect(**{"--date": date})
    from flows.daily_scoring import daily_scoring

    result = daily_scoring(date=date)
    print_day_result(result)


@app.command()
@clear_failures
def backfill(
    start: Annotated[str, typer.Option("--start", help="First day, YYYYMMDD.")],
    end: Annotated[str, typer.Option("--end", help="Last day, YYYYMMDD.")],
) -> None:
    """Run the daily computation for every day from --start to --end."""
    from lof.core.calendar import parse_day
    from lof.core.errors import DataError

    check_before_prefect(**{"--start": start, "--end": end})
    if parse_day(end) < parse_day(start):
        raise DataError(f"--end {end} is before --start {start}; give the earlier day first")
    from flows.backfill import backfill as backfill_flow

    for result in backfill_flow(start=start, end=end):
        print_day_result(result)


@app.command()
@clear_failures
def retrain(
    semester: Annotated[
        list[str] | None,
        typer.Option("--semester", help="Semester slug, e.g. 1/2025 (repeatable)."),
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Train as if run on YYYYMMDD.")
    ] = None,
    dataset: Annotated[
        Path | None,
        typer.Option(help="Extra training rows: a CSV of lof's or the former system's."),
    ] = None,
) -> None:
    """Train candidates on finished semesters, log them to MLflow, register the best."""
    check_before_prefect(**{"--as-of": as_of})
    if dataset is not None:
        from lof.training.examples import read_legacy_dataset as read_dataset

        read_dataset(dataset)  # a file the flow would refuse answers before Prefect starts
    from flows.retrain import retrain as retrain_flow

    result = retrain_flow(
        semesters=semester or None, as_of=as_of, dataset=str(dataset) if dataset else None
    )
    out.print(result.describe())


@app.command()
@clear_failures
def promote(
    version: Annotated[str, typer.Option("--version", help="Registered model version.")],
    force: Annotated[bool, typer.Option(help="Promote even if the gate refuses.")] = False,
) -> None:
    """Move a registered version to Production (the next daily run uses it)."""
    from lof.core.errors import DataError

    check_before_prefect()
    if not (version.strip().isdigit() and int(version) > 0):
        raise DataError(
            f"--version {version!r} is not a model version; expected a positive integer, e.g. 3"
        )
    from flows.promote import promote as promote_flow

    result = promote_flow(version=version, force=force, reason="manual")
    out.print(result.describe())


@app.command()
@clear_failures
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the predictions API (uvicorn)."""
    from lof.api import serve as serve_api

    serve_api(host=host, port=port)


@app.command()
@clear_failures
def show(
    date: Annotated[str, typer.Option("--date", help="Day, YYYYMMDD.")],
    class_id: Annotated[int, typer.Option("--class-id", help="LEB2 class id.")],
) -> None:
    """Print a class's predictions for a day as the API's JSON body."""
    from lof.core.calendar import format_day, parse_day
    from lof.core.errors import DataError
    from lof.stores import open_prediction_store

    day = parse_day(date, what="--date")
    store = open_prediction_store(_settings().store_url)
    records = store.read_class_day(day=day, class_id=class_id)
    if not records:
        days = store.list_days(class_id=class_id)
        latest = (
            f"the latest day with predictions is {format_day(days[-1])}"
            if days
            else ("it has no predictions on any day")
        )
        raise DataError(f"no predictions for class {class_id} on {format_day(day)}; {latest}")
    sys.stdout.write(json.dumps(records, indent=2, ensure_ascii=False) + "\n")


@app.command()
@clear_failures
def changes(
    class_id: Annotated[int, typer.Option("--class-id", help="LEB2 class id.")],
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Compare with this day, YYYYMMDD (default: the scored day before)."
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Up to this day, YYYYMMDD (default: the latest scored day)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON body.")] = False,
) -> None:
    """Print a class's students newly at risk, no longer at risk, and whose risk rose."""
    from lof.api.changes import class_changes, describe
    from lof.core.calendar import parse_day
    from lof.stores import open_prediction_store

    settings = _settings()
    since_day = parse_day(since, what="--since") if since else None
    until_day = parse_day(until, what="--until") if until else None
    store = open_prediction_store(settings.store_url)
    found = class_changes(
        store, class_id=class_id, since=since_day, until=until_day, rise=settings.changes_rise
    )
    if as_json:
        sys.stdout.write(json.dumps(found.as_json(), indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write("\n".join(describe(found)) + "\n")


@app.command()
@clear_failures
def outcomes(
    semester: Annotated[str, typer.Option("--semester", help="Finished semester slug.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Print a finished semester's outcome report: flagged students with an action vs without."""
    from lof.training.outcomes import semester_outcomes

    report = semester_outcomes(_settings(), semester)
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(report.markdown())


@app.command()
@clear_failures
def demo(
    seed: Annotated[int, typer.Option(help="Random seed of the synthetic university.")] = 7,
    groups: Annotated[
        bool,
        typer.Option(
            help="Give the university a student groups file (LOF_HOME/student-groups.csv) and "
            "measure the model per group in its model card."
        ),
    ] = False,
) -> None:
    """Synthesize a university, retrain, promote, score the ongoing semester, print a summary."""
    from lof.demo import run_demo

    run_demo(seed=seed, console=console, out=out, groups=groups)


@app.command()
@clear_failures
def card(
    version: Annotated[str, typer.Option("--version", help="Registered model version.")],
) -> None:
    """Print where a version's model card is (model_card.html and .md on its run)."""
    from lof.core.errors import DataError
    from lof.registry.client import bound_http
    from lof.training import model_card

    if not (version.strip().isdigit() and 0 < int(version) < 10**9):
        raise DataError(
            f"--version {version[:20]!r} is not a model version; expected a positive integer, "
            "e.g. 3"
        )
    settings = _settings()
    bound_http(settings)
    uri, location = model_card.where(settings=settings, version=str(int(version)))
    out.print(f"model card of {settings.model_name} v{int(version)}: {uri}", soft_wrap=True)
    out.print(f"  stored at {location} (model_card.md beside it)", soft_wrap=True)


@app.command()
@clear_failures
def link(
    class_id: Annotated[int, typer.Option("--class-id", help="LEB2 class id.")],
    ttl: Annotated[
        str | None,
        typer.Option(help="Validity, e.g. 3600, 45m, 8h, 7d (default LOF_LINK_TTL_SECONDS)."),
    ] = None,
    teacher_id: Annotated[
        str | None, typer.Option("--teacher-id", help="Teacher the link is for (optional).")
    ] = None,
) -> None:
    """Print a signed, expiring URL of a class page (LOF_LINK_SECRET, LOF_PUBLIC_URL)."""
    from datetime import UTC, datetime

    from lof.api.routes.links import make_link
    from lof.core.links import parse_ttl

    settings = _settings()
    seconds = settings.link_ttl_seconds if ttl is None else parse_ttl(ttl, what="--ttl")
    made = make_link(settings, class_id=class_id, teacher_id=teacher_id, ttl_seconds=seconds)
    until = datetime.fromtimestamp(made.expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    console.print(f"class {class_id} page, valid until {until}:", highlight=False)
    sys.stdout.write(made.url + "\n")


@app.command()
@clear_failures
def automations(
    notify_block: Annotated[
        str,
        typer.Option(
            "--notify-block", help="Notification block, <type>/<name>, e.g. slack-webhook/lof-ops."
        ),
    ],
    deadline_hour: Annotated[
        int | None,
        typer.Option(
            "--deadline-hour",
            min=0,
            max=23,
            help="Local hour by which the daily run must have completed (default: the file's).",
        ),
    ] = None,
    file: Annotated[Path, typer.Option("--file", help="Automations file.")] = Path(
        "deployments/automations.yaml"
    ),
    prefect_yaml: Annotated[
        Path, typer.Option("--prefect-yaml", help="Project file with the daily schedule.")
    ] = Path("prefect.yaml"),
) -> None:
    """Create (or replace) the daily run's failure and deadline notifications in Prefect."""
    import asyncio

    from prefect.settings import PREFECT_API_URL

    from lof.automations import apply_automations

    for path in (file, prefect_yaml):
        if not path.is_file():
            raise ConfigError(f"{path}: no such file; run from the project root or pass its path")
    if not PREFECT_API_URL.value():
        raise ConfigError(
            "PREFECT_API_URL is not set: point it at Prefect Cloud (`prefect cloud login`) "
            "or your Prefect server"
        )
    created = asyncio.run(
        apply_automations(
            path=file,
            prefect_yaml=prefect_yaml,
            notify_block=notify_block,
            deadline_hour=deadline_hour,
        )
    )
    for name, automation_id in created:
        out.print(f"automation {name!r}: {automation_id}")


@app.command("import-model")
@clear_failures
def import_model(
    path: Annotated[Path, typer.Argument(help="The former model's pickle or joblib file.")],
    description: Annotated[
        str | None, typer.Option(help="Description of the registered version.")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Score on the semesters finished by YYYYMMDD.")
    ] = None,
) -> None:
    """Register the former system's pickled classifier as a new version (not promoted).

    Unpickling runs code from the file: only import files you trust.
    """
    from lof import legacy

    check_before_prefect(**{"--as-of": as_of})
    loaded = legacy.load_classifier(path)
    legacy.check_description(description)
    if loaded.pickled_with:
        console.print(
            f"note: {path.name} was pickled with scikit-learn {loaded.pickled_with}; "
            "it loads in this one and is scored on lof's examples before registering",
            highlight=False,
        )
    from flows.import_model import import_model as import_flow

    result = import_flow(path=str(path.resolve()), description=description, as_of=as_of)
    out.print(result.describe())


@app.command("migrate-store")
@clear_failures
def migrate_store() -> None:
    """Convert a features store of the former layout (full state per day) to the compact one."""
    from lof.stores.migrate import migrate_store as migrate

    url = _settings().store_url
    done = migrate(url, progress=lambda day: console.print(f"converted {day:%Y%m%d}"))
    if done.days:
        out.print(f"converted {done.days} day(s); removed {done.removed} former rows/items")
    else:
        out.print("the features store is already in the current layout; nothing to do")


UserIds = Annotated[
    list[str], typer.Option("--user-id", help="LEB2 user id (repeatable, at most 1000).")
]


def _students(user_id: list[str], *, what: str) -> tuple[Settings, list[int]]:
    """Settings, the ids checked and the pseudonym secret present, before any work."""
    from lof.governance import erasure as governance
    from lof.governance import pseudonyms

    settings = _settings()
    ids = governance.check_user_ids(user_id)
    pseudonyms.required(settings, what=what)
    return settings, ids


def _print_removed(name: str, count: int) -> None:
    console.print(f"{name}: {count} removed", highlight=False)


@app.command()
@clear_failures
def forget(user_id: UserIds) -> None:
    """Erase students from every store lof writes and opt them out (rerun to finish)."""
    from lof.governance import erasure as governance

    settings, ids = _students(user_id, what="lof forget")
    removed = governance.forget(settings, ids, progress=_print_removed)
    out.print(f"forgot {len(ids)} student(s): {removed.note}", highlight=False)


@app.command("opt-out")
@clear_failures
def opt_out(user_id: UserIds) -> None:
    """Stop scoring, storing, showing and training on students (predictions go now)."""
    from lof.governance import erasure as governance

    settings, ids = _students(user_id, what="lof opt-out")
    removed = governance.opt_out(settings, ids, progress=_print_removed)
    out.print(f"opt-out: {removed.note}", highlight=False)


@app.command("opt-in")
@clear_failures
def opt_in(user_id: UserIds) -> None:
    """Take students off the opt-out list: the next daily run scores them again."""
    from lof.governance import erasure as governance

    settings, ids = _students(user_id, what="lof opt-in")
    out.print(f"opt-in: {governance.opt_in(settings, ids).note}", highlight=False)


@app.command()
@clear_failures
def purge(
    before: Annotated[str, typer.Option("--before", help="First day kept, YYYYMMDD.")],
) -> None:
    """Remove every store's days before --before, as LOF_RETENTION_DAYS does daily."""
    check_before_prefect(**{"--before": before})
    from flows.purge import purge as purge_flow

    removed = purge_flow(before=before)
    for name, count in removed.items():
        out.print(f"{name}: {count} removed", highlight=False)


@app.command()
@clear_failures
def audit(
    since: Annotated[str, typer.Option("--since", help="First day shown (UTC), YYYYMMDD.")],
    class_id: Annotated[
        int | None, typer.Option("--class-id", min=1, help="Only this LEB2 class.")
    ] = None,
) -> None:
    """Print the access log: who opened which class's pages and data, and when."""
    from lof.core.calendar import parse_day
    from lof.governance.audit import print_entries
    from lof.stores.access_log import open_access_log

    settings = check_before_prefect(**{"--since": since})
    log = open_access_log(settings.store_url)
    try:
        entries = log.read(since=parse_day(since, what="--since"), class_id=class_id)
    finally:
        log.close()
    print_entries(entries, out=sys.stdout)


def main() -> None:  # pragma: no cover - console script entry
    app()
