"""The Amplitude Export API client against a local HTTP server serving real-format ZIP exports.

The server (http.server in a thread) answers like Amplitude: a ZIP of
``<pid>/<pid>_<date>_<H>#<n>.json.gz`` members, 404 for an empty range, 400 for a range it finds
too large, and on demand 429, 500, 401, truncated, corrupt and slow bodies. Nothing reaches the
internet.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import orjson
import pytest

from lof.core.config import get_settings
from lof.core.errors import ConfigError, DataError, SourceError
from lof.sources import amplitude

PID = 187520
BASE = "https://leb2.example.ac.th"
KEY, SECRET = "api-key-1", "s3cret-value-xyz"
DAY = date(2023, 3, 25)  # Asia/Bangkok: hours 2023-03-24T17 .. 2023-03-25T16 UTC


def event(uuid: str, url: str, *, user: str = "7", session: int = 1) -> dict:
    return {
        "uuid": uuid,
        "user_id": user,
        "session_id": session,
        "event_type": "Page Load",
        "event_properties": {"CURRENT_URL": url},
    }


class ExportServer:
    """What the fake Amplitude serves, and what it was asked."""

    def __init__(self) -> None:
        self.members: dict[datetime, list[tuple[str, bytes]]] = {}
        self.max_hours: int | None = None
        self.script: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self.auth_headers: list[str | None] = []
        self.slow_seconds = 1.0
        self.lock = threading.Lock()

    def add_hour(self, hour: datetime, lines: list, *, n: int = 0) -> None:
        name = f"{PID}/{PID}_{hour:%Y-%m-%d}_{hour.hour}#{n}.json.gz"
        body = b"".join((x if isinstance(x, bytes) else orjson.dumps(x)) + b"\n" for x in lines)
        self.members.setdefault(hour, []).append((name, gzip.compress(body)))

    def add_raw_member(self, hour: datetime, name: str, data: bytes) -> None:
        self.members.setdefault(hour, []).append((name, data))

    def archive(self, start: datetime, end: datetime) -> bytes | None:
        chosen = [m for h, ms in sorted(self.members.items()) if start <= h <= end for m in ms]
        if not chosen:
            return None
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
            for name, data in chosen:
                archive.writestr(name, data)
        return buffer.getvalue()

    def next_action(self) -> str | None:
        with self.lock:
            return self.script.pop(0) if self.script else None


def make_handler(state: ExportServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = parse_qs(url.query)
            if url.path != "/api/2/export":
                self._send(404)
                return
            start_text, end_text = query["start"][0], query["end"][0]
            with state.lock:
                state.requests.append((start_text, end_text))
                state.auth_headers.append(self.headers.get("Authorization"))
            start = datetime.strptime(start_text, "%Y%m%dT%H")
            end = datetime.strptime(end_text, "%Y%m%dT%H")
            action = state.next_action()
            hours = int((end - start) / timedelta(hours=1)) + 1
            if action == "401":
                self._send(401, b"Invalid API key")
            elif action == "429":
                self._send(429, b"Too many requests", {"Retry-After": "2"})
            elif action == "500":
                self._send(500, b"Internal error")
            elif state.max_hours is not None and hours > state.max_hours:
                self._send(400, b"Export too large")
            else:
                body = state.archive(start, end)
                if body is None:
                    self._send(404, b"No data")
                elif action == "truncate":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                elif action == "truncate-no-length":
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                elif action == "garbage":
                    self._send(200, b"<html>maintenance</html>")
                elif action == "slow":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[:10])
                    self.wfile.flush()
                    time.sleep(state.slow_seconds)
                    with contextlib.suppress(OSError):
                        self.wfile.write(body[10:])
                else:
                    self._send(200, body, {"Content-Type": "application/zip"})

    return Handler


@pytest.fixture
def export_server() -> Iterator[tuple[ExportServer, str]]:
    state = ExportServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Real sleeps, but short: the backoff base and the Retry-After cap are scaled down."""
    slept: list[float] = []
    real_sleep = time.sleep
    monkeypatch.setattr(amplitude, "BACKOFF_BASE_SECONDS", 0.01)
    monkeypatch.setattr(amplitude, "RETRY_AFTER_CAP_SECONDS", 0.05)

    def recording_sleep(seconds: float) -> None:
        slept.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(amplitude.time, "sleep", recording_sleep)
    return slept


def http_settings(base: str, **overrides):
    values = {
        "amplitude_source": base,
        "amplitude_api_key": KEY,
        "amplitude_secret_key": SECRET,
        "http_retries": 3,
        "http_timeout_seconds": 5.0,
        "dedupe_lookback_hours": 0,  # one request per day; the look-back has its own test
    }
    return get_settings(**(values | overrides))


