"""Validation of the reasons cell of a predictions frame, before anything is written."""

from __future__ import annotations

import math

import pytest

from lof.core.errors import DataError
from lof.stores.base import REASON_KEYS, prediction_rows
from lof.stores.records import PlainFloats, Reasons

from .test_contract import predictions

EXPLAINED = {
    "feature": "past_due_not_submitted",
    "text": "2 activities past due not submitted (class median 0)",
    "direction": "raises risk",
    "value": 2.0,
    "class_median": 0.0,
    "effect": 0.2131,
}


def with_reasons(*reasons: object) -> list[dict]:
    frame = predictions([(1, 10, 2)])
    frame["reasons"] = [list(reasons)]
    return prediction_rows(frame)


def test_reasons_as_explain_builds_them_are_stored_unchanged() -> None:
    (row,) = with_reasons(EXPLAINED, {**EXPLAINED, "class_median": math.nan})
    assert row["reasons"][0] == EXPLAINED
    assert math.isnan(row["reasons"][1]["class_median"])


def test_loose_reasons_are_normalised_to_the_stored_keys() -> None:
    loose = {"text": "went quiet", "value": 3, "effect": "0.5", "extra": "dropped"}
    (row,) = with_reasons(loose)
    (reason,) = row["reasons"]
    assert tuple(reason) == REASON_KEYS
    assert reason["feature"] == "" and reason["direction"] == ""
    assert reason["value"] == 3.0 and type(reason["value"]) is float
    assert reason["effect"] == 0.5
    assert math.isnan(reason["class_median"])


@pytest.mark.parametrize(
    "reason",
    [{"feature": "x"}, {**EXPLAINED, "value": "many"}, "2 activities past due"],
    ids=["no text", "non-numeric value", "not a dict"],
)
def test_a_malformed_reason_names_its_row(reason: object) -> None:
    with pytest.raises(DataError, match="row 0"):
        with_reasons(EXPLAINED, reason)


def test_values_lof_built_are_stored_as_the_very_objects() -> None:
    explained = Reasons([EXPLAINED])
    probabilities = PlainFloats({"1": 0.5, "2": 0.5, "3": 0.0, "4": 0.0, "5": 0.0})
    frame = predictions([(1, 10, 2)])
    frame["reasons"] = [explained]
    frame["predicted_prob"] = [probabilities]
    (row,) = prediction_rows(frame)
    assert row["reasons"] is explained
    assert row["predicted_prob"] is probabilities
