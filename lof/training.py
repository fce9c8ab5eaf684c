"""Retraining: examples that mirror scoring, candidates compared honestly, the winner registered.

Training examples are built the way the daily flow scores: for each finished class, the 13
features as they stood at the end of the days 25%, 50%, 75% and 100% through the class's
activity window, scaled within the class's cohort at that point by ``lof.features``, labelled
with the student's final ulti level (``LOF_LABEL_RULE``). Students of the cohort without a
final level (events but no assessed record) count for the scaling but are not examples.

Evaluation keeps classes apart: the held-out part is the latest semester when there are
several (``holdout_kind=time``), else a seeded quarter of the classes (``grouped-cv``).
Candidates are compared by grouped cross-validation by class on the rest and chosen by the
rule of ``lof.model.select_candidate``; the chosen candidate, fitted on the rest, is scored on
the held-out part and registered. The registered model never saw the held-out classes, so the
promote gate can score it and the Production model on them fairly.

Nothing is registered unless every step before succeeded; retraining never changes the
Production stage or alias.
"""

from __future__ import annotations

import hashlib
import logging
import math
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lof import features as feat
from lof import model as lof_model
from lof import registry, scoring, signals, tracking
from lof.calendar import end_of_day, format_day, today_local
from lof.config import Settings
from lof.errors import DataError, LofError, ModelError
from lof.progress import count_bar
from lof.sources import amplitude, leb2

log = logging.getLogger(__name__)

RETRAIN_EXPERIMENT = "lof-retrain"
LEGACY_TARGET = "Target"
LEGACY_CLASS_ID = -1
EXAMPLE_COLUMNS: tuple[str, ...] = (
    "class_id",
    "user_id",
    "semester",
    "progress",
    *feat.FEATURES,
    *signals.SIGNALS,
    "label",
    "required_level",
)
HOLDOUT_COLUMNS: tuple[str, ...] = (
    "class_id",
    "user_id",
    "progress",
    *feat.FEATURES,
    *signals.SIGNALS,
    "label",
    "required_level",
)


SHORT_COLUMN_NAMES = {
    "candidate": "candidate",
    f"cv_{lof_model.SELECTION_METRIC}": "cv F1@50%",
    f"holdout_{lof_model.SELECTION_METRIC}": "holdout F1@50%",
    "holdout_macro_f1": "holdout F1",
    "holdout_at_risk_recall": "at-risk recall",
    "holdout_at_risk_precision": "at-risk precision",
    "holdout_brier": "Brier",
}
"""The comparison columns a terminal shows (the full table is in MLflow and the artifact)."""


@dataclass
class TrainingSet:
    """The examples of a retrain and where they came from."""

    examples: pd.DataFrame
    classes: pd.DataFrame
    semesters: list[str]
    as_of: date
    legacy_rows: int = 0
    days_from_store: int = 0
    days_from_amplitude: int = 0


@dataclass
class RetrainResult:
    """What a retrain registered and how the candidates compared."""

    version: str
    candidate: str
    comparison: pd.DataFrame
    holdout_kind: str
    semesters: list[str]
    run_id: str
    metrics: dict[str, float] = field(default_factory=dict)
    n_examples: int = 0
    n_classes: int = 0

    def describe(self) -> str:
        table = self.comparison.rename(columns=SHORT_COLUMN_NAMES)[
            list(SHORT_COLUMN_NAMES.values())
        ]
        return (
            f"registered {self.candidate} as version {self.version} "
            f"(semesters {', '.join(self.semesters)}, {self.n_examples} examples from "
            f"{self.n_classes} classes, holdout {self.holdout_kind}); "
            f"promote it with `lof promote --version {self.version}`\n"
            + table.to_string(index=False, float_format=lambda v: f"{v:.3f}")
        )

    def markdown(self) -> str:
        columns = list(self.comparison.columns)
        lines = [
            f"# Retrain: version {self.version} ({self.candidate})",
            "",
            f"Semesters {', '.join(self.semesters)}; {self.n_examples} examples from "
            f"{self.n_classes} classes; holdout: {self.holdout_kind}. Selection: highest "
            f"grouped-CV `{lof_model.SELECTION_METRIC}` (ties within "
            f"{lof_model.SELECTION_TOLERANCE} go to the lowest log loss).",
            "",
            "| " + " | ".join(columns) + " |",
            "|" + "---|" * len(columns),
        ]
        for row in self.comparison.itertuples(index=False):
            cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


