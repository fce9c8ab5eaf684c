"""Importing a former model: scored on lof's own examples, logged and registered in MLflow.

``import_model`` wraps a former model file (``lof.legacy``), scores it on the held-out classes
of lof's examples exactly as a retrained candidate is scored, logs the run in the import
experiment and registers it as a new version, ready to be promoted like any version.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lof.core.config import Settings
from lof.core.errors import DataError
from lof.features.definitions import FEATURES
from lof.legacy import (
    DEFAULT_SCALING,
    LegacyModel,
    LoadedClassifier,
    check_description,
    load_classifier,
)
from lof.model.classifier import Classifier
from lof.training.examples import TrainingSet

IMPORT_EXPERIMENT = "lof-import"


def evaluate(
    *, model: Classifier, examples: pd.DataFrame, threshold: float | None
) -> dict[str, float]:
    """Metrics of a model on labelled examples, exactly as a retrained candidate is scored."""
    from lof.model import outcome as lof_model

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
        from lof.model.outcome import SELECTION_METRIC

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


def _score_on_lof_examples(
    *, settings: Settings, model: LegacyModel, training_set: TrainingSet | None
) -> _Scored:
    """Score ``model`` as a retrained candidate is: on the holdout a retrain would keep now
    (all examples when there is none) and on every example; DataError when there is none."""
    from lof.training import examples as example_set
    from lof.training import retrain as training
    from lof.training import selection

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


def _estimator_name(estimator: object) -> str:
    return f"{type(estimator).__module__}.{type(estimator).__name__}"


def _run_params(
    *, settings: Settings, loaded: LoadedClassifier, model: LegacyModel, scored: _Scored
) -> dict[str, str | float | None]:
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
    *, settings: Settings, loaded: LoadedClassifier, model: LegacyModel, scored: _Scored
) -> dict[str, str | float]:
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
    settings: Settings,
    loaded: LoadedClassifier,
    model: LegacyModel,
    scored: _Scored,
    description: str,
) -> tuple[str, str]:
    """Log the import run (metrics, model, holdout) and register its model: (version, run id);
    an empty ``description`` becomes "imported from <file>"."""
    import mlflow

    from lof.registry import client as registry
    from lof.registry import tracking
    from lof.training import examples as example_set

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
    settings: Settings,
    path: str | Path,
    description: str | None = None,
    training_set: TrainingSet | None = None,
) -> ImportResult:
    """Register a former model file as a new version of ``settings.model_name`` (not promoted).

    The wrapped model is scored on lof's own examples (every finished semester in LEB2) with
    the metrics a retrained candidate gets: on the classes a retrain would hold out now
    (``holdout.*``, logged with the version, so the promote gate has data) and on all of them
    (``all.*``; the former model saw none of them). Nothing is registered unless every step
    before succeeded.
    """
    from lof.registry import client as registry

    loaded = load_classifier(path)
    text = check_description(description)
    wrapped = LegacyModel(loaded.estimator, input_scaling=DEFAULT_SCALING)
    scored = _score_on_lof_examples(settings=settings, model=wrapped, training_set=training_set)
    source = loaded.path.name

    registry.use_tracking_server(settings)
    with registry.mlflow_reachable(settings, what=f"import of {source}", rerun="lof import-model"):
        version, run_id = _log_and_register(
            settings=settings, loaded=loaded, model=wrapped, scored=scored, description=text
        )
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
