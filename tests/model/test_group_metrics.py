"""Per-group metrics, ABROCA, gaps and their intervals, the MLflow names, the groups file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lof.core.config import get_settings
from lof.core.errors import DataError
from lof.governance import groups
from lof.model import group_metrics as gm
from lof.training.model_card import ModelCard, PointFigures


def _rows(spec: list[tuple[str, int, float, float]], *, progress: float = 0.5) -> pd.DataFrame:
    """(group, truth, risk, class_id) -> held-out rows (one student each)."""
    return pd.DataFrame(
        {
            "class_id": [int(c) for _, _, _, c in spec],
            "user_id": range(1, len(spec) + 1),
            "progress": progress,
            "label": [1 if t else 4 for _, t, _, _ in spec],
            "required_level": 3,
            "group": [g for g, _, _, _ in spec],
            "risk": [r for _, _, r, _ in spec],
        }
    )


# a: truth 1,1,0,0 ranked perfectly; b: truth 1,0,1,0 with one of four pairs out of order
FIXTURE = [
    ("a", 1, 0.9, 1),
    ("a", 1, 0.6, 1),
    ("a", 0, 0.4, 2),
    ("a", 0, 0.1, 2),
    ("b", 1, 0.8, 1),
    ("b", 0, 0.7, 1),
    ("b", 1, 0.3, 2),
    ("b", 0, 0.2, 2),
]


def test_per_group_auc_ece_and_flags_match_a_hand_computation() -> None:
    rows = _rows(FIXTURE)
    report = gm.attribute_report(
        rows=rows,
        risk=rows["risk"].to_numpy(),
        threshold=0.5,
        values=rows["group"],
        attribute="group",
        min_size=4,
        points=(0.5,),
        rounds=0,
    )
    table = report.tables[50]
    # AUC: a ranks both positives above both negatives (1.0); b has 3 of 4 pairs right (0.75)
    assert table.loc["a", "auc"] == pytest.approx(1.0)
    assert table.loc["b", "auc"] == pytest.approx(0.75)
    # ECE (10 bins, one row per bin): a (.1+.4+.4+.1)/4 = .25; b (.2+.7+.7+.2)/4 = .45
    assert table.loc["a", "ece"] == pytest.approx(0.25)
    assert table.loc["b", "ece"] == pytest.approx(0.45)
    assert table.loc["a", "base_rate"] == table.loc["b", "base_rate"] == pytest.approx(0.5)
    assert table.loc["b", "mean_risk"] == pytest.approx(0.5)
    # at 0.5: a flags its two positives; b flags .8 (positive) and .7 (negative)
    assert (table.loc["a", "recall"], table.loc["a", "precision"]) == (1.0, 1.0)
    assert (table.loc["b", "recall"], table.loc["b", "precision"]) == (0.5, 0.5)
    assert table.loc["b", "flag_rate"] == 0.5 and table.loc["a", "students"] == 4
    # b's ROC: (0,0) (0,.5) (.5,.5) (.5,1) (1,1); a's is the unit square: area between = .25
    assert report.gaps["abroca_50"] == pytest.approx(0.25)
    assert report.gaps["max_auc_gap_50"] == pytest.approx(0.25)


def test_abroca_sees_crossing_curves_that_an_auc_gap_misses() -> None:
    # (0,0) (0,.5) (1,.5) (1,1) against the diagonal: both AUC .5, |.5 - x| integrates to .25
    crossing = (np.array([1, 0, 0, 1]), np.array([0.9, 0.8, 0.7, 0.6]))
    diagonal = (np.array([0, 1]), np.array([0.5, 0.5]))
    assert gm.roc_auc(*crossing) == pytest.approx(0.5) == gm.roc_auc(*diagonal)
    assert gm.abroca(*crossing, *diagonal) == pytest.approx(0.25)
    assert gm.abroca(*crossing, *crossing) == pytest.approx(0.0)
    assert np.isnan(gm.abroca(np.array([1, 1]), np.array([0.2, 0.3]), *diagonal))


def test_lead_time_is_the_share_of_students_below_flagged_by_each_point() -> None:
    rows = pd.DataFrame(
        {
            "class_id": 1,
            "user_id": [1, 1, 2, 2, 3, 3, 4, 4],
            "progress": [0.1, 0.25] * 4,
        }
    )
    truth = np.array([1, 1, 1, 1, 1, 1, 0, 0], dtype=bool)  # students 1-3 end below
    flagged = np.array([1, 0, 0, 1, 0, 0, 1, 1], dtype=bool)  # 1 at 10%, 2 at 25%, 3 never
    assert gm.lead_time(rows=rows, truth=truth, flagged=flagged, point=0.1) == pytest.approx(1 / 3)
    assert gm.lead_time(rows=rows, truth=truth, flagged=flagged, point=0.25) == pytest.approx(2 / 3)
    assert gm.lead_time(rows=rows, truth=truth, flagged=flagged, point=0.5) == pytest.approx(2 / 3)


def _university(*, seed: int, classes: int = 24, per_class: int = 60) -> pd.DataFrame:
    """Held-out rows of many classes at 25%: a risk that ranks by skill for everyone, a coin
    toss ``campus`` and an ``intake`` whose second round the risk cannot rank (pure noise)."""
    rng = np.random.default_rng(seed)
    n = classes * per_class
    skill = rng.normal(0, 1, n)
    truth = skill + rng.normal(0, 0.7, n) < 0
    second = rng.random(n) < 0.35
    signal = np.where(second, rng.normal(0, 1, n), -skill)
    return pd.DataFrame(
        {
            "class_id": np.repeat(np.arange(classes), per_class),
            "user_id": np.arange(n),
            "progress": 0.25,
            "label": np.where(truth, 1, 4),
            "required_level": 3,
            "risk": 1 / (1 + np.exp(-signal)),
            "campus": np.where(rng.random(n) < 0.5, "north", "south"),
            "intake": np.where(second, "second", "first"),
        }
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_random_attribute_has_a_gap_near_zero_within_its_interval(seed: int) -> None:
    rows = _university(seed=seed)
    report = gm.group_report(
        rows=rows,
        risk=rows["risk"].to_numpy(),
        threshold=0.5,
        attributes=rows[["campus", "intake"]],
        min_size=30,
        points=(0.25,),
        rounds=100,
        seed=seed,
    )
    campus, intake = report.attributes
    gap = campus.gaps["max_auc_gap_25"]
    assert gap < 0.05
    assert (
        campus.gaps["max_auc_gap_25_ci_low"] == 0.0 <= gap <= campus.gaps["max_auc_gap_25_ci_high"]
    )
    # ABROCA of two noisy curves is never quite 0, but it stays near it
    assert campus.gaps["abroca_25"] < 0.06 and campus.gaps["abroca_25_ci_low"] < 0.02
    # the attribute that matters: a gap far from 0, its whole interval above it
    assert intake.gaps["max_auc_gap_25"] > 0.25
    assert intake.gaps["max_auc_gap_25_ci_low"] > 0.1
    assert intake.gaps["abroca_25_ci_low"] > 0.1


def test_small_groups_are_reported_as_too_small_not_as_numbers() -> None:
    spec = [*FIXTURE, ("tiny-group", 1, 0.9, 1), ("tiny-group", 0, 0.1, 2)]
    rows = _rows(spec)
    report = gm.group_report(
        rows=rows,
        risk=rows["risk"].to_numpy(),
        threshold=0.5,
        attributes=rows[["group"]],
        min_size=3,
        points=(0.5,),
        rounds=20,
    )
    (attribute,) = report.attributes
    assert attribute.too_small == ["tiny-group"] and attribute.reported == ["a", "b"]
    assert list(attribute.tables[50].index) == ["a", "b"]
    metrics = report.metrics()
    assert not [name for name in metrics if "tiny" in name]
    assert metrics["groups.group.a.auc_50"] == 1.0
    # the gap leaves it out: a perfect tiny group would otherwise widen nothing, but a/b is .25
    assert metrics["groups.group.max_auc_gap_50"] == pytest.approx(0.25)

    card = ModelCard(
        model_name="m",
        version="1",
        candidate="logreg",
        semesters=["1/2024"],
        as_of="20250301",
        label_rule="attainment",
        n_examples=10,
        n_classes=2,
        holdout_kind="time",
        holdout_classes=2,
        evaluated_rows=10,
        threshold=0.5,
        threshold_rule="best F1",
        points=[PointFigures(50, 10, *([0.5] * 12))],
        calibration=[(0.1, 0.0, 5), (0.9, 1.0, 5)],
        selection="rule",
        groups=report,
        groups_source="groups.csv",
        outcomes=["Semester 1/2024: Too few interventions to compare"],
    )
    for text in (card.markdown(), card.html()):
        assert "Semester 1/2024: Too few interventions to compare" in text
        assert "Too small to report: tiny-group" in text
        assert "fewer than 3 students" in text
        assert "| 50% | tiny-group" not in text and "<td>tiny-group</td>" not in text


def test_metric_names_follow_the_documented_sanitising_rule() -> None:
    assert gm.sanitise("Faculty of Eng. / Sci") == "Faculty_of_Eng_Sci"
    assert gm.sanitise("..") == "_" and gm.sanitise("x" * 80) == "x" * 40
    assert gm.sanitised_names(["a.b", "a b", "a/b"]) == {
        "a.b": "a_b",
        "a b": "a_b_2",
        "a/b": "a_b_3",
    }
    rows = _rows(FIXTURE)
    rows["faculty name"] = np.where(rows["group"] == "a", "Eng. & Sci", "Arts/Law")
    report = gm.group_report(
        rows=rows,
        risk=rows["risk"].to_numpy(),
        threshold=0.5,
        attributes=rows[["faculty name"]],
        min_size=1,
        points=(0.5,),
        rounds=10,
    )
    names = set(report.metrics())
    assert "groups.faculty_name.Eng_Sci.auc_50" in names
    assert "groups.faculty_name.Arts_Law.lead_time_50" in names
    assert {"groups.faculty_name.abroca_50", "groups.faculty_name.max_auc_gap_50"} <= names
    import re

    assert all(re.fullmatch(r"groups(\.[A-Za-z0-9_-]+)+", n) for n in names)


# --- the groups file ---------------------------------------------------------------------------


def test_groups_csv_is_read_for_evaluation(tmp_path: Path) -> None:
    path = tmp_path / "groups.csv"
    path.write_text("user_id,faculty,gender\n7,science,f\n8,arts,\n\n9,science,m\n")
    found = groups.load_csv(path)
    assert found.attributes == ["faculty", "gender"]
    joined = found.for_users([9, 7, 1234])
    assert joined.to_dict(orient="list") == {
        "faculty": ["science", "science", "unknown"],
        "gender": ["m", "f", "unknown"],
    }
    assert found.for_users([8])["gender"].tolist() == ["unknown"]


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("faculty\nscience\n", "row 1", "no user_id column"),
        ("user_id,faculty\n7,science\nabc,arts\n", "row 3", "is not a whole number"),
        ("user_id,faculty\n7,science\n8,arts,extra\n", "row 3", "has 3 cells"),
        ("user_id,faculty\n7,science\n7,arts\n", "row 3", "appears twice"),
        ("user_id\n7\n", "", "no attribute column"),
        ("user_id,f\n" + "".join(f"{i},v{i}\n" for i in range(60)), "", "more than 50"),
        ("user_id,faculty\n7," + "x" * 70 + "\n", "row 2", "longer than 64"),
    ],
)
def test_a_malformed_groups_file_is_one_line_naming_file_and_row(
    tmp_path: Path, text: str, where: str, what: str
) -> None:
    path = tmp_path / "groups.csv"
    path.write_text(text)
    with pytest.raises(groups.GroupsError) as raised:
        groups.load_csv(path)
    message = str(raised.value)
    assert "\n" not in message and str(path) in message and what in message
    assert where in message
    assert isinstance(raised.value, DataError)


def test_missing_file_and_sql_table_through_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere.csv"
    monkeypatch.setenv("LOF_STUDENT_GROUPS", str(missing))
    with pytest.raises(groups.GroupsError, match=rf"{missing}: cannot be read"):
        groups.load(get_settings())
    monkeypatch.setenv("LOF_STUDENT_GROUPS", "")
    assert groups.load(get_settings()) is None

    db = tmp_path / "sis.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE cohort_groups (user_id INTEGER, scholarship TEXT)")
        conn.executemany("INSERT INTO cohort_groups VALUES (?, ?)", [(1, "yes"), (2, None)])
    monkeypatch.setenv("LOF_STUDENT_GROUPS", f"sqlite:///{db}")
    monkeypatch.setenv("LOF_STUDENT_GROUPS_TABLE", "cohort_groups")
    found = groups.load(get_settings())
    assert found is not None and found.for_users([2, 1])["scholarship"].tolist() == [
        "unknown",
        "yes",
    ]
    monkeypatch.setenv("LOF_STUDENT_GROUPS_TABLE", "absent_table")
    with pytest.raises(groups.GroupsError, match="table absent_table: cannot be read"):
        groups.load(get_settings())
