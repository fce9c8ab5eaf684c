"""The class page's content: pure functions from store records to what the template shows.

No I/O here: ``lof.api.routes.pages`` reads the store and hands the records over, so every number
on the page can be tested without a server. SVG charts are built here (numbers and escaped text
only) so the page needs no JavaScript and prints as it shows.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING

from markupsafe import Markup, escape

from lof.core.calendar import format_day
from lof.core.templates import template_environment
from lof.features.definitions import FEATURES
from lof.interventions import ACTION_LABELS, InterventionRecord
from lof.stores.base import PredictionRecord

if TYPE_CHECKING:
    from jinja2 import Environment

TOP_REASONS = 3
PROTECTIVE_REASONS = 2
LOWERS = "lowers risk"
FEATURE_LABELS: dict[str, str] = {
    "class_view_count": "class page views",
    "activity_page_view": "activity list views",
    "material_view": "material views",
    "act_quiz_view": "activity and quiz views",
    "submit_button_clicked": "submission page views",
    "specific_activity_view": "distinct activities opened",
    "session_id_count": "sessions",
    "activity_count_per_class": "activities assessed",
    "total_submission": "submissions",
    "avgspent_time": "mean time spent per submission",
    "avgseconds_early": "mean time submitted before due",
    "expectation_met_count": "criteria met",
    "avglevel": "mean level",
}
_SECONDS = {"avgspent_time", "avgseconds_early"}
RISK_LINE = "#1f4e9a"
THRESHOLD_LINE = "#8a4b00"
ACTION_MARK = "#1d7a3a"


@dataclass
class StudentRow:
    user_id: int
    risk_prob: float
    at_risk: bool
    predicted_label: int
    required_level: int
    trend_svg: Markup
    reasons: list[str]
    reasons_kind: str  # "model" when the record carries reasons, else "unusual"
    feedback: str | None = None
    actions: list[str] = field(default_factory=list)
    """The actions teachers recorded for the student, in words (``lof.interventions``)."""
    change: str | None = None
    """``new``, ``recovered`` or ``risen`` since the previous scored day (``lof.changes``)."""
    change_note: str = ""
    protective: list[str] = field(default_factory=list)  # the model's reasons that lower risk


@dataclass
class ClassReport:
    class_id: int
    day: date
    days: list[date]
    model_versions: list[str]
    threshold: float
    students: list[StudentRow]
    at_risk: int
    share_svg: Markup
    share_points: list[tuple[date, float]] = field(default_factory=list)
    not_shown: int = 0
    """Opted-out students of the class the page leaves out (a count, never who)."""
    changes_since: date | None = None
    """The scored day the page's changes compare with (None: no earlier day)."""
    change_counts: dict[str, int] = field(default_factory=dict)

    @property
    def share(self) -> float:
        return self.at_risk / len(self.students) if self.students else 0.0

    @property
    def model_version(self) -> str:
        return ", ".join(self.model_versions)


def iso(day: date) -> str:
    return day.isoformat()


