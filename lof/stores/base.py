"""The two logical stores of docs/contracts.md §3.4, as protocols both backends implement.

Besides the protocols this module holds what the SQL and DynamoDB backends share: turning the
pandas frames the flows write into plain rows (validated once, so a bad frame fails before
anything is written) and back, and the crash hook the tests use.

Both backends keep the same promises:

* writing day D replaces everything stored for D (rerun = same content, no stale rows);
* a reader never sees a half-written day: until the write of D completes, D reads as missing
  (or, on a rewrite, as its previous complete content);
* reading one day touches only that day, whatever the history length.
"""

from __future__ import annotations

import gzip
import hashlib
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, SupportsFloat, TypeGuard

import numpy as np
import orjson
import pandas as pd

from lof.core.calendar import format_day
from lof.core.errors import DataError
from lof.features.definitions import ENGAGEMENT_COLUMNS, SET_COLUMNS, STATE_INT_COLUMNS, sorted_ids
from lof.features.signals import EVENT_STATE_COLUMNS
from lof.stores.records import PREDICTION_OUTPUT, PlainFloats, Reasons

if TYPE_CHECKING:
    from lof.features.state import ClassRows

PredictionRecord = dict[str, Any]
"""One stored prediction as the API returns it: ``predicted_dt`` (YYYYMMDD str), ``class_id``,
``user_id`` (int), ``predicted_label`` (int 1-5), ``predicted_prob`` (dict level str -> float),
``risk_prob`` (float), ``at_risk`` (bool), ``required_level`` (int), ``model_name`` (str),
``model_version`` (str), ``features`` (dict feature name -> raw float), ``reasons`` (list of
dicts: the top drivers of the risk, see ``lof.model.reasons``; [] when none or not computed)."""

PREDICTION_COLUMNS: tuple[str, ...] = (
    *PREDICTION_OUTPUT,
    "model_name",
    "model_version",
    "features",
    "reasons",
)
OPTIONAL_PREDICTION_COLUMNS: frozenset[str] = frozenset({"reasons"})
REASON_KEYS: tuple[str, ...] = ("feature", "text", "direction", "value", "class_median", "effect")
RECORD_KEYS: tuple[str, ...] = ("predicted_dt", *PREDICTION_COLUMNS)
_PLAIN_REASON_TYPES = (str, str, str, float, float, float)  # of REASON_KEYS, as explain builds

try:  # ISA-L: the same gzip streams, packed ~5x faster; the standard library when missing.
    from isal import igzip

    _body_gzip: ModuleType = igzip
    BODY_GZIP_LEVEL = 2
    """ISA-L's level 2 packs a day's bodies ~10% larger than zlib's 3 in a fifth of the time."""
except ImportError:  # pragma: no cover - depends on the platform's wheels
    _body_gzip = gzip
    BODY_GZIP_LEVEL = 3


class FeatureStore(Protocol):
    def write_day(
        self,
        *,
        day: date,
        increments: pd.DataFrame | Mapping[int, ClassRows],
        states: pd.DataFrame | Mapping[int, ClassRows],
    ) -> None:
        """Replace day ``day`` with these engagement frames (or per-class arrays,
        ``lof.features.state.ClassRows``) and mark it complete, atomically."""

    def read_states(self, *, day: date, class_ids: Collection[int] | None = None) -> pd.DataFrame:
        """Cumulative engagement states as of a complete day (empty if D is not complete)."""

    def read_state_rows(
        self, *, day: date, class_ids: Collection[int] | None = None
    ) -> dict[int, ClassRows]:
        """``read_states`` as per-class arrays (``lof.features.state.ClassRows``)."""

    def read_increments(
        self, *, day: date, class_ids: Collection[int] | None = None
    ) -> pd.DataFrame:
        """The day's engagement increments (empty frame if the day is not complete)."""

    def last_complete_day(self) -> date | None:
        """The latest day written completely, or None on an empty store."""

    def is_complete(self, *, day: date) -> bool: ...

    def erase_users(self, user_ids: Collection[int]) -> int:
        """Remove these students from every day kept; returns the student rows removed."""

    def purge_before(self, cut: date) -> int:
        """Remove the days before ``cut``, keeping what the next day needs; returns how many."""


