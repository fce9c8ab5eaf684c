"""The cyclic collector pause around building a day's rows (lof.collector)."""

from __future__ import annotations

import gc

import pytest

from lof.core.collector import no_cycle_collection


def test_the_pause_ends_as_the_caller_had_the_collector() -> None:
    assert gc.isenabled()
    with no_cycle_collection():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError), no_cycle_collection():
        raise ValueError("a refused frame")
    assert gc.isenabled()
    gc.disable()
    try:
        with no_cycle_collection():
            pass
        assert not gc.isenabled()  # a caller that paused it keeps it paused
    finally:
        gc.enable()
