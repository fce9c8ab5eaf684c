"""Three scored days of one class with every kind of change, written through the store."""

from __future__ import annotations

from datetime import date

import pandas as pd

from lof.features.definitions import FEATURES
from lof.stores import open_prediction_store

CLASS = 31
OTHER_CLASS = 32
D1, D2, D3 = date(2023, 3, 20), date(2023, 3, 21), date(2023, 3, 23)
THRESHOLD = 0.5
# user -> risk on D1, D2, D3 (None: not scored that day)
RISKS: dict[int, tuple[float | None, float | None, float | None]] = {
    801: (0.60, 0.30, 0.70),  # recovered D1->D2, new D2->D3
    802: (0.80, 0.80, 0.30),  # recovered D2->D3
    803: (0.10, 0.10, 0.40),  # risen by 0.30 D2->D3, still on track
    804: (0.60, 0.60, 0.62),  # unchanged, at risk
    805: (0.20, 0.20, 0.30),  # a rise of 0.10: below the setting, no change
    806: (None, None, 0.90),  # first scored on D3, at risk: new
}


def reasons(user: int) -> list[dict]:
    return [
        {
            "feature": "past_due_not_submitted",
            "text": f"{user % 7} activities past due not submitted (class median 0)",
            "direction": "raises risk",
            "value": float(user % 7),
            "class_median": 0.0,
            "effect": 0.2,
        }
    ]


def frame(index: int, class_id: int = CLASS) -> pd.DataFrame:
    rows = []
    for user, risks in RISKS.items():
        risk = risks[index]
        if risk is None:
            continue
        rows.append(
            {
                "class_id": class_id,
                "user_id": user,
                "predicted_label": 2 if risk >= THRESHOLD else 4,
                "predicted_prob": {"1": risk / 2, "2": risk / 2, "3": 1 - risk, "4": 0.0, "5": 0.0},
                "risk_prob": risk,
                "at_risk": risk >= THRESHOLD,
                "required_level": 3,
                "model_name": "lof-outcome",
                "model_version": "4",
                "features": {name: 1.0 for name in FEATURES},
                "reasons": reasons(user),
            }
        )
    return pd.DataFrame(rows)


def write_three_days(url: str) -> None:
    store = open_prediction_store(url)
    try:
        for index, day in enumerate((D1, D2, D3)):
            store.write_day(day=day, predictions=frame(index))
    finally:
        getattr(store, "close", lambda: None)()
