"""Teachers' feedback on warnings: what a record is, how input is checked, how it sums up.

A teacher says of one student's prediction on one day whether the warning was ``useful``,
``not_useful`` or ``already_known``, with an optional short note. One record per
(class, day, student, teacher): a second answer replaces the first. The record keeps the
prediction's model version and at-risk flag, so the share of useful warnings can be judged per
model version without joining the predictions again. A retrain logs the sums
(``lof.training.feedback``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lof.core.inputs import DATE_FORM, ID_FORM, MAX_ID, day_from_text, id_from_text
from lof.core.links import TEACHER_ID_FORM, valid_teacher_id

VERDICTS: tuple[str, ...] = ("useful", "not_useful", "already_known")
Verdict = Literal["useful", "not_useful", "already_known"]
NOTE_MAX_CHARS = 500


class FeedbackInvalid(ValueError):
    """Input that cannot be stored; the message is one line naming the field (-> 422)."""


class FeedbackIn(BaseModel):
    """A teacher's verdict on one student's warning (the body of ``POST /feedback``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "class_id": 12,
                    "predicted_dt": "20230325",
                    "user_id": 4501,
                    "teacher_id": "t-0042",
                    "verdict": "useful",
                    "note": "talked to the student on Monday",
                }
            ]
        }
    )

    class_id: int = Field(gt=0, le=MAX_ID)
    predicted_dt: str = Field(description="the day of the prediction, YYYYMMDD")
    user_id: int = Field(gt=0, le=MAX_ID)
    teacher_id: str = Field(description=TEACHER_ID_FORM, min_length=1, max_length=64)
    verdict: Verdict
    note: str | None = Field(default=None, max_length=NOTE_MAX_CHARS)


class FeedbackRecord(FeedbackIn):
    """A stored verdict, with the prediction it is about."""

    model_config = ConfigDict(protected_namespaces=())

    model_version: str = Field(description="the model version that made the prediction")
    at_risk: bool = Field(description="whether the prediction warned about the student")
    updated_at: str = Field(description="when the verdict was last changed, ISO 8601 UTC")
    source: Literal["page", "api"] = "api"


def _text(data: Mapping[str, object], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise FeedbackInvalid(f"{name} must be text; got {type(value).__name__}")
    return str(value).strip()


def positive_id(data: Mapping[str, object], name: str) -> int:
    """The id ``name`` of ``data`` (``lof.core.inputs``: at most 2^53 - 1, its length checked
    first)."""
    text = _text(data, name)
    if not text:
        raise FeedbackInvalid(f"{name} is required: {ID_FORM}")
    number = id_from_text(text)
    if number is None:
        raise FeedbackInvalid(f"{name} must be {ID_FORM}; got {text[:40]!r}")
    return number


def parse_feedback(
    data: Mapping[str, object], *, teacher_id: str | None = None, class_id: int | None = None
) -> FeedbackIn:
    """Check one submission (JSON body or form fields); FeedbackInvalid names the first problem.

    ``teacher_id`` / ``class_id`` come from a signed link and override what the form says.
    """
    cid = class_id if class_id is not None else positive_id(data, "class_id")
    uid = positive_id(data, "user_id")
    day_text = _text(data, "predicted_dt")
    if not day_text:
        raise FeedbackInvalid(f"predicted_dt is required: {DATE_FORM}")
    day = day_from_text(day_text)
    if day is None:
        raise FeedbackInvalid(f"predicted_dt must be {DATE_FORM}; got {day_text[:40]!r}")
    # not stripped: "t-1\n" is refused, not stored as another teacher or taken for "t-1"
    teacher = teacher_id if teacher_id is not None else data.get("teacher_id")
    if teacher is None or teacher == "":
        raise FeedbackInvalid(f"teacher_id is required: {TEACHER_ID_FORM}")
    if not valid_teacher_id(teacher):
        raise FeedbackInvalid(f"teacher_id must be {TEACHER_ID_FORM}; got {str(teacher)[:70]!r}")
    verdict = _text(data, "verdict")
    if verdict not in VERDICTS:
        shown = "nothing" if not verdict else repr(verdict[:40])
        raise FeedbackInvalid(f"verdict must be one of {', '.join(VERDICTS)}; got {shown}")
    note = _text(data, "note") or None
    if note is not None and len(note) > NOTE_MAX_CHARS:
        raise FeedbackInvalid(
            f"note is at most {NOTE_MAX_CHARS} characters; got {len(note)}: shorten it"
        )
    return FeedbackIn(
        class_id=cid,
        predicted_dt=day.strftime("%Y%m%d"),
        user_id=uid,
        teacher_id=str(teacher),
        verdict=verdict,  # type: ignore[arg-type]
        note=note,
    )


def make_record(
    entry: FeedbackIn, *, prediction: Mapping[str, object], source: Literal["page", "api"]
) -> FeedbackRecord:
    """The stored form of ``entry`` about ``prediction`` (a store record of that student-day)."""
    return FeedbackRecord(
        **entry.model_dump(),
        model_version=str(prediction["model_version"]),
        at_risk=bool(prediction["at_risk"]),
        updated_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        source=source,
    )


def summarize(records: Iterable[Mapping[str, object]]) -> dict[str, dict[str, float]]:
    """Per model version: verdict counts and the share of useful warnings.

    ``useful_share`` is over feedback on warnings (``at_risk``) only: a verdict on a student the
    model did not warn about says nothing about its warnings.
    """
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for record in records:
        version = str(record["model_version"])
        counts[version]["count"] += 1
        counts[version][str(record["verdict"])] += 1
        if record["at_risk"]:
            counts[version]["warnings"] += 1
            counts[version]["useful_warnings"] += record["verdict"] == "useful"
    out: dict[str, dict[str, float]] = {}
    for version, c in sorted(counts.items()):
        row = {"count": float(c["count"]), **{v: float(c[v]) for v in VERDICTS}}
        row["warnings"] = float(c["warnings"])
        if c["warnings"]:
            row["useful_share"] = c["useful_warnings"] / c["warnings"]
        out[version] = row
    return out


__all__ = [
    "NOTE_MAX_CHARS",
    "VERDICTS",
    "FeedbackIn",
    "FeedbackInvalid",
    "FeedbackRecord",
    "make_record",
    "parse_feedback",
    "positive_id",
    "summarize",
]
