"""The project's own Slack: a stand-in for the Slack Web API, with a page that shows it.

:class:`SlackStandin` is an aiohttp server that speaks the Web API methods toilkit uses under
``/api/`` as slack.com does, so ``AsyncWebClient(base_url=standin.api_url)`` (and the sync
``WebClient``) work against it unchanged. It answers with Slack's response shapes and error
codes, records every call, keeps the resulting channel state, can inject the failures Slack
has in real life (429 with ``Retry-After``, 5xx, slow answers, dropped connections), and
serves a page at ``/`` that renders each channel as Slack would.

HTTP endpoints besides the Web API (all JSON unless noted)::

    GET    /_standin/calls[?method=M]      every recorded call: method, arguments, response, time
    GET    /_standin/messages[?channel=C]  a channel's messages (latest versions, thread replies)
    GET    /_standin/state                 a version counter and a channel summary (the page polls it)
    GET    /_standin/faults                the fault rules in force
    POST   /_standin/faults                install a fault rule (a :class:`FaultSpec` as JSON)
    DELETE /_standin/faults                remove every fault rule
    POST   /_standin/triggers              issue a trigger id: {"user_id": "U..."} -> {"trigger_id": ...}
    POST   /_standin/reset                 forget calls, messages, views, triggers and faults
    GET    /[?channel=C&user=U]            the page (HTML); /_standin/fragment is its refreshed body

Connected to an app (:meth:`SlackStandin.connect_app`, or ``--app-url`` and
``--signing-secret``), the stand-in also plays Slack's *client*: the page gets a message box,
clickable buttons and modals as forms, and what the person does is sent to the app's Request
URL as Slack sends it (a slash command form or a ``payload=`` interaction, signed ``v0=``
HMAC-SHA256, with trigger ids this stand-in accepts and response URLs it serves). The
page's script calls these (JSON in, JSON out; the tests call them too)::

    POST   /_standin/client/command        {"channel", "user", "text": "/toil run"}
    POST   /_standin/client/button         {"channel", "user", "message_ts", "action_id"[, "block_id"]}
    POST   /_standin/client/view_action    {"view_id", "user", "block_id", "action_id", "values"}
    POST   /_standin/client/view_submit    {"view_id", "user", "values"}
    POST   /_standin/client/view_close     {"view_id", "user"}
    GET    /_standin/client/modal?user=U   the modal U sees: view, errors under blocks, notice
    POST   /_standin/response/<token>      a response_url (5 messages within 30 minutes)

``values`` is what the form holds: block id -> action id -> text, an option value or user id,
a list of them, or null; the stand-in turns it into Slack's ``view.state.values``.

Run it alone with ``python -m toilkit.standins.slack --port 3001`` (add ``--app-url
http://127.0.0.1:3000/slack/events --signing-secret S`` to drive a gateway).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import hashlib
import hmac
import html
import importlib.resources
import json
import logging
import os
import random
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Self
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from toilkit.standins.server import serve

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]
Clock = Callable[[], float]

# Slack's own limits, enforced with the error codes Slack answers.
MAX_MESSAGE_BLOCKS = 50
MAX_MODAL_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
MAX_MESSAGE_TEXT = 40_000
MAX_VIEW_TITLE = 24
#: A modal plus two pushed views; a third push answers ``push_limit_reached``.
MAX_VIEW_STACK = 3
#: Slack's trigger ids are valid for three seconds after the interaction.
TRIGGER_TTL_SECONDS = 3.0
#: Slack waits this long for an app to acknowledge a slash command or an interaction.
APP_TIMEOUT_SECONDS = 3.0
#: A ``response_url`` takes up to five messages within 30 minutes.
RESPONSE_URL_TTL_SECONDS = 1800.0
RESPONSE_URL_MAX_USES = 5
#: Where the notifier posts by default; the page opens on it when an app is connected.
DEFAULT_APP_CHANNEL = "#toilkit"

KNOWN_BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "video",
    }
)
#: Arguments that slack-sdk sends as JSON strings in form bodies and as objects in JSON bodies.
JSON_ENCODED_ARGUMENTS = ("blocks", "attachments", "view", "metadata")

#: The page's HTML shell (styles and the refreshing script), shipped next to this module.
PAGE_PACKAGE = "toilkit.standins"
PAGE_RESOURCE = "slack_page.html"

FaultKind = Literal["rate_limited", "server_error", "slow", "drop"]


class SlackApiFailure(Exception):
    """A Web API call that Slack answers with ``{"ok": false, "error": <code>}``."""

    def __init__(self, error: str, **details: Any) -> None:
        super().__init__(error)
        self.error = error
        self.details = details

    def body(self) -> JsonDict:
        """The response body Slack sends for this failure."""
        return {"ok": False, "error": self.error, **self.details}


def invalid_arguments(*messages: str) -> SlackApiFailure:
    """Slack's answer to a malformed call, with its ``[ERROR] ...`` messages."""
    return SlackApiFailure(
        "invalid_arguments",
        response_metadata={"messages": [f"[ERROR] {message}" for message in messages]},
    )


@dataclass(frozen=True)
class SlackUser:
    """A member of the stand-in's workspace."""

    id: str
    name: str
    real_name: str
    email: str

    def as_slack(self, team_id: str) -> JsonDict:
        """The user object ``users.info`` answers with."""
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "real_name": self.real_name,
            "deleted": False,
            "is_bot": False,
            "tz": "UTC",
            "profile": {
                "real_name": self.real_name,
                "display_name": self.name,
                "email": self.email,
            },
        }


@dataclass(frozen=True)
class SlackUserGroup:
    """A user group (``@sre``): ``usergroups.users.list`` answers with its members."""

    id: str
    handle: str
    user_ids: tuple[str, ...]


DEFAULT_USERS = (
    SlackUser("U0ALICE001", "alice", "Alice Martin", "alice@example.com"),
    SlackUser("U0BOB00002", "bob", "Bob Chen", "bob@example.com"),
    SlackUser("U0CAROL003", "carol", "Carol Diaz", "carol@example.com"),
)
DEFAULT_USERGROUPS = (SlackUserGroup("S0SRE00001", "sre", ("U0ALICE001", "U0BOB00002")),)


