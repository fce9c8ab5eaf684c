"""How a risk ranks, is calibrated and flags early for each student group, and the gaps.

Per attribute (``lof.governance.groups``), per value and per progress point (10/25/50/75 %),
on held-out rows: n (rows), students, base rate (share ending below the required level), risk
ROC-AUC, ECE, mean risk (against the base rate: calibration in the large), at-risk flag rate,
recall and
precision at the version's threshold, and lead time: the share of the students who end below
that were flagged at this point or an earlier one (the definition of the overall lead-time
figures, computed per group here). The per-group table is fairlearn's ``MetricFrame``.

Per attribute and point: ABROCA (the area between two groups' ROC curves; with more than two
values, the largest over pairs of reported values) and the largest ROC-AUC gap between reported
values, each with a class-bootstrap interval (classes, not students, are resampled, as for the
overall figures; its lower bound bias-corrected, see ``_interval``). fairlearn has no
ABROCA, and its bootstrap resamples rows, not classes, so both are computed here.

A value with fewer than ``min_size`` distinct students among the held-out rows is reported as
too small: no figure of it is logged or shown, and it takes no part in a gap.

MLflow metric names (``metric_names``): ``groups.<attribute>.<value>.<metric>_<pct>``,
``groups.<attribute>.abroca_<pct>`` and ``groups.<attribute>.max_auc_gap_<pct>`` (``_ci_low``,
``_ci_high`` appended for the interval). Attribute and value names are sanitised (``sanitise``):
every run of characters other than ASCII letters, digits, ``_`` and ``-`` becomes one ``_``
(a ``.`` too: it separates the parts), leading/trailing ``_`` are dropped, the result is cut at
40 characters, and an empty name becomes ``_``; two values of one attribute that sanitise
alike are told apart by ``_2``, ``_3``... in order of their first appearance.
"""

from __future__ import annotations

import itertools
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lof.model import leadtime
from lof.model import outcome as lof_model

POINTS: tuple[float, ...] = lof_model.REPORT_POINTS
GROUP_METRICS: tuple[str, ...] = (
    "n",
    "students",
    "base_rate",
    "auc",
    "ece",
    "mean_risk",
    "flag_rate",
    "recall",
    "precision",
    "lead_time",
)
BOOTSTRAP_ROUNDS = 100
INTERVAL_LEVEL = 0.9
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_MAX_NAME = 40


def pct(point: float) -> int:
    return round(point * 100)


def sanitise(name: str) -> str:
    """A name as it may stand in an MLflow metric name part (see the module docstring)."""
    cleaned = _UNSAFE.sub("_", str(name)).strip("_")[:_MAX_NAME].strip("_")
    return cleaned or "_"


def sanitised_names(names: Sequence[str]) -> dict[str, str]:
    """Each name's sanitised form, unique among ``names`` (``_2``... on a collision)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        base = candidate = sanitise(name)
        k = 2
        while candidate in taken:
            candidate = f"{base}_{k}"
            k += 1
        out[name] = candidate
        taken.add(candidate)
    return out


# --- the figures of one group ----------------------------------------------------------------


def roc_auc(truth: np.ndarray, risk: np.ndarray) -> float:
    """ROC-AUC (ties count half: the Mann-Whitney statistic, as scikit-learn's); NaN unless
    both outcomes occur. Written out because the bootstrap calls it thousands of times."""
    from scipy.stats import rankdata

    truth = np.asarray(truth, dtype=bool)
    positives = int(truth.sum())
    negatives = len(truth) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(np.asarray(risk, dtype=float))
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _roc(truth: np.ndarray, risk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false, true positive rate) at every distinct threshold, from (0, 0) to (1, 1)."""
    truth = np.asarray(truth, dtype=bool)
    risk = np.asarray(risk, dtype=float)
    order = np.argsort(-risk, kind="mergesort")
    risk, truth = risk[order], truth[order]
    last = np.r_[np.flatnonzero(np.diff(risk)), len(risk) - 1]  # last row of each tie
    tps = np.cumsum(truth)[last]
    fps = (last + 1) - tps
    return np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]]


