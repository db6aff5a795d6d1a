"""EnvSettings reads the environment as pydantic-settings' BaseSettings did.

Each settings class is compared with a twin built on pydantic-settings from the same
fields and configuration, in the same environment: the values read must be equal.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.gateway.settings import GatewaySettings
from shared.env_settings import EnvSettings, environment_values
from shared.errors import ConfigError
from shared.observability import ObservabilitySettings
from tests.unit.test_infra_deploy import SETTINGS_CLASSES
from toilkit.aws_lambda import LambdaSettings

#: Every settings class a service or function reads (the Terraform test's list) and the logs'.
CLASSES: tuple[type[EnvSettings], ...] = (*SETTINGS_CLASSES, ObservabilitySettings)
#: Names as Lambda, compose files and people set them: aliases, prefixes, other cases,
#: JSON, nested ``__`` fields, a variable read by a field's name besides its alias.
ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "eu-west-3",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
    "aws_endpoint_url_sqs": "http://127.0.0.1:4567",
    "TOILKIT_AWS_READ_TIMEOUT": "40",
    "TOILKIT_NAME_PREFIX": "demo",
    "toilkit_bucket": "demo-artifacts",
    "TOILKIT_LOG_FORMAT": "json",
    "TOILKIT_SERVICE": "gateway",
    "TOILKIT_TOPIC_ARN": "arn:aws:sns:eu-west-3:123456789012:demo-events",
    "TOILKIT_QUEUE_URLS": '{"batch": "http://127.0.0.1:4566/000000000000/demo-batch"}',
    "TOILKIT_SLACK_SIGNING_SECRET_PARAMETER": "/demo/slack/signing-secret",
    "TOILKIT_SECRETS_EXTENSION": "true",
    "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": "2774",
    "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
    "AWS_SESSION_TOKEN": "token",
    "TOILKIT_DRIFT_SCAN_PROJECT": "demo-scan",
    "SLACK_BOT_TOKEN": "xoxb-shared",
    "TOILKIT_NOTIFIER_SLACK_BOT_TOKEN": "xoxb-notifier",
    "SLACK_SIGNING_SECRET": "0123456789abcdef0123456789abcdef",
    "TOILKIT_GATEWAY_SLACK_API_URL": "http://127.0.0.1:3001/api/",
    "toilkit_gateway_port": "3100",
    "TOILKIT_CATALOG_PATH": "catalog/demo.yaml",
    "TOILKIT_NOTIFIER_SLACK_API_URL": "http://127.0.0.1:3001/api/",
    "TOILKIT_NOTIFIER_RETRIES": '{"rate_limited": 2}',
    "TOILKIT_NOTIFIER_RETRIES__SERVER_ERRORS": "1",
    "TOILKIT_NOTIFIER_WORKER__CONCURRENCY": "4",
    "TOILKIT_BATCH_WORKER__VISIBILITY_TIMEOUT": "120",
    "TOILKIT_BATCH_SLACK_API_URL": "http://127.0.0.1:3001/api/",
    "TOILKIT_DETECTOR_WORKER__HANDLER_TIMEOUT": "600",
}


def pydantic_settings_twin(cls: type[EnvSettings]) -> type[BaseSettings]:
    """``cls``'s fields and configuration on pydantic-settings (without its validators)."""
    fields = dict(cls.model_fields)
    namespace: dict[str, Any] = {
        "__annotations__": {name: field.annotation for name, field in fields.items()},
        **fields,
        "model_config": SettingsConfigDict(**cls.model_config),  # type: ignore[typeddict-item]
    }
    return type(f"Twin{cls.__name__}", (BaseSettings,), namespace)


def read(cls: type[BaseModel]) -> dict[str, Any]:
    return cls().model_dump()


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_each_settings_class_reads_what_pydantic_settings_read(
    cls: type[EnvSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    assert read(cls) == read(pydantic_settings_twin(cls))
    assert read(cls) != cls.model_construct().model_dump()  # read something: not the defaults


def test_arguments_win_over_the_environment_by_name_or_alias(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "0123456789abcdef0123456789abcdef")
    monkeypatch.setenv("TOILKIT_GATEWAY_PORT", "3100")
    monkeypatch.setenv("TOILKIT_GATEWAY_SLACK_API_URL", "http://127.0.0.1:3001/api/")
    by_name = GatewaySettings(slack_signing_secret="f" * 32, port=3200)
    by_alias = GatewaySettings(SLACK_SIGNING_SECRET="e" * 32)
    assert by_name.slack_signing_secret is not None and by_name.port == 3200
    assert by_name.slack_signing_secret.get_secret_value() == "f" * 32
    assert by_alias.slack_signing_secret is not None and by_alias.port == 3100
    assert by_alias.slack_signing_secret.get_secret_value() == "e" * 32


def test_a_variable_that_is_not_json_names_itself() -> None:
    with pytest.raises(ConfigError, match="TOILKIT_QUEUE_URLS: not valid JSON"):
        environment_values(LambdaSettings, {"TOILKIT_QUEUE_URLS": "batch=http://x"})
