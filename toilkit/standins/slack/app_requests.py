"""Slack's side of the conversation with an app: what Slack POSTs to the app's Request URL.

The one home for it, shared by the stand-in's client (what people do on the page), the tests
and the benchmarks: request bodies shaped as Slack sends them (a slash command form, and the
``block_actions``, ``view_submission`` and ``view_closed`` interactions as a ``payload=``
form), signed with :mod:`shared.slack.signing` and sent with :func:`post_to_app`.
:class:`SignedSlack` drives one app (a gateway) with them, trigger ids coming from the
Slack stand-in as they would from Slack.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, Required, TypedDict, Unpack
from urllib.parse import urlencode

import aiohttp

from shared.slack.signing import signed_headers
from toilkit.standins.slack.arguments import JsonDict
from toilkit.standins.slack.forms import state_values, with_element_ids

TEAM_ID = "T0STANDIN1"
TEAM_DOMAIN = "toilkit-standin"
APP_ID = "A0TOILKIT1"
#: Slack still sends the deprecated verification token; apps that check signatures ignore it.
VERIFICATION_TOKEN = "deprecated-verification-token"


@dataclass(frozen=True)
class SlackUserRef:
    """A person as Slack names them in a request."""

    id: str
    name: str


def slash_command_form(
    text: str,
    *,
    user: SlackUserRef,
    channel_id: str,
    trigger_id: str,
    command: str = "/toil",
    response_url: str | None = None,
    channel_name: str | None = None,
) -> dict[str, str]:
    """The fields of a slash command invocation, as Slack posts them."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM_ID,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": channel_id.lower() if channel_name is None else channel_name,
        "user_id": user.id,
        "user_name": user.name,
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url or f"https://hooks.slack.com/commands/{TEAM_ID}/1/x",
        "trigger_id": trigger_id,
    }


class SlashCommandFields(TypedDict, total=False):
    """The keyword arguments of :func:`slash_command_form` (and of the body built from it)."""

    user: Required[SlackUserRef]
    channel_id: Required[str]
    trigger_id: Required[str]
    command: str
    response_url: str | None
    channel_name: str | None


def slash_command_body(text: str, **fields: Unpack[SlashCommandFields]) -> bytes:
    """A slash command invocation as Slack posts it (a form; see :func:`slash_command_form`)."""
    return urlencode(slash_command_form(text, **fields)).encode()


def interaction_body(payload: Mapping[str, Any]) -> bytes:
    """An interaction as Slack posts it: a form whose ``payload`` field is the JSON."""
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()


def interaction_envelope(kind: str, *, user: SlackUserRef, trigger_id: str | None) -> JsonDict:
    """What every interaction payload of ``kind`` starts with (no trigger id when None)."""
    envelope: JsonDict = {
        "type": kind,
        "user": {"id": user.id, "username": user.name, "name": user.name, "team_id": TEAM_ID},
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
    }
    if trigger_id is not None:
        envelope["trigger_id"] = trigger_id
    return envelope


def action_ts(now: float) -> str:
    """An ``action_ts`` as Slack writes it."""
    return f"{now:.6f}"


def block_actions_payload(
    action: Mapping[str, Any],
    *,
    user: SlackUserRef,
    trigger_id: str,
    channel_id: str | None = None,
    view: Mapping[str, Any] | None = None,
    message_ts: str | None = None,
) -> JsonDict:
    """A ``block_actions`` payload: one element interaction in a message or a modal."""
    payload = interaction_envelope("block_actions", user=user, trigger_id=trigger_id)
    payload["actions"] = [{"action_ts": action_ts(time.time()), **action}]
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


def button(action_id: str, value: str) -> JsonDict:
    """A clicked button, as a ``block_actions`` action."""
    return {"type": "button", "action_id": action_id, "block_id": "b", "value": value}


def select(action_id: str, value: str, *, block_id: str) -> JsonDict:
    """A picked ``static_select`` option, as a ``block_actions`` action."""
    return {
        "type": "static_select",
        "action_id": action_id,
        "block_id": block_id,
        "selected_option": {"text": {"type": "plain_text", "text": value}, "value": value},
    }


def block_suggestion_payload(
    view: Mapping[str, Any],
    block_id: str,
    typed: str,
    *,
    user: SlackUserRef,
    action_id: str = "value",
) -> JsonDict:
    """A ``block_suggestion``: ``user`` typed ``typed`` in an ``external_select`` of ``view``."""
    payload = interaction_envelope("block_suggestion", user=user, trigger_id=None)
    payload.update(
        action_id=action_id,
        block_id=block_id,
        value=typed,
        view=dict(view),
        container={"type": "view", "view_id": view.get("id")},
    )
    return payload


