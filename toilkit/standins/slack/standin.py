"""The Slack stand-in: one server wiring the Web API, faults, Slack's client and the page.

See :mod:`toilkit.standins.slack` for the endpoints. :class:`SlackStandin` builds the parts
over one :class:`~toilkit.standins.slack.workspace.Workspace`, serves them, and offers
tests the same things in process: recorded calls, channel state, fault rules, trigger ids,
and what a person does on the page (:attr:`SlackStandin.client` and
:attr:`SlackStandin.modals`: ``type_command``, ``click_button``, ``submit_view``...).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Unpack

from aiohttp import web
from pydantic import ValidationError

from toilkit.standins.server import StandinServer
from toilkit.standins.slack.app_requests import APP_ID, TEAM_ID
from toilkit.standins.slack.arguments import JsonDict
from toilkit.standins.slack.client import AppOptions, SlackClient
from toilkit.standins.slack.faults import FaultRule, FaultSpec
from toilkit.standins.slack.forms import (
    optional_block_id,
    page_action,
    typed_text,
    values_argument,
)
from toilkit.standins.slack.modals import Modals
from toilkit.standins.slack.page import Page
from toilkit.standins.slack.web_api import WebApi
from toilkit.standins.slack.workspace import (
    BOT_ID,
    BOT_NAME,
    BOT_USER_ID,
    DEFAULT_USERS,
    TEAM_NAME,
    RecordedCall,
    Workspace,
    WorkspaceOptions,
)


class SlackStandin(StandinServer):
    """The Slack stand-in: a Web API server, its recorded calls and state, and its page.

    Args:
        valid_tokens: the tokens accepted; ``None`` accepts any ``xoxb-``/``xoxp-`` token.
        app_url: the Request URL of an app to play Slack's client for (the gateway's
            ``POST /slack/events``); see :meth:`connect_app`.
        signing_secret: that app's signing secret.
        **workspace: how the workspace starts (:class:`WorkspaceOptions`, each optional):

            - users: the directory behind ``users.info`` and ``users.lookupByEmail``.
            - usergroups: the groups behind ``usergroups.users.list``.
            - channels: channels that exist from the start, id -> name.
            - auto_create_channels: create a channel on first use of an unknown ``C...``
              id or ``#name`` (Slack would say ``channel_not_found``; tests rarely want
              that).
            - missing_channels: ids or names that always answer ``channel_not_found``.
            - bot_not_in_channels: ids or names where posting answers ``not_in_channel``.
            - trigger_ttl: seconds a trigger id stays valid.
            - clock: wall-clock seconds; tests pass their own to expire triggers without
              waiting.
    """

    name = "Slack stand-in"
    team_id = TEAM_ID
    team_name = TEAM_NAME
    bot_user_id = BOT_USER_ID
    bot_id = BOT_ID
    bot_name = BOT_NAME
    app_id = APP_ID

    def __init__(
        self,
        *,
        valid_tokens: Iterable[str] | None = None,
        app_url: str | None = None,
        signing_secret: str | None = None,
        **workspace: Unpack[WorkspaceOptions],
    ) -> None:
        super().__init__()
        self._workspace = Workspace(**workspace)
        self._web_api = WebApi(self._workspace, valid_tokens)
        self._client = SlackClient(self._workspace, lambda: self.base_url)
        self._modals = Modals(self._workspace, self._client)
        self._page = Page(self._workspace, self._client)
        if app_url is not None or signing_secret is not None:
            if not app_url or not signing_secret:
                raise ValueError("an app connection needs both app_url and signing_secret")
            self.connect_app(app_url, signing_secret)

    # ----------------------------------------------------------------- lifecycle

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_route("*", "/api/{method}", self._web_api.handle_call)
        router.add_get("/", self._page.handle_page)
        router.add_get("/_standin/fragment", self._page.handle_fragment)
        router.add_get("/_standin/state", self._handle_state)
        router.add_get("/_standin/calls", self._handle_calls)
        router.add_get("/_standin/messages", self._handle_messages)
        router.add_get("/_standin/faults", self._handle_get_faults)
        router.add_post("/_standin/faults", self._handle_set_faults)
        router.add_delete("/_standin/faults", self._handle_clear_faults)
        router.add_post("/_standin/triggers", self._handle_issue_trigger)
        router.add_post("/_standin/reset", self._handle_reset)
        router.add_post("/_standin/response/{token}", self._client.handle_response_url)
        client, modals = self._client, self._modals
        # What a person does on the page: POST /_standin/client/<name> with the arguments.
        page_actions = {
            "command": page_action(client.type_command, "channel", "user", "text"),
            "button": page_action(
                client.click_button, "channel", "user", "message_ts", "action_id", optional_block_id
            ),
            "view_action": page_action(
                modals.change_view_element,
                "view_id",
                "user",
                "block_id",
                "action_id",
                values_argument,
            ),
            "view_suggest": page_action(
                modals.suggest, "view_id", "user", "block_id", "action_id", typed_text
            ),
            "view_submit": page_action(modals.submit_view, "view_id", "user", values_argument),
            "view_close": page_action(modals.close_view, "view_id", "user"),
        }
        for name, handler in page_actions.items():
            router.add_post(f"/_standin/client/{name}", handler)
        router.add_get("/_standin/client/modal", modals.handle_modal)

    async def stop(self) -> None:
        """Stop serving; recorded calls and state stay readable."""
        await super().stop()
        await self._client.close()

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running stand-in."""
        return self.url

    @property
    def api_url(self) -> str:
        """The Web API base URL to give slack-sdk's ``base_url``."""
        return f"{self.base_url}/api/"

    # ------------------------------------------------------------ in-process API

    def reset(self) -> None:
        """Forget every call, message, view, trigger and fault rule."""
        self._workspace.reset()
        self._client.reset()

    def calls(self, method: str | None = None) -> list[RecordedCall]:
        """Every recorded call, oldest first; only ``method``'s when given."""
        return [c for c in self._workspace.recorded if method is None or c.method == method]

    def messages(self, channel: str) -> list[JsonDict]:
        """A channel's top-level messages, oldest first, in their latest version.

        Each carries its thread under ``"replies"``. An unknown channel has none.
        """
        found = self._workspace.find_channel(channel)
        return [] if found is None else found.snapshot()["messages"]

    def ephemeral_messages(self, channel: str) -> list[JsonDict]:
        """The ephemeral messages posted in a channel, each with the user it was shown to."""
        found = self._workspace.find_channel(channel)
        return [] if found is None else copy.deepcopy(found.ephemeral)

    def views(self) -> list[JsonDict]:
        """Every view opened or pushed, in its latest version."""
        return copy.deepcopy(list(self._workspace.views.values()))

    def set_faults(self, spec: FaultSpec) -> None:
        """Install a fault rule, replacing the one for the same method."""
        self._workspace.fault_rules[spec.method] = FaultRule(spec)
        self._workspace.changed()

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._workspace.fault_rules.clear()
        self._workspace.changed()

    def faults(self) -> list[FaultSpec]:
        """The fault rules in force."""
        return [rule.spec for rule in self._workspace.fault_rules.values()]

    @property
    def in_flight(self) -> int:
        """Calls still being processed late (``slow`` or ``lost_answer``): a test waits for
        none before counting what was posted, since a late call may still post."""
        return self._workspace.in_flight

    def issue_trigger(self, user_id: str = DEFAULT_USERS[0].id, view_id: str | None = None) -> str:
        """A fresh trigger id, as Slack hands one out with an interaction.

        Args:
            user_id: the user who interacted; ``views.open`` opens the modal for them.
            view_id: the modal the interaction happened in (``views.push`` pushes onto it).
        """
        return self._workspace.issue_trigger(user_id, view_id)

    # ------------------------------------------------------ Slack's client side

    def connect_app(
        self, request_url: str, signing_secret: str, **options: Unpack[AppOptions]
    ) -> None:
        """Play Slack's client for an app (see :meth:`SlackClient.connect_app`)."""
        self._client.connect_app(request_url, signing_secret, **options)

    def disconnect_app(self) -> None:
        """Stop playing Slack's client; the page is read-only again."""
        self._client.disconnect_app()

    @property
    def app_connected(self) -> bool:
        """Whether the page sends slash commands and interactions to an app."""
        return self._client.app_connected

    @property
    def client(self) -> SlackClient:
        """Slack's client in process: what a person types or clicks in a channel
        (``type_command``, ``click_button``)."""
        return self._client

    @property
    def modals(self) -> Modals:
        """The modals people have open, in process: ``change_view_element``, ``suggest``,
        ``submit_view``, ``close_view``."""
        return self._modals

    def modal_for(self, user_id: str) -> JsonDict | None:
        """The modal ``user_id`` has open (see :meth:`Modals.modal_for`)."""
        return self._modals.modal_for(user_id)

    # --------------------------------------------------------- HTTP: control API

    async def _handle_calls(self, request: web.Request) -> web.Response:
        method = request.query.get("method")
        return web.json_response({"calls": [call.as_json() for call in self.calls(method)]})

    async def _handle_messages(self, request: web.Request) -> web.Response:
        ref = request.query.get("channel")
        if ref is None:
            channels = [channel.snapshot() for channel in self._workspace.channels.values()]
            return web.json_response({"ok": True, "channels": channels})
        channel = self._workspace.find_channel(ref)
        if channel is None:
            return web.json_response({"ok": True, "channel": None, "messages": [], "ephemeral": []})
        return web.json_response({"ok": True, **channel.snapshot()})

    async def _handle_state(self, request: web.Request) -> web.Response:
        channels = [
            {"id": channel.id, "name": channel.name, "message_count": len(channel.messages)}
            for channel in self._workspace.channels.values()
        ]
        return web.json_response(
            {
                "version": self._workspace.version,
                "channels": channels,
                "call_count": len(self._workspace.recorded),
                "open_views": len(self._workspace.views),
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
