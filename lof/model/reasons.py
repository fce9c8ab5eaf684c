"""Reasons a teacher can act on: what drives each student's risk, in the teacher's terms.

Method (works for any model with ``predict_proba``): for each input column of the model, the
student's scaled value is replaced by the class cohort's median that day and ``risk_prob`` is
computed again. The column's effect is measured on the log-odds of risk, logit(actual risk) -
logit(risk at the median): unlike the change of probability it does not vanish when risk is
saturated (0.999 -> 0.99 is a change of 0.009 but of 2.3 on the log-odds). A positive effect
raises risk, a negative one lowers it.

A student's reasons, in this order (the stored list keeps the shape it always had):

1. up to ``TOP`` reasons that raise risk, largest first, each at least ``MIN_EFFECT``;
2. then, kept apart, up to ``PROTECTIVE`` reasons that lower risk, largest first.

A student at the class median on an input has no effect against the median there, so an
at-risk student (``at_risk``) with no reason that raises risk is measured again against the
class's figures that would lower their risk: for each input the quartile of the class (25th
or 75th percentile) with the lower risk, then, if still nothing, the class's lowest or highest
value. "5 submissions (class median 5; a quarter of the class 7 or more)" says what drives a
typical student's risk. Only a class whose students are alike on every input leaves an
at-risk student without a reason (nothing in the class differs to point at).

For logistic regression and histogram gradient boosting every column's effect is computed
exactly from the model's parameters (``lof.model.exact_effects``, one to two predictions of the
cohort for boosting). Other models have their variants predicted in one batch; with many
students, a screening step keeps that batch to about ``CANDIDATES + 1`` times the cohort (see
``CANDIDATES``). Inputs are correlated (work not handed in also lowers attainment so far), so
one input's effect is the model's answer to "this alone at the class's figure", which can
point the other way than the raw correlation.

Each reason is rendered with the student's raw value and the class's, e.g. "3 activities past
due not submitted (class median 0)". Its stored ``effect`` stays what it always was, the
change of risk_prob (actual minus at the class's figure), so stored and served reasons keep
their shape and meaning; the log-odds only rank and select them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from lof.core.collector import no_cycle_collection
from lof.model import exact_effects
from lof.model import outcome as lof_model
from lof.model.classifier import Classifier
from lof.stores.records import Reasons

TOP = 3
"""Reasons that raise risk, at most."""
PROTECTIVE = 2
"""Reasons that lower risk, at most, listed after the ones that raise it."""
MIN_EFFECT = 0.05
"""Effects below 0.05 on the log-odds of risk (about one percentage point at a risk of 0.5)
are noise, not a reason."""
RAISES, LOWERS = "raises risk", "lowers risk"
_CLIP = 1e-9  # risks are clipped to [_CLIP, 1 - _CLIP] before their log-odds
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
    "events_last_14d": _count("page view in the last 14 days", "page views in the last 14 days"),
    "views_log_ratio": lambda value: f"{math.exp(value):.1f} times the class's usual page views",
    "active_share": lambda value: f"active on {value:.0%} of the course's days so far",
    "longest_gap_days": lambda value: (
        f"longest stretch without activity {_count('day', 'days')(value)}"
    ),
    "first_event_delay": _count("day before the first activity", "days before the first activity"),
    "score_so_far": lambda value: f"{value:+.1f} levels against the required level on work so far",
}
"""Per feature: its raw value in words. The class median is rendered the same way."""

_MEDIAN_FORMAT: dict[str, Callable[[float], str]] = {
    "avgspent_time": lambda v: f"{v / 60:.0f} minutes",
    "avgseconds_early": lambda v: f"{v / 3600:.0f} hours",
    "avglevel": lambda v: f"{v:.1f}",
    "attainment_so_far": lambda v: f"{v:.1f}",
    "window_elapsed": lambda v: f"{v:.0%}",
    "views_log_ratio": lambda v: f"{math.exp(v):.1f} times",
    "active_share": lambda v: f"{v:.0%}",
    "score_so_far": lambda v: f"{v:+.1f}",
}


MEDIAN, QUARTILE, EXTREME = "median", "quartile", "extreme"
"""What a reason compares the student with: the class median, else (an at-risk student with
nothing that raises risk against the median) the class's quartile, else its lowest/highest."""


