"""The stand-in's workspace: who is in it and what happened there, as Slack keeps it.

:class:`Workspace` holds the state every part of the stand-in reads and changes: the
directory (users, user groups), channels with their messages, threads and ephemeral
messages, views and the modal stacks people have open, trigger ids, the recorded Web API
calls and fault rules, and a version counter the page polls. It also makes what Slack makes:
message timestamps, view ids and hashes, trigger ids.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

from toilkit.standins.slack.app_requests import APP_ID, TEAM_ID, SlackUserRef
from toilkit.standins.slack.arguments import (
    JsonDict,
    SlackApiFailure,
    invalid_arguments,
    message_metadata,
    optional_str,
)
from toilkit.standins.slack.block_kit import view_content
from toilkit.standins.slack.faults import FaultKind, FaultRule

Clock = Callable[[], float]

TEAM_NAME = "toilkit stand-in"
BOT_USER_ID = "U0TOILBOT1"
BOT_ID = "B0TOILBOT1"
BOT_NAME = "toilkit"
SLACKBOT_USER_ID = "USLACKBOT"
#: A modal plus two pushed views; a third push answers ``push_limit_reached``.
MAX_VIEW_STACK = 3
#: Slack's trigger ids are valid for three seconds after the interaction.
TRIGGER_TTL_SECONDS = 3.0


@dataclass(frozen=True)
class SlackUser(SlackUserRef):
    """A member of the stand-in's workspace."""

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
class Channel:
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
class Trigger:
    id: str
    user_id: str
    issued_at: float
    view_id: str | None
    exchanged: bool = False


@dataclass
class ViewStack:
    """A modal and the views pushed on it, root first."""

    user_id: str
    view_ids: list[str]


def channel_id_for_name(name: str) -> str:
    """A stable channel id for a channel known by name, so restarts keep the same ids."""
    digest = base64.b32encode(hashlib.sha1(name.encode()).digest()).decode()
    return f"C{digest[:10]}"


class WorkspaceOptions(TypedDict, total=False):
    """How a :class:`Workspace` starts: the stand-in's arguments that it passes on."""

    users: Iterable[SlackUser]
    usergroups: Iterable[SlackUserGroup]
    channels: Mapping[str, str] | None
    auto_create_channels: bool
    missing_channels: Iterable[str]
    bot_not_in_channels: Iterable[str]
    trigger_ttl: float
    clock: Clock


