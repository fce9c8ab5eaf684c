"""Amplitude adapter: one local day of page views, from the Export API or an export folder.

A local day D (``settings.tz``) is the set of UTC upload hours whose start falls on D
(docs/domain.md §2.2: for Asia/Bangkok ``(D-1)T17`` to ``DT16``); each upload hour belongs to
exactly one day, so a day window is read once and events are deduplicated by ``uuid`` within the
day. An event re-uploaded in the first hours of the next day counts once too: each day first reads
the last ``LOF_DEDUPE_LOOKBACK_HOURS`` upload hours of the day before, for their uuids only.

Both sources go through the same streaming reader (gzip NDJSON files, one event per line):
lines are pre-filtered on bytes before JSON parsing, so the cost is close to decompression.
The Export API's ZIP is streamed to a temporary file on disk, never held in memory.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import ModuleType
from typing import IO
from zoneinfo import ZoneInfo

import httpx
import orjson
import pandas as pd

try:  # ISA-L inflates the same gzip streams ~1.5x faster than zlib; zlib when not installed.
    from isal import isal_zlib

    _inflate: ModuleType = isal_zlib
except ImportError:  # pragma: no cover - depends on the platform's wheels
    _inflate = zlib

from lof.core.config import Settings
from lof.core.errors import ConfigError, DataError, SourceError
from lof.core.retry import TransientError, call_with_retries
from lof.features.definitions import EngagementAggregator, empty_engagement

log = logging.getLogger(__name__)

FILE_RE = re.compile(r"^(\d+)_(\d{4}-\d{2}-\d{2})_(\d{1,2})#(\d+)\.json\.gz$")
EXPORT_PATH = "/api/2/export"
HOUR_FORMAT = "%Y%m%dT%H"
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
# Four retries of at most 30 s each: an Amplitude outage fails a run in about 2 minutes.
RETRY_AFTER_CAP_SECONDS = 30.0
CHUNK_BYTES = 1 << 20

_PAGE_LOAD = b"Page Load"
_CLASS = b"class/"
_LINE_ENDS = (b"}", b"}\r")


# --- the day window ---------------------------------------------------------------------------


def day_window(*, day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """First and last UTC upload hour (inclusive, naive UTC) of local day ``day``."""

    def first_hour_from(local_day: date) -> datetime:
        instant = datetime.combine(local_day, dtime.min, tzinfo=tz).astimezone(UTC)
        hour = instant.replace(minute=0, second=0, microsecond=0)
        if hour < instant:
            hour += timedelta(hours=1)
        return hour.replace(tzinfo=None)

    return first_hour_from(day), first_hour_from(day + timedelta(days=1)) - timedelta(hours=1)


def window_hours(start: datetime, end: datetime) -> list[datetime]:
    hours = []
    hour = start
    while hour <= end:
        hours.append(hour)
        hour += timedelta(hours=1)
    return hours


def _window_text(start: datetime, end: datetime) -> str:
    return f"{start:{HOUR_FORMAT}}-{end:{HOUR_FORMAT}}"


# --- the streaming reader ---------------------------------------------------------------------


@dataclass
class ReadStats:
    """What the reader saw in one day: reported in logs and on the frame's ``attrs``."""

    files: int = 0
    lines: int = 0
    parsed: int = 0
    malformed: int = 0
    first_malformed: tuple[str, int] | None = None
    malformed_examples: list[tuple[str, int]] = field(default_factory=list)

    def note_malformed(self, name: str, line_no: int) -> None:
        self.malformed += 1
        if self.first_malformed is None:
            self.first_malformed = (name, line_no)
        if len(self.malformed_examples) < 5:
            self.malformed_examples.append((name, line_no))