def format_value(name: str, value: float) -> str:
    """A raw feature value as a teacher reads it (durations in minutes/hours/days)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if name in _SECONDS:
        magnitude = abs(value)
        sign = "-" if value < 0 else ""
        if magnitude >= 86_400:
            return f"{sign}{magnitude / 86_400:.1f} d"
        if magnitude >= 3_600:
            return f"{sign}{magnitude / 3_600:.1f} h"
        if magnitude >= 60:
            return f"{sign}{magnitude / 60:.0f} min"
        return f"{sign}{magnitude:.0f} s"
    if name == "avglevel":
        return f"{value:.2f}"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def class_medians(records: Sequence[PredictionRecord]) -> dict[str, tuple[float, float]]:
    """Per feature: the class median and a robust spread (MAD, else mean absolute deviation)."""
    out: dict[str, tuple[float, float]] = {}
    for name in FEATURES:
        values = [
            float(r["features"][name])
            for r in records
            if name in r.get("features", {}) and not math.isnan(float(r["features"][name]))
        ]
        if not values:
            continue
        median = statistics.median(values)
        deviations = [abs(v - median) for v in values]
        spread = statistics.median(deviations) * 1.4826 or statistics.fmean(deviations)
        out[name] = (median, spread)
    return out


def unusual_features(
    record: PredictionRecord, medians: Mapping[str, tuple[float, float]], *, k: int = TOP_REASONS
) -> list[str]:
    """The ``k`` raw features furthest from the class median, in words (stand-in for reasons)."""
    scored: list[tuple[float, str, str]] = []
    for name, (median, spread) in medians.items():
        value = record.get("features", {}).get(name)
        if value is None or math.isnan(float(value)) or spread <= 0:
            continue
        z = (float(value) - median) / spread
        if abs(z) < 1.0:
            continue
        word = "low" if z < 0 else "high"
        text = (
            f"{FEATURE_LABELS.get(name, name)}: {format_value(name, float(value))} "
            f"({word}; class median {format_value(name, median)})"
        )
        scored.append((abs(z), name, text))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [text for _, _, text in scored[:k]]


def format_reason(item: object) -> str:
    """One entry of a record's ``reasons``: text as is, or a mapping with text/feature."""
    if isinstance(item, Mapping):
        if item.get("text"):
            # lof.reasons' entries: "2 activities past due not submitted (class median 0)"
            # plus which way it moves the risk, as a teacher needs both.
            direction = f" ({item['direction']})" if item.get("direction") else ""
            return f"{item['text']}{direction}"
        name = str(item.get("feature", ""))
        parts = [FEATURE_LABELS.get(name, name)]
        if item.get("value") is not None:
            parts.append(format_value(name, float(item["value"])))
        if item.get("direction"):
            parts.append(f"({item['direction']})")
        return " ".join(p for p in parts if p)
    return str(item)


def _given_reasons(record: PredictionRecord) -> list[object]:
    given = record.get("reasons")
    if isinstance(given, Sequence) and not isinstance(given, str):
        return list(given)
    return []


def _lowers(item: object) -> bool:
    return isinstance(item, Mapping) and item.get("direction") == LOWERS


def reasons_for(
    record: PredictionRecord, medians: Mapping[str, tuple[float, float]], *, k: int = TOP_REASONS
) -> tuple[list[str], str]:
    """The model's reasons if the record has them (those that raise risk, or of no stated
    direction: ``protective_reasons`` has the others), else the most unusual raw features."""
    given = _given_reasons(record)
    if given:
        return [format_reason(item) for item in given if not _lowers(item)][:k], "model"
    return unusual_features(record, medians, k=k), "unusual"


def protective_reasons(record: PredictionRecord, *, k: int = PROTECTIVE_REASONS) -> list[str]:
    """The model's reasons that lower the student's risk, shown apart from the warning's."""
    return [format_reason(item) for item in _given_reasons(record) if _lowers(item)][:k]


def _points(values: Sequence[float], *, width: float, height: float, pad: float) -> list[str]:
    n = len(values)
    step = (width - 2 * pad) / (n - 1) if n > 1 else 0.0
    out = []
    for i, v in enumerate(values):
        x = pad + (i * step if n > 1 else (width - 2 * pad) / 2)
        y = pad + (1.0 - min(max(v, 0.0), 1.0)) * (height - 2 * pad)
        out.append(f"{x:.1f},{y:.1f}")
    return out


