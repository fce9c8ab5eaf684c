"""Exact one-column-at-a-time risk changes without predicting each variant.

``lof.model.reasons`` asks, per student and input column, "what would risk_prob be with this column
at the class median?". Predicting every variant costs one prediction of the cohort per column;
for two kinds of model the raw scores of all variants come cheaper, and exactly:

- logistic regression: the scores are linear, so a column's change moves them by its
  coefficients times the change;
- histogram gradient boosting of small trees: a tree's leaf is fixed by its few split
  decisions, and setting one column to another value changes only the decisions on that
  column. Each tree becomes a table from its decision bits (at most 8 splits, one byte) to its
  leaf value; a student's bytes are computed once, and a variant rewrites only the bits of its
  column in the trees that split on it.

The probabilities then follow as the model computes them. Supported: ``LogisticRegression`` and
``HistGradientBoostingClassifier`` (numeric features, at most 8 splits per tree, alone or in
``CalibratedClassifierCV`` with sigmoid or isotonic calibration and one calibrated classifier),
each alone or as the one step of a pipeline, possibly in a ``RiskModel``. ``variant_risks``
returns None for anything else, for missing values, or when its risk of the actual rows does
not match the model's own prediction, and the caller predicts the variants instead.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lof.model import outcome as lof_model
from lof.model.classifier import Classifier

if TYPE_CHECKING:
    from sklearn.calibration import _CalibratedClassifier
    from sklearn.ensemble import HistGradientBoostingClassifier

MAX_SPLITS = 8
"""Splits per tree that fit a one-byte decision code (``max_leaf_nodes`` up to 9)."""
ROWS_PER_CHUNK = 1024
"""Rows done at once: a chunk's per-tree codes and leaf values (~10 bytes per tree and row)
stay in the CPU cache at this size; 4096 rows ran ~12% slower on a 400-tree ensemble."""


@dataclass(frozen=True)
class _Column:
    """The trees that split on one column and how a value of that column sets their bits."""

    trees: np.ndarray  # tree indices
    keep: np.ndarray  # (trees, 1) uint8: the bits of the other columns' splits
    bits_by_rank: np.ndarray  # (trees, ranks) uint8: this column's bits for a value's rank
    leaf_values: np.ndarray  # (trees * 256,) leaf value per tree and decision code
    class_of_tree: np.ndarray  # (classes, trees) one-hot, for the per-class sums


@dataclass(frozen=True)
class _Ensemble:
    feature: np.ndarray  # (trees, MAX_SPLITS) column of each split (padding: 0)
    cut_rank: np.ndarray  # (trees, MAX_SPLITS) uint8 rank of each split's threshold
    cuts: list[np.ndarray]  # per column: its thresholds, sorted and unique
    leaf_values: np.ndarray  # (trees, 256) leaf value per decision code
    class_of_tree: np.ndarray  # (classes, trees) one-hot
    baseline: np.ndarray  # (classes,)
    columns: list[_Column | None]


_compiled: weakref.WeakKeyDictionary[HistGradientBoostingClassifier, _Ensemble | None] = (
    weakref.WeakKeyDictionary()
)


def supported(model: Classifier) -> _Linear | _Boosting | None:
    """The exact scorer of ``model``'s raw scores, None when it is not a supported kind."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    if isinstance(model, lof_model.RiskModel):
        model = model.estimator
    if isinstance(model, Pipeline):
        if len(model.steps) != 1:
            return None
        model = model.steps[0][1]
    if isinstance(model, LogisticRegression) and hasattr(model, "coef_"):
        return _Linear(
            coef=np.asarray(model.coef_, dtype=float),
            intercept=np.asarray(model.intercept_, dtype=float),
        )
    calibrated = None
    if isinstance(model, CalibratedClassifierCV):
        fitted = getattr(model, "calibrated_classifiers_", [])
        if len(fitted) != 1 or fitted[0].method not in ("sigmoid", "isotonic"):
            return None
        calibrated = fitted[0]
        model = calibrated.estimator
    if not isinstance(model, HistGradientBoostingClassifier) or not hasattr(model, "_predictors"):
        return None
    ensemble = _ensemble(model)
    return None if ensemble is None else _Boosting(model, calibrated, ensemble)


@dataclass(frozen=True)
class _Linear:
    coef: np.ndarray  # (1 or classes, columns)
    intercept: np.ndarray

    def columns(self) -> int:
        return int(self.coef.shape[1])

    def raw_scores(self, base: np.ndarray, medians: np.ndarray) -> np.ndarray:
        """(rows, 1 + columns, scores): the actual row, then each column at the median."""
        actual = base @ self.coef.T + self.intercept
        change = (medians - base)[:, :, None] * self.coef.T[None, :, :]
        return np.concatenate([actual[:, None, :], actual[:, None, :] + change], axis=1)

    def probabilities(self, raw: np.ndarray) -> np.ndarray:
        from scipy.special import expit
        from sklearn.utils.extmath import softmax

        if raw.shape[1] == 1:
            positive = expit(raw[:, 0])
            return np.column_stack([1 - positive, positive])
        return np.asarray(softmax(raw, copy=False))


