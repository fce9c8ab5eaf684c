"""Fixtures shared with the API and model tests."""

from tests.api.conftest import registry_template
from tests.registry.conftest import migrated_mlflow_db, registry_settings

__all__ = ["migrated_mlflow_db", "registry_settings", "registry_template"]
