"""MLflow adapter: the model registry lof trains into, promotes in and scores from.

Conventions (retrain and promote rely on them): the registered model is
``settings.model_name``; each version's run holds the model under ``model`` and the held-out
examples under ``holdout/holdout.parquet``; retrain only registers versions, promotion alone
moves the alias ``production`` (``production_alias``) and, in step with it, the ``Production``
stage (archiving the previous version) for readers of the stage. The alias is the source of
truth, as in MLflow 3 (stages are deprecated since MLflow 2.9); the stage follows it.

This module alone talks to the registry, through a client built from the settings;
``use_tracking_server`` is the one place that points MLflow's process-wide fluent API at the
server (runs logged by retrain, import and daily scoring). MlflowClient retries HTTP errors
itself, so nothing here retries again.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from lof.core.config import Settings, redact_url
from lof.core.errors import LofError, ModelError
from lof.core.retry import mlflow_unavailable
from lof.governance import pseudonyms
from lof.model.classifier import Classifier

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models.model import ModelInfo

log = logging.getLogger(__name__)


@contextmanager
def mlflow_reachable(settings: Settings, *, what: str, rerun: str) -> Iterator[None]:
    """Turn "MLflow could not be reached" inside the block into one ModelError line saying
    what was not done and what to rerun; a LofError or any other failure (a bug, a data
    problem) keeps its own message and traceback."""
    try:
        yield
    except Exception as exc:
        if isinstance(exc, LofError) or not mlflow_unavailable(exc):
            raise
        raise ModelError(
            f"{what} could not reach MLflow at {redact_url(settings.mlflow_tracking_uri)} "
            f"({type(exc).__name__}); nothing was registered; check MLFLOW_TRACKING_URI and "
            f"rerun `{rerun}`"
        ) from exc


HOLDOUT_ARTIFACT = "holdout/holdout.parquet"
MODEL_ARTIFACT = "model"
TRAINING_CLASSES_TAG = "training_class_ids"
"""Version tag: the LEB2 class ids the registered model was fitted on (``encode_class_ids``)."""
EVALUATION_CLASSES_TAG = "evaluation_class_ids"
"""Version tag: the class ids of the fit that did not see the holdout (empty: none logged)."""
HOLDOUT_CLASSES_TAG = "holdout_class_ids"
EVALUATION_MODEL_TAG = "evaluation_model_uri"
THRESHOLD_TAG = "risk_threshold"

MODEL_DESCRIPTION = (
    "lof's at-risk model for outcome-based (OBEM) classes: from 13 engagement and assessment "
    "features of a student in a class on a day, the probability of each final learning-outcome "
    "level (1-5) and risk_prob, the calibrated probability of ending below the class's "
    "required level. Production is the version with the alias 'production' (the Production "
    "stage follows it). `lof retrain` registers a version per run, named by its semesters in "
    "its description; the promotion gate (held-out risk ROC-AUC at 25/50% of the course) "
    "promotes it, on its upload event, `lof promote` or the alias set in this UI."
)
"""The registered model's description in the MLflow UI."""
NOT_PROMOTED = "Not promoted: the upload event, `lof promote` or the alias runs the gate."
"""The end of a new version's description, replaced by how and why it was promoted."""


def encode_class_ids(ids: Iterable[int]) -> str:
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


def bound_http(settings: Settings) -> None:
    """Bound MlflowClient's own HTTP retries by the LOF_MLFLOW_HTTP_* settings.

    MLflow reads MLFLOW_HTTP_REQUEST_* at each request; its defaults (7 retries, 120 s timeout)
    hold a run for about 16 minutes when the registry is down. These are the only retries of
    an MLflow call, so the settings win over values already in the environment.
    """
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(settings.mlflow_http_retries)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = str(settings.mlflow_http_backoff_factor)
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(settings.mlflow_http_timeout_seconds)


def client(*, settings: Settings) -> MlflowClient:
    """An MlflowClient on the settings' tracking and registry URI (no process-wide state)."""
    from mlflow import MlflowClient

    bound_http(settings)
    uri = settings.mlflow_tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def production_alias(settings: Settings) -> str:
    """The alias that mirrors the stage (``Production`` -> ``production``): one name for all."""
    return settings.model_stage.lower()


def use_tracking_server(settings: Settings) -> None:
    """Point MLflow's fluent API (``mlflow.start_run``, ``log_model``) at the settings' server.

    The one place that changes the process-wide URIs; registry reads and writes use a client,
    and only model downloads (which MLflow resolves through these URIs) call it here.
    """
    import mlflow

    bound_http(settings)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)


