"""Code tests of the pure parts of lof.training.examples: snapshot days, legacy files."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from lof.core.errors import DataError
from lof.features.definitions import FEATURES
from lof.training import examples


def test_snapshot_days_cover_the_window():
    days = examples.snapshot_days(first_day=date(2024, 1, 1), last_day=date(2024, 4, 10))
    assert days == {
        0.1: date(2024, 1, 11),
        0.25: date(2024, 1, 26),
        0.5: date(2024, 2, 20),
        0.75: date(2024, 3, 16),
        1.0: date(2024, 4, 10),
    }
    same = examples.snapshot_days(first_day=date(2024, 1, 1), last_day=date(2024, 1, 1))
    assert set(same.values()) == {date(2024, 1, 1)}


def test_legacy_dataset(tmp_path):
    good = tmp_path / "legacy.csv"
    pd.DataFrame({"Target": [1, 5], **{f: [0.0, 1.0] for f in FEATURES}}).to_csv(good, index=False)
    rows = examples.read_legacy_dataset(good)
    assert list(rows.columns) == list(examples.EXAMPLE_COLUMNS)
    assert rows["label"].tolist() == [1, 5]
    assert (rows["class_id"] == examples.LEGACY_CLASS_ID).all()

    bad_target = tmp_path / "bad.csv"
    pd.DataFrame({"Target": [1, 9], **{f: [0.0, 1.0] for f in FEATURES}}).to_csv(
        bad_target, index=False
    )
    with pytest.raises(DataError, match="outside 1-5, first at data row 2"):
        examples.read_legacy_dataset(bad_target)
    with pytest.raises(DataError, match="does not exist"):
        examples.read_legacy_dataset(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="lacks column\\(s\\) Target"):
        pd.DataFrame({f: [0.0] for f in FEATURES}).to_csv(tmp_path / "t.csv", index=False)
        examples.read_legacy_dataset(tmp_path / "t.csv")
