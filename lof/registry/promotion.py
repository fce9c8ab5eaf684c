"""Promotion: resolve an uploaded artifact to a registered version, gate it, move it to Production.

The promote flow, the ``lof promote`` command and the webhooks share these functions. Rules:

- An S3 key is resolved to the registered version whose artifacts it belongs to: MLflow 3 keeps a
  logged model's files under ``.../models/<model_id>/artifacts/`` (older layouts under
  ``.../<run_id>/artifacts/<path>/``). Only the ``MLmodel`` file and the serialized model file
  start a promotion; any other key is ignored with a log line.
- MLflow uploads a model in several PUTs (the model file after ``MLmodel``) and registers the
  version after the upload, so resolution and the file check wait, with a bound.
- The gate scores the candidate and the current Production version on held-out examples recorded
  at retrain (the candidate's own first) that *neither* trained on: rows of classes in either
  version's ``training_class_ids`` tag are left out. For the candidate it uses the fit that did
  not see its holdout (``evaluation_model_uri``) when the version logged one. The metric is the
  selection metric (mean risk ROC-AUC at 25% and 50%). It refuses when the candidate is worse by
  more than ``settings.promote_margin``, and when no example is left to compare on (both
  need ``--force``). A version without the tag (registered before) counts as having trained on
  no held-out class, and the report says so. A refusal changes nothing.
- Idempotent: an event already recorded on a version, or a version already at Production with
  the alias, is a no-op. S3 delivers at least once, and setting the alias from the promote flow
  fires the MLflow alias webhook again.
- An uploaded file of a version older than Production is ignored (roll back by hand); a refusal
  that the alias asked for points the alias back at Production.

``decide`` applies these rules to a request and the registry's state (``registry.read_state``)
without I/O: the promote flow reads the state, decides and acts; the webhooks reuse
``already_done``.
"""

from __future__ import annotations

import getpass
import logging
import math
import re
import socket
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote_plus

import pandas as pd
import yaml

from lof.core.config import Settings
from lof.core.errors import ModelError
from lof.model import outcome as lof_model
from lof.model.classifier import Classifier
from lof.registry import client as registry

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

EVENT_NAME = "lof.model.uploaded"
ALIAS_REASON = "mlflow-alias"
"""The reason of a promotion asked for by setting the alias in the MLflow UI (its webhook)."""
GATE_METRIC = lof_model.SELECTION_METRIC
FALLBACK_METRIC = "risk_roc_auc"
MODEL_FILE_NAMES = frozenset({"model.skops", "model.pkl", "model.cloudpickle", "model.joblib"})
TRIGGER_FILE_NAMES = MODEL_FILE_NAMES | {"MLmodel"}
REGISTRATION_WAIT_SECONDS = 30.0  # retrain registers right after the upload
FILES_WAIT_SECONDS = 120.0  # a large model file may land well after MLmodel
POLL_SECONDS = 2.0
HOLDOUT_LOOKBACK = 5

_MODEL_KEY = re.compile(r"(?:^|/)models/(?P<model_id>m-[0-9a-f]{32})/artifacts/(?P<file>[^/]+)$")
_RUN_KEY = re.compile(
    r"(?:^|/)(?P<run_id>[0-9a-f]{32})/artifacts/(?:(?P<path>.+)/)?(?P<file>[^/]+)$"
)

Status = Literal["promoted", "already", "ignored", "refused"]


@dataclass(frozen=True)
class ArtifactKey:
    """Where an S3 key sits in MLflow's artifact layout."""

    bucket: str
    key: str
    file_name: str
    model_id: str | None = None
    run_id: str | None = None
    artifact_path: str | None = None

    @property
    def starts_promotion(self) -> bool:
        return self.file_name in TRIGGER_FILE_NAMES

    @property
    def owner(self) -> str:
        if self.model_id:
            return f"logged model {self.model_id}"
        return f"run {self.run_id} ({self.artifact_path or '.'})"


