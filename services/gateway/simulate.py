"""Slack's side of the conversation, for tests, benchmarks and poking a local gateway.

Builds request bodies shaped as Slack sends them (a slash command form, ``block_actions``,
``view_submission``) and signs them exactly as Slack does: ``v0=`` + HMAC-SHA256 of
``v0:<timestamp>:<raw body>`` with the signing secret, in ``X-Slack-Signature``, with the
timestamp in ``X-Slack-Request-Timestamp``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

TEAM_ID = "T0STANDIN1"


@dataclass(frozen=True)
class SlackUserRef:
    id: str
    name: str


def slash_command_body(
    text: str,
    *,
    user: SlackUserRef,
    channel_id: str,
    trigger_id: str,
    command: str = "/toil",
    response_url: str | None = None,
) -> bytes:
    """A slash command invocation as Slack posts it (a form)."""
    fields = {
        "token": "deprecated-verification-token",
        "team_id": TEAM_ID,
        "team_domain": "standin",
        "channel_id": channel_id,
        "channel_name": channel_id.lower(),
        "user_id": user.id,
        "user_name": user.name,
        "command": command,
        "text": text,
        "api_app_id": "A0TOILKIT1",
        "is_enterprise_install": "false",
        "response_url": response_url or f"https://hooks.slack.com/commands/{TEAM_ID}/1/x",
        "trigger_id": trigger_id,
    }
    return urlencode(fields).encode()


def interaction_body(payload: Mapping[str, Any]) -> bytes:
    """An interaction as Slack posts it: a form with the payload JSON in ``payload``."""
    return urlencode({"payload": json.dumps(payload)}).encode()


def _user(user: SlackUserRef) -> dict[str, Any]:
    return {"id": user.id, "username": user.name, "name": user.name, "team_id": TEAM_ID}


def block_actions_payload(
    action: Mapping[str, Any],
    *,
    user: SlackUserRef,
    trigger_id: str,
    channel_id: str | None = None,
    view: Mapping[str, Any] | None = None,
    message_ts: str | None = None,
) -> dict[str, Any]:
    """A ``block_actions`` payload: one element interaction in a message or a modal."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user(user),
        "api_app_id": "A0TOILKIT1",
        "token": "deprecated-verification-token",
        "team": {"id": TEAM_ID, "domain": "standin"},
        "trigger_id": trigger_id,
        "actions": [{"action_ts": f"{time.time():.6f}", **action}],
        "is_enterprise_install": False,
    }
    if view is not None:
        payload["view"] = dict(view)
        payload["container"] = {"type": "view", "view_id": view.get("id")}
    if channel_id is not None:
        payload["channel"] = {"id": channel_id, "name": channel_id.lower()}
        payload["container"] = {
            "type": "message",
            "message_ts": message_ts or "1.000001",
            "channel_id": channel_id,
        }
        payload["response_url"] = f"https://hooks.slack.com/actions/{TEAM_ID}/1/x"
    return payload


def button(action_id: str, value: str) -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "block_id": "b", "value": value}


def select(action_id: str, value: str, *, block_id: str) -> dict[str, Any]:
    return {
        "type": "static_select",
        "action_id": action_id,
        "block_id": block_id,
        "selected_option": {"text": {"type": "plain_text", "text": value}, "value": value},
    }


def view_submission_payload(
    view: Mapping[str, Any],
    answers: Mapping[str, Any],
    *,
    user: SlackUserRef,
    trigger_id: str = "1.1.submit",
) -> dict[str, Any]:
    """A ``view_submission`` of ``view`` (as Slack stores it) with ``answers`` typed in.

    Args:
        view: the view as ``views.open``/``views.update`` returned it (id, hash, blocks).
        answers: block id -> what the person entered: text or a number as a string, an
            option's value for selects and radio buttons, a user id for a user picker,
            None to leave an input empty. Inputs not named keep their initial value.
    """
    submitted = dict(view)
    submitted["state"] = {"values": submission_state(view.get("blocks", []), answers)}
    return {
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": "standin"},
        "user": _user(user),
        "api_app_id": "A0TOILKIT1",
        "token": "deprecated-verification-token",
        "trigger_id": trigger_id,
        "view": submitted,
        "response_urls": [],
        "is_enterprise_install": False,
    }


def submission_state(blocks: Any, answers: Mapping[str, Any]) -> dict[str, Any]:
    """``view.state.values`` for the input blocks of a view, as Slack reports them."""
    values: dict[str, Any] = {}
    for block in blocks:
        if block.get("type") != "input":
            continue
        element = block["element"]
        block_id = block["block_id"]
        answer = answers[block_id] if block_id in answers else _initial(element)
        values[block_id] = {element["action_id"]: _state_entry(element, answer)}
    return values


def _initial(element: Mapping[str, Any]) -> Any:
    if "initial_option" in element:
        return element["initial_option"]["value"]
    if "initial_user" in element:
        return element["initial_user"]
    return element.get("initial_value")


def _state_entry(element: Mapping[str, Any], answer: Any) -> dict[str, Any]:
    kind = element["type"]
    entry: dict[str, Any] = {"type": kind}
    if kind in ("static_select", "radio_buttons"):
        entry["selected_option"] = (
            None
            if answer is None
            else {"text": {"type": "plain_text", "text": str(answer)}, "value": str(answer)}
        )
    elif kind == "users_select":
        entry["selected_user"] = answer
    elif kind == "checkboxes":
        entry["selected_options"] = [] if answer is None else [{"value": str(answer)}]
    else:
        entry["value"] = None if answer is None else str(answer)
    return entry


@dataclass
class TriggerSource:
    """Trigger ids for requests that need none from the stand-in (a counter)."""

    prefix: str = "9"
    _count: int = field(default=0, init=False)

    def next(self) -> str:
        self._count += 1
        return f"{self.prefix}.{int(time.time())}.{self._count:016x}"
