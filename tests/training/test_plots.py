"""Code tests of lof.training.plots: each evaluation plot writes a PNG."""

from __future__ import annotations

import pytest

from lof.features.definitions import LEVELS
from lof.model import outcome as lof_model
from lof.training import plots
from tests.model.model_examples import make_examples


@pytest.fixture(scope="module")
def fitted_logreg():
    examples = make_examples(n_classes=4, students=25, seed=1)
    estimator = lof_model.make_candidates(names=["logreg"])["logreg"]
    return lof_model.fit(estimator=estimator, examples=examples)


def test_plots_write_png(tmp_path, fitted_logreg, examples):
    proba = lof_model.level_probabilities(model=fitted_logreg, features=examples)
    labels = examples["label"].to_numpy()
    required = examples["required_level"].to_numpy()
    metrics = lof_model.score_examples(examples=examples, proba=proba)
    paths = [
        plots.plot_confusion(
            labels=labels, proba=proba, title="t", path=tmp_path / "confusion.png"
        ),
        plots.plot_metrics_by_progress(
            metrics=metrics, title="t", path=tmp_path / "by_progress.png"
        ),
        plots.plot_calibration(
            labels=labels, proba=proba, required=required, title="t", path=tmp_path / "cal.png"
        ),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert LEVELS == (1, 2, 3, 4, 5)