@dataclass(frozen=True)
class GateReport:
    """Both versions' scores on one holdout, and the decision."""

    candidate: str
    production: str | None
    holdout_version: str | None
    metric: str
    candidate_score: float | None
    production_score: float | None
    margin: float
    rows: int
    passed: bool
    forced: bool = False
    excluded_rows: int = 0
    note: str = ""
    comparable: bool = True
    """False when no held-out row could compare the two versions (``note`` says why)."""
    fairness: str = ""
    """Why the group rule (LOF_PROMOTE_MAX_GAP_INCREASE) refused, "" when it did not."""

    def describe(self) -> str:
        if not self.comparable:
            return (
                f"gate cannot compare v{self.candidate} with Production v{self.production}: "
                f"{self.note}"
            )
        if self.production is None:
            return f"no version is at Production yet; v{self.candidate} passes the gate"
        if self.candidate_score is None or self.production_score is None:
            return f"gate skipped for v{self.candidate} (forced)"
        verdict = "passes" if self.passed else "fails"
        return (
            f"gate {verdict}: v{self.candidate} {self.metric}={self.candidate_score:.4f} vs "
            f"Production v{self.production} {self.production_score:.4f} on the holdout of "
            f"v{self.holdout_version} ({self.rows} rows of classes neither trained on, "
            f"{self.excluded_rows} left out; margin {self.margin:g})"
            + (f"; {self.note}" if self.note else "")
            + (f"; {self.fairness}" if self.fairness else "")
            + (" (forced)" if self.forced else "")
        )


@dataclass
class PromotionResult:
    """What a promotion did; ``describe`` is the line the CLI prints."""

    status: Status
    message: str
    version: str | None = None
    previous: str | None = None
    event_id: str | None = None
    gate: GateReport | None = None

    def describe(self) -> str:
        return self.message


# --- resolving an S3 object -------------------------------------------------------------------


def decode_key(key: str) -> str:
    """Decode a key still URL-encoded as S3 notifications send it ('+' is a space).

    The one decoding of S3 keys (webhooks and the promote flow): a key reaches the flow either
    raw (a Prefect Cloud webhook) or decoded (lof's webhook), so decoding is done only when a
    '%' shows the key is still encoded (moto encodes even '/'); MLflow's own keys never hold a
    literal '%'.
    """
    return unquote_plus(key) if "%" in key else key


def parse_artifact_key(*, bucket: str, key: str) -> ArtifactKey | None:
    """Place an S3 key in MLflow's artifact layout; None for an unrelated key."""
    key = decode_key(key)
    match = _MODEL_KEY.search(key)
    if match:
        return ArtifactKey(
            bucket=bucket, key=key, file_name=match["file"], model_id=match["model_id"]
        )
    match = _RUN_KEY.search(key)
    if match:
        return ArtifactKey(
            bucket=bucket,
            key=key,
            file_name=match["file"],
            run_id=match["run_id"],
            artifact_path=match["path"],
        )
    return None


def _belongs_to(version: ModelVersion, ref: ArtifactKey) -> bool:
    source = str(version.source or "")
    if ref.model_id:
        return (
            getattr(version, "model_id", None) == ref.model_id
            or source == f"models:/{ref.model_id}"
            or f"/models/{ref.model_id}/artifacts" in source
        )
    if version.run_id != ref.run_id:
        return False
    path = (ref.artifact_path or "").strip("/")
    return source.rstrip("/").endswith(f"/{ref.run_id}/artifacts/{path}".rstrip("/")) or (
        source.rstrip("/") == f"runs:/{ref.run_id}/{path}".rstrip("/")
    )


def find_version(*, settings: Settings, ref: ArtifactKey) -> str | None:
    """The registered version the artifact belongs to (highest if registered twice)."""
    matches = [
        int(v.version) for v in registry.all_versions(settings=settings) if _belongs_to(v, ref)
    ]
    return str(max(matches)) if matches else None


def artifact_is_known(*, settings: Settings, ref: ArtifactKey) -> bool:
    """Whether MLflow knows the logged model (or run) the key belongs to."""
    return registry.artifact_owner_exists(
        settings=settings, model_id=ref.model_id, run_id=ref.run_id
    )


def wait_for_version(
    *,
    settings: Settings,
    ref: ArtifactKey,
    wait_seconds: float = REGISTRATION_WAIT_SECONDS,
    poll_seconds: float = POLL_SECONDS,
) -> str | None:
    """Resolve ``ref`` to a version, polling while the upload's registration may still come."""
    deadline = time.monotonic() + wait_seconds
    while True:
        version = find_version(settings=settings, ref=ref)
        if version is not None or time.monotonic() >= deadline:
            return version
        time.sleep(poll_seconds)