class FaultSpec(BaseModel):
    """One fault rule: the share of calls to ``method`` (or every method, ``"*"``) that fail.

    The shares are drawn from one seeded random sequence per rule, so a given seed gives the
    same pattern of faults call after call. A method's own rule takes precedence over ``"*"``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str = Field(default="*", min_length=1)
    rate_limited: float = Field(default=0.0, ge=0, le=1, description="share answered 429")
    retry_after: int = Field(default=1, ge=0, description="Retry-After seconds of a 429")
    server_error: float = Field(default=0.0, ge=0, le=1, description="share answered 500/503")
    slow: float = Field(default=0.0, ge=0, le=1, description="share answered late (but handled)")
    slow_seconds: float = Field(default=2.0, ge=0, le=300)
    drop: float = Field(default=0.0, ge=0, le=1, description="share whose connection is closed")
    seed: int | None = None
    max_injections: int | None = Field(
        default=None, ge=1, description="after this many injected faults the rule stays quiet"
    )

    @model_validator(mode="after")
    def _shares_fit_in_one(self) -> Self:
        if self.rate_limited + self.server_error + self.slow + self.drop > 1:
            raise ValueError("rate_limited + server_error + slow + drop must not exceed 1")
        return self


class _FaultRule:
    """A :class:`FaultSpec` in force: its random sequence and how many faults it injected."""

    def __init__(self, spec: FaultSpec) -> None:
        self.spec = spec
        self.random = random.Random(spec.seed)
        self.injected = 0

    def draw(self) -> FaultKind | None:
        """The fault for the next call, if any (one draw per call keeps the seed's pattern)."""
        roll = self.random.random()
        if self.spec.max_injections is not None and self.injected >= self.spec.max_injections:
            return None
        shares: tuple[tuple[FaultKind, float], ...] = (
            ("rate_limited", self.spec.rate_limited),
            ("server_error", self.spec.server_error),
            ("slow", self.spec.slow),
            ("drop", self.spec.drop),
        )
        for kind, share in shares:
            if roll < share:
                self.injected += 1
                return kind
            roll -= share
        return None


@dataclass(frozen=True)
class RecordedCall:
    """One Web API call as the stand-in received and answered it.

    ``response`` is ``None`` when no Slack JSON was sent (a 5xx page or a dropped connection);
    ``fault`` names what was injected, if anything.
    """

    seq: int
    method: str
    arguments: JsonDict
    response: JsonDict | None
    http_status: int | None
    fault: FaultKind | None
    time: float

    @property
    def ok(self) -> bool:
        """Whether Slack would have said ``"ok": true``."""
        return bool(self.response and self.response.get("ok"))

    @property
    def error(self) -> str | None:
        """Slack's error code, if the call was answered with one."""
        return None if self.response is None else self.response.get("error")

    def as_json(self) -> JsonDict:
        """The call as ``GET /_standin/calls`` shows it."""
        return {
            "seq": self.seq,
            "method": self.method,
            "arguments": self.arguments,
            "response": self.response,
            "http_status": self.http_status,
            "fault": self.fault,
            "time": self.time,
        }


@dataclass
class _Channel:
    """A channel's messages: top level in posting order, replies by their thread's ts."""

    id: str
    name: str
    messages: list[JsonDict] = field(default_factory=list)
    replies: dict[str, list[JsonDict]] = field(default_factory=dict)
    ephemeral: list[JsonDict] = field(default_factory=list)
    by_ts: dict[str, JsonDict] = field(default_factory=dict)

    @property
    def display_name(self) -> str:
        """``# name`` for a channel, ``@name`` for a direct message."""
        return self.name if self.name.startswith("@") else f"# {self.name}"

    def snapshot(self) -> JsonDict:
        """The channel as ``/_standin/messages`` shows it, replies under their parents."""
        messages = [
            {
                **copy.deepcopy(message),
                "replies": copy.deepcopy(self.replies.get(message["ts"], [])),
            }
            for message in self.messages
        ]
        return {
            "channel": {"id": self.id, "name": self.name},
            "messages": messages,
            "ephemeral": copy.deepcopy(self.ephemeral),
        }


@dataclass
class _Trigger:
    id: str
    user_id: str
    issued_at: float
    view_id: str | None
    exchanged: bool = False


@dataclass
class _ViewStack:
    """A modal and the views pushed on it, root first."""

    user_id: str
    view_ids: list[str]


def _channel_id_for_name(name: str) -> str:
    """A stable channel id for a channel known by name, so restarts keep the same ids."""
    digest = base64.b32encode(hashlib.sha1(name.encode()).digest()).decode()
    return f"C{digest[:10]}"


class SlackStandin:
    """The Slack stand-in: a Web API server, its recorded calls and state, and its page.

    Args:
        valid_tokens: the tokens accepted; ``None`` accepts any ``xoxb-``/``xoxp-`` token.
        users: the workspace directory behind ``users.info`` and ``users.lookupByEmail``.
        usergroups: the groups behind ``usergroups.users.list``.
        channels: channels that exist from the start, id -> name.
        auto_create_channels: create a channel on first use of an unknown ``C...`` id or
            ``#name`` (Slack would say ``channel_not_found``; tests rarely want that).
        missing_channels: ids or names that always answer ``channel_not_found``.
        bot_not_in_channels: ids or names where posting answers ``not_in_channel``.
        trigger_ttl: seconds a trigger id stays valid.
        clock: wall-clock seconds; tests pass their own to expire triggers without waiting.
        app_url: the Request URL of an app to play Slack's client for (the gateway's
            ``POST /slack/events``); see :meth:`connect_app`.
        signing_secret: that app's signing secret.
    """

    team_id = "T0STANDIN1"
    team_name = "toilkit stand-in"
    bot_user_id = "U0TOILBOT1"
    bot_id = "B0TOILBOT1"
    bot_name = "toilkit"
    app_id = "A0TOILKIT1"

    def __init__(
        self,
        *,
        valid_tokens: Iterable[str] | None = None,
        users: Iterable[SlackUser] = DEFAULT_USERS,
        usergroups: Iterable[SlackUserGroup] = DEFAULT_USERGROUPS,
        channels: Mapping[str, str] | None = None,
        auto_create_channels: bool = True,
        missing_channels: Iterable[str] = ("C_MISSING",),
        bot_not_in_channels: Iterable[str] = (),
        trigger_ttl: float = TRIGGER_TTL_SECONDS,
        clock: Clock = time.time,
        app_url: str | None = None,
        signing_secret: str | None = None,
    ) -> None:
        self._valid_tokens = None if valid_tokens is None else frozenset(valid_tokens)
        self._users = {user.id: user for user in users}
        self._usergroups = {group.id: group for group in usergroups}
        self._configured_channels = dict(channels or {})
        self._auto_create_channels = auto_create_channels
        self._missing_channels = frozenset(ref.lstrip("#") for ref in missing_channels)
        self._bot_not_in_channels = frozenset(ref.lstrip("#") for ref in bot_not_in_channels)
        self._trigger_ttl = trigger_ttl
        self._clock = clock
        self._methods: dict[str, Callable[[JsonDict], JsonDict]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "usergroups.users.list": self._usergroups_users_list,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.push": self._views_push,
        }
        self._runner: web.AppRunner | None = None
        self._page_shell: str | None = None
        self._base_url: str | None = None
        self._app: _AppConnection | None = None
        # Slack's client side: one HTTP session for every request to the app.
        self._http: aiohttp.ClientSession | None = None
        self.reset()
        if app_url is not None or signing_secret is not None:
            if not app_url or not signing_secret:
                raise ValueError("an app connection needs both app_url and signing_secret")
            self.connect_app(app_url, signing_secret)

    # ----------------------------------------------------------------- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 picks a free port) and return the base URL."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api_call)
        app.router.add_get("/", self._handle_page)
        app.router.add_get("/_standin/fragment", self._handle_fragment)
        app.router.add_get("/_standin/state", self._handle_state)
        app.router.add_get("/_standin/calls", self._handle_calls)
        app.router.add_get("/_standin/messages", self._handle_messages)
        app.router.add_get("/_standin/faults", self._handle_get_faults)
        app.router.add_post("/_standin/faults", self._handle_set_faults)
        app.router.add_delete("/_standin/faults", self._handle_clear_faults)
        app.router.add_post("/_standin/triggers", self._handle_issue_trigger)
        app.router.add_post("/_standin/reset", self._handle_reset)
        app.router.add_post("/_standin/response/{token}", self._handle_response_url)
        app.router.add_post("/_standin/client/command", self._handle_client_command)
        app.router.add_post("/_standin/client/button", self._handle_client_button)
        app.router.add_post("/_standin/client/view_action", self._handle_client_view_action)
        app.router.add_post("/_standin/client/view_submit", self._handle_client_view_submit)
        app.router.add_post("/_standin/client/view_close", self._handle_client_view_close)
        app.router.add_get("/_standin/client/modal", self._handle_client_modal)
        self._runner, self._base_url = await serve(app, host, port)
        logger.info("Slack stand-in listening on %s (Web API at %s)", self._base_url, self.api_url)
        return self._base_url

    async def stop(self) -> None:
        """Stop serving; recorded calls and state stay readable."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running stand-in."""
        if self._base_url is None:
            raise RuntimeError("the Slack stand-in is not started")
        return self._base_url

    @property
    def api_url(self) -> str:
        """The Web API base URL to give slack-sdk's ``base_url``."""
        return f"{self.base_url}/api/"

    # ------------------------------------------------------------ in-process API

    def reset(self) -> None:
        """Forget every call, message, view, trigger and fault rule."""
        self._calls: list[RecordedCall] = []
        self._channels: dict[str, _Channel] = {}
        for channel_id, name in self._configured_channels.items():
            self._channels[channel_id] = _Channel(channel_id, name.lstrip("#"))
        self._views: dict[str, JsonDict] = {}
        self._view_stacks: dict[str, _ViewStack] = {}
        self._triggers: dict[str, _Trigger] = {}
        self._fault_rules: dict[str, _FaultRule] = {}
        self._response_hooks: dict[str, _ResponseHook] = {}
        #: What the person sees in a modal besides the view: errors under blocks, a notice.
        self._view_errors: dict[str, dict[str, str]] = {}
        self._view_notices: dict[str, str] = {}
        self._last_ts_micros = 0
        self._id_counter = 0
        self._version = getattr(self, "_version", 0) + 1
        self._ensure_app_channel()

    def calls(self, method: str | None = None) -> list[RecordedCall]:
        """Every recorded call, oldest first; only ``method``'s when given."""
        return [call for call in self._calls if method is None or call.method == method]

    def messages(self, channel: str) -> list[JsonDict]:
        """A channel's top-level messages, oldest first, in their latest version.

        Each carries its thread under ``"replies"``. An unknown channel has none.
        """
        found = self._find_channel(channel)
        return [] if found is None else found.snapshot()["messages"]

    def ephemeral_messages(self, channel: str) -> list[JsonDict]:
        """The ephemeral messages posted in a channel, each with the user it was shown to."""
        found = self._find_channel(channel)
        return [] if found is None else copy.deepcopy(found.ephemeral)

    def views(self) -> list[JsonDict]:
        """Every view opened or pushed, in its latest version."""
        return copy.deepcopy(list(self._views.values()))

    def set_faults(self, spec: FaultSpec) -> None:
        """Install a fault rule, replacing the one for the same method."""
        self._fault_rules[spec.method] = _FaultRule(spec)
        self._changed()

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._fault_rules.clear()
        self._changed()

    def faults(self) -> list[FaultSpec]:
        """The fault rules in force."""
        return [rule.spec for rule in self._fault_rules.values()]

    def issue_trigger(self, user_id: str = DEFAULT_USERS[0].id, view_id: str | None = None) -> str:
        """A fresh trigger id, as Slack hands one out with an interaction.

        Args:
            user_id: the user who interacted; ``views.open`` opens the modal for them.
            view_id: the modal the interaction happened in (``views.push`` pushes onto it).
        """
        self._id_counter += 1
        # Slack's format: "<digits>.<digits>.<hex>".
        suffix = hashlib.sha1(f"trigger-{self._id_counter}".encode()).hexdigest()[:16]
        trigger_id = f"{self._id_counter}.{int(self._clock())}.{suffix}"
        self._triggers[trigger_id] = _Trigger(trigger_id, user_id, self._clock(), view_id)
        return trigger_id

    # ------------------------------------------------------------ HTTP: Web API

    async def _handle_api_call(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        try:
            arguments = await _read_arguments(request)
        except SlackApiFailure as failure:
            self._record(method, {}, failure.body(), 200, None)
            return web.json_response(failure.body())
        # Slack takes the token from the Authorization header or a `token` argument; it is
        # never recorded with the arguments.
        argument_token = arguments.pop("token", None)
        token = _bearer_token(request) or argument_token

        rule = self._fault_rules.get(method) or self._fault_rules.get("*")
        fault = rule.draw() if rule else None
        if rule is not None and fault is not None:
            faulted = self._answer_with_fault(request, method, arguments, rule, fault)
            if faulted is not None:
                return faulted
            await asyncio.sleep(rule.spec.slow_seconds)

        status, body = self._answer(method, token, arguments)
        self._record(method, arguments, body, status, fault)
        return web.json_response(body, status=status)

    def _answer_with_fault(
        self,
        request: web.Request,
        method: str,
        arguments: JsonDict,
        rule: _FaultRule,
        fault: FaultKind,
    ) -> web.StreamResponse | None:
        """The response of a faulted call, or ``None`` for a slow one (handled after a wait).

        A faulted call never reaches the method: a 429 means the message was not posted.
        """
        logger.debug("Slack stand-in injects %s into %s", fault, method)
        if fault == "rate_limited":
            body = {"ok": False, "error": "ratelimited"}
            self._record(method, arguments, body, 429, fault)
            return web.json_response(
                body, status=429, headers={"Retry-After": str(rule.spec.retry_after)}
            )
        if fault == "server_error":
            status = rule.random.choice((500, 503))
            self._record(method, arguments, None, status, fault)
            reason = "Internal Server Error" if status == 500 else "Service Unavailable"
            return web.Response(
                status=status,
                content_type="text/html",
                text=f"<html><head><title>{status} {reason}</title></head>"
                f"<body><h1>{status} {reason}</h1><p>Slack stand-in fault.</p></body></html>",
            )
        if fault == "drop":
            self._record(method, arguments, None, None, fault)
            if request.transport is not None:
                request.transport.close()
            return web.Response()
        return None

    def _answer(self, method: str, token: str | None, arguments: JsonDict) -> tuple[int, JsonDict]:
        """Slack's HTTP status and body for one call."""
        handler = self._methods.get(method)
        if handler is None:
            return 404, {"ok": False, "error": "unknown_method", "req_method": method}
        try:
            self._authenticate(token)
            return 200, handler(arguments)
        except SlackApiFailure as failure:
            return 200, failure.body()

    def _authenticate(self, token: str | None) -> None:
        if not token:
            raise SlackApiFailure("not_authed")
        if self._valid_tokens is None:
            accepted = token.startswith(("xoxb-", "xoxp-"))
        else:
            accepted = token in self._valid_tokens
        if not accepted:
            raise SlackApiFailure("invalid_auth")

    def _record(
        self,
        method: str,
        arguments: JsonDict,
        response: JsonDict | None,
        http_status: int | None,
        fault: FaultKind | None,
    ) -> None:
        self._calls.append(
            RecordedCall(
                seq=len(self._calls) + 1,
                method=method,
                arguments=copy.deepcopy(arguments),
                response=copy.deepcopy(response),
                http_status=http_status,
                fault=fault,
                time=self._clock(),
            )
        )
        self._changed()

    def _changed(self) -> None:
        self._version += 1

    # ---------------------------------------------------------- Web API methods

    def _auth_test(self, arguments: JsonDict) -> JsonDict:
        return {
            "ok": True,
            "url": "https://toilkit-standin.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, arguments: JsonDict) -> JsonDict:
        channel = self._postable_channel(arguments.get("channel"))
        content = _message_content(arguments, require_content=True)
        parent = None
        thread_ts = _optional_str(arguments, "thread_ts")
        if thread_ts:
            # A reply to a message that does not exist is a bug in the caller worth seeing,
            # so the stand-in is stricter here than Slack, which would post it anyway.
            parent = self._thread_parent(channel, thread_ts)
            if parent is None:
                raise SlackApiFailure("thread_not_found")
        message = self._new_bot_message(content, arguments)
        if parent is None:
            channel.messages.append(message)
        else:
            message["thread_ts"] = parent["ts"]
            message["parent_user_id"] = parent.get("user", self.bot_user_id)
            thread = channel.replies.setdefault(parent["ts"], [])
            thread.append(message)
            parent.update(
                thread_ts=parent["ts"],
                reply_count=len(thread),
                reply_users=sorted({reply["user"] for reply in thread}),
                reply_users_count=len({reply["user"] for reply in thread}),
                latest_reply=message["ts"],
            )
        channel.by_ts[message["ts"]] = message
        return {"ok": True, "channel": channel.id, "ts": message["ts"], "message": dict(message)}

    def _chat_update(self, arguments: JsonDict) -> JsonDict:
        channel = self._postable_channel(arguments.get("channel"))
        ts = _optional_str(arguments, "ts")
        message = channel.by_ts.get(ts) if ts else None
        if message is None:
            raise SlackApiFailure("message_not_found")
        content = _message_content(arguments, require_content=True)
        # Slack's rule: text without blocks drops the old blocks; blocks without text keep it.
        if "blocks" in content:
            message["blocks"] = content["blocks"]
        elif "text" in content:
            message.pop("blocks", None)
        if "text" in content:
            message["text"] = content["text"]
        if "attachments" in content:
            message["attachments"] = content["attachments"]
        if "metadata" in arguments:
            message["metadata"] = _message_metadata(arguments["metadata"])
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {
            "ok": True,
            "channel": channel.id,
            "ts": message["ts"],
            "text": message.get("text", ""),
            "message": copy.deepcopy(message),
        }

    def _chat_post_ephemeral(self, arguments: JsonDict) -> JsonDict:
        channel = self._postable_channel(arguments.get("channel"))
        user_id = _optional_str(arguments, "user")
        if user_id not in self._users:
            raise SlackApiFailure("user_not_in_channel")
        content = _message_content(arguments, require_content=True)
        message = self._new_bot_message(content, arguments)
        message["ephemeral_for"] = user_id
        thread_ts = _optional_str(arguments, "thread_ts")
        if thread_ts:
            message["thread_ts"] = thread_ts
        channel.ephemeral.append(message)
        return {"ok": True, "message_ts": message["ts"]}

    def _conversations_history(self, arguments: JsonDict) -> JsonDict:
        """A channel's top-level messages, newest first, paged as Slack pages them.

        ``oldest``/``latest`` bound the ts range (exclusive unless ``inclusive``); message
        ``metadata`` is included only with ``include_all_metadata``, as on Slack.
        """
        channel = self._resolve_channel(arguments.get("channel"))
        selected = _in_ts_range(channel.messages, arguments)
        page, has_more, next_cursor = _page(list(reversed(selected)), arguments)
        return {
            "ok": True,
            "messages": [_as_read(m, arguments) for m in page],
            "has_more": has_more,
            "pin_count": 0,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _conversations_replies(self, arguments: JsonDict) -> JsonDict:
        channel = self._resolve_channel(arguments.get("channel"))
        ts = _optional_str(arguments, "ts")
        parent = self._thread_parent(channel, ts) if ts else None
        if parent is None:
            raise SlackApiFailure("thread_not_found")
        # Slack always answers with the parent first, then the replies in the ts range.
        replies = _in_ts_range(channel.replies.get(parent["ts"], []), arguments)
        page, has_more, next_cursor = _page(replies, arguments, default_limit=1000)
        return {
            "ok": True,
            "messages": [_as_read(m, arguments) for m in [parent, *page]],
            "has_more": has_more,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _users_info(self, arguments: JsonDict) -> JsonDict:
        user = self._users.get(_optional_str(arguments, "user") or "")
        if user is None:
            raise SlackApiFailure("user_not_found")
        return {"ok": True, "user": user.as_slack(self.team_id)}

    def _users_lookup_by_email(self, arguments: JsonDict) -> JsonDict:
        email = (_optional_str(arguments, "email") or "").lower()
        for user in self._users.values():
            if user.email.lower() == email:
                return {"ok": True, "user": user.as_slack(self.team_id)}
        raise SlackApiFailure("users_not_found")

    def _usergroups_users_list(self, arguments: JsonDict) -> JsonDict:
        group = self._usergroups.get(_optional_str(arguments, "usergroup") or "")
        if group is None:
            raise SlackApiFailure("no_such_subteam")
        return {"ok": True, "users": list(group.user_ids)}

    def _views_open(self, arguments: JsonDict) -> JsonDict:
        view = _view_argument(arguments)
        self._check_external_id_free(view)
        trigger = self._valid_trigger(arguments)
        trigger.exchanged = True
        record = self._new_view(view, root_view_id=None, previous_view_id=None)
        self._view_stacks[record["id"]] = _ViewStack(trigger.user_id, [record["id"]])
        return {"ok": True, "view": copy.deepcopy(record)}

    def _views_push(self, arguments: JsonDict) -> JsonDict:
        view = _view_argument(arguments)
        self._check_external_id_free(view)
        trigger = self._valid_trigger(arguments)
        stack = self._stack_for_push(trigger)
        if stack is None:
            raise SlackApiFailure("not_found")
        if len(stack.view_ids) >= MAX_VIEW_STACK:
            raise SlackApiFailure("push_limit_reached")
        trigger.exchanged = True
        record = self._new_view(
            view, root_view_id=stack.view_ids[0], previous_view_id=stack.view_ids[-1]
        )
        stack.view_ids.append(record["id"])
        return {"ok": True, "view": copy.deepcopy(record)}

    def _views_update(self, arguments: JsonDict) -> JsonDict:
        view_id = _optional_str(arguments, "view_id")
        external_id = _optional_str(arguments, "external_id")
        if bool(view_id) == bool(external_id):
            raise invalid_arguments("exactly one of view_id or external_id is required")
        view = _view_argument(arguments)
        record = (
            self._views.get(view_id)
            if view_id
            else next((v for v in self._views.values() if v["external_id"] == external_id), None)
        )
        if record is None:
            raise SlackApiFailure("not_found")
        expected_hash = _optional_str(arguments, "hash")
        if expected_hash and expected_hash != record["hash"]:
            raise SlackApiFailure("hash_conflict")
        new_external_id = view.get("external_id") or record["external_id"]
        if new_external_id != record["external_id"]:
            self._check_external_id_free(view)
        record.update(_view_content(view), external_id=new_external_id, hash=self._new_hash())
        # A new version of the view: what was said about the old one no longer applies.
        self._view_errors.pop(record["id"], None)
        self._view_notices.pop(record["id"], None)
        return {"ok": True, "view": copy.deepcopy(record)}

    # ------------------------------------------------------------- state helpers

    def _find_channel(self, ref: str) -> _Channel | None:
        name = ref.lstrip("#")
        return self._channels.get(ref) or next(
            (channel for channel in self._channels.values() if channel.name == name), None
        )

    def _resolve_channel(self, ref: Any) -> _Channel:
        """The channel a call names, created on first use when allowed."""
        if not isinstance(ref, str) or not ref or ref.lstrip("#") in self._missing_channels:
            raise SlackApiFailure("channel_not_found")
        channel = self._find_channel(ref)
        if channel is not None:
            return channel
        if not self._auto_create_channels and ref not in self._users:
            raise SlackApiFailure("channel_not_found")
        if ref in self._users:
            # Posting to a user id opens the bot's direct message with them, as on Slack.
            channel = _Channel(f"D{ref[1:]}", f"@{self._users[ref].name}")
        elif ref.startswith("#") and len(ref) > 1:
            channel = _Channel(_channel_id_for_name(ref[1:]), ref[1:])
        elif re.fullmatch(r"C[A-Z0-9_]+", ref):
            channel = _Channel(ref, ref.lower())
        else:
            raise SlackApiFailure("channel_not_found")
        self._channels[channel.id] = channel
        return channel

    def _postable_channel(self, ref: Any) -> _Channel:
        channel = self._resolve_channel(ref)
        if {channel.id, channel.name} & self._bot_not_in_channels:
            raise SlackApiFailure("not_in_channel")
        return channel

    @staticmethod
    def _thread_parent(channel: _Channel, ts: str) -> JsonDict | None:
        """The top-level message of the thread ``ts`` belongs to (a reply's ts counts too)."""
        message = channel.by_ts.get(ts)
        if message is None:
            return None
        return channel.by_ts.get(message.get("thread_ts", ts), message)

    def _next_ts(self) -> str:
        """A unique, increasing Slack timestamp (``seconds.micros``) from the clock."""
        self._last_ts_micros = max(int(self._clock() * 1_000_000), self._last_ts_micros + 1)
        seconds, micros = divmod(self._last_ts_micros, 1_000_000)
        return f"{seconds}.{micros:06d}"

    def _new_bot_message(self, content: JsonDict, arguments: JsonDict) -> JsonDict:
        message: JsonDict = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "text": content.get("text", ""),
            "ts": self._next_ts(),
            "bot_profile": {"id": self.bot_id, "app_id": self.app_id, "name": self.bot_name},
        }
        for key in ("blocks", "attachments"):
            if key in content:
                message[key] = content[key]
        if "metadata" in arguments:
            message["metadata"] = _message_metadata(arguments["metadata"])
        for key in ("username", "icon_emoji", "icon_url"):
            if value := _optional_str(arguments, key):
                message[key] = value
        return message

    def _valid_trigger(self, arguments: JsonDict) -> _Trigger:
        trigger_id = _optional_str(arguments, "trigger_id")
        if not trigger_id:
            raise invalid_arguments("missing required field: trigger_id")
        trigger = self._triggers.get(trigger_id)
        if trigger is None:
            raise SlackApiFailure("invalid_trigger_id")
        if trigger.exchanged:
            raise SlackApiFailure("exchanged_trigger_id")
        if self._clock() - trigger.issued_at > self._trigger_ttl:
            raise SlackApiFailure("expired_trigger_id")
        return trigger

    def _stack_for_push(self, trigger: _Trigger) -> _ViewStack | None:
        """The modal an interaction happened in, else the user's latest one."""
        if trigger.view_id is not None:
            return next(
                (s for s in self._view_stacks.values() if trigger.view_id in s.view_ids), None
            )
        stacks = [s for s in self._view_stacks.values() if s.user_id == trigger.user_id]
        return stacks[-1] if stacks else None

    def _check_external_id_free(self, view: JsonDict) -> None:
        external_id = view.get("external_id")
        if external_id and any(v["external_id"] == external_id for v in self._views.values()):
            raise SlackApiFailure("duplicate_external_id")

    def _new_view(
        self, view: JsonDict, root_view_id: str | None, previous_view_id: str | None
    ) -> JsonDict:
        self._id_counter += 1
        view_id = f"V{self._id_counter:010d}"
        record = {
            "id": view_id,
            "team_id": self.team_id,
            **_view_content(view),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": self._new_hash(),
            "root_view_id": root_view_id or view_id,
            "previous_view_id": previous_view_id,
            "app_id": self.app_id,
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }
        self._views[view_id] = record
        return record

    def _new_hash(self) -> str:
        self._id_counter += 1
        return f"{int(self._clock())}.{self._id_counter:07d}"

    # --------------------------------------------------------- HTTP: control API

    async def _handle_calls(self, request: web.Request) -> web.Response:
        method = request.query.get("method")
        return web.json_response({"calls": [call.as_json() for call in self.calls(method)]})

    async def _handle_messages(self, request: web.Request) -> web.Response:
        ref = request.query.get("channel")
        if ref is None:
            channels = [channel.snapshot() for channel in self._channels.values()]
            return web.json_response({"ok": True, "channels": channels})
        channel = self._find_channel(ref)
        if channel is None:
            return web.json_response({"ok": True, "channel": None, "messages": [], "ephemeral": []})
        return web.json_response({"ok": True, **channel.snapshot()})

    async def _handle_state(self, request: web.Request) -> web.Response:
        channels = [
            {"id": channel.id, "name": channel.name, "message_count": len(channel.messages)}
            for channel in self._channels.values()
        ]
        return web.json_response(
            {
                "version": self._version,
                "channels": channels,
                "call_count": len(self._calls),
                "open_views": len(self._views),
                "app_connected": self.app_connected,
            }
        )

    async def _handle_get_faults(self, request: web.Request) -> web.Response:
        return web.json_response({"faults": [spec.model_dump() for spec in self.faults()]})

    async def _handle_set_faults(self, request: web.Request) -> web.Response:
        try:
            spec = FaultSpec.model_validate_json(await request.read())
        except ValidationError as error:
            return web.json_response(
                {"ok": False, "errors": json.loads(error.json(include_url=False))}, status=400
            )
        self.set_faults(spec)
        return web.json_response({"ok": True, "fault": spec.model_dump()})

    async def _handle_clear_faults(self, request: web.Request) -> web.Response:
        self.clear_faults()
        return web.json_response({"ok": True})

    async def _handle_issue_trigger(self, request: web.Request) -> web.Response:
        try:
            body = await request.json() if request.can_read_body else {}
        except json.JSONDecodeError:
            return web.json_response({"ok": False, "error": "invalid_json"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"ok": False, "error": "json_not_object"}, status=400)
        view_id = body.get("view_id")
        trigger_id = self.issue_trigger(
            user_id=str(body.get("user_id") or DEFAULT_USERS[0].id),
            view_id=view_id if isinstance(view_id, str) else None,
        )
        return web.json_response({"ok": True, "trigger_id": trigger_id})

    async def _handle_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    # ------------------------------------------------------ Slack's client side

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
        self._app = _AppConnection(request_url, signing_secret, timeout, channel)
        self._ensure_app_channel()
        self._changed()

    def disconnect_app(self) -> None:
        """Stop playing Slack's client; the page is read-only again."""
        self._app = None
        self._changed()

    @property
    def app_connected(self) -> bool:
        """Whether the page sends slash commands and interactions to an app."""
        return self._app is not None

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
        app = self._require_app()
        found = self._client_channel(channel)
        user = self._client_user(user_id)
        command, _, text = typed.strip().partition(" ")
        if not re.fullmatch(r"/[^\s/]+", command):
            raise ClientFailure(
                "not_a_command",
                'Only slash commands reach the app from here: try "/toil help".',
            )
        hook = self._new_response_hook(user.id, found.id, source_ts=None, ephemeral=False)
        form = {
            "token": VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "team_domain": TEAM_DOMAIN,
            "channel_id": found.id,
            "channel_name": "directmessage" if found.name.startswith("@") else found.name,
            "user_id": user.id,
            "user_name": user.name,
            "command": command,
            "text": text.strip(),
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": self._hook_url(hook),
            "trigger_id": self.issue_trigger(user.id),
        }
        answer = await self._send_to_app(app, urlencode(form).encode())
        if answer.failure is not None:
            message = f'{command} failed with the error "{answer.failure}"'
            self._post_slackbot(found, user.id, message)
            return {"ok": False, "error": answer.failure, "message": message}
        try:
            data = answer.json_object()
        except ValueError:
            # Slack shows a plain-text answer as it is.
            data = {"text": answer.body.decode("utf-8", errors="replace")}
        if data is None:
            return {"ok": True, "shown": None}
        try:
            content = _message_content(data, require_content=False)
        except SlackApiFailure as failure:
            message = f'{command} failed with the error "{failure.error}"'
            self._post_slackbot(found, user.id, message)
            return {"ok": False, "error": failure.error, "message": message}
        if not content:
            return {"ok": True, "shown": None}
        if data.get("response_type") == "in_channel":
            shown = self._post_app_message(found, content)
        else:
            shown = self._post_ephemeral(found, user.id, content)
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
        app = self._require_app()
        found = self._client_channel(channel)
        user = self._client_user(user_id)
        located = self._find_message(found, message_ts)
        if located is None:
            raise ClientFailure("message_not_found", f"no message {message_ts} in {channel}")
        message, ephemeral = located
        blocks = with_element_ids(message.get("blocks") or [], f"{found.id}:{message['ts']}")
        target = _find_element(blocks, action_id, block_id)
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
            **self._interaction_base("block_actions", user.id, self.issue_trigger(user.id)),
            "container": container,
            "channel": {"id": found.id, "name": found.name},
            "state": {"values": state_values(blocks, {})},
            "response_url": self._hook_url(hook),
            "actions": [_element_action(element, found_block_id, None, self._action_ts())],
        }
        if not ephemeral:
            shown = {k: v for k, v in copy.deepcopy(message).items() if k != "ephemeral_for"}
            payload["message"] = {**shown, "blocks": blocks}
        answer = await self._send_to_app(app, interaction_form(payload))
        if answer.failure is not None:
            text = answer.failure_text()
            self._post_slackbot(found, user.id, text)
            return {"ok": False, "error": answer.failure, "message": text}
        return {"ok": True}

    def modal_for(self, user_id: str) -> JsonDict | None:
        """The modal ``user_id`` has open (the top view of their latest one), if any.

        Returns:
            ``{"view": ..., "errors": {block_id: text}, "notice": text or None, "depth": n}``.
        """
        stack = self._latest_stack(user_id)
        if stack is None:
            return None
        view_id = stack.view_ids[-1]
        return {
            "view": copy.deepcopy(self._views[view_id]),
            "errors": dict(self._view_errors.get(view_id, {})),
            "notice": self._view_notices.get(view_id),
            "depth": len(stack.view_ids),
        }

    async def change_view_element(
        self,
        view_id: str,
        user_id: str,
        block_id: str,
        action_id: str,
        values: TypedValues,
    ) -> JsonDict:
        """``user_id`` uses an element of their modal that dispatches actions (a select in
        an ``actions`` block or in an input with ``dispatch_action``, a button): the app gets
        a ``block_actions`` with the view, its state and the action.

        Args:
            view_id: the modal's view (the top one of the person's stack).
            user_id: who acts.
            block_id: the element's block.
            action_id: the element.
            values: what every element of the form holds now (see :func:`state_values`).

        Raises:
            ClientFailure: no app, or no such view or element.
        """
        app = self._require_app()
        record = self._open_view(view_id, user_id)
        blocks = with_element_ids(record["blocks"], record["id"])
        target = _find_element(blocks, action_id, block_id)
        if target is None:
            raise ClientFailure("action_not_found", f"no element {block_id}/{action_id}")
        _, element = target
        state = state_values(blocks, values)
        record["state"] = {"values": copy.deepcopy(state)}
        entry = state.get(block_id, {}).get(action_id)
        payload: JsonDict = {
            **self._interaction_base(
                "block_actions", user_id, self.issue_trigger(user_id, view_id=record["id"])
            ),
            "container": {"type": "view", "view_id": record["id"]},
            "view": {**copy.deepcopy(record), "blocks": blocks, "state": {"values": state}},
            "actions": [_element_action(element, block_id, entry, self._action_ts())],
        }
        answer = await self._send_to_app(app, interaction_form(payload))
        if answer.failure is not None:
            return self._view_failure(record["id"], answer)
        self._view_notices.pop(record["id"], None)
        self._changed()
        return {"ok": True}

    async def submit_view(self, view_id: str, user_id: str, values: TypedValues) -> JsonDict:
        """``user_id`` presses the modal's submit button.

        Slack's own checks come first (required inputs, number ranges, lengths): what fails
        them is shown under its input and nothing is sent. Otherwise the app gets a
        ``view_submission`` and its answer is honoured: nothing (the view closes),
        ``errors`` (shown under the blocks), ``update``, ``push`` or ``clear``.

        Returns:
            ``{"ok": true, "outcome": "closed" | "errors" | "updated" | "pushed" |
            "cleared", "errors": {...}, "checked_by": "slack" | "app"}``, or ``{"ok":
            false, ...}`` when the app did not answer.

        Raises:
            ClientFailure: no app, or no such view.
        """
        app = self._require_app()
        record = self._open_view(view_id, user_id)
        blocks = with_element_ids(record["blocks"], record["id"])
        state = state_values(blocks, values)
        record["state"] = {"values": copy.deepcopy(state)}
        problems = slack_input_errors(blocks, state)
        if problems:
            self._view_errors[record["id"]] = problems
            self._changed()
            return {"ok": True, "outcome": "errors", "errors": problems, "checked_by": "slack"}
        payload: JsonDict = {
            **self._interaction_base(
                "view_submission", user_id, self.issue_trigger(user_id, view_id=record["id"])
            ),
            "view": {**copy.deepcopy(record), "blocks": blocks, "state": {"values": state}},
            "response_urls": [],
        }
        answer = await self._send_to_app(app, interaction_form(payload))
        if answer.failure is not None:
            return self._view_failure(record["id"], answer)
        outcome = self._apply_submission_answer(record, answer)
        self._changed()
        return outcome

    async def close_view(self, view_id: str, user_id: str) -> JsonDict:
        """``user_id`` presses the modal's close button: the top view goes away (the one
        under it shows again). The app hears of it only if the view asked
        (``notify_on_close``), with a ``view_closed``.

        Raises:
            ClientFailure: no app, or no such view.
        """
        app = self._require_app()
        record = self._open_view(view_id, user_id)
        self._close_views(record["id"], count=1)
        self._changed()
        if not record.get("notify_on_close"):
            return {"ok": True}
        payload = {
            **self._interaction_base("view_closed", user_id, None),
            "view": {
                **copy.deepcopy(record),
                "blocks": with_element_ids(record["blocks"], record["id"]),
            },
            "is_cleared": False,
        }
        payload.pop("trigger_id")
        answer = await self._send_to_app(app, interaction_form(payload))
        # The modal is gone whatever the app answers, as on Slack.
        return {"ok": answer.failure is None, "error": answer.failure}

    # Client-side plumbing -----------------------------------------------------

    def _require_app(self) -> _AppConnection:
        if self._app is None:
            raise ClientFailure("no_app", "No app is connected: start the stand-in with --app-url.")
        return self._app

    def _ensure_app_channel(self) -> None:
        if self._app is not None and self._app.channel:
            with contextlib.suppress(SlackApiFailure):
                self._resolve_channel(self._app.channel)

    def _client_channel(self, ref: str) -> _Channel:
        found = self._find_channel(ref)
        if found is None:
            raise ClientFailure("channel_not_found", f"no channel {ref}")
        return found

    def _client_user(self, user_id: str) -> SlackUser:
        user = self._users.get(user_id)
        if user is None:
            raise ClientFailure("user_not_found", f"no user {user_id}")
        return user

    def _interaction_base(self, kind: str, user_id: str, trigger_id: str | None) -> JsonDict:
        user = self._users[user_id]
        return {
            "type": kind,
            "user": {
                "id": user.id,
                "username": user.name,
                "name": user.name,
                "team_id": self.team_id,
            },
            "api_app_id": self.app_id,
            "token": VERIFICATION_TOKEN,
            "team": {"id": self.team_id, "domain": TEAM_DOMAIN},
            "enterprise": None,
            "is_enterprise_install": False,
            "trigger_id": trigger_id,
        }

    def _action_ts(self) -> str:
        return f"{self._clock():.6f}"

    async def _send_to_app(self, app: _AppConnection, body: bytes) -> _AppAnswer:
        """POST a signed body to the app and classify its answer as Slack does."""
        # Signed with the real time: the app checks it against its own clock.
        headers = sign_slack_request(app.signing_secret, body, int(time.time()))
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        try:
            async with (
                asyncio.timeout(app.timeout),
                self._http.post(app.request_url, data=body, headers=headers) as response,
            ):
                answer_body = await response.read()
                status, content_type = response.status, response.content_type
        except TimeoutError:
            logger.info("the app at %s did not answer within %.1fs", app.request_url, app.timeout)
            return _AppAnswer(None, failure="operation_timeout")
        except (aiohttp.ClientError, OSError) as error:
            logger.info("the app at %s cannot be reached: %s", app.request_url, error)
            return _AppAnswer(None, failure="dispatch_failed")
        if not 200 <= status < 300:
            logger.info("the app at %s answered %d", app.request_url, status)
            return _AppAnswer(status, answer_body, content_type, failure="dispatch_failed")
        return _AppAnswer(status, answer_body, content_type)

    def _find_message(self, channel: _Channel, ts: str) -> tuple[JsonDict, bool] | None:
        """(message, is ephemeral) for a ts in a channel."""
        if ts in channel.by_ts:
            return channel.by_ts[ts], False
        ephemeral = next((m for m in channel.ephemeral if m["ts"] == ts), None)
        return None if ephemeral is None else (ephemeral, True)

    def _post_app_message(self, channel: _Channel, content: JsonDict) -> JsonDict:
        message = self._new_bot_message(content, {})
        channel.messages.append(message)
        channel.by_ts[message["ts"]] = message
        self._changed()
        return message

    def _post_ephemeral(self, channel: _Channel, user_id: str, content: JsonDict) -> JsonDict:
        message = self._new_bot_message(content, {})
        message["ephemeral_for"] = user_id
        channel.ephemeral.append(message)
        self._changed()
        return message

    def _post_slackbot(self, channel: _Channel, user_id: str, text: str) -> JsonDict:
        """Slack's own ephemeral note (an app that failed to answer)."""
        message = {
            "type": "message",
            "user": SLACKBOT_USER_ID,
            "username": "Slackbot",
            "text": text,
            "ts": self._next_ts(),
            "ephemeral_for": user_id,
        }
        channel.ephemeral.append(message)
        self._changed()
        return message

    # response_url -------------------------------------------------------------

    def _new_response_hook(
        self, user_id: str, channel_id: str, source_ts: str | None, *, ephemeral: bool
    ) -> _ResponseHook:
        hook = _ResponseHook(
            token=secrets.token_urlsafe(18),
            user_id=user_id,
            channel_id=channel_id,
            source_ts=source_ts,
            source_ephemeral=ephemeral,
            issued_at=self._clock(),
        )
        # Slack forgets a response_url after 30 minutes; so does the stand-in, or a long
        # `toilkit up` would keep one per click for ever.
        now = self._clock()
        for token in [
            t
            for t, h in self._response_hooks.items()
            if now - h.issued_at > RESPONSE_URL_TTL_SECONDS
        ]:
            del self._response_hooks[token]
        self._response_hooks[hook.token] = hook
        return hook

    def _hook_url(self, hook: _ResponseHook) -> str:
        return f"{self.base_url}/_standin/response/{hook.token}"

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        """A ``response_url`` answered as Slack answers it: a message for the person (or
        the channel), replacing or deleting the original when asked."""
        hook = self._response_hooks.get(request.match_info["token"])
        if hook is None:
            return web.Response(status=404, text="invalid_token")
        if self._clock() - hook.issued_at > RESPONSE_URL_TTL_SECONDS:
            return web.Response(status=404, text="expired_url")
        if hook.uses >= RESPONSE_URL_MAX_USES:
            return web.Response(status=404, text="used_url")
        try:
            arguments = await _read_arguments(request)
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
        channel = self._channels.get(hook.channel_id)
        if channel is None:
            return web.Response(status=404, text="channel_not_found")
        original = self._find_message(channel, hook.source_ts) if hook.source_ts else None
        if _truthy(arguments.get("delete_original")) and original is not None:
            self._delete_message(channel, original[0])
            return web.Response(text="ok")
        try:
            content = _message_content(arguments, require_content=True)
        except SlackApiFailure as failure:
            return web.Response(status=400, text=failure.error)
        if _truthy(arguments.get("replace_original")) and original is not None:
            message = original[0]
            for key in ("text", "blocks", "attachments"):
                message.pop(key, None)
            message.update(content)
            message.setdefault("text", "")
            self._changed()
        elif arguments.get("response_type") == "in_channel":
            self._post_app_message(channel, content)
        else:
            self._post_ephemeral(channel, hook.user_id, content)
        return web.Response(text="ok")

    def _delete_message(self, channel: _Channel, message: JsonDict) -> None:
        channel.messages = [m for m in channel.messages if m is not message]
        channel.ephemeral = [m for m in channel.ephemeral if m is not message]
        channel.by_ts.pop(message["ts"], None)
        self._changed()

    # Modals -------------------------------------------------------------------

    def _latest_stack(self, user_id: str) -> _ViewStack | None:
        stacks = [s for s in self._view_stacks.values() if s.user_id == user_id]
        return stacks[-1] if stacks else None

    def _stack_key_of(self, view_id: str) -> str | None:
        return next((k for k, s in self._view_stacks.items() if view_id in s.view_ids), None)

    def _open_view(self, view_id: str, user_id: str) -> JsonDict:
        """The view ``user_id`` sees on top of one of their modals."""
        self._client_user(user_id)
        key = self._stack_key_of(view_id)
        stack = None if key is None else self._view_stacks[key]
        if stack is None or stack.user_id != user_id or stack.view_ids[-1] != view_id:
            raise ClientFailure("view_not_found", f"{user_id} has no modal showing {view_id}")
        return self._views[view_id]

    def _close_views(self, view_id: str, *, count: int | None) -> None:
        """Close the top ``count`` views of the stack ``view_id`` is in (None: all)."""
        key = self._stack_key_of(view_id)
        if key is None:
            return
        stack = self._view_stacks[key]
        closing = stack.view_ids if count is None else stack.view_ids[-count:]
        for closed in closing:
            self._view_errors.pop(closed, None)
            self._view_notices.pop(closed, None)
        stack.view_ids = stack.view_ids[: len(stack.view_ids) - len(closing)]
        if not stack.view_ids:
            del self._view_stacks[key]

    def _view_failure(self, view_id: str, answer: _AppAnswer) -> JsonDict:
        text = answer.failure_text()
        self._view_notices[view_id] = text
        self._changed()
        return {"ok": False, "error": answer.failure, "message": text}

    def _apply_submission_answer(self, record: JsonDict, answer: _AppAnswer) -> JsonDict:
        """Honour the app's answer to a submission (Slack's ``response_action``)."""
        view_id = record["id"]
        self._view_errors.pop(view_id, None)
        self._view_notices.pop(view_id, None)
        try:
            response = answer.json_object() or {}
        except ValueError:
            response = {"response_action": "<not JSON>"}
        action = response.get("response_action")
        if action is None:
            self._close_views(view_id, count=1)
            return {"ok": True, "outcome": "closed", "checked_by": "app"}
        if action == "errors":
            errors = response.get("errors")
            if isinstance(errors, dict) and errors:
                shown = {str(block): str(text) for block, text in errors.items()}
                self._view_errors[view_id] = shown
                return {"ok": True, "outcome": "errors", "errors": shown, "checked_by": "app"}
        elif action == "clear":
            self._close_views(view_id, count=None)
            return {"ok": True, "outcome": "cleared", "checked_by": "app"}
        elif action in ("update", "push"):
            try:
                view = _view_argument({"view": response.get("view")})
            except SlackApiFailure as failure:
                logger.info(
                    "the app answered a submission with an invalid view: %s", failure.body()
                )
            else:
                if action == "update":
                    record.update(_view_content(view), hash=self._new_hash())
                    record["state"] = {"values": {}}
                    return {"ok": True, "outcome": "updated", "checked_by": "app"}
                return self._push_from_submission(record, view)
        self._view_notices[view_id] = (
            f"This app answered the submission with something Slack cannot use ({action})."
        )
        return {"ok": False, "error": "invalid_response", "message": self._view_notices[view_id]}

    def _push_from_submission(self, record: JsonDict, view: JsonDict) -> JsonDict:
        key = self._stack_key_of(record["id"])
        stack = self._view_stacks[key] if key is not None else None
        if stack is None or len(stack.view_ids) >= MAX_VIEW_STACK:
            self._view_notices[record["id"]] = "This app tried to push a view too many."
            return {"ok": False, "error": "push_limit_reached", "message": "push_limit_reached"}
        pushed = self._new_view(view, root_view_id=stack.view_ids[0], previous_view_id=record["id"])
        stack.view_ids.append(pushed["id"])
        return {"ok": True, "outcome": "pushed", "checked_by": "app", "view_id": pushed["id"]}

    # HTTP: the page's client endpoints ------------------------------------------

    async def _client_call(
        self, request: web.Request, act: Callable[[JsonDict], Awaitable[JsonDict]]
    ) -> web.Response:
        try:
            answer = await act(await _client_request_body(request))
        except ClientFailure as failure:
            return web.json_response(failure.body(), status=400)
        return web.json_response(answer)

    async def _handle_client_command(self, request: web.Request) -> web.Response:
        return await self._client_call(
            request,
            lambda body: self.type_command(
                _required_text(body, "channel"),
                _required_text(body, "user"),
                _required_text(body, "text"),
            ),
        )

    async def _handle_client_button(self, request: web.Request) -> web.Response:
        return await self._client_call(
            request,
            lambda body: self.click_button(
                _required_text(body, "channel"),
                _required_text(body, "user"),
                _required_text(body, "message_ts"),
                _required_text(body, "action_id"),
                body.get("block_id") if isinstance(body.get("block_id"), str) else None,
            ),
        )

    async def _handle_client_view_action(self, request: web.Request) -> web.Response:
        return await self._client_call(
            request,
            lambda body: self.change_view_element(
                _required_text(body, "view_id"),
                _required_text(body, "user"),
                _required_text(body, "block_id"),
                _required_text(body, "action_id"),
                _typed_values(body.get("values")),
            ),
        )

    async def _handle_client_view_submit(self, request: web.Request) -> web.Response:
        return await self._client_call(
            request,
            lambda body: self.submit_view(
                _required_text(body, "view_id"),
                _required_text(body, "user"),
                _typed_values(body.get("values")),
            ),
        )

    async def _handle_client_view_close(self, request: web.Request) -> web.Response:
        return await self._client_call(
            request,
            lambda body: self.close_view(
                _required_text(body, "view_id"), _required_text(body, "user")
            ),
        )

    async def _handle_client_modal(self, request: web.Request) -> web.Response:
        user_id = request.query.get("user", "")
        if user_id not in self._users:
            return web.json_response(
                ClientFailure("user_not_found", f"no user {user_id!r}").body(), status=400
            )
        return web.json_response({"ok": True, "modal": self.modal_for(user_id)})

    # ------------------------------------------------------------------ the page

    async def _handle_page(self, request: web.Request) -> web.Response:
        selected = self._selected_channel(request.query.get("channel"))
        viewer = self._viewer(request.query.get("user"))
        if self._page_shell is None:
            self._page_shell = (
                importlib.resources.files(PAGE_PACKAGE).joinpath(PAGE_RESOURCE).read_text("utf-8")
            )
        shell = self._page_shell
        page = (
            shell.replace("<!--STANDIN-VERSION-->", str(self._version))
            .replace("<!--STANDIN-CHANNEL-->", html.escape(selected.id if selected else ""))
            .replace("<!--STANDIN-USER-->", html.escape(viewer or ""))
            .replace("<!--STANDIN-APP-->", self._render_app(selected, viewer))
        )
        return web.Response(text=page, content_type="text/html")

    async def _handle_fragment(self, request: web.Request) -> web.Response:
        selected = self._selected_channel(request.query.get("channel"))
        viewer = self._viewer(request.query.get("user"))
        return web.Response(
            text=self._render_app(selected, viewer),
            content_type="text/html",
            headers={"X-Standin-Version": str(self._version), "Cache-Control": "no-store"},
        )

    def _selected_channel(self, ref: str | None) -> _Channel | None:
        if ref and (channel := self._find_channel(ref)):
            return channel
        if self._app is not None and self._app.channel:
            # Open on the channel people type in (and the notifier posts to).
            home = self._find_channel(self._app.channel)
            if home is not None:
                return home
        return next(iter(sorted(self._channels.values(), key=lambda c: c.name)), None)

    def _viewer(self, user_id: str | None) -> str | None:
        """Who the page acts as when an app is connected (None: a read-only page for all)."""
        if self._app is None or not self._users:
            return None
        return user_id if user_id in self._users else next(iter(self._users))

    def _render_app(self, selected: _Channel | None, viewer: str | None = None) -> str:
        renderer = _BlockKitRenderer(self._users, self._usergroups, self._channels, viewer)
        sidebar = self._render_sidebar(selected, viewer)
        if selected is None:
            pane = (
                '<main class="channel-pane"><div class="no-messages">No channel yet: '
                "<code>chat.postMessage</code> to the Web API under <code>/api/</code> "
                "and it appears here.</div></main>"
            )
        else:
            pane = renderer.channel_pane(selected)
        others = {k: s for k, s in self._view_stacks.items() if s.user_id != viewer}
        modals = renderer.modals(list(self._views.values()), others)
        live_modal = ""
        stack = self._latest_stack(viewer) if viewer else None
        if stack is not None:
            view_id = stack.view_ids[-1]
            live_modal = renderer.live_modal(
                self._views[view_id],
                errors=self._view_errors.get(view_id, {}),
                notice=self._view_notices.get(view_id),
                depth=len(stack.view_ids),
            )
        return f'<div class="workspace">{sidebar}{pane}{modals}</div>{live_modal}'

    def _render_sidebar(self, selected: _Channel | None, viewer: str | None = None) -> str:
        as_viewer = f"&amp;user={html.escape(viewer)}" if viewer else ""

        def links(channels: list[_Channel]) -> str:
            rendered = []
            for channel in sorted(channels, key=lambda c: c.name):
                active = " active" if channel is selected else ""
                rendered.append(
                    f'<a class="channel-link{active}" '
                    f'href="/?channel={html.escape(channel.id)}{as_viewer}">'
                    f"<span>{html.escape(channel.display_name)}</span>"
                    f'<span class="count">{len(channel.messages)}</span></a>'
                )
            return "".join(rendered) or '<div class="empty-sidebar">none yet</div>'

        direct = [c for c in self._channels.values() if c.name.startswith("@")]
        public = [c for c in self._channels.values() if not c.name.startswith("@")]
        faults = "".join(
            f'<div class="fault">⚡ {html.escape(rule.spec.method)}: '
            f"{_describe_fault(rule.spec)} ({rule.injected} injected)</div>"
            for rule in self._fault_rules.values()
        )
        who = ""
        if viewer is not None:
            options = "".join(
                f'<option value="{html.escape(user.id)}"{" selected" if user.id == viewer else ""}>'
                f"{html.escape(user.real_name)} (@{html.escape(user.name)})</option>"
                for user in self._users.values()
            )
            who = (
                '<label class="viewer">You are <select id="standin-user" '
                f'title="Who you act as on this page">{options}</select></label>'
            )
        subtitle = "Slack stand-in, connected to the app" if viewer else "Slack Web API stand-in"
        return (
            '<aside class="sidebar">'
            f'<div class="team">{html.escape(self.team_name)}<small>{subtitle}</small>{who}</div>'
            '<div class="section-title">Channels</div>'
            + links(public)
            + '<div class="section-title">Direct messages</div>'
            + links(direct)
            + f'<div class="sidebar-footer"><a href="/_standin/calls">{len(self._calls)} API calls</a>'
            f"{faults}</div></aside>"
        )


# ------------------------------------------------------------- Slack's client side

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
#: Slack still sends the deprecated verification token; apps that check signatures ignore it.
VERIFICATION_TOKEN = "deprecated-verification-token"
TEAM_DOMAIN = "toilkit-standin"
SLACKBOT_USER_ID = "USLACKBOT"

TEXT_INPUT_TYPES = frozenset(
    {"plain_text_input", "number_input", "email_text_input", "url_text_input"}
)
SINGLE_OPTION_TYPES = frozenset({"static_select", "radio_buttons"})
MULTI_OPTION_TYPES = frozenset({"multi_static_select", "checkboxes"})
#: Element type -> the state field that holds what was picked, and the element's initial one.
_PICKED_FIELDS = {
    "users_select": ("selected_user", "initial_user"),
    "multi_users_select": ("selected_users", "initial_users"),
    "conversations_select": ("selected_conversation", "initial_conversation"),
    "channels_select": ("selected_channel", "initial_channel"),
    "datepicker": ("selected_date", "initial_date"),
    "timepicker": ("selected_time", "initial_time"),
}
#: Elements whose value is part of ``view.state.values``.
STATEFUL_TYPES = (
    TEXT_INPUT_TYPES | SINGLE_OPTION_TYPES | MULTI_OPTION_TYPES | frozenset(_PICKED_FIELDS)
)
#: Parts of a block that are text or pictures, never something to interact with.
_INERT_ELEMENT_TYPES = frozenset({"image", "plain_text", "mrkdwn"})
REQUIRED_FIELD_MESSAGE = "Please complete this required field."

#: What the page sends for one element: text, an option value or user id, several, or nothing.
TypedValue = str | list[str] | None
TypedValues = Mapping[str, Mapping[str, TypedValue]]


class ClientFailure(Exception):
    """Something the page asked the stand-in's client side that Slack's client would refuse."""

    def __init__(self, error: str, message: str | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.message = message or error

    def body(self) -> JsonDict:
        """The JSON answer the page shows."""
        return {"ok": False, "error": self.error, "message": self.message}


@dataclass(frozen=True)
class _AppConnection:
    """The app Slack's client side talks to: its Request URL and signing secret."""

    request_url: str
    signing_secret: str
    timeout: float
    channel: str | None


@dataclass(frozen=True)
class _AppAnswer:
    """How the app answered one request; ``failure`` is Slack's error code when it did not."""

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
class _ResponseHook:
    """A ``response_url`` handed out with an interaction: 5 uses within 30 minutes."""

    token: str
    user_id: str
    channel_id: str
    source_ts: str | None
    source_ephemeral: bool
    issued_at: float
    uses: int = 0


def sign_slack_request(signing_secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The headers Slack sends with ``body``: its timestamp and ``v0`` signature.

    Slack signs ``v0:<timestamp>:<raw body>`` with HMAC-SHA256 keyed by the app's signing
    secret. (``services/gateway/simulate.py`` does the same for the gateway's tests; toilkit
    never imports services, so the stand-in carries its own ten lines.)
    """
    base = b"v0:" + str(timestamp).encode("ascii") + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": FORM_CONTENT_TYPE,
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": f"v0={digest}",
    }


def interaction_form(payload: Mapping[str, Any]) -> bytes:
    """An interaction as Slack posts it: a form whose ``payload`` field is the JSON."""
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()


def _generated_id(seed: str) -> str:
    """An id such as Slack generates for a block or element the app left without one."""
    return base64.b32encode(hashlib.sha1(seed.encode()).digest()).decode()[:5]


def _interactive_elements(block: JsonDict) -> list[JsonDict]:
    """The elements of a block a person can use (an input's, an actions', an accessory)."""
    block_type = block.get("type")
    if block_type == "actions":
        candidates = block.get("elements") or []
    elif block_type == "input":
        candidates = [block.get("element")]
    elif block_type == "section":
        candidates = [block.get("accessory")]
    else:
        candidates = []
    return [
        element
        for element in candidates
        if isinstance(element, dict) and element.get("type") not in _INERT_ELEMENT_TYPES
    ]


def with_element_ids(blocks: Any, seed: str) -> list[JsonDict]:
    """A copy of ``blocks`` in which every block has a ``block_id`` and every interactive
    element an ``action_id``, generated (stable for ``seed``) where the app gave none, as
    Slack does before it reports an interaction."""
    filled: list[JsonDict] = []
    for index, block in enumerate(blocks if isinstance(blocks, list) else []):
        if not isinstance(block, dict):
            continue
        copied = copy.deepcopy(block)
        block_id = str(copied.setdefault("block_id", _generated_id(f"{seed}:{index}")))
        for position, element in enumerate(_interactive_elements(copied)):
            element.setdefault("action_id", _generated_id(f"{seed}:{block_id}:{position}"))
        filled.append(copied)
    return filled


def _find_element(
    blocks: list[JsonDict], action_id: str, block_id: str | None
) -> tuple[str, JsonDict] | None:
    """(block id, element) of the element named ``action_id`` (in ``block_id`` if given)."""
    for block in blocks:
        if block_id is not None and block.get("block_id") != block_id:
            continue
        for element in _interactive_elements(block):
            if element.get("action_id") == action_id:
                return str(block["block_id"]), element
    return None


def _options_of(element: JsonDict) -> list[JsonDict]:
    """An element's options, those in option groups included."""
    options = [o for o in element.get("options") or [] if isinstance(o, dict)]
    for group in element.get("option_groups") or []:
        if isinstance(group, dict):
            options.extend(o for o in group.get("options") or [] if isinstance(o, dict))
    return options


def _typed_from_initial(element: JsonDict) -> TypedValue:
    """What an element holds before anyone touches it."""
    kind = str(element.get("type"))
    if kind in SINGLE_OPTION_TYPES:
        initial = element.get("initial_option")
        return str(initial["value"]) if isinstance(initial, dict) and "value" in initial else None
    if kind in MULTI_OPTION_TYPES:
        return [str(o["value"]) for o in element.get("initial_options") or [] if "value" in o]
    if kind in _PICKED_FIELDS:
        initial = element.get(_PICKED_FIELDS[kind][1])
        if isinstance(initial, list):
            return [str(item) for item in initial]
        return None if initial is None else str(initial)
    initial = element.get("initial_value")
    return None if initial is None else str(initial)


def _typed_from_entry(entry: Mapping[str, Any]) -> TypedValue:
    """What the page holds for a ``state.values`` entry (the reverse of :func:`state_entry`)."""
    for key, value in entry.items():
        if key == "type":
            continue
        if isinstance(value, dict):
            return str(value.get("value", ""))
        if isinstance(value, list):
            return [str(v.get("value", "")) if isinstance(v, dict) else str(v) for v in value]
        return None if value is None else str(value)
    return None


def _as_list(typed: TypedValue) -> list[str]:
    if typed is None:
        return []
    return [str(item) for item in typed] if isinstance(typed, list) else [typed]


def _as_single(typed: TypedValue) -> str | None:
    values = [value for value in _as_list(typed) if value != ""]
    return values[0] if values else None


def state_entry(element: JsonDict, typed: TypedValue) -> JsonDict:
    """One element's entry in ``view.state.values``, shaped as Slack reports it.

    Options are reported as the app defined them (text and value); a value that is not
    one of the element's options counts as nothing picked.
    """
    kind = str(element.get("type"))
    entry: JsonDict = {"type": kind}
    if kind in SINGLE_OPTION_TYPES:
        value = _as_single(typed)
        picked = next((o for o in _options_of(element) if str(o.get("value")) == value), None)
        entry["selected_option"] = copy.deepcopy(picked)
    elif kind in MULTI_OPTION_TYPES:
        wanted = _as_list(typed)
        entry["selected_options"] = [
            copy.deepcopy(o) for o in _options_of(element) if str(o.get("value")) in wanted
        ]
    elif kind in _PICKED_FIELDS:
        state_field = _PICKED_FIELDS[kind][0]
        entry[state_field] = _as_list(typed) if kind.startswith("multi_") else _as_single(typed)
    else:
        single = typed[0] if isinstance(typed, list) and typed else typed
        entry["value"] = None if single in (None, "") or isinstance(single, list) else single
    return entry


def state_values(blocks: list[JsonDict], typed: TypedValues) -> dict[str, dict[str, JsonDict]]:
    """``state.values`` of a surface: every stateful element, as typed or as it started.

    Args:
        blocks: the surface's blocks, with ids (see :func:`with_element_ids`).
        typed: block id -> action id -> what the page holds; elements not named keep
            their initial value.
    """
    values: dict[str, dict[str, JsonDict]] = {}
    for block in blocks:
        block_id = str(block["block_id"])
        for element in _interactive_elements(block):
            if element.get("type") not in STATEFUL_TYPES:
                continue
            action_id = str(element["action_id"])
            given = typed.get(block_id, {})
            value = given[action_id] if action_id in given else _typed_from_initial(element)
            values.setdefault(block_id, {})[action_id] = state_entry(element, value)
    return values


def _is_empty(entry: JsonDict) -> bool:
    picked = [value for key, value in entry.items() if key != "type"]
    return all(value in (None, "", []) for value in picked)


def slack_input_errors(
    blocks: list[JsonDict], values: Mapping[str, Mapping[str, JsonDict]]
) -> dict[str, str]:
    """The problems Slack's client shows under inputs without sending the submission:
    a required input left empty, a number out of its range, text of the wrong length."""
    errors: dict[str, str] = {}
    for block in blocks:
        if block.get("type") != "input":
            continue
        block_id = str(block["block_id"])
        element = block.get("element") or {}
        entry = values.get(block_id, {}).get(str(element.get("action_id")))
        if entry is None:
            continue
        if _is_empty(entry):
            if not block.get("optional"):
                errors[block_id] = REQUIRED_FIELD_MESSAGE
            continue
        problem = _value_problem(element, entry)
        if problem:
            errors[block_id] = problem
    return errors


def _value_problem(element: JsonDict, entry: JsonDict) -> str | None:
    """Why a filled-in text or number input is refused by Slack's client, if it is."""
    kind = element.get("type")
    value = entry.get("value")
    if not isinstance(value, str):
        return None
    if kind == "number_input":
        return _number_problem(element, value)
    minimum, maximum = element.get("min_length"), element.get("max_length")
    if isinstance(minimum, int) and len(value) < minimum:
        return f"Please enter at least {minimum} characters."
    if isinstance(maximum, int) and len(value) > maximum:
        return f"Please enter no more than {maximum} characters."
    if kind == "email_text_input" and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        return "Please enter a valid email address."
    if kind == "url_text_input" and not _SAFE_URL.match(value):
        return "Please enter a valid URL."
    return None


def _number_problem(element: JsonDict, value: str) -> str | None:
    try:
        number = float(value)
    except ValueError:
        return "Please enter a number."
    if not element.get("is_decimal_allowed") and not re.fullmatch(r"[+-]?\d+", value.strip()):
        return "Please enter a whole number."
    low, high = _number_bound(element, "min_value"), _number_bound(element, "max_value")
    if (low is not None and number < low) or (high is not None and number > high):
        if low is not None and high is not None:
            return (
                f"Please enter a number between {element['min_value']} and {element['max_value']}."
            )
        if low is not None:
            return f"Please enter a number of at least {element['min_value']}."
        return f"Please enter a number of at most {element['max_value']}."
    return None


def _number_bound(element: JsonDict, name: str) -> float | None:
    try:
        return float(element[name]) if name in element else None
    except (TypeError, ValueError):
        return None


def _element_action(
    element: JsonDict, block_id: str, entry: JsonDict | None, action_ts: str
) -> JsonDict:
    """One entry of a ``block_actions`` payload's ``actions``, as Slack reports it."""
    action: JsonDict = {
        "type": element.get("type"),
        "action_id": element["action_id"],
        "block_id": block_id,
        "action_ts": action_ts,
    }
    if element.get("type") == "button":
        action["text"] = copy.deepcopy(element.get("text"))
        for key in ("value", "style", "url"):
            if key in element:
                action[key] = element[key]
        return action
    if entry is not None:
        action.update({key: value for key, value in entry.items() if key != "type"})
    if "placeholder" in element:
        action["placeholder"] = copy.deepcopy(element["placeholder"])
    return action


def _typed_values(raw: Any) -> dict[str, dict[str, TypedValue]]:
    """The page's ``values`` (block id -> action id -> value), checked."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ClientFailure("invalid_values", "values must be an object of objects")
    typed: dict[str, dict[str, TypedValue]] = {}
    for block_id, actions in raw.items():
        if not isinstance(actions, dict):
            raise ClientFailure("invalid_values", f"values[{block_id!r}] must be an object")
        for action_id, value in actions.items():
            if not (
                value is None
                or isinstance(value, str)
                or (isinstance(value, list) and all(isinstance(v, str) for v in value))
            ):
                raise ClientFailure(
                    "invalid_values", f"values[{block_id!r}][{action_id!r}] must be text or a list"
                )
            typed.setdefault(str(block_id), {})[str(action_id)] = value
    return typed


def _required_text(body: JsonDict, name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ClientFailure("invalid_arguments", f"{name} is required")
    return value


async def _client_request_body(request: web.Request) -> JsonDict:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ClientFailure("invalid_json", "the request body is not JSON") from error
    if not isinstance(body, dict):
        raise ClientFailure("json_not_object", "the request body must be a JSON object")
    return body


# --------------------------------------------------------------- request parsing


async def _read_arguments(request: web.Request) -> JsonDict:
    """The call's arguments from its query string and its form or JSON body.

    JSON-encoded arguments (``blocks`` in a form body) are decoded; what does not decode is
    left as a string for the method to reject with Slack's error code.
    """
    arguments: JsonDict = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except json.JSONDecodeError as error:
                raise SlackApiFailure("invalid_json") from error
            if not isinstance(body, dict):
                raise SlackApiFailure("json_not_object")
            arguments.update(body)
        else:
            form = await request.post()
            arguments.update({key: value for key, value in form.items() if isinstance(value, str)})
    for key in JSON_ENCODED_ARGUMENTS:
        value = arguments.get(key)
        if isinstance(value, str):
            try:
                arguments[key] = json.loads(value)
            except json.JSONDecodeError:
                continue
    return {key: value for key, value in arguments.items() if value is not None}


def _bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def _optional_str(arguments: JsonDict, name: str) -> str | None:
    value = arguments.get(name)
    return None if value is None else str(value)


def _message_metadata(metadata: Any) -> JsonDict:
    """A message's ``metadata`` argument, checked as Slack checks it."""
    if (
        not isinstance(metadata, dict)
        or not isinstance(metadata.get("event_type"), str)
        or not metadata["event_type"]
        or not isinstance(metadata.get("event_payload"), dict)
    ):
        raise SlackApiFailure("invalid_metadata_format")
    return {"event_type": metadata["event_type"], "event_payload": metadata["event_payload"]}


def _in_ts_range(messages: list[JsonDict], arguments: JsonDict) -> list[JsonDict]:
    """The messages between ``oldest`` and ``latest`` (exclusive unless ``inclusive``)."""
    try:
        oldest = float(arguments.get("oldest") or 0)
        latest = float(arguments.get("latest") or "inf")
    except (TypeError, ValueError) as error:
        raise invalid_arguments("oldest and latest must be timestamps") from error
    inclusive = str(arguments.get("inclusive", "")).lower() in ("1", "true")

    def within(ts: float) -> bool:
        if inclusive:
            return oldest <= ts <= latest
        return oldest < ts < latest

    return [m for m in messages if within(float(m["ts"]))]


def _page(
    messages: list[JsonDict], arguments: JsonDict, *, default_limit: int = 100
) -> tuple[list[JsonDict], bool, str]:
    """One page of ``messages`` after ``cursor``: (page, has_more, next_cursor)."""
    try:
        limit = min(max(int(arguments.get("limit") or default_limit), 1), 1000)
        start = (
            int(base64.b64decode(str(arguments["cursor"])).decode())
            if arguments.get("cursor")
            else 0
        )
    except (TypeError, ValueError) as error:
        raise SlackApiFailure("invalid_cursor") from error
    page = messages[start : start + limit]
    has_more = start + limit < len(messages)
    next_cursor = base64.b64encode(str(start + limit).encode()).decode() if has_more else ""
    return page, has_more, next_cursor


def _as_read(message: JsonDict, arguments: JsonDict) -> JsonDict:
    """A message as the read methods return it: metadata only when asked for."""
    copied = copy.deepcopy(message)
    if str(arguments.get("include_all_metadata", "")).lower() not in ("1", "true"):
        copied.pop("metadata", None)
    return copied


def _message_content(arguments: JsonDict, *, require_content: bool) -> JsonDict:
    """The validated ``text``, ``blocks`` and ``attachments`` of a message call."""
    content: JsonDict = {}
    if "text" in arguments:
        content["text"] = str(arguments["text"])
        if len(content["text"]) > MAX_MESSAGE_TEXT:
            raise SlackApiFailure("msg_too_long")
    if "blocks" in arguments:
        blocks = arguments["blocks"]
        if not isinstance(blocks, list):
            raise SlackApiFailure("invalid_blocks_format")
        errors = block_kit_errors(blocks, max_blocks=MAX_MESSAGE_BLOCKS, pointer="/blocks")
        if errors:
            raise SlackApiFailure(
                "invalid_blocks",
                errors=errors,
                response_metadata={"messages": [f"[ERROR] {error}" for error in errors]},
            )
        content["blocks"] = blocks
    if "attachments" in arguments:
        attachments = arguments["attachments"]
        if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
            raise SlackApiFailure("invalid_attachments")
        content["attachments"] = attachments
    if require_content and not (
        content.get("text") or content.get("blocks") or "attachments" in content
    ):
        raise SlackApiFailure("no_text")
    return content


def _view_argument(arguments: JsonDict) -> JsonDict:
    """The validated ``view`` of a ``views.*`` call."""
    view = arguments.get("view")
    if not isinstance(view, dict):
        raise invalid_arguments("missing required field: view [json-pointer:/view]")
    problems: list[str] = []
    if view.get("type") not in ("modal", "home"):
        problems.append("must be one of modal, home [json-pointer:/view/type]")
    title = view.get("title")
    if view.get("type") == "modal":
        problems.extend(_text_object_errors(title, "/view/title", MAX_VIEW_TITLE))
    problems.extend(
        block_kit_errors(view.get("blocks"), max_blocks=MAX_MODAL_BLOCKS, pointer="/view/blocks")
    )
    if len(str(view.get("external_id", ""))) > 255:
        problems.append("must be less than 256 characters [json-pointer:/view/external_id]")
    if problems:
        raise invalid_arguments(*problems)
    return view


def _view_content(view: JsonDict) -> JsonDict:
    """The parts of a view payload that a view record keeps and an update replaces."""
    return {
        "type": view["type"],
        "title": view.get("title"),
        "submit": view.get("submit"),
        "close": view.get("close"),
        "blocks": view.get("blocks", []),
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
        "clear_on_close": bool(view.get("clear_on_close", False)),
        "notify_on_close": bool(view.get("notify_on_close", False)),
    }


def _describe_fault(spec: FaultSpec) -> str:
    shares = (
        ("429", spec.rate_limited),
        ("5xx", spec.server_error),
        ("slow", spec.slow),
        ("drop", spec.drop),
    )
    return ", ".join(f"{label} {share:.0%}" for label, share in shares if share) or "none"


# --------------------------------------------------------------- Block Kit checks


def block_kit_errors(blocks: Any, *, max_blocks: int, pointer: str) -> list[str]:
    """Slack's validation messages for a list of blocks (empty when Slack would accept it)."""
    if not isinstance(blocks, list):
        return [f"must be an array [json-pointer:{pointer}]"]
    errors = []
    if len(blocks) > max_blocks:
        errors.append(f"must be less than {max_blocks + 1} items [json-pointer:{pointer}]")
    for index, block in enumerate(blocks):
        errors.extend(_block_errors(block, f"{pointer}/{index}"))
    return errors


def _block_errors(block: Any, pointer: str) -> list[str]:
    if not isinstance(block, dict) or block.get("type") not in KNOWN_BLOCK_TYPES:
        return [f"failed to match all allowed schemas [json-pointer:{pointer}]"]
    block_type = block["type"]
    errors: list[str] = []
    if block_type == "section":
        if "text" not in block and "fields" not in block:
            errors.append(f"must provide either text or fields [json-pointer:{pointer}]")
        if "text" in block:
            errors.extend(_text_object_errors(block["text"], f"{pointer}/text", MAX_SECTION_TEXT))
        fields = block.get("fields", [])
        if not isinstance(fields, list) or len(fields) > MAX_SECTION_FIELDS:
            errors.append(f"must be less than 11 items [json-pointer:{pointer}/fields]")
        else:
            for index, text in enumerate(fields):
                errors.extend(
                    _text_object_errors(text, f"{pointer}/fields/{index}", MAX_FIELD_TEXT)
                )
    elif block_type == "header":
        errors.extend(_text_object_errors(block.get("text"), f"{pointer}/text", MAX_HEADER_TEXT))
    elif block_type in ("context", "actions"):
        limit = MAX_CONTEXT_ELEMENTS if block_type == "context" else MAX_ACTIONS_ELEMENTS
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements or len(elements) > limit:
            errors.append(
                f"must be an array of 1 to {limit} items [json-pointer:{pointer}/elements]"
            )
    return errors


def _text_object_errors(text: Any, pointer: str, max_length: int) -> list[str]:
    if not isinstance(text, dict) or text.get("type") not in ("plain_text", "mrkdwn"):
        return [f"must be a text object [json-pointer:{pointer}]"]
    value = text.get("text")
    if not isinstance(value, str) or not value:
        return [f"must be more than 0 characters [json-pointer:{pointer}/text]"]
    if len(value) > max_length:
        return [f"must be less than {max_length + 1} characters [json-pointer:{pointer}/text]"]
    return []


# ------------------------------------------------------------- Block Kit rendering

EMOJI = {
    "white_check_mark": "✅",
    "heavy_check_mark": "✔️",
    "x": "❌",
    "warning": "⚠️",
    "hourglass_flowing_sand": "⏳",
    "hourglass": "⌛",
    "rotating_light": "🚨",
    "large_green_circle": "🟢",
    "large_yellow_circle": "🟡",
    "red_circle": "🔴",
    "white_circle": "⚪",
    "no_entry": "⛔",
    "rocket": "🚀",
    "tada": "🎉",
    "stopwatch": "⏱️",
    "memo": "📝",
    "mag": "🔍",
    "lock": "🔒",
    "construction": "🚧",
    "information_source": "\u2139\ufe0f",
    "arrows_counterclockwise": "🔄",
    "eyes": "👀",
    "fire": "🔥",
    "bell": "🔔",
    "clipboard": "📋",
    "package": "📦",
    "gear": "⚙️",
    "wrench": "🔧",
    "link": "🔗",
    "+1": "👍",
    "thumbsup": "👍",
    "new": "🆕",
    "repeat": "🔁",
    "see_no_evil": "🙈",
    "no_entry_sign": "🚫",
    "scroll": "📜",
    # What the gateway's own replies use.
    "inbox_tray": "📥",
    "thinking_face": "🤔",
    "arrow_forward": "▶️",
    "raised_hand": "✋",
    "small_blue_diamond": "🔹",
    "octagonal_sign": "🛑",
}

# One pass over mrkdwn: code blocks, inline code and <links> are never formatted further.
_MRKDWN_TOKENS = re.compile(r"```(?P<pre>.*?)```|`(?P<code>[^`\n]+)`|<(?P<link>[^<>\n]+)>", re.S)
_BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]*?\S)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w])_(?=\S)([^_\n]*?\S)_(?![\w])")
_STRIKE = re.compile(r"(?<![\w~])~(?=\S)([^~\n]*?\S)~(?![\w~])")
_EMOJI_CODE = re.compile(r":([a-z0-9_+\-]+):")
_SAFE_URL = re.compile(r"^(https?://|mailto:)", re.I)
_SLACK_LINK_TARGET = re.compile(r"^([@#!]|[a-z][a-z0-9+.-]*:)", re.I)


def _emoji(text: str) -> str:
    return _EMOJI_CODE.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), text)


