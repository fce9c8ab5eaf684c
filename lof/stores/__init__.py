"""The features and predictions stores (docs/contracts.md §3.4), opened from LOF_STORE_URL.

* a SQLAlchemy URL (``sqlite:///path/lof.db`` — the embedded default, its folder is created —,
  ``postgresql+psycopg2://...``, ``mysql+pymysql://...``): ``lof.stores.sql``;
* ``dynamodb://`` with optional query ``endpoint=http://...``, ``prefix=`` (table name prefix,
  default ``lof_``), ``region=`` and ``create=`` (create missing tables: default true with an
  ``endpoint``, false on AWS, where the CloudFormation stack holds them): ``lof.stores.dynamodb``.

SQL tables are created on first use. Anything unusable (unknown scheme, unreachable server, missing
rights) raises one StoreError line naming LOF_STORE_URL, password redacted.

Persistence only: the features and predictions stores (``base``, ``sql``, ``dynamodb``,
``compact``, ``migrate``), the record shapes they keep (``records``; DynamoDB items:
``dynamo_items``) and the small stores beside
them (``feedback``, ``interventions``, ``privacy``, ``access_log``, ``deliveries``, with
``small_tables`` and ``guards``). May import ``lof.core``, ``lof.features`` (the engagement
frames and the daily state the features store keeps), ``lof.feedback`` and ``lof.interventions``
(the records of teachers' verdicts and actions); never model, sources,
training, registry, API or flows.
"""

from __future__ import annotations

from pathlib import Path

from lof.core.errors import StoreError
from lof.stores.base import FeatureStore, PredictionRecord, PredictionStore

__all__ = [
    "FeatureStore",
    "PredictionRecord",
    "PredictionStore",
    "open_feature_store",
    "open_prediction_store",
]


def _kind(url: str) -> str:
    if not isinstance(url, str) or not url.strip():
        raise StoreError(
            "LOF_STORE_URL is empty; set it to a database URL such as sqlite:///path/lof.db "
            "or to dynamodb://"
        )
    if url.startswith("dynamodb:"):
        return "dynamodb"
    return "sql"


def open_feature_store(url: str, *, state_dir: Path | None = None) -> FeatureStore:
    """The features store at ``url`` (tables created if missing); with ``state_dir`` (the daily
    run gives LOF_HOME/cache) each day written is also kept there for the next day's run."""
    store: DynamoFeatureStore | SqlFeatureStore
    if _kind(url) == "dynamodb":
        from lof.stores.dynamodb import DynamoFeatureStore

        store = DynamoFeatureStore(url)
    else:
        from lof.stores.sql import SqlFeatureStore

        store = SqlFeatureStore(url)
    if state_dir is not None:
        store.keep_states_in(state_dir)
    return store


def open_prediction_store(url: str) -> PredictionStore:
    """The predictions store at ``url`` (tables created if missing)."""
    if _kind(url) == "dynamodb":
        from lof.stores.dynamodb import DynamoPredictionStore

        return DynamoPredictionStore(url)
    from lof.stores.sql import SqlPredictionStore

    return SqlPredictionStore(url)