def gzip_line_blocks(stream: IO[bytes], *, chunk_bytes: int = CHUNK_BYTES) -> Iterator[list[bytes]]:
    """Lines (without newline) of a gzip stream, a block per compressed chunk read.

    zlib on whole chunks plus ``bytes.split`` is several times cheaper than reading lines one by
    one through ``gzip.GzipFile``; memory stays bounded by one chunk's decompressed size.
    Multi-member files are read whole; a truncated or corrupt stream raises ``zlib.error`` (or
    ISA-L's) or
    ``EOFError`` (zlib checks each member's CRC and length).
    """
    decompressor = _inflate.decompressobj(31)
    fed = False
    tail = b""
    data = stream.read(chunk_bytes)
    while data:
        out = decompressor.decompress(data)
        fed = True
        if decompressor.eof:
            data = decompressor.unused_data or stream.read(chunk_bytes)
            decompressor = _inflate.decompressobj(31)
            fed = False
        else:
            data = stream.read(chunk_bytes)
        if out:
            lines = (tail + out).split(b"\n") if tail else out.split(b"\n")
            tail = lines.pop()
            if lines:
                yield lines
    if fed and not decompressor.eof:
        raise EOFError("compressed file ended before the end-of-stream marker was reached")
    if tail:
        yield [tail]


def read_ndjson_gz(
    stream: IO[bytes], *, name: str, aggregator: EngagementAggregator, stats: ReadStats
) -> None:
    """Feed one gzip NDJSON file to the aggregator; a corrupt gzip stream is a DataError.

    Every line gets a cheap structural check (``{...}``) so malformed lines are counted even
    when they are skipped before parsing; only lines that may be a counted Page Load are parsed.
    """
    loads = orjson.loads
    add = aggregator.add
    line_no = 0
    parsed = 0
    malformed_before = stats.malformed
    stats.files += 1
    try:
        for block in gzip_line_blocks(stream):
            for line in block:
                line_no += 1
                if not (line.startswith(b"{") and line.endswith(_LINE_ENDS)):
                    if line.strip():
                        stats.note_malformed(name, line_no)
                    continue
                if _PAGE_LOAD not in line or _CLASS not in line:
                    continue
                try:
                    event = loads(line)
                except orjson.JSONDecodeError:
                    stats.note_malformed(name, line_no)
                    continue
                if type(event) is not dict:
                    stats.note_malformed(name, line_no)
                    continue
                parsed += 1
                add(event)
    except (OSError, EOFError, zlib.error, _inflate.error, zipfile.BadZipFile) as exc:
        raise DataError(
            f"Amplitude file {name} is corrupt after line {line_no} ({_reason(exc)}); "
            "the rest of it cannot be read: re-export that hour or remove the file, then rerun"
        ) from None
    stats.lines += line_no
    stats.parsed += parsed
    if stats.malformed > malformed_before:
        log.warning(
            "Amplitude file %s: %d malformed line(s) of %d",
            name,
            stats.malformed - malformed_before,
            line_no,
        )


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_malformed(*, stats: ReadStats, max_fraction: float, day: date) -> None:
    """Fail the day when too many lines were unreadable; otherwise just report them."""
    if stats.malformed == 0:
        return
    fraction = stats.malformed / max(stats.lines, 1)
    name, line_no = stats.first_malformed or ("?", 0)
    if fraction > max_fraction:
        raise DataError(
            f"Amplitude day {day:%Y%m%d}: {stats.malformed} of {stats.lines} lines are malformed "
            f"({fraction:.4%} > LOF_MALFORMED_MAX_FRACTION={max_fraction}), first in {name} "
            f"line {line_no}; fix or re-export those files, or raise the limit"
        )
    log.warning(
        "Amplitude day %s: skipped %d malformed line(s) of %d (%.4f%%), first in %s line %d",
        f"{day:%Y%m%d}",
        stats.malformed,
        stats.lines,
        100 * fraction,
        name,
        line_no,
    )


# --- folder source ----------------------------------------------------------------------------


