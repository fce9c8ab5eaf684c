"""Register small models in a real MLflow registry the way retrain does (tags, holdout)."""

from __future__ import annotations

import hashlib
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from lof.core.config import Settings
from lof.features.definitions import FEATURES
from lof.registry import client as registry

EXPERIMENT = "lof-retrain"


def examples(*, n: int, seed: int) -> pd.DataFrame:
    """Scaled features whose label follows avglevel, at the four progress points."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.random((n, len(FEATURES))), columns=list(FEATURES))
    frame.insert(0, "user_id", np.arange(n))
    frame.insert(0, "class_id", 100 + np.arange(n) % 4)
    frame["progress"] = np.resize([0.25, 0.5, 0.75, 1.0], n)
    frame["label"] = np.clip((frame["avglevel"] * 5).astype(int) + 1, 1, 5)
    frame["required_level"] = 3
    return frame


def fitted(kind: str, *, seed: int = 0) -> Any:
    """``good``: learns the label; ``bad``: always the most frequent level."""
    train = examples(n=400, seed=seed + 100)
    estimator = (
        LogisticRegression(max_iter=500)
        if kind == "good"
        else DummyClassifier(strategy="most_frequent")
    )
    model = Pipeline([("model", estimator)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(train[list(FEATURES)], train["label"])
    return model


def register(settings: Settings, kind: str, *, seed: int = 0, holdout: bool = True) -> str:
    """Log, store the holdout and register a new version; returns the version number.

    Written with MLflow's own API (as retrain does by convention) so these tests do not move
    with the retrain code.
    """
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    client = mlflow.MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    local = str(settings.mlflow_tracking_uri).startswith("sqlite")
    if local and client.get_experiment_by_name(EXPERIMENT) is None:
        location = (settings.home / "mlartifacts").as_uri()
        client.create_experiment(EXPERIMENT, artifact_location=location)
    mlflow.set_experiment(EXPERIMENT)
    model = fitted(kind, seed=seed)
    held_out = examples(n=200, seed=seed + 7)
    example = held_out[list(FEATURES)].head(3)
    with mlflow.start_run(run_name=f"candidate-{kind}") as run, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(example, model.predict_proba(example)),
            input_example=example,
            pip_requirements=["scikit-learn", "skops"],
        )
        if holdout:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "holdout.parquet"
                held_out.to_parquet(path, index=False)
                mlflow.log_artifact(str(path), artifact_path="holdout")
    try:
        client.get_registered_model(settings.model_name)
    except Exception:
        client.create_registered_model(settings.model_name)
    created = client.create_model_version(
        name=settings.model_name,
        source=info.model_uri,
        run_id=run.info.run_id,
        model_id=info.model_id,  # a tracking server refuses a models:/ source without it
        tags={
            "semester": "1/2022",
            "training_fingerprint": hashlib.sha256(kind.encode()).hexdigest(),
            "selection_metric": "macro_f1_at_50",
            "candidate": kind,
            "holdout_kind": "time",
        },
    )
    return str(created.version)


def version(settings: Settings, number: str) -> Any:
    return registry.client(settings=settings).get_model_version(settings.model_name, number)


def model_file_key(settings: Settings, number: str, *, prefix: str = "mlflow") -> str:
    """The S3 key the version's model file has under an artifact root ``s3://bucket/prefix``."""
    info = version(settings, number)
    model_id = info.source.removeprefix("models:/")
    logged = registry.client(settings=settings).get_logged_model(model_id)
    return f"{prefix}/{logged.experiment_id}/models/{model_id}/artifacts/model.skops"