class PredictionStore(Protocol):
    def write_day(self, *, day: date, predictions: pd.DataFrame) -> None:
        """Replace day ``day``'s predictions atomically (columns: ``PREDICTION_COLUMNS``)."""

    def read_class_day(self, *, day: date, class_id: int) -> list[PredictionRecord]:
        """The class's predictions of that day, by user_id ([] if none)."""

    def read_student_history(self, *, class_id: int, user_id: int) -> list[PredictionRecord]:
        """The student's predictions in the class, oldest day first."""

    def list_days(self, *, class_id: int) -> list[date]:
        """Days with predictions for the class, oldest first."""

    def last_complete_day(self) -> date | None:
        """The latest day whose predictions were written completely (None if none)."""

    def is_complete(self, *, day: date) -> bool: ...

    def ping(self) -> None:
        """Raise StoreError if the backend cannot be reached."""

    def read_class_body(self, *, day: date, class_id: int) -> StoredBody | None:
        """The class-day's response body as written with the day (one key lookup), or None."""

    def user_class_days(self, user_ids: Collection[int]) -> list[tuple[int, int, date]]:
        """(user_id, class_id, day) of every stored prediction of these students."""

    def erase_users(self, user_ids: Collection[int]) -> int:
        """Delete these students' predictions, the bodies rebuilt without them."""

    def purge_before(self, cut: date) -> int:
        """Delete the days before ``cut``; returns how many."""


@dataclass(frozen=True)
class StoredBody:
    """A class-day's ``/predictions`` body, built once when the day is written.

    ``gzip`` is the gzip of the JSON list of the class's records (``read_class_day`` order and
    shape), ``etag`` a strong validator of its content, ``written_at`` (UTC) when it was written,
    ``model_version`` the version(s) that scored it (comma-joined), for the response headers.
    """

    gzip: bytes
    etag: str
    written_at: datetime
    model_version: str = ""

    @property
    def plain(self) -> bytes:
        return gzip.decompress(self.gzip)


BODY_MAX_BYTES = 380_000  # gzip; larger bodies are not stored (DynamoDB items stop at 400 KB)


def model_versions(records: Iterable[Mapping[str, object]]) -> str:
    """The model version(s) of a class-day's records, comma-joined (normally one)."""
    return ",".join(sorted({str(r.get("model_version", "")) for r in records}))


JSON_COLUMNS: tuple[str, ...] = ("predicted_prob", "features", "reasons")
"""The prediction columns the SQL store keeps as JSON text (``dumps``)."""


def class_day_bodies(
    rows: list[dict[str, Any]], *, day: date, written_at: datetime, encoded: bool = False
) -> dict[int, StoredBody]:
    """The body of each class of a day's validated prediction rows (sorted by class, user).

    ``encoded``: the rows' ``JSON_COLUMNS`` already hold their ``dumps`` text, which goes into
    the bodies as it is (the SQL store has it anyway; no second serialisation).
    """
    key = day_key(day)
    as_text = frozenset(JSON_COLUMNS if encoded else ())
    fragment = orjson.Fragment
    by_class: dict[int, list[PredictionRecord]] = {}
    for row in rows:
        # validated rows hold plain values already: the record only adds the day
        record: PredictionRecord = {"predicted_dt": key}
        record.update({c: fragment(row[c]) if c in as_text else row[c] for c in PREDICTION_COLUMNS})
        by_class.setdefault(row["class_id"], []).append(record)
    out = {}
    for class_id, records in by_class.items():
        plain = orjson.dumps(records)
        packed = _body_gzip.compress(plain, compresslevel=BODY_GZIP_LEVEL, mtime=0)
        if len(packed) <= BODY_MAX_BYTES:
            out[class_id] = StoredBody(
                gzip=packed,
                etag=_etag(plain),
                written_at=written_at,
                model_version=model_versions(records),
            )
    return out


def _etag(plain: bytes) -> str:
    return '"' + hashlib.sha256(plain).hexdigest()[:32] + '"'


def body_without(
    body: StoredBody, user_ids: Collection[int], *, written_at: datetime
) -> StoredBody | None:
    """``body`` without these students' records: ``body`` itself when it has none of them,
    None when no record is left. The other records keep their exact JSON (floats read back
    bit for bit are written back the same); the ETag and ``written_at`` change, so no client
    keeps the former body as current."""
    records = orjson.loads(body.plain)
    kept = [r for r in records if int(r["user_id"]) not in user_ids]
    if len(kept) == len(records):
        return body
    if not kept:
        return None
    plain = orjson.dumps(kept)
    return StoredBody(
        gzip=_body_gzip.compress(plain, compresslevel=BODY_GZIP_LEVEL, mtime=0),
        etag=_etag(plain),
        written_at=written_at,
        model_version=model_versions(kept),
    )


# --- days -------------------------------------------------------------------------------------


# The stores key days as the CLI and API write them: one format, owned by lof.calendar.
day_key = format_day


def parse_day_key(text: str) -> date:
    return datetime.strptime(text, "%Y%m%d").date()


