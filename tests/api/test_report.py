"""The page's content from records: order, trends, reasons (model's or unusual features)."""

from __future__ import annotations

from datetime import date, timedelta
from xml.etree import ElementTree

from lof.api.report import (
    build_report,
    format_value,
    reasons_for,
    render,
    sparkline_svg,
    unusual_features,
)
from lof.features.definitions import FEATURES
from lof.feedback import summarize

DAY0 = date(2025, 9, 1)


def _record(user: int, risk: float, day: date, **features: float) -> dict:
    return {
        "predicted_dt": f"{day:%Y%m%d}",
        "class_id": 5,
        "user_id": user,
        "predicted_label": 2 if risk >= 0.5 else 4,
        "predicted_prob": {},
        "risk_prob": risk,
        "at_risk": risk >= 0.5,
        "required_level": 3,
        "model_name": "lof-outcome",
        "model_version": "3",
        "features": {name: features.get(name, 10.0) for name in FEATURES},
    }


def test_students_by_risk_then_id_and_trends_over_days() -> None:
    days = [DAY0 + timedelta(days=k) for k in range(3)]
    history = {
        d: [_record(u, 0.1 * (k + 1) * (u % 3 + 1), d) for u in (1, 2, 3, 4)]
        for k, d in enumerate(days)
    }
    history[days[2]].append(_record(9, 0.95, days[2]))  # joined the cohort on the last day
    history[days[2]][0]["risk_prob"] = history[days[2]][3]["risk_prob"]  # a tie: by user id
    built = build_report(
        class_id=5, day=days[2], day_records=history[days[2]], history=history, threshold=0.5
    )
    risks = [(s.risk_prob, s.user_id) for s in built.students]
    assert risks == sorted(risks, key=lambda r: (-r[0], r[1]))
    assert built.students[0].user_id == 9
    for student in built.students:
        svg = ElementTree.fromstring(str(student.trend_svg))
        polylines = svg.findall("{http://www.w3.org/2000/svg}polyline")
        points = len(polylines[0].get("points").split()) if polylines else 1
        assert points == (1 if student.user_id == 9 else 3)
        assert svg.get("role") == "img" and "Risk trend of student" in svg.get("aria-label")
    assert [round(s, 4) for _, s in built.share_points] == [
        round(sum(r["at_risk"] for r in history[d]) / len(history[d]), 4) for d in days
    ]
    assert built.at_risk == sum(r["at_risk"] for r in history[days[2]])
    assert built.model_version == "3"


def test_unusual_features_name_the_outliers_with_direction() -> None:
    day = DAY0
    records = [_record(u, 0.2, day, class_view_count=100.0 + u) for u in range(1, 10)]
    records.append(_record(50, 0.8, day, class_view_count=2.0, avglevel=4.5))
    medians = {}
    from lof.api.report import class_medians

    medians = class_medians(records)
    reasons = unusual_features(records[-1], medians)
    assert reasons[0].startswith("class page views: 2 (low; class median 104.5)")
    # everyone else has avglevel 10 (no MAD): the mean absolute deviation still ranks it
    assert "mean level: 4.50 (low; class median 10.00)" in reasons
    assert not any("material views" in r for r in reasons)  # the same for all: never a reason
    assert unusual_features(records[4], medians) == []  # a typical student: nothing stands out


def test_reasons_field_replaces_the_fallback_when_present() -> None:
    record = _record(1, 0.7, DAY0, class_view_count=0.0)
    record["reasons"] = [
        {"feature": "total_submission", "value": 1, "direction": "low"},
        {"text": "no submission in the last two weeks"},
        "plain text reason",
        "a fourth one, not shown",
    ]
    reasons, kind = reasons_for(record, {})
    assert kind == "model"
    assert reasons == [
        "submissions 1 (low)",
        "no submission in the last two weeks",
        "plain text reason",
    ]
    record["reasons"] = []
    assert reasons_for(record, {})[1] == "unusual"


