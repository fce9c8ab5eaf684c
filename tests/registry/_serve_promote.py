"""Serve the promote flow with the trigger of prefect.yaml (run as a process by the e2e test)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml
from prefect import serve
from prefect.events import DeploymentEventTrigger

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from flows.promote import promote  # noqa: E402


def main() -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (spec,) = [d for d in config["deployments"] if d["name"] == "promote"]
    (trigger,) = spec["triggers"]
    deployment = promote.to_deployment(
        name=os.environ["LOF_E2E_DEPLOYMENT"],
        triggers=[
            DeploymentEventTrigger(
                name=os.environ["LOF_E2E_DEPLOYMENT"],
                expect=set(trigger["expect"]),
                match={"prefect.resource.id": f"lof.model.{os.environ['LOF_MODEL_NAME']}"},
                posture=trigger["posture"],
                threshold=trigger["threshold"],
                within=trigger["within"],
                parameters=trigger["parameters"],
            )
        ],
    )
    serve(deployment, limit=1)


if __name__ == "__main__":
    main()
