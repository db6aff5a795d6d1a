"""Settings: environment variables in, a clear error naming the variable out."""

from __future__ import annotations

import pytest

from shared.errors import ConfigError
from shared.settings import AwsSettings, TopologySettings, WorkerSettings, load_settings


def test_endpoint_overrides_per_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:5000")
    settings = load_settings(AwsSettings)
    assert settings.endpoint_for("sqs") == "http://127.0.0.1:4566"
    assert settings.endpoint_for("dynamodb") == "http://127.0.0.1:5000"


def test_no_endpoint_means_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    settings = load_settings(AwsSettings)
    assert settings.endpoint_for("sns") is None
    assert settings.region == "eu-west-1"


def test_a_malformed_endpoint_names_the_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "localhost:4566")
    with pytest.raises(ConfigError, match="endpoint_url: 'localhost:4566' is not an http"):
        load_settings(AwsSettings)


def test_a_malformed_prefix_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOILKIT_NAME_PREFIX", "no spaces allowed")
    with pytest.raises(ConfigError) as info:
        load_settings(TopologySettings)
    assert "TOILKIT_NAME_PREFIX" in str(info.value)
    assert "'no spaces allowed'" in str(info.value)


def test_a_heartbeat_slower_than_the_visibility_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="heartbeat_every"):
        WorkerSettings(visibility_timeout=10, heartbeat_every=30)
    assert WorkerSettings(visibility_timeout=30).heartbeat_interval == 10
