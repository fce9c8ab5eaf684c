"""Teachers' actions in the synthetic university: a share of flagged students gets one, with a
modest effect on their final outcome, so the outcome report (``lof.training.outcomes``) has
something to find in tests and in the demo.

Kept apart from ``lof.synth`` (whose LEB2 and Amplitude data the other tests rely on, unchanged):
given flagged students (risk and progress on the day they were first flagged), teachers act
more often for the riskier ones (``share`` on average, so a naive comparison is confounded by
risk), and a student finishes below the required level with probability ``risk`` less
``effect`` when acted for. The true effect on those acted for is therefore ``-effect``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd

from lof.core.calendar import format_day

if TYPE_CHECKING:
    from lof.interventions import InterventionRecord

DEFAULT_SHARE = 0.3
DEFAULT_EFFECT = 0.15
SYNTHETIC_TEACHER = "t-synthetic"


def simulate_outcomes(
    flags: pd.DataFrame,
    *,
    share: float = DEFAULT_SHARE,
    effect: float = DEFAULT_EFFECT,
    seed: int = 0,
) -> pd.DataFrame:
    """``flags`` (risk, progress) with ``intervened`` and ``failed`` drawn as described above."""
    rng = np.random.default_rng(seed)
    risk = flags["risk"].to_numpy(dtype=float)
    weight = risk / risk.mean() if len(risk) and risk.mean() > 0 else np.ones(len(risk))
    intervened = rng.random(len(risk)) < np.clip(share * weight, 0.0, 1.0)
    p_fail = np.clip(risk - effect * intervened, 0.0, 1.0)
    out = flags.copy()
    out["intervened"] = intervened
    out["failed"] = rng.random(len(risk)) < p_fail
    return out


def simulate_flags(
    *,
    n: int,
    share: float = DEFAULT_SHARE,
    effect: float = DEFAULT_EFFECT,
    seed: int = 0,
) -> pd.DataFrame:
    """``n`` flagged students of a synthetic semester (risk 0.5-0.95, progress 5-90 %)."""
    rng = np.random.default_rng(seed)
    flags = pd.DataFrame(
        {
            "class_id": rng.integers(1, 20, size=n),
            "user_id": np.arange(600_000, 600_000 + n),
            "flag_day": [None] * n,
            "risk": rng.uniform(0.5, 0.95, size=n),
            "progress": rng.uniform(0.05, 0.9, size=n),
        }
    )
    return simulate_outcomes(flags, share=share, effect=effect, seed=seed + 1)


class ActionStore(Protocol):
    """Where teachers' actions are kept (``lof.stores.interventions``)."""

    def put(self, record: InterventionRecord) -> object: ...


def record_interventions(store: ActionStore, flags: pd.DataFrame, *, delay_days: int = 2) -> int:
    """Store a ``contacted`` action ``delay_days`` after the flag day for each student of
    ``flags`` with ``intervened`` (the demo's class pages then show them); returns how many."""
    from lof.interventions import InterventionRecord

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    count = 0
    for row in flags[flags["intervened"]].itertuples():
        store.put(
            InterventionRecord(
                class_id=int(row.class_id),
                user_id=int(row.user_id),
                teacher_id=SYNTHETIC_TEACHER,
                action_dt=format_day(row.flag_day + timedelta(days=delay_days)),
                action="contacted",
                note=None,
                source="api",
                updated_at=now,
            )
        )
        count += 1
    return count


__all__ = [
    "DEFAULT_EFFECT",
    "DEFAULT_SHARE",
    "record_interventions",
    "simulate_flags",
    "simulate_outcomes",
]
