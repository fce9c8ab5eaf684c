"""Progress bars for long work, shown only where a person watches (a terminal on stderr)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def interactive() -> bool:
    """True when stderr is a terminal: a deployment's worker gets logs, not bars."""
    return sys.stderr.isatty()


@contextmanager
def count_bar(enabled: bool, *, what: str) -> Iterator[Callable[[int, int], None] | None]:
    """A transient rich bar on stderr fed with (done, total), or None when not enabled."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
