"""Code tests of lof.model.outcome: predictions frame, feature check, metrics, selection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lof.core.errors import DataError, ModelError
from lof.features.definitions import FEATURES
from lof.model import outcome as lof_model

from .model_examples import make_examples


@pytest.fixture(scope="module")
def fitted_logreg():
    examples = make_examples(n_classes=4, students=25, seed=1)
    estimator = lof_model.make_candidates(names=["logreg"])["logreg"]
    return lof_model.fit(estimator=estimator, examples=examples)


def test_predict_frame_shapes_probabilities_and_risk(fitted_logreg, examples):
    features = examples[examples["progress"] == 0.5][["class_id", "user_id", *FEATURES]]
    required = {int(c): 3 for c in features["class_id"].unique()}
    out = lof_model.predict_frame(
        model=fitted_logreg, features=features, required_levels=required, threshold=0.5
    )
    assert list(out.columns) == list(lof_model.PREDICTION_OUTPUT)
    assert len(out) == len(features)
    assert out["user_id"].tolist() == features["user_id"].tolist()
    for row in out.itertuples():
        # the stores keep PlainFloats unchecked: str keys, Python floats
        assert type(row.predicted_prob) is lof_model.PlainFloats
        assert {type(p) for p in row.predicted_prob.values()} == {float}
        assert set(row.predicted_prob) == {"1", "2", "3", "4", "5"}
        assert sum(row.predicted_prob.values()) == pytest.approx(1.0)
        assert row.risk_prob == pytest.approx(row.predicted_prob["1"] + row.predicted_prob["2"])
        assert row.at_risk == (row.risk_prob >= 0.5)
        assert row.predicted_label == int(max(row.predicted_prob, key=row.predicted_prob.get))
        assert row.required_level == 3


def test_predict_frame_accepts_required_levels_frame_and_fills_missing_levels(examples):
    # A model trained on levels 2 and 4 only still yields all five keys, 0 for the others.
    subset = examples.copy()
    subset["label"] = np.where(subset["label"] >= 3, 4, 2)
    model = lof_model.fit(
        estimator=lof_model.make_candidates(names=["logreg"])["logreg"], examples=subset
    )
    features = subset[["class_id", "user_id", *FEATURES]].head(20)
    levels = pd.DataFrame({"class_id": [100], "required_level": [4]})
    out = lof_model.predict_frame(
        model=model, features=features, required_levels=levels, threshold=0.3
    )
    assert all(p["1"] == 0.0 and p["3"] == 0.0 and p["5"] == 0.0 for p in out["predicted_prob"])
    assert set(out["predicted_label"]) <= {2, 4}
    np.testing.assert_allclose(out["risk_prob"], [p["2"] for p in out["predicted_prob"]])


def test_predict_frame_empty_and_bad_inputs(fitted_logreg, examples):
    empty = lof_model.predict_frame(
        model=fitted_logreg,
        features=examples.head(0)[["class_id", "user_id", *FEATURES]],
        required_levels={},
        threshold=0.5,
    )
    assert empty.empty and list(empty.columns) == list(lof_model.PREDICTION_OUTPUT)

    with pytest.raises(DataError, match="avglevel"):
        lof_model.predict_frame(
            model=fitted_logreg,
            features=examples.drop(columns=["avglevel"]),
            required_levels={100: 3},
            threshold=0.5,
        )
    with pytest.raises(DataError, match=r"no required level for class\(es\) \[101"):
        lof_model.predict_frame(
            model=fitted_logreg,
            features=examples[examples["class_id"].isin([100, 101])],
            required_levels={100: 3},
            threshold=0.5,
        )
    nan = examples.head(3).copy()
    nan.loc[nan.index[1], "avglevel"] = np.nan
    with pytest.raises(DataError, match="NaN"):
        lof_model.predict_frame(
            model=fitted_logreg, features=nan, required_levels={100: 3}, threshold=0.5
        )


def test_check_model_features(fitted_logreg, examples):
    lof_model.check_model_features(fitted_logreg)
    from sklearn.linear_model import LogisticRegression

    wrong = LogisticRegression().fit(
        examples[list(FEATURES[:12])].rename(columns={"avglevel": "x"}), examples["label"]
    )
    with pytest.raises(ModelError, match="missing \\['avglevel'\\]"):
        lof_model.check_model_features(wrong)
    shuffled = LogisticRegression().fit(examples[list(reversed(FEATURES))], examples["label"])
    with pytest.raises(ModelError, match="another order"):
        lof_model.check_model_features(shuffled)


def test_score_known_values():
    labels = np.array([1, 2, 3, 4])
    proba = np.eye(5)[[0, 1, 2, 2]]  # last one wrong: predicts 3 for a 4
    metrics = lof_model.score(labels=labels, proba=proba, required=np.array([3, 3, 3, 3]))
    assert metrics["balanced_accuracy"] == pytest.approx(0.75)
    assert metrics["at_risk_recall"] == 1.0 and metrics["at_risk_precision"] == 1.0
    assert metrics["brier"] == pytest.approx(0.5)  # (1 + 1) / 4
    assert metrics["risk_brier"] == 0.0
    assert metrics["log_loss"] > 5  # one certain miss


def test_evaluate_reports_every_progress_point(fitted_logreg, examples):
    metrics = lof_model.evaluate(model=fitted_logreg, examples=examples)
    for point in (10, 25, 50, 75, 100):
        for name in lof_model.METRICS:
            assert f"{name}_at_{point}" in metrics
        assert metrics[f"n_at_{point}"] == len(examples) / len(lof_model.PROGRESS_POINTS)
    early = ("risk_roc_auc_at_10", "risk_roc_auc_at_25", "risk_roc_auc_at_50")
    assert metrics[lof_model.SELECTION_METRIC] == pytest.approx(sum(metrics[n] for n in early) / 3)
    assert metrics[lof_model.MID_METRIC] == pytest.approx(
        (metrics["risk_roc_auc_at_25"] + metrics["risk_roc_auc_at_50"]) / 2
    )
    assert metrics["risk_roc_auc_at_100"] > metrics["risk_roc_auc_at_10"]
    # Lead time of any registered version on the same examples (the gate's evaluate).
    assert metrics["lead_caught_by_10"] <= metrics["lead_caught_by_25"]
    assert metrics["lead_caught_by_25"] <= metrics["lead_caught_by_50"]
    assert 0.0 <= metrics["lead_false_alarms_at_25"] <= 1.0
    # The features reveal more of the skill late in the class than early.
    assert metrics["macro_f1_at_100"] > metrics["macro_f1_at_25"]
    with pytest.raises(DataError, match="label"):
        lof_model.evaluate(model=fitted_logreg, examples=examples.drop(columns=["label"]))


def test_grouped_cv_keeps_classes_apart(examples):
    """lof.model.fit is wrapped (not replaced) to record the classes each fold trains on."""
    seen: list[set[int]] = []
    estimator = lof_model.make_candidates(names=["logreg"])["logreg"]
    original = lof_model.fit

    def spying_fit(*, estimator, examples):
        seen.append(set(examples["class_id"]))
        return original(estimator=estimator, examples=examples)

    lof_model.fit = spying_fit
    try:
        proba = lof_model.grouped_cv_probabilities(
            estimator=estimator, examples=examples, n_splits=3
        )
    finally:
        lof_model.fit = original
    assert len(seen) == 3
    all_classes = set(examples["class_id"])
    for trained in seen:
        assert trained and trained != all_classes
    assert np.allclose(proba.sum(axis=1), 1.0)
    with pytest.raises(DataError, match="at least 2 classes"):
        lof_model.grouped_cv_probabilities(
            estimator=estimator, examples=examples[examples["class_id"] == 100]
        )


def test_select_candidate_rule():
    """Selection is on the risk: mean risk ROC-AUC at 10/25/50%, ties to the lower risk Brier."""
    sel, tie = lof_model.SELECTION_METRIC, lof_model.TIE_METRIC
    assert sel == "risk_roc_auc_10_25_50" and tie == "risk_brier_10_25_50"
    scores = {
        "mlp_baseline": {sel: 0.70, tie: 0.15, "macro_f1_at_50": 0.9},
        "hist_gb": {sel: 0.82, tie: 0.20},
        "logreg": {sel: 0.815, tie: 0.12},
        "hist_gb_calibrated": {sel: float("nan"), tie: 0.01},
    }
    assert lof_model.select_candidate(scores) == "hist_gb"
    # With a tolerance, logreg ties with the best and wins on the lower risk Brier.
    assert lof_model.select_candidate(scores, tolerance=0.01) == "logreg"
    scores["logreg"][sel] = 0.82
    assert lof_model.select_candidate(scores) == "logreg"
    with pytest.raises(ModelError):
        lof_model.select_candidate({})
    table = lof_model.comparison_table(scores)
    assert list(table["candidate"]) == list(scores)


def test_unknown_candidate():
    with pytest.raises(DataError, match="unknown candidate"):
        lof_model.make_candidates(names=["xgboost"])


def test_calibrated_candidate_falls_back_with_rare_levels(examples):
    rare = examples.copy()
    rare.loc[rare.index[:2], "label"] = 5
    rare.loc[rare.index[2:], "label"] = rare.loc[rare.index[2:], "label"].clip(upper=4)
    estimator = lof_model.make_candidates(names=["hist_gb_calibrated"])["hist_gb_calibrated"]
    fitted = lof_model.fit(estimator=estimator, examples=rare)
    assert lof_model.model_classes(fitted) == [1, 2, 3, 4, 5]


def test_risk_metrics_known_values():
    labels = np.array([1, 2, 3, 4, 1, 4])
    required = np.full(6, 3)
    proba = np.full((6, 5), 0.2)
    risk = np.array([0.9, 0.6, 0.4, 0.1, 0.95, 0.7])  # one positive-looking negative (0.7)
    metrics = lof_model.score(
        labels=labels, proba=proba, required=required, threshold=0.65, risk=risk
    )
    # positives (below 3): rows 0, 1, 4; negatives: 2, 3, 5; pairs ranked right: 8 of 9
    assert metrics["risk_roc_auc"] == pytest.approx(8 / 9)
    assert metrics["at_risk_recall"] == pytest.approx(2 / 3)  # 0.6 < 0.65 missed
    assert metrics["at_risk_precision"] == pytest.approx(2 / 3)  # 0.7 is a false alarm
    truth = (labels < 3).astype(float)
    assert metrics["risk_brier"] == pytest.approx(((risk - truth) ** 2).mean())
    assert metrics["share_at_risk"] == pytest.approx(0.5)
    # ECE: every risk in its own decile bin here, so it is the mean absolute error
    assert metrics["risk_ece"] == pytest.approx(np.abs(risk - truth).mean())
    assert np.isnan(
        lof_model.score(labels=labels[:1], proba=proba[:1], required=required[:1])["risk_roc_auc"]
    )


def test_calibration_fixes_a_shifted_risk_and_keeps_its_order():
    rng = np.random.default_rng(0)
    true_p = rng.uniform(0.02, 0.98, 4000)
    truth = rng.random(4000) < true_p
    inflated = 1 - (1 - true_p) ** 3  # every risk pushed up, as class weights do
    coef, intercept = lof_model.fit_calibration(inflated, truth)
    fixed = lof_model.calibrate(inflated, coef=coef, intercept=intercept)
    before = lof_model.expected_calibration_error(inflated, truth)
    after = lof_model.expected_calibration_error(fixed, truth)
    assert after < before / 2 and after < 0.05
    assert np.all(np.diff(fixed[np.argsort(inflated)]) >= -1e-12)  # ranking unchanged
    # Too few examples or one outcome only: identity
    assert lof_model.fit_calibration(inflated[:10], truth[:10]) == (1.0, 0.0)
    assert lof_model.fit_calibration(inflated, np.ones(4000, dtype=bool)) == (1.0, 0.0)


def test_choose_threshold_best_f1_and_target_recall():
    risk = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1])
    truth = np.array([1, 1, 0, 1, 0, 1, 0, 0], dtype=bool)
    # F1 by cut: 0.9 -> .4, 0.8 -> .67, 0.7 -> .57, 0.6 -> .75, 0.4 -> .67, 0.3 -> .8 (best)
    assert lof_model.choose_threshold(risk, truth) == pytest.approx(0.3)
    # recall >= 0.5 first reached at 0.8 (2 of 4): the highest such cut
    assert lof_model.choose_threshold(risk, truth, target_recall=0.5) == pytest.approx(0.8)
    assert lof_model.choose_threshold(risk, truth, target_recall=1.0) == pytest.approx(0.3)
    assert lof_model.choose_threshold(risk, np.zeros(8, dtype=bool)) == 0.5


def test_risk_model_calibrates_and_carries_its_threshold(fitted_logreg, examples):
    wrapped = lof_model.RiskModel(
        fitted_logreg, coef=0.5, intercept=-1.0, threshold=0.3, training_class_ids=[101, 100]
    )
    features = examples[["class_id", "user_id", *FEATURES]].head(40)
    raw = lof_model.predict_frame(model=fitted_logreg, features=features, required_levels={100: 3})
    got = lof_model.predict_frame(model=wrapped, features=features, required_levels={100: 3})
    assert got["predicted_label"].tolist() == raw["predicted_label"].tolist()
    expected = lof_model.calibrate(raw["risk_prob"].to_numpy(), coef=0.5, intercept=-1.0)
    assert np.allclose(got["risk_prob"], expected)
    assert (got["at_risk"] == (got["risk_prob"] >= 0.3)).all()
    # LOF_RISK_THRESHOLD passed explicitly overrides the model's own threshold
    forced = lof_model.predict_frame(
        model=wrapped, features=features, required_levels={100: 3}, threshold=0.9
    )
    assert (forced["at_risk"] == (forced["risk_prob"] >= 0.9)).all()
    assert lof_model.model_threshold(fitted_logreg) == lof_model.DEFAULT_THRESHOLD
    assert wrapped.training_class_ids == [101, 100]
    lof_model.check_model_features(wrapped)


def test_bootstrap_interval_resamples_classes(examples):
    truth = examples["label"] < examples["required_level"]
    noisy = truth.astype(float) + np.random.default_rng(1).normal(0, 0.8, len(examples))
    low, high = lof_model.bootstrap_interval(examples=examples, risk=noisy.to_numpy(), n_boot=100)
    point = lof_model.selection_value(examples, noisy.to_numpy())
    assert low < point < high and high - low < 0.3
    one = examples[examples["class_id"] == 100]
    assert np.isnan(
        lof_model.bootstrap_interval(examples=one, risk=noisy[: len(one)].to_numpy())[0]
    )


def test_cross_fitted_risk_uses_other_classes_only():
    """A class whose risks are all shifted gets the calibration learnt on the others."""
    rng = np.random.default_rng(2)
    groups = np.repeat([1, 2, 3], 300)
    p = rng.uniform(0.05, 0.95, 900)
    truth = rng.random(900) < p
    raw = p.copy()
    raw[groups == 3] = np.clip(p[groups == 3] + 0.5, 0, 0.999)  # class 3 alone is off
    risk, cuts = lof_model.cross_fitted_risk(raw=raw, truth=truth, groups=groups)
    own = lof_model.fit_calibration(raw[groups == 3], truth[groups == 3])
    others = lof_model.fit_calibration(raw[groups != 3], truth[groups != 3])
    assert np.allclose(
        risk[groups == 3],
        lof_model.calibrate(raw[groups == 3], coef=others[0], intercept=others[1]),
    )
    assert not np.allclose(
        risk[groups == 3], lof_model.calibrate(raw[groups == 3], coef=own[0], intercept=own[1])
    )
    assert cuts.shape == raw.shape and ((cuts > 0) & (cuts < 1)).all()
