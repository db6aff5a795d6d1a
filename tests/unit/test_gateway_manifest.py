"""The Slack app manifest agrees with what the gateway serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from services.gateway.settings import GatewaySettings
from services.gateway.transport import EVENTS_PATH

MANIFEST = Path(__file__).resolve().parents[2] / "slack" / "manifest.yaml"


def manifest() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(MANIFEST.read_text())
    return data


def test_the_slash_command_is_the_one_the_gateway_answers_by_default() -> None:
    [command] = manifest()["features"]["slash_commands"]

    assert command["command"] == GatewaySettings.model_fields["command_name"].default
    assert command["should_escape"] is False


def test_commands_and_interactivity_go_to_the_gateways_events_path() -> None:
    data = manifest()
    urls = [
        data["features"]["slash_commands"][0]["url"],
        data["settings"]["interactivity"]["request_url"],
        # Where Slack asks for the options of an external_select (options_from).
        data["settings"]["interactivity"]["message_menu_options_url"],
    ]

    assert all(url.startswith("https://") and url.endswith(EVENTS_PATH) for url in urls)
    assert data["settings"]["interactivity"]["is_enabled"] is True


def test_the_bot_has_the_scopes_the_gateway_and_notifier_call_for() -> None:
    scopes = set(manifest()["oauth_config"]["scopes"]["bot"])

    # commands: the slash command; chat:write: ephemeral replies and direct messages;
    # usergroups:read: usergroups.users.list. views.* need no scope.
    assert {"commands", "chat:write", "usergroups:read"} <= scopes
    assert {"chat:write.public", "channels:history", "groups:history"} <= scopes
