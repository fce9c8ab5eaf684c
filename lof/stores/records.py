"""The shape of the records the stores keep, as plain types of the store layer.

The model writes its predictions in this shape (``lof.model``); the stores check and keep them
without importing any model code. ``PlainFloats`` and ``Reasons`` mark values lof built itself,
so the stores keep them as they are instead of checking each entry again.
"""

from __future__ import annotations

from collections.abc import Mapping

PREDICTION_OUTPUT: tuple[str, ...] = (
    "class_id",
    "user_id",
    "predicted_label",
    "predicted_prob",
    "risk_prob",
    "at_risk",
    "required_level",
)


class PlainFloats(dict[str, float]):
    """A str -> float dict lof built itself (str keys, Python float values), such as a
    prediction's level probabilities or feature snapshot: the stores keep it as it is instead
    of checking each entry again."""


class Reasons(list[Mapping[str, object]]):
    """One student's reasons as ``lof.model.reasons.explain`` builds them: dicts of ``feature``,
    ``text``, ``direction`` (str) and ``value``, ``class_median``, ``effect`` (float), in that
    order. The stores keep such a list as it is instead of checking each reason again (and only
    pass its values on, to JSON)."""
