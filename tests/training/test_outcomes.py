"""The outcome report: it recovers the synthetic university's effect of actions within its
interval, says "too few" on a tiny sample, and is built from the stores (SQLite and DynamoDB on
moto_server) and logged to MLflow at retrain."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pandas as pd
import pytest

from lof.interventions import InterventionRecord
from lof.stores.interventions import open_intervention_store
from lof.synthetic.interventions import DEFAULT_EFFECT, simulate_flags
from lof.training.outcomes import MIN_MATCHED, Outcomes, log_outcome_reports, outcome_report
from tests.api._data import AWS_TEST_ENV, settings_for
from tests.api._three_days import CLASS, D1, D2, D3, write_three_days


@pytest.mark.parametrize("seed", [3, 11])
def test_the_report_recovers_the_synthetic_effect(seed: int) -> None:
    flags = simulate_flags(n=1500, seed=seed)
    report = outcome_report(flags, semester="2/2023")
    assert report.enough and report.matched >= MIN_MATCHED
    assert report.interval is not None and report.difference is not None
    low, high = report.interval
    assert low <= -DEFAULT_EFFECT <= high
    assert high < 0  # a modest effect, still told apart from none on a semester this size
    assert "observational" in report.markdown().lower()
    assert report.metrics()["outcomes.2_2023.interval_low"] == pytest.approx(low)


def test_matching_takes_back_what_the_choice_of_students_hides() -> None:
    """Teachers act more for riskier students: comparing everyone flagged, unmatched, hides part
    of the effect (over 20 synthetic semesters); matching on risk and progress does not."""
    matched, naive = [], []
    for seed in range(20):
        flags = simulate_flags(n=1500, seed=100 + seed)
        report = outcome_report(flags, semester="s")
        assert report.difference is not None
        matched.append(report.difference)
        naive.append(flags[flags.intervened].failed.mean() - flags[~flags.intervened].failed.mean())
    assert abs(sum(matched) / 20 + DEFAULT_EFFECT) < 0.015
    assert abs(sum(naive) / 20 + DEFAULT_EFFECT) > 0.02


def test_no_effect_gives_an_interval_around_zero() -> None:
    report = outcome_report(simulate_flags(n=1500, effect=0.0, seed=5), semester="s")
    assert report.interval is not None and report.interval[0] <= 0.0 <= report.interval[1]


def test_a_tiny_sample_says_too_few_and_reports_no_numbers() -> None:
    report = outcome_report(simulate_flags(n=40, seed=1), semester="2/2023")
    assert not report.enough and 0 < report.matched < MIN_MATCHED
    assert report.message.startswith("Too few interventions to compare")
    assert report.difference is None and report.interval is None
    assert set(report.metrics()) == {
        f"outcomes.2_2023.{name}" for name in ("flagged", "treated", "untreated", "matched")
    }
    assert "did not attain" not in report.markdown() and "difference of" not in report.markdown()


@pytest.fixture(params=["sqlite", "dynamodb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch) -> str:
    for name, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(name, value)
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'lof.db'}"
    else:
        endpoint = request.getfixturevalue("moto_endpoint")
        url = f"dynamodb://?endpoint={endpoint}&prefix=oc{uuid.uuid4().hex[:8]}_&region=us-east-1"
    write_three_days(url)
    actions = open_intervention_store(url)
    for user, day in ((802, D2), (801, date(2023, 3, 19)), (806, D3)):
        actions.put(
            InterventionRecord(
                class_id=CLASS,
                user_id=user,
                teacher_id="t-01",
                action_dt=f"{day:%Y%m%d}",
                action="meeting",
                updated_at="2023-03-23T10:00:00Z",
            )
        )
    actions.close()
    return url


def test_the_report_is_built_from_the_stores_and_logged_at_retrain(
    store_url: str, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, store_url)
    first, last = D1 - timedelta(days=10), D1 + timedelta(days=30)
    classes = pd.DataFrame(
        [
            {
                "class_id": CLASS,
                "semester": "2/2023",
                "required_level": 3,
                "first_day": first,
                "last_day": last,
            }
        ]
    )
    # the retrain's examples: one row per progress point; 806 has none (a visitor): left out
    examples = pd.DataFrame(
        {
            "class_id": [CLASS] * 6,
            "user_id": [801, 801, 802, 802, 804, 804],
            "label": [2, 2, 4, 4, 1, 1],
        }
    )
    from lof.stores import open_prediction_store
    from lof.training.outcomes import flag_table, read_history

    flags = flag_table(
        read_history(open_prediction_store(store_url), [CLASS]),
        windows={CLASS: (first, last)},
        actions=open_intervention_store(store_url).read_all(),
        outcomes=Outcomes.of(examples, classes),
    )
    got = flags.set_index("user_id")[["flag_day", "risk", "progress", "intervened", "failed"]]
    assert got.to_dict("index") == {
        801: {"flag_day": D1, "risk": 0.6, "progress": 0.25, "intervened": False, "failed": True},
        802: {"flag_day": D1, "risk": 0.8, "progress": 0.25, "intervened": True, "failed": False},
        804: {"flag_day": D1, "risk": 0.6, "progress": 0.25, "intervened": False, "failed": True},
    }  # 801's action came before its flag day: not counted as acting on the warning

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    training = SimpleNamespace(examples=examples, classes=classes, semesters=["2/2023"])
    # An experiment of this store: the process may still hold another store's active one.
    experiment = mlflow.set_experiment("outcomes")
    with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
        (report,) = log_outcome_reports(settings=settings, training=training)
    assert (report.flagged, report.treated, report.untreated) == (3, 1, 2)
    assert not report.enough
    client = mlflow.MlflowClient()
    metrics = client.get_run(run.info.run_id).data.metrics
    assert metrics["outcomes.2_2023.flagged"] == 3 and "outcomes.2_2023.difference" not in metrics
    text = Path(
        mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path="outcomes/2_2023.md", dst_path=str(tmp_path)
        )
    ).read_text()
    assert "Too few interventions" in text and "observational" in text.lower()
    saved = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=run.info.run_id, artifact_path="outcomes/2_2023.json", dst_path=str(tmp_path)
            )
        ).read_text()
    )
    assert saved["matched"] == report.matched and saved["difference"] is None