def registry_errors() -> tuple[type[BaseException], ...]:
    """What a registry call raises when the server cannot be reached or refuses the request
    (MLflow wraps network failures in MlflowException); anything else is a bug and keeps its
    own traceback."""
    import requests
    from mlflow.exceptions import MlflowException

    return (MlflowException, requests.RequestException)


def not_found(exc: BaseException) -> bool:
    """The registry says the model, version, alias or run does not exist (code or HTTP 404)."""
    from mlflow.exceptions import MlflowException

    if not isinstance(exc, MlflowException):
        return False
    return exc.error_code == "RESOURCE_DOES_NOT_EXIST" or exc.get_http_status_code() == 404


def _where(settings: Settings) -> str:
    return f"registry {settings.redacted(settings.mlflow_tracking_uri or '')}"


# --- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionState:
    """One registered version as promotion sees it."""

    version: str
    stage: str
    event_id: str | None = None
    """The ``promotion_event_id`` tag: the event that promoted it (None: none recorded)."""


@dataclass(frozen=True)
class RegistryState:
    """The registry's answer to "which version is in Production", read once.

    ``production`` is the one rule every reader uses: the version the alias points at, and,
    when the alias is not set (a registry promoted by stage only), the highest version at the
    stage.
    """

    stage: str
    versions: tuple[VersionState, ...] = ()
    stage_version: str | None = None
    alias_version: str | None = None

    @property
    def production(self) -> str | None:
        return self.alias_version if self.alias_version is not None else self.stage_version

    def serving_before(self, candidate: str) -> str | None:
        """The version a promotion of ``candidate`` replaces: Production, or, when a person
        already moved the alias onto ``candidate`` in the MLflow UI, the version the promote
        flow last put at the stage (what the gate compares with, and the alias goes back to)."""
        if self.production != str(candidate):
            return self.production
        return self.stage_version if self.stage_version != str(candidate) else None

    def get(self, version: str) -> VersionState | None:
        return next((v for v in self.versions if v.version == str(version)), None)


def all_versions(
    *, settings: Settings, mlflow_client: MlflowClient | None = None
) -> list[ModelVersion]:
    """Every registered version of ``settings.model_name`` (empty if the model is unknown)."""
    mlflow_client = mlflow_client or client(settings=settings)
    name = settings.model_name.replace("'", "\\'")
    try:
        return list(mlflow_client.search_model_versions(f"name='{name}'"))
    except Exception as exc:
        if not_found(exc):
            return []
        raise


def _alias_version(*, settings: Settings, mlflow_client: MlflowClient) -> str | None:
    """The version the alias points at; None when the model or the alias does not exist (the
    registry answers an unset alias of a known model with INVALID_PARAMETER_VALUE)."""
    from mlflow.exceptions import MlflowException

    alias = production_alias(settings)
    try:
        return str(mlflow_client.get_model_version_by_alias(settings.model_name, alias).version)
    except MlflowException as exc:
        if not_found(exc) or exc.error_code == "INVALID_PARAMETER_VALUE":
            return None
        raise


def read_state(*, settings: Settings, mlflow_client: MlflowClient | None = None) -> RegistryState:
    """The versions, the one at ``settings.model_stage`` and the alias's, or a ModelError."""
    mlflow_client = mlflow_client or client(settings=settings)
    stage = settings.model_stage
    try:
        found = all_versions(settings=settings, mlflow_client=mlflow_client)
        alias = _alias_version(settings=settings, mlflow_client=mlflow_client)
    except registry_errors() as exc:
        raise ModelError(
            f"cannot read model {settings.model_name!r} at stage {stage} from "
            f"{_where(settings)}: {type(exc).__name__}; check MLFLOW_TRACKING_URI"
        ) from exc
    versions = tuple(
        sorted(
            (
                VersionState(
                    version=str(v.version),
                    stage=v.current_stage or "",
                    event_id=(v.tags or {}).get("promotion_event_id") or None,
                )
                for v in found
            ),
            key=lambda v: int(v.version),
        )
    )
    at_stage = [v.version for v in versions if v.stage == stage]
    return RegistryState(
        stage=stage,
        versions=versions,
        stage_version=at_stage[-1] if at_stage else None,
        alias_version=alias,
    )


