"""Model behaviour tests: properties every registered candidate should have, apart from the
code tests. The candidates are trained on the examples the retrain code path builds from a
small synthetic university (LEB2 in SQLite, Amplitude export files), as a retrain would."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from lof.core.config import get_settings
from lof.features import definitions as feat
from lof.features.signals import SIGNALS
from lof.model import outcome as lof_model
from lof.synthetic import university as synth
from lof.training import retrain as training

CANDIDATES = ("logreg", "hist_gb", "hist_gb_calibrated", "mlp_baseline")
TODAY = date(2025, 3, 1)


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("behaviour-university")
    leb2_url = f"sqlite:///{root / 'leb2.db'}"
    synth.synthesize(
        leb2_url=leb2_url,
        amplitude_dir=root / "amplitude",
        seed=11,
        today=TODAY,
        students=160,
        classes=6,
    )
    settings = get_settings(home=root, leb2_url=leb2_url, amplitude_source=str(root / "amplitude"))
    return training.build_training_set(settings=settings, semesters=None, as_of=TODAY).examples


@pytest.fixture(scope="module")
def models(examples: pd.DataFrame) -> dict:
    """The candidates on the 13 features (the hand-made cohorts below have only those)."""
    on_13 = examples.drop(columns=list(SIGNALS))
    return {
        name: lof_model.fit(estimator=estimator, examples=on_13)
        for name, estimator in lof_model.make_candidates(mlp_max_iter=300).items()
    }


def _raw_cohorts(*, seed: int) -> pd.DataFrame:
    """Unscaled features of two class cohorts, as the daily flow has them before scaling."""
    rng = np.random.default_rng(seed)
    frames = []
    for class_id in (100, 101):
        raw = pd.DataFrame({name: rng.poisson(20, 40).astype(float) for name in feat.FEATURES})
        raw.insert(0, "user_id", np.arange(40) + 1000)
        raw.insert(0, "class_id", class_id)
        frames.append(raw)
    return pd.concat(frames, ignore_index=True)


def _expected_level(model, frame: pd.DataFrame) -> np.ndarray:
    proba = lof_model.level_probabilities(model=model, features=frame)
    return proba @ np.asarray(feat.LEVELS, dtype=float)


@pytest.mark.parametrize("name", CANDIDATES)
def test_more_engagement_does_not_lower_the_predicted_level(models, examples, name):
    frame = examples[examples["progress"] == 0.5]
    busier = frame.copy()
    events = list(feat.EVENT_FEATURES)
    busier[events] = np.clip(busier[events] + 0.25, 0, 1)
    before = _expected_level(models[name], frame).mean()
    after = _expected_level(models[name], busier).mean()
    assert after >= before - 1e-9, (name, before, after)


@pytest.mark.parametrize("name", CANDIDATES)
def test_predictions_do_not_depend_on_student_order(models, name):
    """Shuffled before the within-class scaling, as rows may come from a store in any order."""
    raw = _raw_cohorts(seed=6)
    keys = ["class_id", "user_id"]
    required = {100: 3, 101: 2}

    def predict(frame: pd.DataFrame) -> pd.DataFrame:
        scaled = feat.scale_within_class(features=frame)
        out = lof_model.predict_frame(
            model=models[name], features=scaled, required_levels=required, threshold=0.5
        )
        return out.sort_values(keys).reset_index(drop=True)

    a = predict(raw)
    b = predict(raw.sample(frac=1.0, random_state=1))
    pd.testing.assert_frame_equal(
        a.drop(columns="predicted_prob"), b.drop(columns="predicted_prob")
    )
    for pa, pb in zip(a["predicted_prob"], b["predicted_prob"], strict=True):
        assert pa == pytest.approx(pb)


@pytest.mark.parametrize("name", CANDIDATES)
def test_one_student_and_constant_classes_are_scored(models, name):
    raw = pd.DataFrame(
        [
            {"class_id": 7, "user_id": 1, **{f: 12.0 for f in feat.FEATURES}},
            *({"class_id": 8, "user_id": u, **{f: 3.0 for f in feat.FEATURES}} for u in (1, 2, 3)),
        ]
    )
    scaled = feat.scale_within_class(features=raw)
    assert (scaled[list(feat.FEATURES)] == 0).all().all()
    out = lof_model.predict_frame(
        model=models[name], features=scaled, required_levels={7: 3, 8: 4}, threshold=0.5
    )
    assert len(out) == 4
    for probabilities in out["predicted_prob"]:
        assert sum(probabilities.values()) == pytest.approx(1.0)
    # Identical students get identical predictions.
    assert out.loc[out["class_id"] == 8, "risk_prob"].nunique() == 1