def missing_model_files(*, settings: Settings, version: str) -> list[str]:
    """Files of the version's MLflow model not (yet) in the artifact store; [] when complete."""
    names, text = registry.model_files(settings=settings, version=version)
    if text is None:
        return ["MLmodel"]
    flavors = (yaml.safe_load(text) or {}).get("flavors", {})
    listed = {
        str(conf[key]).rsplit("/", 1)[-1]
        for conf, key in (
            (flavors.get("sklearn", {}), "pickled_model"),
            (flavors.get("python_function", {}), "model_path"),
        )
        if conf.get(key)
    }
    return sorted(listed - names)


def wait_for_model_files(
    *,
    settings: Settings,
    version: str,
    wait_seconds: float = FILES_WAIT_SECONDS,
    poll_seconds: float = POLL_SECONDS,
) -> None:
    """Return once MLmodel and the model file it lists are stored; ModelError after the bound."""
    deadline = time.monotonic() + wait_seconds
    while True:
        missing = missing_model_files(settings=settings, version=version)
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise ModelError(
                f"version {version} of {settings.model_name!r} still lacks {', '.join(missing)} "
                f"after {wait_seconds:g}s; the upload may have failed: check the artifact store, "
                f"then rerun `lof promote --version {version}`"
            )
        time.sleep(poll_seconds)


# --- the decision (pure) ---------------------------------------------------------------------


@dataclass(frozen=True)
class PromotionRequest:
    """What asks for a promotion: a version, from a person or an event."""

    version: str
    event_id: str | None = None
    reason: str = "manual"
    upload: str | None = None
    """``s3://bucket/key`` when an uploaded file asked (the older-upload rule applies)."""


Action = Literal["promote", "ignore", "refuse"]


@dataclass(frozen=True)
class Decision:
    """What to do with a request, why (the line logged or raised), and the status reported."""

    action: Action
    reason: str
    status: Status
    unknown_version: bool = False
    restore_alias: bool = False
    """Point the alias back at Production: a refused promotion that the alias itself asked for."""


def already_done(*, request: PromotionRequest, state: registry.RegistryState) -> str | None:
    """Why the request would change nothing: its event already promoted a version, or the
    version is at the stage with the alias on it. S3 delivers at least once, and the alias the
    promote flow sets fires the MLflow alias webhook again."""
    if request.event_id:
        for seen in state.versions:
            if seen.event_id == request.event_id:
                return (
                    f"event {request.event_id} already promoted version {seen.version}; "
                    "nothing to do"
                )
    info = state.get(request.version)
    if info is not None and info.stage == state.stage and state.alias_version == info.version:
        return f"version {info.version} is already at {state.stage}; nothing to do"
    return None


def decide(
    *,
    request: PromotionRequest,
    state: registry.RegistryState,
    model_name: str,
    gate: GateReport | None = None,
) -> Decision:
    """Promote, ignore or refuse ``request`` given the registry's state and the gate's report.

    Before the gate has run (``gate`` None) a request no rule stops is "promote" pending it;
    the flow scores the gate only then, and decides again with its report.
    """
    version = request.version
    done = already_done(request=request, state=state)
    if done:
        return Decision("ignore", done, "already")
    if state.get(version) is None:
        return Decision(
            "refuse",
            f"model {model_name!r} has no version {version}; "
            "list versions in the MLflow UI or run `lof retrain`",
            "refused",
            unknown_version=True,
        )
    production = state.serving_before(version)
    if request.upload and production is not None and int(version) < int(production):
        return Decision(
            "ignore",
            f"ignored {request.upload}: version {version} is older than Production "
            f"v{production}; roll back by hand with `lof promote --version {version}`",
            "ignored",
        )
    if gate is None:
        return Decision("promote", f"version {version} goes to the gate", "promoted")
    if not gate.comparable:
        if request.reason == ALIAS_REASON:
            return Decision(
                "promote",
                f"promoted version {version} of {model_name!r} to {state.stage}: a person set "
                f"the alias in the MLflow UI, and the gate could not compare it with "
                f"v{gate.production} ({gate.note})",
                "promoted",
            )
        return Decision("refuse", cannot_compare_message(gate, model_name=model_name), "refused")
    if not gate.passed:
        return Decision(
            "refuse",
            refusal_message(gate, model_name=model_name),
            "refused",
            restore_alias=request.reason == ALIAS_REASON,
        )
    return Decision(
        "promote",
        f"promoted version {version} of {model_name!r} to {state.stage}"
        + (f" (v{production} archived)" if production and production != version else "")
        + f"; {gate.describe()}",
        "promoted",
    )


