"""The predictions API for the LEB2 backend (DESIGN 3.5): FastAPI, API keys, Lambda-ready.

Nothing happens at import time: the app is built by ``create_app`` (or lazily through ``get_app``,
the module attribute ``app`` and the Mangum ``handler``), and the predictions store is opened on
the first request that needs it, so a cold Lambda or a misconfigured store never prevents the
process from starting and answering ``/healthz``.

A class-day's body is built once, when the day is written (gzip, with an ETag), and read back with
one key lookup; ``cache_seconds`` keeps recent bodies in memory as a convenience. ETag and
Last-Modified let the LEB2 backend poll cheaply (304); gzip goes to clients that accept it: a
300-student class is ~200 kB of JSON (~35 kB gzip).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lof.calendar import format_day, parse_day, today_local
from lof.config import Settings, get_settings
from lof.errors import DataError, LofError, StoreError
from lof.features import FEATURES
from lof.stores.base import PredictionRecord, PredictionStore, model_versions

log = logging.getLogger("lof.api")
T = TypeVar("T")

API_KEY_HEADER = "x-api-key"
PREDICTED_DT_HEADER = "x-lof-predicted-dt"
MODEL_VERSION_HEADER = "x-lof-model-version"
DATE_FORM = "a date as YYYYMMDD, e.g. 20230325"
ID_FORM = "a positive integer, e.g. 12"
_MAX_ID = 2**63 - 1
READY_TIMEOUT_SECONDS = 5.0
READY_CACHE_SECONDS = 15.0
CACHE_SECONDS = 60.0
CACHE_BYTES = 32 * 2**20
GZIP_MIN_BYTES = 1024

# ---------------------------------------------------------------------------------------------
# Response models (OpenAPI)
# ---------------------------------------------------------------------------------------------

_EXAMPLE_FEATURES: dict[str, float] = {
    "class_view_count": 182.0,
    "activity_page_view": 21.0,
    "material_view": 40.0,
    "act_quiz_view": 35.0,
    "submit_button_clicked": 9.0,
    "specific_activity_view": 7.0,
    "session_id_count": 26.0,
    "activity_count_per_class": 6.0,
    "total_submission": 6.0,
    "avgspent_time": 1830.5,
    "avgseconds_early": 86400.0,
    "expectation_met_count": 4.0,
    "avglevel": 2.75,
}
_EXAMPLE_PROB = {"1": 0.05, "2": 0.55, "3": 0.3, "4": 0.08, "5": 0.02}

Features = create_model(  # the 13 raw values by name, in DESIGN 2.3 order
    "Features",
    __config__=ConfigDict(json_schema_extra={"examples": [_EXAMPLE_FEATURES]}),
    **{name: (float, Field(description=f"raw, unscaled `{name}`")) for name in FEATURES},
)


_EXAMPLE_REASONS: list[dict[str, Any]] = [
    {
        "feature": "past_due_not_submitted",
        "text": "3 activities past due not submitted (class median 0)",
        "direction": "raises risk",
        "value": 3.0,
        "class_median": 0.0,
        "effect": 0.21,
    },
    {
        "feature": "events_last_7d",
        "text": "2 page views in the last 7 days (class median 14)",
        "direction": "raises risk",
        "value": 2.0,
        "class_median": 14.0,
        "effect": 0.12,
    },
    {
        "feature": "avglevel",
        "text": "average level 3.2 (class median 2.8)",
        "direction": "lowers risk",
        "value": 3.2,
        "class_median": 2.8,
        "effect": -0.04,
    },
]


class Reason(BaseModel):
    """One driver of a student's risk: what moved risk_prob, against the class's median."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_REASONS[0]]})

    feature: str = Field(description="the model input it is about (a feature or a signal)")
    text: str = Field(description="in a teacher's words, with the student's value and the median")
    direction: str = Field(description='"raises risk" or "lowers risk"')
    value: float = Field(description="the student's raw value")
    class_median: float = Field(description="the median of the class's cohort that day")
    effect: float = Field(
        description="risk_prob minus the risk_prob with this value set to the class median"
    )


