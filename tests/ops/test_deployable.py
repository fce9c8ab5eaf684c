"""Deployable: one install step for CI and the image, a lock CI honours, every dependency used,
and the DynamoDB tables of the CloudFormation stack are the ones the store uses.

No Docker engine runs here, so the Dockerfile is not built: these tests check that it installs
through scripts/install (the step CI runs) and that what CI installed matches the lock."""

from __future__ import annotations

import ast
import re
import tomllib
import uuid
from datetime import date
from importlib import metadata
from pathlib import Path

import boto3
import pytest
import yaml

from lof.errors import StoreError
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
    assert "-c requirements.lock" in install
    dockerfile = (ROOT / "Dockerfile").read_text()
    (run,) = [
        line for line in dockerfile.splitlines() if "scripts/install" in line and "RUN" in line
    ]
    assert run.startswith("RUN bash scripts/install ")
    assert "COPY scripts/install scripts/install" in dockerfile
    assert "requirements.lock" in dockerfile
    makefile = (ROOT / "Makefile").read_text()
    assert "bash scripts/install $(VENV) dev" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return pins


def test_the_installed_environment_is_the_locked_one() -> None:
    """CI installs with the lock as constraints, so every locked package present is at its
    locked version (a mismatch means the lock was not regenerated: scripts/lock)."""
    pins = lock()
    for core in ("prefect", "mlflow", "pandas", "scikit-learn", "fastapi", "boto3"):
        assert core in pins, core
    mismatched = {}
    for dist in metadata.distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
        if name in pins and pins[name] != dist.version:
            mismatched[name] = (dist.version, pins[name])
    assert mismatched == {}


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


for _tag in ("!Ref", "!GetAtt", "!Sub"):
    _CfnLoader.add_constructor(_tag, lambda loader, node: loader.construct_scalar(node))
for _tag in ("!If", "!Not", "!Equals"):
    _CfnLoader.add_constructor(_tag, lambda loader, node: loader.construct_sequence(node))


def test_the_stack_tables_are_the_store_tables(moto_endpoint: str) -> None:
    """The CloudFormation tables, created as written on moto_server, are what the store opens
    with table creation off (its default on AWS); without them it says where they come from."""
    stack = yaml.load(
        (ROOT / "deployments" / "s3-eventbridge.cfn.yaml").read_text(), Loader=_CfnLoader
    )
    prefix = f"cfn{uuid.uuid4().hex[:6]}_"
    url = f"dynamodb://?endpoint={moto_endpoint}&prefix={prefix}&region=us-east-1&create=false"
    with pytest.raises(StoreError, match=rf"table {prefix}predictions does not exist.*cfn"):
        open_prediction_store(url)

    client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    tables = (
        "FeaturesTable",
        "PredictionsTable",
        "FeedbackTable",
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

    open_feedback_store(url)  # the stack's tables, opened with creation off
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
    # the API writes feedback, the opt-out list, the access log and (an opt-out) predictions;
    # it never writes the features table
    written = {str(s["Resource"]).split(".")[0] for s in writes}
    assert written == {"FeedbackTable", "PrivacyTable", "AccessLogTable", "PredictionsTable"}


def test_the_lambda_template_runs_the_api_handler_from_the_image() -> None:
    stack = yaml.load((ROOT / "deployments" / "api-lambda.cfn.yaml").read_text(), Loader=_CfnLoader)
    function = stack["Resources"]["ApiFunction"]["Properties"]
    assert function["PackageType"] == "Image"
    assert function["ImageConfig"]["Command"] == ["lof.api.handler"]
    entry = function["ImageConfig"]["EntryPoint"]
    assert entry[-2:] == ["-m", "awslambdaric"]
    import lof.api

    assert callable(lof.api.handler)
    assert stack["Resources"]["ProxyMethod"]["Properties"]["Integration"]["Type"] == "AWS_PROXY"