@dataclass(frozen=True)
class _Boosting:
    boosting: HistGradientBoostingClassifier
    calibrated: _CalibratedClassifier | None
    ensemble: _Ensemble

    def columns(self) -> int:
        return int(self.boosting.n_features_in_)

    def raw_scores(self, base: np.ndarray, medians: np.ndarray) -> np.ndarray:
        return _raw_scores(self.ensemble, base, medians)

    def probabilities(self, raw: np.ndarray) -> np.ndarray:
        return _probabilities(self.boosting, self.calibrated, raw)


def _tree_table(nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A tree's split columns, thresholds and its leaf value for each of the 256 codes (bit s
    set: split s sends the row left)."""
    leaf = nodes["is_leaf"].astype(bool)
    internal = np.flatnonzero(~leaf)
    position = np.zeros(len(nodes), dtype=np.intp)
    position[internal] = np.arange(len(internal))
    left, right = nodes["left"].astype(np.intp), nodes["right"].astype(np.intp)
    codes = np.arange(256)
    node = np.zeros(256, dtype=np.intp)
    for _ in range(int(nodes["depth"].max())):
        go_left = (codes >> position[node]) & 1 == 1
        node = np.where(leaf[node], node, np.where(go_left, left[node], right[node]))
    return nodes["feature_idx"][internal], nodes["num_threshold"][internal], nodes["value"][node]


def _compile(boosting: HistGradientBoostingClassifier) -> _Ensemble | None:
    n_columns = int(boosting.n_features_in_)
    trees = [(k, p.nodes) for stage in boosting._predictors for k, p in enumerate(stage)]
    splits = [int((n["is_leaf"] == 0).sum()) for _, n in trees]
    if max(splits, default=0) > MAX_SPLITS or any(n["is_categorical"].any() for _, n in trees):
        return None
    n_trees, n_classes = len(trees), int(boosting.n_trees_per_iteration_)
    feature = np.zeros((n_trees, MAX_SPLITS), dtype=np.intp)
    threshold = np.full((n_trees, MAX_SPLITS), np.inf)
    real = np.zeros((n_trees, MAX_SPLITS), dtype=bool)
    leaf_values = np.empty((n_trees, 256))
    class_of_tree = np.zeros((n_classes, n_trees))
    for t, (k, nodes) in enumerate(trees):
        f, thr, leaf_values[t] = _tree_table(nodes)
        feature[t, : len(f)], threshold[t, : len(f)], real[t, : len(f)] = f, thr, True
        class_of_tree[k, t] = 1.0
    cuts = [np.unique(threshold[real & (feature == j)]) for j in range(n_columns)]
    if max((len(c) for c in cuts), default=0) > 254:
        return None  # a value's rank would not fit the uint8 codes (max_bins is at most 255)
    # Padding splits compare against rank 255, which every value's rank is at most: bit set,
    # and the table ignores it.
    cut_rank = np.full((n_trees, MAX_SPLITS), 255, dtype=np.uint8)
    weight = (1 << np.arange(MAX_SPLITS)).astype(np.uint8)
    columns: list[_Column | None] = []
    for j in range(n_columns):
        on_j = real & (feature == j)
        cut_rank[on_j] = np.searchsorted(cuts[j], threshold[on_j])
        tree_of, split_of = np.nonzero(on_j)
        if len(tree_of) == 0:
            columns.append(None)
            continue
        trees_j, first = np.unique(tree_of, return_index=True)
        mask = np.zeros(len(trees_j), dtype=np.uint8)
        np.bitwise_or.at(mask, np.searchsorted(trees_j, tree_of), weight[split_of])
        ranks = np.arange(len(cuts[j]) + 1)
        bits = (ranks[:, None] <= cut_rank[tree_of, split_of][None, :]) * weight[split_of]
        bits_by_rank = np.add.reduceat(bits, first, axis=1).astype(np.uint8).T
        columns.append(
            _Column(
                trees=trees_j,
                keep=~mask[:, None],
                bits_by_rank=np.ascontiguousarray(bits_by_rank),
                leaf_values=leaf_values[trees_j].ravel(),
                class_of_tree=np.ascontiguousarray(class_of_tree[:, trees_j]),
            )
        )
    return _Ensemble(
        feature=feature,
        cut_rank=cut_rank,
        cuts=cuts,
        leaf_values=leaf_values,
        class_of_tree=class_of_tree,
        baseline=np.asarray(boosting._baseline_prediction, dtype=float).reshape(-1),
        columns=columns,
    )


def _ensemble(boosting: HistGradientBoostingClassifier) -> _Ensemble | None:
    """Compiled once per fitted model (~30 ms for 400 trees)."""
    if boosting not in _compiled:
        _compiled[boosting] = _compile(boosting)
    return _compiled[boosting]


def _ranks(ensemble: _Ensemble, values: np.ndarray) -> np.ndarray:
    """(columns, rows) uint8: per value, how many of its column's thresholds are below it, so
    ``value <= threshold`` is ``rank <= the threshold's rank``."""
    out = np.empty(values.shape[::-1], dtype=np.uint8)
    for j, cuts in enumerate(ensemble.cuts):
        out[j] = np.searchsorted(cuts, values[:, j])
    return out


