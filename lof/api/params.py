"""Quote-tolerant ids and days: the LEB2 backend sends ``predicted_dt="20230325"``.

``QuotedId`` and ``QuotedDay`` are validated types: FastAPI hands the route an ``int`` / a
``date``, the OpenAPI schema states the accepted text (a pattern), and a malformed value is the
422 ``Problem`` naming the parameter, its form and the value received. ``parse_id`` and
``parse_predicted_dt`` do the same for values read by hand (the class page answers in HTML).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, TypeVar

from fastapi import Path, Query
from pydantic import BeforeValidator, StringConstraints
from pydantic_core import PydanticCustomError

from lof.api.problems import DATE_FORM, ID_FORM, PARAM_ERROR, ApiProblem, shown
from lof.core.inputs import MAX_ID, day_from_text, id_from_text

T = TypeVar("T")
# What ``lof.core.inputs.unquote`` accepts around the digits: whitespace, then double quotes, then
# single quotes (and the same in reverse after them); the range checks (id > 0 and at most
# MAX_ID, a real day of the accepted years) are not patterns.
_AROUND = (r"""^\s*"*'*\s*""", r"""\s*'*"*\s*$""")
ID_PATTERN = _AROUND[0] + "[0-9]{1,16}" + _AROUND[1]
DAY_PATTERN = _AROUND[0] + "[0-9]{8}" + _AROUND[1]


def parse_predicted_dt(value: str) -> date:
    """``day_from_text``, or the 422 ``ApiProblem`` naming predicted_dt."""
    day = day_from_text(value)
    if day is None:
        raise ApiProblem(422, f"predicted_dt must be {DATE_FORM}; got {shown(value)}")
    return day


def parse_id(value: str, *, name: str) -> int:
    """``id_from_text``, or the 422 ``ApiProblem`` naming ``name``."""
    number = id_from_text(value)
    if number is None:
        raise ApiProblem(422, f"{name} must be {ID_FORM}; got {shown(value)}")
    return number


def parse_date(value: str) -> date:
    """A ``date`` query parameter (YYYYMMDD, quotes tolerated): a 422 naming ``date``."""
    try:
        return parse_predicted_dt(value)
    except ApiProblem as exc:
        raise ApiProblem(422, exc.detail.replace("predicted_dt", "date", 1)) from None


def _validator(parse: Callable[[str], T | None], form: str) -> Callable[[object], T]:
    def validate(value: object) -> T:
        parsed = parse(value) if isinstance(value, str) else None
        if parsed is None:  # lof.api.problems words it with the parameter's name and the value
            raise PydanticCustomError(PARAM_ERROR, "must be {form}", {"form": form})
        return parsed

    return validate


# json_schema_input_type documents the accepted text; validation is the function's alone
QuotedId = Annotated[
    int,
    BeforeValidator(
        _validator(id_from_text, ID_FORM),
        json_schema_input_type=Annotated[str, StringConstraints(pattern=ID_PATTERN)],
    ),
]
QuotedDay = Annotated[
    date,
    BeforeValidator(
        _validator(day_from_text, DATE_FORM),
        json_schema_input_type=Annotated[str, StringConstraints(pattern=DAY_PATTERN)],
    ),
]

PredictedDtQuery = Annotated[
    QuotedDay, Query(description=f"the day, {DATE_FORM} (quotes tolerated)", examples=["20230325"])
]
ClassIdQuery = Annotated[
    QuotedId, Query(description=f"LEB2 class id, {ID_FORM} (quotes tolerated)", examples=["12"])
]
ClassIdPath = Annotated[QuotedId, Path(description=f"LEB2 class id, {ID_FORM}", examples=["12"])]
UserIdPath = Annotated[QuotedId, Path(description=f"LEB2 user id, {ID_FORM}", examples=["4501"])]

__all__ = [
    "MAX_ID",
    "ClassIdPath",
    "ClassIdQuery",
    "PredictedDtQuery",
    "QuotedDay",
    "QuotedId",
    "UserIdPath",
    "day_from_text",
    "id_from_text",
    "parse_id",
    "parse_predicted_dt",
]
