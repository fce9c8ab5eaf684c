"""/readyz, daily scoring's model loading and promotion agree on the Production version."""

from __future__ import annotations

import warnings

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from lof.api import create_app
from lof.core.config import Settings
from lof.registry import client as registry
from lof.registry import promotion

from ._support import model_file_key, register


def _readyz_version(settings: Settings) -> str | None:
    """The version /readyz names to a key holder (strangers get only ready / not ready)."""
    keyed = settings.model_copy(update={"api_keys": SecretStr("agreement-key")})
    with TestClient(create_app(keyed), raise_server_exceptions=False) as client:
        return client.get("/readyz", headers={"x-api-key": "agreement-key"}).json()["model_version"]


def _promotion_version(settings: Settings, older: str) -> str | None:
    """What the promote flow takes as Production: it ignores an upload of an older version."""
    state = registry.read_state(settings=settings)
    request = promotion.PromotionRequest(
        version=older, upload=f"s3://b/{model_file_key(settings, older)}"
    )
    decision = promotion.decide(request=request, state=state, model_name=settings.model_name)
    assert decision.status == "ignored" and f"Production v{state.production}" in decision.reason
    return state.production


@pytest.mark.parametrize("only", ["alias", "stage"])
def test_readyz_scoring_and_promotion_agree(registry_settings: Settings, only: str) -> None:
    s = registry_settings
    register(s, "good", seed=0)
    production = register(s, "good", seed=1)
    client = registry.client(settings=s)
    if only == "alias":
        client.set_registered_model_alias(s.model_name, registry.production_alias(s), production)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client.transition_model_version_stage(s.model_name, production, s.model_stage)
    state = registry.read_state(settings=s)
    assert (state.stage_version, state.alias_version) == (
        (None, production) if only == "alias" else (production, None)
    )

    _, scored = registry.load_production_model(settings=s)
    assert scored == production
    assert _readyz_version(s) == production
    assert _promotion_version(s, older="1") == production