def render(
    feature: str,
    value: float,
    median: float,
    *,
    reference: float | None = None,
    kind: str = MEDIAN,
) -> str:
    """The reason's text: the student's value and the class's, in a teacher's words.

    ``reference``: the class's figure the effect was measured against when it is not the
    median (``kind`` QUARTILE or EXTREME)."""
    text = TEMPLATES.get(feature, lambda v: f"{feature} {v:g}")(value)
    shown = _MEDIAN_FORMAT.get(feature, lambda v: f"{v:g}")
    words = f"class median {shown(median)}"
    if reference is not None and kind == QUARTILE:
        side = "more" if reference > value else "less"
        words += f"; a quarter of the class {shown(reference)} or {side}"
    elif reference is not None and kind == EXTREME:
        side = "highest" if reference > value else "lowest"
        words += f"; the class's {side} {shown(reference)}"
    return f"{text} ({words})"


def _rounded(value: float) -> str:
    return f"{round(value):g}"


def _risk(model: Classifier, frame: pd.DataFrame, required: np.ndarray) -> np.ndarray:
    """risk_prob as served: calibrated when the model carries a calibration (``RiskModel``)."""
    proba = lof_model.level_probabilities(model=model, features=frame)
    return lof_model.model_risk(model, proba, required)


def _logit(risk: np.ndarray) -> np.ndarray:
    clipped = np.clip(risk, _CLIP, 1 - _CLIP)
    return np.asarray(np.log(clipped) - np.log1p(-clipped))


def _predicted_variants(
    model: Classifier,
    base: np.ndarray,
    reference: np.ndarray,
    required: np.ndarray,
    columns: list[str],
    wanted: np.ndarray,
) -> np.ndarray:
    """(rows, columns) risk_prob with one ``wanted`` column at ``reference``, NaN elsewhere:
    one batch of predictions, a row copy per wanted cell."""
    out = np.full(base.shape, np.nan)
    owner, column = np.nonzero(wanted)
    if len(owner) == 0:
        return out
    variants = base[owner]
    variants[np.arange(len(owner)), column] = reference[owner, column]
    frame = pd.DataFrame(variants, columns=columns)
    out[owner, column] = _risk(model, frame, required[owner])
    return out


def _variant_risks(
    model: Classifier,
    base: np.ndarray,
    reference: np.ndarray,
    required: np.ndarray,
    columns: list[str],
    known: np.ndarray,
    wanted: np.ndarray,
) -> np.ndarray:
    """(rows, columns) risk_prob with one column at ``reference``; NaN where not ``wanted``.
    Exact from the model's parameters when ``lof.model.exact_effects`` supports it, else
    predicted."""
    if exact_effects.supported(model) is not None:
        variant = exact_effects.variant_risks(
            model=model, base=base, medians=reference, required=required, risk=known
        )
        if variant is not None:
            return np.where(wanted, variant, np.nan)
    return _predicted_variants(model, base, reference, required, columns, wanted)


def _raw_in_row_order(
    *, raw: pd.DataFrame, scaled: pd.DataFrame, columns: list[str]
) -> pd.DataFrame:
    """``raw``'s ``columns`` per row of ``scaled`` (matched by class, user)."""
    keys = ["class_id", "user_id"]
    raw_rows = (
        raw.set_index(keys)
        .reindex(pd.MultiIndex.from_frame(scaled[keys].astype("int64")))
        .reset_index(drop=True)
    )
    return raw_rows[columns].astype(float)


def _wanted(
    *,
    model: Classifier,
    base: np.ndarray,
    medians: np.ndarray,
    required: np.ndarray,
    columns: list[str],
    known: np.ndarray,
    candidates: int | None,
    differs: np.ndarray,
) -> np.ndarray:
    """Which (row, column) effects to measure: all that differ from the median, or, for a
    model without exact effects and many students, only each student's ``candidates`` most
    promising ones."""
    n = len(base)
    if (
        exact_effects.supported(model) is not None
        or candidates is None
        or candidates >= len(columns)
        or n <= SAMPLE_ROWS
    ):
        return differs
    # Screening: the effects on an even sample of rows give each column's typical weight; a
    # student's candidates are the columns where weight x distance from the median is
    # largest. Only those are measured for every student.
    sample = np.unique(np.linspace(0, n - 1, SAMPLE_ROWS).astype(int))
    variant = _predicted_variants(
        model, base[sample], medians[sample], required[sample], columns, differs[sample]
    )
    sampled = np.nan_to_num(_logit(known[sample])[:, None] - _logit(variant))
    weight = np.abs(sampled).mean(axis=0) + 1e-9
    score = np.abs(base - medians) * weight * differs
    best = np.argsort(-score, axis=1, kind="stable")[:, :candidates]
    wanted = np.zeros_like(differs)
    np.put_along_axis(wanted, best, True, axis=1)
    wanted &= differs
    return wanted


