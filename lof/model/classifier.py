"""What lof needs of a fitted model: the ``Classifier`` protocol.

Every model lof scores with is one: a retrained ``RiskModel``, a scikit-learn estimator or
pipeline, a wrapped former model (``lof.legacy.LegacyModel``), a model loaded from the
registry. They give level probabilities over their ``classes_`` (the levels 1-5) for a frame
of named inputs; ``feature_names_in_`` names those inputs when the model was fitted on a frame
(``lof.model.outcome.input_features`` reads it with a default, so a model without it is one
fitted on the 13 ``FEATURES``).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd


class Classifier(Protocol):
    """A fitted classifier over the outcome levels."""

    classes_: np.ndarray

    def predict_proba(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """One row per input row, one column per level of ``classes_``."""
        ...


__all__ = ["Classifier"]