class Prediction(BaseModel):
    """One student's prediction for one class on one day."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "predicted_dt": "20230325",
                    "class_id": 12,
                    "user_id": 4501,
                    "predicted_label": 2,
                    "predicted_prob": _EXAMPLE_PROB,
                    "risk_prob": 0.6,
                    "at_risk": True,
                    "required_level": 3,
                    "model_name": "lof-outcome",
                    "model_version": "4",
                    "features": _EXAMPLE_FEATURES,
                    "reasons": _EXAMPLE_REASONS,
                }
            ]
        },
        protected_namespaces=(),
    )

    predicted_dt: str = Field(description="the day scored, YYYYMMDD (local time)")
    class_id: int
    user_id: int
    predicted_label: int = Field(description="most likely final level, 1-5")
    predicted_prob: dict[str, float] = Field(description='probability per level "1".."5"')
    risk_prob: float = Field(description="P(final level < required level)")
    at_risk: bool = Field(description="risk_prob >= the risk threshold")
    required_level: int = Field(description="the level the class requires")
    model_name: str | None = None
    model_version: str
    features: Features  # type: ignore[valid-type]
    reasons: list[Reason] = Field(
        default_factory=list,
        description="the top drivers of risk_prob (at most 3, largest first); [] when the "
        "student is near the class median on everything or the model gave none",
    )


class HistoryPoint(BaseModel):
    """A student's prediction on one day."""

    model_config = ConfigDict(protected_namespaces=())

    predicted_dt: str
    predicted_label: int
    predicted_prob: dict[str, float]
    risk_prob: float
    at_risk: bool
    required_level: int
    model_version: str


class StudentHistory(BaseModel):
    """A student's daily risk and level probabilities over the class so far, oldest day first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "class_id": 12,
                    "user_id": 4501,
                    "days": [
                        {
                            "predicted_dt": "20230324",
                            "predicted_label": 3,
                            "predicted_prob": {"1": 0.02, "2": 0.3, "3": 0.5, "4": 0.15, "5": 0.03},
                            "risk_prob": 0.32,
                            "at_risk": False,
                            "required_level": 3,
                            "model_version": "4",
                        }
                    ],
                }
            ]
        }
    )

    class_id: int
    user_id: int
    days: list[HistoryPoint]


class Problem(BaseModel):
    """Why a request was refused or failed, in one line."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"detail": "predicted_dt must be a date as YYYYMMDD, e.g. 20230325"}]
        }
    )

    detail: str


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Readiness(BaseModel):
    """Whether the API can answer: store reachable and a model in the registry's stage."""

    model_config = ConfigDict(protected_namespaces=())

    status: str = Field(examples=["ready"])
    reason: str | None = Field(default=None, examples=[None])
    store: str = Field(examples=["ok"])
    model_name: str = Field(examples=["lof-outcome"])
    model_stage: str = Field(examples=["Production"])
    model_version: str | None = Field(default=None, examples=["4"])
    last_scored_day: str | None = Field(
        default=None,
        description="the latest day whose predictions are complete, YYYYMMDD",
        examples=["20230325"],
    )


_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing or invalid x-api-key"},
    422: {"model": Problem, "description": "malformed parameter"},
    500: {"model": Problem, "description": "unexpected failure (logged; no internals)"},
    503: {"model": Problem, "description": "predictions store unavailable"},
}

# ---------------------------------------------------------------------------------------------
# Plumbing: lazily opened store, dependencies, parsing
# ---------------------------------------------------------------------------------------------