class _Texts:
    """Reason texts, computed once per (column, value, class figures): counts repeat."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        self.shown = [_MEDIAN_FORMAT.get(c, _rounded) for c in columns]
        self.cache: dict[tuple[int, float, float, float, str], str | None] = {}

    def text(self, j: int, value: float, median: float, reference: float, kind: str) -> str | None:
        """None when the student's value reads the same as the class figure compared with:
        "3 sessions (class median 3)" would claim a difference it hides."""
        key = (j, value, median, reference, kind)
        if key not in self.cache:
            hidden = self.shown[j](value) == self.shown[j](reference)
            self.cache[key] = (
                None
                if hidden
                else render(
                    self.columns[j],
                    value,
                    median,
                    reference=None if kind == MEDIAN else reference,
                    kind=kind,
                )
            )
        return self.cache[key]


def _pick(
    *,
    rows: np.ndarray,
    logit_effects: np.ndarray,
    risk_effects: np.ndarray,
    raw_values: np.ndarray,
    raw_medians: np.ndarray,
    raw_references: np.ndarray,
    kind: str,
    sign: int,
    limit: int,
    min_effect: float,
    texts: _Texts,
) -> dict[int, Reasons]:
    """Per row (index into ``rows``, which hold row numbers of the cohort), up to ``limit``
    reasons whose log-odds effect has ``sign`` and at least ``min_effect`` in size, largest
    first; effects that are NaN were not measured."""
    out: dict[int, Reasons] = {}
    if limit <= 0 or len(rows) == 0:
        return out
    score = np.nan_to_num(sign * logit_effects, nan=0.0)
    score[score < min_effect] = 0.0
    keep = min(limit + 2, score.shape[1])  # a few spare in case some read as the class's
    order = np.argsort(-score, axis=1, kind="stable")[:, :keep]
    valid = np.take_along_axis(score, order, axis=1) > 0
    direction = RAISES if sign > 0 else LOWERS
    for r in np.flatnonzero(valid.any(axis=1)).tolist():
        i = int(rows[r])
        mine = Reasons()
        for j in order[r][valid[r]].tolist():
            value = float(raw_values[i, j])
            median = float(raw_medians[i, j])
            text = texts.text(j, value, median, float(raw_references[r, j]), kind)
            if text is None:
                continue
            mine.append(
                {
                    "feature": texts.columns[j],
                    "text": text,
                    "direction": direction,
                    "value": value,
                    "class_median": median,
                    "effect": round(float(risk_effects[r, j]), 6),
                }
            )
            if len(mine) == limit:
                break
        if mine:
            out[r] = mine
    return out


def _class_figure(
    frame: pd.DataFrame, classes: np.ndarray, how: str | float, rows: np.ndarray
) -> np.ndarray:
    """Per row of ``rows``: its class's quantile ``how`` (a student's own value: "nearest", so
    scaled and raw figures are the same student's under any increasing within-class scaling),
    or its class's "min" / "max"."""
    grouped = frame.groupby(classes)
    if isinstance(how, float):
        figures = grouped.quantile(how, interpolation="nearest")
    else:
        figures = grouped.agg(how)
    return figures.reindex(classes[rows]).to_numpy(dtype=float)


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
    at_risk: Sequence[bool] | np.ndarray | None = None,
    protective: int = PROTECTIVE,
) -> list[Reasons]:
    """Per row of ``scaled`` (class_id, user_id and the model's scaled columns): its reasons.

    ``raw`` holds the same students' raw values (any row order); ``required`` the class's
    required level per row. A reason: ``feature``, ``text``, ``direction`` ("raises risk" or
    "lowers risk"), ``value`` and ``class_median`` (raw) and ``effect`` (risk_prob minus
    risk_prob with the value at the class's figure). Up to ``top`` reasons that raise risk come
    first, then up to ``protective`` that lower it (module docstring). ``at_risk``: which rows
    are warnings (None: every row) and so must get a reason that raises risk when one can be
    found. ``candidates``: for models without exact effects, how many columns per student are
    measured after screening (None = all). ``risk``: the rows' risk_prob when already
    predicted (saves predicting them again).
    """
    n = len(scaled)
    if n == 0:
        return []
    columns = lof_model.input_features(model)
    required = np.asarray(required, dtype=int)
    classes = scaled["class_id"].to_numpy()
    base_frame = scaled[columns].astype(float).reset_index(drop=True)
    base = base_frame.to_numpy()
    medians = base_frame.groupby(classes).transform("median").to_numpy()
    raw_frame = _raw_in_row_order(raw=raw, scaled=scaled, columns=columns)
    raw_values = raw_frame.to_numpy()
    raw_medians = raw_frame.groupby(classes).transform("median").to_numpy()
    known = _risk(model, base_frame, required) if risk is None else np.asarray(risk, dtype=float)
    log_risk = _logit(known)
    differs = ~np.isclose(base, medians)
    wanted = _wanted(
        model=model,
        base=base,
        medians=medians,
        required=required,
        columns=columns,
        known=known,
        candidates=candidates,
        differs=differs,
    )
    variant = _variant_risks(model, base, medians, required, columns, known, wanted)
    logit_effects = log_risk[:, None] - _logit(variant)
    risk_effects = known[:, None] - variant
    texts = _Texts(columns)
    every = np.arange(n)
    common = {
        "rows": every,
        "logit_effects": logit_effects,
        "risk_effects": risk_effects,
        "raw_values": raw_values,
        "raw_medians": raw_medians,
        "raw_references": raw_medians,
        "kind": MEDIAN,
        "min_effect": min_effect,
        "texts": texts,
    }
    with no_cycle_collection():  # thousands of acyclic lists and dicts
        raising = _pick(**common, sign=1, limit=top)
        lowering = _pick(**common, sign=-1, limit=protective)
        warned = np.ones(n, dtype=bool) if at_risk is None else np.asarray(at_risk, dtype=bool)
        for how in ((0.25, 0.75), ("min", "max")):
            if top <= 0:
                break
            need = np.flatnonzero(warned & ~np.isin(every, list(raising)))
            if len(need) == 0:
                break
            found = _raising_against(
                model=model,
                rows=need,
                base=base,
                base_frame=base_frame,
                raw_frame=raw_frame,
                raw_values=raw_values,
                raw_medians=raw_medians,
                classes=classes,
                required=required,
                columns=columns,
                known=known,
                figures=how,
                kind=QUARTILE if how == (0.25, 0.75) else EXTREME,
                top=top,
                min_effect=min_effect,
                texts=texts,
            )
            raising.update({int(need[r]): mine for r, mine in found.items()})
        out = [Reasons() for _ in range(n)]
        for i, mine in raising.items():
            out[i].extend(mine)
        for i, mine in lowering.items():
            out[i].extend(mine)
    return out