def production_version(
    *, settings: Settings, mlflow_client: MlflowClient | None = None
) -> str | None:
    """The version the alias points at (or, failing that, the one at ``settings.model_stage``),
    None if none."""
    return read_state(settings=settings, mlflow_client=mlflow_client).production


def _sklearn_model(*, settings: Settings, uri: str) -> Classifier:
    """Download the model at ``uri`` through the settings' server, then load the local copy.

    MLflow resolves a version's ``models:/m-...`` source (a logged model) through the
    process-wide tracking URI whatever ``tracking_uri`` says, hence ``use_tracking_server``.
    """
    import mlflow.artifacts
    import mlflow.sklearn

    use_tracking_server(settings)
    tracking = settings.mlflow_tracking_uri
    with tempfile.TemporaryDirectory(prefix="lof-model-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=tmp, tracking_uri=tracking, registry_uri=tracking
        )
        return mlflow.sklearn.load_model(local)


def load_model_version(*, settings: Settings, version: str) -> Classifier:
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


def load_model_uri(*, settings: Settings, uri: str) -> Classifier:
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


def load_production_model(*, settings: Settings) -> tuple[Classifier, str]:
    """The Production model (``production_version``) and its version, or a ModelError saying
    what to do."""
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
        return mlflow_client.get_model_version(settings.model_name, str(version))
    except registry_errors() as exc:
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
            path = mlflow.artifacts.download_artifacts(
                run_id=info.run_id,
                artifact_path=HOLDOUT_ARTIFACT,
                dst_path=tmp,
                tracking_uri=settings.mlflow_tracking_uri,
                registry_uri=settings.mlflow_tracking_uri,
            )
            return pd.read_parquet(path)
        except Exception as exc:
            raise ModelError(
                f"version {version} of {settings.model_name!r} has no readable "
                f"{HOLDOUT_ARTIFACT} in run {info.run_id} ({type(exc).__name__}); "
                "it was not registered by `lof retrain`; retrain or promote with --force"
            ) from exc