def _dom_id(key: str) -> str:
    """An HTML id for a form control, the same on every render so focus survives one."""
    return "f-" + hashlib.sha1(key.encode()).hexdigest()[:12]


def _avatar_colour(name: str) -> str:
    hue = int(hashlib.sha1(name.encode()).hexdigest(), 16) % 360
    return f"hsl({hue}, 45%, 42%)"


@dataclass(frozen=True)
class _Live:
    """Where interactive elements are rendered usable: a message's buttons, a modal's form."""

    surface: Literal["message", "view"]
    channel_id: str = ""
    message_ts: str = ""
    errors: Mapping[str, str] = field(default_factory=dict)
    #: ``state.values`` of the view: what the person last sent, shown again on a reload.
    state: Mapping[str, Mapping[str, JsonDict]] = field(default_factory=dict)


class _BlockKitRenderer:
    """Turns messages, Block Kit and mrkdwn into HTML; every piece of caller text is escaped.

    With a ``viewer`` (an app is connected) the page acts as that person: only their
    ephemeral messages show, buttons are clickable, their modal is a form and each channel
    has a message box. Without one it is a read-only view of everything.
    """

    def __init__(
        self,
        users: Mapping[str, SlackUser],
        usergroups: Mapping[str, SlackUserGroup],
        channels: Mapping[str, _Channel],
        viewer: str | None = None,
    ) -> None:
        self._users = users
        self._usergroups = usergroups
        self._channels = channels
        self._viewer = viewer

    # Messages ---------------------------------------------------------------

    def channel_pane(self, channel: _Channel) -> str:
        ephemeral = [
            m
            for m in channel.ephemeral
            if self._viewer is None or m.get("ephemeral_for") == self._viewer
        ]
        timeline = sorted(
            [
                (m["ts"], self.message(m, channel.replies.get(m["ts"], []), channel.id))
                for m in channel.messages
            ]
            + [(m["ts"], self.message(m, [], channel.id)) for m in ephemeral],
            key=lambda item: float(item[0]),
        )
        body = "".join(rendered for _, rendered in timeline) or (
            '<div class="no-messages">No messages in this channel yet.</div>'
        )
        return (
            '<main class="channel-pane"><header class="channel-header">'
            f"<h1>{html.escape(channel.display_name)}</h1>"
            f'<span class="channel-id">{html.escape(channel.id)}</span></header>'
            f'<div class="messages">{body}</div>{self.composer(channel)}</main>'
        )

    def composer(self, channel: _Channel) -> str:
        """The message box slash commands are typed in (only when an app is connected)."""
        if self._viewer is None:
            return ""
        key = f"composer|{channel.id}"
        shown_name = channel.name if channel.name.startswith("@") else f"#{channel.name}"
        return (
            f'<form class="composer" data-channel="{html.escape(channel.id)}" novalidate>'
            f'<div class="el composer-box" data-kind="plain_text_input" data-key="{html.escape(key)}">'
            f'<input id="{_dom_id(key)}" type="text" autocomplete="off" spellcheck="false" '
            f'aria-label="Message {html.escape(shown_name)}" '
            f'placeholder="Message {html.escape(shown_name)}: try /toil help, '
            '/toil run, /toil drift"></div>'
            '<button type="submit" class="button primary">Send</button>'
            '<div class="composer-status" role="status"></div></form>'
        )

    def message(self, message: JsonDict, replies: list[JsonDict], channel_id: str = "") -> str:
        name = str(
            message.get("username")
            or message.get("bot_profile", {}).get("name")
            or (self._users[message["user"]].name if message.get("user") in self._users else "")
            or "app"
        )
        initials = "".join(part[0] for part in re.split(r"[\s_-]+", name) if part)[:2].upper()
        ephemeral_for = message.get("ephemeral_for")
        classes = "message ephemeral" if ephemeral_for else "message"
        if not ephemeral_for:
            note = ""
        elif self._viewer is not None:
            note = '<div class="ephemeral-note">Only visible to you</div>'
        else:
            note = (
                '<div class="ephemeral-note">Only visible to you '
                f"({html.escape(self._user_label(str(ephemeral_for)))})</div>"
            )
        edited = '<span class="edited">(edited)</span>' if "edited" in message else ""
        badge = '<span class="badge">APP</span>' if message.get("bot_id") else ""
        blocks = message.get("blocks")
        live = None
        if blocks and self._viewer is not None and channel_id:
            # The ids Slack reports in block_actions, generated where the app gave none.
            blocks = with_element_ids(blocks, f"{channel_id}:{message['ts']}")
            live = _Live("message", channel_id=channel_id, message_ts=str(message["ts"]))
        content = self.blocks(blocks, live) if blocks else self.mrkdwn(str(message.get("text", "")))
        content += "".join(self.attachment(a) for a in message.get("attachments", []))
        thread = ""
        if replies:
            count = len(replies)
            label = f"{count} {'reply' if count == 1 else 'replies'}"
            thread = (
                f'<details class="thread" id="thread-{html.escape(message["ts"])}" open>'
                f'<summary>{label} <span class="last-reply">Last reply '
                f"{self._time(replies[-1]['ts'])}</span></summary>"
                f'<div class="replies">{"".join(self.message(r, [], channel_id) for r in replies)}</div>'
                "</details>"
            )
        return (
            f'<div class="{classes}" id="msg-{html.escape(message["ts"])}">'
            f'<div class="avatar" style="background:{_avatar_colour(name)}">'
            f"{html.escape(initials)}</div>"
            '<div class="message-body"><div class="meta">'
            f'<span class="name">{html.escape(name)}</span>{badge}'
            f"{self._time(message['ts'])}{edited}</div>"
            f'{note}<div class="content">{content}</div>{thread}</div></div>'
        )

    def attachment(self, attachment: Any) -> str:
        if not isinstance(attachment, dict):
            return ""
        colour = str(attachment.get("color", "#dddddd"))
        colour = {"good": "#2eb67d", "warning": "#ecb22e", "danger": "#e01e5a"}.get(colour, colour)
        if not re.fullmatch(r"#?[0-9a-fA-F]{3,8}", colour):
            colour = "#dddddd"
        if not colour.startswith("#"):
            colour = f"#{colour}"
        parts = []
        if pretext := attachment.get("pretext"):
            parts.append(f"<div>{self.mrkdwn(str(pretext))}</div>")
        if title := attachment.get("title"):
            parts.append(f'<div class="title">{html.escape(str(title))}</div>')
        if text := attachment.get("text"):
            parts.append(f"<div>{self.mrkdwn(str(text))}</div>")
        fields = [f for f in attachment.get("fields", []) if isinstance(f, dict)]
        if fields:
            cells = "".join(
                f"<div><b>{html.escape(str(f.get('title', '')))}</b><br>"
                f"{self.mrkdwn(str(f.get('value', '')))}</div>"
                for f in fields
            )
            parts.append(f'<div class="fields">{cells}</div>')
        if isinstance(attachment.get("blocks"), list):
            parts.append(self.blocks(attachment["blocks"]))
        if footer := attachment.get("footer"):
            parts.append(f'<div class="footer">{html.escape(str(footer))}</div>')
        return (
            f'<div class="attachment"><div class="bar" style="background:{colour}"></div>'
            f'<div class="attachment-body">{"".join(parts)}</div></div>'
        )

    def modals(self, views: list[JsonDict], stacks: Mapping[str, _ViewStack]) -> str:
        if not views:
            return ""
        views_by_id = {view["id"]: view for view in views}
        cards = []
        for stack in stacks.values():
            view = views_by_id.get(stack.view_ids[-1])
            if view is None:
                continue
            depth = f" · {len(stack.view_ids)} views stacked" if len(stack.view_ids) > 1 else ""
            buttons = "".join(
                f'<span class="button{" primary" if key == "submit" else ""}">'
                f"{self.text_object(view[key])}</span>"
                for key in ("close", "submit")
                if isinstance(view.get(key), dict)
            )
            cards.append(
                '<div class="modal"><div class="modal-title">'
                f"{self.text_object(view.get('title'))}"
                f"<small>{html.escape(view['id'])} for "
                f"{html.escape(self._user_label(stack.user_id))}{depth}</small></div>"
                f'<div class="modal-blocks">{self.blocks(view.get("blocks", []))}</div>'
                f'<div class="modal-footer">{buttons}</div></div>'
            )
        if not cards:
            return ""
        return f'<aside class="modals"><h2>Open modals</h2>{"".join(reversed(cards))}</aside>'

    def live_modal(
        self, view: JsonDict, *, errors: Mapping[str, str], notice: str | None, depth: int
    ) -> str:
        """The viewer's modal as a form over the page, as Slack shows a modal."""
        blocks = with_element_ids(view.get("blocks", []), view["id"])
        state = view.get("state", {}).get("values", {})
        live = _Live("view", errors=errors, state=state if isinstance(state, dict) else {})
        close = view.get("close") if isinstance(view.get("close"), dict) else None
        submit = view.get("submit") if isinstance(view.get("submit"), dict) else None
        close_label = self.text_object(close) if close else "Cancel"
        submit_button = (
            f'<button type="submit" class="button primary">{self.text_object(submit)}</button>'
            if submit
            else ""
        )
        back = " · back closes this view" if depth > 1 else ""
        notice_html = (
            f'<div class="modal-notice" role="alert">⚠️ {html.escape(notice)}</div>'
            if notice
            else ""
        )
        return (
            '<div class="overlay">'
            f'<form class="modal live-modal" novalidate data-view-id="{html.escape(view["id"])}">'
            f'<div class="modal-title">{self.text_object(view.get("title"))}'
            f"<small>{html.escape(view['id'])}{back}</small>"
            '<button type="button" class="close-x" data-close-view title="Close">&times;</button></div>'
            f"{notice_html}"
            f'<div class="modal-blocks">{self.blocks(blocks, live)}</div>'
            '<div class="modal-footer">'
            f'<button type="button" class="button" data-close-view>{close_label}</button>'
            f"{submit_button}</div></form></div>"
        )

    # Blocks -----------------------------------------------------------------

    def blocks(self, blocks: Any, live: _Live | None = None) -> str:
        if not isinstance(blocks, list):
            return ""
        return "".join(self.block(block, live) for block in blocks if isinstance(block, dict))

    def block(self, block: JsonDict, live: _Live | None = None) -> str:
        block_type = block.get("type")
        block_id = str(block.get("block_id", ""))
        if block_type == "section":
            text = (
                f'<div class="text">{self.text_object(block["text"])}</div>'
                if "text" in block
                else ""
            )
            fields = block.get("fields") or []
            cells = "".join(f"<div>{self.text_object(f)}</div>" for f in fields)
            fields_html = f'<div class="fields">{cells}</div>' if cells else ""
            accessory = block.get("accessory")
            accessory_html = (
                f'<div class="accessory">{self.element(accessory, live, block_id)}</div>'
                if isinstance(accessory, dict)
                else ""
            )
            return (
                f'<div class="block section"><div class="section-main">{text}{fields_html}'
                f"</div>{accessory_html}</div>"
            )
        if block_type == "header":
            return f'<div class="block header">{self.text_object(block.get("text"))}</div>'
        if block_type == "divider":
            return '<hr class="block divider">'
        if block_type == "context":
            items = "".join(
                f"<span>{self.element(e)}</span>"
                for e in block.get("elements", [])
                if isinstance(e, dict)
            )
            return f'<div class="block context">{items}</div>'
        if block_type == "actions":
            items = "".join(
                self.element(e, live, block_id, dispatch=True)
                for e in block.get("elements", [])
                if isinstance(e, dict)
            )
            return f'<div class="block actions">{items}</div>'
        if block_type == "rich_text":
            return f'<div class="block rich-text">{self.rich_text(block.get("elements", []))}</div>'
        if block_type == "markdown":
            return f'<div class="block markdown">{self.mrkdwn(str(block.get("text", "")))}</div>'
        if block_type == "image":
            return f'<div class="block">{self.element(block)}</div>'
        if block_type == "input":
            return self.input_block(block, live)
        return f'<div class="block unknown">[{html.escape(str(block_type))} block]</div>'

    def input_block(self, block: JsonDict, live: _Live | None) -> str:
        hint = block.get("hint")
        block_id = str(block.get("block_id", ""))
        error = live.errors.get(block_id) if live is not None else None
        optional = ' <span class="optional">(optional)</span>' if block.get("optional") else ""
        element = self.element(
            block.get("element") or {},
            live,
            block_id,
            dispatch=bool(block.get("dispatch_action")),
        )
        return (
            f'<div class="block input-block{" has-error" if error else ""}">'
            f"<label>{self.text_object(block.get('label'))}{optional}</label>"
            f"{element}"
            + (f'<div class="hint">{self.text_object(hint)}</div>' if hint else "")
            + (f'<div class="field-error" role="alert">{html.escape(error)}</div>' if error else "")
            + "</div>"
        )

    def element(
        self,
        element: JsonDict,
        live: _Live | None = None,
        block_id: str = "",
        *,
        dispatch: bool = False,
    ) -> str:
        element_type = element.get("type")
        if live is not None and element_type == "button":
            return self.live_button(element, live, block_id)
        if live is not None and live.surface == "view" and element_type in STATEFUL_TYPES:
            entry = live.state.get(block_id, {}).get(str(element.get("action_id", "")))
            current = _typed_from_entry(entry) if entry else _typed_from_initial(element)
            return self.live_control(element, block_id, current, dispatch=dispatch)
        if element_type in ("mrkdwn", "plain_text"):
            return self.text_object(element)
        if element_type == "button":
            style = element.get("style")
            css = f"button {style}" if style in ("primary", "danger") else "button"
            label = self.text_object(element.get("text"))
            url = str(element.get("url", ""))
            if _SAFE_URL.match(url):
                return f'<a class="{css}" href="{html.escape(url)}">{label}</a>'
            return f'<span class="{css}">{label}</span>'
        if element_type == "image":
            alt = str(element.get("alt_text", "image"))
            return f'<span class="image-placeholder" title="{html.escape(alt)}">🖼 {html.escape(alt)}</span>'
        if element_type in TEXT_INPUT_TYPES:
            shown = element.get("initial_value") or element.get("placeholder", {}).get("text", "")
            return f'<div class="input">{html.escape(str(shown))}</div>'
        placeholder = element.get("placeholder")
        label = (
            self.text_object(placeholder)
            if isinstance(placeholder, dict)
            else html.escape(str(element_type or "element"))
        )
        return f'<span class="select">{label}</span>'

    # Live elements (an app is connected) --------------------------------------

    def live_button(self, element: JsonDict, live: _Live, block_id: str) -> str:
        """A button that sends ``block_actions`` (a link button opens its URL as well)."""
        style = element.get("style")
        css = f"button {style}" if style in ("primary", "danger") else "button"
        label = self.text_object(element.get("text"))
        kind = "data-message-action" if live.surface == "message" else "data-view-action"
        attributes = (
            f'{kind} data-block-id="{html.escape(block_id)}" '
            f'data-action-id="{html.escape(str(element.get("action_id", "")))}"'
        )
        if live.surface == "message":
            attributes += (
                f' data-channel="{html.escape(live.channel_id)}"'
                f' data-ts="{html.escape(live.message_ts)}"'
            )
        confirm = element.get("confirm")
        if isinstance(confirm, dict):
            question = "\n\n".join(
                str(part.get("text", ""))
                for part in (confirm.get("title"), confirm.get("text"))
                if isinstance(part, dict)
            )
            attributes += f' data-confirm="{html.escape(question)}"'
        url = str(element.get("url", ""))
        if _SAFE_URL.match(url):
            return (
                f'<a class="{css}" href="{html.escape(url)}" target="_blank" rel="noopener" '
                f"{attributes}>{label}</a>"
            )
        return f'<button type="button" class="{css}" {attributes}>{label}</button>'

    def live_control(
        self, element: JsonDict, block_id: str, initial: TypedValue, *, dispatch: bool
    ) -> str:
        """A form control for a stateful element holding ``initial``; the page reads it
        back by its ids."""
        kind = str(element.get("type"))
        action_id = str(element.get("action_id", ""))
        key = f"{block_id}|{action_id}"
        control_id = _dom_id(key)
        placeholder = element.get("placeholder")
        placeholder_text = str(placeholder.get("text", "")) if isinstance(placeholder, dict) else ""
        if kind in TEXT_INPUT_TYPES:
            control = self._text_control(element, control_id, placeholder_text, initial)
        elif kind in ("datepicker", "timepicker"):
            input_type = "date" if kind == "datepicker" else "time"
            value = html.escape(str(initial or ""))
            control = f'<input id="{control_id}" type="{input_type}" value="{value}">'
        elif kind in ("radio_buttons", "checkboxes"):
            input_type = "radio" if kind == "radio_buttons" else "checkbox"
            chosen = set(_as_list(initial))
            items = []
            for index, option in enumerate(_options_of(element)):
                value = str(option.get("value", ""))
                checked = " checked" if value in chosen else ""
                description = option.get("description")
                note = (
                    f' <span class="option-note">{self.text_object(description)}</span>'
                    if isinstance(description, dict)
                    else ""
                )
                items.append(
                    f'<label class="choice"><input id="{control_id}-{index}" type="{input_type}" '
                    f'name="{control_id}" value="{html.escape(value)}"{checked}> '
                    f"{self.text_object(option.get('text'))}{note}</label>"
                )
            control = f'<div class="choices">{"".join(items)}</div>'
        else:
            control = self._select_control(element, control_id, placeholder_text, initial)
        return (
            f'<div class="el" data-kind="{html.escape(kind)}" data-key="{html.escape(key)}" '
            f'data-block-id="{html.escape(block_id)}" data-action-id="{html.escape(action_id)}"'
            f"{' data-dispatch' if dispatch else ''}>{control}</div>"
        )

    def _text_control(
        self, element: JsonDict, control_id: str, placeholder: str, initial: TypedValue
    ) -> str:
        kind = element.get("type")
        value = html.escape(str(initial or ""))
        attributes = f'id="{control_id}" placeholder="{html.escape(placeholder)}"'
        for name, attribute in (("max_length", "maxlength"), ("min_length", "minlength")):
            if isinstance(element.get(name), int):
                attributes += f' {attribute}="{element[name]}"'
        if kind == "plain_text_input" and element.get("multiline"):
            return f'<textarea {attributes} rows="3">{value}</textarea>'
        if kind == "number_input":
            step = "any" if element.get("is_decimal_allowed") else "1"
            for name, attribute in (("min_value", "min"), ("max_value", "max")):
                if name in element:
                    attributes += f' {attribute}="{html.escape(str(element[name]))}"'
            return f'<input {attributes} type="number" step="{step}" value="{value}">'
        input_type = {"email_text_input": "email", "url_text_input": "url"}.get(str(kind), "text")
        return f'<input {attributes} type="{input_type}" value="{value}">'

    def _select_control(
        self, element: JsonDict, control_id: str, placeholder: str, initial: TypedValue
    ) -> str:
        kind = str(element.get("type"))
        chosen = set(_as_list(initial))
        if kind in ("users_select", "multi_users_select"):
            choices = [(u.id, f"{u.real_name} (@{u.name})") for u in self._users.values()]
        elif kind in ("conversations_select", "channels_select"):
            choices = [
                (c.id, c.display_name)
                for c in self._channels.values()
                if kind == "conversations_select" or not c.name.startswith("@")
            ]
        else:
            choices = [
                (str(o.get("value", "")), str((o.get("text") or {}).get("text", "")))
                for o in _options_of(element)
            ]
        multiple = kind.startswith("multi_")
        options = (
            ""
            if multiple
            else f'<option value="">{html.escape(placeholder or "Select an item")}</option>'
        )
        options += "".join(
            f'<option value="{html.escape(value)}"{" selected" if value in chosen else ""}>'
            f"{html.escape(label)}</option>"
            for value, label in choices
        )
        return f'<select id="{control_id}"{" multiple" if multiple else ""}>{options}</select>'

    def text_object(self, text: Any) -> str:
        if not isinstance(text, dict):
            return ""
        value = str(text.get("text", ""))
        if text.get("type") == "mrkdwn":
            return self.mrkdwn(value)
        escaped = html.escape(value)
        return _emoji(escaped) if text.get("emoji", True) else escaped

    def rich_text(self, elements: Any) -> str:
        parts = []
        for element in elements if isinstance(elements, list) else []:
            if not isinstance(element, dict):
                continue
            kind = element.get("type")
            inner = "".join(self._rich_inline(e) for e in element.get("elements", []))
            if kind == "rich_text_preformatted":
                parts.append(f'<pre class="code">{inner}</pre>')
            elif kind == "rich_text_quote":
                parts.append(f"<blockquote>{inner}</blockquote>")
            elif kind == "rich_text_list":
                tag = "ol" if element.get("style") == "ordered" else "ul"
                items = "".join(
                    f"<li>{self.rich_text([item])}</li>" for item in element.get("elements", [])
                )
                parts.append(f'<{tag} class="rich-list">{items}</{tag}>')
            else:
                parts.append(f"<div>{inner}</div>")
        return "".join(parts)

    def _rich_inline(self, element: Any) -> str:
        if not isinstance(element, dict):
            return ""
        kind = element.get("type")
        if kind == "text":
            rendered = html.escape(str(element.get("text", ""))).replace("\n", "<br>")
        elif kind == "link":
            url = str(element.get("url", ""))
            label = html.escape(str(element.get("text") or url))
            rendered = (
                f'<a href="{html.escape(url)}">{label}</a>' if _SAFE_URL.match(url) else label
            )
        elif kind == "emoji":
            name = str(element.get("name", ""))
            rendered = EMOJI.get(name, html.escape(f":{name}:"))
        elif kind == "user":
            rendered = f'<span class="mention">{html.escape(self._user_label(str(element.get("user_id"))))}</span>'
        elif kind == "channel":
            rendered = f'<span class="mention">{html.escape(self._channel_label(str(element.get("channel_id"))))}</span>'
        else:
            rendered = ""
        style = element.get("style") or {}
        for flag, tag in (("code", "code"), ("bold", "b"), ("italic", "i"), ("strike", "s")):
            if style.get(flag):
                rendered = f"<{tag}>{rendered}</{tag}>"
        return rendered

    # mrkdwn -----------------------------------------------------------------

    def mrkdwn(self, text: str) -> str:
        """Slack's mrkdwn as HTML: bold, italic, strike, code, links, mentions, emoji, quotes."""
        parts = []
        position = 0
        for match in _MRKDWN_TOKENS.finditer(text):
            parts.append(self._formatted(text[position : match.start()]))
            if match.group("pre") is not None:
                code = _slack_unescape(match.group("pre").removeprefix("\n"))
                parts.append(f'<pre class="code">{html.escape(code)}</pre>')
            elif match.group("code") is not None:
                parts.append(f"<code>{html.escape(_slack_unescape(match.group('code')))}</code>")
            else:
                parts.append(self._link(match.group("link")))
            position = match.end()
        parts.append(self._formatted(text[position:]))
        return "".join(parts)

    def _formatted(self, text: str) -> str:
        escaped = html.escape(_slack_unescape(text))
        escaped = _emoji(escaped)
        escaped = _BOLD.sub(r"<b>\1</b>", escaped)
        escaped = _ITALIC.sub(r"<i>\1</i>", escaped)
        escaped = _STRIKE.sub(r"<s>\1</s>", escaped)
        lines = [
            f"<blockquote>{line[5:]}</blockquote>" if line.startswith("&gt; ") else line
            for line in escaped.split("\n")
        ]
        return "<br>".join(lines).replace("</blockquote><br>", "</blockquote>")

    def _link(self, inner: str) -> str:
        target, _, label = inner.partition("|")
        if not _SLACK_LINK_TARGET.match(target):
            # Not Slack's <target|label> syntax (e.g. an unescaped "<b>"): show it as typed.
            return html.escape(f"<{_slack_unescape(inner)}>")
        if target.startswith("@"):
            shown = self._user_label(target[1:])
        elif target.startswith("#"):
            shown = f"#{label}" if label else self._channel_label(target[1:])
        elif target.startswith("!subteam^"):
            group = self._usergroups.get(target.removeprefix("!subteam^"))
            shown = label or (f"@{group.handle}" if group else "@group")
        elif target.startswith("!"):
            shown = label or f"@{target[1:].split('^')[0]}"
        else:
            shown = label or target
            if _SAFE_URL.match(target):
                return f'<a href="{html.escape(target)}">{html.escape(_slack_unescape(shown))}</a>'
            return html.escape(_slack_unescape(shown))
        return f'<span class="mention">{html.escape(_slack_unescape(shown))}</span>'

    def _user_label(self, user_id: str) -> str:
        user = self._users.get(user_id)
        return f"@{user.name}" if user else f"@{user_id}"

    def _channel_label(self, channel_id: str) -> str:
        channel = self._channels.get(channel_id)
        return f"#{channel.name}" if channel else f"#{channel_id}"

    @staticmethod
    def _time(ts: str) -> str:
        """A UTC HH:MM that the page's script turns into the reader's local time."""
        seconds = float(ts)
        shown = time.strftime("%H:%M", time.gmtime(seconds))
        return f'<time data-ts="{html.escape(ts)}">{shown}</time>'