# --- the gate ---------------------------------------------------------------------------------


def holdouts(*, settings: Settings, first: str | None = None) -> list[tuple[str, pd.DataFrame]]:
    """Held-out examples recorded at retrain: ``first``'s, then the newest versions' ones."""
    versions = sorted(registry.all_versions(settings=settings), key=lambda v: -int(v.version))
    ordered = [v for v in versions if str(v.version) == str(first)] + [
        v for v in versions[:HOLDOUT_LOOKBACK] if str(v.version) != str(first)
    ]
    return [
        (str(info.version), registry.load_holdout(settings=settings, version=str(info.version)))
        for info in ordered
        if info.run_id and registry.has_holdout(settings=settings, run_id=info.run_id)
    ]


def latest_holdout(*, settings: Settings) -> tuple[str, pd.DataFrame] | None:
    """The held-out examples of the newest version that recorded them at retrain."""
    found = holdouts(settings=settings)
    return found[0] if found else None


def holdout_score(
    *, model: Classifier, holdout: pd.DataFrame, threshold: float | None
) -> tuple[str, float]:
    """The gate metric of a model on a holdout (mean risk ROC-AUC at 25%/50%, else overall)."""
    metrics = lof_model.evaluate(model=model, examples=holdout, threshold=threshold)
    value = metrics.get(GATE_METRIC)
    if value is not None and not math.isnan(value):
        return GATE_METRIC, float(value)
    return FALLBACK_METRIC, float(metrics[FALLBACK_METRIC])


def _comparable_model(
    *, settings: Settings, version: str, model: Classifier
) -> tuple[Classifier, set | None]:
    """The fit of ``version`` to compare and the classes it trained on (None: unknown).

    A version that logged the fit that did not see its holdout is compared with that fit."""
    tags = registry.version_tags(settings=settings, version=version)
    uri = tags.get(registry.EVALUATION_MODEL_TAG) or ""
    if uri:
        fit = registry.load_model_uri(settings=settings, uri=uri)
        lof_model.check_model_features(fit)
        return fit, registry.decode_class_ids(tags.get(registry.EVALUATION_CLASSES_TAG))
    return model, registry.decode_class_ids(tags.get(registry.TRAINING_CLASSES_TAG))


def lacks_columns(holdout: pd.DataFrame, *, models: Sequence[Classifier]) -> bool:
    """True when a model takes a column the holdout lacks: each version is scored on its own
    columns, and a holdout recorded before one (an early-warning signal) cannot compare them."""
    needed = {name for model in models for name in lof_model.input_features(model)}
    return not needed <= set(holdout.columns)


def comparable_rows(
    holdout: pd.DataFrame, *, trained: Sequence[set[int] | None]
) -> tuple[pd.DataFrame, int]:
    """(rows of classes none of the fits trained on, rows left out)."""
    seen: set[int] = set().union(*[t for t in trained if t is not None])
    mask = holdout["class_id"].astype(int).isin(seen)
    return holdout[~mask].reset_index(drop=True), int(mask.sum())


def gate_passes(*, candidate_score: float, production_score: float, margin: float) -> bool:
    """Refuse only a candidate worse by more than the margin (a tie or small loss passes)."""
    return candidate_score >= production_score - margin - 1e-12


def load_version(*, settings: Settings, version: str) -> Classifier:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = registry.load_model_version(settings=settings, version=version)
    lof_model.check_model_features(model)
    return model


def _production_fit(*, settings: Settings, version: str) -> tuple[Classifier, set[int] | None]:
    """Production is compared as it serves: its registered fit and every class that fit saw."""
    fit = load_version(settings=settings, version=version)
    classes = registry.decode_class_ids(
        registry.version_tags(settings=settings, version=version).get(registry.TRAINING_CLASSES_TAG)
    )
    return fit, classes


def _unknown_classes_note(*, trained: Sequence[tuple[str, set[int] | None]]) -> str:
    """The report's note on versions compared without knowing the classes they trained on."""
    unknown = [f"v{version}" for version, classes in trained if classes is None]
    if not unknown:
        return ""
    return (
        f"training classes of {', '.join(unknown)} unknown (no {registry.TRAINING_CLASSES_TAG} "
        "tag): compared on its whole holdout"
    )


