"""``POST /links``: a signed, expiring class page URL for the LMS backend (API key).

The LMS cannot send ``x-api-key`` from a browser, so it asks for a link (``lof.core.links``)
and opens or embeds it; ``make_link`` is also what ``lof link`` prints.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from lof import feedback as fb
from lof.api.cache import PRIVATE_HEADERS
from lof.api.deps import ApiKeyDep, SettingsDep
from lof.api.json_bodies import JSON_ERRORS, json_body, json_object
from lof.api.problems import ApiProblem
from lof.core import links
from lof.core.config import Settings
from lof.core.errors import ConfigError, DataError
from lof.core.inputs import MAX_ID

router = APIRouter()


class LinkRequest(BaseModel):
    """What a class page link is for."""

    class_id: int = Field(gt=0, le=MAX_ID, examples=[12])
    teacher_id: str | None = Field(
        default=None, description=links.TEACHER_ID_FORM, examples=["t-0042"]
    )
    ttl_seconds: int | None = Field(
        default=None, ge=60, le=90 * 86_400, description="default LOF_LINK_TTL_SECONDS"
    )


class Link(BaseModel):
    """A signed class page URL to open or embed."""

    url: str
    class_id: int
    teacher_id: str | None
    expires_at: int = Field(description="unix seconds")


@router.post(
    "/links",
    response_model=Link,
    responses=JSON_ERRORS,
    openapi_extra=json_body(LinkRequest),
    tags=["class page"],
)
async def create_link(
    request: Request, response: Response, _auth: ApiKeyDep, settings: SettingsDep
) -> Link:
    """A signed, expiring URL of a class page (for the LMS to open or embed)."""
    response.headers.update(PRIVATE_HEADERS)
    data = await json_object(request)
    try:
        class_id = fb.positive_id(data, "class_id")
    except fb.FeedbackInvalid as exc:
        raise ApiProblem(422, str(exc)) from None
    teacher = data.get("teacher_id")
    if teacher is not None and not links.valid_teacher_id(teacher):
        raise ApiProblem(422, f"teacher_id must be {links.TEACHER_ID_FORM}; got {teacher!r:.70}")
    ttl = data.get("ttl_seconds", settings.link_ttl_seconds)
    if ttl is None:
        ttl = settings.link_ttl_seconds
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, int)
        or not links.TTL_MIN <= ttl <= links.TTL_MAX
    ):
        raise ApiProblem(422, f"ttl_seconds must be an integer from 60 to 7776000; got {ttl!r:.40}")
    try:
        return make_link(settings, class_id=class_id, teacher_id=teacher, ttl_seconds=ttl)
    except ConfigError as exc:
        raise ApiProblem(503, str(exc)) from None


def make_link(
    settings: Settings, *, class_id: int, teacher_id: str | None, ttl_seconds: int
) -> Link:
    """The signed URL (also used by `lof link`); ConfigError if LOF_LINK_SECRET is unset,
    DataError for a malformed teacher id."""
    try:
        token, claims = links.sign(
            secret=settings.link_secret,
            class_id=class_id,
            ttl_seconds=ttl_seconds,
            teacher_id=teacher_id,
        )
    except ValueError as exc:
        raise DataError(str(exc)) from None
    url = links.class_page_url(base_url=settings.public_url, class_id=class_id, token=token)
    return Link(
        url=url, class_id=class_id, teacher_id=claims.teacher_id, expires_at=claims.expires_at
    )


__all__ = ["Link", "LinkRequest", "make_link", "router"]