def _slack_unescape(text: str) -> str:
    """Slack escapes ``& < >`` in message text; undo that before HTML-escaping for display."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


# ------------------------------------------------------------------- standalone


async def serve_forever(
    host: str = "127.0.0.1",
    port: int = 3001,
    *,
    app_url: str | None = None,
    signing_secret: str | None = None,
) -> None:
    """Run a Slack stand-in until cancelled (Ctrl-C), playing Slack's client for the app at
    ``app_url`` when given."""
    standin = SlackStandin(app_url=app_url, signing_secret=signing_secret)
    base_url = await standin.start(host, port)
    print(f"Slack stand-in: page {base_url}/  Web API {standin.api_url}", flush=True)
    if app_url:
        print(f"Slash commands and interactions go to {app_url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await standin.stop()


def run_standin(
    host: str = "127.0.0.1",
    port: int = 3001,
    *,
    app_url: str | None = None,
    signing_secret: str | None = None,
) -> None:
    """Run a Slack stand-in in the foreground until interrupted."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(host, port, app_url=app_url, signing_secret=signing_secret))


def main(argv: list[str] | None = None) -> None:
    """``python -m toilkit.standins.slack [--host H] [--port P] [--app-url URL
    --signing-secret S]``."""
    parser = argparse.ArgumentParser(description="Run toilkit's Slack stand-in.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument(
        "--app-url",
        help="the app's Request URL (the gateway's http://HOST:PORT/slack/events): the page "
        "then sends it slash commands, button clicks and modal submissions, signed as Slack does",
    )
    parser.add_argument(
        "--signing-secret",
        default=os.environ.get("SLACK_SIGNING_SECRET")
        or os.environ.get("TOILKIT_GATEWAY_SLACK_SIGNING_SECRET"),
        help="the app's signing secret (default: $SLACK_SIGNING_SECRET, then "
        "$TOILKIT_GATEWAY_SLACK_SIGNING_SECRET)",
    )
    options = parser.parse_args(argv)
    if options.app_url and not options.signing_secret:
        parser.error("--app-url needs --signing-secret (or SLACK_SIGNING_SECRET)")
    logging.basicConfig(level=logging.INFO)
    run_standin(
        options.host,
        options.port,
        app_url=options.app_url,
        signing_secret=options.signing_secret if options.app_url else None,
    )


if __name__ == "__main__":
    main()
