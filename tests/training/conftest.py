"""The small example set of the model code tests, shared here."""

from __future__ import annotations

from tests.model.conftest import examples

__all__ = ["examples"]
