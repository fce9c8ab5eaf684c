"""``lof audit``: the access log as tab-separated lines an officer can read, sort or import."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

from lof.stores.access_log import AccessEntry

COLUMNS = ("at_utc", "route", "status", "class_id", "day", "teacher_id", "key_id")


def entry_line(entry: AccessEntry) -> str:
    values = (
        entry.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        entry.route,
        str(entry.status),
        "" if entry.class_id is None else str(entry.class_id),
        entry.day or "",
        entry.teacher_id or "",
        entry.key_id or "",
    )
    return "\t".join(values)


def print_entries(entries: Iterable[AccessEntry], *, out: TextIO) -> int:
    """A header line, then one line per entry; returns how many."""
    out.write("\t".join(COLUMNS) + "\n")
    count = 0
    for entry in entries:
        out.write(entry_line(entry) + "\n")
        count += 1
    return count


__all__ = ["COLUMNS", "entry_line", "print_entries"]
