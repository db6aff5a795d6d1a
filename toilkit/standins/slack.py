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
    GET    /                               the page (HTML); /_standin/fragment is its refreshed body

Run it alone with ``python -m toilkit.standins.slack --port 3001``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import hashlib
import html
import importlib.resources
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Self

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
        self.reset()

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
        self._runner, self._base_url = await serve(app, host, port)
        logger.info("Slack stand-in listening on %s (Web API at %s)", self._base_url, self.api_url)
        return self._base_url

    async def stop(self) -> None:
        """Stop serving; recorded calls and state stay readable."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

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
        self._last_ts_micros = 0
        self._id_counter = 0
        self._version = getattr(self, "_version", 0) + 1

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

    # ------------------------------------------------------------------ the page

    async def _handle_page(self, request: web.Request) -> web.Response:
        selected = self._selected_channel(request.query.get("channel"))
        if self._page_shell is None:
            self._page_shell = (
                importlib.resources.files(PAGE_PACKAGE).joinpath(PAGE_RESOURCE).read_text("utf-8")
            )
        shell = self._page_shell
        page = (
            shell.replace("<!--STANDIN-VERSION-->", str(self._version))
            .replace("<!--STANDIN-CHANNEL-->", html.escape(selected.id if selected else ""))
            .replace("<!--STANDIN-APP-->", self._render_app(selected))
        )
        return web.Response(text=page, content_type="text/html")

    async def _handle_fragment(self, request: web.Request) -> web.Response:
        selected = self._selected_channel(request.query.get("channel"))
        return web.Response(
            text=self._render_app(selected),
            content_type="text/html",
            headers={"X-Standin-Version": str(self._version), "Cache-Control": "no-store"},
        )

    def _selected_channel(self, ref: str | None) -> _Channel | None:
        if ref and (channel := self._find_channel(ref)):
            return channel
        return next(iter(sorted(self._channels.values(), key=lambda c: c.name)), None)

    def _render_app(self, selected: _Channel | None) -> str:
        renderer = _BlockKitRenderer(self._users, self._usergroups, self._channels)
        sidebar = self._render_sidebar(selected)
        if selected is None:
            pane = (
                '<main class="channel-pane"><div class="no-messages">No channel yet: '
                "<code>chat.postMessage</code> to the Web API under <code>/api/</code> "
                "and it appears here.</div></main>"
            )
        else:
            pane = renderer.channel_pane(selected)
        modals = renderer.modals(list(self._views.values()), self._view_stacks)
        return f'<div class="workspace">{sidebar}{pane}{modals}</div>'

    def _render_sidebar(self, selected: _Channel | None) -> str:
        def links(channels: list[_Channel]) -> str:
            rendered = []
            for channel in sorted(channels, key=lambda c: c.name):
                active = " active" if channel is selected else ""
                rendered.append(
                    f'<a class="channel-link{active}" href="/?channel={html.escape(channel.id)}">'
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
        return (
            '<aside class="sidebar">'
            f'<div class="team">{html.escape(self.team_name)}<small>Slack Web API stand-in</small></div>'
            '<div class="section-title">Channels</div>'
            + links(public)
            + '<div class="section-title">Direct messages</div>'
            + links(direct)
            + f'<div class="sidebar-footer"><a href="/_standin/calls">{len(self._calls)} API calls</a>'
            f"{faults}</div></aside>"
        )


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


def _avatar_colour(name: str) -> str:
    hue = int(hashlib.sha1(name.encode()).hexdigest(), 16) % 360
    return f"hsl({hue}, 45%, 42%)"


class _BlockKitRenderer:
    """Turns messages, Block Kit and mrkdwn into HTML; every piece of caller text is escaped."""

    def __init__(
        self,
        users: Mapping[str, SlackUser],
        usergroups: Mapping[str, SlackUserGroup],
        channels: Mapping[str, _Channel],
    ) -> None:
        self._users = users
        self._usergroups = usergroups
        self._channels = channels

    # Messages ---------------------------------------------------------------

    def channel_pane(self, channel: _Channel) -> str:
        timeline = sorted(
            [(m["ts"], self.message(m, channel.replies.get(m["ts"], []))) for m in channel.messages]
            + [(m["ts"], self.message(m, [])) for m in channel.ephemeral],
            key=lambda item: float(item[0]),
        )
        body = "".join(rendered for _, rendered in timeline) or (
            '<div class="no-messages">No messages in this channel yet.</div>'
        )
        return (
            '<main class="channel-pane"><header class="channel-header">'
            f"<h1>{html.escape(channel.display_name)}</h1>"
            f'<span class="channel-id">{html.escape(channel.id)}</span></header>'
            f'<div class="messages">{body}</div></main>'
        )

    def message(self, message: JsonDict, replies: list[JsonDict]) -> str:
        name = str(message.get("username") or message.get("bot_profile", {}).get("name") or "app")
        initials = "".join(part[0] for part in re.split(r"[\s_-]+", name) if part)[:2].upper()
        ephemeral_for = message.get("ephemeral_for")
        classes = "message ephemeral" if ephemeral_for else "message"
        note = (
            '<div class="ephemeral-note">Only visible to you '
            f"({html.escape(self._user_label(str(ephemeral_for)))})</div>"
            if ephemeral_for
            else ""
        )
        edited = '<span class="edited">(edited)</span>' if "edited" in message else ""
        blocks = message.get("blocks")
        content = self.blocks(blocks) if blocks else self.mrkdwn(str(message.get("text", "")))
        content += "".join(self.attachment(a) for a in message.get("attachments", []))
        thread = ""
        if replies:
            count = len(replies)
            label = f"{count} {'reply' if count == 1 else 'replies'}"
            thread = (
                f'<details class="thread" id="thread-{html.escape(message["ts"])}" open>'
                f'<summary>{label} <span class="last-reply">Last reply '
                f"{self._time(replies[-1]['ts'])}</span></summary>"
                f'<div class="replies">{"".join(self.message(r, []) for r in replies)}</div>'
                "</details>"
            )
        return (
            f'<div class="{classes}" id="msg-{html.escape(message["ts"])}">'
            f'<div class="avatar" style="background:{_avatar_colour(name)}">'
            f"{html.escape(initials)}</div>"
            '<div class="message-body"><div class="meta">'
            f'<span class="name">{html.escape(name)}</span><span class="badge">APP</span>'
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
        return f'<aside class="modals"><h2>Open modals</h2>{"".join(reversed(cards))}</aside>'

    # Blocks -----------------------------------------------------------------

    def blocks(self, blocks: Any) -> str:
        if not isinstance(blocks, list):
            return ""
        return "".join(self.block(block) for block in blocks if isinstance(block, dict))

    def block(self, block: JsonDict) -> str:
        block_type = block.get("type")
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
                f'<div class="accessory">{self.element(accessory)}</div>'
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
                self.element(e) for e in block.get("elements", []) if isinstance(e, dict)
            )
            return f'<div class="block actions">{items}</div>'
        if block_type == "rich_text":
            return f'<div class="block rich-text">{self.rich_text(block.get("elements", []))}</div>'
        if block_type == "markdown":
            return f'<div class="block markdown">{self.mrkdwn(str(block.get("text", "")))}</div>'
        if block_type == "image":
            return f'<div class="block">{self.element(block)}</div>'
        if block_type == "input":
            hint = block.get("hint")
            return (
                '<div class="block input-block">'
                f"<label>{self.text_object(block.get('label'))}</label>"
                f"{self.element(block.get('element') or {})}"
                + (f'<div class="hint">{self.text_object(hint)}</div>' if hint else "")
                + "</div>"
            )
        return f'<div class="block unknown">[{html.escape(str(block_type))} block]</div>'

    def element(self, element: JsonDict) -> str:
        element_type = element.get("type")
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
        if element_type in (
            "plain_text_input",
            "number_input",
            "email_text_input",
            "url_text_input",
        ):
            shown = element.get("initial_value") or element.get("placeholder", {}).get("text", "")
            return f'<div class="input">{html.escape(str(shown))}</div>'
        placeholder = element.get("placeholder")
        label = (
            self.text_object(placeholder)
            if isinstance(placeholder, dict)
            else html.escape(str(element_type or "element"))
        )
        return f'<span class="select">{label}</span>'

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


async def serve_forever(host: str = "127.0.0.1", port: int = 3001) -> None:
    """Run a Slack stand-in until cancelled (Ctrl-C)."""
    standin = SlackStandin()
    base_url = await standin.start(host, port)
    print(f"Slack stand-in: page {base_url}/  Web API {standin.api_url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await standin.stop()


def run_standin(host: str = "127.0.0.1", port: int = 3001) -> None:
    """Run a Slack stand-in in the foreground until interrupted."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(host, port))


def main(argv: list[str] | None = None) -> None:
    """``python -m toilkit.standins.slack [--host H] [--port P]``."""
    parser = argparse.ArgumentParser(description="Run toilkit's Slack stand-in.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3001)
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    run_standin(options.host, options.port)


if __name__ == "__main__":
    main()
