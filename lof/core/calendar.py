"""Local days: parsing, ranges and the naive local cutoffs LEB2 datetimes are compared with."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from lof.core.errors import DataError


def parse_day(value: str, *, what: str = "date") -> date:
    """A day written YYYYMMDD (quotes and dashes tolerated), or a DataError with the form."""
    text = value.strip().strip('"').strip("'").replace("-", "")
    try:
        if len(text) != 8 or not text.isdigit():
            raise ValueError
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise DataError(
            f"{what} {value!r} is not a day; expected YYYYMMDD, e.g. 20230325"
        ) from None


def format_day(day: date) -> str:
    return day.strftime("%Y%m%d")


def today_local(tz: ZoneInfo) -> date:
    return datetime.now(tz).date()


def yesterday_local(tz: ZoneInfo) -> date:
    return today_local(tz) - timedelta(days=1)


def end_of_day(day: date) -> datetime:
    """The naive local datetime at which day ``day`` ends (LEB2 stores naive local times)."""
    return datetime.combine(day + timedelta(days=1), time.min)


def days_between(start: date, end: date) -> Iterator[date]:
    """Every day from ``start`` to ``end``, both included."""
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)
