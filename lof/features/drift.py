"""Feature drift: how far a day's model inputs are from what the Production model learnt from.

At registration the training examples are summarised per feature as quantile bins and the share
of examples in each (a few kilobytes, stored with the model's run), so scoring never reads
the training set. Each day the scaled features the model sees are put in the same bins and
compared with the population stability index (PSI): sum over bins of (a - e) * ln(a / e).
Rule of thumb: below 0.1 stable, 0.1-0.25 moderate shift, above 0.25 a different population.

Per stage of the class: the examples are snapshots at progress points of their classes (10 %,
25 %, ...), and a class in its second week looks nothing like the same class at 75 %; a single
reference mixing every stage flags most days of a semester's first weeks. So the reference
holds one summary per progress band (``BAND_REACH`` around each point, at most halfway to the
next), and a day's rows are compared, band by band, with the examples of their own stage
(``STAGE``, the share of the class's activity window elapsed). A feature's PSI for the day is
the mean of its bands' PSI weighted by their rows; bands with fewer than ``MIN_BAND_ROWS`` rows
(or ``MIN_BAND_CLASSES`` classes) that day, and rows between bands (a stage the examples do not
show), are left out: a day whose classes are all between two points has no drift figure.

Counts scaled within a class sit on a lattice (3 of 7 activities is 0.43, 2 of 5 is 0.4): a
decile edge at 0.43 makes a bin only classes of 7 activities fill, and a day of other classes
"drifts" by that alone. So each value is spread evenly over a window of ``SMOOTHING`` times the
feature's range in the examples before the shares are taken, for the examples and the day
alike; a real shift (most students at 0 on an input) moves far more than that window.

A reference without bands (format 1, models registered before) or a day without the stage
compares all rows with the pooled summary, which the reference keeps as well.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import NotRequired, TypedDict

import numpy as np
import pandas as pd

from lof.features.definitions import FEATURES

log = logging.getLogger(__name__)

REFERENCE_ARTIFACT = "drift/reference.json"
REFERENCE_FORMAT = 2
STAGE = "window_elapsed"
"""The day's column giving each row's stage of its class (0-1), as the examples' ``progress``."""
MIN_BAND_ROWS = 100
"""Fewer rows of a band in a day give a PSI that is mostly noise (about bins / rows)."""
MIN_BAND_CLASSES = 3
"""A band's rows that day must come from this many classes: one class's quirks (how many
activities, when they are due) are not a population."""
BAND_REACH = 0.025
"""A band holds the stages within this distance of its progress point."""
SMOOTHING = 0.2
"""Width of the window each value is spread over, as a share of the feature's range."""
QUANTILES = tuple(q / 10 for q in range(1, 10))
_FLOOR = 1e-4  # an empty bin counts as this share, so ln(a / e) stays finite


class FeatureSummary(TypedDict):
    """One feature's bins: their edges, each bin's share, the smoothing width."""

    edges: list[float]
    width: NotRequired[float]
    shares: list[float]


class Band(TypedDict):
    """The summaries of the examples whose progress is in [low, high)."""

    low: float
    high: float
    n: int
    features: dict[str, FeatureSummary]


class Reference(TypedDict):
    """The drift reference stored with a registered model (``REFERENCE_ARTIFACT``)."""

    format: int
    n: int
    features: dict[str, FeatureSummary]
    bands: NotRequired[list[Band]]


def build_reference(*, examples: pd.DataFrame, features: Sequence[str] = FEATURES) -> Reference:
    """Per feature: bin edges (deciles, repeated values merged) and each bin's share, over all
    examples and, when they carry ``progress``, per progress band."""
    reference: Reference = {
        "format": REFERENCE_FORMAT,
        "n": len(examples),
        "features": _summary(examples, features),
    }
    if "progress" in examples.columns and len(examples):
        progress = examples["progress"].astype(float).to_numpy()
        reference["bands"] = [
            {
                "low": low,
                "high": high,
                "n": int(inside.sum()),
                "features": _summary(examples[inside], features),
            }
            for low, high in progress_bands(sorted({float(p) for p in progress}))
            for inside in [_in_band(progress, low, high)]
            if inside.any()
        ]
    return reference


def progress_bands(
    points: Sequence[float], *, reach: float = BAND_REACH
) -> list[tuple[float, float]]:
    """A band around each progress point: ``reach`` on either side, at most halfway to the
    neighbouring points, and not below 0."""
    bands = []
    for k, point in enumerate(points):
        left = min(reach, (point - points[k - 1]) / 2) if k > 0 else reach
        right = min(reach, (points[k + 1] - point) / 2) if k + 1 < len(points) else reach
        bands.append((max(point - left, 0.0), point + right))
    return bands


def _in_band(stage: np.ndarray, low: float, high: float) -> np.ndarray:
    """low <= stage < high; a band that reaches 1 holds 1 itself."""
    return (stage >= low) & ((stage < high) | ((high >= 1.0) & (stage >= 1.0)))


def _summary(examples: pd.DataFrame, features: Sequence[str]) -> dict[str, FeatureSummary]:
    out: dict[str, FeatureSummary] = {}
    for name in features:
        if name not in examples.columns:
            continue
        values = examples[name].astype(float).to_numpy()
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        edges = sorted({float(v) for v in np.quantile(values, QUANTILES)})
        width = SMOOTHING * float(values.max() - values.min())
        out[name] = {"edges": edges, "width": width, "shares": _shares(values, edges, width)}
    return out


