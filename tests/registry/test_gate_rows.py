"""Code tests of the gate's choice of comparison rows (lof.promotion.comparable_rows)."""

from __future__ import annotations

import pandas as pd

from lof.registry import client as registry
from lof.registry import promotion


def test_rows_of_classes_either_version_trained_on_are_left_out():
    holdout = pd.DataFrame({"class_id": [1, 1, 2, 3, 3, 3, 4], "user_id": range(7)})
    rows, excluded = promotion.comparable_rows(holdout, trained=[{1, 2}, {2, 3}])
    assert set(rows["class_id"]) == {4} and excluded == 6
    # a version registered before the tag existed counts as having trained on none of them
    rows, excluded = promotion.comparable_rows(holdout, trained=[{3}, None])
    assert set(rows["class_id"]) == {1, 2, 4} and excluded == 3
    rows, excluded = promotion.comparable_rows(holdout, trained=[{1, 2, 3, 4}, None])
    assert rows.empty and excluded == 7


def test_class_id_tags_round_trip_as_ranges():
    ids = [5, 1, 2, 3, 9, 10, 12]
    text = registry.encode_class_ids(ids)
    assert text == "1-3,5,9-10,12"
    assert registry.decode_class_ids(text) == set(ids)
    assert registry.decode_class_ids("") == set()
    assert registry.decode_class_ids(None) is None


def test_a_holdout_without_a_column_either_version_takes_cannot_compare_them():
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from lof.features.definitions import FEATURES

    rng = np.random.default_rng(0)
    with_signal = [*FEATURES, "past_due_not_submitted"]
    frame = pd.DataFrame(rng.random((20, len(with_signal))), columns=with_signal)
    levels = np.resize([1, 2, 3, 4, 5], 20)
    on_13 = LogisticRegression(max_iter=300).fit(frame[list(FEATURES)], levels)
    on_signal = LogisticRegression(max_iter=300).fit(frame, levels)
    old_holdout = frame[list(FEATURES)]
    assert not promotion.lacks_columns(old_holdout, models=[on_13, on_13])
    assert promotion.lacks_columns(old_holdout, models=[on_signal, on_13])
    assert not promotion.lacks_columns(frame, models=[on_signal, on_13])
