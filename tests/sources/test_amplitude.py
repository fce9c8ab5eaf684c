"""The Amplitude folder source and the shared streaming reader, on real gzip NDJSON files."""

from __future__ import annotations

import gzip
import logging
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from lof.core.config import get_settings
from lof.core.errors import DataError, SourceError
from lof.features.definitions import ENGAGEMENT_COLUMNS
from lof.sources import amplitude

PID = 100001
BASE = "https://leb2.example.ac.th"


def event(uuid: str, url: str, *, user: str = "7", session: int = 1, kind: str = "Page Load"):
    return {
        "uuid": uuid,
        "user_id": user,
        "session_id": session,
        "event_type": kind,
        "event_time": "2023-03-24 16:59:59.000000",
        "event_properties": {"CURRENT_URL": url},
        "user_properties": {"faculty": "engineering"},
    }


def write_hour(root: Path, day: str, hour: int, lines: list, *, n: int = 0, pid: int = PID):
    folder = root / str(pid)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{pid}_{day}_{hour}#{n}.json.gz"
    body = b"".join((x if isinstance(x, bytes) else orjson.dumps(x)) + b"\n" for x in lines)
    path.write_bytes(gzip.compress(body))
    return path


def settings_for(root: Path, **overrides):
    return get_settings(amplitude_source=str(root), **overrides)


def counts(frame) -> dict[tuple[int, int], int]:
    return {
        (int(c), int(u)): int(v)
        for c, u, v in zip(
            frame["class_id"], frame["user_id"], frame["class_view_count"], strict=True
        )
    }


def test_day_window_is_the_local_day_in_upload_hours():
    bangkok = ZoneInfo("Asia/Bangkok")
    assert amplitude.day_window(day=date(2023, 3, 25), tz=bangkok) == (
        datetime(2023, 3, 24, 17),
        datetime(2023, 3, 25, 16),
    )
    # A DST day has 23 hours; a half-hour zone starts at the next whole UTC hour.
    start, end = amplitude.day_window(day=date(2023, 3, 12), tz=ZoneInfo("America/New_York"))
    assert (start, end) == (datetime(2023, 3, 12, 5), datetime(2023, 3, 13, 3))
    assert len(amplitude.window_hours(start, end)) == 23
    kolkata = amplitude.day_window(day=date(2023, 3, 25), tz=ZoneInfo("Asia/Kolkata"))
    assert kolkata == (datetime(2023, 3, 24, 19), datetime(2023, 3, 25, 18))


def test_boundary_hours_16_and_17_utc_fall_on_different_local_days(lof_home, tmp_path):
    root = tmp_path / "amplitude"
    write_hour(root, "2023-03-24", 16, [event("a", f"{BASE}/class/1/activity")])
    write_hour(root, "2023-03-24", 17, [event("b", f"{BASE}/class/1/activity/3")])
    write_hour(root, "2023-03-25", 16, [event("c", f"{BASE}/class/1")])
    write_hour(root, "2023-03-25", 17, [event("d", f"{BASE}/class/1")])  # next day
    settings = settings_for(root)
    day24 = amplitude.day_increments(settings=settings, day=date(2023, 3, 24), class_ids=None)
    day25 = amplitude.day_increments(settings=settings, day=date(2023, 3, 25), class_ids=None)
    assert counts(day24) == {(1, 7): 1} and int(day24["activity_page_view"].iloc[0]) == 1
    assert counts(day25) == {(1, 7): 2} and day25["activity_ids"].iloc[0] == (3,)
    assert list(day25.columns) == list(ENGAGEMENT_COLUMNS)
    assert day25.attrs["amplitude"]["files"] == 2


def test_an_event_re_sent_after_midnight_counts_on_its_first_day_only(lof_home, tmp_path):
    root = tmp_path / "amplitude"
    write_hour(root, "2023-03-24", 15, [event("a", f"{BASE}/class/1/activity/5")])
    write_hour(root, "2023-03-24", 16, [event("b", f"{BASE}/class/1")])
    # Both re-sent in the next local day's first hours, beside a new event.
    write_hour(
        root,
        "2023-03-24",
        17,
        [event("a", f"{BASE}/class/1/activity/5"), event("c", f"{BASE}/class/1", session=2)],
    )
    write_hour(root, "2023-03-24", 18, [event("b", f"{BASE}/class/1")])
    settings = settings_for(root)
    day24 = amplitude.day_increments(settings=settings, day=date(2023, 3, 24), class_ids=[1])
    day25 = amplitude.day_increments(settings=settings, day=date(2023, 3, 25), class_ids=[1])
    assert counts(day24) == {(1, 7): 2}
    assert counts(day25) == {(1, 7): 1} and day25["session_ids"].iloc[0] == (2,)
    assert day25["activity_ids"].iloc[0] == ()
    assert day25.attrs["amplitude"]["duplicates"] == 2

    # The look-back is a setting: without it the copies count again.
    no_lookback = settings_for(root, dedupe_lookback_hours=0)
    again = amplitude.day_increments(settings=no_lookback, day=date(2023, 3, 25), class_ids=[1])
    assert counts(again) == {(1, 7): 3}


def test_folder_day_filters_dedupes_and_ignores_other_events(lof_home, tmp_path):
    root = tmp_path / "amplitude"
    write_hour(
        root,
        "2023-03-24",
        17,
        [
            event("a", f"{BASE}/class/1/activity/5"),
            event("b", f"{BASE}/class/12/activity/5"),  # another class
            event("c", f"{BASE}/class/1/activity/5", kind="Click"),
            event("d", f"{BASE}/dashboard"),
            event("e", f"{BASE}/class/1/submission", user="8", session=4),
        ],
    )
    # The same event again in a later file of the same day counts once.
    write_hour(root, "2023-03-25", 3, [event("a", f"{BASE}/class/1/activity/5")], n=1)
    (root / str(PID) / "notes.txt").write_text("not an export file")
    frame = amplitude.day_increments(
        settings=settings_for(root), day=date(2023, 3, 25), class_ids=[1]
    )
    assert counts(frame) == {(1, 7): 1, (1, 8): 1}
    assert frame.attrs["amplitude"]["duplicates"] == 1
    assert frame.attrs["amplitude"]["lines"] == 6


