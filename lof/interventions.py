"""What teachers did about a warning: a record is an action on one student on one day.

A teacher records that they ``contacted`` a student, held a ``meeting``, ``referred`` them (to
an adviser, a counsellor) or did something ``other``, on a day, with an optional short note.
One record per (class, student, teacher, day, action): sending it again changes nothing, a new
note replaces the former one. The input rules are the feedback's (``lof.feedback``): ids and
days bounded, the teacher id's form, the note's length, the teacher of a signed link winning
over the form; the student must have been scored in the class, and the day cannot be in the
future. The records serve the class page (action days on the risk trend), the export for the
LMS, and the outcome report of a finished semester (``lof.training.outcomes``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lof.core.inputs import DATE_FORM, MAX_ID, day_from_text
from lof.core.links import TEACHER_ID_FORM, valid_teacher_id
from lof.feedback import NOTE_MAX_CHARS, FeedbackInvalid, _text, positive_id

ACTIONS: tuple[str, ...] = ("contacted", "meeting", "referred", "other")
Action = Literal["contacted", "meeting", "referred", "other"]
ACTION_LABELS = {
    "contacted": "Contacted",
    "meeting": "Meeting",
    "referred": "Referred",
    "other": "Other action",
}
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
FUTURE_TOLERANCE = timedelta(days=1)  # a teacher east of UTC records "today" before UTC has it


class InterventionInvalid(FeedbackInvalid):
    """Input that cannot be stored; the message is one line naming the field (-> 422)."""


class InterventionIn(BaseModel):
    """A teacher's action for one student (the body of ``POST /interventions``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "class_id": 12,
                    "user_id": 4501,
                    "teacher_id": "t-0042",
                    "action_dt": "20230327",
                    "action": "meeting",
                    "note": "agreed on a plan for the missing labs",
                }
            ]
        }
    )

    class_id: int = Field(gt=0, le=MAX_ID)
    user_id: int = Field(gt=0, le=MAX_ID)
    teacher_id: str = Field(description=TEACHER_ID_FORM, min_length=1, max_length=64)
    action_dt: str = Field(description="the day of the action, YYYYMMDD")
    action: Action
    note: str | None = Field(default=None, max_length=NOTE_MAX_CHARS)


class InterventionRecord(InterventionIn):
    """A stored action."""

    updated_at: str = Field(description="when the record was last changed, ISO 8601 UTC")
    source: Literal["page", "api"] = "api"


def parse_intervention(
    data: Mapping[str, object],
    *,
    teacher_id: str | None = None,
    class_id: int | None = None,
    today: date | None = None,
) -> InterventionIn:
    """Check one submission (JSON body or form fields); InterventionInvalid names the first
    problem. ``teacher_id`` / ``class_id`` come from a signed link and win over the form."""
    try:
        cid = class_id if class_id is not None else positive_id(data, "class_id")
        uid = positive_id(data, "user_id")
        day_text = _text(data, "action_dt")
    except FeedbackInvalid as exc:
        raise InterventionInvalid(str(exc)) from None
    if not day_text:
        raise InterventionInvalid(f"action_dt is required: {DATE_FORM}")
    if _ISO_DAY.fullmatch(day_text):  # a browser's date field sends YYYY-MM-DD
        day_text = day_text.replace("-", "")
    day = day_from_text(day_text)
    if day is None:
        raise InterventionInvalid(f"action_dt must be {DATE_FORM}; got {day_text[:40]!r}")
    latest = (today or datetime.now(UTC).date()) + FUTURE_TOLERANCE
    if day > latest:
        raise InterventionInvalid(
            f"action_dt {day_text[:8]} is in the future; record an action on or after the day "
            "it took place"
        )
    teacher = teacher_id if teacher_id is not None else data.get("teacher_id")
    if teacher is None or teacher == "":
        raise InterventionInvalid(f"teacher_id is required: {TEACHER_ID_FORM}")
    if not valid_teacher_id(teacher):
        raise InterventionInvalid(
            f"teacher_id must be {TEACHER_ID_FORM}; got {str(teacher)[:70]!r}"
        )
    try:
        action = _text(data, "action")
        note = _text(data, "note") or None
    except FeedbackInvalid as exc:
        raise InterventionInvalid(str(exc)) from None
    if action not in ACTIONS:
        shown = "nothing" if not action else repr(action[:40])
        raise InterventionInvalid(f"action must be one of {', '.join(ACTIONS)}; got {shown}")
    if note is not None and len(note) > NOTE_MAX_CHARS:
        raise InterventionInvalid(
            f"note is at most {NOTE_MAX_CHARS} characters; got {len(note)}: shorten it"
        )
    return InterventionIn(
        class_id=cid,
        user_id=uid,
        teacher_id=str(teacher),
        action_dt=day.strftime("%Y%m%d"),
        action=action,  # type: ignore[arg-type]
        note=note,
    )


def make_record(entry: InterventionIn, *, source: Literal["page", "api"]) -> InterventionRecord:
    return InterventionRecord(
        **entry.model_dump(),
        updated_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        source=source,
    )


__all__ = [
    "ACTIONS",
    "ACTION_LABELS",
    "InterventionIn",
    "InterventionInvalid",
    "InterventionRecord",
    "make_record",
    "parse_intervention",
]
