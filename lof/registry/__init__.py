"""lof's side of MLflow: the model registry, the daily runs' records and the promotion gate.

Owns the MLflow adapter (``client``: registered versions, stages and aliases, model logging and
loading, the one "MLflow unreachable" error), the record of each daily scoring run
(``tracking``) and promotion (``promotion``: artifact key to version, the gate, the move to
Production), and the pyfunc flavor serving risk and level probabilities (``pyfunc``). May
import ``lof.core``, ``lof.features``, ``lof.model``, ``lof.governance.pseudonyms`` and
``lof.governance.groups`` (the gate's group rule); never training, the stores, the API or flows.
"""