def _raising_against(
    *,
    model: Classifier,
    rows: np.ndarray,
    base: np.ndarray,
    base_frame: pd.DataFrame,
    raw_frame: pd.DataFrame,
    raw_values: np.ndarray,
    raw_medians: np.ndarray,
    classes: np.ndarray,
    required: np.ndarray,
    columns: list[str],
    known: np.ndarray,
    figures: tuple[float, float] | tuple[str, str],
    kind: str,
    top: int,
    min_effect: float,
    texts: _Texts,
) -> dict[int, Reasons]:
    """Reasons that raise risk for ``rows``, each input measured against whichever of the two
    class ``figures`` (quantiles, or "min"/"max") gives the lower risk."""
    part = base[rows]
    best_risk = np.full(part.shape, np.nan)
    best_scaled = np.full(part.shape, np.nan)
    best_raw = np.full(part.shape, np.nan)
    for how in figures:
        reference = _class_figure(base_frame, classes, how, rows)
        reference_raw = _class_figure(raw_frame, classes, how, rows)
        variant = _variant_risks(
            model,
            part,
            reference,
            required[rows],
            columns,
            known[rows],
            ~np.isclose(part, reference),
        )
        lower = np.isfinite(variant) & ~(variant >= best_risk)  # NaN best: any finite wins
        best_risk = np.where(lower, variant, best_risk)
        best_scaled = np.where(lower, reference, best_scaled)
        best_raw = np.where(lower, reference_raw, best_raw)
    return _pick(
        rows=rows,
        logit_effects=_logit(known[rows])[:, None] - _logit(best_risk),
        risk_effects=known[rows][:, None] - best_risk,
        raw_values=raw_values,
        raw_medians=raw_medians,
        raw_references=best_raw,
        kind=kind,
        sign=1,
        limit=top,
        min_effect=min_effect,
        texts=texts,
    )