class ApiProblem(Exception):
    """An HTTP answer with a one-line detail (raised by the endpoints, rendered as JSON)."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


def _unreachable_errors() -> tuple[type[BaseException], ...]:
    """Driver errors meaning the store cannot be used right now, whichever backend raises them."""
    import botocore.exceptions as bce
    import sqlalchemy.exc as sae

    return (
        sae.OperationalError,
        sae.InterfaceError,
        bce.EndpointConnectionError,
        bce.ConnectionClosedError,
        bce.ReadTimeoutError,
        bce.ConnectTimeoutError,
    )


class _StoreHolder:
    """Opens the predictions store once, on first use; a failed open is retried next request."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._store: PredictionStore | None = None
        self._lock = threading.Lock()

    @property
    def opened(self) -> PredictionStore | None:
        return self._store

    def get(self) -> PredictionStore:
        store = self._store
        if store is not None:
            return store
        with self._lock:
            if self._store is None:
                from lof.stores import open_prediction_store

                self._store = _guard_store(lambda: open_prediction_store(self._url))
            return self._store

    def close(self) -> None:
        close = getattr(self._store, "close", None)
        if callable(close):
            close()
        self._store = None


def _guard_store(call: Callable[[], T]) -> T:
    """Run a store call, turning a backend's connectivity errors into StoreError (-> 503)."""
    try:
        return call()
    except StoreError:
        raise
    except _unreachable_errors() as exc:
        raise StoreError(f"predictions store unreachable ({type(exc).__name__})") from exc


async def settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def store_dep(request: Request) -> PredictionStore:
    from starlette.concurrency import run_in_threadpool

    holder: _StoreHolder = request.app.state.store_holder
    store = holder.opened
    if store is None:  # opening may connect: keep it off the event loop
        store = await run_in_threadpool(holder.get)
    return store


_api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER, auto_error=False, description="one of the keys of LOF_API_KEYS"
)


async def api_key_dep(
    settings: Annotated[Settings, Depends(settings_dep)],
    key: Annotated[str | None, Depends(_api_key_scheme)],
) -> None:
    """Accept the request only if its x-api-key equals one configured key (constant time)."""
    if not key:
        raise ApiProblem(401, f"missing {API_KEY_HEADER} header")
    given = key.encode("utf-8", "surrogateescape")
    matched = False
    for candidate in settings.api_key_list:
        # every key is compared so timing does not tell which one nearly matched
        matched |= hmac.compare_digest(given, candidate.encode("utf-8"))
    if not matched:
        raise ApiProblem(401, f"invalid {API_KEY_HEADER}")


SettingsDep = Annotated[Settings, Depends(settings_dep)]
StoreDep = Annotated[PredictionStore, Depends(store_dep)]
ApiKeyDep = Annotated[None, Depends(api_key_dep)]

# ids and days are taken as text and parsed by hand: the LEB2 backend quotes them
PredictedDtQuery = Annotated[
    str, Query(description=f"the day, {DATE_FORM} (quotes tolerated)", examples=["20230325"])
]
ClassIdQuery = Annotated[
    str, Query(description=f"LEB2 class id, {ID_FORM} (quotes tolerated)", examples=["12"])
]
ClassIdPath = Annotated[str, PathParam(description=f"LEB2 class id, {ID_FORM}", examples=["12"])]
UserIdPath = Annotated[str, PathParam(description=f"LEB2 user id, {ID_FORM}", examples=["4501"])]


def _unquote(value: str) -> str:
    return value.strip().strip('"').strip("'").strip()


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "...")


def parse_predicted_dt(value: str) -> date:
    """A YYYYMMDD day, quotes tolerated (the LEB2 backend sends predicted_dt="20230325")."""
    text = _unquote(value)
    if len(text) == 8 and text.isascii() and text.isdigit():
        try:
            day = parse_day(text, what="predicted_dt")
        except DataError:
            pass
        else:
            if day.year >= 1900:
                return day
    raise ApiProblem(422, f"predicted_dt must be {DATE_FORM}; got {_shown(value)}")


def parse_id(value: str, *, name: str) -> int:
    """A positive integer id, quotes tolerated (class_id="12")."""
    text = _unquote(value)
    if text.isascii() and text.isdigit():
        number = int(text)
        if 0 < number <= _MAX_ID:
            return number
    raise ApiProblem(422, f"{name} must be {ID_FORM}; got {_shown(value)}")


