"""Lead time: how early the warnings reach the students who end below the required level.

ROC-AUC says how well a risk ranks; a teacher feels something else: of the students who will
end below the required level, how many were flagged while there was time to act, how far into
the course the first flag came, and how many flags at the first quarter were false alarms.
One plain function on a frame, so the retrain report, the quality benchmark and per-group
figures compute it the same way.

Input frame (one row per class, student and progress point scored; ``FRAME_COLUMNS``):
``class_id``, ``user_id``, ``progress`` (0-1, e.g. 0.1/0.25/0.5/0.75), ``flagged`` (at risk
at that point, bool) and ``below`` (the student ended below the required level, bool).

Figures (``lead_time``; names as logged to MLflow, each prefixed there by where it was
measured, e.g. ``holdout_``):

* ``lead_caught_by_10`` / ``_25`` / ``_50``: among the students who end below, the share
  flagged at some progress point up to and including 10 / 25 / 50 % (a student flagged at 10 %
  and not at 25 % was warned about by 25 %);
* ``lead_median_first_flag``: among those ever flagged (at any point in the frame), the
  median progress of their first flag (NaN when none);
* ``lead_never_flagged``: the share of them never flagged at any point in the frame;
* ``lead_false_alarms_at_25``: among the students flagged at the 25 % point, the share who
  did not end below (NaN when nobody was flagged there).

Students are (class_id, user_id) pairs; a point is matched within 0.001.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FRAME_COLUMNS: tuple[str, ...] = ("class_id", "user_id", "progress", "flagged", "below")
CAUGHT_POINTS: tuple[float, ...] = (0.1, 0.25, 0.5)
FALSE_ALARM_POINT = 0.25
METRIC_NAMES: tuple[str, ...] = (
    *(f"lead_caught_by_{round(p * 100)}" for p in CAUGHT_POINTS),
    "lead_median_first_flag",
    "lead_never_flagged",
    f"lead_false_alarms_at_{round(FALSE_ALARM_POINT * 100)}",
)
_TOLERANCE = 1e-3


def lead_time(frame: pd.DataFrame) -> dict[str, float]:
    """The ``METRIC_NAMES`` figures of a (class, student, point, flag, outcome) frame."""
    missing = [c for c in FRAME_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"lead time frame lacks column(s) {', '.join(missing)}")
    rows = pd.DataFrame(
        {
            "class_id": frame["class_id"].to_numpy(),
            "user_id": frame["user_id"].to_numpy(),
            "progress": frame["progress"].to_numpy(dtype=float),
            "flagged": frame["flagged"].to_numpy(dtype=bool),
            "below": frame["below"].to_numpy(dtype=bool),
        }
    )
    n_below, first_flag = _first_flags(rows)
    out: dict[str, float] = {}
    for point in CAUGHT_POINTS:
        caught = int((first_flag <= point + _TOLERANCE).sum())
        out[f"lead_caught_by_{round(point * 100)}"] = caught / n_below if n_below else np.nan
    out["lead_median_first_flag"] = float(first_flag.median()) if len(first_flag) else np.nan
    out["lead_never_flagged"] = 1 - len(first_flag) / n_below if n_below else np.nan
    at_point = rows[np.isclose(rows["progress"], FALSE_ALARM_POINT, atol=_TOLERANCE)]
    flagged = at_point[at_point["flagged"]]
    name = f"lead_false_alarms_at_{round(FALSE_ALARM_POINT * 100)}"
    out[name] = float((~flagged["below"]).mean()) if len(flagged) else np.nan
    return {k: float(v) for k, v in out.items()}


def caught_by(frame: pd.DataFrame, point: float) -> float:
    """Among the students of ``frame`` who end below, the share flagged at some progress point
    up to and including ``point`` (NaN without such a student)."""
    n_below, first_flag = _first_flags(frame)
    return int((first_flag <= point + _TOLERANCE).sum()) / n_below if n_below else np.nan


def _first_flags(frame: pd.DataFrame) -> tuple[int, pd.Series]:
    """How many students end below, and the progress of each one's first flag."""
    keys = ["class_id", "user_id"]
    below = frame[frame["below"].to_numpy(dtype=bool)]
    n_below = len(below[keys].drop_duplicates())
    flagged = below[below["flagged"].to_numpy(dtype=bool)]
    return n_below, flagged.groupby(keys)["progress"].min()


def lead_time_of_examples(
    examples: pd.DataFrame, *, risk: np.ndarray, threshold: float | np.ndarray
) -> dict[str, float]:
    """``lead_time`` of scored examples (``class_id``, ``user_id``, ``progress``, ``label``,
    ``required_level``): flagged = risk at or above the threshold (one, or one per row)."""
    frame = pd.DataFrame(
        {
            "class_id": examples["class_id"].to_numpy(),
            "user_id": examples["user_id"].to_numpy(),
            "progress": examples["progress"].to_numpy(dtype=float),
            "flagged": np.asarray(risk, dtype=float) >= np.asarray(threshold, dtype=float),
            "below": examples["label"].to_numpy(dtype=int)
            < examples["required_level"].to_numpy(dtype=int),
        }
    )
    return lead_time(frame)


__all__ = ["FRAME_COLUMNS", "METRIC_NAMES", "caught_by", "lead_time", "lead_time_of_examples"]
