"""Drift without crying wolf: a whole normal synthetic semester, day by day, against the
reference of the same university's finished semesters raises no warning; the same semester
with one input shifted does.

The semester is computed as the daily flow computes it (``scoring.compute_day_features`` over
a real SQLite features store), every ``STEP``-th day compared, so the first weeks (where a
reference mixing every stage of a class flagged most days) are in it.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lof import scoring
from lof.core.config import Settings, get_settings
from lof.features import drift
from lof.sources import leb2
from lof.stores import open_feature_store
from lof.synthetic import university as synth
from lof.training.examples import build_training_set

TODAY = date(2025, 3, 1)
DAYS = 112  # the whole ongoing semester: activity starts over ~95 days, then the last dues
STEP = 3
STUDENTS = 300
CLASSES = 12
THRESHOLD = Settings.model_fields["drift_psi_threshold"].default


@pytest.fixture(scope="module")
def semester(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict, pd.DataFrame, list[pd.DataFrame]]:
    """The reference of the finished semesters' examples, them, and the ongoing semester's days."""
    examples, days = university(tmp_path_factory.mktemp("drift-semester"), step=STEP)
    return drift.build_reference(examples=examples), examples, days


def university(root: Path, *, step: int) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """The finished semesters' training examples and every ``step``-th day's scaled inputs."""
    leb2_url = f"sqlite:///{root / 'leb2.db'}"
    summary = synth.synthesize(
        leb2_url=leb2_url,
        amplitude_dir=root / "amplitude",
        seed=5,
        today=TODAY,
        students=STUDENTS,
        classes=CLASSES,
        days=DAYS,
        events_per_student_day=2.0,
    )
    settings = get_settings(
        home=root,
        leb2_url=leb2_url,
        amplitude_source=str(root / "amplitude"),
        store_url=f"sqlite:///{root / 'lof.db'}",
    )
    examples = build_training_set(settings=settings, semesters=None, as_of=TODAY).examples
    engine = leb2.connect(leb2_url)
    store = open_feature_store(settings.store_url, state_dir=root / "cache")
    days: list[pd.DataFrame] = []
    for n in range(DAYS):
        day = summary.ongoing.first_day + timedelta(days=n)
        features = scoring.compute_day_features(
            settings=settings, engine=engine, feature_store=store, day=day
        )
        store.write_day(day=day, increments=features.increment, states=features.states)
        if n % step == step - 1 and not features.scaled.empty:
            days.append(features.scaled)
    return examples, days


def test_a_normal_semester_raises_no_drift_warning(semester) -> None:
    reference, examples, days = semester
    stages = [float(day[drift.STAGE].median()) for day in days]
    assert min(stages) < 0.1 and max(stages) == 1.0  # from the first weeks to the end
    measured = [drift.day_psi(reference=reference, features=day) for day in days]
    at = [stage for stage, psi in zip(stages, measured, strict=True) if psi]
    assert len(at) >= 0.2 * len(days) and min(at) < 0.15 and max(at) > 0.9, at
    warned = {i: drift.drifted(psi, threshold=THRESHOLD) for i, psi in enumerate(measured) if psi}
    assert not any(warned.values()), {i: w for i, w in warned.items() if w}
    # the former single reference (every stage pooled, no smoothing) cries wolf on most days
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(drift, "SMOOTHING", 0.0)
        pooled = {"features": drift.build_reference(examples=examples)["features"]}
    former = [drift.day_psi(reference=pooled, features=day) for day in days]
    assert sum(bool(drift.drifted(psi, threshold=THRESHOLD)) for psi in former) > len(days) / 2


def test_a_shifted_semester_raises_it(semester) -> None:
    """Two students in three no longer open the learning materials."""
    reference, _, days = semester
    rng = np.random.default_rng(0)
    flagged = 0
    measured = 0
    for day in days:
        shifted = day.copy()
        gone = rng.random(len(shifted)) < 2 / 3
        shifted.loc[gone, "material_view"] = 0.0
        psi = drift.day_psi(reference=reference, features=shifted)
        if psi:
            measured += 1
            flagged += "material_view" in drift.drifted(psi, threshold=THRESHOLD)
    assert measured and flagged >= 0.9 * measured, (flagged, measured)