def fill_day(state: ExportServer) -> None:
    state.add_hour(datetime(2023, 3, 24, 16), [event("before", f"{BASE}/class/1")])  # day 24
    state.add_hour(datetime(2023, 3, 24, 17), [event("a", f"{BASE}/class/1/activity/4")])
    state.add_hour(datetime(2023, 3, 25, 2), [event("b", f"{BASE}/class/1/submission")], n=0)
    state.add_hour(
        datetime(2023, 3, 25, 2),
        [event("c", f"{BASE}/class/2", user="8"), event("a", f"{BASE}/class/1/activity/4")],
        n=1,
    )
    state.add_hour(datetime(2023, 3, 25, 16), [event("d", f"{BASE}/class/1", session=2)])
    state.add_hour(datetime(2023, 3, 25, 17), [event("after", f"{BASE}/class/1")])  # day 26


def views(frame) -> dict[tuple[int, int], int]:
    return {
        (int(c), int(u)): int(v)
        for c, u, v in zip(
            frame["class_id"], frame["user_id"], frame["class_view_count"], strict=True
        )
    }


def test_exports_the_local_day_with_basic_auth_and_cleans_up(
    export_server, lof_home, tmp_path, monkeypatch
):
    state, base = export_server
    fill_day(state)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(amplitude.tempfile, "tempdir", str(scratch))
    settings = http_settings(base, dedupe_lookback_hours=3)
    frame = amplitude.day_increments(settings=settings, day=DAY, class_ids=[1, 2], progress=True)
    # The previous day's last three hours first (their uuids only), then the day itself.
    assert state.requests == [("20230324T14", "20230324T16"), ("20230324T17", "20230325T16")]
    expected_auth = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    assert state.auth_headers == [expected_auth] * 2
    assert views(frame) == {(1, 7): 3, (2, 8): 1}  # "a" twice in the day counts once
    one = frame[frame["class_id"] == 1].iloc[0]
    assert one["activity_ids"] == (4,) and one["session_ids"] == (1, 2)
    assert int(one["submit_button_clicked"]) == 1
    assert frame.attrs["amplitude"]["duplicates"] == 1
    assert list(scratch.iterdir()) == []  # the ZIP went to disk and was removed


def test_404_is_an_empty_day(export_server, lof_home):
    state, base = export_server
    frame = amplitude.day_increments(settings=http_settings(base), day=DAY, class_ids=None)
    assert frame.empty and len(state.requests) == 1


def test_400_splits_the_window_until_it_fits(export_server, lof_home):
    state, base = export_server
    fill_day(state)
    state.max_hours = 5
    frame = amplitude.day_increments(settings=http_settings(base), day=DAY, class_ids=None)
    assert views(frame) == {(1, 7): 3, (2, 8): 1}
    served = []
    for start_text, end_text in state.requests:
        start = datetime.strptime(start_text, "%Y%m%dT%H")
        end = datetime.strptime(end_text, "%Y%m%dT%H")
        hours = int((end - start) / timedelta(hours=1)) + 1
        if hours <= 5:
            served.extend(start + timedelta(hours=i) for i in range(hours))
    assert sorted(served) == [datetime(2023, 3, 24, 17) + timedelta(hours=i) for i in range(24)]
    assert state.requests[0] == ("20230324T17", "20230325T16")
    assert ("20230324T17", "20230325T04") in state.requests  # the first half


def test_400_for_a_single_hour_fails_clearly(export_server, lof_home):
    state, base = export_server
    fill_day(state)
    state.max_hours = 0
    with pytest.raises(SourceError, match=r"too large \(HTTP 400\) even for one hour"):
        amplitude.day_increments(settings=http_settings(base), day=DAY, class_ids=None)
    # Depth first: 24 -> 12 -> 6 -> 3 -> 1 hour, then it stops at the first refused hour.
    assert [s for s, _ in state.requests] == ["20230324T17"] * 5
    assert state.requests[-1] == ("20230324T17", "20230324T17")


def test_429_and_500_are_retried_respecting_capped_retry_after(
    export_server, lof_home, fast_backoff
):
    state, base = export_server
    fill_day(state)
    state.script = ["429", "500"]
    frame = amplitude.day_increments(settings=http_settings(base), day=DAY, class_ids=None)
    assert views(frame) == {(1, 7): 3, (2, 8): 1}
    assert len(state.requests) == 3
    assert fast_backoff[0] == pytest.approx(0.05)  # Retry-After: 2, capped
    assert 0 <= fast_backoff[1] <= 0.02  # full jitter over base * 2


