"""Reasons per student (lof.reasons) from a real fitted scikit-learn model, no stand-ins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lof.features import definitions as feat
from lof.features import signals
from lof.model import outcome as lof_model
from lof.model import reasons
from lof.stores.base import REASON_KEYS

# The early-warning inputs are left out: these classes are decided by handing work in and recent
# activity, and random values on their shared (unscaled) scale would only add noise.
COLUMNS = [*feat.FEATURES, *(s for s in signals.SIGNALS if s not in signals.EARLY_SIGNALS)]


def cohort(rng: np.random.Generator, class_id: int, n: int = 40) -> pd.DataFrame:
    """Raw features of a class where handing work in and recent activity decide the level."""
    past_due = rng.integers(0, 4, n).astype(float)
    recent = rng.poisson(12, n).astype(float)
    frame = pd.DataFrame({"class_id": class_id, "user_id": np.arange(n) + 1000 * class_id})
    for name in COLUMNS:
        frame[name] = rng.normal(50, 10, n).round()
    frame["past_due_not_submitted"] = past_due
    frame["events_last_7d"] = recent
    frame["attainment_so_far"] = 2.5
    frame["window_elapsed"] = 0.5
    score = 3.6 - 0.9 * past_due + 0.04 * (recent - 12) + rng.normal(0, 0.4, n)
    frame["label"] = np.clip(np.rint(score), 1, 5).astype(int)
    return frame


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(3)
    raw = pd.concat([cohort(rng, c) for c in range(1, 13)], ignore_index=True)
    examples = feat.scale_within_class(features=raw)
    examples["required_level"] = 3
    model = lof_model.make_candidates(names=["logreg"])["logreg"]
    return lof_model.fit(estimator=model, examples=examples)


def scored_class(raw: pd.DataFrame, model) -> tuple[pd.DataFrame, list[list[dict]]]:
    scaled = feat.scale_within_class(features=raw)
    out = reasons.explain(
        model=model, scaled=scaled, raw=raw, required=np.full(len(raw), 3, dtype=int)
    )
    return scaled, out


def test_two_past_due_and_nothing_submitted_is_a_top_reason(fitted):
    rng = np.random.default_rng(11)
    raw = cohort(rng, 99).drop(columns="label")
    raw["past_due_not_submitted"] = 0.0
    raw.loc[raw.index[:5], "past_due_not_submitted"] = [1.0, 0.0, 1.0, 0.0, 1.0]
    late = 7
    raw.loc[late, "past_due_not_submitted"] = 2.0
    raw.loc[late, "total_submission"] = 0.0
    _, out = scored_class(raw, fitted)
    mine = out[late]
    assert 1 <= len(mine) <= reasons.TOP + reasons.PROTECTIVE
    texts = [r["text"] for r in mine]
    assert any("not submitted" in t for t in texts), texts
    reason = next(r for r in mine if r["feature"] == "past_due_not_submitted")
    assert reason["text"] == "2 activities past due not submitted (class median 0)"
    assert reason["direction"] == "raises risk" and reason["effect"] > 0
    assert (reason["value"], reason["class_median"]) == (2.0, 0.0)
    assert mine[0] == reason  # the largest effect that raises risk first


def test_a_flagged_student_at_the_class_median_gets_what_drives_their_risk(fitted):
    """Against the median nothing differs; against the class's quartile that lowers risk the
    inputs that drive their risk show, raising it; a student not flagged gets none of them."""
    rng = np.random.default_rng(5)
    raw = cohort(rng, 98, n=41).drop(columns="label")
    medians = raw[COLUMNS].median()
    middle = 20
    for name in COLUMNS:
        raw.loc[middle, name] = medians[name]
    # setting one row to the median keeps the median (41 rows, the middle value unchanged)
    assert np.allclose(raw[COLUMNS].median(), medians)
    scaled = feat.scale_within_class(features=raw)
    required = np.full(len(raw), 3, dtype=int)
    flagged = np.zeros(len(raw), dtype=bool)
    flagged[middle] = True
    out = reasons.explain(model=fitted, scaled=scaled, raw=raw, required=required, at_risk=flagged)
    mine = out[middle]
    assert 1 <= len(mine) <= reasons.TOP
    assert all(r["direction"] == "raises risk" and r["effect"] > 0 for r in mine)
    assert all("; a quarter of the class " in r["text"] for r in mine), mine
    first = mine[0]
    assert first["feature"] == "past_due_not_submitted"
    assert first["text"] == (
        "1 activity past due not submitted (class median 1; a quarter of the class 0 or less)"
    )
    assert first["value"] == first["class_median"] == 1.0
    quiet = reasons.explain(
        model=fitted, scaled=scaled, raw=raw, required=required, at_risk=~flagged
    )
    assert quiet[middle] == []
    assert any(quiet[i] for i in range(len(raw)) if i != middle)


def test_a_saturated_risk_still_has_reasons_that_raise_it(fitted):
    """In a class requiring level 5 every risk is 0.99 or more: moving one input to the median
    changes risk_prob by far less than a percentage point, on the log-odds it does not vanish."""
    rng = np.random.default_rng(12)
    raw = cohort(rng, 93).drop(columns="label")
    raw["past_due_not_submitted"] = 0.0
    worst = 0
    raw.loc[worst, "past_due_not_submitted"] = 3.0
    raw.loc[worst, "events_last_7d"] = 0.0
    scaled = feat.scale_within_class(features=raw)
    required = np.full(len(raw), 5, dtype=int)
    risk = lof_model.predict_frame(
        model=fitted, features=scaled, required_levels={93: 5}, threshold=0.5
    )["risk_prob"].to_numpy()
    assert risk.min() >= 0.99 and risk[worst] >= 0.999
    out = reasons.explain(model=fitted, scaled=scaled, raw=raw, required=required, risk=risk)
    mine = out[worst]
    assert [r["feature"] for r in mine[:2]] == ["past_due_not_submitted", "events_last_7d"]
    assert all(r["direction"] == "raises risk" for r in mine[:2])
    assert 0 < mine[0]["effect"] < 0.01  # what the former probability threshold dropped
    assert all(rs and rs[0]["direction"] == "raises risk" for rs in out)


def test_reasons_that_raise_risk_come_first_and_protective_ones_apart(fitted):
    rng = np.random.default_rng(9)
    raw = cohort(rng, 92).drop(columns="label")
    _, out = scored_class(raw, fitted)
    mixed = 0
    for mine in out:
        directions = [r["direction"] for r in mine]
        raising = [r for r in mine if r["direction"] == "raises risk"]
        lowering = [r for r in mine if r["direction"] == "lowers risk"]
        assert directions == ["raises risk"] * len(raising) + ["lowers risk"] * len(lowering)
        assert len(raising) <= reasons.TOP and len(lowering) <= reasons.PROTECTIVE
        assert [r["effect"] for r in raising] == sorted(
            (r["effect"] for r in raising), reverse=True
        )
        assert [r["effect"] for r in lowering] == sorted(r["effect"] for r in lowering)
        assert all(r["effect"] > 0 for r in raising) and all(r["effect"] < 0 for r in lowering)
        mixed += bool(raising and lowering)
    assert mixed > 0


def test_reason_directions_follow_the_effect(fitted):
    rng = np.random.default_rng(8)
    raw = cohort(rng, 97).drop(columns="label")
    raw["past_due_not_submitted"] = 1.0
    raw.loc[0, "past_due_not_submitted"] = 0.0  # better than the class
    raw.loc[1, "past_due_not_submitted"] = 3.0  # worse
    _, out = scored_class(raw, fitted)
    first = {r["feature"]: r for r in out[0]}
    second = {r["feature"]: r for r in out[1]}
    assert first["past_due_not_submitted"]["direction"] == "lowers risk"
    assert second["past_due_not_submitted"]["direction"] == "raises risk"


def test_a_model_on_the_13_only_explains_with_its_own_columns():
    rng = np.random.default_rng(2)
    raw = pd.concat([cohort(rng, c) for c in range(1, 6)], ignore_index=True)
    examples = feat.scale_within_class(features=raw).drop(
        columns=[s for s in signals.SIGNALS if s in raw.columns]
    )
    model = lof_model.fit(
        estimator=lof_model.make_candidates(names=["logreg"])["logreg"], examples=examples
    )
    assert lof_model.input_features(model) == list(feat.FEATURES)
    scaled, out = scored_class(raw.drop(columns="label"), model)
    assert {r["feature"] for rs in out for r in rs} <= set(feat.FEATURES)
    assert len(out) == len(scaled)


@pytest.mark.parametrize(
    ("feature", "value", "median", "text"),
    [
        ("events_last_7d", 2.0, 14.0, "2 page views in the last 7 days (class median 14)"),
        ("past_due_not_submitted", 1.0, 0.0, "1 activity past due not submitted (class median 0)"),
        ("days_since_last_event", 9.0, 1.0, "9 days since the last page view (class median 1)"),
        (
            "avgspent_time",
            600.0,
            1800.0,
            "10 minutes spent per submission on average (class median 30 minutes)",
        ),
        ("avglevel", 2.25, 3.0, "average level 2.2 (class median 3.0)"),
    ],
)
def test_rendering_in_a_teachers_terms(feature, value, median, text):
    assert reasons.render(feature, value, median) == text


def test_rendering_against_the_class_quartile_or_extreme():
    assert reasons.render("total_submission", 5.0, 5.0, reference=7.0, kind=reasons.QUARTILE) == (
        "5 submissions (class median 5; a quarter of the class 7 or more)"
    )
    assert reasons.render(
        "days_since_last_event", 3.0, 3.0, reference=1.0, kind=reasons.EXTREME
    ) == ("3 days since the last page view (class median 3; the class's lowest 1)")


def test_screening_in_a_large_class_keeps_the_top_reasons(fitted):
    """Above SAMPLE_ROWS students only each student's screened candidates are measured; the
    reasons of the student behind on work and of the median student stay what they are."""
    rng = np.random.default_rng(21)
    raw = cohort(rng, 96, n=reasons.SAMPLE_ROWS + 101).drop(columns="label")
    late, middle = 3, 4
    raw["past_due_not_submitted"] = rng.integers(0, 2, len(raw)).astype(float)
    raw.loc[late, "past_due_not_submitted"] = 3.0
    medians = raw[COLUMNS].median()
    for name in COLUMNS:
        raw.loc[middle, name] = medians[name]
    scaled = feat.scale_within_class(features=raw)
    required = np.full(len(raw), 3, dtype=int)
    screened = reasons.explain(model=fitted, scaled=scaled, raw=raw, required=required)
    exact = reasons.explain(
        model=fitted, scaled=scaled, raw=raw, required=required, candidates=None
    )
    assert screened[middle] == exact[middle]
    assert screened[late][0] == exact[late][0]
    assert screened[late][0]["feature"] == "past_due_not_submitted"
    same_first = sum(a[:1] == b[:1] for a, b in zip(screened, exact, strict=True))
    assert same_first >= 0.95 * len(raw)


def test_known_risk_gives_the_same_reasons(fitted):
    rng = np.random.default_rng(4)
    raw = cohort(rng, 95).drop(columns="label")
    scaled = feat.scale_within_class(features=raw)
    required = np.full(len(raw), 3, dtype=int)
    risk = lof_model.predict_frame(
        model=fitted, features=scaled, required_levels={95: 3}, threshold=0.5
    )["risk_prob"].to_numpy()
    again = reasons.explain(model=fitted, scaled=scaled, raw=raw, required=required)
    given = reasons.explain(model=fitted, scaled=scaled, raw=raw, required=required, risk=risk)
    assert given == again and any(given)


def test_explained_reasons_are_in_the_shape_the_stores_keep_unchecked(fitted):
    """The stores skip their per-reason check for ``Reasons`` lists: every one explain builds
    must already have the stored keys, in order, with plain str and float values."""
    rng = np.random.default_rng(6)
    _, out = scored_class(cohort(rng, 94).drop(columns="label"), fitted)
    built = [r for rs in out for r in rs]
    assert built and all(type(rs) is reasons.Reasons for rs in out)
    assert {tuple(r) for r in built} == {REASON_KEYS}
    assert {tuple(type(v) for v in r.values()) for r in built} == {(str, str, str) + (float,) * 3}


def test_every_input_the_model_can_use_has_a_teachers_wording() -> None:
    """A reason never falls back to the column's name: each of the 13 and each signal has words."""
    from lof.features import definitions as features
    from lof.features import signals

    unworded = [c for c in (*features.FEATURES, *signals.SIGNALS) if c not in reasons.TEMPLATES]
    assert not unworded, unworded
    assert reasons.TEMPLATES["longest_gap_days"](9) == "longest stretch without activity 9 days"
