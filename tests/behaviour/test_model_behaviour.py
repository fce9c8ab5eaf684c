"""Model behaviour tests: properties every registered candidate should have, apart from the
code tests. Models are trained on a small synthetic cohort where a latent skill drives both
engagement and the final level, as in the synthetic university."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lof import features as feat
from lof import model as lof_model

CANDIDATES = ("logreg", "hist_gb", "hist_gb_calibrated", "mlp_baseline")


def _examples(*, n_classes: int = 6, students: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for c in range(n_classes):
        skill = rng.uniform(0, 1, students)
        raw = pd.DataFrame(
            {
                name: np.clip(skill * rng.uniform(5, 50) + rng.normal(0, 3, students), 0, None)
                for name in feat.FEATURES
            }
        )
        raw.insert(0, "user_id", np.arange(students) + 1000)
        raw.insert(0, "class_id", 100 + c)
        scaled = feat.scale_within_class(features=raw)
        scaled["label"] = np.clip(np.round(1 + 4 * skill + rng.normal(0, 0.5, students)), 1, 5)
        scaled["label"] = scaled["label"].astype(int)
        scaled["required_level"] = 3
        scaled["progress"] = 0.5
        frames.append(scaled)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def models() -> dict:
    examples = _examples()
    return {
        name: lof_model.fit(estimator=estimator, examples=examples)
        for name, estimator in lof_model.make_candidates(mlp_max_iter=300).items()
    }


def _expected_level(model, frame: pd.DataFrame) -> np.ndarray:
    proba = lof_model.level_probabilities(model=model, features=frame)
    return proba @ np.asarray(feat.LEVELS, dtype=float)


@pytest.mark.parametrize("name", CANDIDATES)
def test_more_engagement_does_not_lower_the_predicted_level(models, name):
    frame = _examples(n_classes=2, seed=5)
    busier = frame.copy()
    events = list(feat.EVENT_FEATURES)
    busier[events] = np.clip(busier[events] + 0.25, 0, 1)
    before = _expected_level(models[name], frame).mean()
    after = _expected_level(models[name], busier).mean()
    assert after >= before - 1e-9, (name, before, after)


@pytest.mark.parametrize("name", CANDIDATES)
def test_predictions_do_not_depend_on_student_order(models, name):
    frame = _examples(n_classes=2, seed=6)
    keys = ["class_id", "user_id"]
    cols = [*keys, *feat.FEATURES]
    straight = lof_model.predict_frame(
        model=models[name], features=frame[cols], required_levels={100: 3, 101: 2}, threshold=0.5
    )
    shuffled_in = frame[cols].sample(frac=1.0, random_state=1)
    shuffled = lof_model.predict_frame(
        model=models[name], features=shuffled_in, required_levels={100: 3, 101: 2}, threshold=0.5
    )
    a = straight.sort_values(keys).reset_index(drop=True)
    b = shuffled.sort_values(keys).reset_index(drop=True)
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