def _class_day_body(store: PredictionStore, *, class_id: int, day: date) -> _Body:
    """The body of one class-day, or the 404 naming the latest day (blocking: threadpool).

    Normally one key lookup: the body was built (gzip, ETag) when the day was written. A day
    written before bodies existed, or whose body is missing, is rebuilt from the records; the
    store returns them in the ``Prediction`` shape already, so they are serialized directly.
    """
    read_body = getattr(store, "read_class_body", None)  # stores written before bodies existed
    stored = (
        None if read_body is None else _guard_store(lambda: read_body(day=day, class_id=class_id))
    )
    if stored is not None:
        return _Body(
            None,
            packed=stored.gzip,
            etag=stored.etag,
            modified=stored.written_at,
            model_version=stored.model_version,
        )
    records = _guard_store(lambda: store.read_class_day(day=day, class_id=class_id))
    if not records:
        raise _no_predictions(store, class_id=class_id, day=day)
    return _Body(orjson.dumps(records), model_version=model_versions(records))


class _Body:
    """One class-day's JSON body (plain and/or gzip, each made once) and its validators."""

    __slots__ = ("_plain", "etag", "gzip", "model_version", "modified")

    def __init__(
        self,
        plain: bytes | None,
        *,
        packed: bytes | None = None,
        etag: str | None = None,
        modified: datetime | None = None,
        model_version: str = "",
    ) -> None:
        self._plain = plain
        self.gzip = packed
        self.etag = etag or '"' + hashlib.sha256(plain or b"").hexdigest()[:32] + '"'
        self.modified = modified
        self.model_version = model_version  # the X-Lof-Model-Version header

    @property
    def plain(self) -> bytes:
        if self._plain is None:
            self._plain = gzip.decompress(self.gzip or b"")
        return self._plain

    @property
    def size(self) -> int:
        if self._plain is None:
            return 8 * len(self.gzip or b"")  # bound: its plain form, once a client asks for it
        return 2 * len(self._plain)  # bound: the gzip form of JSON is smaller than the plain one

    def headers(self) -> dict[str, str]:
        out = {"etag": self.etag}
        if self.modified is not None:
            out["last-modified"] = formatdate(self.modified.timestamp(), usegmt=True)
        return out

    def not_modified(self, request: Request) -> bool:
        """RFC 9110: If-None-Match wins over If-Modified-Since."""
        match = request.headers.get("if-none-match")
        if match is not None:
            tags = {t.strip().removeprefix("W/") for t in match.split(",")}
            return "*" in tags or self.etag in tags
        since = request.headers.get("if-modified-since")
        if since and self.modified is not None:
            try:
                parsed = parsedate_to_datetime(since)
            except (TypeError, ValueError):
                return False
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return self.modified.replace(microsecond=0) <= parsed
        return False


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


class _BodyCache:
    """Recent class-day bodies, bounded in bytes and age.

    The LEB2 backend asks for the same class-day many times while predictions change once a day
    (03:00), so a short-lived copy saves the store read; a rewritten day (backfill) is seen after
    at most ``ttl`` seconds. Only found days are kept, never a 404.
    """

    def __init__(self, *, ttl: float, max_bytes: int) -> None:
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[tuple[int, date], tuple[float, _Body]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, date]) -> _Body | None:
        if self.ttl <= 0:
            return None
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[0] < time.monotonic():
                self._drop(key)
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: tuple[int, date], body: _Body) -> None:
        if self.ttl <= 0 or body.size > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                self._drop(key)
            self._items[key] = (time.monotonic() + self.ttl, body)
            self.size += body.size
            while self.size > self.max_bytes:
                self._drop(next(iter(self._items)))

    def _drop(self, key: tuple[int, date]) -> None:
        self.size -= self._items.pop(key)[1].size


def _wants_gzip(accept_encoding: str) -> bool:
    for part in accept_encoding.lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def _no_predictions(store: PredictionStore, *, class_id: int, day: date) -> ApiProblem:
    days = _guard_store(lambda: store.list_days(class_id=class_id))
    if days:
        latest = f"the latest day with predictions for class {class_id} is {format_day(days[-1])}"
    else:
        latest = f"class {class_id} has no predictions on any day"
    return ApiProblem(404, f"no predictions for class {class_id} on {format_day(day)}; {latest}")


