"""Code tests of the pure parts of lof.training: snapshot days, holdout split, legacy files."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from lof import training
from lof.errors import DataError
from lof.features import FEATURES

from .model_examples import make_examples


def test_snapshot_days_cover_the_window():
    days = training.snapshot_days(first_day=date(2024, 1, 1), last_day=date(2024, 4, 10))
    assert days == {
        0.1: date(2024, 1, 11),
        0.25: date(2024, 1, 26),
        0.5: date(2024, 2, 20),
        0.75: date(2024, 3, 16),
        1.0: date(2024, 4, 10),
    }
    same = training.snapshot_days(first_day=date(2024, 1, 1), last_day=date(2024, 1, 1))
    assert set(same.values()) == {date(2024, 1, 1)}


def _classes(examples: pd.DataFrame, semesters: dict[int, str]) -> pd.DataFrame:
    ids = sorted(examples["class_id"].unique())
    return pd.DataFrame(
        {
            "class_id": ids,
            "code": [f"C{i}" for i in ids],
            "semester": [semesters[i] for i in ids],
            "first_start": [
                pd.Timestamp("2023-01-01")
                if semesters[i] == "1/2023"
                else pd.Timestamp("2024-01-01")
                for i in ids
            ],
        }
    )


def test_split_holdout_by_time_and_by_class():
    examples = make_examples(n_classes=6, students=5)
    semesters = {i: ("1/2023" if i < 103 else "1/2024") for i in range(100, 106)}
    examples["semester"] = examples["class_id"].map(semesters)
    train, holdout, kind = training.split_holdout(
        examples=examples, classes=_classes(examples, semesters)
    )
    assert kind == "time"
    assert set(holdout["class_id"]) == {103, 104, 105}
    assert set(train["class_id"]) == {100, 101, 102}

    # One semester: every class evaluated out of fold, no separate holdout.
    one = {i: "1/2023" for i in range(100, 106)}
    train, holdout, kind = training.split_holdout(
        examples=examples, classes=_classes(examples, one)
    )
    assert kind == "grouped-cv"  # 6 classes, 5 folds
    assert len(train) == len(examples) and holdout.empty
    train, holdout, kind = training.split_holdout(
        examples=examples, classes=_classes(examples, one), n_splits=6
    )
    assert kind == "leave-one-class-out"

    # One class per semester, two semesters: a time holdout would leave 1 class to train on.
    two = examples[examples["class_id"].isin([100, 103])]
    train, holdout, kind = training.split_holdout(examples=two, classes=_classes(two, semesters))
    assert kind == "leave-one-class-out" and holdout.empty and len(train) == len(two)
    # Three of them: the latest is held out, two are left to train on.
    three = examples[examples["class_id"].isin([100, 101, 103])]
    train, holdout, kind = training.split_holdout(
        examples=three, classes=_classes(three, semesters)
    )
    assert kind == "time" and set(holdout["class_id"]) == {103}

    single = examples[examples["class_id"] == 100]
    with pytest.raises(DataError, match=r"only 1 finished class.*at least 2"):
        training.split_holdout(examples=single, classes=_classes(single, one))


def test_fingerprint_tracks_content():
    examples = make_examples(n_classes=2, students=3)
    assert training.fingerprint(examples) == training.fingerprint(examples.copy())
    changed = examples.copy()
    changed.loc[0, "avglevel"] += 0.01
    assert training.fingerprint(changed) != training.fingerprint(examples)


def test_legacy_dataset(tmp_path):
    good = tmp_path / "legacy.csv"
    pd.DataFrame({"Target": [1, 5], **{f: [0.0, 1.0] for f in FEATURES}}).to_csv(good, index=False)
    rows = training.read_legacy_dataset(good)
    assert list(rows.columns) == list(training.EXAMPLE_COLUMNS)
    assert rows["label"].tolist() == [1, 5]
    assert (rows["class_id"] == training.LEGACY_CLASS_ID).all()

    bad_target = tmp_path / "bad.csv"
    pd.DataFrame({"Target": [1, 9], **{f: [0.0, 1.0] for f in FEATURES}}).to_csv(
        bad_target, index=False
    )
    with pytest.raises(DataError, match="outside 1-5, first at data row 2"):
        training.read_legacy_dataset(bad_target)
    with pytest.raises(DataError, match="does not exist"):
        training.read_legacy_dataset(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="lacks column\\(s\\) Target"):
        pd.DataFrame({f: [0.0] for f in FEATURES}).to_csv(tmp_path / "t.csv", index=False)
        training.read_legacy_dataset(tmp_path / "t.csv")
