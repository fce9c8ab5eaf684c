"""Benchmark: do the reasons explain the warnings? Coverage on scored synthetic days.

Run:  .venv/bin/python tests/benchmarks/bench_reasons.py [--students 300] [--classes 8]
      [--days 42] [--seed 7] [--every 7] [--candidates logreg,hist_gb]

A synthetic university (``lof.synth``) is written to a temporary folder; each candidate is
trained on its finished semesters as a retrain does (``lof.examples`` + ``selection.
refit_on_everything``: calibrated risk, the at-risk threshold chosen on out-of-fold data); the
ongoing semester is then computed day by day through ``scoring.compute_day_features`` and
every ``--every``-th day (and the last) is scored and explained as the daily flow does. Printed
per candidate, over the at-risk predictions of those days: how many there are, the share whose
first reason raises risk, how many have no reason, and the same for the saturated ones
(risk >= 0.99). Not a timing: the figures are the quality of the explanations.
"""

from __future__ import annotations

import argparse
import inspect
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

TODAY = date(2025, 3, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=300)
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--days", type=int, default=42, help="days of the ongoing semester")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--every", type=int, default=7, help="score every N-th day")
    parser.add_argument("--candidates", default="logreg,hist_gb")
    args = parser.parse_args()

    from lof import scoring
    from lof.core.config import get_settings
    from lof.model import outcome as lof_model
    from lof.model import reasons
    from lof.sources import leb2
    from lof.stores import open_feature_store
    from lof.synthetic import university as synth
    from lof.training import selection
    from lof.training.examples import build_training_set

    with tempfile.TemporaryDirectory(prefix="lof-bench-reasons-") as tmp:
        root = Path(tmp)
        leb2_url = f"sqlite:///{root / 'leb2.db'}"
        summary = synth.synthesize(
            leb2_url=leb2_url,
            amplitude_dir=root / "amplitude",
            seed=args.seed,
            today=TODAY,
            students=args.students,
            classes=args.classes,
            days=args.days,
        )
        settings = get_settings(
            home=root,
            leb2_url=leb2_url,
            amplitude_source=str(root / "amplitude"),
            store_url=f"sqlite:///{root / 'lof.db'}",
        )
        examples = build_training_set(settings=settings, semesters=None, as_of=TODAY).examples
        models = {
            name: selection.refit_on_everything(
                estimator=lof_model.make_candidates(names=[name])[name],
                examples=examples,
                settings=settings,
                n_splits=3,
            )
            for name in args.candidates.split(",")
        }
        engine = leb2.connect(leb2_url)
        store = open_feature_store(settings.store_url, state_dir=root / "cache")
        ongoing = summary.ongoing
        days = [ongoing.first_day + timedelta(days=n) for n in range(args.days)]
        scored = [d for i, d in enumerate(days) if (i + 1) % args.every == 0 or d == days[-1]]
        takes_at_risk = "at_risk" in inspect.signature(reasons.explain).parameters
        totals: dict[str, dict[str, int]] = {name: {} for name in models}
        for day in days:
            classes = leb2.ongoing_classes(engine, day=day, window_months=4)
            features = scoring.compute_day_features(
                settings=settings, engine=engine, feature_store=store, day=day, classes=classes
            )
            store.write_day(day=day, increments=features.increment, states=features.states)
            if day not in scored or features.scaled.empty:
                continue
            for name, model in models.items():
                predictions = lof_model.predict_frame(
                    model=model,
                    features=features.scaled,
                    required_levels=classes[["class_id", "required_level"]],
                )
                extra: dict[str, Any] = {}
                if takes_at_risk:
                    extra["at_risk"] = predictions["at_risk"].to_numpy()
                explained = reasons.explain(
                    model=model,
                    scaled=features.scaled,
                    raw=features.raw,
                    required=predictions["required_level"].to_numpy(),
                    risk=predictions["risk_prob"].to_numpy(),
                    **extra,
                )
                count(totals[name], predictions, explained)
        print(
            f"lof reasons benchmark: {args.students} students x {args.classes} classes, "
            f"days {', '.join(d.isoformat() for d in scored)} of {ongoing.slug}"
        )
        print(
            f"{'candidate':<12}{'predictions':>12}{'at risk':>9}{'first raises':>14}"
            f"{'no reason':>11}{'>=0.99':>8}{'first raises':>14}{'no reason':>11}"
        )
        for name, t in totals.items():
            share = t.get("first_raises", 0) / max(t.get("at_risk", 0), 1)
            share99 = t.get("first_raises_99", 0) / max(t.get("at_risk_99", 0), 1)
            print(
                f"{name:<12}{t.get('predictions', 0):>12}{t.get('at_risk', 0):>9}{share:>14.1%}"
                f"{t.get('no_reason', 0):>11}{t.get('at_risk_99', 0):>8}{share99:>14.1%}"
                f"{t.get('no_reason_99', 0):>11}"
            )


def count(totals: dict[str, int], predictions: Any, explained: list[Any]) -> None:
    """Add one scored day's at-risk predictions to ``totals``."""

    def add(key: str, n: int = 1) -> None:
        totals[key] = totals.get(key, 0) + n

    add("predictions", len(predictions))
    for at_risk, risk, mine in zip(
        predictions["at_risk"], predictions["risk_prob"], explained, strict=True
    ):
        if not at_risk:
            continue
        raises = bool(mine) and mine[0]["direction"] == "raises risk"
        for suffix, applies in (("", True), ("_99", risk >= 0.99)):
            if applies:
                add("at_risk" + suffix)
                add("first_raises" + suffix, int(raises))
                add("no_reason" + suffix, int(not mine))


if __name__ == "__main__":
    main()