# --- examples ---------------------------------------------------------------------------------


def snapshot_days(*, first_day: date, last_day: date) -> dict[float, date]:
    """The day at which each progress point of the class's activity window is reached."""
    span = max((last_day - first_day).days, 0)
    return {
        p: first_day + timedelta(days=math.ceil(round(p * span, 6)))
        for p in lof_model.PROGRESS_POINTS
    }


def default_semesters(*, engine: Any, as_of: date) -> list[str]:
    """Every semester whose live activities all started and fell due before ``as_of``."""
    frame = leb2.semesters(engine)
    done = [
        str(row.slug)
        for row in frame.itertuples()
        if row.last_day is not None and not pd.isna(row.last_day) and row.last_day < as_of
    ]
    if not done:
        raise DataError(
            f"no semester in LEB2 has all its classes finished before {as_of:%Y-%m-%d}; "
            "pass --semester SLUG or a later --as-of"
        )
    return done


def pick_classes(*, engine: Any, semesters: Sequence[str], as_of: date) -> pd.DataFrame:
    """The finished classes of the semesters, with their required level; clear error if none."""
    classes = leb2.finished_classes(engine, as_of=as_of, semesters=list(semesters))
    empty = [s for s in semesters if s not in set(classes["semester"])]
    if empty:
        raise DataError(
            f"semester {', '.join(empty)} has no finished OBEM class with a ulti outcome and "
            f"more than one activity before {as_of:%Y-%m-%d}; leave it out of --semester "
            "or pass a later --as-of"
        )
    required = leb2.required_levels(engine, class_ids=classes["class_id"].tolist())
    classes = classes.merge(required, on="class_id", how="left")
    missing = classes[classes["required_level"].isna()]
    if len(missing):
        raise DataError(
            "finished class(es) "
            + ", ".join(f"{r.class_id} ({r.code}, {r.semester})" for r in missing.itertuples())
            + " have no required level (no flag=1 cri_levels row on their ulti criteria); "
            "set it in LEB2 or leave their semester out"
        )
    classes["required_level"] = classes["required_level"].astype("int64")
    classes["first_day"] = [pd.Timestamp(v).date() for v in classes["first_start"]]
    classes["last_day"] = [pd.Timestamp(v).date() for v in classes["last_day"]]
    return classes.reset_index(drop=True)


def _increment(
    *, settings: Settings, feature_store: Any, day: date, class_ids: list[int]
) -> tuple[pd.DataFrame, bool]:
    """The day's engagement increment: the features store's when it has the day, else Amplitude."""
    if feature_store is not None and feature_store.is_complete(day=day):
        return feature_store.read_increments(day=day, class_ids=class_ids), True
    return amplitude.day_increments(settings=settings, day=day, class_ids=class_ids), False


