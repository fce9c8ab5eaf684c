"""MLflow adapter: the model registry lof trains into, promotes in and scores from.

Conventions (retrain and promote rely on them): the registered model is
``settings.model_name``; each version's run holds the model under ``model`` and the held-out
examples under ``holdout/holdout.parquet``; retrain only registers versions, promotion alone
moves the ``Production`` stage (archiving the previous one) and the ``production`` alias.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from lof.config import Settings
from lof.errors import ModelError
from lof.retry import call_with_retries

log = logging.getLogger(__name__)
T = TypeVar("T")

HOLDOUT_ARTIFACT = "holdout/holdout.parquet"
MODEL_ARTIFACT = "model"
PRODUCTION_ALIAS = "production"
TRAINING_CLASSES_TAG = "training_class_ids"
"""Version tag: the LEB2 class ids the registered model was fitted on (``encode_class_ids``)."""
EVALUATION_CLASSES_TAG = "evaluation_class_ids"
"""Version tag: the class ids of the fit that did not see the holdout (empty: none logged)."""
HOLDOUT_CLASSES_TAG = "holdout_class_ids"
EVALUATION_MODEL_TAG = "evaluation_model_uri"
THRESHOLD_TAG = "risk_threshold"


def encode_class_ids(ids: Any) -> str:
    """Sorted ids as compact ranges (``3-7,9``): tags stay short for thousands of classes."""
    values = sorted({int(v) for v in ids})
    parts: list[str] = []
    start = prev = None
    for value in values:
        if start is None or prev is None:
            start = prev = value
        elif value == prev + 1:
            prev = value
        else:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = prev = value
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(parts)


def decode_class_ids(text: str | None) -> set[int] | None:
    """The ids of ``encode_class_ids``; None when the tag is absent (version from before)."""
    if text is None:
        return None
    out: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        low, _, high = (
            part.rpartition("-")
            if part.count("-") == 1 and part[0] != "-"
            else (
                "",
                "",
                part,
            )
        )
        if low:
            out.update(range(int(low), int(high) + 1))
        else:
            out.add(int(high))
    return out


def client(*, settings: Settings) -> Any:
    """An MlflowClient on the settings' tracking and registry URI."""
    from mlflow import MlflowClient

    uri = settings.mlflow_tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def is_transient(exc: BaseException) -> bool:
    """HTTP 429/5xx and dropped connections to a tracking server are worth a retry."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    name = type(exc).__name__
    if name in ("ConnectionError", "ReadTimeout", "ConnectTimeout", "ChunkedEncodingError"):
        return True
    if isinstance(exc, MlflowException):
        code = str(getattr(exc, "error_code", ""))
        text = str(exc)
        return code in ("TEMPORARILY_UNAVAILABLE", "RESOURCE_EXHAUSTED") or any(
            marker in text
            for marker in ("429", "500", "502", "503", "504", "Max retries", "Connection")
        )
    return False


def call(fn: Callable[[], T], *, what: str) -> T:
    """Call the tracking server, retrying what is transient with bounded backoff."""
    return call_with_retries(fn, is_transient=is_transient, attempts=4, max_delay=8.0, what=what)


def _where(settings: Settings) -> str:
    return f"registry {settings.redacted(settings.mlflow_tracking_uri or '')}"


def not_found(exc: BaseException) -> bool:
    from mlflow.exceptions import MlflowException

    return isinstance(exc, MlflowException) and (
        "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", ""))
        or "not found" in str(exc).lower()
        or "does not exist" in str(exc).lower()
    )


# --- reading ----------------------------------------------------------------------------------


def production_version(*, settings: Settings) -> str | None:
    """The version at ``settings.model_stage`` (or, failing that, its alias), None if none."""
    mlflow_client = client(settings=settings)
    name, stage = settings.model_name, settings.model_stage

    def find() -> str | None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                versions = mlflow_client.get_latest_versions(name, stages=[stage])
        except Exception as exc:
            if not_found(exc):
                return None
            raise
        if versions:
            return str(max(int(v.version) for v in versions))
        try:
            return str(mlflow_client.get_model_version_by_alias(name, stage.lower()).version)
        except Exception as exc:
            if not_found(exc):
                return None
            raise

    try:
        return call(find, what=f"find {name} at {stage}")
    except Exception as exc:
        raise ModelError(
            f"cannot read model {name!r} at stage {stage} from {_where(settings)}: "
            f"{type(exc).__name__}; check MLFLOW_TRACKING_URI"
        ) from exc


def _sklearn_model(*, settings: Settings, uri: str) -> Any:
    import mlflow.sklearn

    def load() -> Any:
        mlflow.set_registry_uri(settings.mlflow_tracking_uri)
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return mlflow.sklearn.load_model(uri)

    return call(load, what=f"load {uri}")


def load_model_version(*, settings: Settings, version: str) -> Any:
    """The scikit-learn model of one registered version."""
    name = settings.model_name
    uri = f"models:/{name}/{version}"
    try:
        return _sklearn_model(settings=settings, uri=uri)
    except Exception as exc:
        if not_found(exc):
            raise ModelError(
                f"model {name!r} has no version {version} in {_where(settings)}; "
                "list versions in the MLflow UI or run `lof retrain`"
            ) from None
        raise ModelError(
            f"cannot load {uri} from {_where(settings)}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}; check the artifact store "
            "and MLFLOW_TRACKING_URI"
        ) from exc


def load_model_uri(*, settings: Settings, uri: str) -> Any:
    """The scikit-learn model at an MLflow model URI (e.g. a version's evaluation fit)."""
    try:
        return _sklearn_model(settings=settings, uri=uri)
    except Exception as exc:
        raise ModelError(
            f"cannot load {uri} from {_where(settings)}: {type(exc).__name__}; check the "
            "artifact store and MLFLOW_TRACKING_URI"
        ) from exc


def version_tags(*, settings: Settings, version: str) -> dict[str, str]:
    """The tags of one registered version (training classes, threshold, ...)."""
    return dict(version_info(settings=settings, version=version).tags or {})


def load_production_model(*, settings: Settings) -> tuple[Any, str]:
    """The model at ``settings.model_stage`` and its version, or a ModelError saying what to do."""
    version = production_version(settings=settings)
    if version is None:
        raise ModelError(
            f"no version of model {settings.model_name!r} is at stage {settings.model_stage} "
            f"in {_where(settings)}; run `lof retrain` then `lof promote --version N`"
        )
    return load_model_version(settings=settings, version=version), version


def version_info(*, settings: Settings, version: str) -> Any:
    """The registry's ModelVersion (tags, run_id, stage, aliases)."""
    mlflow_client = client(settings=settings)
    try:
        return call(
            lambda: mlflow_client.get_model_version(settings.model_name, str(version)),
            what=f"read version {version}",
        )
    except Exception as exc:
        if not_found(exc):
            raise ModelError(
                f"model {settings.model_name!r} has no version {version} in {_where(settings)}; "
                "run `lof retrain` or pick an existing version"
            ) from None
        raise ModelError(
            f"cannot read version {version} of {settings.model_name!r} from {_where(settings)}: "
            f"{type(exc).__name__}"
        ) from exc


def load_holdout(*, settings: Settings, version: str) -> pd.DataFrame:
    """The held-out examples logged with a version (what the promote gate scores on)."""
    import mlflow.artifacts

    info = version_info(settings=settings, version=version)
    with tempfile.TemporaryDirectory(prefix="lof-holdout-") as tmp:
        try:
            path = call(
                lambda: mlflow.artifacts.download_artifacts(
                    run_id=info.run_id,
                    artifact_path=HOLDOUT_ARTIFACT,
                    dst_path=tmp,
                    tracking_uri=settings.mlflow_tracking_uri,
                ),
                what=f"download holdout of version {version}",
            )
            return pd.read_parquet(path)
        except Exception as exc:
            raise ModelError(
                f"version {version} of {settings.model_name!r} has no readable "
                f"{HOLDOUT_ARTIFACT} in run {info.run_id} ({type(exc).__name__}); "
                "it was not registered by `lof retrain`; retrain or promote with --force"
            ) from exc


# --- writing ----------------------------------------------------------------------------------


def pip_requirements() -> list[str]:
    """Exact versions of what the model needs to load and predict."""
    import numpy
    import sklearn
    import skops

    return [
        f"scikit-learn=={sklearn.__version__}",
        f"skops=={skops.__version__}",
        f"numpy=={numpy.__version__}",
        f"pandas=={pd.__version__}",
    ]


def untrusted_types(model: Any) -> list[str]:
    """Types skops would refuse to load from this model (to trust them explicitly)."""
    import skops.io

    return list(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def log_model(*, model: Any, input_example: pd.DataFrame, name: str = MODEL_ARTIFACT) -> Any:
    """Log a fitted model in the active run (skops format, signature, input example)."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    signature = infer_signature(input_example, model.predict_proba(input_example))
    trusted = untrusted_types(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mlflow.sklearn.log_model(
            model,
            name=name,
            signature=signature,
            input_example=input_example,
            pip_requirements=pip_requirements(),
            skops_trusted_types=trusted or None,
        )


def log_holdout(*, holdout: pd.DataFrame) -> None:
    """Store the held-out examples with the active run."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="lof-holdout-") as tmp:
        path = Path(tmp) / Path(HOLDOUT_ARTIFACT).name
        holdout.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=str(Path(HOLDOUT_ARTIFACT).parent))


def register_version(
    *,
    settings: Settings,
    model_uri: str,
    run_id: str,
    tags: Mapping[str, Any],
    model_id: str | None = None,
    description: str | None = None,
) -> str:
    """Register a logged model as a new version of ``settings.model_name`` with its tags.

    The version is created with its tags in one call, so a failure leaves no untagged version;
    each attempt first looks for the run's version, so a retried call whose first try did reach
    the server registers no second one.
    """
    mlflow_client = client(settings=settings)
    name = settings.model_name
    string_tags = {str(k): str(v) for k, v in tags.items()}
    try:
        try:
            call(lambda: mlflow_client.get_registered_model(name), what=f"read {name}")
        except Exception as exc:
            if not not_found(exc):
                raise
            mlflow_client.create_registered_model(name)

        def create_once() -> Any:
            found = mlflow_client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
            if found:
                return found[0]
            return mlflow_client.create_model_version(
                name=name,
                source=model_uri,
                run_id=run_id,
                tags=string_tags,
                model_id=model_id,
                description=description,
            )

        version = call(create_once, what=f"register {name}")
    except Exception as exc:
        raise ModelError(
            f"cannot register {model_uri} as {name!r} in {_where(settings)}: "
            f"{type(exc).__name__}; check MLFLOW_TRACKING_URI and rerun `lof retrain`"
        ) from exc
    return str(version.version)


def transition_to_production(
    *,
    settings: Settings,
    version: str,
    reason: str = "manual",
    event_id: str | None = None,
    promoted_by: str = "lof promote",
) -> None:
    """Move ``version`` to the configured stage (archiving the others) and point the alias."""
    name, stage = settings.model_name, settings.model_stage
    mlflow_client = client(settings=settings)
    version_info(settings=settings, version=version)

    def move() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow_client.transition_model_version_stage(
                name, str(version), stage, archive_existing_versions=True
            )
        mlflow_client.set_registered_model_alias(name, stage.lower(), str(version))
        tags = {
            "promoted_by": promoted_by,
            "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "promotion_reason": reason,
            "promotion_event_id": event_id or "",
        }
        for key, value in tags.items():
            mlflow_client.set_model_version_tag(name, str(version), key, value)

    try:
        call(move, what=f"promote {name} v{version}")
    except Exception as exc:
        raise ModelError(
            f"cannot move version {version} of {name!r} to {stage} in {_where(settings)}: "
            f"{type(exc).__name__}; rerun `lof promote --version {version}`"
        ) from exc
