"""Settings: one pydantic-settings class read from the environment (docs/contracts.md §3.2)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from lof.core.errors import ConfigError

LabelRule = Literal["attainment", "max", "mean"]

DEFAULT_GRACE_DAYS = 14
"""Days after a class's last due date it stays ongoing (late work, grades entered late)."""
DEFAULT_ONGOING_WINDOW_MONTHS = 4
"""A class without any due date stays ongoing this many months after an activity start."""


def _check_sql_url(value: str, variable: str) -> str:
    try:
        make_url(value)
    except ArgumentError:
        raise ValueError(
            f"{variable}={redact_url(value)!r} is not a database URL; "
            "expected e.g. sqlite:///path/file.db or mysql+pymysql://user:pw@host/db"
        ) from None
    return value


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, safe for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        pass
    # Not SQLAlchemy's form (a typo such as a missing ":"): mask all of the user info but the
    # user name, up to the last "@" (a password may hold "@" itself).
    head, at, host = url.rpartition("@")
    if not at:
        return url
    start = head.index("//") + 2 if "//" in head else head.rfind("/") + 1
    user = head[start:].split(":", 1)[0]
    return f"{head[:start]}{user}:***@{host}"


def _under_home(data: Mapping[str, object], name: str) -> Path:
    """A default file under LOF_HOME (already resolved by its validator)."""
    home = data.get("home")
    return (home if isinstance(home, Path) else Path(".lof").resolve()) / name