def sparkline_svg(
    values: Sequence[float],
    *,
    threshold: float,
    label: str,
    width: int = 120,
    height: int = 28,
    marks: Sequence[int] = (),
) -> Markup:
    """A small risk trend (0..1, oldest left) with the at-risk threshold dashed; ``marks``
    are indices of ``values`` drawn as ticks (the days a teacher recorded an action)."""
    pad = 3.0
    ty = pad + (1.0 - threshold) * (height - 2 * pad)
    points = _points(values, width=width, height=height, pad=pad)
    last = points[-1].split(",") if points else None
    parts = [
        f'<svg class="trend" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title>',
        f'<line x1="{pad}" y1="{ty:.1f}" x2="{width - pad}" y2="{ty:.1f}" '
        f'stroke="{THRESHOLD_LINE}" stroke-width="1" stroke-dasharray="3 2"/>',
    ]
    if len(points) > 1:
        parts.append(
            f'<polyline fill="none" stroke="{RISK_LINE}" stroke-width="2" '
            f'points="{" ".join(points)}"/>'
        )
    if last:
        parts.append(f'<circle cx="{last[0]}" cy="{last[1]}" r="2.5" fill="{RISK_LINE}"/>')
    for index in sorted(set(marks)):
        if 0 <= index < len(points):
            x = points[index].split(",")[0]
            parts.append(
                f'<line class="action-mark" x1="{x}" y1="1" x2="{x}" y2="{height - 1}" '
                f'stroke="{ACTION_MARK}" stroke-width="2"/>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def share_chart_svg(
    points: Sequence[tuple[date, float]], *, width: int = 480, height: int = 140
) -> Markup:
    """Share of students at risk per scored day, with a 0-100% axis and the first/last day."""
    left, right, top, bottom = 40.0, 10.0, 10.0, 24.0
    inner_w, inner_h = width - left - right, height - top - bottom
    n = len(points)
    label = (
        f"Share of students at risk over {n} scored day(s): "
        + ", ".join(f"{iso(d)} {s:.0%}" for d, s in points[-5:])
        + (" (last 5 shown in this description)" if n > 5 else "")
    )
    parts = [
        f'<svg class="share" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title>',
    ]
    for frac in (0.0, 0.5, 1.0):
        y = top + (1 - frac) * inner_h
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
            'stroke="#767676" stroke-width="0.5"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="#1a1a1a">{frac:.0%}</text>'
        )
    xs = []
    for i, (_, share) in enumerate(points):
        x = left + (i / (n - 1) * inner_w if n > 1 else inner_w / 2)
        y = top + (1 - min(max(share, 0.0), 1.0)) * inner_h
        xs.append((x, y))
    if len(xs) > 1:
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in xs)
        parts.append(
            f'<polyline fill="none" stroke="{RISK_LINE}" stroke-width="2" points="{coords}"/>'
        )
    for x, y in xs[-1:]:
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{RISK_LINE}"/>')
    if points:
        base = height - 6
        parts.append(
            f'<text x="{left}" y="{base}" font-size="11" fill="#1a1a1a">{iso(points[0][0])}</text>'
        )
        if n > 1:
            parts.append(
                f'<text x="{width - right}" y="{base}" font-size="11" text-anchor="end" '
                f'fill="#1a1a1a">{iso(points[-1][0])}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def build_report(
    *,
    class_id: int,
    day: date,
    day_records: Sequence[PredictionRecord],
    history: Mapping[date, Sequence[PredictionRecord]],
    threshold: float,
    feedback: Mapping[int, str] | None = None,
) -> ClassReport:
    """Everything the page shows for ``class_id`` on ``day``.

    ``history`` maps each scored day up to ``day`` to that day's records (``day`` included);
    ``feedback`` maps a user_id to this teacher's verdict on that day, if any.
    """
    days = sorted(d for d in history if d <= day)
    if day not in days:
        days.append(day)
        days.sort()
    by_day = {
        d: {int(r["user_id"]): float(r["risk_prob"]) for r in history.get(d, ())} for d in days
    }
    by_day[day] = {int(r["user_id"]): float(r["risk_prob"]) for r in day_records}
    medians = class_medians(day_records)
    rows: list[StudentRow] = []
    ordered = sorted(day_records, key=lambda r: (-float(r["risk_prob"]), int(r["user_id"])))
    for record in ordered:
        uid = int(record["user_id"])
        trend = [(d, by_day[d][uid]) for d in days if uid in by_day[d]]
        values = [v for _, v in trend]
        label = (
            f"Risk trend of student {uid} over {len(values)} day(s): "
            f"{values[0]:.0%} on {iso(trend[0][0])} to {values[-1]:.0%} on {iso(trend[-1][0])}"
        )
        reasons, kind = reasons_for(record, medians)
        rows.append(
            StudentRow(
                user_id=uid,
                risk_prob=float(record["risk_prob"]),
                at_risk=bool(record["at_risk"]),
                predicted_label=int(record["predicted_label"]),
                required_level=int(record["required_level"]),
                trend_svg=sparkline_svg(values, threshold=threshold, label=label),
                reasons=reasons,
                reasons_kind=kind,
                feedback=(feedback or {}).get(uid),
                protective=protective_reasons(record),
            )
        )
    share_points = []
    for d in days:
        records = day_records if d == day else history.get(d, ())
        if records:
            share_points.append((d, sum(bool(r["at_risk"]) for r in records) / len(records)))
    versions = sorted({str(r["model_version"]) for r in day_records}, key=_version_key)
    return ClassReport(
        class_id=class_id,
        day=day,
        days=days,
        model_versions=versions,
        threshold=threshold,
        students=rows,
        at_risk=sum(r.at_risk for r in rows),
        share_svg=share_chart_svg(share_points),
        share_points=share_points,
    )


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (math.inf, version)  # type: ignore[return-value]


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The class page's Jinja2 environment (autoescaped), with its helpers."""
    return template_environment(iso=iso, feature_labels=FEATURE_LABELS)


