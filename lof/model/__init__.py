"""The risk model as it is served: inference, risk and threshold, metrics, reasons.

Owns the outcome model (``outcome``: candidates and fitting, level probabilities, calibrated
risk, metrics, cross-validated selection helpers), the reasons a teacher reads (``reasons``)
and their exact one-column effects (``exact_effects``), how early warnings come (``leadtime``),
the metrics per student group (``group_metrics``), and the ``Classifier`` protocol every
model lof scores with follows (``classifier``). May import ``lof.core``, ``lof.features`` and the
stores' record shapes (``lof.stores.records``, which predictions are written in); never the
stores' backends, sources, MLflow adapters or training.

``RiskModel`` is re-exported here because registered models name its class ``lof.model.RiskModel``
(skops and pickle record the class's module): the models already in a registry keep loading.
"""

from lof.model.outcome import RiskModel

__all__ = ["RiskModel"]
