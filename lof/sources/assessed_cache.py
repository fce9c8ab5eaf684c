"""Assessed records as of a day at a cost that follows the day's changes, not the semester's.

LEB2's ``act_sub_points`` has no timestamp, so "records changed since yesterday" cannot be asked
for directly. Instead, every day:

1. two aggregate queries (``leb2.activity_fingerprints``) return one row of checksums per
   activity: its dates, the count and sums of its live points/levels, the count, sums and latest
   time of its live submissions before the cutoff. The database still walks its index, but
   nothing per record crosses the wire or reaches pandas;
2. the activities whose checksums equal those cached from the last run take their rows from
   the cache; only the others (new activities, new or deleted submissions, new or changed
   grades, changed dates) are read in full (``leb2.assessed_rows`` restricted to them);
3. the rows and checksums are saved for the next run (one file, replaced atomically).

The result is the same frame ``leb2.assessed_records`` returns. The same checksums cover each
activity's latest live submission per student (``leb2.latest_submissions``, what the
early-warning signals read), so ``read`` returns those too, reread for the changed activities
only. What a checksum cannot see: an edit that keeps every count and sum equal (e.g. two grades
swapped between students on the same criterion, a ``spent_time`` rewritten to another value of
the same length, or an earlier submission's time moved while the activity's latest stays);
such a change shows when anything else about the activity changes, or when the cache file is
removed. Without a cache file (first run, another machine) the read is simply a full one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
from collections.abc import Callable, Collection
from datetime import datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from lof.sources import leb2

log = logging.getLogger(__name__)
CACHE_VERSION = 2  # 2: the latest submissions are kept too


def cache_path(*, home: Path, leb2_url: str) -> Path:
    """One cache file per LEB2 database (named by a hash of its URL, never the URL itself)."""
    digest = hashlib.sha256(leb2_url.encode()).hexdigest()[:16]
    return Path(home) / "cache" / f"assessed-{digest}.pkl"


def _load(path: Path | None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | None:
    if path is None or not path.exists():
        return None
    try:
        with path.open("rb") as handle:
            saved = pickle.load(handle)  # lof's own file, under LOF_HOME
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError):
        log.warning("ignoring unreadable assessed-records cache %s", path)
        return None
    if not isinstance(saved, tuple) or not saved or saved[0] != CACHE_VERSION:
        return None  # an older lof's cache: one full read rebuilds it
    _, prints, rows, submissions = saved
    return prints, rows, submissions


def _save(
    path: Path | None, prints: pd.DataFrame, rows: pd.DataFrame, submissions: pd.DataFrame
) -> None:
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        with temporary.open("wb") as handle:
            pickle.dump(
                (CACHE_VERSION, prints, rows, submissions), handle, protocol=pickle.HIGHEST_PROTOCOL
            )
        os.replace(temporary, path)
    except OSError as exc:  # a cache that cannot be written only costs the next run time
        log.warning("cannot write the assessed-records cache %s: %s", path, exc)


def assessed_records(
    engine: Engine,
    *,
    class_ids: Collection[int],
    until: datetime | None,
    cache: Path | None,
    stats: dict[str, int] | None = None,
) -> pd.DataFrame:
    """``leb2.assessed_records`` through the checksum cache at ``cache`` (None = no cache)."""
    records, _ = read(engine, class_ids=class_ids, until=until, cache=cache, stats=stats)
    return records


def read(
    engine: Engine,
    *,
    class_ids: Collection[int],
    until: datetime | None,
    cache: Path | None,
    stats: dict[str, int] | None = None,
    keep: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(``leb2.assessed_records``, ``leb2.latest_submissions(started=True)``) of ``class_ids``
    as of ``until``, through the checksum cache at ``cache`` (None = no cache).

    ``keep`` filters the rows (both frames) before they are returned and cached: the opted-out
    students' rows are never kept here. A cache written under a longer opt-out list lacks the
    rows of students who opted in since, so opting in removes the cache files
    (``remove_caches``)."""
    ids = sorted({int(c) for c in class_ids})
    cutoff = leb2.NO_CUTOFF if until is None else until
    prints = leb2.activity_fingerprints(engine, class_ids=ids, cutoff=cutoff)
    cached = _load(cache)
    changed = set(prints["activity_id"].tolist())
    reuse = reuse_subs = None
    if cached is not None:
        old_prints, old_records, old_subs = cached
        same = prints.merge(old_prints, on=list(prints.columns), how="inner")["activity_id"]
        unchanged = set(same.tolist())
        changed -= unchanged
        reuse = old_records[old_records["activity_id"].isin(unchanged)]
        reuse_subs = old_subs[old_subs["activity_id"].isin(unchanged)]
    if changed or reuse is None or reuse_subs is None:
        rows = leb2.assessed_rows(engine, class_ids=ids, cutoff=cutoff, activity_ids=changed)
        fresh = leb2.finish_records(engine, rows, ids)
        fresh_subs = leb2.latest_submissions(
            engine, class_ids=ids, cutoff=cutoff, activity_ids=changed
        )
        records = fresh if reuse is None or not len(reuse) else pd.concat([reuse, fresh])
        submissions = (
            fresh_subs
            if reuse_subs is None or not len(reuse_subs)
            else pd.concat([reuse_subs, fresh_subs])
        )
    else:
        records, submissions = reuse, reuse_subs
    records = records.sort_values(
        ["class_id", "user_id", "activity_id", "cri_id"], kind="stable"
    ).reset_index(drop=True)
    submissions = submissions.sort_values(
        ["class_id", "activity_id", "user_id"], kind="stable"
    ).reset_index(drop=True)
    if keep is not None:
        records, submissions = keep(records), keep(submissions)
    _save(cache, prints, records, submissions)
    if stats is not None:
        stats.update(
            activities=len(prints),
            reread=len(changed),
            rows=len(records),
            submissions=len(submissions),
        )
    return records, submissions


def remove_caches(home: Path) -> int:
    """Delete every assessed-records cache file under ``home`` (the next run reads LEB2 in
    full once); returns how many."""
    removed = 0
    for path in (Path(home) / "cache").glob("assessed-*.pkl"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed
