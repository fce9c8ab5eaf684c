"""Small labelled example frames shaped like the retrain flow's training examples."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lof.features.definitions import FEATURES
from lof.model.outcome import PROGRESS_POINTS


def make_examples(*, n_classes: int = 6, students: int = 30, seed: int = 0) -> pd.DataFrame:
    """Examples whose level depends on a latent skill that the features reveal with noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_classes):
        class_id = 100 + c
        skill = rng.uniform(0, 1, students)
        label = np.clip(np.round(1 + 4 * skill + rng.normal(0, 0.4, students)), 1, 5).astype(int)
        for progress in PROGRESS_POINTS:
            noise = rng.normal(0, 0.25 / progress, (students, len(FEATURES)))
            values = np.clip(skill[:, None] + noise, 0, None)
            span = values.max(axis=0) - values.min(axis=0)
            scaled = (values - values.min(axis=0)) / np.where(span > 0, span, 1)
            for s in range(students):
                row = {"class_id": class_id, "user_id": 1000 + s, "progress": progress}
                row.update(dict(zip(FEATURES, scaled[s], strict=True)))
                row.update({"label": int(label[s]), "required_level": 3})
                rows.append(row)
    return pd.DataFrame(rows)
