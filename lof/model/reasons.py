"""Reasons a teacher can act on: the top drivers of each student's risk, in the teacher's terms.

Method (works for any model with ``predict_proba``): for each input column of the model, the
student's scaled value is replaced by the class cohort's median that day and ``risk_prob`` is
computed again; the change (actual risk - risk at the median) is that column's effect. The
three largest effects (by size, at least ``MIN_EFFECT``) are the reasons, each with its
direction. A column where the student is at the class median has effect 0 and never becomes a
reason, so a student at the median on everything gets none. For logistic regression and
histogram gradient boosting every column's effect is computed exactly from the model's
parameters (``lof.model.exact_effects``, one to two predictions of the cohort for boosting). Other
models have their variants predicted in one batch; with many students, a screening step keeps
that batch to about ``CANDIDATES + 1`` times the cohort (see ``CANDIDATES``). Inputs are
correlated (work not handed in also lowers attainment so far), so one input's effect is the
model's answer to "this alone at the median", which can point the other way than the raw
correlation.

Each reason is rendered with the student's raw value and the class median, e.g. "3 activities
past due not submitted (class median 0)".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from lof.core.collector import no_cycle_collection
from lof.model import exact_effects
from lof.model import outcome as lof_model
from lof.model.classifier import Classifier
from lof.stores.records import Reasons

TOP = 3
MIN_EFFECT = 0.01
"""Effects on risk_prob below one percentage point are noise, not a reason."""
CANDIDATES = 4
SAMPLE_ROWS = 300
"""Screening (see ``explain``): with many students, each student's ``CANDIDATES`` most
promising columns are measured exactly, ranked by distance from the class median times the
column's mean effect on an even sample of ``SAMPLE_ROWS`` students."""


def _count(one: str, many: str) -> Callable[[float], str]:
    def text(value: float) -> str:
        n = round(value)
        return f"{n} {one if n == 1 else many}"

    return text


def _minutes(value: float) -> str:
    return f"{value / 60:.0f} minutes spent per submission on average"


def _early(value: float) -> str:
    hours = value / 3600
    if hours >= 0:
        return f"submitted {hours:.0f} hours before the due date on average"
    return f"submitted {-hours:.0f} hours after the due date on average"


def _level(label: str) -> Callable[[float], str]:
    return lambda value: f"{label} {value:.1f}"


TEMPLATES: dict[str, Callable[[float], str]] = {
    "class_view_count": _count("page view of the class", "page views of the class"),
    "activity_page_view": _count("view of the activity list", "views of the activity list"),
    "material_view": _count("view of learning materials", "views of learning materials"),
    "act_quiz_view": _count("view of activities or quizzes", "views of activities or quizzes"),
    "submit_button_clicked": _count("visit to a submission page", "visits to submission pages"),
    "specific_activity_view": _count("different activity opened", "different activities opened"),
    "session_id_count": _count("session", "sessions"),
    "activity_count_per_class": _count("activity assessed", "activities assessed"),
    "total_submission": _count("submission", "submissions"),
    "avgspent_time": _minutes,
    "avgseconds_early": _early,
    "expectation_met_count": _count(
        "assessment at or above the required level", "assessments at or above the required level"
    ),
    "avglevel": _level("average level"),
    "attainment_so_far": _level("attainment so far over the activities due:"),
    "past_due_not_submitted": _count(
        "activity past due not submitted", "activities past due not submitted"
    ),
    "days_since_last_event": _count(
        "day since the last page view", "days since the last page view"
    ),
    "days_since_last_submission": _count(
        "day since the last submission", "days since the last submission"
    ),
    "events_last_7d": _count("page view in the last 7 days", "page views in the last 7 days"),
    "window_elapsed": lambda value: f"{value:.0%} of the course elapsed",
}
"""Per feature: its raw value in words. The class median is rendered the same way."""

_MEDIAN_FORMAT: dict[str, Callable[[float], str]] = {
    "avgspent_time": lambda v: f"{v / 60:.0f} minutes",
    "avgseconds_early": lambda v: f"{v / 3600:.0f} hours",
    "avglevel": lambda v: f"{v:.1f}",
    "attainment_so_far": lambda v: f"{v:.1f}",
    "window_elapsed": lambda v: f"{v:.0%}",
}


