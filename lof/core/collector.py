"""Pausing Python's cyclic garbage collector while a day's rows are built.

Scoring a day builds tens of thousands of small containers at once (probability and feature
dicts, reasons, store rows). They hold no cycles and reference counting frees them, yet their
number alone sets off collections, among them full ones, each walking the whole heap (the
process's modules, models and frames, ~0.1 s) and finding nothing.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def no_cycle_collection() -> Iterator[None]:
    """No cyclic collection inside the block; afterwards the collector is as the caller had it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
