"""Test data: predictions frames written through the real store write path."""

from __future__ import annotations

import warnings
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from lof.core.config import Settings, get_settings
from lof.features.definitions import FEATURES
from lof.stores import open_prediction_store

KEYS = ("key-alpha-0123456789", "key-beta-9876543210")
CLASS_A, CLASS_B, CLASS_EMPTY = 12, 13, 14
DAY1, DAY2 = date(2023, 3, 24), date(2023, 3, 25)
USERS_A = (4501, 4502, 4503, 4504, 4505)
USERS_B = (7001, 7002)
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def prediction_frame(*, class_id: int, users: tuple[int, ...], seed: int) -> pd.DataFrame:
    """A predictions frame as the daily flow writes it (docs/contracts.md §3.4)."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in users:
        prob = rng.dirichlet(np.ones(5))
        label = int(prob.argmax()) + 1
        risk = float(prob[:2].sum())
        rows.append(
            {
                "class_id": class_id,
                "user_id": user,
                "predicted_label": label,
                "predicted_prob": {str(i + 1): float(p) for i, p in enumerate(prob)},
                "risk_prob": risk,
                "at_risk": risk >= 0.5,
                "required_level": 3,
                "model_name": "lof-outcome",
                "model_version": "4",
                "features": {
                    name: float(rng.integers(0, 200)) + (0.5 if i % 4 == 0 else 0.0)
                    for i, name in enumerate(FEATURES)
                },
                "reasons": reasons_of(user),
            }
        )
    return pd.DataFrame(rows)


def reasons_of(user: int) -> list[dict]:
    """Reasons as ``lof.model.reasons.explain`` gives them: two for even user ids, none for odd."""
    if user % 2:
        return []
    return [
        {
            "feature": "past_due_not_submitted",
            "text": f"{user % 5} activities past due not submitted (class median 0)",
            "direction": "raises risk",
            "value": float(user % 5),
            "class_median": 0.0,
            "effect": 0.1 + 0.2,
        },
        {
            "feature": "events_last_7d",
            "text": "2 page views in the last 7 days (class median 14)",
            "direction": "raises risk",
            "value": 2.0,
            "class_median": 14.0,
            "effect": 0.05,
        },
    ]


def fill(url: str) -> dict[tuple[date, int], pd.DataFrame]:
    """Write two days through ``PredictionStore.write_day``; returns what was written."""
    store = open_prediction_store(url)
    written: dict[tuple[date, int], pd.DataFrame] = {}
    day1 = prediction_frame(class_id=CLASS_A, users=USERS_A, seed=1)
    day2_a = prediction_frame(class_id=CLASS_A, users=USERS_A, seed=2)
    day2_b = prediction_frame(class_id=CLASS_B, users=USERS_B, seed=3)
    store.write_day(day=DAY1, predictions=day1)
    store.write_day(day=DAY2, predictions=pd.concat([day2_a, day2_b], ignore_index=True))
    written[(DAY1, CLASS_A)] = day1
    written[(DAY2, CLASS_A)] = day2_a
    written[(DAY2, CLASS_B)] = day2_b
    close = getattr(store, "close", None)
    if callable(close):
        close()
    return written


def settings_for(
    home: Path, store_url: str, *, keys: tuple[str, ...] | None = KEYS, **extra: object
) -> Settings:
    return get_settings(
        home=home,
        store_url=store_url,
        api_keys=",".join(keys) if keys else None,
        mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
        **extra,
    )


REGISTERED_VERSION = "2"
UNPROMOTED_MODEL = "lof-unpromoted"


def build_registry(path: Path) -> None:
    """A real MLflow registry (sqlite): ``lof-outcome`` v2 at stage Production, v1 not, and a
    model without any version. Built once per session (MLflow's migrations take seconds)."""
    import mlflow

    uri = f"sqlite:///{path}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("lof-outcome")
    for _ in range(2):
        version = client.create_model_version("lof-outcome", source="file:///nowhere/model")
    assert str(version.version) == REGISTERED_VERSION
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client.transition_model_version_stage("lof-outcome", version.version, "Production")
    client.create_registered_model(UNPROMOTED_MODEL)
