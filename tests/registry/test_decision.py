"""The promotion decision as a pure function: each outcome from a request and a registry state."""

from __future__ import annotations

import pytest

from lof.registry.client import RegistryState, VersionState
from lof.registry.promotion import GateReport, PromotionRequest, already_done, decide

NAME = "lof-outcome"


def state(*, stage: str | None = "1", alias: str | None = "1", event: str | None = None):
    versions = tuple(
        VersionState(
            version=str(n),
            stage="Production" if str(n) == stage else "None",
            event_id=event if str(n) == stage else None,
        )
        for n in (1, 2, 3)
    )
    return RegistryState(
        stage="Production", versions=versions, stage_version=stage, alias_version=alias
    )


def gate(*, passed: bool, candidate: str = "3", production: str | None = "1") -> GateReport:
    return GateReport(candidate, production, "3", "m", 0.5, 0.6, 0.02, 10, passed)


def test_an_event_already_recorded_is_ignored() -> None:
    decision = decide(
        request=PromotionRequest(version="3", event_id="s3:a"),
        state=state(event="s3:a"),
        model_name=NAME,
    )
    assert (decision.action, decision.status) == ("ignore", "already")
    assert "event s3:a already promoted version 1" in decision.reason


def test_a_version_at_the_stage_with_the_alias_is_already_done() -> None:
    decision = decide(request=PromotionRequest(version="1"), state=state(), model_name=NAME)
    assert (decision.action, decision.status) == ("ignore", "already")
    # At the stage without the alias (or the reverse) it is not done: the promotion repairs it.
    assert already_done(request=PromotionRequest(version="1"), state=state(alias="2")) is None
    assert already_done(request=PromotionRequest(version="2"), state=state(alias="2")) is None


def test_an_unknown_version_is_refused() -> None:
    decision = decide(request=PromotionRequest(version="9"), state=state(), model_name=NAME)
    assert (decision.action, decision.unknown_version) == ("refuse", True)
    assert "has no version 9" in decision.reason


def test_an_upload_older_than_production_is_ignored_but_a_manual_rollback_is_not() -> None:
    upload = PromotionRequest(version="1", upload="s3://b/k", event_id="s3:x")
    decision = decide(request=upload, state=state(stage="2", alias="2"), model_name=NAME)
    assert (decision.action, decision.status) == ("ignore", "ignored")
    assert "older than Production v2" in decision.reason and "s3://b/k" in decision.reason
    manual = decide(
        request=PromotionRequest(version="1"), state=state(stage="2", alias="2"), model_name=NAME
    )
    assert manual.action == "promote"


def test_before_the_gate_a_candidate_goes_to_it_and_after_it_the_report_decides() -> None:
    request = PromotionRequest(version="3")
    assert decide(request=request, state=state(), model_name=NAME).action == "promote"
    passed = decide(request=request, state=state(), model_name=NAME, gate=gate(passed=True))
    assert (passed.action, passed.status) == ("promote", "promoted")
    assert "promoted version 3" in passed.reason and "(v1 archived)" in passed.reason
    refused = decide(request=request, state=state(), model_name=NAME, gate=gate(passed=False))
    assert (refused.action, refused.restore_alias) == ("refuse", False)
    assert refused.reason.startswith("refused to promote version 3") and "--force" in refused.reason


@pytest.mark.parametrize(("reason", "restore"), [("mlflow-alias", True), ("s3-upload", False)])
def test_a_refusal_the_alias_asked_for_points_the_alias_back(reason: str, restore: bool) -> None:
    request = PromotionRequest(version="3", reason=reason, event_id="e")
    decision = decide(
        request=request, state=state(alias="3"), model_name=NAME, gate=gate(passed=False)
    )
    assert decision.action == "refuse" and decision.restore_alias is restore


def test_production_is_the_alias_first_then_the_stage() -> None:
    assert state(stage="1", alias="2").production == "2"
    assert state(stage="1", alias=None).production == "1"
    assert state(stage=None, alias=None).production is None
    # a person moved the alias onto v2 in the MLflow UI: v1 (still at the stage) is replaced
    assert state(stage="1", alias="2").serving_before("2") == "1"
    assert state(stage="1", alias="1").serving_before("3") == "1"
    assert state(stage="2", alias="2").serving_before("2") is None


@pytest.mark.parametrize(("reason", "action"), [("mlflow-alias", "promote"), ("manual", "refuse")])
def test_a_gate_that_cannot_compare_leaves_the_choice_to_a_person(reason: str, action: str) -> None:
    """A retrain on the same semesters leaves no held-out row neither version trained on: the
    run says so in one line with both overrides; the alias set in the MLflow UI is one."""
    report = GateReport(
        "3", "1", None, "m", None, None, 0.02, 0, False, note="no rows", comparable=False
    )
    request = PromotionRequest(version="3", reason=reason)
    decision = decide(request=request, state=state(alias="3"), model_name=NAME, gate=report)
    assert decision.action == action and not decision.restore_alias
    if action == "refuse":
        assert "\n" not in decision.reason and "(no rows)" in decision.reason
        assert "`lof promote --version 3 --force`" in decision.reason
        assert "set the alias 'production' on version 3 in the MLflow UI" in decision.reason
    else:
        assert "a person set the alias in the MLflow UI" in decision.reason
