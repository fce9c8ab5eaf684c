"""The last written features state kept on local disk for the next daily run
(``open_feature_store(..., state_dir=...)``), on a real SQLite store."""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from pathlib import Path

import pytest

from lof.features import state as feature_state
from lof.stores import compact, open_feature_store

from .test_accumulate import DAY0, increment_of
from .test_contract import assert_frames_equal


def write_days(store, days: range, *, seed: int) -> None:
    """As the daily run does: D-1's state from the store, today's increment, D written."""
    rng = random.Random(seed)
    for n in days:
        day = DAY0 + timedelta(days=n)
        previous = store.read_state_rows(day=day - timedelta(days=1)) if n else {}
        increment = feature_state.split_frame(increment_of(rng, n, id_scale=10**12), what="i")
        store.write_day(
            day=day, increments=increment, states=feature_state.accumulate(previous, increment)
        )


def test_the_next_run_reads_yesterday_from_the_file_and_writes_the_same_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cache = f"sqlite:///{tmp_path / 'lof.db'}", tmp_path / "cache"
    write_days(open_feature_store(url, state_dir=cache), range(4), seed=5)
    expected = open_feature_store(url).read_states(day=DAY0 + timedelta(days=3))

    def no_decoding(blob: bytes) -> feature_state.ClassRows:
        raise AssertionError("the state was decoded from the store")

    next_run = open_feature_store(url, state_dir=cache)
    with monkeypatch.context() as patch:
        patch.setattr(compact, "decode", no_decoding)
        assert_frames_equal(
            feature_state.to_frame(next_run.read_state_rows(day=DAY0 + timedelta(days=3))), expected
        )
    write_days(next_run, range(4, 6), seed=6)
    by_store = open_feature_store(f"sqlite:///{tmp_path / 'plain.db'}")
    write_days(by_store, range(4), seed=5)
    write_days(by_store, range(4, 6), seed=6)
    for n in range(6):
        day = DAY0 + timedelta(days=n)
        assert_frames_equal(
            open_feature_store(url).read_states(day=day), by_store.read_states(day=day)
        )


def test_a_day_written_again_elsewhere_is_read_from_the_store(tmp_path: Path) -> None:
    url, cache = f"sqlite:///{tmp_path / 'lof.db'}", tmp_path / "cache"
    write_days(open_feature_store(url, state_dir=cache), range(3), seed=1)
    elsewhere = open_feature_store(url)  # another machine: no state file of its own
    day = DAY0 + timedelta(days=2)
    rewritten = increment_of(random.Random(9), 2, id_scale=10**12)
    state = feature_state.accumulate_frames(
        previous=elsewhere.read_states(day=day - timedelta(days=1)), increment=rewritten
    )
    elsewhere.write_day(day=day, increments=rewritten, states=state)
    read = open_feature_store(url, state_dir=cache).read_states(day=day)
    assert_frames_equal(read, elsewhere.read_states(day=day))


def test_an_unreadable_state_file_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, cache = f"sqlite:///{tmp_path / 'lof.db'}", tmp_path / "cache"
    write_days(open_feature_store(url, state_dir=cache), range(2), seed=2)
    (state_file,) = cache.iterdir()
    state_file.write_bytes(b"not a pickle")
    day = DAY0 + timedelta(days=1)
    with caplog.at_level(logging.WARNING):
        read = open_feature_store(url, state_dir=cache).read_states(day=day)
    assert_frames_equal(read, open_feature_store(url).read_states(day=day))
    assert "unreadable features state file" in caplog.text


def test_another_stores_state_file_is_not_taken_for_this_ones(tmp_path: Path) -> None:
    """Two stores sharing LOF_HOME: each write's stamp is its own, so neither reads the other's."""
    cache = tmp_path / "cache"
    urls = [f"sqlite:///{tmp_path / name}" for name in ("a.db", "b.db")]
    write_days(open_feature_store(urls[0], state_dir=cache), range(2), seed=3)
    write_days(open_feature_store(urls[1], state_dir=cache), range(2), seed=4)
    day = DAY0 + timedelta(days=1)
    for url in urls:
        assert_frames_equal(
            open_feature_store(url, state_dir=cache).read_states(day=day),
            open_feature_store(url).read_states(day=day),
        )