def as_date(value: object) -> date:
    """SQL drivers return DATE as date, datetime or ISO string depending on the dialect."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


# --- engagement frames ------------------------------------------------------------------------


def encode_ids(ids: Iterable[int]) -> str:
    return ",".join(map(str, ids))


def decode_ids(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    return tuple(map(int, text.split(",")))


def _id_tuple(value: object, *, column: str, what: str) -> tuple[int, ...]:
    try:
        return sorted_ids(value)
    except (TypeError, ValueError):
        raise DataError(
            f"{what}: column {column} holds {value!r}, expected a tuple of ints; "
            "build the frame with lof.features"
        ) from None


def _require_columns(frame: pd.DataFrame, columns: Iterable[str], *, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{what} lacks column(s) {', '.join(missing)}; expected {', '.join(columns)}"
        )


def _require_unique(frame: pd.DataFrame, keys: list[str], *, what: str) -> None:
    duplicated = frame.duplicated(subset=keys, keep=False)
    if duplicated.any():
        first = frame.loc[duplicated, keys].iloc[0].to_dict()
        raise DataError(
            f"{what} has {int(duplicated.sum())} rows sharing a key, e.g. {first}; "
            "expected one row per " + ", ".join(keys)
        )


EngagementRow = dict[str, int | tuple[int, ...]]
"""One student's engagement row: ids and counts (int), the set columns (sorted id tuples)."""


def engagement_rows(frame: pd.DataFrame, *, what: str) -> list[EngagementRow]:
    """Validated plain rows (ints, sorted id tuples) of an engagement frame."""
    # Frames built before the signals' event state lack it: no dated events.
    _require_columns(
        frame, [c for c in ENGAGEMENT_COLUMNS if c not in EVENT_STATE_COLUMNS], what=what
    )
    frame = frame.assign(**{c: 0 for c in EVENT_STATE_COLUMNS if c not in frame.columns})
    _require_unique(frame, ["class_id", "user_id"], what=what)
    rows: list[EngagementRow] = []
    columns = {c: frame[c].tolist() for c in ENGAGEMENT_COLUMNS}
    for i in range(len(frame)):
        try:
            row: EngagementRow = {
                "class_id": int(columns["class_id"][i]),
                "user_id": int(columns["user_id"][i]),
            }
            for c in STATE_INT_COLUMNS:
                row[c] = int(columns[c][i])
        except (TypeError, ValueError):
            bad = {c: columns[c][i] for c in ("class_id", "user_id", *STATE_INT_COLUMNS)}
            raise DataError(f"{what}: row {i} has a non-integer id or count: {bad}") from None
        for c in SET_COLUMNS:
            row[c] = _id_tuple(columns[c][i], column=c, what=what)
        rows.append(row)
    return rows


# --- predictions ------------------------------------------------------------------------------


def _float_map(value: object, *, column: str, what: str, row: int) -> dict[str, float]:
    if type(value) is PlainFloats:
        return value
    if isinstance(value, str):
        text = value
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise DataError(
                f"{what}: row {row} column {column} is {text[:60]!r}, expected a dict"
            ) from None
    if type(value) is not dict and not isinstance(value, Mapping):  # dict: skip the ABC check
        raise DataError(f"{what}: row {row} column {column} is {value!r}, expected a dict")
    try:
        return dict(zip(map(str, value), map(float, value.values()), strict=True))
    except (TypeError, ValueError):
        raise DataError(
            f"{what}: row {row} column {column} has a non-numeric value: {dict(value)!r}"
        ) from None


def _reasons(value: object, *, what: str, row: int) -> list[Mapping[str, object]]:
    """A reasons cell as plain dicts (``REASON_KEYS``); None/NaN = no reasons."""
    if type(value) is Reasons:
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        value = orjson.loads(value) if value else []
    if not isinstance(value, list | tuple):
        raise DataError(f"{what}: row {row} column reasons is {value!r}, expected a list")
    out: list[Mapping[str, object]] = []
    for reason in value:
        if _plain_reason(reason):  # as lof.reasons.explain builds them: stored as they are
            out.append(reason)
            continue
        if (type(reason) is not dict and not isinstance(reason, Mapping)) or not isinstance(
            reason.get("text"), str
        ):
            raise DataError(
                f"{what}: row {row} has a reason {reason!r}; expected a dict with a text "
                "(build reasons with lof.reasons.explain)"
            )
        try:
            out.append(
                {
                    "feature": str(reason.get("feature", "")),
                    "text": reason["text"],
                    "direction": str(reason.get("direction", "")),
                    "value": _float(reason.get("value")),
                    "class_median": _float(reason.get("class_median")),
                    "effect": _float(reason.get("effect")),
                }
            )
        except (TypeError, ValueError):
            raise DataError(f"{what}: row {row} has a non-numeric reason: {reason!r}") from None
    return out


