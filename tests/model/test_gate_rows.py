"""Code tests of the gate's choice of comparison rows (lof.promotion.comparable_rows)."""

from __future__ import annotations

import pandas as pd

from lof import promotion, registry


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