def _raw_scores(ensemble: _Ensemble, base: np.ndarray, medians: np.ndarray) -> np.ndarray:
    """(rows, 1 + columns, classes) raw scores: the actual row, then each column at the median."""
    n, n_columns = base.shape
    ranks, median_ranks = _ranks(ensemble, base), _ranks(ensemble, medians)
    code = np.zeros((len(ensemble.feature), n), dtype=np.uint8)
    for s in range(MAX_SPLITS):
        code |= (ranks[ensemble.feature[:, s]] <= ensemble.cut_rank[:, s, None]).view(
            np.uint8
        ) << np.uint8(s)
    offsets = (np.arange(len(code)) * 256)[:, None]
    leaf = ensemble.leaf_values.take(code + offsets)
    raw = np.empty((1 + n_columns, len(ensemble.baseline), n))
    raw[0] = ensemble.class_of_tree @ leaf + ensemble.baseline[:, None]
    for j, column in enumerate(ensemble.columns):
        raw[1 + j] = raw[0]
        if column is None or (ranks[j] == median_ranks[j]).all():
            continue  # every split on the column decides the same way for the median
        variant = (code[column.trees] & column.keep) | column.bits_by_rank[:, median_ranks[j]]
        change = column.leaf_values.take(variant + offsets[: len(column.trees)])
        change -= leaf[column.trees]
        raw[1 + j] += column.class_of_tree @ change
    return raw.transpose(2, 0, 1)


def _probabilities(
    boosting: HistGradientBoostingClassifier,
    calibrated: _CalibratedClassifier | None,
    raw: np.ndarray,
) -> np.ndarray:
    """The model's class probabilities from raw scores (n, classes), as its predict_proba."""
    if calibrated is None:
        return np.asarray(boosting._loss.predict_proba(raw))
    from sklearn.preprocessing import LabelEncoder

    classes = calibrated.classes
    proba = np.zeros((len(raw), len(classes)))
    positions = LabelEncoder().fit(classes).transform(boosting.classes_)
    for position, scores, calibrator in zip(positions, raw.T, calibrated.calibrators, strict=False):
        proba[:, position + (len(classes) == 2)] = calibrator.predict(scores)
    if len(classes) == 2:
        proba[:, 0] = 1.0 - proba[:, 1]
        return proba
    total = proba.sum(axis=1, keepdims=True)
    return np.divide(proba, total, out=np.full_like(proba, 1 / len(classes)), where=total != 0)


def variant_risks(
    *,
    model: Classifier,
    base: np.ndarray,
    medians: np.ndarray,
    required: np.ndarray,
    risk: np.ndarray,
) -> np.ndarray | None:
    """(rows, columns) risk_prob of each row with one column at its class median, or None when
    the model is not supported here (see the module docstring).

    ``base``/``medians``: the model's input columns in its order; ``risk``: the rows' actual
    risk_prob as predicted by the model, the check that this computation is the model's."""
    scorer = supported(model)
    n, n_columns = base.shape
    finite = np.isfinite(base).all() and np.isfinite(medians).all()
    if scorer is None or not finite or scorer.columns() != n_columns:
        return None
    levels = [lof_model.LEVELS.index(c) for c in lof_model.model_classes(model)]
    out = np.empty((n, n_columns))
    with lof_model.limit_threads():
        for start in range(0, n, ROWS_PER_CHUNK):
            rows = slice(start, start + ROWS_PER_CHUNK)
            raw = scorer.raw_scores(base[rows], medians[rows])
            m = len(raw)
            proba = scorer.probabilities(raw.reshape(m * (1 + n_columns), -1))
            level_proba = np.zeros((len(proba), len(lof_model.LEVELS)))
            level_proba[:, levels] = proba
            required_rows = np.repeat(required[rows], 1 + n_columns)
            risks = lof_model.model_risk(model, level_proba, required_rows).reshape(m, -1)
            if not np.allclose(risks[:, 0], risk[rows], rtol=0, atol=1e-9):
                return None
            out[rows] = risks[:, 1:]
    return out
