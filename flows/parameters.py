"""Flow parameters as a person types them, and flow run names that say what a run is for.

`prefect deployment run -p date=20261206 -p version=2` reads each value as JSON, so the day and
the version arrive as integers. The deployments' parameter schemas (checked by the Prefect
server before it creates a run) accept a day or a version written either way and still refuse
anything else; the flows receive text, which ``lof.core.calendar.parse_day`` and the registry read.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

from lof.core.calendar import format_day, parse_day, today_local, yesterday_local
from lof.core.config import get_settings
from lof.core.errors import LofError
from lof.registry.tracking import semester_label

DAY_DIGITS = r"^[0-9]{4}-?[0-9]{2}-?[0-9]{2}$"


def _as_text(value: Any) -> Any:
    """A typed number (`-p date=20261206`, `-p version=2`) as the text the flow reads."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Day = Annotated[
    str,
    BeforeValidator(_as_text),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DAY_DIGITS},
                {"type": "integer", "minimum": 10000101, "maximum": 99991231},
            ],
            "description": "a day, YYYYMMDD (e.g. 20261206)",
        }
    ),
]
"""A day parameter: ``20261206`` typed as a number or as text."""

Version = Annotated[
    str,
    BeforeValidator(_as_text),
    WithJsonSchema(
        {
            "anyOf": [
                # '' is what an event trigger's template renders for a missing field
                {"type": "string", "pattern": r"^[0-9]{0,9}$"},
                {"type": "integer", "minimum": 1, "maximum": 999999999},
            ],
            "description": "a registered model version, e.g. 2",
        }
    ),
]
"""A model version parameter: ``2`` typed as a number or as text."""


def _parameters() -> dict[str, Any]:
    from prefect.runtime import flow_run

    return dict(flow_run.parameters or {})


def _day_name(value: Any) -> str:
    """YYYYMMDD of a day parameter; the value as given when it is not a day (the flow then
    refuses it with the reason)."""
    try:
        return format_day(parse_day(str(value)))
    except LofError:
        return str(value)[:20]


def _local_day(*, yesterday: bool) -> str:
    """Today or yesterday in LOF_TIMEZONE, as YYYYMMDD ("today" when settings are unusable)."""
    try:
        tz = get_settings().tz
    except (LofError, ValueError):
        return "yesterday" if yesterday else "today"
    return format_day(yesterday_local(tz) if yesterday else today_local(tz))


def daily_run_name() -> str:
    """``daily-20261206``: the day scored (yesterday when no date is given)."""
    date = _parameters().get("date")
    return f"daily-{_day_name(date) if date else _local_day(yesterday=True)}"


def backfill_run_name() -> str:
    """``backfill-20261201-20261206``."""
    parameters = _parameters()
    return f"backfill-{_day_name(parameters.get('start'))}-{_day_name(parameters.get('end'))}"


def retrain_run_name() -> str:
    """``retrain-1-2025+2-2025`` for given semesters, else ``retrain-as-of-20260110``."""
    parameters = _parameters()
    semesters = parameters.get("semesters")
    if semesters:
        return f"retrain-{semester_label(semesters)}"
    as_of = parameters.get("as_of")
    return f"retrain-as-of-{_day_name(as_of) if as_of else _local_day(yesterday=False)}"


def promote_run_name() -> str:
    """``promote-v3``, or ``promote-s3-upload`` while the uploaded file's version is unknown."""
    parameters = _parameters()
    version = str(parameters.get("version") or "").strip()
    if version:
        return f"promote-v{version}"
    return f"promote-{parameters.get('reason') or 'manual'}"


def import_run_name() -> str:
    """``import-model-as-of-20260110``."""
    as_of = _parameters().get("as_of")
    return f"import-model-as-of-{_day_name(as_of) if as_of else _local_day(yesterday=False)}"


def purge_run_name() -> str:
    """``purge-before-20241207``."""
    return f"purge-before-{_day_name(_parameters().get('before'))}"
