"""Exact one-column effects (lof.exact_effects) against predicting every variant, on real
fitted scikit-learn models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lof.features import definitions as feat
from lof.model import exact_effects, reasons
from lof.model import outcome as lof_model

COLUMNS = [*feat.FEATURES, *lof_model.MODEL_SIGNALS]


def examples(rng: np.random.Generator, *, binary: bool, n: int = 600) -> pd.DataFrame:
    frame = pd.DataFrame(rng.normal(size=(n, len(COLUMNS))), columns=COLUMNS)
    score = 3 + frame[COLUMNS[:4]].sum(axis=1) - frame["past_due_not_submitted"]
    frame["label"] = np.clip(np.rint(score + rng.normal(0, 0.7, n)), 1, 5).astype(int)
    if binary:
        frame["label"] = np.where(frame["label"] >= 3, 4, 2)
    return frame


def day(rng: np.random.Generator, n: int = 240) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Scaled inputs of a day with 4 classes, some columns tied at the median, and the class
    medians per row."""
    scaled = pd.DataFrame(rng.normal(size=(n, len(COLUMNS))), columns=COLUMNS)
    scaled["past_due_not_submitted"] = rng.integers(0, 3, n).astype(float)
    scaled["window_elapsed"] = 0.4
    scaled.insert(0, "class_id", rng.integers(1, 5, n))
    scaled.insert(1, "user_id", np.arange(n))
    medians = scaled[COLUMNS].groupby(scaled["class_id"]).transform("median").to_numpy()
    return scaled, medians, rng.integers(2, 5, n)


def predicted_variants(model, base, medians, required) -> np.ndarray:
    """The reference: each variant built and predicted by the model itself."""
    out = np.empty(base.shape)
    for j in range(base.shape[1]):
        variant = base.copy()
        variant[:, j] = medians[:, j]
        proba = lof_model.level_probabilities(
            model=model, features=pd.DataFrame(variant, columns=COLUMNS)
        )
        out[:, j] = lof_model.model_risk(model, proba, required)
    return out


def actual_risk(model, base, required) -> np.ndarray:
    proba = lof_model.level_probabilities(model=model, features=pd.DataFrame(base, columns=COLUMNS))
    return lof_model.model_risk(model, proba, required)


@pytest.mark.parametrize(
    ("name", "binary"),
    [
        ("logreg", False),
        ("logreg", True),
        ("hist_gb", False),
        ("hist_gb", True),
        ("hist_gb_calibrated", False),
    ],
)
def test_variant_risks_equal_predicting_each_variant(name, binary):
    rng = np.random.default_rng(7)
    fitted = lof_model.fit(
        estimator=lof_model.make_candidates(names=[name])[name],
        examples=examples(rng, binary=binary),
    )
    scaled, medians, required = day(rng)
    base = scaled[COLUMNS].to_numpy()
    for model in (fitted, lof_model.RiskModel(fitted, coef=1.4, intercept=-0.3)):
        exact = exact_effects.variant_risks(
            model=model,
            base=base,
            medians=medians,
            required=required,
            risk=actual_risk(model, base, required),
        )
        assert exact is not None
        np.testing.assert_allclose(
            exact, predicted_variants(model, base, medians, required), rtol=0, atol=1e-12
        )


@pytest.fixture(scope="module")
def boosting():
    rng = np.random.default_rng(8)
    return lof_model.fit(
        estimator=lof_model.make_candidates(names=["hist_gb"])["hist_gb"],
        examples=examples(rng, binary=False),
    )


def test_unsupported_models_and_inputs_are_left_to_prediction(boosting):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline

    rng = np.random.default_rng(9)
    train = examples(rng, binary=False)
    big_trees = lof_model.fit(
        estimator=Pipeline([("model", HistGradientBoostingClassifier(max_iter=5))]),
        examples=train,
    )
    mlp = lof_model.fit(
        estimator=lof_model.make_candidates(names=["mlp_baseline"], mlp_max_iter=20)[
            "mlp_baseline"
        ],
        examples=train,
    )
    assert exact_effects.supported(big_trees) is None  # 30 splits per tree: no one-byte code
    assert exact_effects.supported(mlp) is None
    scaled, medians, required = day(rng)
    base = scaled[COLUMNS].to_numpy()
    risk = actual_risk(boosting, base, required)
    with_nan = base.copy()
    with_nan[0, 0] = np.nan
    for kwargs in (
        {"base": with_nan, "risk": risk},
        {"base": base, "risk": risk + 0.01},  # not the model's own risk: not trusted
    ):
        args = {"model": boosting, "medians": medians, "required": required, **kwargs}
        assert exact_effects.variant_risks(**args) is None


def test_reasons_from_exact_effects_equal_the_exhaustive_predictions(boosting, monkeypatch):
    rng = np.random.default_rng(10)
    scaled, _, required = day(rng, n=400)  # above reasons.SAMPLE_ROWS: screening would apply
    raw = scaled.copy()
    exact = reasons.explain(model=boosting, scaled=scaled, raw=raw, required=required)
    monkeypatch.setattr(exact_effects, "supported", lambda model: None)
    predicted = reasons.explain(
        model=boosting, scaled=scaled, raw=raw, required=required, candidates=None
    )
    assert exact == predicted
    assert sum(len(r) for r in exact) > len(exact)  # the day has reasons to compare
