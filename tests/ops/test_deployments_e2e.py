"""The deployments as an operator runs them: a real `prefect server`, a real process worker, the
documented commands typed as written (deployments/README.md).

One server and one worker for the module: `prefect deploy --all` with standard input closed and
prompts forced on (any question would fail on the closed input), an upload event promoting a
version through the trigger, `prefect deployment run daily-scoring/daily-scoring -p date=D`
with the day unquoted, and the ECS set registered from its own file. No Docker engine runs
here, so the ECS file's image build and push steps are replaced by naming the image (see
``ecs_file_without_docker``); everything else in it is deployed as written.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from lof.features.definitions import FEATURES
from tests.servers import free_port, running, stop

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DAY = "20250228"  # a day of the synthetic university's ongoing semester (synth --today below)
LOCAL = {"daily-scoring", "retrain", "promote", "backfill", "import-model", "purge"}
ECS = {"daily-scoring-ecs", "retrain-ecs", "promote-ecs", "backfill-ecs", "purge-ecs"}


def command(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """A command of the project's environment, run from the project root, stdin closed."""
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`prefect server start` on loopback, and the environment every command here runs with."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "LOF_"))}
    env.pop("MLFLOW_TRACKING_URI", None)
    env |= {
        "PREFECT_HOME": str(home / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "DO_NOT_TRACK": "1",
        "GIT_PYTHON_REFRESH": "quiet",
    }
    start = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with running(start, port=port, log=home / "server.log", env=env, timeout=120) as url:
        api = f"{url}/api"
        deadline = time.monotonic() + 120
        while httpx.get(f"{api}/health", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "prefect server not healthy"
            time.sleep(0.5)
        yield env | {"PREFECT_API_URL": api}


@contextmanager
def client_of(env: dict[str, str]) -> Iterator[Any]:
    """A Prefect client on this module's server (not the test session's harness)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}),
        get_client(sync_client=True) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def university(
    server: dict[str, str], tmp_path_factory: pytest.TempPathFactory, migrated_mlflow_db: Path
) -> dict[str, Any]:
    """A synthetic LEB2 and Amplitude in LOF_HOME, and one registered model version (not
    promoted), in the embedded defaults' places (MLflow in LOF_HOME/mlflow.db)."""
    home = tmp_path_factory.mktemp("lof-home")
    env = server | {"LOF_HOME": str(home)}
    made = command("lof", "synth", "--students", "60", "--classes", "3", "--days", "4",
                   "--today", "20250301", env=env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    shutil.copy(migrated_mlflow_db, home / "mlflow.db")
    settings = _settings(home)
    return {"env": env, "home": home, "settings": settings, "version": _register(settings)}


def _settings(home: Path) -> Any:
    from lof.core.config import Settings

    return Settings(home=home, mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}")


def _register(settings: Any) -> str:
    """A small fitted RiskModel, logged and registered the way retrain does (registry.*)."""
    import mlflow

    from lof.model import outcome as lof_model
    from lof.registry import client as registry
    from lof.registry import tracking
    from tests.registry._support import examples, fitted

    model = lof_model.RiskModel(fitted("good"), threshold=0.4)
    registry.use_tracking_server(settings)
    experiment = tracking.ensure_experiment(settings=settings, name="lof-retrain")
    with mlflow.start_run(experiment_id=experiment) as run:
        logged = registry.log_model(
            model=model, input_example=examples(n=5, seed=1)[list(FEATURES)]
        )
    return registry.register_version(
        settings=settings,
        model_uri=logged.model_uri,
        run_id=run.info.run_id,
        tags={},
        model_id=logged.model_id,
    )


@pytest.fixture(scope="module")
def deployed(university: dict[str, Any]) -> subprocess.CompletedProcess:
    """The local set, deployed with the documented commands; prompts forced on, stdin closed."""
    env = university["env"] | {"PREFECT_CLI_PROMPT": "true"}
    pool = command("prefect", "work-pool", "create", "lof-process", "--type", "process", env=env)
    assert pool.returncode == 0, pool.stdout + pool.stderr
    return command("prefect", "deploy", "--all", env=env)


@pytest.fixture(scope="module")
def worker(deployed: subprocess.CompletedProcess, university: dict[str, Any]) -> Iterator[None]:
    """`prefect worker start --pool lof-process`, started elsewhere than the project."""
    home = university["home"]
    log = (home / "worker.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "prefect"), "worker", "start", "--pool", "lof-process"],
        env=university["env"] | {"PREFECT_WORKER_QUERY_SECONDS": "1"},
        cwd=home,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield
    finally:
        stop(proc)
        log.close()


def wait_for_run(env: dict[str, str], flow_name: str, *, timeout: float = 240) -> Any:
    """The flow's first run once it is final."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    deadline = time.monotonic() + timeout
    with client_of(env) as client:
        while True:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name]))
            )
            if runs and runs[0].state is not None and runs[0].state.is_final():
                return runs[0]
            assert time.monotonic() < deadline, [(r.name, r.state_name) for r in runs]
            time.sleep(1)


@pytest.fixture(scope="module")
def promoted(university: dict[str, Any], worker: None) -> Any:
    """The upload event of deployments/README.md section 3, for the registered version."""
    env, version = university["env"], university["version"]
    emitted = command(
        "prefect", "event", "emit", "lof.model.uploaded",
        "--resource-id", "lof.model.lof-outcome",
        "--payload", json.dumps({"version": version, "reason": "manual-test"}),
        env=env,
    )  # fmt: skip
    assert emitted.returncode == 0, emitted.stderr
    return wait_for_run(env, "promote")


def test_documented_deploy_never_prompts_and_needs_no_project_variable(
    deployed: subprocess.CompletedProcess, university: dict[str, Any]
) -> None:
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    with client_of(university["env"]) as client:
        by_name = {d.name: d for d in client.read_deployments()}
        assert set(by_name) == LOCAL  # the ECS set lives in its own file
        daily = by_name["daily-scoring"]
        schedule = daily.schedules[0].schedule
        assert (schedule.cron, schedule.timezone) == ("0 3 * * *", "Asia/Bangkok")
        assert daily.global_concurrency_limit.limit == 1
        assert daily.concurrency_options.collision_strategy == "CANCEL_NEW"
        retrain = by_name["retrain"].schedules[0].schedule
        assert (retrain.cron, retrain.timezone) == ("0 2 10 1,6 *", "Asia/Bangkok")
        for name in ("promote", "backfill", "import-model"):
            assert by_name[name].schedules == []
        for deployment in by_name.values():
            assert deployment.work_pool_name == "lof-process"
            (step,) = deployment.pull_steps
            directory = step["prefect.deployments.steps.set_working_directory"]["directory"]
            assert Path(directory).resolve() == ROOT.resolve()
        (automation,) = client.read_resource_related_automations(
            f"prefect.deployment.{by_name['promote'].id}"
        )
        assert automation.trigger.expect == {"lof.model.uploaded"}
        assert "default(" in automation.actions[0].parameters["version"]


def test_an_upload_event_promotes_a_version_the_gate_passes(
    promoted: Any, university: dict[str, Any]
) -> None:
    from lof.registry import client as registry

    version = university["version"]
    assert promoted.state.is_completed(), promoted.state
    assert promoted.name == f"promote-v{version}"
    settings = university["settings"]
    assert registry.read_state(settings=settings).production == version
    info = registry.version_info(settings=settings, version=version)
    assert info.current_stage == "Production" and "production" in info.aliases
    assert info.tags["promotion_reason"] == "manual-test"


def test_a_day_typed_as_a_number_is_scored_by_the_worker(
    promoted: Any, university: dict[str, Any]
) -> None:
    from lof.stores import open_prediction_store

    env = university["env"]
    refused = command("prefect", "deployment", "run", "daily-scoring/daily-scoring",
                      "-p", "date=2025022", env=env)  # fmt: skip
    assert refused.returncode != 0 and "2025022" in refused.stdout + refused.stderr
    ran = command("prefect", "deployment", "run", "daily-scoring/daily-scoring",
                  "-p", f"date={DAY}", env=env)  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    run = wait_for_run(env, "daily-scoring")
    assert run.state.is_completed(), run.state
    assert run.name == f"daily-{DAY}"
    assert run.parameters == {"date": int(DAY)}  # stored as typed, read as the day
    settings = university["settings"]
    with sqlite3.connect(settings.leb2_url.removeprefix("sqlite:///")) as leb2:
        class_ids = [row[0] for row in leb2.execute("SELECT id FROM classes")]
    store = open_prediction_store(settings.store_url)
    days = {day for class_id in class_ids for day in store.list_days(class_id=class_id)}
    assert {f"{day:%Y%m%d}" for day in days} == {DAY}


def ecs_file_without_docker(tmp_path: Path) -> Path:
    """deployments/prefect-ecs.yaml without its Docker build and push steps (no engine here):
    the image is named from the same LOF_IMAGE and commit steps instead."""
    config = yaml.safe_load((ROOT / "deployments" / "prefect-ecs.yaml").read_text())
    steps = config["build"]
    assert "build_docker_image" in str(steps.pop()) and "push_docker_image" in str(config["push"])
    config["push"] = None
    pool = config["definitions"]["work_pools"]["ecs"]
    assert pool["job_variables"]["image"] == "{{ build-image.image }}"
    image = "{{ image-name.stdout }}:{{ image-tag.stdout }}"
    for deployment in config["deployments"]:
        deployment["work_pool"]["job_variables"]["image"] = image
    path = tmp_path / "prefect-ecs.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


STACK_OUTPUTS = {
    "Cluster": "arn:aws:ecs:ap-southeast-1:123456789012:cluster/lof-ecs",
    "ExecutionRoleArn": "arn:aws:iam::123456789012:role/lof-ecs-ExecutionRole-A",
    "TaskRoleArn": "arn:aws:iam::123456789012:role/lof-ecs-TaskRole-B",
    "VpcId": "vpc-0a1b",
    "SubnetIds": "subnet-1,subnet-2",
    "SecurityGroupIds": "sg-9",
    "AssignPublicIp": "DISABLED",
    "LogGroup": "/lof/lof-ecs/flows",
    "Region": "ap-southeast-1",
}
SECRETS = {
    "LOF_LEB2_URL": "arn:aws:secretsmanager:ap-southeast-1:123456789012:secret:lof-ecs/leb2",
    "LOF_AMPLITUDE_API_KEY": "arn:aws:secretsmanager:ap-southeast-1:123456789012:secret:k",
}


def ecs_job_template(env: dict[str, str], tmp_path: Path) -> Path:
    """Steps 4-5 of deployments/README.md: Prefect's default ECS template, patched by
    scripts/ecs-job-template with the lof-ecs stack's outputs (as describe-stacks prints them)."""
    default = command("prefect", "work-pool", "get-default-base-job-template", "--type", "ecs",
                      env=env)  # fmt: skip
    assert default.returncode == 0, default.stderr
    (tmp_path / "ecs-default.json").write_text(default.stdout)
    outputs = [{"OutputKey": k, "OutputValue": v} for k, v in STACK_OUTPUTS.items()] + [
        {"OutputKey": f"S{n}SecretArn", "OutputValue": arn, "Description": name}
        for n, (name, arn) in enumerate(SECRETS.items())
    ]
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    script = [sys.executable, str(ROOT / "scripts" / "ecs-job-template")]
    refused = subprocess.run([*script, "ecs-default.json", "outputs.json", "--env",
                              "LOF_AMPLITUDE_SECRET_KEY=x"], cwd=tmp_path, capture_output=True,
                             text=True)  # fmt: skip
    assert refused.returncode != 0 and "Secrets Manager" in refused.stderr
    made = subprocess.run([*script, "ecs-default.json", "outputs.json", "--env",
                           "MLFLOW_TRACKING_URI=https://mlflow.example"], cwd=tmp_path,
                          capture_output=True, text=True, check=True)  # fmt: skip
    path = tmp_path / "ecs-template.json"
    path.write_text(made.stdout)
    return path


def test_the_ecs_set_deploys_from_its_own_file_and_refuses_a_missing_image(
    deployed: subprocess.CompletedProcess, university: dict[str, Any], tmp_path: Path
) -> None:
    # Prompts stay off here: without its Docker build step the file would be asked for one.
    env = university["env"] | {"PREFECT_CLI_PROMPT": "false"}
    template = ecs_job_template(env, tmp_path)
    pool = command("prefect", "work-pool", "create", "lof-ecs", "--type", "ecs",
                   "--base-job-template", str(template), env=env)  # fmt: skip
    assert pool.returncode == 0, pool.stdout + pool.stderr
    ecs_file = str(ecs_file_without_docker(tmp_path))
    missing = command("prefect", "deploy", "--prefect-file", ecs_file, "--all", env=env)
    assert missing.returncode != 0 and "set LOF_IMAGE" in missing.stdout + missing.stderr
    with client_of(env) as client:
        assert not ECS & {d.name for d in client.read_deployments()}

    done = command("prefect", "deploy", "--prefect-file", ecs_file, "--all",
                   env=env | {"LOF_IMAGE": "registry.example/lof"})  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.strip()  # fmt: skip
    with client_of(env) as client:
        ecs = {d.name: d for d in client.read_deployments() if d.name in ECS}
        assert set(ecs) == ECS
        for deployment in ecs.values():
            assert deployment.work_pool_name == "lof-ecs"
            assert deployment.job_variables["image"] == f"registry.example/lof:{commit}"
            assert deployment.pull_steps == [
                {"prefect.deployments.steps.set_working_directory": {"directory": "/opt/lof"}}
            ]
        assert ecs["daily-scoring-ecs"].concurrency_options.collision_strategy == "CANCEL_NEW"
        assert ecs["promote-ecs"].schedules == [] and ecs["backfill-ecs"].schedules == []
        pool = client.read_work_pool("lof-ecs").base_job_template
    # What the worker renders for a run: the secrets, both roles, the operator's network.
    from prefect.utilities.templating import apply_values

    defaults = {k: v.get("default") for k, v in pool["variables"]["properties"].items()}
    job = apply_values(pool["job_configuration"], defaults)
    (container,) = job["task_definition"]["containerDefinitions"]
    assert {s["name"]: s["valueFrom"] for s in container["secrets"]} == SECRETS
    assert job["task_definition"]["executionRoleArn"] == STACK_OUTPUTS["ExecutionRoleArn"]
    assert job["task_run_request"]["overrides"]["taskRoleArn"] == STACK_OUTPUTS["TaskRoleArn"]
    assert job["network_configuration"]["subnets"] == ["subnet-1", "subnet-2"]
    assert job["env"] == {"MLFLOW_TRACKING_URI": "https://mlflow.example"}
