"""Students left out of everything lof computes: the opt-out list applied to ids.

The list holds keyed pseudonyms (``lof.governance.pseudonyms``), never ids, so a run turns the ids
it meets into pseudonyms to recognise opted-out students. The daily run does it as the day's
inputs arrive (D-1's state, the Amplitude increment, LEB2's records), before anything is
stored, scaled or scored; the retrain does it before scaling each class's cohort. What a run
left out of a class is remembered per class and day (``PrivacyStore.replace_hidden``), so the
class page can say how many students it does not show.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import date

import numpy as np
import pandas as pd

from lof.core.config import Settings
from lof.core.errors import ConfigError
from lof.features import state as feature_state
from lof.governance import pseudonyms
from lof.stores import compact
from lof.stores.privacy import PrivacyStore, open_privacy_store

Found = dict[int, set[str]]
"""Per class, the pseudonyms of the opted-out students a run met (and left out)."""


class Exclusions:
    """The opt-out list of one run, with the pseudonyms of the ids it has met."""

    def __init__(self, names: pseudonyms.Pseudonyms | None, opted_out: Collection[str]) -> None:
        self.names = names
        self.opted_out = frozenset(opted_out)

    def __bool__(self) -> bool:
        return bool(self.opted_out)

    def excluded(self, user_ids: Iterable[int]) -> set[int]:
        """The ids among ``user_ids`` that are opted out."""
        if not self.opted_out or self.names is None:
            return set()
        return {u for u in {int(u) for u in user_ids} if self.names.of(u) in self.opted_out}

    def drop(self, frame: pd.DataFrame, found: Found | None = None) -> pd.DataFrame:
        """``frame`` (with ``class_id`` and ``user_id``) without opted-out students' rows."""
        if not self.opted_out or frame.empty:
            return frame
        gone = self.excluded(frame["user_id"].unique().tolist())
        if not gone:
            return frame
        dropped = frame["user_id"].isin(gone)
        self._note(found, frame.loc[dropped, ["class_id", "user_id"]].itertuples(index=False))
        return frame[~dropped].reset_index(drop=True)

    def drop_rows(
        self, classes: Mapping[int, feature_state.ClassRows], found: Found | None = None
    ) -> dict[int, feature_state.ClassRows]:
        """Per-class state arrays without opted-out students (the same arrays when none is)."""
        if not self.opted_out:
            return dict(classes)
        out = {}
        for class_id, rows in classes.items():
            gone = self.excluded(rows.users.tolist())
            if gone:
                self._note(found, ((class_id, u) for u in gone))
                rows = compact.without_users(rows, np.array(sorted(gone), dtype=np.int64))
            out[class_id] = rows
        return out

    def _note(self, found: Found | None, pairs: Iterable[tuple[int, int]]) -> None:
        if found is None or self.names is None:
            return
        for class_id, user_id in pairs:
            found.setdefault(int(class_id), set()).add(self.names.of(int(user_id)))


NO_EXCLUSIONS = Exclusions(None, ())


def load(settings: Settings, store: PrivacyStore | None = None) -> Exclusions:
    """The opt-out list of LOF_STORE_URL, checked against LOF_PSEUDONYM_SECRET: ConfigError
    when students are on the list and the secret is missing or not the one they were recorded
    under (scoring them would ignore their opt-out)."""
    own = store is None
    store = store if store is not None else open_privacy_store(settings.store_url)
    try:
        listed = store.opted_out()
        names = pseudonyms.optional(settings)
        if names is None:
            if listed:
                raise ConfigError(
                    f"{len(listed)} student(s) are on the opt-out list but "
                    f"{pseudonyms.SECRET_VARIABLE} is not set; set it to the secret they were "
                    "recorded under so they stay left out"
                )
            return NO_EXCLUSIONS
        store.check_secret(names.fingerprint(), record=False)
        return Exclusions(names, listed)
    finally:
        if own:
            store.close()


def day_hidden(
    *,
    store: PrivacyStore,
    exclusions: Exclusions,
    day: date,
    class_ids: Collection[int],
    found: Found,
) -> dict[int, set[str]]:
    """Who each class does not show on ``day``: those it hid on its latest earlier day (a
    cohort member stays one) and those met today, if still opted out. Only the classes that
    hid someone before or today are named (their rows of ``day`` are then replaced)."""
    if not exclusions:
        return {}
    earlier = store.hidden_before(day=day, class_ids=class_ids)
    return {
        c: (earlier.get(c, set()) | found.get(c, set())) & exclusions.opted_out
        for c in sorted({int(c) for c in class_ids})
        if c in earlier or c in found
    }


__all__ = ["NO_EXCLUSIONS", "Exclusions", "Found", "day_hidden", "load"]