def test_page_escapes_text_and_labels_reason_column() -> None:
    record = _record(1, 0.7, DAY0)
    record["reasons"] = ["<script>alert(1)</script>"]
    built = build_report(
        class_id=5, day=DAY0, day_records=[record], history={DAY0: [record]}, threshold=0.5
    )
    html = render(
        "report.html",
        report=built,
        other_days=[],
        day_url=lambda d: "#",
        saved=None,
        any_model_reasons=True,
        feedback_enabled=True,
        feedback_action="/classes/5/feedback",
        token="tok",
        verdict_labels={"useful": "Useful"},
        note_max=500,
    )
    assert "<script>" not in html and "&lt;script&gt;" in html
    # the verdict's teacher is the link's: the form never asks for one
    assert "Top reasons" in html and 'name="verdict"' in html and "teacher_id" not in html


def test_sparkline_escapes_its_label_and_clamps() -> None:
    svg = sparkline_svg([1.5, -0.2], threshold=0.5, label='a "quoted" <label>')
    tree = ElementTree.fromstring(str(svg))
    assert tree.get("aria-label") == 'a "quoted" <label>'
    ys = [float(p.split(",")[1]) for p in tree.find("{*}polyline").get("points").split()]
    assert ys == [3.0, 25.0]


def test_values_read_as_a_teacher_reads_them() -> None:
    assert format_value("avgspent_time", 1830.0) == "30 min"
    assert format_value("avgseconds_early", 2 * 86_400) == "2.0 d"
    assert format_value("avgseconds_early", -7_200) == "-2.0 h"
    assert format_value("avgspent_time", 42.4) == "42 s"
    assert format_value("avglevel", 2.756) == "2.76"
    assert format_value("class_view_count", 12.0) == "12"


def test_summary_per_model_version() -> None:
    rows = [
        {"model_version": "3", "verdict": "useful", "at_risk": True},
        {"model_version": "3", "verdict": "not_useful", "at_risk": True},
        {"model_version": "3", "verdict": "useful", "at_risk": True},
        {"model_version": "3", "verdict": "already_known", "at_risk": False},
        {"model_version": "4", "verdict": "not_useful", "at_risk": False},
    ]
    summary = summarize(rows)
    assert summary["3"] == {
        "count": 4.0,
        "useful": 2.0,
        "not_useful": 1.0,
        "already_known": 1.0,
        "warnings": 3.0,
        "useful_share": 2 / 3,
    }
    assert "useful_share" not in summary["4"] and summary["4"]["count"] == 1.0


def test_reasons_from_the_model_read_with_their_direction() -> None:
    from lof.model import reasons as lof_reasons

    text = lof_reasons.render("past_due_not_submitted", 2.0, 0.0)
    record = _record(1, 0.7, DAY0, class_view_count=0.0)
    record["reasons"] = [
        {
            "feature": "past_due_not_submitted",
            "text": text,
            "direction": "raises risk",
            "value": 2.0,
            "class_median": 0.0,
            "effect": 0.12,
        }
    ]
    reasons, kind = reasons_for(record, {})
    assert kind == "model"
    assert reasons == [f"{text} (raises risk)"]
    assert "not submitted" in text and "class median 0" in text


def test_reasons_that_lower_risk_are_shown_apart() -> None:
    record = _record(1, 0.8, DAY0)
    record["reasons"] = [
        {"feature": "a", "text": "raises one", "direction": "raises risk", "effect": 0.2},
        {"feature": "b", "text": "lowers one", "direction": "lowers risk", "effect": -0.1},
        {"feature": "c", "text": "raises two", "direction": "raises risk", "effect": 0.1},
    ]
    assert reasons_for(record, {}) == (
        ["raises one (raises risk)", "raises two (raises risk)"],
        "model",
    )
    built = build_report(
        class_id=5, day=DAY0, day_records=[record], history={DAY0: [record]}, threshold=0.5
    )
    assert built.students[0].protective == ["lowers one (lowers risk)"]
    html = render(
        "report.html",
        report=built,
        other_days=[],
        day_url=lambda d: "#",
        saved=None,
        any_model_reasons=True,
        feedback_enabled=False,
        feedback_action="/classes/5/feedback",
        token="tok",
        verdict_labels={},
        note_max=500,
    )
    warning, favour = html.index("raises two"), html.index("In their favour:")
    assert warning < favour < html.index("lowers one")
