"""A real MLflow registry (SQLite + local artifacts) per test, under a clean LOF_HOME."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lof.core.config import Settings, get_settings


@pytest.fixture(scope="session")
def migrated_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated MLflow database: creating one takes seconds, copying it does not."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}", f"sqlite:///{path}").search_experiments()
    MlflowClient(f"sqlite:///{path}", f"sqlite:///{path}").search_registered_models()
    return path


@pytest.fixture
def registry_settings(
    lof_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_mlflow_db: Path
) -> Settings:
    monkeypatch.chdir(tmp_path)
    shutil.copy(migrated_mlflow_db, tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return get_settings()