class Workspace:
    """The state of the stand-in's Slack workspace (see the module docstring).

    The arguments are :class:`~toilkit.standins.slack.standin.SlackStandin`'s of the same
    names, which document them.
    """

    def __init__(
        self,
        *,
        users: Iterable[SlackUser] = DEFAULT_USERS,
        usergroups: Iterable[SlackUserGroup] = DEFAULT_USERGROUPS,
        channels: Mapping[str, str] | None = None,
        auto_create_channels: bool = True,
        missing_channels: Iterable[str] = ("C_MISSING",),
        bot_not_in_channels: Iterable[str] = (),
        trigger_ttl: float = TRIGGER_TTL_SECONDS,
        clock: Clock = time.time,
    ) -> None:
        self.users = {user.id: user for user in users}
        self.usergroups = {group.id: group for group in usergroups}
        self._configured_channels = dict(channels or {})
        self._auto_create_channels = auto_create_channels
        self._missing_channels = frozenset(ref.lstrip("#") for ref in missing_channels)
        self._bot_not_in_channels = frozenset(ref.lstrip("#") for ref in bot_not_in_channels)
        self._trigger_ttl = trigger_ttl
        self.clock = clock
        self.version = 0
        self.reset()

    def reset(self) -> None:
        """Forget every call, message, view, trigger and fault rule."""
        self.recorded: list[RecordedCall] = []
        self.channels: dict[str, Channel] = {}
        for channel_id, name in self._configured_channels.items():
            self.channels[channel_id] = Channel(channel_id, name.lstrip("#"))
        self.views: dict[str, JsonDict] = {}
        self.view_stacks: dict[str, ViewStack] = {}
        self.triggers: dict[str, Trigger] = {}
        self.fault_rules: dict[str, FaultRule] = {}
        #: Calls being processed late (a ``slow`` or ``lost_answer`` fault) right now.
        self.in_flight = 0
        #: What the person sees in a modal besides the view: errors under blocks, a notice.
        self.view_errors: dict[str, dict[str, str]] = {}
        self.view_notices: dict[str, str] = {}
        #: The options an app last suggested for an ``external_select``:
        #: view id -> "block_id|action_id" -> {"typed": ..., "options": [...]}.
        self.view_suggestions: dict[str, dict[str, JsonDict]] = {}
        self._last_ts_micros = 0
        self._id_counter = 0
        self.version += 1

    def issue_trigger(self, user_id: str = DEFAULT_USERS[0].id, view_id: str | None = None) -> str:
        """A fresh trigger id, as Slack hands one out with an interaction.

        Args:
            user_id: the user who interacted; ``views.open`` opens the modal for them.
            view_id: the modal the interaction happened in (``views.push`` pushes onto it).
        """
        self._id_counter += 1
        # Slack's format: "<digits>.<digits>.<hex>".
        suffix = hashlib.sha1(f"trigger-{self._id_counter}".encode()).hexdigest()[:16]
        trigger_id = f"{self._id_counter}.{int(self.clock())}.{suffix}"
        self.triggers[trigger_id] = Trigger(trigger_id, user_id, self.clock(), view_id)
        return trigger_id

    # ------------------------------------------------------------ HTTP: Web API

    def record(
        self,
        method: str,
        arguments: JsonDict,
        response: JsonDict | None,
        http_status: int | None,
        fault: FaultKind | None,
    ) -> None:
        self.recorded.append(
            RecordedCall(
                seq=len(self.recorded) + 1,
                method=method,
                arguments=copy.deepcopy(arguments),
                response=copy.deepcopy(response),
                http_status=http_status,
                fault=fault,
                time=self.clock(),
            )
        )
        self.changed()

    def changed(self) -> None:
        self.version += 1

    def find_channel(self, ref: str) -> Channel | None:
        name = ref.lstrip("#")
        return self.channels.get(ref) or next(
            (channel for channel in self.channels.values() if channel.name == name), None
        )

    def resolve_channel(self, ref: Any) -> Channel:
        """The channel a call names, created on first use when allowed."""
        if not isinstance(ref, str) or not ref or ref.lstrip("#") in self._missing_channels:
            raise SlackApiFailure("channel_not_found")
        channel = self.find_channel(ref)
        if channel is not None:
            return channel
        if not self._auto_create_channels and ref not in self.users:
            raise SlackApiFailure("channel_not_found")
        if ref in self.users:
            # Posting to a user id opens the bot's direct message with them, as on Slack.
            channel = Channel(f"D{ref[1:]}", f"@{self.users[ref].name}")
        elif ref.startswith("#") and len(ref) > 1:
            channel = Channel(channel_id_for_name(ref[1:]), ref[1:])
        elif re.fullmatch(r"C[A-Z0-9_]+", ref):
            channel = Channel(ref, ref.lower())
        else:
            raise SlackApiFailure("channel_not_found")
        self.channels[channel.id] = channel
        return channel

    def postable_channel(self, ref: Any) -> Channel:
        channel = self.resolve_channel(ref)
        if {channel.id, channel.name} & self._bot_not_in_channels:
            raise SlackApiFailure("not_in_channel")
        return channel

    @staticmethod
    def thread_parent(channel: Channel, ts: str) -> JsonDict | None:
        """The top-level message of the thread ``ts`` belongs to (a reply's ts counts too)."""
        message = channel.by_ts.get(ts)
        if message is None:
            return None
        return channel.by_ts.get(message.get("thread_ts", ts), message)

    def next_ts(self) -> str:
        """A unique, increasing Slack timestamp (``seconds.micros``) from the clock."""
        self._last_ts_micros = max(int(self.clock() * 1_000_000), self._last_ts_micros + 1)
        seconds, micros = divmod(self._last_ts_micros, 1_000_000)
        return f"{seconds}.{micros:06d}"

    def new_bot_message(self, content: JsonDict, arguments: JsonDict) -> JsonDict:
        message: JsonDict = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "text": content.get("text", ""),
            "ts": self.next_ts(),
            "bot_profile": {"id": BOT_ID, "app_id": APP_ID, "name": BOT_NAME},
        }
        for key in ("blocks", "attachments"):
            if key in content:
                message[key] = content[key]
        if "metadata" in arguments:
            message["metadata"] = message_metadata(arguments["metadata"])
        for key in ("username", "icon_emoji", "icon_url"):
            if value := optional_str(arguments, key):
                message[key] = value
        return message

    def valid_trigger(self, arguments: JsonDict) -> Trigger:
        trigger_id = optional_str(arguments, "trigger_id")
        if not trigger_id:
            raise invalid_arguments("missing required field: trigger_id")
        trigger = self.triggers.get(trigger_id)
        if trigger is None:
            raise SlackApiFailure("invalid_trigger_id")
        if trigger.exchanged:
            raise SlackApiFailure("exchanged_trigger_id")
        if self.clock() - trigger.issued_at > self._trigger_ttl:
            raise SlackApiFailure("expired_trigger_id")
        return trigger

    def stack_for_push(self, trigger: Trigger) -> ViewStack | None:
        """The modal an interaction happened in, else the user's latest one."""
        if trigger.view_id is not None:
            return next(
                (s for s in self.view_stacks.values() if trigger.view_id in s.view_ids), None
            )
        stacks = [s for s in self.view_stacks.values() if s.user_id == trigger.user_id]
        return stacks[-1] if stacks else None

    def check_external_id_free(self, view: JsonDict) -> None:
        external_id = view.get("external_id")
        if external_id and any(v["external_id"] == external_id for v in self.views.values()):
            raise SlackApiFailure("duplicate_external_id")

    def new_view(
        self, view: JsonDict, root_view_id: str | None, previous_view_id: str | None
    ) -> JsonDict:
        self._id_counter += 1
        view_id = f"V{self._id_counter:010d}"
        record = {
            "id": view_id,
            "team_id": TEAM_ID,
            **view_content(view),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": self.new_hash(),
            "root_view_id": root_view_id or view_id,
            "previous_view_id": previous_view_id,
            "app_id": APP_ID,
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
        }
        self.views[view_id] = record
        return record

    def new_hash(self) -> str:
        self._id_counter += 1
        return f"{int(self.clock())}.{self._id_counter:07d}"

    # --------------------------------------------------------- HTTP: control API

    def find_message(self, channel: Channel, ts: str) -> tuple[JsonDict, bool] | None:
        """(message, is ephemeral) for a ts in a channel."""
        if ts in channel.by_ts:
            return channel.by_ts[ts], False
        ephemeral = next((m for m in channel.ephemeral if m["ts"] == ts), None)
        return None if ephemeral is None else (ephemeral, True)

    def post_app_message(self, channel: Channel, content: JsonDict) -> JsonDict:
        message = self.new_bot_message(content, {})
        channel.messages.append(message)
        channel.by_ts[message["ts"]] = message
        self.changed()
        return message

    def post_ephemeral(self, channel: Channel, user_id: str, content: JsonDict) -> JsonDict:
        message = self.new_bot_message(content, {})
        message["ephemeral_for"] = user_id
        channel.ephemeral.append(message)
        self.changed()
        return message

    def post_slackbot(self, channel: Channel, user_id: str, text: str) -> JsonDict:
        """Slack's own ephemeral note (an app that failed to answer)."""
        message = {
            "type": "message",
            "user": SLACKBOT_USER_ID,
            "username": "Slackbot",
            "text": text,
            "ts": self.next_ts(),
            "ephemeral_for": user_id,
        }
        channel.ephemeral.append(message)
        self.changed()
        return message

    def delete_message(self, channel: Channel, message: JsonDict) -> None:
        channel.messages = [m for m in channel.messages if m is not message]
        channel.ephemeral = [m for m in channel.ephemeral if m is not message]
        channel.by_ts.pop(message["ts"], None)
        self.changed()

    # Modals -------------------------------------------------------------------

    def latest_stack(self, user_id: str) -> ViewStack | None:
        stacks = [s for s in self.view_stacks.values() if s.user_id == user_id]
        return stacks[-1] if stacks else None

    def stack_key_of(self, view_id: str) -> str | None:
        return next((k for k, s in self.view_stacks.items() if view_id in s.view_ids), None)

    def close_views(self, view_id: str, *, count: int | None) -> None:
        """Close the top ``count`` views of the stack ``view_id`` is in (None: all)."""
        key = self.stack_key_of(view_id)
        if key is None:
            return
        stack = self.view_stacks[key]
        closing = stack.view_ids if count is None else stack.view_ids[-count:]
        for closed in closing:
            self.view_errors.pop(closed, None)
            self.view_notices.pop(closed, None)
            self.view_suggestions.pop(closed, None)
        stack.view_ids = stack.view_ids[: len(stack.view_ids) - len(closing)]
        if not stack.view_ids:
            del self.view_stacks[key]
