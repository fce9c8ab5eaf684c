"""Bounded input values, one definition for the API, the class page and the feedback records.

An id is a positive integer of at most 2^53 - 1: every JSON client reads it exactly (JavaScript
numbers are exact up to there), and its text is at most 16 digits, so a hostile 5,000-digit
"id" is refused on its length before any conversion. A day is YYYYMMDD from 2000-01-01 to
2099-12-31: no LMS record of a running university lies outside it. Values may arrive quoted
(``"12"``, ``'20230325'``), as the LEB2 backend sends them.
"""

from __future__ import annotations

from datetime import date

MAX_ID = 2**53 - 1
MAX_ID_DIGITS = len(str(MAX_ID))
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)
ID_FORM = "a positive integer, e.g. 12"
DATE_FORM = "a date as YYYYMMDD, e.g. 20230325, from 20000101 to 20991231"


def unquote(value: str) -> str:
    """Whitespace, then double quotes, then single quotes taken off both ends."""
    return value.strip().strip('"').strip("'").strip()


def id_from_text(value: str) -> int | None:
    """A positive id of at most ``MAX_ID``, quotes tolerated; None if it is not one."""
    text = unquote(value)
    if 0 < len(text) <= MAX_ID_DIGITS and text.isascii() and text.isdigit():
        number = int(text)
        if 0 < number <= MAX_ID:
            return number
    return None


def day_from_text(value: str) -> date | None:
    """A YYYYMMDD day from ``FIRST_DAY`` to ``LAST_DAY``, quotes tolerated; None otherwise."""
    text = unquote(value)
    if len(text) != 8 or not (text.isascii() and text.isdigit()):
        return None
    try:
        day = date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None
    return day if FIRST_DAY <= day <= LAST_DAY else None


__all__ = [
    "DATE_FORM",
    "FIRST_DAY",
    "ID_FORM",
    "LAST_DAY",
    "MAX_ID",
    "day_from_text",
    "id_from_text",
    "unquote",
]
