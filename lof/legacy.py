"""The former system's artefacts, as a university has them: its pickled model and its CSVs.

* ``load_classifier`` unpickles a former model file and checks it fits lof: a scikit-learn
  classifier with ``predict_proba`` over 13 inputs and classes 1-5. Unpickling runs code from
  the file, so only files the operator trusts may be imported.
* ``LegacyModel`` wraps it so it takes lof's named ``FEATURES`` (any column order) and feeds
  them to the former model in the former ``N_`` order. Its ``input_scaling`` says how the
  features it is given are scaled: ``within_class`` (lof's ``scale_within_class``, what every
  retrained version takes) or ``global`` (the former system's min-max over all students of all
  ongoing classes together); ``model_inputs`` gives the daily flow the right frame per version.
* ``read_dataset`` reads a training file of either system: lof or former ``N_`` names,
  ``Target`` or ``maxlevel``, with or without the unnamed index column.
* ``import_model`` registers a wrapped former model as a new version with its metrics on lof's
  own examples, ready to be promoted like any version.
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

from lof.errors import DataError, LofError, ModelError
from lof.features import FEATURES, LEVELS
from lof.signals import SIGNALS

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
IMPORT_EXPERIMENT = "lof-import"

assert len(FORMER_TO_LOF) == len(FEATURES) and set(FORMER_ORDER) == set(FEATURES)


# --- scaling ----------------------------------------------------------------------------------


def scale_globally(*, features: pd.DataFrame) -> pd.DataFrame:
    """Min-max scale each feature over all rows together (the former system's scaling).

    ``features`` is a features frame of every ongoing class of a day; a constant feature
    becomes 0, as in ``lof.features.scale_within_class``.
    """
    out = features.copy()
    if len(out) == 0:
        return out
    values = out[list(FEATURES)].astype(np.float64)
    low = values.min()
    span = values.max() - low
    out[list(FEATURES)] = ((values - low) / span.where(span > 0)).fillna(0.0).to_numpy()
    return out


def input_scaling(model: Any) -> str:
    """How a registered model wants its features scaled (retrained versions: within class)."""
    return str(getattr(model, "input_scaling", WITHIN_CLASS))


def model_inputs(*, model: Any, raw: pd.DataFrame, scaled: pd.DataFrame) -> pd.DataFrame:
    """The scaled features frame this model is to be fed (``scaled`` is lof's within-class)."""
    if input_scaling(model) == GLOBAL:
        return scale_globally(features=raw)
    return scaled


# --- the wrapped former model -----------------------------------------------------------------


def _former_input_names(estimator: Any) -> list[str] | None:
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

    def former_inputs(self, features: pd.DataFrame | np.ndarray) -> Any:
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


# --- former training files --------------------------------------------------------------------


def read_dataset(path: str | Path) -> pd.DataFrame:
    """Rows of a training file as retrain examples (``class_id`` -1, progress 1.0).

    Either system's header: lof's 13 names or the former ``N_`` names; the level in
    ``Target`` or ``maxlevel``; an unnamed first column (the former files' index) is dropped.
    """
    from lof.examples import EXAMPLE_COLUMNS, LEGACY_CLASS_ID

    path = Path(path)
    if not path.is_file():
        raise DataError(f"dataset file {path} does not exist; pass an existing --dataset file")
    try:
        frame = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    except Exception as exc:
        raise DataError(
            f"dataset file {path} cannot be read ({type(exc).__name__}); expected CSV or parquet "
            "with a Target (or maxlevel) column and the 13 features"
        ) from None
    frame = frame.loc[:, [not str(c).startswith("Unnamed: ") and str(c) != "" for c in frame]]
    frame = frame.rename(columns={c: FORMER_TO_LOF[c] for c in frame.columns if c in FORMER_TO_LOF})
    targets = [c for c in TARGET_COLUMNS if c in frame.columns]
    target = targets[0] if targets else TARGET_COLUMNS[0]
    missing = [c for c in (target, *FEATURES) if c not in frame.columns]
    if missing:
        raise DataError(
            f"dataset file {path} lacks column(s) {', '.join(missing)}; expected Target or "
            "maxlevel and the 13 features by lof name or former N_ name"
        )
    if len(targets) > 1:
        raise DataError(
            f"dataset file {path} has both Target and maxlevel columns; keep the one to train on"
        )
    values = frame[list(FEATURES)].apply(pd.to_numeric, errors="coerce")
    level = pd.to_numeric(frame[target], errors="coerce")
    bad = values.isna().any(axis=1) | ~level.isin(list(LEVELS))
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"dataset file {path}: {int(bad.sum())} row(s) have a non-numeric feature or a "
            f"{target} outside 1-5, first at data row {first + 1}; fix or drop them"
        )
    out = values.astype(float)
    out.insert(0, "progress", 1.0)
    out.insert(0, "semester", "legacy")
    out.insert(0, "user_id", np.arange(len(frame), dtype="int64"))
    out.insert(0, "class_id", LEGACY_CLASS_ID)
    out["label"] = level.astype("int64")
    for name in SIGNALS:  # a former file has the 13 only: a retrain with it trains on those
        out[name] = np.nan
    out["required_level"] = 0  # unknown: dataset rows are only ever trained on, never scored
    return out[list(EXAMPLE_COLUMNS)].reset_index(drop=True)


# --- import -----------------------------------------------------------------------------------


def evaluate(*, model: Any, examples: pd.DataFrame, threshold: float) -> dict[str, float]:
    """Metrics of a model on labelled examples, exactly as a retrained candidate is scored."""
    from lof import model as lof_model

    return lof_model.evaluate(model=model, examples=examples, threshold=threshold)


@dataclass
class ImportResult:
    """What an import registered; ``describe`` is what the CLI prints."""

    version: str
    run_id: str
    source: str
    sha256: str
    input_scaling: str
    metrics: dict[str, float]
    n_examples: int
    n_classes: int
    semesters: list[str]
    pickled_with: str | None = None

    def describe(self) -> str:
        from lof.model import SELECTION_METRIC

        score = self.metrics.get(f"holdout.{SELECTION_METRIC}", float("nan"))
        made = f", pickled with scikit-learn {self.pickled_with}" if self.pickled_with else ""
        return (
            f"registered {self.source} (sha256 {self.sha256[:12]}{made}) as version "
            f"{self.version}, fed {self.input_scaling.replace('_', '-')} scaled features; "
            f"{SELECTION_METRIC} {score:.3f} on the held-out classes of "
            f"{', '.join(self.semesters)} ({self.n_examples} lof examples from "
            f"{self.n_classes} classes); promote it with `lof promote --version {self.version}` "
            "(add --force if a Production version would otherwise have to be beaten)"
        )


def _prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in metrics.items() if not np.isnan(float(v))}