def folder_files(*, root: Path, start: datetime, end: datetime) -> list[Path]:
    """Export files (``<pid>/<pid>_<YYYY-MM-DD>_<H>#<n>.json.gz``) of the UTC hours start..end."""
    if not root.is_dir():
        raise SourceError(
            f"LOF_AMPLITUDE_SOURCE={root} is not a folder; create it (lof synth writes one) "
            "or set LOF_AMPLITUDE_SOURCE to the Amplitude base URL"
        )
    wanted = {(h.strftime("%Y-%m-%d"), h.hour) for h in window_hours(start, end)}
    dates = sorted({d for d, _ in wanted})
    found: list[tuple[tuple[int, str, int, int], Path]] = []
    for project in sorted(p for p in root.iterdir() if p.is_dir()):
        for day_text in dates:
            for path in project.glob(f"*_{day_text}_*#*.json.gz"):
                match = FILE_RE.match(path.name)
                if match is None:
                    continue
                pid, file_day, hour, n = match.groups()
                if (file_day, int(hour)) in wanted:
                    found.append(((int(pid), file_day, int(hour), int(n)), path))
    return [path for _, path in sorted(found)]


def _read_folder(
    *,
    root: Path,
    start: datetime,
    end: datetime,
    aggregator: EngagementAggregator,
    stats: ReadStats,
    progress: bool,
) -> None:
    files = folder_files(root=root, start=start, end=end)
    if not files:
        log.info("Amplitude folder %s: no files for %s", root, _window_text(start, end))
        return
    total = sum(p.stat().st_size for p in files)
    with _progress_bar(progress, total=total, what="reading Amplitude files") as advance:
        for path in files:
            try:
                handle = path.open("rb")
            except OSError as exc:
                raise SourceError(f"cannot read Amplitude file {path}: {_reason(exc)}") from None
            with handle:
                read_ndjson_gz(
                    handle,
                    name=str(path.relative_to(root)),
                    aggregator=aggregator,
                    stats=stats,
                )
            advance(path.stat().st_size)


# --- Export API source ------------------------------------------------------------------------


