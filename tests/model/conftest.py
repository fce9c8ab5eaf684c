"""Fixtures of the model code tests."""

from __future__ import annotations

import pandas as pd
import pytest

from .model_examples import make_examples


@pytest.fixture
def examples() -> pd.DataFrame:
    return make_examples()
