"""The former system's artefacts, as a university has them: its pickled model and its CSVs.

* ``load_classifier`` unpickles a former model file and checks it fits lof: a scikit-learn
  classifier with ``predict_proba`` over 13 inputs and classes 1-5. Unpickling runs code from
  the file, so only files the operator trusts may be imported.
* ``LegacyModel`` wraps it so it takes lof's named ``FEATURES`` (any column order) and feeds
  them to the former model in the former ``N_`` order. Its ``input_scaling`` says how the
  features it is given are scaled: ``within_class`` (lof's ``scale_within_class``, what every
  retrained version takes) or ``global`` (the former system's min-max over all students of all
  ongoing classes together); ``model_inputs`` gives the daily flow the right frame per version.

A former system's training file is read by ``lof.training.examples.read_legacy_dataset`` and a
former model is registered by ``lof.training.legacy_import``.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from lof.core.errors import DataError, ModelError
from lof.features.definitions import FEATURES, LEVELS
from lof.model.classifier import Classifier

FORMER_COLUMNS: tuple[str, ...] = (
    "N_specific_act_view",
    "N_activity_count",
    "N_total_submission",
    "N_session_id_count",
    "N_class_view_count",
    "N_activity_page_view",
    "N_material_view",
    "N_avgspent_time",
    "N_avgseconds_early",
    "N_act+quiz_view",
    "N_submit_button_clicked",
    "N_expectation_met_count",
    "N_avglevel",
)
FORMER_TO_LOF: dict[str, str] = {
    "N_specific_act_view": "specific_activity_view",
    "N_activity_count": "activity_count_per_class",
    "N_act+quiz_view": "act_quiz_view",
    **{c: c[2:] for c in FORMER_COLUMNS if c[2:] in FEATURES},
}
FORMER_ORDER: tuple[str, ...] = tuple(FORMER_TO_LOF[c] for c in FORMER_COLUMNS)
"""lof's feature names in the order the former model takes its inputs."""
TARGET_COLUMNS: tuple[str, ...] = ("Target", "maxlevel")
WITHIN_CLASS = "within_class"
GLOBAL = "global"
SCALINGS: tuple[str, ...] = (WITHIN_CLASS, GLOBAL)
DEFAULT_SCALING = WITHIN_CLASS
"""How an imported model is fed unless told otherwise (see tests/benchmarks/
bench_legacy_scaling.py and the README: within-class scored better on held-out classes)."""

assert len(FORMER_TO_LOF) == len(FEATURES) and set(FORMER_ORDER) == set(FEATURES)


# --- scaling ----------------------------------------------------------------------------------


def scale_globally(*, features: pd.DataFrame) -> pd.DataFrame:
    """Min-max scale each feature over all rows together (the former system's scaling).

    ``features`` is a features frame of every ongoing class of a day; a constant feature
    becomes 0, as in ``lof.features.definitions.scale_within_class``.
    """
    out = features.copy()
    if len(out) == 0:
        return out
    values = out[list(FEATURES)].astype(np.float64)
    low = values.min()
    span = values.max() - low
    out[list(FEATURES)] = ((values - low) / span.where(span > 0)).fillna(0.0).to_numpy()
    return out


def input_scaling(model: Classifier) -> str:
    """How a registered model wants its features scaled (retrained versions: within class)."""
    return str(getattr(model, "input_scaling", WITHIN_CLASS))


def model_inputs(*, model: Classifier, raw: pd.DataFrame, scaled: pd.DataFrame) -> pd.DataFrame:
    """The scaled features frame this model is to be fed (``scaled`` is lof's within-class)."""
    if input_scaling(model) == GLOBAL:
        return scale_globally(features=raw)
    return scaled


# --- the wrapped former model -----------------------------------------------------------------


