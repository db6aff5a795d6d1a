"""The gateway's settings: Slack's own variable names, and when a secret may be generated."""

from __future__ import annotations

import pytest

from services.gateway.settings import (
    GatewaySettings,
    generate_signing_secret,
    is_loopback,
)
from shared.errors import ConfigError
from shared.settings import load_settings
from shared.slack.settings import SLACK_API_URL, STANDIN_TOKEN

STANDIN = "http://127.0.0.1:3001/api"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "TOILKIT_GATEWAY_SLACK_BOT_TOKEN",
        "TOILKIT_GATEWAY_SLACK_SIGNING_SECRET",
        "TOILKIT_GATEWAY_SLACK_APP_TOKEN",
        "TOILKIT_GATEWAY_SLACK_API_URL",
        "TOILKIT_GATEWAY_HOST",
        "TOILKIT_GATEWAY_PORT",
        "TOILKIT_CATALOG_PATH",
        "TOILKIT_GATEWAY_CATALOG_PATH",
    ):
        monkeypatch.delenv(name, raising=False)


def test_slacks_conventional_variables_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "abc")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1")

    settings = load_settings(GatewaySettings)

    assert settings.token == "xoxb-1"
    assert settings.slack_signing_secret is not None
    assert settings.slack_signing_secret.get_secret_value() == "abc"
    assert settings.socket_mode
    assert "abc" not in repr(settings)


def test_the_prefixed_names_work_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOILKIT_GATEWAY_SLACK_BOT_TOKEN", "xoxb-2")
    monkeypatch.setenv("TOILKIT_GATEWAY_PORT", "3100")
    monkeypatch.setenv("TOILKIT_CATALOG_PATH", "/etc/toilkit/catalog.yaml")

    settings = load_settings(GatewaySettings)

    assert (settings.token, settings.port, str(settings.catalog_path)) == (
        "xoxb-2",
        3100,
        "/etc/toilkit/catalog.yaml",
    )
    assert not settings.socket_mode


def test_the_defaults_listen_on_loopback_port_3000_for_slash_toil(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOILKIT_GATEWAY_SLACK_API_URL", STANDIN)

    settings = load_settings(GatewaySettings)

    assert (settings.host, settings.port, settings.command_name) == ("127.0.0.1", 3000, "/toil")
    assert settings.slack_api_url == STANDIN + "/"
    assert settings.token == STANDIN_TOKEN
    assert settings.slack_signing_secret is None


def test_real_slack_needs_a_bot_token() -> None:
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN is required"):
        load_settings(GatewaySettings)
    assert load_settings(GatewaySettings, slack_api_url=SLACK_API_URL, slack_bot_token="xoxb-3")


def test_a_public_address_without_a_signing_secret_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"SLACK_SIGNING_SECRET is required when listening on 0\.0\.0\.0"
    ):
        load_settings(GatewaySettings, slack_api_url=STANDIN, host="0.0.0.0")
    assert load_settings(
        GatewaySettings, slack_api_url=STANDIN, host="0.0.0.0", slack_signing_secret="s"
    )


def test_an_empty_signing_secret_is_refused_not_used() -> None:
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET is set but empty"):
        load_settings(GatewaySettings, slack_api_url=STANDIN, slack_signing_secret="")


def test_socket_mode_needs_no_signing_secret_but_a_bot_token() -> None:
    assert load_settings(
        GatewaySettings, slack_bot_token="xoxb-1", slack_app_token="xapp-1", host="0.0.0.0"
    ).socket_mode
    with pytest.raises(ConfigError, match="needs SLACK_BOT_TOKEN"):
        load_settings(GatewaySettings, slack_api_url=STANDIN, slack_app_token="xapp-1")


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("command_name", "toil", "TOILKIT_GATEWAY_COMMAND_NAME"),
        ("port", 70000, "TOILKIT_GATEWAY_PORT"),
        ("read_timeout_seconds", 5, "TOILKIT_GATEWAY_READ_TIMEOUT_SECONDS"),
    ],
)
def test_bad_values_name_their_variable(field: str, value: object, variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_settings(GatewaySettings, slack_api_url=STANDIN, **{field: value})


def test_loopback_addresses_and_generated_secrets() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1") and not is_loopback("gw")
    first, second = generate_signing_secret(), generate_signing_secret()
    assert len(first) == 32 and first != second