class _Transient(TransientError):
    """A failure worth another attempt (429, 5xx, timeouts, truncated or corrupt body)."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _TooLarge(Exception):
    """HTTP 400: the export of this window is too large (over 4 GB); ask for smaller windows."""


def _credentials(settings: Settings) -> tuple[str, str]:
    key, secret = settings.amplitude_api_key, settings.amplitude_secret_key
    if key is None or secret is None or not key.get_secret_value() or not secret.get_secret_value():
        raise ConfigError(
            "LOF_AMPLITUDE_API_KEY and LOF_AMPLITUDE_SECRET_KEY must both be set when "
            f"LOF_AMPLITUDE_SOURCE is a URL ({settings.amplitude_source}); "
            "use the project's API key and secret key"
        )
    return key.get_secret_value(), secret.get_secret_value()


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_SECONDS)


def _download_once(
    client: httpx.Client,
    *,
    url: str,
    start: datetime,
    end: datetime,
    target: Path,
    progress: bool,
) -> bool:
    """One GET of the window into ``target``; False when Amplitude has no data (404)."""
    params = {"start": f"{start:{HOUR_FORMAT}}", "end": f"{end:{HOUR_FORMAT}}"}
    try:
        with client.stream("GET", url, params=params) as response:
            status = response.status_code
            if status == 404:
                return False
            if status == 400:
                raise _TooLarge()
            if status in (401, 403):
                raise SourceError(
                    f"Amplitude export {_window_text(start, end)} refused with HTTP {status}: "
                    "check LOF_AMPLITUDE_API_KEY and LOF_AMPLITUDE_SECRET_KEY"
                )
            if status == 429 or status >= 500:
                raise _Transient(
                    f"HTTP {status}",
                    retry_after=_retry_after_seconds(response.headers.get("Retry-After")),
                )
            if status != 200:
                raise SourceError(
                    f"Amplitude export {_window_text(start, end)} answered HTTP {status} "
                    f"at {url}; check LOF_AMPLITUDE_SOURCE"
                )
            expected = response.headers.get("Content-Length")
            total = int(expected) if expected and expected.isdigit() else None
            written = 0
            with (
                target.open("wb") as out,
                _progress_bar(
                    progress, total=total, what=f"downloading {_window_text(start, end)}"
                ) as advance,
            ):
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    out.write(chunk)
                    written += len(chunk)
                    advance(len(chunk))
    except httpx.TimeoutException as exc:
        raise _Transient(f"timeout ({type(exc).__name__})") from None
    except (httpx.TransportError, httpx.DecodingError) as exc:
        raise _Transient(f"connection failed ({_reason(exc)})") from None
    if total is not None and written != total:
        raise _Transient(f"truncated body ({written} of {total} bytes)")
    try:
        with zipfile.ZipFile(target) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise _Transient(f"corrupt ZIP ({_reason(exc)})") from None
    if bad is not None:
        raise _Transient(f"corrupt ZIP member {bad}")
    return True


def download_export(
    client: httpx.Client,
    *,
    url: str,
    start: datetime,
    end: datetime,
    target: Path,
    attempts: int,
    base_delay: float | None = None,
    progress: bool = False,
) -> bool:
    """Download one window with bounded retries (exponential backoff, full jitter, Retry-After).

    Returns False for an empty window (404); raises ``_TooLarge`` on HTTP 400.
    """
    try:
        return call_with_retries(
            lambda: _download_once(
                client, url=url, start=start, end=end, target=target, progress=progress
            ),
            is_transient=lambda exc: isinstance(exc, _Transient),
            attempts=attempts,
            base_delay=BACKOFF_BASE_SECONDS if base_delay is None else base_delay,
            max_delay=BACKOFF_CAP_SECONDS,
            what=f"Amplitude export {_window_text(start, end)}",
            min_delay=lambda exc: exc.retry_after if isinstance(exc, _Transient) else None,
        )
    except _Transient as exc:
        raise SourceError(
            f"Amplitude export {_window_text(start, end)} from {url} failed "
            f"{attempts} times, last: {exc.reason}; retry later or raise "
            "LOF_HTTP_RETRIES / LOF_HTTP_TIMEOUT_SECONDS"
        ) from None


def export_archives(
    *,
    settings: Settings,
    start: datetime,
    end: datetime,
    workdir: Path,
    base_delay: float | None = None,
    progress: bool = False,
) -> Iterator[Path]:
    """Downloaded ZIPs covering start..end, one at a time (each deleted once consumed).

    A window Amplitude refuses as too large (400) is split in halves until single hours.
    """
    key, secret = _credentials(settings)
    url = settings.amplitude_source.rstrip("/") + EXPORT_PATH
    timeout = httpx.Timeout(settings.http_timeout_seconds)
    pending = [(start, end)]
    with httpx.Client(auth=(key, secret), timeout=timeout, follow_redirects=True) as client:
        while pending:
            first, last = pending.pop(0)
            target = workdir / f"export_{first:{HOUR_FORMAT}}_{last:{HOUR_FORMAT}}.zip"
            try:
                found = download_export(
                    client,
                    url=url,
                    start=first,
                    end=last,
                    target=target,
                    attempts=settings.http_retries,
                    base_delay=base_delay,
                    progress=progress,
                )
            except _TooLarge:
                hours = window_hours(first, last)
                if len(hours) == 1:
                    raise SourceError(
                        f"Amplitude export {_window_text(first, last)} is refused as too large "
                        "(HTTP 400) even for one hour; export that hour by hand"
                    ) from None
                half = len(hours) // 2
                log.info(
                    "Amplitude export %s too large; splitting in two", _window_text(first, last)
                )
                pending[:0] = [(hours[0], hours[half - 1]), (hours[half], hours[-1])]
                continue
            if not found:
                log.info("Amplitude export %s: no data (404)", _window_text(first, last))
                continue
            try:
                yield target
            finally:
                target.unlink(missing_ok=True)


def read_archive(
    path: Path, *, aggregator: EngagementAggregator, stats: ReadStats, label: str
) -> None:
    """Feed every ``.json.gz`` member of an export ZIP, in name order, to the aggregator."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = sorted(
                (i for i in archive.infolist() if i.filename.endswith(".json.gz")),
                key=lambda i: _member_order(i.filename),
            )
            for info in members:
                with archive.open(info) as member:
                    read_ndjson_gz(
                        member,
                        name=f"{label}:{info.filename}",
                        aggregator=aggregator,
                        stats=stats,
                    )
    except zipfile.BadZipFile as exc:
        raise DataError(
            f"Amplitude export {label} is not a readable ZIP ({_reason(exc)})"
        ) from None