@dataclass(frozen=True)
class _Scored:
    """An imported model's scores on lof's examples, and what it was scored on."""

    semesters: list[str]
    examples: pd.DataFrame
    holdout: pd.DataFrame
    holdout_kind: str
    held: dict[str, float]
    metrics: dict[str, float]


def _score_on_lof_examples(*, settings: Any, model: LegacyModel, training_set: Any) -> _Scored:
    """Score ``model`` as a retrained candidate is: on the holdout a retrain would keep now
    (all examples when there is none) and on every example; DataError when there is none."""
    from lof import examples as example_set
    from lof import selection, training

    if training_set is None:
        training_set = training.build_training_set(settings=settings, semesters=None, as_of=None)
    examples = training_set.examples[
        training_set.examples["class_id"] != example_set.LEGACY_CLASS_ID
    ]
    if examples.empty:
        raise DataError(
            "LEB2 has no labelled examples in its finished semesters, so the imported model "
            "cannot be scored; nothing was registered; check the classes' assessed records"
        )
    _, holdout, kind = selection.split_holdout(examples=examples, classes=training_set.classes)
    if holdout.empty:  # no time holdout: the imported model never fitted lof's examples
        holdout, kind = examples, "all-examples"
    threshold = settings.risk_threshold
    held = evaluate(model=model, examples=holdout, threshold=threshold)
    every = evaluate(model=model, examples=examples, threshold=threshold)
    return _Scored(
        semesters=list(training_set.semesters),
        examples=examples,
        holdout=holdout,
        holdout_kind=kind,
        held=held,
        metrics=_prefixed("holdout.", held) | _prefixed("all.", every),
    )


def _estimator_name(estimator: Any) -> str:
    return f"{type(estimator).__module__}.{type(estimator).__name__}"


def _run_params(
    *, settings: Any, loaded: LoadedClassifier, model: LegacyModel, scored: _Scored
) -> dict[str, Any]:
    """The import run's parameters: where the model came from and what it was scored on."""
    return {
        "source_file": loaded.path.name,
        "source_sha256": loaded.sha256,
        "estimator": _estimator_name(loaded.estimator),
        "pickled_with": loaded.pickled_with or "",
        "input_scaling": model.input_scaling,
        "semesters": ",".join(scored.semesters),
        "holdout_kind": scored.holdout_kind,
        "risk_threshold": settings.risk_threshold,
        "n_examples": len(scored.examples),
        "n_holdout": len(scored.holdout),
    }