def _former_input_names(estimator: object) -> list[str] | None:
    names = getattr(estimator, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


class LegacyModel(ClassifierMixin, BaseEstimator):
    """A former classifier that takes lof's named features (see the module docstring).

    A fitted scikit-learn classifier to everything else (``classes_``, ``feature_names_in_``,
    ``predict_proba``, ``predict``), so it is logged, loaded, gated and scored as any
    registered version is.
    """

    def __init__(self, estimator: Any = None, input_scaling: str = DEFAULT_SCALING) -> None:
        self.estimator = estimator
        self.input_scaling = input_scaling
        if getattr(estimator, "classes_", None) is not None:
            self.classes_ = np.asarray([int(c) for c in estimator.classes_], dtype=np.int64)
            self.feature_names_in_ = np.asarray(FEATURES, dtype=object)
            self.n_features_in_ = len(FEATURES)

    def former_inputs(self, features: pd.DataFrame | np.ndarray) -> pd.DataFrame | np.ndarray:
        """The 13 inputs in the former order, named as the former model was fitted (if it was)."""
        frame = (
            features
            if isinstance(features, pd.DataFrame)
            else pd.DataFrame(np.asarray(features), columns=list(FEATURES))
        )
        missing = [f for f in FEATURES if f not in frame.columns]
        if missing:
            raise DataError(
                f"features lack column(s) {', '.join(missing)}; the imported model takes the "
                "13 lof features by name"
            )
        values = frame[list(FORMER_ORDER)].astype(np.float64)
        names = _former_input_names(self.estimator)
        if names is None:
            return values.to_numpy()
        by_former = {FORMER_TO_LOF.get(n, n): n for n in names}
        return pd.DataFrame(
            {by_former[f]: values[f].to_numpy() for f in FORMER_ORDER}, index=values.index
        )[names]

    def predict_proba(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(self.former_inputs(features)))

    def predict(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(features).argmax(axis=1)]


# --- loading and checking a former model file -------------------------------------------------


@dataclass
class LoadedClassifier:
    """A former model file, unpickled and checked."""

    path: Path
    estimator: Any
    sha256: str
    pickled_with: str | None = None
    warnings: list[str] = field(default_factory=list)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_RECORDED_VERSION = re.compile(rb"_sklearn_version[^0-9]{1,16}?(\d+\.\d+(?:\.\d+)?)")


def _recorded_version(path: Path) -> str | None:
    """The scikit-learn version an uncompressed pickle records for its estimators, if any."""
    try:
        with path.open("rb") as handle:
            found = _RECORDED_VERSION.search(handle.read(64 << 20))
    except OSError:
        return None
    return found.group(1).decode() if found else None


def _unpickle(path: Path) -> tuple[Any, str | None, list[str]]:
    """The object in the file, the scikit-learn version it says it was pickled with, warnings."""
    import joblib
    import sklearn
    from sklearn.exceptions import InconsistentVersionWarning

    where = f"model file {path}"
    try:
        with path.open("rb") as handle:
            head = handle.read(2)
    except OSError as exc:
        raise ModelError(
            f"cannot read {where} ({exc.strerror or type(exc).__name__}); "
            "pass a readable pickle or joblib file"
        ) from None
    if not head:
        raise ModelError(f"{where} is empty; pass the former model's pickle or joblib file")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            obj = joblib.load(path)
            error: BaseException | None = None
        except Exception as exc:
            obj, error = None, exc
    versions = [
        str(w.message.original_sklearn_version)
        for w in caught
        if isinstance(w.message, InconsistentVersionWarning)
    ]
    pickled_with = versions[0] if versions else None
    if error is not None:
        pickled_with = pickled_with or _recorded_version(path)
        text = str(error).splitlines()[0] if str(error) else ""
        moved = isinstance(error, ImportError | AttributeError) and "sklearn" in text
        if pickled_with or moved:
            made = f"scikit-learn {pickled_with}" if pickled_with else "another scikit-learn"
            raise ModelError(
                f"{where} was pickled with {made} and cannot be loaded with scikit-learn "
                f"{sklearn.__version__} ({type(error).__name__}: {text[:160]}); export it "
                f"again from scikit-learn {sklearn.__version__} or one close to it"
            ) from None
        raise ModelError(
            f"cannot unpickle {where} ({type(error).__name__}: {text[:160]}); "
            "expected a scikit-learn classifier saved with pickle or joblib"
        ) from None
    notes = [str(w.message).splitlines()[0] for w in caught]
    return obj, pickled_with, notes


def check_classifier(estimator: Any, *, where: str) -> None:
    """ModelError unless ``estimator`` is a fitted classifier over 13 inputs with classes 1-5."""
    if not (hasattr(estimator, "predict_proba") and hasattr(estimator, "classes_")):
        raise ModelError(
            f"{where} holds a {type(estimator).__module__}.{type(estimator).__name__}, not a "
            "fitted scikit-learn classifier with predict_proba; pass the former classifier"
        )
    count = getattr(estimator, "n_features_in_", None)
    names = _former_input_names(estimator)
    if count is None and names is not None:
        count = len(names)
    if count is None:
        raise ModelError(
            f"{where}: the {type(estimator).__name__} does not say how many inputs it takes "
            "(no n_features_in_); pass a classifier fitted on the 13 former inputs"
        )
    if int(count) != len(FEATURES):
        raise ModelError(
            f"{where}: the {type(estimator).__name__} takes {count} inputs, not 13; pass a "
            f"classifier fitted on the 13 former inputs ({', '.join(FORMER_COLUMNS)})"
        )
    if names is not None:
        mapped = [FORMER_TO_LOF.get(n, n) for n in names]
        unknown = [n for n, m in zip(names, mapped, strict=True) if m not in FEATURES]
        if unknown or len(set(mapped)) != len(FEATURES):
            raise ModelError(
                f"{where}: the {type(estimator).__name__} was fitted on columns "
                f"{', '.join(unknown) or 'with duplicates'} that are neither former nor lof "
                "feature names; pass a classifier fitted on the 13 former inputs"
            )
    try:
        classes = [float(c) for c in estimator.classes_]
    except (TypeError, ValueError):
        classes = []
    if sorted(classes) != [float(level) for level in LEVELS]:
        shown = ", ".join(str(c) for c in list(estimator.classes_)[:8])
        raise ModelError(
            f"{where}: the {type(estimator).__name__} predicts classes [{shown}], not the "
            "levels 1-5; pass the former level classifier"
        )


def load_classifier(path: str | Path) -> LoadedClassifier:
    """Unpickle and check a former model file; a one-line ModelError says what is wrong."""
    path = Path(path)
    where = f"model file {path}"
    if not path.is_file():
        raise ModelError(f"{where} does not exist or is not a file; pass the pickle's path")
    estimator, pickled_with, notes = _unpickle(path)
    check_classifier(estimator, where=where)
    return LoadedClassifier(
        path=path,
        estimator=estimator,
        sha256=file_sha256(path),
        pickled_with=pickled_with,
        warnings=notes,
    )


def check_description(description: str | None) -> str:
    """The version description, at most 500 characters (MLflow shows it on one line)."""
    text = (description or "").strip()
    if len(text) > 500:
        raise DataError(f"--description is {len(text)} characters long; keep it to 500")
    return text


def check_scaling(scaling: str) -> str:
    if scaling not in SCALINGS:
        raise DataError(f"--scaling {scaling!r} is not one of {', '.join(SCALINGS)}")
    return scaling