# ---------------------------------------------------------------------------------------------
# Errors: every answer is JSON {"detail": "..."}; never a stack trace
# ---------------------------------------------------------------------------------------------

_QUERY_FORMS = {"predicted_dt": DATE_FORM, "class_id": ID_FORM, "user_id": ID_FORM}


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "header", "body")]
        name = ".".join(loc) or "request"
        form = _QUERY_FORMS.get(name)
        if err.get("type") == "missing" and form:
            parts.append(f"{name} is required: {form}")
        elif form:
            parts.append(f"{name} must be {form}")
        else:
            parts.append(f"{name}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "malformed request"


def _problem(status_code: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


async def _on_api_problem(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiProblem)
    return _problem(exc.status_code, exc.detail)


async def _on_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _problem(422, _validation_message(exc))


async def _on_http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return _problem(exc.status_code, str(exc.detail), headers=exc.headers)


async def _on_store_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("predictions store unavailable on %s: %s", request.url.path, exc)
    return _problem(503, "the predictions store is unavailable; retry later")


async def _on_lof_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("request %s failed: %s", request.url.path, exc)
    return _problem(500, "internal error; it has been logged")


class _CatchAll:
    """Last resort: any unexpected exception becomes a JSON 500 without internals, logged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            await _problem(500, "internal error; it has been logged")(scope, receive, send)


# ---------------------------------------------------------------------------------------------
# Readiness: store ping + the registry's version at the configured stage
# ---------------------------------------------------------------------------------------------


def _registry_path_missing(uri: str) -> str | None:
    """For a sqlite tracking URI, the file's path if it does not exist (not created by a probe)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
    return None if path.exists() else str(path)


def registry_version(*, settings: Settings) -> str | None:
    """The registered model's version at ``settings.model_stage``, or None if there is none."""
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = settings.mlflow_tracking_uri or ""
    missing = _registry_path_missing(uri)
    if missing is not None:
        raise LofError(f"no MLflow registry at {missing}; run `lof retrain` first")
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        versions = client.get_latest_versions(settings.model_name, stages=[settings.model_stage])
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    if not versions:
        return None
    return str(max(int(v.version) for v in versions))


def stale_reason(*, last_day: date | None, today: date, stale_after_days: int | None) -> str | None:
    """Why the predictions are too old to serve as current, or None if they are fresh enough.

    Day D is scored early on D+1, so a healthy store is one day behind today (local time);
    ``stale_after_days`` (LOF_STALE_AFTER_DAYS, None = never stale) is the lag allowed.
    """
    if stale_after_days is None:
        return None
    if last_day is None:
        return "no day has been scored yet; run `lof daily` (or the daily deployment)"
    age = (today - last_day).days
    if age > stale_after_days:
        return (
            f"predictions are stale: the last scored day is {format_day(last_day)}, {age} days "
            f"before today, more than LOF_STALE_AFTER_DAYS={stale_after_days}; check the daily "
            "scoring runs"
        )
    return None


class _ReadyCache:
    """Remembers the registry answer for a few seconds so frequent probes stay cheap."""

    def __init__(self) -> None:
        self.at = float("-inf")
        self.version: str | None = None


# ---------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------


def _record_point(record: PredictionRecord) -> dict[str, Any]:
    return {name: record[name] for name in HistoryPoint.model_fields}


def create_app(
    settings: Settings | None = None,
    *,
    cache_seconds: float = CACHE_SECONDS,
    cache_bytes: int = CACHE_BYTES,
) -> FastAPI:
    """The API over ``settings`` (read from the environment if not given); no I/O until used.

    ``cache_seconds`` bounds how long a served class-day may lag a rewrite of that day (0 turns
    the cache off); ``cache_bytes`` bounds its memory.
    """
    settings = settings or get_settings()
    holder = _StoreHolder(settings.store_url or "")
    cache = _BodyCache(ttl=cache_seconds, max_bytes=cache_bytes)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # type: ignore[no-untyped-def]
        yield
        holder.close()

    app = FastAPI(
        title="lof predictions API",
        version="1",
        description=(
            "Daily learning-outcome predictions of OBEM classes for the LEB2 backend. "
            f"Data endpoints need the `{API_KEY_HEADER}` header."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store_holder = holder
    app.state.ready_cache = _ReadyCache()
    app.state.body_cache = cache
    if not settings.api_key_list:
        log.warning("LOF_API_KEYS is not set: every data request will be refused with 401")

    app.add_exception_handler(ApiProblem, _on_api_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(StoreError, _on_store_error)
    app.add_exception_handler(LofError, _on_lof_error)
    app.add_middleware(_CatchAll)

    @app.get("/healthz", response_model=Health, tags=["ops"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers (no auth, no I/O)."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "not ready, with the reason"}},
        tags=["ops"],
    )
    async def readyz(request: Request, settings: SettingsDep) -> JSONResponse:
        """Readiness: the store answers, the registry has a model at the configured stage, and
        the last scored day is recent enough (LOF_STALE_AFTER_DAYS)."""
        from starlette.concurrency import run_in_threadpool

        body: dict[str, Any] = {
            "status": "ready",
            "reason": None,
            "store": "ok",
            "model_name": settings.model_name,
            "model_stage": settings.model_stage,
            "model_version": None,
            "last_scored_day": None,
        }

        def not_ready(reason: str) -> JSONResponse:
            body.update(status="not ready", reason=reason)
            return JSONResponse(body, status_code=503)

        def ping() -> date | None:
            store = holder.get()
            _guard_store(store.ping)
            return _guard_store(store.last_complete_day)

        try:
            last_day = await asyncio.wait_for(run_in_threadpool(ping), READY_TIMEOUT_SECONDS)
        except (StoreError, TimeoutError) as exc:
            body["store"] = "unreachable"
            reason = str(exc) if isinstance(exc, StoreError) else "store ping timed out"
            return not_ready(f"predictions store: {reason}")

        cache: _ReadyCache = request.app.state.ready_cache
        if time.monotonic() - cache.at > READY_CACHE_SECONDS or cache.version is None:
            try:
                version = await asyncio.wait_for(
                    run_in_threadpool(registry_version, settings=settings), READY_TIMEOUT_SECONDS
                )
            except TimeoutError:
                return not_ready("MLflow registry did not answer in time")
            except LofError as exc:
                return not_ready(str(exc))
            except Exception as exc:
                log.warning("readiness: MLflow registry unusable: %s", type(exc).__name__)
                return not_ready(f"MLflow registry unusable ({type(exc).__name__})")
            cache.version, cache.at = version, time.monotonic()
        if cache.version is None:
            return not_ready(
                f"no version of model {settings.model_name!r} at stage {settings.model_stage!r}; "
                "run `lof retrain` then `lof promote --version N`"
            )
        body["model_version"] = cache.version
        body["last_scored_day"] = format_day(last_day) if last_day else None
        stale = stale_reason(
            last_day=last_day,
            today=today_local(settings.tz),
            stale_after_days=settings.stale_after_days,
        )
        if stale:
            return not_ready(stale)
        return JSONResponse(body)

    @app.get(
        "/predictions",
        response_model=list[Prediction],
        responses={**_AUTH_ERRORS, 404: {"model": Problem, "description": "no predictions"}},
        tags=["predictions"],
    )
    async def predictions(
        request: Request,
        _auth: ApiKeyDep,
        store: StoreDep,
        predicted_dt: PredictedDtQuery,
        class_id: ClassIdQuery,
    ) -> Response:
        """The class's predictions for that day, one per student of its cohort."""
        from starlette.concurrency import run_in_threadpool

        day = parse_predicted_dt(predicted_dt)
        cid = parse_id(class_id, name="class_id")
        body = cache.get((cid, day))
        if body is None:
            body = await run_in_threadpool(_class_day_body, store, class_id=cid, day=day)
            cache.put((cid, day), body)
        headers = {
            "vary": "accept-encoding",
            PREDICTED_DT_HEADER: format_day(day),
            MODEL_VERSION_HEADER: body.model_version,
            **body.headers(),
        }
        if body.not_modified(request):
            return Response(status_code=304, headers=headers)
        wants_gzip = _wants_gzip(request.headers.get("accept-encoding", ""))
        if wants_gzip and body.gzip is not None:
            headers["content-encoding"] = "gzip"
            return Response(body.gzip, media_type="application/json", headers=headers)
        if len(body.plain) >= GZIP_MIN_BYTES and wants_gzip:
            if body.gzip is None:
                body.gzip = await run_in_threadpool(_gzip, body.plain)
            headers["content-encoding"] = "gzip"
            return Response(body.gzip, media_type="application/json", headers=headers)
        return Response(body.plain, media_type="application/json", headers=headers)

    @app.get(
        "/classes/{class_id}/students/{user_id}/history",
        response_model=StudentHistory,
        responses={**_AUTH_ERRORS, 404: {"model": Problem, "description": "no predictions"}},
        tags=["predictions"],
    )
    def student_history(
        _auth: ApiKeyDep,
        store: StoreDep,
        class_id: ClassIdPath,
        user_id: UserIdPath,
    ) -> dict[str, Any]:
        """The student's daily risk and level probabilities over the class so far."""
        cid = parse_id(class_id, name="class_id")
        uid = parse_id(user_id, name="user_id")
        records = _guard_store(lambda: store.read_student_history(class_id=cid, user_id=uid))
        if not records:
            raise ApiProblem(404, f"no predictions for student {uid} in class {cid}")
        return {"class_id": cid, "user_id": uid, "days": [_record_point(r) for r in records]}

    _include_webhooks(app)
    from lof.pages import include_pages

    include_pages(app, settings)
    return app


def _include_webhooks(app: FastAPI) -> None:
    """Mount ``lof.webhooks:router`` when that module is installed; the API works without it."""
    try:
        from lof.webhooks import router
    except ModuleNotFoundError as exc:
        if exc.name != "lof.webhooks":
            raise
        log.info("lof.webhooks is not available; serving without /webhooks/*")
        return
    app.include_router(router)


# ---------------------------------------------------------------------------------------------
# Deployment entry points: uvicorn (`lof serve`) and AWS Lambda (Mangum)
# ---------------------------------------------------------------------------------------------

_app: FastAPI | None = None
_handler: Callable[[dict[str, Any], Any], dict[str, Any]] | None = None
_build_lock = threading.Lock()


def get_app() -> FastAPI:
    """The process's app over the environment's settings, built on first call."""
    global _app
    with _build_lock:
        if _app is None:
            _app = create_app()
        return _app


def __getattr__(name: str) -> Any:
    # `uvicorn lof.api:app` and Mangum-style imports find `app` without building it at import
    if name == "app":
        return get_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """AWS Lambda entry point (API Gateway REST v1 / HTTP v2 events) for the same app."""
    global _handler
    if _handler is None:
        from mangum import Mangum

        _handler = Mangum(get_app(), lifespan="off")
    return _handler(_without_accept_encoding(event), context)


def _without_accept_encoding(event: dict[str, Any]) -> dict[str, Any]:
    """Behind API Gateway the app never gzips: Mangum would return the gzip bytes base64-encoded,
    which a REST API without binary media types hands to the client as text. API Gateway's own
    compression (minimumCompressionSize) does that job there."""
    out = dict(event)
    for field in ("headers", "multiValueHeaders"):
        if isinstance(out.get(field), dict):
            out[field] = {k: v for k, v in out[field].items() if k.lower() != "accept-encoding"}
    return out


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the API with uvicorn (blocking); used by `lof serve`."""
    import uvicorn

    app = get_app()
    log.info("serving the predictions API on http://%s:%d", host, port)
    uvicorn.run(app, host=host, port=port, proxy_headers=True, server_header=False)


__all__ = [
    "create_app",
    "get_app",
    "handler",
    "parse_id",
    "parse_predicted_dt",
    "serve",
]