def _version_tags(
    *, settings: Any, loaded: LoadedClassifier, model: LegacyModel, scored: _Scored
) -> dict[str, Any]:
    """The registered version's tags, with the holdout figures a retrained version carries."""
    return {
        "imported": "true",
        "source_file": loaded.path.name,
        "source_sha256": loaded.sha256,
        "pickled_with": loaded.pickled_with or "",
        "estimator": _estimator_name(loaded.estimator),
        "input_scaling": model.input_scaling,
        "semester": ",".join(scored.semesters),
        "holdout_kind": scored.holdout_kind,
        "label_rule": settings.label_rule,
        "candidate": "imported",
        **{
            k: scored.held.get(k, float("nan"))
            for k in ("macro_f1_at_50", "macro_f1", "at_risk_recall", "brier")
        },
    }


def _log_and_register(
    *,
    settings: Any,
    loaded: LoadedClassifier,
    model: LegacyModel,
    scored: _Scored,
    description: str,
) -> tuple[str, str]:
    """Log the import run (metrics, model, holdout) and register its model: (version, run id);
    an empty ``description`` becomes "imported from <file>"."""
    import mlflow

    from lof import examples as example_set
    from lof import registry, tracking

    source = loaded.path.name
    experiment_id = tracking.ensure_experiment(settings=settings, name=IMPORT_EXPERIMENT)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"import-{source}") as run:
        mlflow.set_tags({"lof.imported": "true", "lof.source_sha256": loaded.sha256})
        mlflow.log_params(_run_params(settings=settings, loaded=loaded, model=model, scored=scored))
        mlflow.log_metrics(scored.metrics)
        input_example = scored.holdout[list(FEATURES)].head(5).astype(float)
        input_example["required_level"] = scored.holdout["required_level"].head(5).astype("int64")
        logged = registry.log_model(model=model, input_example=input_example)
        registry.log_holdout(
            holdout=scored.holdout[list(example_set.HOLDOUT_COLUMNS)], settings=settings
        )
        version = registry.register_version(
            settings=settings,
            model_uri=logged.model_uri,
            run_id=run.info.run_id,
            tags=_version_tags(settings=settings, loaded=loaded, model=model, scored=scored),
            model_id=logged.model_id,
            description=description or f"imported from {source}",
        )
        mlflow.set_tag("lof.registered_version", version)
    return version, run.info.run_id


def import_model(
    *,
    settings: Any,
    path: str | Path,
    description: str | None = None,
    training_set: Any = None,
) -> ImportResult:
    """Register a former model file as a new version of ``settings.model_name`` (not promoted).

    The wrapped model is scored on lof's own examples (every finished semester in LEB2) with
    the metrics a retrained candidate gets: on the classes a retrain would hold out now
    (``holdout.*``, logged with the version, so the promote gate has data) and on all of them
    (``all.*``; the former model saw none of them). Nothing is registered unless every step
    before succeeded.
    """
    from lof import registration, registry
    from lof.config import redact_url

    loaded = load_classifier(path)
    text = check_description(description)
    wrapped = LegacyModel(loaded.estimator, input_scaling=DEFAULT_SCALING)
    scored = _score_on_lof_examples(settings=settings, model=wrapped, training_set=training_set)
    source = loaded.path.name

    registry.use_tracking_server(settings)
    try:
        version, run_id = _log_and_register(
            settings=settings, loaded=loaded, model=wrapped, scored=scored, description=text
        )
    except Exception as exc:
        if isinstance(exc, LofError) or not registration.mlflow_unavailable(exc):
            raise  # a bug or a data problem keeps its own message and traceback
        raise ModelError(
            f"import of {source} could not reach MLflow at "
            f"{redact_url(settings.mlflow_tracking_uri)} ({type(exc).__name__}); nothing was "
            "registered; check MLFLOW_TRACKING_URI and rerun `lof import-model`"
        ) from exc
    return ImportResult(
        version=version,
        run_id=run_id,
        source=source,
        sha256=loaded.sha256,
        input_scaling=wrapped.input_scaling,
        metrics=scored.metrics,
        n_examples=len(scored.examples),
        n_classes=int(scored.examples["class_id"].nunique()),
        semesters=scored.semesters,
        pickled_with=loaded.pickled_with,
    )