def test_empty_day_and_no_classes_give_an_empty_frame(lof_home, tmp_path):
    root = tmp_path / "amplitude"
    write_hour(root, "2023-03-24", 17, [event("a", f"{BASE}/class/1")])
    settings = settings_for(root)
    assert amplitude.day_increments(settings=settings, day=date(2023, 1, 1), class_ids=None).empty
    none = amplitude.day_increments(settings=settings, day=date(2023, 3, 25), class_ids=[])
    assert none.empty and list(none.columns) == list(ENGAGEMENT_COLUMNS)


def test_missing_folder_is_a_clear_source_error(lof_home, tmp_path):
    with pytest.raises(SourceError, match=r"LOF_AMPLITUDE_SOURCE=.*not a folder"):
        amplitude.day_increments(
            settings=settings_for(tmp_path / "nowhere"), day=date(2023, 3, 25), class_ids=None
        )


def test_malformed_lines_under_the_threshold_are_counted_and_reported(lof_home, tmp_path, caplog):
    root = tmp_path / "amplitude"
    good = [event(f"u{i}", f"{BASE}/class/1/activity/{i % 3}") for i in range(998)]
    write_hour(root, "2023-03-24", 18, [*good[:500], b'{"uuid": "x", "event_type": "Page Lo'])
    write_hour(root, "2023-03-24", 19, [*good[500:], b'{"event_type": "Page Load", class/1}'])
    caplog.set_level(logging.WARNING, logger="lof.sources.amplitude")
    frame = amplitude.day_increments(
        settings=settings_for(root, malformed_max_fraction=0.005),
        day=date(2023, 3, 25),
        class_ids=None,
    )
    assert counts(frame) == {(1, 7): 998}
    assert frame.attrs["amplitude"]["malformed"] == 2
    assert "2 malformed line(s) of 1000" in caplog.text
    assert f"{PID}_2023-03-24_18#0.json.gz line 501" in caplog.text


def test_malformed_lines_over_the_threshold_fail_naming_file_and_line(lof_home, tmp_path):
    root = tmp_path / "amplitude"
    lines = [event(f"u{i}", f"{BASE}/class/1") for i in range(10)]
    lines.insert(3, b"not json at all")  # not even a Page Load: still counted as malformed
    write_hour(root, "2023-03-24", 20, lines)
    with pytest.raises(DataError, match=r"1 of 11 lines are malformed.*_20#0\.json\.gz line 4"):
        amplitude.day_increments(
            settings=settings_for(root, malformed_max_fraction=0.05),
            day=date(2023, 3, 25),
            class_ids=None,
        )


def test_corrupt_gzip_fails_naming_the_file(lof_home, tmp_path):
    root = tmp_path / "amplitude"
    path = write_hour(
        root, "2023-03-24", 21, [event(f"u{i}", f"{BASE}/class/1") for i in range(50)]
    )
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated gzip member
    with pytest.raises(DataError, match=rf"{PID}_2023-03-24_21#0\.json\.gz is corrupt"):
        amplitude.day_increments(settings=settings_for(root), day=date(2023, 3, 25), class_ids=None)
    path.write_bytes(b"\x1f\x8b\x08\x00garbage" + data[20:])
    with pytest.raises(DataError, match="corrupt after line 0"):
        amplitude.day_increments(settings=settings_for(root), day=date(2023, 3, 25), class_ids=None)


def test_multi_member_gzip_and_crlf_lines_are_read(lof_home, tmp_path):
    root = tmp_path / "amplitude"
    folder = root / str(PID)
    folder.mkdir(parents=True)
    first = gzip.compress(orjson.dumps(event("a", f"{BASE}/class/2")) + b"\r\n")
    second = gzip.compress(orjson.dumps(event("b", f"{BASE}/class/2")))  # no final newline
    (folder / f"{PID}_2023-03-24_22#0.json.gz").write_bytes(first + second)
    frame = amplitude.day_increments(
        settings=settings_for(root), day=date(2023, 3, 25), class_ids=None
    )
    assert counts(frame) == {(2, 7): 2}
    assert frame.attrs["amplitude"]["malformed"] == 0


@pytest.mark.parametrize("chunk_bytes", [1, 7, 64, 1 << 20])
def test_line_blocks_match_gzip_whatever_the_chunk_size(chunk_bytes):
    import io

    lines = [orjson.dumps(event(f"u{i}", f"{BASE}/class/{i}/activity/{i}")) for i in range(200)]
    members = [
        gzip.compress(b"\n".join(lines[:70]) + b"\n"),
        gzip.compress(b"\n".join(lines[70:150]) + b"\n\n"),  # a blank line at the end
        gzip.compress(b"\n".join(lines[150:])),  # no final newline
    ]
    data = b"".join(members)
    got = [
        line
        for block in amplitude.gzip_line_blocks(io.BytesIO(data), chunk_bytes=chunk_bytes)
        for line in block
    ]
    assert [line for line in got if line] == lines
    assert got == gzip.decompress(data).split(b"\n")
    with pytest.raises(EOFError):
        list(amplitude.gzip_line_blocks(io.BytesIO(data[:-5]), chunk_bytes=chunk_bytes))