def test_persistent_5xx_gives_up_naming_window_and_status(export_server, lof_home, fast_backoff):
    state, base = export_server
    fill_day(state)
    state.script = ["500"] * 10
    with pytest.raises(SourceError) as info:
        amplitude.day_increments(settings=http_settings(base), day=DAY, class_ids=None)
    message = str(info.value)
    assert "20230324T17-20230325T16" in message and "HTTP 500" in message
    assert "failed 3 times" in message
    assert SECRET not in message and KEY not in message
    assert len(state.requests) == 3


@pytest.mark.parametrize("action", ["truncate", "truncate-no-length", "garbage"])
def test_truncated_or_corrupt_body_is_downloaded_again(
    export_server, lof_home, fast_backoff, action
):
    state, base = export_server
    fill_day(state)
    state.script = [action]
    frame = amplitude.day_increments(settings=http_settings(base), day=DAY, class_ids=None)
    assert views(frame) == {(1, 7): 3, (2, 8): 1}
    assert len(state.requests) == 2


def test_slow_body_times_out_and_is_retried(export_server, lof_home, fast_backoff):
    state, base = export_server
    fill_day(state)
    state.slow_seconds = 1.0
    state.script = ["slow"]
    settings = http_settings(base, http_timeout_seconds=0.2)
    frame = amplitude.day_increments(settings=settings, day=DAY, class_ids=None)
    assert views(frame) == {(1, 7): 3, (2, 8): 1}
    assert len(state.requests) == 2

    state.script = ["slow"] * 3
    with pytest.raises(SourceError, match="failed 3 times, last: timeout"):
        amplitude.day_increments(settings=settings, day=DAY, class_ids=None)


def test_missing_credentials_are_a_config_error_before_any_request(export_server, lof_home):
    state, base = export_server
    with pytest.raises(ConfigError, match="LOF_AMPLITUDE_API_KEY and LOF_AMPLITUDE_SECRET_KEY"):
        amplitude.day_increments(
            settings=get_settings(amplitude_source=base, amplitude_api_key=KEY),
            day=DAY,
            class_ids=None,
        )
    assert state.requests == []


def test_refused_credentials_are_not_retried_and_not_printed(export_server, lof_home):
    state, base = export_server
    state.script = ["401"]
    with pytest.raises(SourceError, match="HTTP 401: check LOF_AMPLITUDE_API_KEY") as info:
        amplitude.day_increments(settings=http_settings(base), day=DAY, class_ids=None)
    assert SECRET not in str(info.value)
    assert len(state.requests) == 1


def test_corrupt_gzip_member_in_the_archive_fails_naming_it(export_server, lof_home):
    state, base = export_server
    fill_day(state)
    good = gzip.compress(b"".join(orjson.dumps(event(f"z{i}", f"{BASE}/class/1")) + b"\n"
                                  for i in range(100)))  # fmt: skip
    name = f"{PID}/{PID}_2023-03-25_5#0.json.gz"
    state.add_raw_member(datetime(2023, 3, 25, 5), name, good[: len(good) // 2])
    with pytest.raises(DataError, match=rf"{name} is corrupt after line"):
        amplitude.day_increments(settings=http_settings(base), day=DAY, class_ids=None)


def test_malformed_lines_in_the_archive_over_the_threshold(export_server, lof_home, caplog):
    state, base = export_server
    lines = [event(f"m{i}", f"{BASE}/class/1") for i in range(20)]
    state.add_hour(datetime(2023, 3, 25, 6), [*lines[:10], b'{"event_type": "Page Load"', *lines])
    with pytest.raises(DataError, match=r"1 of 31 lines are malformed.*_6#0\.json\.gz line 11"):
        amplitude.day_increments(
            settings=http_settings(base, malformed_max_fraction=0.01), day=DAY, class_ids=None
        )
    frame = amplitude.day_increments(
        settings=http_settings(base, malformed_max_fraction=0.05), day=DAY, class_ids=None
    )
    assert views(frame) == {(1, 7): 20}
    assert "1 malformed line(s)" in caplog.text


def test_download_export_writes_the_archive_to_the_target(export_server, tmp_path):
    state, base = export_server
    fill_day(state)
    target = Path(tmp_path / "one.zip")
    with httpx.Client(auth=(KEY, SECRET), timeout=5) as client:
        found = amplitude.download_export(
            client,
            url=base + "/api/2/export",
            start=datetime(2023, 3, 25, 2),
            end=datetime(2023, 3, 25, 2),
            target=target,
            attempts=1,
        )
    assert found
    with zipfile.ZipFile(target) as archive:
        assert sorted(archive.namelist()) == [
            f"{PID}/{PID}_2023-03-25_2#0.json.gz",
            f"{PID}/{PID}_2023-03-25_2#1.json.gz",
        ]