def render(feature: str, value: float, median: float) -> str:
    """The reason's text: the student's value and the class median, in a teacher's words."""
    text = TEMPLATES.get(feature, lambda v: f"{feature} {v:g}")(value)
    reference = _MEDIAN_FORMAT.get(feature, lambda v: f"{v:g}")(median)
    return f"{text} (class median {reference})"


def _rounded(value: float) -> str:
    return f"{round(value):g}"


def _risk(model: Classifier, frame: pd.DataFrame, required: np.ndarray) -> np.ndarray:
    """risk_prob as served: calibrated when the model carries a calibration (``RiskModel``)."""
    proba = lof_model.level_probabilities(model=model, features=frame)
    return lof_model.model_risk(model, proba, required)


def _effects(
    model: Classifier,
    base: np.ndarray,
    medians: np.ndarray,
    required: np.ndarray,
    columns: list[str],
    rows: np.ndarray,
    wanted: np.ndarray,
    known: np.ndarray | None = None,
) -> np.ndarray:
    """(len(rows), len(columns)) risk changes; 0 where not ``wanted`` (rows x columns mask).

    One batch: the actual rows (unless their risk is ``known``), then one copy of a row per
    wanted column, that column set to the class median."""
    part = base[rows]
    part_required = required[rows]
    m = len(rows)
    effects = np.zeros((m, len(columns)))
    owner, column = np.nonzero(wanted)
    if len(owner) == 0:
        return effects
    variants = part[owner]
    variants[np.arange(len(owner)), column] = medians[rows][owner, column]
    if known is None:
        batch, batch_required = (
            np.vstack([part, variants]),
            np.concatenate([part_required, part_required[owner]]),
        )
    else:
        batch, batch_required = variants, part_required[owner]
    risk = _risk(model, pd.DataFrame(batch, columns=columns), batch_required)
    actual = known[rows] if known is not None else risk[:m]
    effects[owner, column] = actual[owner] - risk[len(batch) - len(owner) :]
    return effects


def _exact_effects(
    model: Classifier,
    base: np.ndarray,
    medians: np.ndarray,
    required: np.ndarray,
    columns: list[str],
    known: np.ndarray | None,
) -> np.ndarray | None:
    """Every column's exact effect (``lof.model.exact_effects``), or None when the model is not of a
    kind it supports."""
    if exact_effects.supported(model) is None:
        return None
    if known is None:
        known = _risk(model, pd.DataFrame(base, columns=columns), required)
    variant = exact_effects.variant_risks(
        model=model, base=base, medians=medians, required=required, risk=known
    )
    return None if variant is None else known[:, None] - variant


