"""Slack's client, played for an app: what people do on the page reaches the app as from Slack.

Connected to an app (the gateway's Request URL and signing secret), :class:`SlackClient`
turns a typed slash command or a clicked button into the request Slack would send (built
and signed by :mod:`toilkit.standins.slack.app_requests`, with trigger ids the stand-in
accepts and ``response_url`` s it serves), sends it with Slack's 3-second patience, and
shows the app's answer as Slack shows it. Modals are :mod:`toilkit.standins.slack.modals`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypedDict
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from toilkit.standins.slack.app_requests import (
    action_ts,
    interaction_body,
    interaction_envelope,
    post_to_app,
    slash_command_form,
)
from toilkit.standins.slack.arguments import JsonDict, SlackApiFailure, read_arguments, truthy
from toilkit.standins.slack.block_kit import message_content
from toilkit.standins.slack.forms import (
    ClientFailure,
    element_action,
    find_element,
    state_values,
    with_element_ids,
)
from toilkit.standins.slack.workspace import Channel, SlackUser, Workspace

logger = logging.getLogger(__name__)


#: Slack waits this long for an app to acknowledge a slash command or an interaction.
APP_TIMEOUT_SECONDS = 3.0


class AppOptions(TypedDict, total=False):
    """The optional arguments of :meth:`SlackClient.connect_app`."""

    timeout: float
    channel: str | None


#: A ``response_url`` takes up to five messages within 30 minutes.
RESPONSE_URL_TTL_SECONDS = 1800.0
RESPONSE_URL_MAX_USES = 5
#: Where the notifier posts by default; the page opens on it when an app is connected.
DEFAULT_APP_CHANNEL = "#toilkit"


@dataclass(frozen=True)
class AppConnection:
    """The app Slack's client side talks to: its Request URL and signing secret."""

    request_url: str
    signing_secret: str
    timeout: float
    channel: str | None


@dataclass(frozen=True)
class AppOutcome:
    """How the app answered one request, as Slack's client judges it; ``failure`` is Slack's
    error code when it did not answer (in time, or with a 2xx)."""

    status: int | None
    body: bytes = b""
    content_type: str = ""
    failure: Literal["dispatch_failed", "operation_timeout"] | None = None

    def json_object(self) -> JsonDict | None:
        """The answer as a JSON object (None when the body is empty).

        Raises:
            ValueError: the body is neither empty nor a JSON object.
        """
        text = self.body.decode("utf-8", errors="replace").strip()
        if not text:
            return None
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("the answer is JSON but not an object")  # noqa: TRY004 - one error for "not usable"
        return data

    def failure_text(self) -> str:
        """What Slack shows the person when an interaction was not acknowledged."""
        if self.failure == "operation_timeout":
            return "This app is not responding. Try again in a moment."
        if self.status is not None:
            return f"This app responded with Status Code {self.status}."
        return "This app is not responding: we had some trouble connecting. Try again?"


@dataclass
class ResponseHook:
    """A ``response_url`` handed out with an interaction: 5 uses within 30 minutes."""

    token: str
    user_id: str
    channel_id: str
    source_ts: str | None
    source_ephemeral: bool
    issued_at: float
    uses: int = 0


