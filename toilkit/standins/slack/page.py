"""The page: each channel rendered as Slack would, refreshed as the workspace changes.

``GET /`` serves the HTML shell (``page.html``: styles and the script that polls
``/_standin/state`` and swaps in ``/_standin/fragment``) with the workspace drawn into it by
:mod:`toilkit.standins.slack.render`. With an app connected the page acts as one person
(``?user=U...``): their ephemeral messages and modal, a message box, live buttons.
"""

from __future__ import annotations

import html
import importlib.resources

from aiohttp import web

from toilkit.standins.slack.client import SlackClient
from toilkit.standins.slack.faults import describe_fault
from toilkit.standins.slack.render import BlockKitRenderer
from toilkit.standins.slack.workspace import TEAM_NAME, Channel, Workspace

#: The page's HTML shell (styles and the refreshing script), shipped next to this module.
PAGE_PACKAGE = "toilkit.standins.slack"
PAGE_RESOURCE = "page.html"


class Page:
    """The page over one workspace; interactive when ``client`` is connected to an app."""

    def __init__(self, workspace: Workspace, client: SlackClient) -> None:
        self._workspace = workspace
        self._client = client
        self._shell: str | None = None

    async def handle_page(self, request: web.Request) -> web.Response:
        selected = self._selected_channel(request.query.get("channel"))
        viewer = self._viewer(request.query.get("user"))
        if self._shell is None:
            self._shell = (
                importlib.resources.files(PAGE_PACKAGE).joinpath(PAGE_RESOURCE).read_text("utf-8")
            )
        shell = self._shell
        page = (
            shell.replace("<!--STANDIN-VERSION-->", str(self._workspace.version))
            .replace("<!--STANDIN-CHANNEL-->", html.escape(selected.id if selected else ""))
            .replace("<!--STANDIN-USER-->", html.escape(viewer or ""))
            .replace("<!--STANDIN-APP-->", self._render_app(selected, viewer))
        )
        return web.Response(text=page, content_type="text/html")

    async def handle_fragment(self, request: web.Request) -> web.Response:
        selected = self._selected_channel(request.query.get("channel"))
        viewer = self._viewer(request.query.get("user"))
        return web.Response(
            text=self._render_app(selected, viewer),
            content_type="text/html",
            headers={
                "X-Standin-Version": str(self._workspace.version),
                "Cache-Control": "no-store",
            },
        )

    def _selected_channel(self, ref: str | None) -> Channel | None:
        if ref and (channel := self._workspace.find_channel(ref)):
            return channel
        if self._client.app is not None and self._client.app.channel:
            # Open on the channel people type in (and the notifier posts to).
            home = self._workspace.find_channel(self._client.app.channel)
            if home is not None:
                return home
        return next(iter(sorted(self._workspace.channels.values(), key=lambda c: c.name)), None)

    def _viewer(self, user_id: str | None) -> str | None:
        """Who the page acts as when an app is connected (None: a read-only page for all)."""
        if self._client.app is None or not self._workspace.users:
            return None
        return user_id if user_id in self._workspace.users else next(iter(self._workspace.users))

    def _render_app(self, selected: Channel | None, viewer: str | None = None) -> str:
        renderer = BlockKitRenderer(
            self._workspace.users, self._workspace.usergroups, self._workspace.channels, viewer
        )
        sidebar = self._render_sidebar(selected, viewer)
        if selected is None:
            pane = (
                '<main class="channel-pane"><div class="no-messages">No channel yet: '
                "<code>chat.postMessage</code> to the Web API under <code>/api/</code> "
                "and it appears here.</div></main>"
            )
        else:
            pane = renderer.channel_pane(selected)
        others = {k: s for k, s in self._workspace.view_stacks.items() if s.user_id != viewer}
        modals = renderer.modals(list(self._workspace.views.values()), others)
        live_modal = ""
        stack = self._workspace.latest_stack(viewer) if viewer else None
        if stack is not None:
            view_id = stack.view_ids[-1]
            live_modal = renderer.live_modal(
                self._workspace.views[view_id],
                errors=self._workspace.view_errors.get(view_id, {}),
                notice=self._workspace.view_notices.get(view_id),
                depth=len(stack.view_ids),
                suggestions=self._workspace.view_suggestions.get(view_id, {}),
            )
        return f'<div class="workspace">{sidebar}{pane}{modals}</div>{live_modal}'

    def _render_sidebar(self, selected: Channel | None, viewer: str | None = None) -> str:
        as_viewer = f"&amp;user={html.escape(viewer)}" if viewer else ""

        def links(channels: list[Channel]) -> str:
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

        direct = [c for c in self._workspace.channels.values() if c.name.startswith("@")]
        public = [c for c in self._workspace.channels.values() if not c.name.startswith("@")]
        faults = "".join(
            f'<div class="fault">⚡ {html.escape(rule.spec.method)}: '
            f"{describe_fault(rule.spec)} ({rule.injected} injected)</div>"
            for rule in self._workspace.fault_rules.values()
        )
        who = ""
        if viewer is not None:
            options = "".join(
                f'<option value="{html.escape(user.id)}"{" selected" if user.id == viewer else ""}>'
                f"{html.escape(user.real_name)} (@{html.escape(user.name)})</option>"
                for user in self._workspace.users.values()
            )
            who = (
                '<label class="viewer">You are <select id="standin-user" '
                f'title="Who you act as on this page">{options}</select></label>'
            )
        subtitle = "Slack stand-in, connected to the app" if viewer else "Slack Web API stand-in"
        return (
            '<aside class="sidebar">'
            f'<div class="team">{html.escape(TEAM_NAME)}<small>{subtitle}</small>{who}</div>'
            '<div class="section-title">Channels</div>'
            + links(public)
            + '<div class="section-title">Direct messages</div>'
            + links(direct)
            + f'<div class="sidebar-footer"><a href="/_standin/calls">{len(self._workspace.recorded)} API calls</a>'
            f"{faults}</div></aside>"
        )