class _Incomparable(Exception):
    """No held-out row can compare the two versions; the message says why."""


def _pick_holdout(
    *,
    found: Sequence[tuple[str, pd.DataFrame]],
    fits: Sequence[Classifier],
    trained: Sequence[tuple[str, set[int] | None]],
) -> tuple[str, pd.DataFrame, int]:
    """The first holdout with rows of classes neither version trained on, and the rows left out.

    ``trained`` is (version, classes) of the candidate, then Production; ``_Incomparable`` when
    no holdout has such a row or every holdout lacks a column one of ``fits`` takes."""
    (candidate, candidate_classes), (production, production_classes) = trained
    overlap = 0
    lacking: list[str] = []
    for holdout_version, holdout in found:
        if lacks_columns(holdout, models=fits):
            lacking.append(holdout_version)
            continue
        rows, excluded = comparable_rows(holdout, trained=[c for _, c in trained])
        if len(rows):
            return holdout_version, rows, excluded
        overlap += excluded
    if len(lacking) == len(found):
        raise _Incomparable(
            f"the held-out data recorded with {', '.join('v' + v for v in lacking)} lacks "
            "column(s) one of them takes"
        )
    raise _Incomparable(
        f"all {overlap} held-out rows recorded with {', '.join('v' + v for v, _ in found)} "
        f"are from classes one of them trained on "
        f"(v{candidate}: {registry.encode_class_ids(candidate_classes or [])}; "
        f"v{production}: {registry.encode_class_ids(production_classes or [])}), as after a "
        "retrain on the same semesters"
    )


def run_gate(
    *, settings: Settings, candidate: str, production: str | None, force: bool
) -> GateReport:
    """Score both versions on held-out rows neither trained on; ``passed`` unless the
    candidate is worse by > the margin; not ``comparable`` (and not passed) when there is
    nothing to compare on."""
    margin = settings.promote_margin
    candidate_model = load_version(settings=settings, version=candidate)
    if production is None or production == candidate:
        return GateReport(candidate, None, None, GATE_METRIC, None, None, margin, 0, True, force)
    if force:
        return GateReport(
            candidate, production, None, GATE_METRIC, None, None, margin, 0, True, True
        )
    found = holdouts(settings=settings, first=candidate)
    if not found:
        return _incomparable(
            candidate,
            production,
            margin,
            f"no held-out data is recorded with the recent versions of {settings.model_name!r}",
        )
    candidate_fit, candidate_classes = _comparable_model(
        settings=settings, version=candidate, model=candidate_model
    )
    production_fit, production_classes = _production_fit(settings=settings, version=production)
    trained = [(candidate, candidate_classes), (production, production_classes)]
    try:
        holdout_version, rows, excluded = _pick_holdout(
            found=found, fits=(candidate_fit, production_fit), trained=trained
        )
    except _Incomparable as exc:
        return _incomparable(candidate, production, margin, str(exc))
    metric, candidate_score = holdout_score(
        model=candidate_fit, holdout=rows, threshold=settings.risk_threshold
    )
    _, production_score = holdout_score(
        model=production_fit, holdout=rows, threshold=settings.risk_threshold
    )
    fairness = (
        ""
        if settings.promote_max_gap_increase is None
        else fairness_refusal(
            settings=settings, rows=rows, candidate_fit=candidate_fit, production_fit=production_fit
        )
    )
    return GateReport(
        candidate=candidate,
        production=production,
        holdout_version=holdout_version,
        metric=metric,
        candidate_score=candidate_score,
        production_score=production_score,
        margin=margin,
        rows=len(rows),
        passed=gate_passes(
            candidate_score=candidate_score, production_score=production_score, margin=margin
        )
        and not fairness,
        excluded_rows=excluded,
        note=_unknown_classes_note(trained=trained),
        fairness=fairness,
    )