def _member_order(name: str) -> tuple[int | str, ...]:
    match = FILE_RE.match(name.rsplit("/", 1)[-1])
    if match is None:
        return (1, name)
    pid, file_day, hour, n = match.groups()
    return (0, int(pid), file_day, int(hour), int(n))


# --- progress ---------------------------------------------------------------------------------


@contextmanager
def _progress_bar(
    enabled: bool, *, total: int | None, what: str
) -> Iterator[Callable[[int], object]]:
    """A rich byte progress bar when enabled; a no-op callable otherwise."""
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.advance(task, n)


# --- the contract -----------------------------------------------------------------------------


def day_increments(
    *,
    settings: Settings,
    day: date,
    class_ids: Collection[int] | None,
    progress: bool = False,
) -> pd.DataFrame:
    """The engagement increment frame of local day ``day`` (``lof.features.definitions`` engagement
    frame).

    Reads the folder source or the Export API (``LOF_AMPLITUDE_SOURCE``), counts only
    ``Page Load`` events of the given classes (all classes when ``class_ids`` is None),
    deduplicated by uuid within the day and against the previous day's last upload hours
    (``LOF_DEDUPE_LOOKBACK_HOURS``). ``frame.attrs["amplitude"]`` holds the read counts.
    """
    if class_ids is not None and len(class_ids) == 0:
        return empty_engagement()
    start, end = day_window(day=day, tz=settings.tz)
    began = time.perf_counter()
    # Re-sent events can cross the day boundary: the last hours of D-1, already counted there,
    # seed the uuids seen so their copies uploaded on D count once in all.
    lookback = EngagementAggregator(class_ids=class_ids)
    if settings.dedupe_lookback_hours:
        lookback_start = start - timedelta(hours=settings.dedupe_lookback_hours)
        _read_window(
            settings=settings,
            start=lookback_start,
            end=start - timedelta(hours=1),
            aggregator=lookback,
            stats=ReadStats(),
            progress=False,
        )
    aggregator = EngagementAggregator(class_ids=class_ids, seen=lookback.seen_uuids)
    stats = ReadStats()
    _read_window(
        settings=settings,
        start=start,
        end=end,
        aggregator=aggregator,
        stats=stats,
        progress=progress,
    )
    check_malformed(stats=stats, max_fraction=settings.malformed_max_fraction, day=day)
    frame = aggregator.frame()
    frame.attrs["amplitude"] = {
        "day": f"{day:%Y%m%d}",
        "window": _window_text(start, end),
        "files": stats.files,
        "lines": stats.lines,
        "parsed": stats.parsed,
        "malformed": stats.malformed,
        "counted": aggregator.counted,
        "duplicates": aggregator.duplicates,
        "unattributed": aggregator.unattributed,
        "seconds": round(time.perf_counter() - began, 3),
    }
    log.info("Amplitude %s: %s", f"{day:%Y%m%d}", frame.attrs["amplitude"])
    return frame


def _read_window(
    *,
    settings: Settings,
    start: datetime,
    end: datetime,
    aggregator: EngagementAggregator,
    stats: ReadStats,
    progress: bool,
) -> None:
    """Feed every event uploaded in the UTC hours ``start..end`` to ``aggregator``."""
    if settings.amplitude_is_http:
        _credentials(settings)
        with tempfile.TemporaryDirectory(prefix="lof-amplitude-") as tmp:
            for archive in export_archives(
                settings=settings, start=start, end=end, workdir=Path(tmp), progress=progress
            ):
                read_archive(archive, aggregator=aggregator, stats=stats, label=archive.name)
    else:
        root = Path((settings.amplitude_source or "").removeprefix("file://"))
        _read_folder(
            root=root, start=start, end=end, aggregator=aggregator, stats=stats, progress=progress
        )


__all__ = [
    "ReadStats",
    "day_increments",
    "day_window",
    "download_export",
    "export_archives",
    "folder_files",
    "gzip_line_blocks",
    "read_archive",
    "read_ndjson_gz",
]