def _raw_in_row_order(
    *, raw: pd.DataFrame, scaled: pd.DataFrame, columns: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """``raw``'s ``columns`` per row of ``scaled`` (matched by class, user), and class medians."""
    keys = ["class_id", "user_id"]
    raw_rows = (
        raw.set_index(keys)
        .reindex(pd.MultiIndex.from_frame(scaled[keys].astype("int64")))
        .reset_index(drop=True)
    )
    raw_values = raw_rows[columns].astype(float)
    raw_medians = raw_values.groupby(scaled["class_id"].to_numpy()).transform("median")
    return raw_values.to_numpy(), raw_medians.to_numpy()


def _wanted(
    *,
    model: Classifier,
    base: np.ndarray,
    medians: np.ndarray,
    required: np.ndarray,
    columns: list[str],
    candidates: int | None,
    differs: np.ndarray,
) -> np.ndarray:
    """Which (row, column) effects to measure exactly: all that differ from the median, or,
    with many students, only each student's ``candidates`` most promising ones."""
    n = len(base)
    if candidates is None or candidates >= len(columns) or n <= SAMPLE_ROWS:
        return differs
    # Screening: the exact effects on an even sample of rows give each column's typical
    # weight; a student's candidates are the columns where weight x distance from the
    # median is largest. Only those are measured exactly for every student.
    sample = np.unique(np.linspace(0, n - 1, SAMPLE_ROWS).astype(int))
    sampled = _effects(model, base, medians, required, columns, sample, differs[sample])
    weight = np.abs(sampled).mean(axis=0) + 1e-9
    score = np.abs(base - medians) * weight * differs
    best = np.argsort(-score, axis=1, kind="stable")[:, :candidates]
    wanted = np.zeros_like(differs)
    np.put_along_axis(wanted, best, True, axis=1)
    wanted &= differs
    return wanted


def _reasons_of_rows(
    *,
    effects: np.ndarray,
    wanted: np.ndarray,
    raw_values: np.ndarray,
    raw_medians: np.ndarray,
    columns: list[str],
    top: int,
    min_effect: float,
) -> list[Reasons]:
    """Each row's reasons: of its ``top`` largest effects, the measured ones of at least
    ``min_effect`` (as they come in size order, the first weak one ends the list)."""
    order = np.argsort(-np.abs(effects), axis=1, kind="stable")[:, :top]
    chosen = np.take_along_axis(effects, order, axis=1)
    strong = (np.abs(chosen) >= min_effect) & np.take_along_axis(wanted, order, axis=1)
    strong = np.cumprod(strong, axis=1).astype(bool)
    shown = [_MEDIAN_FORMAT.get(c, _rounded) for c in columns]
    texts: dict[tuple[int, float, float], str | None] = {}  # counts repeat across students
    rows, ranks = np.nonzero(strong)
    picked = order[rows, ranks]
    effects_chosen = chosen[rows, ranks]
    with no_cycle_collection():  # thousands of acyclic lists and dicts
        out = [Reasons() for _ in range(len(effects))]
        for i, j, raises, effect, value, median in zip(
            rows.tolist(),
            picked.tolist(),
            (effects_chosen > 0).tolist(),
            np.round(effects_chosen, 4).tolist(),
            raw_values[rows, picked].tolist(),
            raw_medians[rows, picked].tolist(),
            strict=True,
        ):
            key = (j, value, median)
            if key not in texts:
                # "3 sessions (class median 3)" would claim a difference it hides: no reason.
                hidden = shown[j](value) == shown[j](median)
                texts[key] = None if hidden else render(columns[j], value, median)
            text = texts[key]
            if text is None:
                continue
            out[i].append(
                {
                    "feature": columns[j],
                    "text": text,
                    "direction": "raises risk" if raises else "lowers risk",
                    "value": value,
                    "class_median": median,
                    "effect": effect,
                }
            )
    return out


def explain(
    *,
    model: Classifier,
    scaled: pd.DataFrame,
    raw: pd.DataFrame,
    required: Sequence[int] | np.ndarray,
    top: int = TOP,
    min_effect: float = MIN_EFFECT,
    candidates: int | None = CANDIDATES,
    risk: Sequence[float] | np.ndarray | None = None,
) -> list[Reasons]:
    """Per row of ``scaled`` (class_id, user_id and the model's scaled columns): its reasons.

    ``raw`` holds the same students' raw values (any row order); ``required`` the class's
    required level per row. A reason: ``feature``, ``text``, ``direction`` ("raises risk" or
    "lowers risk"), ``value`` and ``class_median`` (raw) and ``effect`` (change of risk_prob).
    ``candidates``: for models without exact effects, how many columns per student are
    measured after screening (None = all; the day's cost is about ``candidates + 1``
    predictions of the cohort). ``risk``: the rows' risk_prob when already predicted (saves
    predicting them again).
    """
    n = len(scaled)
    if n == 0:
        return []
    columns = lof_model.input_features(model)
    required = np.asarray(required, dtype=int)
    base = scaled[columns].astype(float).reset_index(drop=True)
    medians = base.groupby(scaled["class_id"].to_numpy()).transform("median").to_numpy()
    base_array = base.to_numpy()
    raw_array, median_array = _raw_in_row_order(raw=raw, scaled=scaled, columns=columns)
    known = None if risk is None else np.asarray(risk, dtype=float)
    differs = ~np.isclose(base_array, medians)
    effects = _exact_effects(model, base_array, medians, required, columns, known)
    if effects is not None:
        wanted = differs
        effects *= wanted
    else:
        wanted = _wanted(
            model=model,
            base=base_array,
            medians=medians,
            required=required,
            columns=columns,
            candidates=candidates,
            differs=differs,
        )
        effects = _effects(
            model, base_array, medians, required, columns, np.arange(n), wanted, known
        )
    return _reasons_of_rows(
        effects=effects,
        wanted=wanted,
        raw_values=raw_array,
        raw_medians=median_array,
        columns=columns,
        top=top,
        min_effect=min_effect,
    )