def fairness_refusal(
    *, settings: Settings, rows: pd.DataFrame, candidate_fit: Classifier, production_fit: Classifier
) -> str:
    """Why the candidate's largest group ROC-AUC gap at 25%/50% is larger than Production's by
    more than LOF_PROMOTE_MAX_GAP_INCREASE on the same held-out rows ("" when it is not).

    The held-out rows know students by pseudonym only, so the groups are matched by pseudonym;
    without groups or pseudonyms the rule cannot be held and refuses (``--force`` overrides)."""
    from lof.governance import groups, pseudonyms
    from lof.model import group_metrics

    limit = float(settings.promote_max_gap_increase or 0.0)
    student_groups = groups.load(settings)
    if student_groups is None:
        return (
            "LOF_PROMOTE_MAX_GAP_INCREASE is set but LOF_STUDENT_GROUPS is not: the group rule "
            "cannot be held; set LOF_STUDENT_GROUPS"
        )
    if pseudonyms.PSEUDONYM_COLUMN not in rows.columns or settings.pseudonym_secret is None:
        return (
            "the group rule (LOF_PROMOTE_MAX_GAP_INCREASE) needs the held-out rows' student "
            "pseudonyms: set LOF_PSEUDONYM_SECRET and retrain"
        )
    names = pseudonyms.required(settings, what="the promote gate's group rule")
    attributes = student_groups.for_pseudonyms(rows[pseudonyms.PSEUDONYM_COLUMN].tolist(), names)
    required = rows["required_level"].to_numpy(dtype=int)
    risks = [
        lof_model.model_risk(fit, lof_model.level_probabilities(model=fit, features=rows), required)
        for fit in (candidate_fit, production_fit)
    ]
    worst: tuple[float, str] | None = None
    for attribute, point, mine, theirs in group_metrics.gap_increases(
        rows=rows.rename(columns={pseudonyms.PSEUDONYM_COLUMN: "user_id"}),  # students counted
        candidate_risk=risks[0],
        production_risk=risks[1],
        attributes=attributes,
        min_size=settings.group_min_size,
    ):
        if math.isnan(mine) or math.isnan(theirs):
            continue
        increase = mine - theirs
        if increase > limit + 1e-12 and (worst is None or increase > worst[0]):
            worst = (
                increase,
                f"largest ROC-AUC gap between {attribute} groups at {point}% is {mine:.3f}, "
                f"Production's {theirs:.3f}: larger by {increase:.3f}, more than "
                f"LOF_PROMOTE_MAX_GAP_INCREASE {limit:g}",
            )
    return worst[1] if worst else ""


def _incomparable(candidate: str, production: str, margin: float, why: str) -> GateReport:
    return GateReport(
        candidate, production, None, GATE_METRIC, None, None, margin, 0, False, note=why,
        comparable=False,
    )  # fmt: skip


def cannot_compare_message(report: GateReport, *, model_name: str) -> str:
    """The one line of a promotion the gate could not decide: why, and the two overrides."""
    return (
        f"version {report.candidate} of {model_name!r} was not promoted: the gate cannot "
        f"compare it with Production v{report.production} ({report.note}); nothing changed; "
        f"to promote it anyway, check its holdout figures in MLflow, then run "
        f"`lof promote --version {report.candidate} --force` or set the alias 'production' on "
        f"version {report.candidate} in the MLflow UI"
    )


def refusal_message(report: GateReport, *, model_name: str) -> str:
    if report.fairness and gate_passes(
        candidate_score=report.candidate_score or 0.0,
        production_score=report.production_score or 0.0,
        margin=report.margin,
    ):
        return (
            f"refused to promote version {report.candidate} of {model_name!r}: "
            f"{report.fairness} (on the holdout of v{report.holdout_version}); nothing "
            f"changed; to promote anyway run `lof promote --version {report.candidate} --force`"
        )
    return (
        f"refused to promote version {report.candidate} of {model_name!r}: "
        f"{report.metric} {report.candidate_score:.4f} is worse than Production "
        f"v{report.production}'s {report.production_score:.4f} by more than the margin "
        f"{report.margin:g} (LOF_PROMOTE_MARGIN) on the holdout of v{report.holdout_version}"
        + (f", and its {report.fairness}" if report.fairness else "")
        + f"; nothing changed; to promote anyway run `lof promote --version {report.candidate} "
        "--force`"
    )


def promoter(*, reason: str, event_id: str | None) -> str:
    """Who or what promoted: the operator for a manual promotion, else the event source."""
    if reason == "manual":
        try:
            user = getpass.getuser()
        except Exception:
            user = "unknown"
        return f"{user}@{socket.gethostname()} (lof promote)"
    return f"lof promote flow ({reason}{', event ' + event_id if event_id else ''})"
