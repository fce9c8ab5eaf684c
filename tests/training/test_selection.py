"""Code tests of the pure parts of lof.training.selection: holdout split, fingerprint."""

from __future__ import annotations

import pandas as pd
import pytest

from lof.core.errors import DataError
from lof.training import selection
from tests.model.model_examples import make_examples


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
    train, holdout, kind = selection.split_holdout(
        examples=examples, classes=_classes(examples, semesters)
    )
    assert kind == "time"
    assert set(holdout["class_id"]) == {103, 104, 105}
    assert set(train["class_id"]) == {100, 101, 102}

    # One semester: every class evaluated out of fold, no separate holdout.
    one = {i: "1/2023" for i in range(100, 106)}
    train, holdout, kind = selection.split_holdout(
        examples=examples, classes=_classes(examples, one)
    )
    assert kind == "grouped-cv"  # 6 classes, 5 folds
    assert len(train) == len(examples) and holdout.empty
    train, holdout, kind = selection.split_holdout(
        examples=examples, classes=_classes(examples, one), n_splits=6
    )
    assert kind == "leave-one-class-out"

    # One class per semester, two semesters: a time holdout would leave 1 class to train on.
    two = examples[examples["class_id"].isin([100, 103])]
    train, holdout, kind = selection.split_holdout(examples=two, classes=_classes(two, semesters))
    assert kind == "leave-one-class-out" and holdout.empty and len(train) == len(two)
    # Three of them: the latest is held out, two are left to train on.
    three = examples[examples["class_id"].isin([100, 101, 103])]
    train, holdout, kind = selection.split_holdout(
        examples=three, classes=_classes(three, semesters)
    )
    assert kind == "time" and set(holdout["class_id"]) == {103}

    single = examples[examples["class_id"] == 100]
    with pytest.raises(DataError, match=r"only 1 finished class.*at least 2"):
        selection.split_holdout(examples=single, classes=_classes(single, one))


def test_fingerprint_tracks_content():
    examples = make_examples(n_classes=2, students=3)
    assert selection.fingerprint(examples) == selection.fingerprint(examples.copy())
    changed = examples.copy()
    changed.loc[0, "avglevel"] += 0.01
    assert selection.fingerprint(changed) != selection.fingerprint(examples)
