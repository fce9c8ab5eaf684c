"""The model card of a registered version, and the per-group evaluation a retrain logs.

At the end of a retrain (``log_evaluation``): with ``LOF_STUDENT_GROUPS`` set, every candidate's
nested run and the version's run get the per-group metrics of ``lof.model.group_metrics`` on the
held-out rows the selection used; then the version's run gets ``model_card.html`` and
``model_card.md``: what the version was trained on, its held-out figures per point with
class-bootstrap intervals, a calibration plot, lead time, the group table, its threshold and
how it was chosen, and its known limits, for a teaching committee to read.

The registered fit saw every class, the held-out ones included; its held-out figures are those
of the same candidate fitted without them (the figures the promote gate compares), at the
version's own threshold. No student id and no per-student row is in the card.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from markupsafe import Markup, escape

from lof.core.calendar import format_day
from lof.governance import groups
from lof.model import group_metrics
from lof.model import outcome as lof_model
from lof.registry import client as registry
from lof.training.selection import CandidateResult

if TYPE_CHECKING:
    from lof.core.config import Settings
    from lof.training.registration import RetrainRun

log = logging.getLogger(__name__)

CARD_HTML = "model_card.html"
CARD_MARKDOWN = "model_card.md"
INTERVAL_ROUNDS = 200
_BATCH = 900


@dataclass
class PointFigures:
    """The held-out figures of one progress point, AUC with its class-bootstrap interval."""

    pct: int
    n: int
    auc: float
    auc_low: float
    auc_high: float
    pr_auc: float
    brier: float
    ece: float
    precision: float
    recall: float
    flag_rate: float
    base_rate: float
    mean_risk: float
    lead_time: float


@dataclass
class ModelCard:
    """What the card shows; ``markdown`` and ``html`` render it."""

    model_name: str
    version: str
    candidate: str
    semesters: list[str]
    as_of: str
    label_rule: str
    n_examples: int
    n_classes: int
    holdout_kind: str
    holdout_classes: int
    evaluated_rows: int
    threshold: float
    threshold_rule: str
    points: list[PointFigures]
    calibration: list[tuple[float, float, int]]
    """(mean risk, observed share, rows) per risk bin at 50 %."""
    selection: str
    groups: group_metrics.GroupReport | None = None
    groups_source: str = ""
    limits: list[str] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    """Per finished semester trained on, what its outcome report of teachers' actions says."""

    def markdown(self) -> str:
        lines = [
            f"# Model card: {self.model_name} version {self.version}",
            "",
            "## What it was trained on",
            f"- Candidate: {self.candidate}; selection: {self.selection}",
            f"- Semesters {', '.join(self.semesters)} as of {self.as_of}; {self.n_classes} "
            f"classes, {self.n_examples} examples; label rule `{self.label_rule}`",
            f"- Held out ({self.holdout_kind}): {self.holdout_classes} classes, "
            f"{self.evaluated_rows} rows",
            "",
            "## Held-out performance per point of the course",
            "| point | rows | ROC-AUC (90% CI) | PR-AUC | Brier | ECE | flagged | precision "
            "| recall | lead time |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for p in self.points:
            lines.append(
                f"| {p.pct}% | {p.n} | {_f(p.auc)} ({_f(p.auc_low)}-{_f(p.auc_high)}) | "
                f"{_f(p.pr_auc)} | {_f(p.brier)} | {_f(p.ece)} | {_pc(p.flag_rate)} | "
                f"{_f(p.precision)} | {_f(p.recall)} | {_pc(p.lead_time)} |"
            )
        lines += [
            "",
            "Lead time: the share of the students who ended below the required level that were "
            "flagged at that point or earlier.",
            "",
            "## Calibration at 50%",
            "| mean risk | observed share below | rows |",
            "|---|---|---|",
            *[f"| {_f(r)} | {_f(o)} | {n} |" for r, o, n in self.calibration],
            "",
            "## Threshold",
            f"At risk when risk >= {self.threshold:.3f}: {self.threshold_rule}",
            "",
            "## By student group",
        ]
        lines += self._group_markdown()
        lines += ["", "## Teachers' actions and outcomes"]
        lines += [f"- {text}" for text in self.outcomes] or ["- No outcome report was made."]
        lines += ["", "## Known limits", *[f"- {text}" for text in self.limits]]
        return "\n".join(lines) + "\n"

    def _group_markdown(self) -> list[str]:
        report = self.groups
        if report is None:
            return [
                "Not measured: LOF_STUDENT_GROUPS was not set at retrain (see README, "
                "Student groups)."
            ]
        lines = [
            f"Groups from {self.groups_source}; a value with fewer than {report.min_size} "
            "students among the held-out rows is reported as too small, not as numbers. "
            "Gaps: ABROCA and the largest ROC-AUC gap between reported values (90% "
            "class-bootstrap interval).",
        ]
        for attribute in report.attributes:
            lines += ["", f"### {attribute.attribute}"]
            if attribute.too_small:
                lines.append(f"Too small to report: {', '.join(attribute.too_small)}")
            lines.append(
                "| point | value | students | base rate | mean risk | ROC-AUC | ECE | flagged | "
                "recall | precision | lead time |"
            )
            lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
            for point, table in attribute.tables.items():
                for value, row in table.iterrows():
                    lines.append(
                        f"| {point}% | {value} | {int(row['students'])} | {_pc(row['base_rate'])} "
                        f"| {_pc(row['mean_risk'])} | {_f(row['auc'])} | {_f(row['ece'])} | "
                        f"{_pc(row['flag_rate'])} | {_f(row['recall'])} | {_f(row['precision'])} "
                        f"| {_pc(row['lead_time'])} |"
                    )
            for point in attribute.tables:
                g = attribute.gaps
                lines.append(
                    f"- {point}%: ABROCA {_f(g.get(f'abroca_{point}'))} "
                    f"({_f(g.get(f'abroca_{point}_ci_low'))}-"
                    f"{_f(g.get(f'abroca_{point}_ci_high'))}), largest ROC-AUC gap "
                    f"{_f(g.get(f'max_auc_gap_{point}'))} "
                    f"({_f(g.get(f'max_auc_gap_{point}_ci_low'))}-"
                    f"{_f(g.get(f'max_auc_gap_{point}_ci_high'))})"
                )
        return lines

    def html(self) -> str:
        from lof.core.templates import template_environment

        return (
            template_environment()
            .get_template("model_card.html")
            .render(
                card=self,
                f=_f,
                pc=_pc,
                calibration_svg=calibration_svg(self.calibration),
            )
        )


def _f(value: float | None) -> str:
    if value is None:
        return "n/a"
    value = float(value)
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def _pc(value: float | None) -> str:
    if value is None:
        return "n/a"
    value = float(value)
    return "n/a" if math.isnan(value) else f"{value:.0%}"


def calibration_svg(bins: Sequence[tuple[float, float, int]], *, size: int = 260) -> Markup:
    """A reliability diagram: observed share below against mean risk per bin, the diagonal
    dashed (numbers only; the page needs no script)."""
    pad = 34.0
    inner = size - 2 * pad

    def xy(risk: float, observed: float) -> tuple[float, float]:
        return pad + risk * inner, size - pad - observed * inner

    label = "Calibration at 50%: " + ", ".join(
        f"risk {r:.2f} observed {o:.2f} ({n} rows)" for r, o, n in bins
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'viewBox="0 0 {size} {size}" role="img" aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>",
        f'<rect x="{pad}" y="{pad}" width="{inner}" height="{inner}" fill="none" '
        'stroke="#767676"/>',
        f'<line x1="{pad}" y1="{size - pad}" x2="{size - pad}" y2="{pad}" stroke="#767676" '
        'stroke-dasharray="4 3"/>',
    ]
    for tick in (0.0, 0.5, 1.0):
        x, y = xy(tick, tick)
        parts.append(
            f'<text x="{x:.1f}" y="{size - pad + 14}" font-size="11" text-anchor="middle">'
            f"{tick:.1f}</text>"
            f'<text x="{pad - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">'
            f"{tick:.1f}</text>"
        )
    parts.append(
        f'<text x="{size / 2}" y="{size - 6}" font-size="11" text-anchor="middle">mean risk</text>'
        f'<text x="10" y="{size / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 10 {size / 2})">observed share below</text>'
    )
    points = [xy(r, o) for r, o, _ in bins]
    if len(points) > 1:
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline fill="none" stroke="#1f4e9a" stroke-width="2" points="{coords}"/>')
    for x, y in points:
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="#1f4e9a"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


# --- figures -----------------------------------------------------------------------------------


def truth_of(rows: pd.DataFrame) -> np.ndarray:
    return rows["label"].to_numpy(dtype=int) < rows["required_level"].to_numpy(dtype=int)


def held_out_risk(*, rows: pd.DataFrame, result: CandidateResult) -> np.ndarray:
    """A candidate's calibrated risk on the evaluated rows: the holdout-blind fit's (time
    holdout), else its out-of-fold risk under the calibration fitted on it."""
    if result.get("holdout_risk") is not None:
        return np.asarray(result["holdout_risk"], dtype=float)
    raw = lof_model.risk_probabilities(
        result["holdout_proba"], rows["required_level"].to_numpy(dtype=int)
    )
    return np.asarray(result["calibration"].risk(raw), dtype=float)


def _auc_interval(
    rows: pd.DataFrame, truth: np.ndarray, risk: np.ndarray, mask: np.ndarray, seed: int
) -> tuple[float, float]:
    classes = rows["class_id"].to_numpy()
    ids = np.unique(classes[mask])
    if len(ids) < 2:
        return float("nan"), float("nan")
    by_class = {c: np.flatnonzero(mask & (classes == c)) for c in ids}
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(INTERVAL_ROUNDS):
        index = np.concatenate([by_class[c] for c in rng.choice(ids, size=len(ids))])
        value = group_metrics.roc_auc(truth[index], risk[index])
        if not math.isnan(value):
            values.append(value)
    if len(values) < 2:
        return float("nan"), float("nan")
    low, high = np.percentile(values, [5, 95])
    return float(low), float(high)


def point_figures(
    *, rows: pd.DataFrame, risk: np.ndarray, threshold: float, seed: int = 0
) -> list[PointFigures]:
    from sklearn.metrics import average_precision_score

    truth = truth_of(rows)
    flagged = risk >= threshold
    progress = rows["progress"].to_numpy(dtype=float)
    out = []
    for point in lof_model.REPORT_POINTS:
        mask = np.isclose(progress, point)
        t, r, fl = truth[mask], risk[mask], flagged[mask]
        both = bool(t.any() and not t.all())
        low, high = _auc_interval(rows, truth, risk, mask, seed)
        out.append(
            PointFigures(
                pct=group_metrics.pct(point),
                n=int(mask.sum()),
                auc=group_metrics.roc_auc(t, r),
                auc_low=low,
                auc_high=high,
                pr_auc=float(average_precision_score(t, r)) if both else float("nan"),
                brier=float(((r - t) ** 2).mean()) if len(t) else float("nan"),
                ece=lof_model.expected_calibration_error(r, t.astype(float)),
                precision=float((fl & t).sum() / fl.sum()) if fl.any() else float("nan"),
                recall=float((fl & t).sum() / t.sum()) if t.any() else float("nan"),
                flag_rate=float(fl.mean()) if len(fl) else float("nan"),
                base_rate=float(t.mean()) if len(t) else float("nan"),
                mean_risk=float(r.mean()) if len(r) else float("nan"),
                lead_time=group_metrics.lead_time(
                    rows=rows, truth=truth, flagged=flagged, point=point
                ),
            )
        )
    return out


def calibration_bins(
    *, rows: pd.DataFrame, risk: np.ndarray, point: float = 0.5, bins: int = 10
) -> list[tuple[float, float, int]]:
    mask = np.isclose(rows["progress"].to_numpy(dtype=float), point)
    truth, r = truth_of(rows)[mask], risk[mask]
    index = np.clip((r * bins).astype(int), 0, bins - 1)
    return [
        (float(r[index == b].mean()), float(truth[index == b].mean()), int((index == b).sum()))
        for b in np.unique(index)
    ]


def threshold_rule(settings: Settings) -> str:
    target = settings.risk_target_recall
    chosen = (
        f"the highest threshold still flagging {target:.0%} of the students who ended below "
        "(LOF_RISK_TARGET_RECALL)"
        if target
        else "the threshold with the best F1 of at-risk (precision and recall weighed alike)"
    )
    return (
        f"chosen at retrain as {chosen}, on grouped out-of-fold predictions over every "
        "training class; LOF_RISK_THRESHOLD overrides it when set"
    )


def known_limits(
    *, kind: str, holdout_classes: int, report: group_metrics.GroupReport | None
) -> list[str]:
    limits = [
        "Evaluated on past classes; a new course, teacher or grading practice may behave "
        "differently (watch the drift warnings of the daily run).",
        "The risk is that of ending below the class's required level under the label rule; "
        "it says nothing about why, and a warning is a prompt to talk, not a verdict.",
        "Students with no activity yet look alike early in a course: early figures rank "
        "late starters and early withdrawers together.",
    ]
    if holdout_classes < 10:
        limits.append(
            f"Only {holdout_classes} held-out classes: the intervals are wide; read them, not "
            "the point figures."
        )
    if kind != "time":
        limits.append(
            f"No later semester was held out ({kind}): the figures are out of fold, not on a "
            "later semester."
        )
    if report is None:
        limits.append("Not measured per student group (LOF_STUDENT_GROUPS was not set).")
    return limits


# --- logging -----------------------------------------------------------------------------------


def log_metrics_to(run_id: str, metrics: dict[str, float]) -> None:
    """Log ``metrics`` to a (possibly finished) run, in batches MLflow accepts."""
    import time

    import mlflow
    from mlflow.entities import Metric

    client = mlflow.MlflowClient()
    now = int(time.time() * 1000)
    items = [Metric(key, float(value), now, 0) for key, value in sorted(metrics.items())]
    for start in range(0, len(items), _BATCH):
        client.log_batch(run_id, metrics=items[start : start + _BATCH])


def log_evaluation(
    *,
    run: RetrainRun,
    results: dict[str, CandidateResult],
    chosen: str,
    final: lof_model.RiskModel,
    version: str,
    run_id: str,
    student_groups: groups.StudentGroups | None,
    seed: int = 0,
    outcomes: Sequence[str] = (),
) -> str:
    """Per-group metrics on every candidate's run and the version's, then the model card on
    the version's run; returns the card's artifact URI."""
    import mlflow

    settings = run.settings
    rows = run.evaluated.reset_index(drop=True)
    report = None
    if student_groups is not None and len(rows):
        attributes = student_groups.for_users(rows["user_id"])
        for result in results.values():
            candidate_report = group_metrics.group_report(
                rows=rows,
                risk=held_out_risk(rows=rows, result=result),
                threshold=result["calibration"].threshold,
                attributes=attributes,
                min_size=settings.group_min_size,
                seed=seed,
            )
            if result.get("run_id"):
                log_metrics_to(result["run_id"], candidate_report.metrics())
        report = group_metrics.group_report(
            rows=rows,
            risk=held_out_risk(rows=rows, result=results[chosen]),
            threshold=final.threshold,
            attributes=attributes,
            min_size=settings.group_min_size,
            seed=seed,
        )
        log_metrics_to(run_id, report.metrics())
        mlflow.set_tag("lof.groups_too_small", _too_small_tag(report))
    risk = held_out_risk(rows=rows, result=results[chosen])
    card = ModelCard(
        model_name=settings.model_name,
        version=str(version),
        candidate=chosen,
        semesters=list(run.training.semesters),
        as_of=format_day(run.training.as_of),
        label_rule=settings.label_rule,
        n_examples=len(run.examples),
        n_classes=len(run.all_ids),
        holdout_kind=run.kind,
        holdout_classes=len(held_out_class_ids(rows)),
        evaluated_rows=len(rows),
        threshold=final.threshold,
        threshold_rule=threshold_rule(settings),
        points=point_figures(rows=rows, risk=risk, threshold=final.threshold, seed=seed),
        calibration=calibration_bins(rows=rows, risk=risk) if len(rows) else [],
        selection=(
            f"highest grouped-CV {lof_model.SELECTION_METRIC} (mean risk ROC-AUC at 10%, 25% "
            f"and 50%), ties to the lowest {lof_model.TIE_METRIC}"
        ),
        groups=report,
        groups_source=Path(student_groups.source).name if student_groups else "",
        limits=known_limits(
            kind=run.kind, holdout_classes=len(held_out_class_ids(rows)), report=report
        ),
        outcomes=list(outcomes),
    )
    with tempfile.TemporaryDirectory(prefix="lof-card-") as tmp:
        (Path(tmp) / CARD_HTML).write_text(card.html(), encoding="utf-8")
        (Path(tmp) / CARD_MARKDOWN).write_text(card.markdown(), encoding="utf-8")
        mlflow.log_artifacts(tmp)
    mlflow.set_tag("lof.model_card", CARD_HTML)
    return card_uri(run_id)


def held_out_class_ids(rows: pd.DataFrame) -> list[int]:
    return sorted({int(c) for c in rows["class_id"].unique()})


def _too_small_tag(report: group_metrics.GroupReport) -> str:
    parts = [
        f"{a.attribute}: {len(a.too_small)} value(s)" for a in report.attributes if a.too_small
    ]
    return "; ".join(parts) or "none"


def card_uri(run_id: str) -> str:
    return f"runs:/{run_id}/{CARD_HTML}"


def where(*, settings: Settings, version: str) -> tuple[str, str]:
    """(runs:/ URI, artifact store location) of a version's model card; ModelError when the
    version has none."""
    from lof.core.errors import ModelError

    info = registry.version_info(settings=settings, version=version)
    listed = registry.client(settings=settings).list_artifacts(info.run_id)
    if not any(item.path == CARD_HTML for item in listed):
        raise ModelError(
            f"version {version} of {settings.model_name!r} has no {CARD_HTML} in run "
            f"{info.run_id}; it was registered before model cards; retrain to get one"
        )
    run = registry.client(settings=settings).get_run(info.run_id)
    return card_uri(info.run_id), f"{run.info.artifact_uri.rstrip('/')}/{CARD_HTML}"