class Settings(BaseSettings):
    """Every setting lof reads; defaults make the embedded demo work with no configuration."""

    model_config = SettingsConfigDict(env_prefix="LOF_", extra="ignore", populate_by_name=True)

    # The four locations default to files under LOF_HOME: the embedded demo needs no setting.
    home: Path = Field(default=Path(".lof"), validate_default=True)
    leb2_url: str = Field(
        default_factory=lambda data: f"sqlite:///{_under_home(data, 'leb2-demo.db')}"
    )
    amplitude_source: str = Field(default_factory=lambda data: str(_under_home(data, "amplitude")))
    amplitude_api_key: SecretStr | None = None
    amplitude_secret_key: SecretStr | None = None
    amplitude_project_id: int = 100001
    store_url: str = Field(default_factory=lambda data: f"sqlite:///{_under_home(data, 'lof.db')}")
    mlflow_tracking_uri: str = Field(
        default_factory=lambda data: f"sqlite:///{_under_home(data, 'mlflow.db')}",
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "mlflow_tracking_uri"),
    )
    model_name: str = "lof-outcome"
    model_stage: str = "Production"
    timezone: str = "Asia/Bangkok"
    label_rule: LabelRule = "attainment"
    api_keys: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    mlflow_webhook_secret: SecretStr | None = None

    grace_days: int = Field(default=DEFAULT_GRACE_DAYS, ge=0, le=365)
    ongoing_window_months: int = Field(default=DEFAULT_ONGOING_WINDOW_MONTHS, ge=1, le=24)
    risk_threshold: float | None = Field(default=None, gt=0.0, lt=1.0)
    # how much a student's risk must rise between two scored days to be listed as a change
    changes_rise: float = Field(default=0.15, gt=0.0, lt=1.0)
    malformed_max_fraction: float = Field(default=0.001, ge=0.0, le=1.0)
    dedupe_lookback_hours: int = Field(default=3, ge=0, le=24)
    promote_margin: float = Field(default=0.02, ge=0.0, le=1.0)
    http_timeout_seconds: float = Field(default=60.0, gt=0)
    http_retries: int = Field(default=5, ge=1, le=20)
    # MlflowClient's own HTTP retries (429/5xx, refused connections), the one retry layer of an
    # MLflow call, applied to MLFLOW_HTTP_REQUEST_* by lof.registry.bound_http. The defaults
    # bound an unreachable registry to about 12 s per call (backoff 0, 4, 8 s) and a hung one
    # to about 2 minutes (4 x 25 s), instead of MLflow's 7 tries of 120 s.
    mlflow_http_retries: int = Field(default=3, ge=0, le=10)
    mlflow_http_backoff_factor: int = Field(default=2, ge=0, le=30)
    mlflow_http_timeout_seconds: int = Field(default=25, ge=1, le=600)

    # class pages opened from the LMS through signed links (lof.links, lof.pages)
    link_secret: SecretStr | None = None
    link_ttl_seconds: int = Field(default=86_400, ge=60, le=90 * 86_400)
    public_url: str = "http://127.0.0.1:8000"
    frame_ancestors: str = "'self'"

    @field_validator("link_secret")
    @classmethod
    def _valid_link_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("LOF_LINK_SECRET is too short; use at least 16 random characters")
        return value

    @field_validator("public_url")
    @classmethod
    def _valid_public_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(
                f"LOF_PUBLIC_URL={value!r} is not an http(s) base URL; expected e.g. "
                "https://lof.example.ac.th"
            )
        return value.rstrip("/")

    @field_validator("frame_ancestors")
    @classmethod
    def _valid_frame_ancestors(cls, value: str) -> str:
        from lof.core.links import frame_ancestors_directive

        frame_ancestors_directive(value)  # raises ValueError naming the bad origin
        return value

    # What the API accepts and tells (lof.api.limits, README "Predictions API"): requests past
    # a limit are refused before any work; the OpenAPI documents are off unless asked for.
    max_url_bytes: int = Field(default=4096, ge=256, le=65_536)
    max_query_params: int = Field(default=32, ge=4, le=1_000)
    max_body_bytes: int = Field(default=262_144, ge=16_384, le=10 * 2**20)
    api_docs: bool = False
    # Proxies whose X-Forwarded-For/-Proto `lof serve` believes (uvicorn's forwarded_allow_ips:
    # comma-separated addresses or networks, "*" for any); empty: none, the peer is the client.
    forwarded_allow_ips: str = ""
    # How long a handled webhook event or delivery id is remembered (a replay is a no-op).
    webhook_replay_seconds: int = Field(default=7 * 86_400, ge=600, le=90 * 86_400)

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _valid_forwarded_allow_ips(cls, value: str) -> str:
        items = [item.strip() for item in value.split(",") if item.strip()]
        for item in (item for item in items if item != "*"):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"LOF_FORWARDED_ALLOW_IPS holds {item[:60]!r}: expected proxy addresses or "
                    "networks such as 10.0.0.0/8, comma-separated, or * for any"
                ) from None
        return ",".join(items)

    # Operations: staleness of the API, drift warnings.
    stale_after_days: int | None = Field(default=2, ge=1, le=366)
    drift_psi_threshold: float = Field(default=0.25, gt=0.0)

    @field_validator("stale_after_days", mode="before")
    @classmethod
    def _staleness_off(cls, value: object) -> object:
        """An empty value (or "off") means predictions are never considered stale."""
        if isinstance(value, str) and value.strip().lower() in ("", "off", "none"):
            return None
        return value

    # Labels, evaluation and the at-risk threshold (README "Labels, evaluation, threshold").
    visitor_max_views: int = Field(default=2, ge=0, le=1000)
    risk_target_recall: float | None = Field(default=None, gt=0.0, le=1.0)
    calibration_min_examples: int = Field(default=30, ge=0)

    # Evaluation by student group (README "Student groups"): a CSV file or a SQL URL of the
    # university's group attributes (read by the retrain and the gate only, never a model
    # input), the table when it is a SQL URL, the smallest group reported as numbers, and the
    # opt-in fairness rule of the promote gate.
    student_groups: str | None = None
    student_groups_table: str = Field(
        default="student_groups", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
    )
    group_min_size: int = Field(default=30, ge=1, le=100_000)
    promote_max_gap_increase: float | None = Field(default=None, ge=0.0, le=1.0)

    @field_validator("student_groups", "promote_max_gap_increase", mode="before")
    @classmethod
    def _groups_off(cls, value: object) -> object:
        """An empty value means no groups (or no fairness rule)."""
        if isinstance(value, str) and value.strip().lower() in ("", "off", "none"):
            return None
        return value

    # Student data governance (README "Student data"): the key of the pseudonyms MLflow, the
    # opt-out list and the erasure entries hold, and how long per-day data is kept.
    pseudonym_secret: SecretStr | None = None
    retention_days: int | None = Field(default=None, ge=1, le=36_500)

    @field_validator("pseudonym_secret")
    @classmethod
    def _valid_pseudonym_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("LOF_PSEUDONYM_SECRET is too short; use at least 16 random characters")
        return value

    @field_validator("retention_days", mode="before")
    @classmethod
    def _retention_off(cls, value: object) -> object:
        """An empty value (or "off") keeps everything."""
        if isinstance(value, str) and value.strip().lower() in ("", "off", "none"):
            return None
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"LOF_TIMEZONE={value!r} is not an IANA time zone; expected e.g. Asia/Bangkok"
            ) from None
        return value

    @field_validator("leb2_url")
    @classmethod
    def _valid_leb2_url(cls, value: str) -> str:
        return _check_sql_url(value, "LOF_LEB2_URL")

    @field_validator("store_url")
    @classmethod
    def _valid_store_url(cls, value: str) -> str:
        if value.startswith("dynamodb://"):
            return value
        return _check_sql_url(value, "LOF_STORE_URL")

    @field_validator("mlflow_tracking_uri")
    @classmethod
    def _valid_tracking_uri(cls, value: str) -> str:
        scheme = urlparse(value).scheme.split("+")[0]
        if scheme in ("http", "https") and not urlparse(value).netloc:
            raise ValueError(f"MLFLOW_TRACKING_URI={redact_url(value)!r} is a URL without a host")
        if scheme not in _TRACKING_SCHEMES:
            raise ValueError(
                f"MLFLOW_TRACKING_URI={redact_url(value)!r}: expected an http(s) server, "
                "a sqlite:/// (or other database) URL, or a file: path"
            )
        return value

    @field_validator("amplitude_source")
    @classmethod
    def _valid_amplitude_source(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme in ("http", "https") and not parsed.netloc:
            raise ValueError(f"LOF_AMPLITUDE_SOURCE={value!r} is a URL without a host")
        if parsed.scheme not in ("", "file", "http", "https") and len(parsed.scheme) > 1:
            raise ValueError(
                f"LOF_AMPLITUDE_SOURCE={value!r}: expected a folder path or an http(s) base URL"
            )
        return value

    @field_validator("home")
    @classmethod
    def _resolved_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def amplitude_is_http(self) -> bool:
        return urlparse(self.amplitude_source).scheme in ("http", "https")

    @property
    def api_key_list(self) -> list[str]:
        if self.api_keys is None:
            return []
        return [k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip()]

    def redacted(self, url: str) -> str:
        return redact_url(url)

    def __repr_args__(self) -> Iterator[tuple[str | None, object]]:
        # URLs may carry passwords: a repr (in a log, a traceback, a Prefect task) shows none.
        for name, value in super().__repr_args__():
            yield name, (redact_url(value) if name in _URL_FIELDS and value else value)


_TRACKING_SCHEMES = frozenset(
    {"", "file", "http", "https", "databricks", "sqlite", "postgresql", "mysql", "mssql"}
)
_URL_FIELDS = frozenset(
    {"leb2_url", "store_url", "mlflow_tracking_uri", "amplitude_source", "student_groups"}
)


_ENV_NAMES = {"mlflow_tracking_uri": "MLFLOW_TRACKING_URI"}


def get_settings(**overrides: Any) -> Settings:
    """Read the settings; a malformed value raises ConfigError naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            variable = _ENV_NAMES.get(field, f"LOF_{field.upper()}")
            message = err["msg"].removeprefix("Value error, ")
            if variable not in message:
                message = f"{variable}: {message}"
            problems.append(message)
        raise ConfigError("invalid settings: " + "; ".join(problems)) from None
