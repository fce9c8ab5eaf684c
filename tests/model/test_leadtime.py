"""Lead time figures (lof.model.leadtime) on a hand-computed frame."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lof.model.leadtime import METRIC_NAMES, lead_time, lead_time_of_examples


def frame(rows):
    return pd.DataFrame(rows, columns=["class_id", "user_id", "progress", "flagged", "below"])


# Class 1: students 1-4 end below, 5-6 do not. Class 2: student 1 (another person) ends below.
ROWS = [
    # 1 flagged from 10 %
    *[(1, 1, p, True, True) for p in (0.1, 0.25, 0.5, 0.75)],
    # 2 flagged first at 50 %
    *[(1, 2, p, p >= 0.5, True) for p in (0.1, 0.25, 0.5, 0.75)],
    # 3 flagged at 10 % only, then not: warned about by 25 % and 50 %
    *[(1, 3, p, p == 0.1, True) for p in (0.1, 0.25, 0.5, 0.75)],
    # 4 never flagged
    *[(1, 4, p, False, True) for p in (0.1, 0.25, 0.5, 0.75)],
    # 5 a false alarm at 25 %, 6 never flagged
    *[(1, 5, p, p == 0.25, False) for p in (0.1, 0.25, 0.5, 0.75)],
    *[(1, 6, p, False, False) for p in (0.1, 0.25, 0.5, 0.75)],
    # class 2's student 1: flagged first at 25 %
    *[(2, 1, p, p >= 0.25, True) for p in (0.1, 0.25, 0.5, 0.75)],
]


def test_hand_computed():
    got = lead_time(frame(ROWS))
    assert set(got) == set(METRIC_NAMES)
    # 5 end below: (1,1) (1,2) (1,3) (1,4) (2,1)
    assert got["lead_caught_by_10"] == pytest.approx(2 / 5)  # (1,1), (1,3)
    assert got["lead_caught_by_25"] == pytest.approx(3 / 5)  # + (2,1)
    assert got["lead_caught_by_50"] == pytest.approx(4 / 5)  # + (1,2)
    assert got["lead_median_first_flag"] == pytest.approx(0.175)  # 0.1, 0.1, 0.25, 0.5
    assert got["lead_never_flagged"] == pytest.approx(1 / 5)
    # flagged at 25 %: (1,1), (1,5), (2,1) -> one false alarm
    assert got["lead_false_alarms_at_25"] == pytest.approx(1 / 3)


def test_nobody_below_or_flagged_gives_nan_not_an_error():
    got = lead_time(frame([(1, 1, 0.25, False, False), (1, 2, 0.5, False, False)]))
    assert all(math.isnan(v) for v in got.values())


def test_missing_column_is_refused_by_name():
    with pytest.raises(ValueError, match="below"):
        lead_time(
            pd.DataFrame({"class_id": [1], "user_id": [1], "progress": [0.1], "flagged": [True]})
        )


def test_from_examples_with_a_threshold_per_row():
    examples = pd.DataFrame(
        {
            "class_id": [1, 1, 1, 1],
            "user_id": [1, 1, 2, 2],
            "progress": [0.1, 0.25, 0.1, 0.25],
            "label": [1, 1, 4, 4],
            "required_level": [3, 3, 3, 3],
        }
    )
    got = lead_time_of_examples(
        examples, risk=np.array([0.4, 0.7, 0.2, 0.6]), threshold=np.array([0.5, 0.5, 0.5, 0.5])
    )
    assert got["lead_caught_by_10"] == 0.0 and got["lead_caught_by_25"] == 1.0
    assert got["lead_false_alarms_at_25"] == 0.5
