"""Fixtures shared with the API tests."""

from tests.api.conftest import registry_template

__all__ = ["registry_template"]