def view_submission_payload(
    view: Mapping[str, Any],
    answers: Mapping[str, Any],
    *,
    user: SlackUserRef,
    trigger_id: str = "1.1.submit",
) -> JsonDict:
    """A ``view_submission`` of ``view`` (as Slack stores it) with ``answers`` typed in.

    Args:
        view: the view as ``views.open``/``views.update`` returned it (id, hash, blocks).
        answers: see :func:`submission_state`.
        user: who submits.
        trigger_id: the submission's trigger id.
    """
    submitted = dict(view)
    submitted["state"] = {"values": submission_state(view.get("blocks", []), answers)}
    payload = interaction_envelope("view_submission", user=user, trigger_id=trigger_id)
    payload["view"] = submitted
    payload["response_urls"] = []
    return payload


def submission_state(blocks: Any, answers: Mapping[str, Any]) -> dict[str, Any]:
    """``view.state.values`` of a view's inputs with ``answers`` typed in, as Slack reports it.

    Args:
        blocks: the view's blocks.
        answers: block id -> what the person entered in that input: text or a number, an
            option's value for selects and radio buttons (one the input does not offer is
            reported too, as a forged request may claim it), a user id for a user picker,
            None to leave it empty. Inputs not named keep their initial value.
    """
    with_ids = with_element_ids(blocks, "submission")
    typed = {
        str(block["block_id"]): {
            str(block["element"]["action_id"]): (
                None if answers[block["block_id"]] is None else str(answers[block["block_id"]])
            )
        }
        for block in with_ids
        if block.get("type") == "input" and block["block_id"] in answers
    }
    return state_values(with_ids, typed, offered_only=False)


# ------------------------------------------------------------------ sending them


@dataclass(frozen=True)
class AppAnswer:
    """What the app answered one request with."""

    status: int
    body: bytes
    content_type: str

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def retry_headers(secret: str, body: bytes, retry_num: int) -> dict[str, str]:
    """Slack's headers for its ``retry_num``-th retry of ``body``.

    Slack signs each attempt with the time it is sent, so a retry's signature differs from
    the first attempt's (an identical copy would be a replay).
    """
    stamp = int(time.time()) + retry_num
    return signed_headers(secret, body, timestamp=stamp) | {
        "X-Slack-Retry-Num": str(retry_num),
        "X-Slack-Retry-Reason": "http_timeout",
    }


async def post_to_app(
    http: aiohttp.ClientSession,
    request_url: str,
    signing_secret: str,
    body: bytes,
    headers: Mapping[str, str] | None = None,
) -> AppAnswer:
    """POST ``body`` to an app's Request URL, signed now (unless ``headers`` are given).

    Raises:
        aiohttp.ClientError, OSError: the app cannot be reached.
    """
    # Signed with the real time: the app checks it against its own clock.
    sent = dict(headers) if headers is not None else signed_headers(signing_secret, body)
    async with http.post(request_url, data=body, headers=sent) as response:
        return AppAnswer(response.status, await response.read(), response.content_type)


class TriggerIssuer(Protocol):
    """Hands out trigger ids as Slack does with each interaction (the Slack stand-in)."""

    def issue_trigger(self, user_id: str = ..., view_id: str | None = None) -> str: ...


@dataclass(eq=False)
class SignedSlack:
    """Signed requests to one app (a gateway), as Slack sends them.

    Attributes:
        url: the app's Request URL (the gateway's ``POST /slack/events``).
        secret: the signing secret the app was given.
        standin: the Slack stand-in that hands out trigger ids.
        channel_id: the channel slash commands are typed in.
        http: the session the requests go out on (:meth:`close` it).
    """

    url: str
    secret: str
    standin: TriggerIssuer
    channel_id: str
    http: aiohttp.ClientSession = field(init=False, default_factory=aiohttp.ClientSession)

    async def close(self) -> None:
        await self.http.close()

    def headers(self, body: bytes, *, retry_num: int | None = None) -> dict[str, str]:
        """Slack's headers for ``body``; a retry is signed afresh and says which one it is."""
        if retry_num is None:
            return signed_headers(self.secret, body)
        return retry_headers(self.secret, body, retry_num)

    async def post(self, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
        """POST ``body`` (signed now unless ``headers`` are given); status and text."""
        answer = await post_to_app(self.http, self.url, self.secret, body, headers)
        return answer.status, answer.text

    async def slash(
        self, text: str, user: SlackUserRef, *, channel_id: str | None = None
    ) -> tuple[int, str]:
        """``/toil <text>`` typed by ``user``."""
        body = slash_command_body(
            text,
            user=user,
            channel_id=channel_id or self.channel_id,
            trigger_id=self.standin.issue_trigger(user.id),
        )
        return await self.post(body)

    async def interact(
        self, payload: dict[str, Any], *, retry_num: int | None = None
    ) -> tuple[int, str]:
        """An interaction (``block_actions``, ``view_submission``) as Slack posts it."""
        body = interaction_body(payload)
        return await self.post(body, self.headers(body, retry_num=retry_num))
