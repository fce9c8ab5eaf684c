"""Retraining: the training set, candidates compared and selected, what a retrain logs.

Owns the training examples that mirror scoring (``examples``), holdout, comparison and refit of
the winner (``selection``), the retrain use case (``retrain``), what the parent and candidate
runs record and the registration of the winner (``registration``), the evaluation plots
(``plots``), the import of a former model (``legacy_import``), the feedback step of a
retrain (``feedback``), the model card (``model_card``) and the outcome report of teachers'
actions (``outcomes``). May import ``lof.core``, ``lof.features``, ``lof.model``,
``lof.sources``, ``lof.stores``, ``lof.governance``, ``lof.registry``, ``lof.scoring`` and the
former-model adapter ``lof.legacy``; never ``lof.api``, ``flows`` or the CLI.
"""
