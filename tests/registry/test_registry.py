"""Code tests of lof.registry against a real MLflow sqlite tracking store under tmp_path."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest

from lof.core.config import get_settings
from lof.core.errors import ModelError
from lof.features.definitions import FEATURES
from lof.model import outcome as lof_model
from lof.registry import client as registry
from lof.registry import tracking
from tests.model.model_examples import make_examples


@pytest.fixture
def settings(lof_home):
    return get_settings()


def _register(settings, *, candidate: str = "logreg", seed: int = 0) -> tuple[str, object]:
    examples = make_examples(n_classes=3, students=20, seed=seed)
    fitted = lof_model.fit(
        estimator=lof_model.make_candidates(names=[candidate], mlp_max_iter=30)[candidate],
        examples=examples,
    )
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    experiment_id = tracking.ensure_experiment(settings=settings, name="lof-registry-tests")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = registry.log_model(model=fitted, input_example=examples[list(FEATURES)].head(3))
        registry.log_holdout(holdout=examples, settings=settings)
    version = registry.register_version(
        settings=settings,
        model_uri=info.model_uri,
        run_id=run.info.run_id,
        tags={"candidate": candidate, "macro_f1_at_50": 0.5},
    )
    return version, fitted


def test_no_production_model_is_a_clear_error(settings):
    assert registry.production_version(settings=settings) is None
    with pytest.raises(ModelError) as err:
        registry.load_production_model(settings=settings)
    message = str(err.value)
    assert "lof-outcome" in message and "Production" in message
    assert "lof retrain" in message and "lof promote --version N" in message
    assert "\n" not in message


def test_register_promote_load_roundtrip(settings):
    v1, fitted = _register(settings, candidate="hist_gb")
    v2, _ = _register(settings, candidate="mlp_baseline", seed=1)
    assert (v1, v2) == ("1", "2")
    assert registry.production_version(settings=settings) is None  # registering never promotes

    info = registry.version_info(settings=settings, version=v1)
    assert info.tags["candidate"] == "hist_gb" and info.tags["macro_f1_at_50"] == "0.5"

    registry.transition_to_production(settings=settings, version=v1, reason="test", event_id="e1")
    model, version = registry.load_production_model(settings=settings)
    assert version == "1"
    lof_model.check_model_features(model)
    examples = make_examples(n_classes=1, students=5, seed=3)
    pd.testing.assert_frame_equal(
        pd.DataFrame(model.predict_proba(examples[list(FEATURES)])),
        pd.DataFrame(fitted.predict_proba(examples[list(FEATURES)])),
    )
    promoted = registry.version_info(settings=settings, version=v1)
    assert promoted.current_stage == "Production"
    assert promoted.tags["promotion_reason"] == "test"
    assert promoted.tags["promotion_event_id"] == "e1"
    assert "production" in promoted.aliases

    registry.transition_to_production(settings=settings, version=v2)
    assert registry.production_version(settings=settings) == "2"
    assert registry.version_info(settings=settings, version=v1).current_stage == "Archived"
    pyfunc = mlflow.pyfunc.load_model(f"models:/{settings.model_name}/{v2}")
    served = pyfunc.predict(examples[[*FEATURES, "required_level"]])
    assert len(served) == len(examples) and served.columns[0] == "risk_prob"


def test_holdout_roundtrip_and_missing_version(settings):
    version, _ = _register(settings)
    holdout = registry.load_holdout(settings=settings, version=version)
    # MLflow keeps no student id: without LOF_PSEUDONYM_SECRET, no student key at all
    expected = make_examples(n_classes=3, students=20, seed=0).drop(columns=["user_id"])
    pd.testing.assert_frame_equal(holdout, expected)
    with pytest.raises(ModelError, match="has no version 7"):
        registry.load_model_version(settings=settings, version="7")
    with pytest.raises(ModelError, match="has no version 7"):
        registry.load_holdout(settings=settings, version="7")
    with pytest.raises(ModelError, match="has no version 7"):
        registry.transition_to_production(settings=settings, version="7")


def test_model_requirements_are_pinned():
    requirements = registry.pip_requirements()
    assert any(r.startswith("scikit-learn==") for r in requirements)
    assert all("==" in r for r in requirements)


def test_registering_a_run_again_returns_its_version(settings):
    """A registration retried after its first try reached the server makes no second version."""
    version, _ = _register(settings)
    client = registry.client(settings=settings)
    first = client.get_model_version(settings.model_name, version)
    again = registry.register_version(
        settings=settings, model_uri=first.source, run_id=first.run_id, tags={}
    )
    assert again == version
    assert len(client.search_model_versions(f"name='{settings.model_name}'")) == 1
