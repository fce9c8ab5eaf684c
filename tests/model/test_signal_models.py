"""Models on the 13 features or on the 13 + early-warning signals score from the same frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from lof.core.errors import DataError, ModelError
from lof.features.definitions import FEATURES
from lof.features.signals import SIGNALS
from lof.model import outcome as lof_model


def scaled_frame(n: int = 30, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        rng.random((n, len(FEATURES) + len(SIGNALS))), columns=[*FEATURES, *SIGNALS]
    )
    frame.insert(0, "user_id", np.arange(n))
    frame.insert(0, "class_id", 5)
    return frame


def labels(n: int) -> np.ndarray:
    return np.resize([1, 2, 3, 4, 5], n)


def predict(model, frame):
    return lof_model.predict_frame(
        model=model, features=frame, required_levels={5: 3}, threshold=0.5
    )


def test_training_features_take_the_signals_when_every_row_has_them():
    frame = scaled_frame()
    assert lof_model.training_features(frame) == [*FEATURES, *lof_model.MODEL_SIGNALS]
    assert set(lof_model.MODEL_SIGNALS) < set(SIGNALS)
    legacy_mixed = frame.copy()
    legacy_mixed.loc[0, SIGNALS[0]] = np.nan  # a legacy row: the 13 only
    assert lof_model.training_features(legacy_mixed) == [*FEATURES, *lof_model.MODEL_SIGNALS[1:]]
    assert lof_model.training_features(frame[list(FEATURES)]) == list(FEATURES)


def test_model_on_the_13_only_scores_a_frame_with_signals():
    frame = scaled_frame()
    model = LogisticRegression(max_iter=500).fit(frame[list(FEATURES)], labels(len(frame)))
    lof_model.check_model_features(model)
    assert lof_model.input_features(model) == list(FEATURES)
    out = predict(model, frame)
    want = model.predict_proba(frame[list(FEATURES)])
    assert np.allclose([list(p.values()) for p in out["predicted_prob"]], want)


def test_bare_array_model_of_13_inputs_scores_like_the_legacy_pickle():
    frame = scaled_frame()
    model = LogisticRegression(max_iter=500).fit(
        frame[list(FEATURES)].to_numpy(), labels(len(frame))
    )
    assert not hasattr(model, "feature_names_in_")
    lof_model.check_model_features(model)
    out = predict(model, frame)
    assert len(out) == len(frame) and out["risk_prob"].between(0, 1).all()


def test_model_with_signals_takes_its_own_columns_and_needs_them():
    frame = scaled_frame()
    columns = [*FEATURES, "past_due_not_submitted", "events_last_7d"]
    model = LogisticRegression(max_iter=500).fit(frame[columns], labels(len(frame)))
    lof_model.check_model_features(model)
    assert lof_model.input_features(model) == columns
    out = predict(model, frame)
    want = model.predict_proba(frame[columns])
    assert np.allclose([list(p.values()) for p in out["predicted_prob"]], want)
    with pytest.raises(DataError, match="events_last_7d"):
        predict(model, frame.drop(columns="events_last_7d"))


@pytest.mark.parametrize(
    "columns",
    [
        ["events_last_7d", *FEATURES],  # a signal before the 13
        [*FEATURES, "events_last_7d", "events_last_7d_typo"],  # an unknown column
    ],
)
def test_model_with_unknown_or_misplaced_columns_is_refused(columns):
    frame = scaled_frame()
    frame["events_last_7d_typo"] = 0.0
    model = LogisticRegression(max_iter=200).fit(frame[columns], labels(len(frame)))
    with pytest.raises(ModelError, match="lof retrain"):
        lof_model.check_model_features(model)


def _calibrated(estimator) -> lof_model.RiskModel:
    # A calibration far from the identity, so raw and calibrated risk differ clearly.
    return lof_model.RiskModel(estimator, coef=0.5, intercept=-1.0, threshold=0.3)


def test_risk_model_and_legacy_model_expose_their_own_input_columns():
    from lof.legacy import LegacyModel

    frame = scaled_frame()
    columns = [*FEATURES, "past_due_not_submitted"]
    inner = LogisticRegression(max_iter=500).fit(frame[columns], labels(len(frame)))
    risk_model = _calibrated(inner)
    lof_model.check_model_features(risk_model)
    assert lof_model.input_features(risk_model) == columns
    on_13 = _calibrated(
        LogisticRegression(max_iter=500).fit(frame[list(FEATURES)], labels(len(frame)))
    )
    assert lof_model.input_features(on_13) == list(FEATURES)
    former = LogisticRegression(max_iter=500).fit(
        frame[list(FEATURES)].to_numpy(), labels(len(frame))
    )
    wrapped = LegacyModel(former)
    lof_model.check_model_features(wrapped)
    assert lof_model.input_features(wrapped) == list(FEATURES)
    # Each scores the same frame of 13 + signals on its own columns.
    for model in (risk_model, on_13, wrapped):
        out = predict(model, frame)
        assert len(out) == len(frame) and out["risk_prob"].between(0, 1).all()


def test_reasons_measure_the_served_calibrated_risk():
    from lof.legacy import LegacyModel
    from lof.model import reasons

    frame = scaled_frame(n=40, seed=3)
    frame.loc[0, list(FEATURES)] = 1.0  # far from the class median on every feature
    raw = frame.copy()
    inner = LogisticRegression(max_iter=500).fit(frame[list(FEATURES)], labels(len(frame)))
    former = LogisticRegression(max_iter=500).fit(
        frame[list(FEATURES)].to_numpy(), labels(len(frame))
    )
    for model in (_calibrated(inner), LegacyModel(former)):
        served = predict(model, frame)
        required = served["required_level"].to_numpy()
        risk = served["risk_prob"].to_numpy()
        given = reasons.explain(model=model, scaled=frame, raw=raw, required=required, risk=risk)
        fresh = reasons.explain(model=model, scaled=frame, raw=raw, required=required)
        assert given == fresh  # the known risk and the recomputed one are the same risk
        assert given[0], "a student far from the median on everything has reasons"
        for reason in given[0]:
            at_median = frame.iloc[[0]].copy()
            at_median[reason["feature"]] = frame[reason["feature"]].median()
            moved = predict(model, pd.concat([frame.iloc[[0]], at_median]))
            change = moved["risk_prob"].iloc[0] - moved["risk_prob"].iloc[1]
            assert reason["effect"] == pytest.approx(change, abs=6e-5)  # stored rounded
