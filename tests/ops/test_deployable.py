"""Deployable: one install step for CI and the image, a lock CI honours, every dependency used,
and the DynamoDB tables of the CloudFormation stack are the ones the store uses.

No Docker engine runs here, so the Dockerfile is not built: these tests check that it installs
through scripts/install (the step CI runs) and that what CI installed matches the lock."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
import uuid
from datetime import date
from importlib import metadata
from pathlib import Path

import boto3
import pytest
import yaml

from lof.core.errors import StoreError
from lof.stores import open_prediction_store

ROOT = Path(__file__).resolve().parents[2]

# Loaded by SQLAlchemy from the URL's driver name, never imported by lof itself.
DRIVERS = {"pymysql": "mysql+pymysql:// URLs", "psycopg2-binary": "postgresql+psycopg2:// URLs"}
IMPORT_NAMES = {
    "scikit-learn": "sklearn",
    "pydantic-settings": "pydantic_settings",
    "SQLAlchemy": "sqlalchemy",
    "prefect-aws": "prefect_aws",
}


def test_ci_and_the_image_install_through_the_same_script_and_lock() -> None:
    install = (ROOT / "scripts" / "install").read_text()
    assert "--require-hashes --no-deps -r" in install and "scripts/check-lock" in install
    dockerfile = (ROOT / "Dockerfile").read_text()
    runs = [line for line in dockerfile.splitlines() if "scripts/install" in line and "RUN" in line]
    assert runs == [
        "RUN bash scripts/install /opt/lof/.venv aws,lambda deps",
        "RUN bash scripts/install /opt/lof/.venv aws,lambda wheel && rm -rf lof",
    ]  # the locked dependencies, then lof as a built wheel (not editable)
    assert "COPY requirements/aws-lambda.lock requirements/aws-lambda.lock" in dockerfile
    assert "COPY scripts/install scripts/check-lock scripts/" in dockerfile
    makefile = (ROOT / "Makefile").read_text()
    assert "bash scripts/install $(VENV) dev" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()


PIN = re.compile(
    r"^([A-Za-z0-9._-]+)==(\S+) \\\n((?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)", re.M
)


def test_every_locked_release_carries_its_hashes_and_the_sets_agree() -> None:
    """Each lock pins every package with the hashes of its files; the three install sets share
    one version of every package they have in common."""
    versions: dict[str, set[str]] = {}
    for lock in sorted((ROOT / "requirements").glob("*.lock")):
        text = lock.read_text()
        pins = PIN.findall(text)
        assert len(pins) == len(re.findall(r"^[A-Za-z0-9._-]+==", text, re.M)), lock.name
        for name, version, _ in pins:
            versions.setdefault(name.lower(), set()).add(version)
    assert {p.name for p in (ROOT / "requirements").glob("*.lock")} == {
        "dev.lock",
        "aws-lambda.lock",
        "aws-deploy-dev.lock",
    }
    assert {name: v for name, v in versions.items() if len(v) > 1} == {}
    for core in ("prefect", "mlflow", "pandas", "scikit-learn", "fastapi", "boto3", "setuptools"):
        assert core in versions, core


def check_lock(lock: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check-lock"), str(lock)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_installed_environment_is_the_locked_one_and_a_drift_is_refused(
    tmp_path: Path,
) -> None:
    """CI's environment is exactly requirements/dev.lock (what scripts/install checks last);
    a lock it no longer matches, either way, is refused with what differs."""
    lock = (ROOT / "requirements" / "dev.lock").read_text()
    assert check_lock(ROOT / "requirements" / "dev.lock").returncode == 0
    version = metadata.version("pandas")
    moved = tmp_path / "moved.lock"
    moved.write_text(lock.replace(f"pandas=={version}", "pandas==0.0.1"))
    refused = check_lock(moved)
    assert refused.returncode == 1
    assert f"pandas {version} is installed, the lock says 0.0.1" in refused.stderr
    assert "run scripts/install again" in refused.stderr
    dropped = tmp_path / "dropped.lock"
    dropped.write_text(re.sub(r"^orjson==.*\n(    --hash.*\n)+", "", lock, flags=re.M))
    assert (
        "orjson" in check_lock(dropped).stderr
        and "installed but not locked" in check_lock(dropped).stderr
    )


def _imported_top_level() -> set[str]:
    names: set[str] = set()
    for path in [*(ROOT / "lof").rglob("*.py"), *(ROOT / "flows").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_every_runtime_dependency_is_used() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    imported = _imported_top_level()
    unused = []
    for requirement in project["dependencies"]:
        name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]
        if name in DRIVERS:
            continue
        module = IMPORT_NAMES.get(name, name.replace("-", "_").lower())
        if module not in imported:
            unused.append(name)
    assert unused == []
    assert "prefect-aws" in str(project["optional-dependencies"]["aws"])


class _CfnLoader(yaml.SafeLoader):
    pass


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> object:
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


for _tag in ("!Ref", "!GetAtt", "!Sub", "!If", "!Not", "!Equals", "!Join"):
    _CfnLoader.add_constructor(_tag, _tagged)


def _stack(name: str) -> dict:
    return yaml.load((ROOT / "deployments" / name).read_text(), Loader=_CfnLoader)


def test_the_cloudformation_templates_pass_cfn_lint() -> None:
    templates = sorted(str(p) for p in (ROOT / "deployments").glob("*.cfn.yaml"))
    assert len(templates) == 3
    linted = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), *templates],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


def _setting_names() -> set[str]:
    from lof.core.config import Settings

    names = {f"LOF_{name.upper()}" for name in Settings.model_fields}
    return names | {"MLFLOW_TRACKING_URI"}


def test_the_flows_tasks_can_start_and_reach_what_they_need() -> None:
    """The execution role reads exactly the stack's secrets (each one a lof setting); the task
    role is the stores' policy; the network is the operator's, as parameters."""
    stack = _stack("ecs-flows.cfn.yaml")
    resources = stack["Resources"]
    secrets = {k for k, r in resources.items() if r["Type"] == "AWS::SecretsManager::Secret"}
    assert len(secrets) == 4
    (policy,) = resources["ExecutionRole"]["Properties"]["Policies"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert sorted(statement["Resource"]) == sorted(secrets)
    outputs = stack["Outputs"]
    named = {o["Value"]: o["Description"] for k, o in outputs.items() if k.endswith("SecretArn")}
    assert set(named) == secrets and set(named.values()) <= _setting_names()
    assert resources["TaskRole"]["Properties"]["ManagedPolicyArns"] == ["FlowsPolicyArn"]
    parameters = stack["Parameters"]
    assert parameters["SubnetIds"]["Type"] == "List<AWS::EC2::Subnet::Id>"
    assert parameters["SecurityGroupIds"]["Type"] == "List<AWS::EC2::SecurityGroup::Id>"
    assert parameters["VpcId"]["Type"] == "AWS::EC2::VPC::Id"


def test_the_stack_tables_are_the_store_tables(moto_endpoint: str) -> None:
    """The CloudFormation tables, created as written on moto_server, are what the store opens
    with table creation off (its default on AWS); without them it says where they come from."""
    stack = _stack("s3-eventbridge.cfn.yaml")
    prefix = f"cfn{uuid.uuid4().hex[:6]}_"
    url = f"dynamodb://?endpoint={moto_endpoint}&prefix={prefix}&region=us-east-1&create=false"
    with pytest.raises(StoreError, match=rf"table {prefix}predictions does not exist.*cfn"):
        open_prediction_store(url)

    client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    tables = (
        "FeaturesTable",
        "PredictionsTable",
        "FeedbackTable",
        "InterventionsTable",
        "DeliveriesTable",
        "PrivacyTable",
        "AccessLogTable",
    )
    for resource in tables:
        props = stack["Resources"][resource]["Properties"]
        client.create_table(
            TableName=props["TableName"].replace("${TablePrefix}", prefix),
            BillingMode=props["BillingMode"],
            AttributeDefinitions=props["AttributeDefinitions"],
            KeySchema=props["KeySchema"],
        )
    from tests.api._data import prediction_frame

    store = open_prediction_store(url)
    frame = prediction_frame(class_id=12, users=(1, 2, 3), seed=1)
    day = date(2025, 3, 1)
    store.write_day(day=day, predictions=frame)
    assert [r["user_id"] for r in store.read_class_day(day=day, class_id=12)] == [1, 2, 3]

    from lof.stores.feedback import open_feedback_store

    open_feedback_store(url)  # the stack's feedback table, opened with creation off
    from lof.stores.interventions import open_intervention_store

    open_intervention_store(url).close()  # and its interventions table
    from lof.stores.deliveries import open_delivery_store

    open_delivery_store(url).close()  # and its deliveries table
    ttl = stack["Resources"]["DeliveriesTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": "expires_at", "Enabled": True}
    from lof.stores.access_log import open_access_log
    from lof.stores.privacy import open_privacy_store

    open_privacy_store(url).opted_out()
    open_access_log(url).read(since=day)
    access_log = stack["Resources"]["AccessLogTable"]["Properties"]
    assert access_log["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}

    api_policy = stack["Resources"]["ApiPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    writes = [
        statement
        for statement in api_policy
        if any("Write" in a or "Put" in a or "Delete" in a for a in statement["Action"])
    ]
    # the API writes feedback, the webhook deliveries it handled, the opt-out list, the access
    # log and (an opt-out) predictions;
    # it never writes the features table
    written = {str(s["Resource"]).split(".")[0] for s in writes}
    assert written == {
        "FeedbackTable",
        "InterventionsTable",
        "DeliveriesTable",
        "PrivacyTable",
        "AccessLogTable",
        "PredictionsTable",
    }


def test_the_lambda_template_runs_the_api_handler_from_the_image() -> None:
    stack = _stack("api-lambda.cfn.yaml")
    function = stack["Resources"]["ApiFunction"]["Properties"]
    assert function["PackageType"] == "Image"
    assert function["ImageConfig"]["Command"] == ["lof.api.handler"]
    entry = function["ImageConfig"]["EntryPoint"]
    assert entry[-2:] == ["-m", "awslambdaric"]
    import lof.api

    assert callable(lof.api.handler)
    assert stack["Resources"]["ProxyMethod"]["Properties"]["Integration"]["Type"] == "AWS_PROXY"
    env = function["Environment"]["Variables"]
    pages_and_webhooks = {
        "LOF_API_KEYS",
        "LOF_LINK_SECRET",
        "LOF_PUBLIC_URL",
        "LOF_FRAME_ANCESTORS",
        "LOF_WEBHOOK_SECRET",
        "LOF_MLFLOW_WEBHOOK_SECRET",
    }
    assert pages_and_webhooks <= set(env) and pages_and_webhooks <= _setting_names()
    assert {"PREFECT_API_URL", "PREFECT_API_KEY"} <= set(env)
    # the stage is in LOF_PUBLIC_URL's path, which the pages' links keep
    assert env["LOF_PUBLIC_URL"][2].endswith("/prod")
    assert stack["Resources"]["Stage"]["Properties"]["StageName"] == "prod"