def _curve_at(fpr: np.ndarray, tpr: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(just right of, just left of) each grid point: the top and the foot of a vertical step
    of the curve there, its linear interpolation elsewhere."""
    line = np.interp(grid, fpr, tpr)
    right = np.clip(np.searchsorted(fpr, grid, side="right") - 1, 0, len(fpr) - 1)
    left = np.clip(np.searchsorted(fpr, grid, side="left"), 0, len(fpr) - 1)
    return (
        np.where(fpr[right] == grid, tpr[right], line),
        np.where(fpr[left] == grid, tpr[left], line),
    )


def abroca(
    truth_a: np.ndarray, risk_a: np.ndarray, truth_b: np.ndarray, risk_b: np.ndarray
) -> float:
    """The area between the two groups' ROC curves (Gardner et al. 2019), computed exactly on
    the piecewise-linear curves (crossings inside a segment included); NaN unless both groups
    hold both outcomes."""
    for truth in (truth_a, truth_b):
        t = np.asarray(truth, dtype=bool)
        if len(t) == 0 or t.all() or not t.any():
            return float("nan")
    fa, ta = _roc(truth_a, risk_a)
    fb, tb = _roc(truth_b, risk_b)
    grid = np.union1d(fa, fb)
    right_a, left_a = _curve_at(fa, ta, grid)
    right_b, left_b = _curve_at(fb, tb, grid)
    d0 = (right_a - right_b)[:-1]
    d1 = (left_a - left_b)[1:]
    width = np.diff(grid)
    same = d0 * d1 >= 0
    spread = np.abs(d0) + np.abs(d1)
    crossing = np.divide(d0 * d0 + d1 * d1, 2 * spread, out=np.zeros_like(spread), where=spread > 0)
    area = np.where(same, spread / 2, crossing) * width  # crossing: two triangles
    return float(area.sum())


def _flag_rate(truth: np.ndarray, flagged: np.ndarray) -> float:
    return float(np.mean(flagged)) if len(flagged) else float("nan")


def _recall(truth: np.ndarray, flagged: np.ndarray) -> float:
    truth, flagged = np.asarray(truth, dtype=bool), np.asarray(flagged, dtype=bool)
    return float((truth & flagged).sum() / truth.sum()) if truth.any() else float("nan")


def _precision(truth: np.ndarray, flagged: np.ndarray) -> float:
    truth, flagged = np.asarray(truth, dtype=bool), np.asarray(flagged, dtype=bool)
    return float((truth & flagged).sum() / flagged.sum()) if flagged.any() else float("nan")


def _base_rate(truth: np.ndarray, risk: np.ndarray) -> float:
    return float(np.mean(truth)) if len(truth) else float("nan")


def _mean_risk(truth: np.ndarray, risk: np.ndarray) -> float:
    return float(np.mean(risk)) if len(risk) else float("nan")


def _ece(truth: np.ndarray, risk: np.ndarray) -> float:
    return lof_model.expected_calibration_error(np.asarray(risk), np.asarray(truth, dtype=float))


def _count(truth: np.ndarray, risk: np.ndarray) -> float:
    return float(len(truth))


def per_group_table(
    *, truth: np.ndarray, risk: np.ndarray, threshold: float, values: pd.Series
) -> pd.DataFrame:
    """n, base rate, AUC, ECE, mean risk, flag rate, recall, precision per value of
    ``values`` (fairlearn's MetricFrame; one row per value)."""
    from fairlearn.metrics import MetricFrame

    truth = np.asarray(truth, dtype=bool)
    risk = np.asarray(risk, dtype=float)
    flagged = risk >= threshold
    scored = {
        "n": _count,
        "base_rate": _base_rate,
        "auc": roc_auc,
        "ece": _ece,
        "mean_risk": _mean_risk,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        on_risk = MetricFrame(
            metrics=scored, y_true=truth, y_pred=risk, sensitive_features=values.to_numpy()
        ).by_group
        on_flag = MetricFrame(
            metrics={"flag_rate": _flag_rate, "recall": _recall, "precision": _precision},
            y_true=truth,
            y_pred=flagged,
            sensitive_features=values.to_numpy(),
        ).by_group
    table = pd.concat([on_risk, on_flag], axis=1)
    table.index = [str(v) for v in table.index]
    return table.astype(float)


def lead_time(*, rows: pd.DataFrame, truth: np.ndarray, flagged: np.ndarray, point: float) -> float:
    """Share of the students (class, user) of ``rows`` who end below that were flagged at
    ``point`` or at an earlier progress point (``lof.model.leadtime.caught_by``); NaN without
    one."""
    frame = pd.DataFrame(
        {
            "class_id": rows["class_id"].to_numpy(),
            "user_id": rows["user_id"].to_numpy(),
            "progress": rows["progress"].to_numpy(dtype=float),
            "below": np.asarray(truth, dtype=bool),
            "flagged": np.asarray(flagged, dtype=bool),
        }
    )
    return float(leadtime.caught_by(frame, point))


# --- an attribute's report --------------------------------------------------------------------


@dataclass
class AttributeReport:
    """One attribute's per-value table per point, the suppressed values and the gaps."""

    attribute: str
    tables: dict[int, pd.DataFrame]
    """pct -> one row per reported value, columns ``GROUP_METRICS``."""
    too_small: list[str]
    students: dict[str, int]
    gaps: dict[str, float] = field(default_factory=dict)
    """``abroca_<pct>``, ``max_auc_gap_<pct>`` and their ``_ci_low``/``_ci_high``."""

    @property
    def reported(self) -> list[str]:
        return [v for v in self.students if v not in self.too_small]


@dataclass
class GroupReport:
    """Every attribute's report for one risk on one set of held-out rows."""

    attributes: list[AttributeReport]
    min_size: int
    threshold: float

    def metrics(self) -> dict[str, float]:
        return metric_names(self)

    def max_auc_gap(self, attribute: str, point: float) -> float:
        for report in self.attributes:
            if report.attribute == attribute:
                return report.gaps.get(f"max_auc_gap_{pct(point)}", float("nan"))
        return float("nan")


def _gaps(
    truth: np.ndarray,
    risk: np.ndarray,
    values: np.ndarray,
    reported: Sequence[str],
) -> tuple[float, float]:
    """(ABROCA, max AUC gap) among the reported values (NaN with fewer than 2 rankable)."""
    parts = {}
    for value in reported:
        mask = values == value
        t = truth[mask]
        if mask.any() and t.any() and not t.all():
            parts[value] = (t, risk[mask])
    if len(parts) < 2:
        return float("nan"), float("nan")
    aucs = [roc_auc(t, r) for t, r in parts.values()]
    areas = [abroca(*parts[a], *parts[b]) for a, b in itertools.combinations(parts, 2)]
    return float(max(areas)), float(max(aucs) - min(aucs))


def _interval(estimate: float, samples: list[float]) -> tuple[float, float]:
    """A 90% class-bootstrap interval of a gap: its lower bound the basic (bias-corrected)
    one, floored at 0, its upper bound the percentile one (and never below the estimate).

    A gap is never below 0 and its resampled values are biased upwards (any noise widens it),
    so the plain percentile interval would never include 0, even for an attribute that cannot
    matter; the basic lower bound (2 x estimate - the upper percentile) corrects that and
    reaches 0 when the gap is within noise. The percentile upper bound keeps the interval around
    the estimate, wide rather than narrow."""
    kept = [s for s in samples if not math.isnan(s)]
    if len(kept) < 2 or math.isnan(estimate):
        return float("nan"), float("nan")
    tail = (1 - INTERVAL_LEVEL) / 2 * 100
    _, high = np.percentile(kept, [tail, 100 - tail])
    return max(0.0, float(2 * estimate - high)), max(float(estimate), float(high))


def attribute_report(
    *,
    rows: pd.DataFrame,
    risk: np.ndarray,
    threshold: float,
    values: pd.Series,
    attribute: str,
    min_size: int,
    points: Sequence[float] = POINTS,
    rounds: int = BOOTSTRAP_ROUNDS,
    seed: int = 0,
) -> AttributeReport:
    """The report of one attribute (``values``: its value for each of ``rows``)."""
    values = values.astype(str).reset_index(drop=True)
    risk = np.asarray(risk, dtype=float)
    truth = rows["label"].to_numpy(dtype=int) < rows["required_level"].to_numpy(dtype=int)
    flagged = risk >= threshold
    progress = rows["progress"].to_numpy(dtype=float)
    users = rows["user_id"].to_numpy()
    students = {
        str(v): int(pd.unique(users[values.to_numpy() == v]).size) for v in pd.unique(values)
    }
    too_small = sorted(v for v, n in students.items() if n < min_size)
    reported = [v for v in students if v not in too_small]
    tables: dict[int, pd.DataFrame] = {}
    gaps: dict[str, float] = {}
    classes = rows["class_id"].to_numpy()
    class_ids = np.unique(classes)
    class_rows = {c: np.flatnonzero(classes == c) for c in class_ids}
    rng = np.random.default_rng(seed)
    picks = [rng.choice(class_ids, size=len(class_ids), replace=True) for _ in range(rounds)]
    for point in points:
        at = np.isclose(progress, point)
        mask = at & values.isin(reported).to_numpy()
        if not mask.any():  # no held-out row of a reported group at this point
            continue
        table = per_group_table(
            truth=truth[mask], risk=risk[mask], threshold=threshold, values=values[mask]
        )
        table["students"] = [
            float(pd.unique(users[mask & (values.to_numpy() == v)]).size) for v in table.index
        ]
        table["lead_time"] = [
            lead_time(
                rows=rows[(values == v).to_numpy()],
                truth=truth[(values == v).to_numpy()],
                flagged=flagged[(values == v).to_numpy()],
                point=point,
            )
            for v in table.index
        ]
        tables[pct(point)] = table[list(GROUP_METRICS)]
        value_array = values.to_numpy()
        area, gap = _gaps(truth[at], risk[at], value_array[at], reported)
        gaps[f"abroca_{pct(point)}"], gaps[f"max_auc_gap_{pct(point)}"] = area, gap
        areas, spreads = [], []
        if len(class_ids) >= 2:
            for picked in picks:
                index = np.concatenate([class_rows[c] for c in picked])
                index = index[at[index]]
                a, g = _gaps(truth[index], risk[index], value_array[index], reported)
                areas.append(a)
                spreads.append(g)
        for name, samples in (
            (f"abroca_{pct(point)}", areas),
            (f"max_auc_gap_{pct(point)}", spreads),
        ):
            gaps[f"{name}_ci_low"], gaps[f"{name}_ci_high"] = _interval(gaps[name], samples)
    return AttributeReport(
        attribute=attribute, tables=tables, too_small=too_small, students=students, gaps=gaps
    )


def group_report(
    *,
    rows: pd.DataFrame,
    risk: np.ndarray,
    threshold: float,
    attributes: pd.DataFrame,
    min_size: int,
    points: Sequence[float] = POINTS,
    rounds: int = BOOTSTRAP_ROUNDS,
    seed: int = 0,
) -> GroupReport:
    """Every attribute of ``attributes`` (one row per row of ``rows``) on ``rows``' risks."""
    rows = rows.reset_index(drop=True)
    return GroupReport(
        attributes=[
            attribute_report(
                rows=rows,
                risk=risk,
                threshold=threshold,
                values=attributes[name].reset_index(drop=True),
                attribute=name,
                min_size=min_size,
                points=points,
                rounds=rounds,
                seed=seed,
            )
            for name in attributes.columns
        ],
        min_size=min_size,
        threshold=float(threshold),
    )


def metric_names(report: GroupReport) -> dict[str, float]:
    """The report as MLflow metrics (names in the module docstring; NaN figures left out)."""
    out: dict[str, float] = {}
    attribute_names = sanitised_names([a.attribute for a in report.attributes])
    for attribute in report.attributes:
        a = attribute_names[attribute.attribute]
        value_names = sanitised_names(list(attribute.students))
        for point, table in attribute.tables.items():
            for value, row in table.iterrows():
                for metric in GROUP_METRICS:
                    figure = float(row[metric])
                    if not math.isnan(figure):
                        out[f"groups.{a}.{value_names[str(value)]}.{metric}_{point}"] = figure
        for name, figure in attribute.gaps.items():
            if not math.isnan(figure):
                out[f"groups.{a}.{name}"] = float(figure)
    return out


GATE_POINTS: tuple[float, ...] = (0.25, 0.5)  # the gate compares the gaps at 25 and 50 %


def gap_increases(
    *,
    rows: pd.DataFrame,
    candidate_risk: np.ndarray,
    production_risk: np.ndarray,
    attributes: pd.DataFrame,
    min_size: int,
    points: Sequence[float] = GATE_POINTS,
) -> list[tuple[str, int, float, float]]:
    """(attribute, pct, candidate gap, Production gap) of the largest ROC-AUC gap between
    reported values, for both risks on the same rows (no interval: the gate compares the
    point figures, as for its other rule)."""
    out = []
    reports = [
        group_report(
            rows=rows,
            risk=risk,
            threshold=0.5,
            attributes=attributes,
            min_size=min_size,
            points=points,
            rounds=0,
        )
        for risk in (candidate_risk, production_risk)
    ]
    for name in attributes.columns:
        for point in points:
            mine, theirs = (r.max_auc_gap(name, point) for r in reports)
            out.append((str(name), pct(point), mine, theirs))
    return out


def suppressed_summary(report: GroupReport) -> dict[str, list[str]]:
    """Per attribute: the values reported too small (names only, never a count)."""
    return {a.attribute: list(a.too_small) for a in report.attributes}
