"""lof — the learning-outcome forecaster."""

__version__ = "0.1.0"