class SlackClient:
    """Slack's client side for one workspace: the app it talks to and what people do.

    Args:
        workspace: where what the app answers is shown.
        base_url: the stand-in's ``http://host:port`` (for the ``response_url`` s it hands out).
    """

    def __init__(self, workspace: Workspace, base_url: Callable[[], str]) -> None:
        self._workspace = workspace
        self._base_url = base_url
        self.app: AppConnection | None = None
        # One HTTP session for every request to the app, opened on first use.
        self._http: aiohttp.ClientSession | None = None
        self._response_hooks: dict[str, ResponseHook] = {}

    def reset(self) -> None:
        """Forget the ``response_url`` s handed out (the app stays connected)."""
        self._response_hooks = {}
        self.ensure_app_channel()

    async def close(self) -> None:
        """Close the HTTP session to the app."""
        if self._http is not None:
            await self._http.close()
            self._http = None

    def connect_app(
        self,
        request_url: str,
        signing_secret: str,
        *,
        timeout: float = APP_TIMEOUT_SECONDS,
        channel: str | None = DEFAULT_APP_CHANNEL,
    ) -> None:
        """Play Slack's client for an app: what people do on the page is sent to it.

        From then on the page has a message box for slash commands, clickable buttons and
        modals as forms, and the stand-in POSTs each slash command and interaction to
        ``request_url`` signed with ``signing_secret``, exactly as Slack does.

        Args:
            request_url: the app's Request URL (the gateway's ``POST /slack/events``).
            signing_secret: the app's signing secret.
            timeout: seconds the app has to answer (Slack waits 3).
            channel: a channel that exists from the start, so there is somewhere to type
                (``#toilkit`` is where the notifier posts by default).

        Raises:
            ValueError: the URL is not http(s) or the secret is empty.
        """
        if not request_url.startswith(("http://", "https://")):
            raise ValueError(f"the app's request URL {request_url!r} is not an http(s) URL")
        if not signing_secret:
            raise ValueError("the app's signing secret is empty")
        self.app = AppConnection(request_url, signing_secret, timeout, channel)
        self.ensure_app_channel()
        self._workspace.changed()

    def disconnect_app(self) -> None:
        """Stop playing Slack's client; the page is read-only again."""
        self.app = None
        self._workspace.changed()

    @property
    def app_connected(self) -> bool:
        """Whether the page sends slash commands and interactions to an app."""
        return self.app is not None

    async def type_command(self, channel: str, user_id: str, typed: str) -> JsonDict:
        """``user_id`` types ``typed`` (``/toil run``) in ``channel``.

        The app gets the slash command (with a trigger id and a ``response_url``) and its
        immediate answer is shown as Slack shows it: to that person only, unless it says
        ``"response_type": "in_channel"``. A failed request shows Slack's error instead.

        Returns:
            ``{"ok": true, "shown": <message or null>}``, or ``{"ok": false, "error": code,
            "message": what the person saw}``.

        Raises:
            ClientFailure: no app connected, an unknown channel or user, or not a command.
        """
        app = self.require_app()
        found = self._channel(channel)
        user = self.user(user_id)
        command, _, text = typed.strip().partition(" ")
        if not re.fullmatch(r"/[^\s/]+", command):
            raise ClientFailure(
                "not_a_command",
                'Only slash commands reach the app from here: try "/toil help".',
            )
        hook = self._new_response_hook(user.id, found.id, source_ts=None, ephemeral=False)
        form = slash_command_form(
            text.strip(),
            user=user,
            channel_id=found.id,
            channel_name="directmessage" if found.name.startswith("@") else found.name,
            trigger_id=self._workspace.issue_trigger(user.id),
            command=command,
            response_url=self._hook_url(hook),
        )
        answer = await self.send(app, urlencode(form).encode())
        if answer.failure is not None:
            message = f'{command} failed with the error "{answer.failure}"'
            self._workspace.post_slackbot(found, user.id, message)
            return {"ok": False, "error": answer.failure, "message": message}
        try:
            data = answer.json_object()
        except ValueError:
            # Slack shows a plain-text answer as it is.
            data = {"text": answer.body.decode("utf-8", errors="replace")}
        if data is None:
            return {"ok": True, "shown": None}
        try:
            content = message_content(data, require_content=False)
        except SlackApiFailure as failure:
            message = f'{command} failed with the error "{failure.error}"'
            self._workspace.post_slackbot(found, user.id, message)
            return {"ok": False, "error": failure.error, "message": message}
        if not content:
            return {"ok": True, "shown": None}
        if data.get("response_type") == "in_channel":
            shown = self._workspace.post_app_message(found, content)
        else:
            shown = self._workspace.post_ephemeral(found, user.id, content)
        return {"ok": True, "shown": copy.deepcopy(shown)}

    async def click_button(
        self,
        channel: str,
        user_id: str,
        message_ts: str,
        action_id: str,
        block_id: str | None = None,
    ) -> JsonDict:
        """``user_id`` clicks a button of a message: the app gets a ``block_actions``.

        Args:
            channel: the message's channel.
            user_id: who clicks.
            message_ts: the message (a thread reply's or an ephemeral message's ts too).
            action_id: the button's action id (Slack's generated one if it had none).
            block_id: the block it is in, when ``action_id`` alone is ambiguous.

        Returns:
            ``{"ok": true}``, or ``{"ok": false, "error": code, "message": shown}``.

        Raises:
            ClientFailure: no app, or no such channel, user, message or button.
        """
        app = self.require_app()
        found = self._channel(channel)
        user = self.user(user_id)
        located = self._workspace.find_message(found, message_ts)
        if located is None:
            raise ClientFailure("message_not_found", f"no message {message_ts} in {channel}")
        message, ephemeral = located
        blocks = with_element_ids(message.get("blocks") or [], f"{found.id}:{message['ts']}")
        target = find_element(blocks, action_id, block_id)
        if target is None or target[1].get("type") != "button":
            raise ClientFailure("action_not_found", f"no button {action_id!r} in that message")
        found_block_id, element = target
        hook = self._new_response_hook(user.id, found.id, message["ts"], ephemeral=ephemeral)
        container: JsonDict = {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": found.id,
            "is_ephemeral": ephemeral,
        }
        if "thread_ts" in message:
            container["thread_ts"] = message["thread_ts"]
        payload: JsonDict = {
            **interaction_envelope(
                "block_actions", user=user, trigger_id=self._workspace.issue_trigger(user.id)
            ),
            "container": container,
            "channel": {"id": found.id, "name": found.name},
            "state": {"values": state_values(blocks, {})},
            "response_url": self._hook_url(hook),
            "actions": [
                element_action(element, found_block_id, None, action_ts(self._workspace.clock()))
            ],
        }
        if not ephemeral:
            shown = {k: v for k, v in copy.deepcopy(message).items() if k != "ephemeral_for"}
            payload["message"] = {**shown, "blocks": blocks}
        answer = await self.send(app, interaction_body(payload))
        if answer.failure is not None:
            text = answer.failure_text()
            self._workspace.post_slackbot(found, user.id, text)
            return {"ok": False, "error": answer.failure, "message": text}
        return {"ok": True}

    def require_app(self) -> AppConnection:
        if self.app is None:
            raise ClientFailure("no_app", "No app is connected: start the stand-in with --app-url.")
        return self.app

    def ensure_app_channel(self) -> None:
        if self.app is not None and self.app.channel:
            with contextlib.suppress(SlackApiFailure):
                self._workspace.resolve_channel(self.app.channel)

    def _channel(self, ref: str) -> Channel:
        found = self._workspace.find_channel(ref)
        if found is None:
            raise ClientFailure("channel_not_found", f"no channel {ref}")
        return found

    def user(self, user_id: str) -> SlackUser:
        user = self._workspace.users.get(user_id)
        if user is None:
            raise ClientFailure("user_not_found", f"no user {user_id}")
        return user

    async def send(self, app: AppConnection, body: bytes) -> AppOutcome:
        """POST a signed body to the app and classify its answer as Slack does."""
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        try:
            async with asyncio.timeout(app.timeout):
                answer = await post_to_app(self._http, app.request_url, app.signing_secret, body)
        except TimeoutError:
            logger.info("the app at %s did not answer within %.1fs", app.request_url, app.timeout)
            return AppOutcome(None, failure="operation_timeout")
        except (aiohttp.ClientError, OSError) as error:
            logger.info("the app at %s cannot be reached: %s", app.request_url, error)
            return AppOutcome(None, failure="dispatch_failed")
        if not 200 <= answer.status < 300:
            logger.info("the app at %s answered %d", app.request_url, answer.status)
            return AppOutcome(
                answer.status, answer.body, answer.content_type, failure="dispatch_failed"
            )
        return AppOutcome(answer.status, answer.body, answer.content_type)

    # response_url -----------------------------------------------------------------

    def _new_response_hook(
        self, user_id: str, channel_id: str, source_ts: str | None, *, ephemeral: bool
    ) -> ResponseHook:
        hook = ResponseHook(
            token=secrets.token_urlsafe(18),
            user_id=user_id,
            channel_id=channel_id,
            source_ts=source_ts,
            source_ephemeral=ephemeral,
            issued_at=self._workspace.clock(),
        )
        # Slack forgets a response_url after 30 minutes; so does the stand-in, or a long
        # `toilkit up` would keep one per click for ever.
        now = self._workspace.clock()
        for token in [
            t
            for t, h in self._response_hooks.items()
            if now - h.issued_at > RESPONSE_URL_TTL_SECONDS
        ]:
            del self._response_hooks[token]
        self._response_hooks[hook.token] = hook
        return hook

    def _hook_url(self, hook: ResponseHook) -> str:
        return f"{self._base_url()}/_standin/response/{hook.token}"

    async def handle_response_url(self, request: web.Request) -> web.Response:
        """A ``response_url`` answered as Slack answers it: a message for the person (or
        the channel), replacing or deleting the original when asked."""
        hook = self._response_hooks.get(request.match_info["token"])
        if hook is None:
            return web.Response(status=404, text="invalid_token")
        if self._workspace.clock() - hook.issued_at > RESPONSE_URL_TTL_SECONDS:
            return web.Response(status=404, text="expired_url")
        if hook.uses >= RESPONSE_URL_MAX_USES:
            return web.Response(status=404, text="used_url")
        try:
            arguments = await read_arguments(request)
        except SlackApiFailure:
            return web.Response(status=400, text="invalid_payload")
        if isinstance(arguments.get("payload"), str):
            # Slack also takes the JSON in a `payload` form field.
            try:
                arguments = json.loads(arguments["payload"])
            except json.JSONDecodeError:
                return web.Response(status=400, text="invalid_payload")
            if not isinstance(arguments, dict):
                return web.Response(status=400, text="invalid_payload")
        hook.uses += 1
        channel = self._workspace.channels.get(hook.channel_id)
        if channel is None:
            return web.Response(status=404, text="channel_not_found")
        original = self._workspace.find_message(channel, hook.source_ts) if hook.source_ts else None
        if truthy(arguments.get("delete_original")) and original is not None:
            self._workspace.delete_message(channel, original[0])
            return web.Response(text="ok")
        try:
            content = message_content(arguments, require_content=True)
        except SlackApiFailure as failure:
            return web.Response(status=400, text=failure.error)
        if truthy(arguments.get("replace_original")) and original is not None:
            message = original[0]
            for key in ("text", "blocks", "attachments"):
                message.pop(key, None)
            message.update(content)
            message.setdefault("text", "")
            self._workspace.changed()
        elif arguments.get("response_type") == "in_channel":
            self._workspace.post_app_message(channel, content)
        else:
            self._workspace.post_ephemeral(channel, hook.user_id, content)
        return web.Response(text="ok")
