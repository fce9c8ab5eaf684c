"""JSON bodies of the LMS backend's POSTs (``/links``, ``/feedback``): read within a bound,
a JSON object or a 422 with an example, and their OpenAPI description."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from fastapi import Request
from pydantic import BaseModel

from lof.api.limits import read_body
from lof.api.problems import ApiProblem, Problem

JSON_BODY_MAX_BYTES = 16_384


JSON_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": Problem, "description": "missing or invalid x-api-key"},
    422: {"model": Problem, "description": "invalid request, with the reason"},
    503: {"model": Problem, "description": "store unavailable or link secret not set"},
}


async def json_object(request: Request) -> Mapping[str, object]:
    body = await read_body(request, JSON_BODY_MAX_BYTES)
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise ApiProblem(422, "the body must be a JSON object, e.g. " + _example(request))
    return data


def _example(request: Request) -> str:
    if request.url.path == "/links":
        return '{"class_id": 12, "teacher_id": "t-0042"}'
    if request.url.path.endswith("/interventions"):
        return (
            '{"class_id": 12, "user_id": 4501, "teacher_id": "t-0042", '
            '"action_dt": "20230327", "action": "meeting"}'
        )
    return (
        '{"class_id": 12, "predicted_dt": "20230325", "user_id": 4501, '
        '"teacher_id": "t-0042", "verdict": "useful"}'
    )


def json_body(model: type[BaseModel]) -> dict[str, object]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }
