"""Fixtures shared with the registry tests."""

from tests.registry.conftest import migrated_mlflow_db, registry_settings

__all__ = ["migrated_mlflow_db", "registry_settings"]
