"""The API's response models: the OpenAPI schema of what the LEB2 backend receives."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import JsonDict, JsonValue

from lof.features.definitions import FEATURES

_EXAMPLE_FEATURES: JsonDict = {
    "class_view_count": 182.0,
    "activity_page_view": 21.0,
    "material_view": 40.0,
    "act_quiz_view": 35.0,
    "submit_button_clicked": 9.0,
    "specific_activity_view": 7.0,
    "session_id_count": 26.0,
    "activity_count_per_class": 6.0,
    "total_submission": 6.0,
    "avgspent_time": 1830.5,
    "avgseconds_early": 86400.0,
    "expectation_met_count": 4.0,
    "avglevel": 2.75,
}
_EXAMPLE_PROB: JsonDict = {"1": 0.05, "2": 0.55, "3": 0.3, "4": 0.08, "5": 0.02}

_FEATURE_FIELDS: dict[str, Any] = {
    name: (float, Field(description=f"raw, unscaled `{name}`")) for name in FEATURES
}
Features = create_model(  # the 13 raw values by name, in docs/domain.md §2.3 order
    "Features",
    __config__=ConfigDict(json_schema_extra={"examples": [_EXAMPLE_FEATURES]}),
    **_FEATURE_FIELDS,
)


_EXAMPLE_REASONS: list[JsonValue] = [
    {
        "feature": "past_due_not_submitted",
        "text": "3 activities past due not submitted (class median 0)",
        "direction": "raises risk",
        "value": 3.0,
        "class_median": 0.0,
        "effect": 0.21,
    },
    {
        "feature": "events_last_7d",
        "text": "2 page views in the last 7 days (class median 14)",
        "direction": "raises risk",
        "value": 2.0,
        "class_median": 14.0,
        "effect": 0.12,
    },
    {
        "feature": "avglevel",
        "text": "average level 3.2 (class median 2.8)",
        "direction": "lowers risk",
        "value": 3.2,
        "class_median": 2.8,
        "effect": -0.04,
    },
]


class Reason(BaseModel):
    """One driver of a student's risk: what moved risk_prob, against the class's median."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_REASONS[0]]})

    feature: str = Field(description="the model input it is about (a feature or a signal)")
    text: str = Field(description="in a teacher's words, with the student's value and the median")
    direction: str = Field(
        description='"raises risk" (listed first) or "lowers risk" (after them, kept apart)'
    )
    value: float = Field(description="the student's raw value")
    class_median: float = Field(description="the median of the class's cohort that day")
    effect: float = Field(
        description="risk_prob minus the risk_prob with this value set to the class's figure "
        "the text names: the class median, or, for an at-risk student at the median, the "
        "class's quartile (or lowest/highest value) that lowers risk. Reasons are chosen and "
        "ordered by this change on the log-odds of risk, which does not vanish near 0 or 1"
    )


class Prediction(BaseModel):
    """One student's prediction for one class on one day."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "predicted_dt": "20230325",
                    "class_id": 12,
                    "user_id": 4501,
                    "predicted_label": 2,
                    "predicted_prob": _EXAMPLE_PROB,
                    "risk_prob": 0.6,
                    "at_risk": True,
                    "required_level": 3,
                    "model_name": "lof-outcome",
                    "model_version": "4",
                    "features": _EXAMPLE_FEATURES,
                    "reasons": _EXAMPLE_REASONS,
                }
            ]
        },
        protected_namespaces=(),
    )

    predicted_dt: str = Field(description="the day scored, YYYYMMDD (local time)")
    class_id: int
    user_id: int
    predicted_label: int = Field(description="most likely final level, 1-5")
    predicted_prob: dict[str, float] = Field(description='probability per level "1".."5"')
    risk_prob: float = Field(description="P(final level < required level)")
    at_risk: bool = Field(description="risk_prob >= the risk threshold")
    required_level: int = Field(description="the level the class requires")
    model_name: str | None = None
    model_version: str
    features: Features  # type: ignore[valid-type]
    reasons: list[Reason] = Field(
        default_factory=list,
        description="what drives risk_prob: first up to 3 reasons that raise it, largest first "
        "(every at-risk prediction has at least one unless the class's students are alike on "
        "every input), then, apart, up to 2 that lower it; [] when none stands out. Predictions "
        "stored before this order may list both kinds mixed, largest first",
    )


class HistoryPoint(BaseModel):
    """A student's prediction on one day."""

    model_config = ConfigDict(protected_namespaces=())

    predicted_dt: str
    predicted_label: int
    predicted_prob: dict[str, float]
    risk_prob: float
    at_risk: bool
    required_level: int
    model_version: str


class StudentHistory(BaseModel):
    """A student's daily risk and level probabilities over the class so far, oldest day first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "class_id": 12,
                    "user_id": 4501,
                    "days": [
                        {
                            "predicted_dt": "20230324",
                            "predicted_label": 3,
                            "predicted_prob": {"1": 0.02, "2": 0.3, "3": 0.5, "4": 0.15, "5": 0.03},
                            "risk_prob": 0.32,
                            "at_risk": False,
                            "required_level": 3,
                            "model_version": "4",
                        }
                    ],
                }
            ]
        }
    )

    class_id: int
    user_id: int
    days: list[HistoryPoint]


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Readiness(BaseModel):
    """Whether the API can answer: store reachable and a model in the registry's stage.

    Without a valid x-api-key only ``status`` is given."""

    model_config = ConfigDict(protected_namespaces=())

    status: str = Field(examples=["ready"])
    reason: str | None = Field(default=None, examples=[None])
    store: str | None = Field(default=None, examples=["ok"])
    model_name: str | None = Field(default=None, examples=["lof-outcome"])
    model_stage: str | None = Field(default=None, examples=["Production"])
    model_version: str | None = Field(default=None, examples=["4"])
    last_scored_day: str | None = Field(
        default=None,
        description="the latest day whose predictions are complete, YYYYMMDD",
        examples=["20230325"],
    )


__all__ = [
    "Features",
    "Health",
    "HistoryPoint",
    "Prediction",
    "Readiness",
    "Reason",
    "StudentHistory",
]
