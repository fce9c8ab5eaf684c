"""What a registered lof model serves through MLflow's ``python_function`` flavor.

``mlflow.pyfunc.load_model(uri).predict(frame)`` returns, per row, ``risk_prob`` (the
calibrated P(final level < the class's required level), computed as the daily scoring computes
it) and ``prob_level_1`` .. ``prob_level_5`` (P(level), 0 for a level the model never saw). The
risk depends on the class, so the input is the model's feature columns plus ``required_level``
(1-5, the class's required level); the logged signature names exactly these columns.

A model is logged with two flavors: MLflow's own ``sklearn`` flavor (skops file, what lof's
daily scoring and promote gate load with ``mlflow.sklearn.load_model``, unchanged) and a
``python_function`` flavor whose loader is this module instead of ``mlflow.sklearn`` (whose
pyfunc can serve only one of the estimator's own methods). Loading either needs lof installed:
the stored model is one of lof's classes (``RiskModel``, ``LegacyModel``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lof.core.errors import DataError
from lof.features.definitions import LEVELS
from lof.model import outcome as lof_model
from lof.model.classifier import Classifier

if TYPE_CHECKING:
    from mlflow.models import Model

REQUIRED_LEVEL = "required_level"
RISK = "risk_prob"
LEVEL_COLUMNS: tuple[str, ...] = tuple(f"prob_level_{level}" for level in LEVELS)
OUTPUT_COLUMNS: tuple[str, ...] = (RISK, *LEVEL_COLUMNS)
MAX_ROWS = 1_000_000
"""The most rows one ``predict`` call scores (a class-wide day is a few thousand)."""


def input_columns(model: Classifier) -> list[str]:
    """The columns ``predict`` takes: the model's features, then ``required_level``."""
    return [*lof_model.input_features(model), REQUIRED_LEVEL]


def served_frame(*, model: Classifier, data: pd.DataFrame) -> pd.DataFrame:
    """``risk_prob`` and the level probabilities per row of ``data`` (see the module docstring):
    the same ``level_probabilities`` and ``model_risk`` as ``lof.model.predict_frame``."""
    if len(data) > MAX_ROWS:
        raise DataError(f"{len(data)} rows in one call; score at most {MAX_ROWS} at a time")
    if REQUIRED_LEVEL not in data.columns:
        raise DataError(
            f"input lacks column {REQUIRED_LEVEL!r}: the class's required level (1-5) of each "
            "row, which the risk is measured against"
        )
    required = pd.to_numeric(data[REQUIRED_LEVEL], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isin(required, np.asarray(LEVELS, dtype=float))
    if bad.any():
        raise DataError(
            f"{int(bad.sum())} row(s) with {REQUIRED_LEVEL} outside the levels 1-5 (first at "
            f"row {int(np.flatnonzero(bad)[0])}); give each row its class's required level"
        )
    features = data.drop(columns=[REQUIRED_LEVEL])
    values = features.reindex(columns=lof_model.input_features(model)).astype(float)
    if not np.isfinite(values.to_numpy()).all():
        raise DataError(
            "feature values must be finite numbers; missing columns or NaN are refused "
            f"(expected {', '.join(lof_model.input_features(model))})"
        )
    proba = lof_model.level_probabilities(model=model, features=values)
    risk = lof_model.model_risk(model, proba, required.astype(int))
    out = pd.DataFrame(proba, columns=list(LEVEL_COLUMNS), index=data.index)
    out.insert(0, RISK, risk.astype(float))
    return out


class ServedModel:
    """The pyfunc implementation MLflow wraps: ``predict`` is ``served_frame``."""

    def __init__(self, model: Classifier) -> None:
        self.model = model

    def get_raw_model(self) -> Classifier:
        return self.model

    def predict(self, data: object, params: Mapping[str, object] | None = None) -> pd.DataFrame:
        return served_frame(model=self.model, data=pd.DataFrame(data))


def _load_pyfunc(path: str) -> ServedModel:
    """MLflow's loader hook: ``path`` is the model file inside the logged model's directory,
    whose ``sklearn`` flavor says how to read it (skops, trusted types)."""
    import mlflow.sklearn

    directory = os.path.dirname(path) if os.path.isfile(path) else path
    return ServedModel(mlflow.sklearn.load_model(directory))


def save_model(*, sk_model: Classifier, path: str, mlflow_model: Model, **kwargs: object) -> None:
    """MLflow's flavor hook (``Model.log(flavor=lof.pyfunc, ...)``): the scikit-learn flavor as
    ``mlflow.sklearn`` saves it, then its ``python_function`` flavor loaded by this module."""
    import mlflow.sklearn
    from mlflow.models.model import MLMODEL_FILE_NAME

    mlflow.sklearn.save_model(sk_model, path, mlflow_model=mlflow_model, **kwargs)
    served = mlflow_model.flavors["python_function"]
    served["loader_module"] = __name__
    served.pop("predict_fn", None)
    mlflow_model.save(os.path.join(path, MLMODEL_FILE_NAME))