def _plain_reason(reason: object) -> TypeGuard[dict[str, object]]:
    return (
        type(reason) is dict
        and tuple(reason) == REASON_KEYS
        and tuple(map(type, reason.values())) == _PLAIN_REASON_TYPES
    )


def _ints(column: pd.Series) -> list[int]:
    if column.isna().any():
        raise ValueError(f"{column.name} has a missing value")
    return column.to_numpy(dtype=np.int64).tolist()


def _first_malformed_row(frame: pd.DataFrame) -> int:
    """The first row whose ids, label, risk or required level do not convert (for the error)."""
    for i, row in enumerate(frame.itertuples(index=False)):
        try:
            for c in ("class_id", "user_id", "predicted_label", "required_level"):
                int(getattr(row, c))
            float(row.risk_prob)
        except (TypeError, ValueError):
            return i
    return 0


def prediction_rows(frame: pd.DataFrame, *, what: str = "predictions") -> list[dict[str, Any]]:
    """Validated plain rows of a predictions frame, by (class_id, user_id)."""
    _require_columns(
        frame, [c for c in PREDICTION_COLUMNS if c not in OPTIONAL_PREDICTION_COLUMNS], what=what
    )
    _require_unique(frame, ["class_id", "user_id"], what=what)
    n = len(frame)
    try:
        plain: dict[str, Sequence[object]] = {
            "class_id": _ints(frame["class_id"]),
            "user_id": _ints(frame["user_id"]),
            "predicted_label": _ints(frame["predicted_label"]),
            "risk_prob": frame["risk_prob"].to_numpy(dtype=np.float64).tolist(),
            "at_risk": frame["at_risk"].to_numpy(dtype=bool).tolist(),
            "required_level": _ints(frame["required_level"]),
            "model_name": frame["model_name"].astype(str).tolist(),
            "model_version": frame["model_version"].astype(str).tolist(),
        }
    except (TypeError, ValueError):
        bad_row = _first_malformed_row(frame)
        bad = {c: frame[c].iloc[bad_row] for c in PREDICTION_COLUMNS if c in frame.columns}
        raise DataError(f"{what}: row {bad_row} has a malformed value: {bad}") from None
    names = list(plain)
    rows: list[dict[str, Any]] = []
    for i, (values, probabilities, features, reasons) in enumerate(
        zip(
            zip(*plain.values(), strict=True),
            frame["predicted_prob"].tolist(),
            frame["features"].tolist(),
            frame["reasons"].tolist() if "reasons" in frame.columns else [None] * n,
            strict=True,
        )
    ):
        row = dict(zip(names, values, strict=True))
        row["predicted_prob"] = _float_map(probabilities, column="predicted_prob", what=what, row=i)
        row["features"] = _float_map(features, column="features", what=what, row=i)
        row["reasons"] = _reasons(reasons, what=what, row=i)
        rows.append(row)
    rows.sort(key=lambda r: (r["class_id"], r["user_id"]))
    return rows


def prediction_record(row: Mapping[str, Any], *, day: date) -> PredictionRecord:
    """The API's record (plain python types, keys in RECORD_KEYS order)."""
    record: PredictionRecord = {"predicted_dt": day_key(day)}
    record["class_id"] = int(row["class_id"])
    record["user_id"] = int(row["user_id"])
    record["predicted_label"] = int(row["predicted_label"])
    record["predicted_prob"] = {
        str(k): _float(v) for k, v in _as_map(row["predicted_prob"]).items()
    }
    record["risk_prob"] = float(row["risk_prob"])
    record["at_risk"] = bool(row["at_risk"])
    record["required_level"] = int(row["required_level"])
    record["model_name"] = str(row["model_name"])
    record["model_version"] = str(row["model_version"])
    record["features"] = {str(k): _float(v) for k, v in _as_map(row["features"]).items()}
    reasons = row.get("reasons") if hasattr(row, "get") else None
    record["reasons"] = _reasons(reasons, what="stored predictions", row=0)
    return record


def _as_map(value: str | Mapping[str, float | None]) -> Mapping[str, float | None]:
    return orjson.loads(value) if isinstance(value, str) else value


def dumps(value: object) -> str:
    """Compact JSON; floats in shortest round-trip form, so they read back bit for bit
    (NaN is written as null and read back as NaN)."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY, default=_json_default).decode()


def loads(text: str) -> Any:
    return orjson.loads(text)


def _json_default(value: object) -> object:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, tuple | set | frozenset):
        return sorted(value)
    raise TypeError(f"cannot store {type(value).__name__}")


def _float(value: SupportsFloat | str | None) -> float:
    return math.nan if value is None else float(value)


__all__ = [
    "PREDICTION_COLUMNS",
    "RECORD_KEYS",
    "FeatureStore",
    "PredictionRecord",
    "PredictionStore",
    "StoredBody",
]
