"""The Slack Web API methods toilkit uses, answered as slack.com answers them.

:class:`WebApi` serves ``/api/<method>``: it reads the arguments, authenticates the token,
draws the fault rule in force (:mod:`toilkit.standins.slack.faults`), runs the method over
the :class:`~toilkit.standins.slack.workspace.Workspace` and records the call. Each method
answers with Slack's response shape and error codes.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Iterable

from aiohttp import web

from toilkit.standins.slack.app_requests import TEAM_ID
from toilkit.standins.slack.arguments import (
    JsonDict,
    SlackApiFailure,
    as_read,
    bearer_token,
    in_ts_range,
    invalid_arguments,
    message_metadata,
    optional_str,
    page_of,
    read_arguments,
)
from toilkit.standins.slack.block_kit import message_content, view_argument, view_content
from toilkit.standins.slack.faults import inject, lose_answer
from toilkit.standins.slack.workspace import (
    BOT_ID,
    BOT_NAME,
    BOT_USER_ID,
    MAX_VIEW_STACK,
    TEAM_NAME,
    ViewStack,
    Workspace,
)


class WebApi:
    """The Web API over one workspace.

    Args:
        workspace: the state the methods read and change.
        valid_tokens: the tokens accepted; ``None`` accepts any ``xoxb-``/``xoxp-`` token.
    """

    def __init__(self, workspace: Workspace, valid_tokens: Iterable[str] | None = None) -> None:
        self._workspace = workspace
        self._valid_tokens = None if valid_tokens is None else frozenset(valid_tokens)
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

    async def handle_call(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        try:
            arguments = await read_arguments(request)
        except SlackApiFailure as failure:
            self._workspace.record(method, {}, failure.body(), 200, None)
            return web.json_response(failure.body())
        # Slack takes the token from the Authorization header or a `token` argument; it is
        # never recorded with the arguments.
        argument_token = arguments.pop("token", None)
        token = bearer_token(request) or argument_token

        rule = self._workspace.fault_rules.get(method) or self._workspace.fault_rules.get("*")
        fault = rule.draw() if rule else None
        if rule is not None and fault is not None:
            injected = inject(request, method, rule, fault)
            if injected is not None:
                self._workspace.record(
                    method, arguments, injected.body, injected.http_status, fault
                )
                return injected.response
            # Processed late, as Slack under load: the caller may give up and close the
            # connection meanwhile (aiohttp does not cancel the handler), yet it is posted.
            self._workspace.in_flight += 1
            try:
                await asyncio.sleep(rule.spec.slow_seconds)
                status, body = self._answer(method, token, arguments)
            finally:
                self._workspace.in_flight -= 1
            self._workspace.record(method, arguments, body, status, fault)
            if fault == "lost_answer":
                return lose_answer(request)
            return web.json_response(body, status=status)

        status, body = self._answer(method, token, arguments)
        self._workspace.record(method, arguments, body, status, fault)
        return web.json_response(body, status=status)

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

    def _auth_test(self, arguments: JsonDict) -> JsonDict:
        return {
            "ok": True,
            "url": "https://toilkit-standin.slack.com/",
            "team": TEAM_NAME,
            "user": BOT_NAME,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, arguments: JsonDict) -> JsonDict:
        channel = self._workspace.postable_channel(arguments.get("channel"))
        content = message_content(arguments, require_content=True)
        parent = None
        thread_ts = optional_str(arguments, "thread_ts")
        if thread_ts:
            # A reply to a message that does not exist is a bug in the caller worth seeing,
            # so the stand-in is stricter here than Slack, which would post it anyway.
            parent = self._workspace.thread_parent(channel, thread_ts)
            if parent is None:
                raise SlackApiFailure("thread_not_found")
        message = self._workspace.new_bot_message(content, arguments)
        if parent is None:
            channel.messages.append(message)
        else:
            message["thread_ts"] = parent["ts"]
            message["parent_user_id"] = parent.get("user", BOT_USER_ID)
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
        channel = self._workspace.postable_channel(arguments.get("channel"))
        ts = optional_str(arguments, "ts")
        message = channel.by_ts.get(ts) if ts else None
        if message is None:
            raise SlackApiFailure("message_not_found")
        content = message_content(arguments, require_content=True)
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
            message["metadata"] = message_metadata(arguments["metadata"])
        message["edited"] = {"user": BOT_USER_ID, "ts": self._workspace.next_ts()}
        return {
            "ok": True,
            "channel": channel.id,
            "ts": message["ts"],
            "text": message.get("text", ""),
            "message": copy.deepcopy(message),
        }

    def _chat_post_ephemeral(self, arguments: JsonDict) -> JsonDict:
        channel = self._workspace.postable_channel(arguments.get("channel"))
        user_id = optional_str(arguments, "user")
        if user_id not in self._workspace.users:
            raise SlackApiFailure("user_not_in_channel")
        content = message_content(arguments, require_content=True)
        message = self._workspace.new_bot_message(content, arguments)
        message["ephemeral_for"] = user_id
        thread_ts = optional_str(arguments, "thread_ts")
        if thread_ts:
            message["thread_ts"] = thread_ts
        channel.ephemeral.append(message)
        return {"ok": True, "message_ts": message["ts"]}

    def _conversations_history(self, arguments: JsonDict) -> JsonDict:
        """A channel's top-level messages, newest first, paged as Slack pages them.

        ``oldest``/``latest`` bound the ts range (exclusive unless ``inclusive``); message
        ``metadata`` is included only with ``include_all_metadata``, as on Slack.
        """
        channel = self._workspace.resolve_channel(arguments.get("channel"))
        selected = in_ts_range(channel.messages, arguments)
        page, has_more, next_cursor = page_of(list(reversed(selected)), arguments)
        return {
            "ok": True,
            "messages": [as_read(m, arguments) for m in page],
            "has_more": has_more,
            "pin_count": 0,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _conversations_replies(self, arguments: JsonDict) -> JsonDict:
        channel = self._workspace.resolve_channel(arguments.get("channel"))
        ts = optional_str(arguments, "ts")
        parent = self._workspace.thread_parent(channel, ts) if ts else None
        if parent is None:
            raise SlackApiFailure("thread_not_found")
        # Slack always answers with the parent first, then the replies in the ts range.
        replies = in_ts_range(channel.replies.get(parent["ts"], []), arguments)
        page, has_more, next_cursor = page_of(replies, arguments, default_limit=1000)
        return {
            "ok": True,
            "messages": [as_read(m, arguments) for m in [parent, *page]],
            "has_more": has_more,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _users_info(self, arguments: JsonDict) -> JsonDict:
        user = self._workspace.users.get(optional_str(arguments, "user") or "")
        if user is None:
            raise SlackApiFailure("user_not_found")
        return {"ok": True, "user": user.as_slack(TEAM_ID)}

    def _users_lookup_by_email(self, arguments: JsonDict) -> JsonDict:
        email = (optional_str(arguments, "email") or "").lower()
        for user in self._workspace.users.values():
            if user.email.lower() == email:
                return {"ok": True, "user": user.as_slack(TEAM_ID)}
        raise SlackApiFailure("users_not_found")

    def _usergroups_users_list(self, arguments: JsonDict) -> JsonDict:
        group = self._workspace.usergroups.get(optional_str(arguments, "usergroup") or "")
        if group is None:
            raise SlackApiFailure("no_such_subteam")
        return {"ok": True, "users": list(group.user_ids)}

    def _views_open(self, arguments: JsonDict) -> JsonDict:
        view = view_argument(arguments)
        self._workspace.check_external_id_free(view)
        trigger = self._workspace.valid_trigger(arguments)
        trigger.exchanged = True
        record = self._workspace.new_view(view, root_view_id=None, previous_view_id=None)
        self._workspace.view_stacks[record["id"]] = ViewStack(trigger.user_id, [record["id"]])
        return {"ok": True, "view": copy.deepcopy(record)}

    def _views_push(self, arguments: JsonDict) -> JsonDict:
        view = view_argument(arguments)
        self._workspace.check_external_id_free(view)
        trigger = self._workspace.valid_trigger(arguments)
        stack = self._workspace.stack_for_push(trigger)
        if stack is None:
            raise SlackApiFailure("not_found")
        if len(stack.view_ids) >= MAX_VIEW_STACK:
            raise SlackApiFailure("push_limit_reached")
        trigger.exchanged = True
        record = self._workspace.new_view(
            view, root_view_id=stack.view_ids[0], previous_view_id=stack.view_ids[-1]
        )
        stack.view_ids.append(record["id"])
        return {"ok": True, "view": copy.deepcopy(record)}

    def _views_update(self, arguments: JsonDict) -> JsonDict:
        view_id = optional_str(arguments, "view_id")
        external_id = optional_str(arguments, "external_id")
        if bool(view_id) == bool(external_id):
            raise invalid_arguments("exactly one of view_id or external_id is required")
        view = view_argument(arguments)
        record = (
            self._workspace.views.get(view_id)
            if view_id
            else next(
                (v for v in self._workspace.views.values() if v["external_id"] == external_id), None
            )
        )
        if record is None:
            raise SlackApiFailure("not_found")
        expected_hash = optional_str(arguments, "hash")
        if expected_hash and expected_hash != record["hash"]:
            raise SlackApiFailure("hash_conflict")
        new_external_id = view.get("external_id") or record["external_id"]
        if new_external_id != record["external_id"]:
            self._workspace.check_external_id_free(view)
        record.update(
            view_content(view), external_id=new_external_id, hash=self._workspace.new_hash()
        )
        # A new version of the view: what was said about the old one no longer applies.
        self._workspace.view_errors.pop(record["id"], None)
        self._workspace.view_notices.pop(record["id"], None)
        return {"ok": True, "view": copy.deepcopy(record)}