def build_examples(
    *,
    settings: Settings,
    engine: Any,
    classes: pd.DataFrame,
    as_of: date,
    feature_store: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Scaled, labelled examples at every progress point of every class (one pass over days)."""
    plans = {
        int(row.class_id): snapshot_days(first_day=row.first_day, last_day=row.last_day)
        for row in classes.itertuples()
    }
    window = {int(r.class_id): (r.first_day, r.last_day) for r in classes.itertuples()}
    by_day: dict[date, list[tuple[int, float]]] = {}
    for class_id, points in plans.items():
        for point, day in points.items():
            by_day.setdefault(day, []).append((class_id, point))
    days = sorted({d for first, last in window.values() for d in _days(first, last)})
    counts = {"days_from_store": 0, "days_from_amplitude": 0}
    states = feat.empty_engagement()
    snapshots: list[pd.DataFrame] = []
    for n, day in enumerate(days):
        active = sorted(c for c, (first, last) in window.items() if first <= day <= last)
        increment, stored = _increment(
            settings=settings, feature_store=feature_store, day=day, class_ids=active
        )
        counts["days_from_store" if stored else "days_from_amplitude"] += 1
        increment = signals.stamp_increment(increment[increment["class_id"].isin(active)], day=day)
        states = feat.accumulate(previous=states, increment=increment)
        if day in by_day:
            snapshots.extend(_snapshot(engine=engine, states=states, day=day, due=by_day[day]))
        finished = [c for c in active if window[c][1] == day]
        if finished:
            states = states[~states["class_id"].isin(finished)].reset_index(drop=True)
        if progress is not None:
            progress(n + 1, len(days))
    if not snapshots:
        return pd.DataFrame(columns=list(EXAMPLE_COLUMNS)), counts
    scaled = pd.concat(snapshots, ignore_index=True)
    return _label(engine=engine, settings=settings, scaled=scaled, classes=classes, as_of=as_of), (
        counts
    )


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _snapshot(
    *, engine: Any, states: pd.DataFrame, day: date, due: list[tuple[int, float]]
) -> list[pd.DataFrame]:
    """Each due class's cohort features at the end of ``day``, scaled within the class."""
    class_ids = sorted({c for c, _ in due})
    records = leb2.assessed_records(engine, class_ids=class_ids, until=end_of_day(day))
    raw = scoring.raw_features(
        engine=engine,
        states=states[states["class_id"].isin(class_ids)],
        records=records,
        class_ids=class_ids,
        day=day,
    )
    scaled = feat.scale_within_class(features=raw)
    out = []
    for class_id, point in due:
        part = scaled[scaled["class_id"] == class_id].copy()
        part["progress"] = point
        out.append(part)
    return out


def _label(
    *,
    engine: Any,
    settings: Settings,
    scaled: pd.DataFrame,
    classes: pd.DataFrame,
    as_of: date,
) -> pd.DataFrame:
    class_ids = classes["class_id"].tolist()
    labels = leb2.final_levels(
        engine,
        class_ids=class_ids,
        rule=settings.label_rule,
        until=datetime.combine(as_of, time.min),
    )
    unlabelled = sorted(set(class_ids) - set(labels["class_id"]))
    if unlabelled:
        named = classes[classes["class_id"].isin(unlabelled)]
        raise DataError(
            "finished class(es) "
            + ", ".join(f"{r.class_id} ({r.code}, {r.semester})" for r in named.itertuples())
            + f" have no labels: no assessed record on their ulti outcome before {as_of:%Y-%m-%d};"
            " record the levels in LEB2 or leave their semester out"
        )
    examples = scaled.merge(labels, on=["class_id", "user_id"], how="inner")
    examples = examples.merge(
        classes[["class_id", "semester", "required_level"]], on="class_id", how="left"
    )
    examples["label"] = examples["label"].astype("int64")
    examples = examples.sort_values(["class_id", "progress", "user_id"], kind="stable")
    return examples[list(EXAMPLE_COLUMNS)].reset_index(drop=True)


def read_legacy_dataset(path: str | Path) -> pd.DataFrame:
    """Rows of a legacy training file (CSV or parquet: ``Target`` + the 13 scaled features)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"dataset file {path} does not exist; pass an existing --dataset file")
    try:
        frame = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    except Exception as exc:
        raise DataError(
            f"dataset file {path} cannot be read ({type(exc).__name__}); expected CSV or parquet "
            f"with columns {LEGACY_TARGET} and the 13 features"
        ) from None
    needed = [LEGACY_TARGET, *feat.FEATURES]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(
            f"dataset file {path} lacks column(s) {', '.join(missing)}; "
            f"expected {', '.join(needed)}"
        )
    values = frame[list(feat.FEATURES)].apply(pd.to_numeric, errors="coerce")
    target = pd.to_numeric(frame[LEGACY_TARGET], errors="coerce")
    bad = values.isna().any(axis=1) | ~target.isin(list(feat.LEVELS))
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"dataset file {path}: {int(bad.sum())} row(s) have a non-numeric feature or a "
            f"{LEGACY_TARGET} outside 1-5, first at data row {first + 1}; fix or drop them"
        )
    out = values.astype(float)
    out.insert(0, "progress", 1.0)
    out.insert(0, "semester", "legacy")
    out.insert(0, "user_id", np.arange(len(frame), dtype="int64"))
    out.insert(0, "class_id", LEGACY_CLASS_ID)
    for name in signals.SIGNALS:  # a legacy file has the 13 only: a retrain with it uses those
        out[name] = np.nan
    out["label"] = target.astype("int64")
    out["required_level"] = 0  # unknown: legacy rows are only ever trained on, never scored
    return out[list(EXAMPLE_COLUMNS)]


def build_training_set(
    *,
    settings: Settings,
    semesters: Sequence[str] | None,
    as_of: date | None,
    dataset: str | Path | None = None,
    progress: bool = False,
) -> TrainingSet:
    """Everything from LEB2, the features store and Amplitude that a retrain trains on."""
    from lof.stores import open_feature_store

    as_of = as_of or today_local(settings.tz)
    engine = leb2.connect(settings.leb2_url)
    chosen = list(semesters) if semesters else default_semesters(engine=engine, as_of=as_of)
    legacy = read_legacy_dataset(dataset) if dataset else None
    classes = pick_classes(engine=engine, semesters=chosen, as_of=as_of)
    feature_store = open_feature_store(settings.store_url)
    with count_bar(progress, what="building training examples") as advance:
        examples, counts = build_examples(
            settings=settings,
            engine=engine,
            classes=classes,
            as_of=as_of,
            feature_store=feature_store,
            progress=advance,
        )
    if legacy is not None:
        examples = pd.concat([examples, legacy], ignore_index=True)
    return TrainingSet(
        examples=examples,
        classes=classes,
        semesters=chosen,
        as_of=as_of,
        legacy_rows=0 if legacy is None else len(legacy),
        **counts,
    )


# --- split, compare, register -----------------------------------------------------------------


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of the frame's content (row order and dtypes included)."""
    digest = hashlib.sha256()
    digest.update(",".join(f"{c}:{t}" for c, t in frame.dtypes.items()).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def split_holdout(
    *, examples: pd.DataFrame, classes: pd.DataFrame, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(train, holdout, kind): the latest semester if there are several, else 1/4 of classes."""
    from_leb2 = examples[examples["class_id"] != LEGACY_CLASS_ID]
    present = classes[classes["class_id"].isin(from_leb2["class_id"])]
    order = present.groupby("semester")["first_start"].min().sort_values()
    if len(order) >= 2:
        latest = order.index[-1]
        held = set(present.loc[present["semester"] == latest, "class_id"])
        kind = "time"
    else:
        ids = sorted(present["class_id"])
        if len(ids) < 3:
            raise DataError(
                f"only {len(ids)} finished class(es) with labelled students in "
                f"{', '.join(order.index) or 'the chosen semesters'}; at least 3 are needed to "
                "hold classes out; add semesters with --semester"
            )
        rng = np.random.default_rng(seed)
        held = set(rng.choice(ids, size=max(1, round(len(ids) / 4)), replace=False).tolist())
        kind = "grouped-cv"
    mask = examples["class_id"].isin(held)
    train, holdout = examples[~mask], examples[mask]
    n_train = train.loc[train["class_id"] != LEGACY_CLASS_ID, "class_id"].nunique()
    if n_train < 2:
        raise DataError(
            f"only {n_train} class(es) left to train on besides the held-out semester; "
            "at least 2 are needed for cross-validation; add earlier semesters with --semester"
        )
    return train.reset_index(drop=True), holdout.reset_index(drop=True), kind


def compare_candidates(
    *,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    candidates: dict[str, Any],
    threshold: float,
    n_splits: int = 5,
) -> dict[str, dict[str, Any]]:
    """Per candidate: grouped-CV metrics on ``train``, the model fitted on it, holdout metrics."""
    scored = train[train["class_id"] != LEGACY_CLASS_ID].reset_index(drop=True)
    extra = train[train["class_id"] == LEGACY_CLASS_ID]
    out: dict[str, dict[str, Any]] = {}
    for name, estimator in candidates.items():
        proba = lof_model.grouped_cv_probabilities(
            estimator=estimator, examples=scored, n_splits=n_splits, extra=extra
        )
        cv = lof_model.score_examples(examples=scored, proba=proba, threshold=threshold)
        fitted = lof_model.fit(estimator=estimator, examples=train)
        held_proba = lof_model.level_probabilities(model=fitted, features=holdout)
        held = lof_model.score_examples(examples=holdout, proba=held_proba, threshold=threshold)
        out[name] = {"cv": cv, "holdout": held, "model": fitted, "holdout_proba": held_proba}
    return out


def _prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in metrics.items() if not math.isnan(float(v))}


def _log_plots(*, holdout: pd.DataFrame, proba: np.ndarray, metrics: dict, title: str) -> None:
    import mlflow

    labels = holdout["label"].to_numpy(dtype=int)
    required = holdout["required_level"].to_numpy(dtype=int)
    with tempfile.TemporaryDirectory(prefix="lof-plots-") as tmp:
        folder = Path(tmp)
        lof_model.plot_confusion(
            labels=labels, proba=proba, title=title, path=folder / "confusion_matrix.png"
        )
        lof_model.plot_metrics_by_progress(
            metrics=metrics, title=title, path=folder / "metrics_by_progress.png"
        )
        lof_model.plot_calibration(
            labels=labels,
            proba=proba,
            required=required,
            title=title,
            path=folder / "calibration_curve.png",
        )
        mlflow.log_artifacts(tmp, artifact_path="plots")


def train_and_register(
    *,
    settings: Settings,
    training: TrainingSet,
    candidate_names: Sequence[str] | None = None,
    mlp_max_iter: int = 200,
    n_splits: int = 5,
    seed: int = 0,
) -> RetrainResult:
    """Compare candidates in MLflow runs, then register the winner (the very last step)."""
    try:
        return _train_and_register(
            settings=settings,
            training=training,
            candidate_names=candidate_names,
            mlp_max_iter=mlp_max_iter,
            n_splits=n_splits,
            seed=seed,
        )
    except LofError:
        raise
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelError(
            f"retrain failed while training or logging to MLflow ({type(exc).__name__}: "
            f"{first[:200]}); nothing was registered; check MLFLOW_TRACKING_URI and rerun "
            "`lof retrain`"
        ) from exc


def _train_and_register(
    *,
    settings: Settings,
    training: TrainingSet,
    candidate_names: Sequence[str] | None,
    mlp_max_iter: int,
    n_splits: int,
    seed: int,
) -> RetrainResult:
    import mlflow

    examples = training.examples
    if examples.empty or (examples["class_id"] != LEGACY_CLASS_ID).sum() == 0:
        raise DataError(
            f"no labelled training examples in semesters {', '.join(training.semesters)}; "
            "check that their classes have assessed records"
        )
    train, holdout, kind = split_holdout(examples=examples, classes=training.classes, seed=seed)
    candidates = lof_model.make_candidates(
        seed=seed, mlp_max_iter=mlp_max_iter, names=candidate_names
    )
    threshold = settings.risk_threshold
    dataset_fingerprint = fingerprint(examples)
    semester_tag = ",".join(training.semesters)

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    experiment_id = tracking.ensure_experiment(settings=settings, name=RETRAIN_EXPERIMENT)
    run_name = f"retrain-{format_day(training.as_of)}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as parent:
        mlflow.set_tags(
            {
                "lof.semesters": semester_tag,
                "lof.as_of": format_day(training.as_of),
                "lof.holdout_kind": kind,
                "lof.training_fingerprint": dataset_fingerprint,
            }
        )
        mlflow.log_params(
            {
                "semesters": semester_tag,
                "as_of": format_day(training.as_of),
                "label_rule": settings.label_rule,
                "risk_threshold": threshold,
                "holdout_kind": kind,
                "progress_points": ",".join(str(p) for p in lof_model.PROGRESS_POINTS),
                "candidates": ",".join(candidates),
                "cv_folds": n_splits,
                "selection_metric": lof_model.SELECTION_METRIC,
                "selection_tolerance": lof_model.SELECTION_TOLERANCE,
                "n_examples": len(examples),
                "n_train": len(train),
                "n_holdout": len(holdout),
                "n_classes": int(training.classes["class_id"].nunique()),
                "legacy_rows": training.legacy_rows,
                "days_from_store": training.days_from_store,
                "days_from_amplitude": training.days_from_amplitude,
            }
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)  # int id columns, by design
            for frame, name, context in (
                (examples, f"lof-training-{semester_tag}", "training"),
                (holdout, "lof-holdout", "holdout"),
            ):
                dataset = mlflow.data.from_pandas(frame, name=name, targets="label")
                mlflow.log_input(dataset, context=context)
        results = compare_candidates(
            train=train,
            holdout=holdout,
            candidates=candidates,
            threshold=threshold,
            n_splits=n_splits,
        )
        for name, result in results.items():
            with mlflow.start_run(experiment_id=experiment_id, run_name=name, nested=True) as child:
                result["run_id"] = child.info.run_id
                mlflow.set_tag("lof.candidate", name)
                params = {
                    f"model.{k}": v
                    for k, v in candidates[name].steps[-1][1].get_params(deep=False).items()
                    if not hasattr(v, "get_params")
                }
                mlflow.log_params({"candidate": name, **params})
                mlflow.log_metrics(_prefixed("cv.", result["cv"]))
                mlflow.log_metrics(_prefixed("holdout.", result["holdout"]))
                _log_plots(
                    holdout=holdout,
                    proba=result["holdout_proba"],
                    metrics=result["holdout"],
                    title=f"{name} (holdout)",
                )
        cv_scores = {name: r["cv"] for name, r in results.items()}
        chosen = lof_model.select_candidate(cv_scores)
        comparison = _comparison(results)
        for row in comparison.to_dict(orient="records"):
            log.info("candidate %s", row)
        best = results[chosen]
        mlflow.log_metrics(_prefixed("holdout.", best["holdout"]))
        mlflow.set_tag("lof.chosen_candidate", chosen)
        _log_plots(
            holdout=holdout,
            proba=best["holdout_proba"],
            metrics=best["holdout"],
            title=f"{chosen} (holdout)",
        )
        with tempfile.TemporaryDirectory(prefix="lof-comparison-") as tmp:
            path = Path(tmp) / "comparison.csv"
            comparison.to_csv(path, index=False)
            mlflow.log_artifact(str(path))
        input_example = train[lof_model.input_features(best["model"])].head(5).astype(float)
        logged = registry.log_model(model=best["model"], input_example=input_example)
        registry.log_holdout(holdout=holdout[list(HOLDOUT_COLUMNS)])
        held = best["holdout"]
        tags = {
            "semester": semester_tag,
            "training_fingerprint": dataset_fingerprint,
            "selection_metric": lof_model.SELECTION_METRIC,
            "macro_f1_at_50": held.get("macro_f1_at_50", float("nan")),
            "macro_f1": held["macro_f1"],
            "candidate": chosen,
            "holdout_kind": kind,
            "baseline_macro_f1_at_50": results.get(lof_model.BASELINE, {})
            .get("holdout", {})
            .get("macro_f1_at_50", float("nan")),
            "as_of": format_day(training.as_of),
            "label_rule": settings.label_rule,
            "candidate_run_id": best["run_id"],
        }
        version = registry.register_version(
            settings=settings,
            model_uri=logged.model_uri,
            run_id=parent.info.run_id,
            tags=tags,
            model_id=logged.model_id,
        )
        mlflow.set_tag("lof.registered_version", version)
    return RetrainResult(
        version=version,
        candidate=chosen,
        comparison=comparison,
        holdout_kind=kind,
        semesters=list(training.semesters),
        run_id=parent.info.run_id,
        metrics=dict(held),
        n_examples=len(examples),
        n_classes=int(training.classes["class_id"].nunique()),
    )


def _comparison(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for name, result in results.items():
        cv, held = result["cv"], result["holdout"]
        rows.append(
            {
                "candidate": name,
                f"cv_{lof_model.SELECTION_METRIC}": cv.get(lof_model.SELECTION_METRIC, np.nan),
                "cv_log_loss": cv["log_loss"],
                f"holdout_{lof_model.SELECTION_METRIC}": held.get(
                    lof_model.SELECTION_METRIC, np.nan
                ),
                "holdout_macro_f1": held["macro_f1"],
                "holdout_balanced_accuracy": held["balanced_accuracy"],
                "holdout_at_risk_recall": held["at_risk_recall"],
                "holdout_at_risk_precision": held["at_risk_precision"],
                "holdout_brier": held["brier"],
                "holdout_log_loss": held["log_loss"],
            }
        )
    return pd.DataFrame(rows)


def run_retrain(
    *,
    settings: Settings,
    semesters: Sequence[str] | None = None,
    as_of: date | None = None,
    dataset: str | Path | None = None,
    progress: bool = False,
    candidate_names: Sequence[str] | None = None,
    mlp_max_iter: int = 200,
    n_splits: int = 5,
) -> RetrainResult:
    """Build the examples, compare the candidates, register the chosen model (not promoted)."""
    training = build_training_set(
        settings=settings, semesters=semesters, as_of=as_of, dataset=dataset, progress=progress
    )
    return train_and_register(
        settings=settings,
        training=training,
        candidate_names=candidate_names,
        mlp_max_iter=mlp_max_iter,
        n_splits=n_splits,
    )
