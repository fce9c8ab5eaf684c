"""Settings: embedded defaults, validation naming the variable, secrets never printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from lof.core.config import get_settings
from lof.core.errors import ConfigError


def test_embedded_defaults_live_under_lof_home(lof_home: Path) -> None:
    settings = get_settings()
    assert settings.home == lof_home.resolve()
    assert settings.leb2_url == f"sqlite:///{lof_home.resolve() / 'leb2-demo.db'}"
    assert settings.amplitude_source == str(lof_home.resolve() / "amplitude")
    assert settings.store_url == f"sqlite:///{lof_home.resolve() / 'lof.db'}"
    assert settings.mlflow_tracking_uri == f"sqlite:///{lof_home.resolve() / 'mlflow.db'}"
    assert (settings.model_name, settings.model_stage) == ("lof-outcome", "Production")
    assert settings.timezone == "Asia/Bangkok"
    assert settings.label_rule == "attainment"
    assert settings.api_key_list == []
    assert settings.webhook_secret is None


def test_environment_overrides(lof_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOF_LEB2_URL", "mysql+pymysql://reader:pw@db.example/leb2")
    monkeypatch.setenv("LOF_STORE_URL", "dynamodb://?endpoint=http://127.0.0.1:5000&prefix=x_")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://mlflow.example")
    monkeypatch.setenv("LOF_AMPLITUDE_SOURCE", "https://analytics.eu.amplitude.com")
    monkeypatch.setenv("LOF_LABEL_RULE", "max")
    monkeypatch.setenv("LOF_API_KEYS", " k1, k2 ,,")
    settings = get_settings()
    assert settings.leb2_url == "mysql+pymysql://reader:pw@db.example/leb2"
    assert settings.store_url.startswith("dynamodb://")
    assert settings.mlflow_tracking_uri == "https://mlflow.example"
    assert settings.amplitude_is_http
    assert settings.label_rule == "max"
    assert settings.api_key_list == ["k1", "k2"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LOF_TIMEZONE", "Mars/Olympus"),
        ("LOF_LEB2_URL", "not a url at all"),
        ("LOF_STORE_URL", "::nonsense::"),
        ("LOF_AMPLITUDE_SOURCE", "https://"),
        ("LOF_LABEL_RULE", "median"),
        ("LOF_RISK_THRESHOLD", "1.5"),
        ("MLFLOW_TRACKING_URI", "ftp://mlflow.example"),
        ("MLFLOW_TRACKING_URI", "https://"),
    ],
)
def test_malformed_values_fail_naming_the_variable(
    lof_home: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        get_settings()
    message = str(caught.value)
    assert variable in message
    assert "\n" not in message


def test_secrets_are_never_printed(lof_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOF_AMPLITUDE_SECRET_KEY", "amp-s3cr3t")
    monkeypatch.setenv("LOF_API_KEYS", "api-s3cr3t")
    monkeypatch.setenv("LOF_WEBHOOK_SECRET", "hook-s3cr3t")
    settings = get_settings()
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    for secret in ("amp-s3cr3t", "api-s3cr3t", "hook-s3cr3t"):
        assert secret not in shown
    assert settings.amplitude_secret_key.get_secret_value() == "amp-s3cr3t"


def test_passwords_in_urls_are_not_in_the_settings_repr(
    lof_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOF_LEB2_URL", "mysql+pymysql://reader:hunter2@db.example/leb2")
    monkeypatch.setenv("LOF_STORE_URL", "postgresql+psycopg2://lof:pgpass@db.example/lof")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://ops:mlpass@mlflow.example")
    settings = get_settings()
    shown = repr(settings) + str(settings)
    for password in ("hunter2", "pgpass", "mlpass"):
        assert password not in shown
    assert "reader:***@db.example" in shown
    assert settings.leb2_url.endswith("reader:hunter2@db.example/leb2")


def test_database_password_is_redacted_in_errors(
    lof_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOF_LEB2_URL", "mysql+pymysql://u:hunter2@host:notaport/db")
    with pytest.raises(ConfigError) as caught:
        get_settings()
    assert "hunter2" not in str(caught.value)
    assert "LOF_LEB2_URL" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mysql+pymysql://reader:hunter2@db/leb2", "mysql+pymysql://reader:***@db/leb2"),
        ("https://user:hunter2@mlflow.example", "https://user:***@mlflow.example"),
        # Not SQLAlchemy's form (missing ":"): still no password.
        ("mysql+pymysql//reader:hunter2@db/leb2", "mysql+pymysql//reader:***@db/leb2"),
        ("reader:hunter2@db", "reader:***@db"),
        ("sqlite:///path/lof.db", "sqlite:///path/lof.db"),
        ("/a/folder", "/a/folder"),
    ],
)
def test_one_url_redaction_for_every_message(url: str, shown: str) -> None:
    from lof.core.config import redact_url

    assert redact_url(url) == shown


def test_home_defaults_follow_an_explicit_home(tmp_path: Path) -> None:
    settings = get_settings(home=tmp_path / "h")
    assert settings.leb2_url == f"sqlite:///{tmp_path / 'h' / 'leb2-demo.db'}"
    assert settings.store_url == f"sqlite:///{tmp_path / 'h' / 'lof.db'}"


def test_request_limits_and_proxies(lof_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = get_settings()
    assert (settings.max_url_bytes, settings.max_query_params) == (4096, 32)
    assert settings.max_body_bytes == 262_144 and not settings.api_docs
    assert settings.forwarded_allow_ips == ""  # no proxy believed unless named
    monkeypatch.setenv("LOF_FORWARDED_ALLOW_IPS", " 10.0.0.0/8, 127.0.0.1 ,")
    assert get_settings().forwarded_allow_ips == "10.0.0.0/8,127.0.0.1"
    monkeypatch.setenv("LOF_FORWARDED_ALLOW_IPS", "10.0.0.0/8,proxy.example")
    with pytest.raises(ConfigError, match=r"LOF_FORWARDED_ALLOW_IPS holds 'proxy\.example'"):
        get_settings()
    monkeypatch.delenv("LOF_FORWARDED_ALLOW_IPS")
    monkeypatch.setenv("LOF_MAX_BODY_BYTES", "100")
    with pytest.raises(ConfigError, match="LOF_MAX_BODY_BYTES"):
        get_settings()