def artifact_owner_exists(*, settings: Settings, model_id: str | None, run_id: str | None) -> bool:
    """Whether MLflow knows the logged model (or, without one, the run) artifacts belong to."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client(settings=settings)
    try:
        if model_id:
            mlflow_client.get_logged_model(model_id)
        else:
            mlflow_client.get_run(run_id or "")
    except MlflowException as exc:
        if not_found(exc) or exc.error_code == "INVALID_PARAMETER_VALUE":
            return False
        raise
    return True


def model_files(*, settings: Settings, version: str) -> tuple[set[str], str | None]:
    """The file names stored with a version's MLflow model, and its ``MLmodel`` text (None: not
    stored yet)."""
    import mlflow.artifacts

    use_tracking_server(settings)  # as in _sklearn_model: the location may need it
    tracking = settings.mlflow_tracking_uri
    location = client(settings=settings).get_model_version_download_uri(
        settings.model_name, str(version)
    )
    names = {
        info.path.rsplit("/", 1)[-1]
        for info in mlflow.artifacts.list_artifacts(artifact_uri=location, tracking_uri=tracking)
    }
    if "MLmodel" not in names:
        return names, None
    with tempfile.TemporaryDirectory(prefix="lof-mlmodel-") as tmp:
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{location.rstrip('/')}/MLmodel",
            dst_path=tmp,
            tracking_uri=tracking,
            registry_uri=tracking,
        )
        return names, Path(path).read_text()


def has_holdout(*, settings: Settings, run_id: str) -> bool:
    """Whether a run stored held-out examples at ``HOLDOUT_ARTIFACT``."""
    folder, _, file_name = HOLDOUT_ARTIFACT.rpartition("/")
    listed = client(settings=settings).list_artifacts(run_id, folder)
    return any(item.path.endswith(file_name) for item in listed)


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


def untrusted_types(model: Classifier) -> list[str]:
    """Types skops would refuse to load from this model (to trust them explicitly)."""
    import skops.io

    return list(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def log_model(
    *, model: Classifier, input_example: pd.DataFrame, name: str = MODEL_ARTIFACT
) -> ModelInfo:
    """Log a fitted model in the active run (skops format, signature, input example).

    The scikit-learn flavor is what lof loads; the pyfunc serves ``risk_prob`` and the level
    probabilities from the model's features and ``required_level`` (``lof.pyfunc``), and the
    signature names exactly those columns. ``input_example`` holds the model's features and,
    best, each row's ``required_level`` (else the middle level stands in).
    """
    import mlflow.sklearn
    from mlflow.models import Model, infer_signature

    from lof.registry import pyfunc

    example = input_example.copy()
    if pyfunc.REQUIRED_LEVEL not in example.columns:
        example[pyfunc.REQUIRED_LEVEL] = 3
    example = example[pyfunc.input_columns(model)]
    example[pyfunc.REQUIRED_LEVEL] = example[pyfunc.REQUIRED_LEVEL].astype("int64")
    trusted = untrusted_types(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "integer column": required_level is never missing
        signature = infer_signature(example, pyfunc.served_frame(model=model, data=example))
        return Model.log(
            artifact_path=None,
            name=name,
            flavor=pyfunc,
            flavor_name=mlflow.sklearn.FLAVOR_NAME,
            sk_model=model,
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
            signature=signature,
            input_example=example,
            pip_requirements=pip_requirements(),
            skops_trusted_types=trusted or None,
        )


def log_holdout(*, holdout: pd.DataFrame, settings: Settings) -> None:
    """Store the held-out examples with the active run, students by pseudonym only (the
    gate scores rows; it never reads who they are)."""
    import mlflow

    holdout = pseudonyms.for_mlflow(holdout, pseudonyms.optional(settings))
    with tempfile.TemporaryDirectory(prefix="lof-holdout-") as tmp:
        path = Path(tmp) / Path(HOLDOUT_ARTIFACT).name
        holdout.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=str(Path(HOLDOUT_ARTIFACT).parent))


def register_version(
    *,
    settings: Settings,
    model_uri: str,
    run_id: str,
    tags: Mapping[str, object],
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
            registered = mlflow_client.get_registered_model(name)
        except Exception as exc:
            if not not_found(exc):
                raise
            mlflow_client.create_registered_model(name, description=MODEL_DESCRIPTION)
        else:
            if not registered.description:
                mlflow_client.update_registered_model(name, description=MODEL_DESCRIPTION)

        def create_once() -> ModelVersion:
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

        version = create_once()
    except registry_errors() as exc:
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
    note: str = "",
) -> None:
    """Point the alias at ``version``, then move it to the configured stage (archiving the
    others): the alias is the truth, so a failure after it leaves a state the next promotion
    of ``version`` completes (``promotion.already_done`` wants both)."""
    name, stage = settings.model_name, settings.model_stage
    mlflow_client = client(settings=settings)
    version_info(settings=settings, version=version)

    def move() -> None:
        mlflow_client.set_registered_model_alias(name, production_alias(settings), str(version))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow_client.transition_model_version_stage(
                name, str(version), stage, archive_existing_versions=True
            )
        tags = {
            "promoted_by": promoted_by,
            "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "promotion_reason": reason,
            "promotion_event_id": event_id or "",
        }
        for key, value in tags.items():
            mlflow_client.set_model_version_tag(name, str(version), key, value)
        described = mlflow_client.get_model_version(name, str(version)).description or ""
        promoted = (
            f"Promoted to {stage} on {tags['promoted_at'][:10]} by {promoted_by} ({reason})"
            + (f": {note}" if note else ".")
        )
        mlflow_client.update_model_version(
            name, str(version), description=_promoted_text(described, promoted)
        )

    try:
        move()
    except registry_errors() as exc:
        raise ModelError(
            f"cannot move version {version} of {name!r} to {stage} in {_where(settings)}: "
            f"{type(exc).__name__}; rerun `lof promote --version {version}`"
        ) from exc


def _promoted_text(described: str, promoted: str) -> str:
    """The version's description with how and why it was promoted, in place of the line that
    said it was not (the latest promotion only: a version promoted again is described anew)."""
    kept = described.split(NOT_PROMOTED)[0].split("\n\nPromoted to ")[0].rstrip()
    return f"{kept}\n\n{promoted}" if kept else promoted


def point_alias(*, settings: Settings, version: str | None) -> None:
    """Point the alias at ``version`` (None: remove it), e.g. back at Production after a refusal."""
    mlflow_client = client(settings=settings)
    name, alias = settings.model_name, production_alias(settings)
    try:
        if version is None:
            mlflow_client.delete_registered_model_alias(name, alias)
        else:
            mlflow_client.set_registered_model_alias(name, alias, str(version))
    except registry_errors() as exc:
        raise ModelError(
            f"cannot point alias {alias!r} of {name!r} at {version or 'nothing'} in "
            f"{_where(settings)}: {type(exc).__name__}; check MLFLOW_TRACKING_URI"
        ) from exc
