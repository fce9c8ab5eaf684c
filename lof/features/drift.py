"""Feature drift: how far a day's model inputs are from what the Production model learnt from.

At registration the training examples are summarised per feature as quantile bins and the share
of examples in each (a few hundred bytes, stored with the model's run), so scoring never reads
the training set. Each day the scaled features the model sees are put in the same bins and
compared with the population stability index (PSI): sum over bins of (a - e) * ln(a / e).
Rule of thumb: below 0.1 stable, 0.1-0.25 moderate shift, above 0.25 a different population.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lof.features.definitions import FEATURES

log = logging.getLogger(__name__)

REFERENCE_ARTIFACT = "drift/reference.json"
REFERENCE_FORMAT = 1
QUANTILES = tuple(q / 10 for q in range(1, 10))
_FLOOR = 1e-4  # an empty bin counts as this share, so ln(a / e) stays finite


def build_reference(
    *, examples: pd.DataFrame, features: Sequence[str] = FEATURES
) -> dict[str, Any]:
    """Per feature: bin edges (deciles, repeated values merged) and each bin's share."""
    reference: dict[str, Any] = {"format": REFERENCE_FORMAT, "n": len(examples), "features": {}}
    for name in features:
        values = examples[name].astype(float).to_numpy()
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        edges = sorted({float(v) for v in np.quantile(values, QUANTILES)})
        reference["features"][name] = {"edges": edges, "shares": _shares(values, edges)}
    return reference


def _shares(values: np.ndarray, edges: Sequence[float]) -> list[float]:
    """Share of ``values`` in each bin (-inf, e1], (e1, e2], ..., (ek, inf)."""
    bins = np.searchsorted(np.asarray(edges, dtype=float), values, side="left")
    counts = np.bincount(bins, minlength=len(edges) + 1)
    return [float(c) / max(values.size, 1) for c in counts]


def psi(*, expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two binned distributions (same bins)."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, _FLOOR), max(a, _FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def day_psi(*, reference: Mapping[str, Any], features: pd.DataFrame) -> dict[str, float]:
    """PSI of each referenced feature of the day's (scaled) features; {} on an empty day."""
    out: dict[str, float] = {}
    if features.empty:
        return out
    for name, ref in reference.get("features", {}).items():
        if name not in features.columns:
            continue
        values = features[name].astype(float).to_numpy()
        values = values[np.isfinite(values)]
        if values.size:
            out[name] = psi(expected=ref["shares"], actual=_shares(values, ref["edges"]))
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

    mlflow.log_dict(build_reference(examples=examples), REFERENCE_ARTIFACT)


def load_reference(*, tracking_uri: str, run_id: str) -> dict[str, Any] | None:
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
