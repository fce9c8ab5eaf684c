"""Evaluation plots of a candidate (confusion matrix, metrics by progress, risk calibration).

Drawn on a ``Figure`` with its own Agg canvas, so no pyplot global state is touched; the retrain
logs them under ``plots/`` of each candidate's MLflow run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lof.features.definitions import LEVELS
from lof.model.outcome import PROGRESS_POINTS, risk_probabilities

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(width: float = 5.0, height: float = 4.0) -> Figure:
    # Figure + Agg canvas directly: no pyplot global state, no backend selection.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def plot_confusion(*, labels: np.ndarray, proba: np.ndarray, title: str, path: Path) -> Path:
    from sklearn.metrics import confusion_matrix

    predicted = np.asarray(LEVELS)[proba.argmax(axis=1)]
    matrix = confusion_matrix(labels, predicted, labels=list(LEVELS))
    figure = _figure()
    ax = figure.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    for i in range(len(LEVELS)):
        for j in range(len(LEVELS)):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(LEVELS)), [str(v) for v in LEVELS])
    ax.set_yticks(range(len(LEVELS)), [str(v) for v in LEVELS])
    ax.set_xlabel("predicted level")
    ax.set_ylabel("final level")
    ax.set_title(title)
    figure.tight_layout()
    figure.savefig(path)
    return path


def plot_metrics_by_progress(*, metrics: Mapping[str, float], title: str, path: Path) -> Path:
    """Risk ROC-AUC, at-risk precision/recall and macro-F1 against % of the course elapsed."""
    figure = _figure()
    ax = figure.add_subplot()
    percents = [round(p * 100) for p in PROGRESS_POINTS]
    for name in ("risk_roc_auc", "at_risk_precision", "at_risk_recall", "macro_f1"):
        values = [metrics.get(f"{name}_at_{p}", float("nan")) for p in percents]
        ax.plot(percents, values, marker="o", label=name)
    ax.set_xlabel("% of course elapsed")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    return path


def plot_calibration(
    *,
    labels: np.ndarray,
    proba: np.ndarray,
    required: np.ndarray,
    title: str,
    path: Path,
    risk: np.ndarray | None = None,
) -> Path:
    """Reliability of ``risk_prob``: observed share at risk per predicted-risk bin."""
    risk = risk_probabilities(proba, required) if risk is None else np.asarray(risk, dtype=float)
    truly = (np.asarray(labels, dtype=int) < np.asarray(required, dtype=int)).astype(float)
    edges = np.linspace(0, 1, 11)
    bins = np.clip(np.digitize(risk, edges) - 1, 0, 9)
    mean_pred, observed = [], []
    for b in range(10):
        mask = bins == b
        if mask.any():
            mean_pred.append(float(risk[mask].mean()))
            observed.append(float(truly[mask].mean()))
    figure = _figure()
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    ax.plot(mean_pred, observed, marker="o", label="model")
    ax.set_xlabel("predicted risk (P(level < required))")
    ax.set_ylabel("observed share below required level")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path)
    return path