def _shares(values: np.ndarray, edges: Sequence[float], width: float = 0.0) -> list[float]:
    """Share of ``values`` in each bin (-inf, e1], (e1, e2], ..., (ek, inf); with a ``width``,
    each value counts as spread evenly over [value - width/2, value + width/2]."""
    if width <= 0:
        bins = np.searchsorted(np.asarray(edges, dtype=float), values, side="left")
        counts = np.bincount(bins, minlength=len(edges) + 1)
        return [float(c) / max(values.size, 1) for c in counts]
    bounds = np.asarray(edges, dtype=float)
    low = np.concatenate([[-np.inf], bounds])
    high = np.concatenate([bounds, [np.inf]])
    shares = np.zeros(len(low))
    for start in range(0, values.size, 4096):  # (values, bins) at a time stays small
        part = values[start : start + 4096, None]
        overlap = np.minimum(high, part + width / 2) - np.maximum(low, part - width / 2)
        shares += np.clip(overlap, 0.0, None).sum(axis=0) / width
    return [float(s) / max(values.size, 1) for s in shares]


def psi(*, expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two binned distributions (same bins)."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, _FLOOR), max(a, _FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def day_psi(*, reference: Reference, features: pd.DataFrame) -> dict[str, float]:
    """PSI of each referenced feature of the day's (scaled) features; {} on an empty day, or
    when no stage band has ``MIN_BAND_ROWS`` rows that day (see the module docstring)."""
    if features.empty:
        return {}
    bands = reference.get("bands")
    if not bands or STAGE not in features.columns:
        return _psi_of(reference.get("features", {}), features)
    stage = features[STAGE].astype(float).to_numpy()
    totals: dict[str, float] = {}
    weights: dict[str, float] = {}
    for band in bands:
        inside = _in_band(stage, float(band["low"]), float(band["high"]))
        rows = int(inside.sum())
        if rows < MIN_BAND_ROWS or (
            "class_id" in features.columns
            and features.loc[inside, "class_id"].nunique() < MIN_BAND_CLASSES
        ):
            continue
        for name, value in _psi_of(band["features"], features[inside]).items():
            totals[name] = totals.get(name, 0.0) + value * rows
            weights[name] = weights.get(name, 0.0) + rows
    return {name: totals[name] / weights[name] for name in totals}


def _psi_of(summaries: Mapping[str, FeatureSummary], features: pd.DataFrame) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, ref in summaries.items():
        if name not in features.columns:
            continue
        values = features[name].astype(float).to_numpy()
        values = values[np.isfinite(values)]
        if values.size:
            actual = _shares(values, ref["edges"], float(ref.get("width", 0.0)))
            out[name] = psi(expected=ref["shares"], actual=actual)
    return out


def drift_metrics(psi_by_feature: Mapping[str, float]) -> dict[str, float]:
    """MLflow metric names for the day's PSI values, with their maximum."""
    metrics = {f"drift.psi.{name}": value for name, value in psi_by_feature.items()}
    if psi_by_feature:
        metrics["drift.psi.max"] = max(psi_by_feature.values())
    return metrics


def drifted(psi_by_feature: Mapping[str, float], *, threshold: float) -> dict[str, float]:
    """The features whose PSI exceeds ``threshold``, largest first."""
    over = {k: v for k, v in psi_by_feature.items() if v > threshold}
    return dict(sorted(over.items(), key=lambda kv: -kv[1]))


def markdown_report(
    *, day: str, version: str, psi_by_feature: Mapping[str, float], threshold: float
) -> str:
    """The Prefect artifact's text: every feature's PSI, the drifted ones marked."""
    lines = [
        f"# Feature drift on {day} against model v{version}'s training examples",
        "",
        f"PSI above {threshold:g} is flagged (LOF_DRIFT_PSI_THRESHOLD).",
        "",
        "| feature | PSI | |",
        "|---|---:|---|",
    ]
    for name, value in sorted(psi_by_feature.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {value:.3f} | {'**drifted**' if value > threshold else ''} |")
    return "\n".join(lines) + "\n"


# --- MLflow: the reference travels with the model version's run ---------------------------


def log_reference(*, examples: pd.DataFrame) -> None:
    """Store the training examples' reference in the active MLflow run (the registered one)."""
    import mlflow

    mlflow.log_dict(dict(build_reference(examples=examples)), REFERENCE_ARTIFACT)


def load_reference(*, tracking_uri: str, run_id: str) -> Reference | None:
    """The reference stored with ``run_id``, or None if that model predates references."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    try:
        names = {f.path for f in client.list_artifacts(run_id, "drift")}
        if REFERENCE_ARTIFACT not in names:
            return None
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory(prefix="lof-drift-") as tmp:
            path = client.download_artifacts(run_id, REFERENCE_ARTIFACT, tmp)
            return json.loads(Path(path).read_text())
    except (MlflowException, OSError) as exc:
        log.warning("no drift reference for run %s: %s", run_id, type(exc).__name__)
        return None