def render(template: str, **context: object) -> str:
    return environment().get_template(template).render(**context)


def mark_actions(
    built: ClassReport,
    *,
    history: Mapping[date, Sequence[PredictionRecord]],
    records: Iterable[InterventionRecord],
) -> None:
    """List each student's recorded actions (up to the page's day) on the class page
    (``ClassReport``) and mark their days on the student's risk trend: an action on
    a day without scoring is marked on the next scored day."""
    by_user: dict[int, list[InterventionRecord]] = {}
    page_day = format_day(built.day)
    for record in records:
        if record.action_dt <= page_day:
            by_user.setdefault(record.user_id, []).append(record)
    if not by_user:
        return
    days = sorted(d for d in history if d <= built.day)
    risks = {d: {int(r["user_id"]): float(r["risk_prob"]) for r in history[d]} for d in days}
    for row in built.students:
        done = sorted(by_user.get(row.user_id, []), key=lambda r: (r.action_dt, r.action))
        if not done:
            continue
        row.actions = [f"{ACTION_LABELS[r.action]} on {_iso_day(r.action_dt)}" for r in done]
        trend = [d for d in days if row.user_id in risks[d]]
        marks = []
        for r in done:
            after = [i for i, d in enumerate(trend) if format_day(d) >= r.action_dt]
            if after:
                marks.append(after[0])
        values = [risks[d][row.user_id] for d in trend]
        if not values:
            continue
        label = (
            f"Risk trend of student {row.user_id} over {len(values)} day(s): "
            f"{values[0]:.0%} on {trend[0].isoformat()} to {values[-1]:.0%} on "
            f"{trend[-1].isoformat()}; actions recorded: {'; '.join(row.actions)}"
        )
        row.trend_svg = sparkline_svg(values, threshold=built.threshold, label=label, marks=marks)


def _iso_day(day_text: str) -> str:
    return f"{day_text[:4]}-{day_text[4:6]}-{day_text[6:8]}"


__all__ = [
    "ClassReport",
    "StudentRow",
    "build_report",
    "class_medians",
    "format_value",
    "mark_actions",
    "protective_reasons",
    "reasons_for",
    "render",
    "share_chart_svg",
    "sparkline_svg",
    "unusual_features",
]
