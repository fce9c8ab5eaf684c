"""Property-based run of the app against its own OpenAPI: no 5xx, no undocumented answers.

Every route is generated for: the JSON API, the class page and its form, and the webhooks (sent
with the webhook secret, so generated bodies reach the parsing; MLflow's signature cannot be
generated, so its route answers 401 to them).

Bounded by example count (not by wall-clock deadlines, which would make the suite depend on the
machine's load); the pytest timeout caps the whole run.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from lof.api import create_app

from ._data import KEYS, fill, settings_for

_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


WEBHOOK_SECRET = "schemathesis-webhook-secret"
HEADERS = {"x-api-key": KEYS[0], "x-lof-webhook-secret": WEBHOOK_SECRET}

# The app is built at collection (no I/O: the store opens on the first request); the module
# fixture below fills its store before any case runs. (schemathesis' lazy `from_fixture` does not
# run under pytest 9.)
_HOME = Path(tempfile.mkdtemp(prefix="lof-schemathesis-"))
_URL = f"sqlite:///{_HOME / 'lof.db'}"
_APP = create_app(
    settings_for(
        _HOME,
        _URL,
        link_secret="schemathesis-link-secret-0123",
        pseudonym_secret="schemathesis-pseudonym-secret-0123",
        stale_after_days=None,
        api_docs=True,
        webhook_secret=WEBHOOK_SECRET,
        mlflow_webhook_secret="schemathesis-mlflow-secret",
    )
)  # 2023 data
schema = schemathesis.openapi.from_asgi("/openapi.json", _APP)


# What one operation's generated run must have reached to mean something: real data back as well as
# refusals. Checked after that operation's run, so each test stands alone and in any order.
_MUST_REACH: dict[str, set[int]] = {
    "/predictions": {200, 422},
    "/readyz": {200},
    "/classes/{class_id}/students/{user_id}/history": {422},
    "/classes/{class_id}/report": {403},
    "/webhooks/s3": {400},
    "/webhooks/mlflow": {401},
    "/students/{user_id}/opt-out": {200, 422},
}


@pytest.fixture(scope="module", autouse=True)
def _filled_store(registry_template: Path) -> Iterator[None]:
    fill(_URL)
    shutil.copy(registry_template, _HOME / "mlflow.db")  # so /readyz can answer 200
    yield
    _APP.state.store_holder.close()
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture
def reached() -> Iterator[dict[str, set[int]]]:
    """The statuses one operation's run got back; after the run, those it must have reached."""
    seen: dict[str, set[int]] = {}
    yield seen
    for path, statuses in seen.items():
        missing = _MUST_REACH.get(path, set()) - statuses
        assert not missing, f"the generated run of {path} never got {sorted(missing)}"


@schema.parametrize()
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
    derandomize=True,
)
@pytest.mark.timeout(300)
def test_api_conforms_to_its_openapi(case, reached: dict[str, set[int]]) -> None:
    response = case.call_and_validate(headers=HEADERS, checks=_CHECKS)
    reached.setdefault(case.path, set()).add(response.status_code)


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.generate],
    derandomize=True,
)
@pytest.mark.timeout(300)
def test_api_without_key_conforms_to_its_openapi(case) -> None:
    response = case.call_and_validate(checks=_CHECKS)
    if case.path in (
        "/predictions",
        "/classes/{class_id}/students/{user_id}/history",
        "/students/{user_id}/opt-out",
    ):
        assert response.status_code == 401
