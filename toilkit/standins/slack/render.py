"""Block Kit, mrkdwn and messages as HTML, as Slack draws them: the body of the page.

:class:`BlockKitRenderer` draws a channel (messages, threads, attachments, the blocks in
them), the modals people have open and, when an app is connected, the live parts: buttons
that click, a modal as a form, a message box. Every piece of caller text is escaped.
"""

from __future__ import annotations

import hashlib
import html
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from toilkit.standins.slack.arguments import JsonDict
from toilkit.standins.slack.forms import (
    SAFE_URL,
    STATEFUL_TYPES,
    TEXT_INPUT_TYPES,
    TypedValue,
    as_list,
    options_of,
    typed_from_entry,
    typed_from_initial,
    with_element_ids,
)
from toilkit.standins.slack.workspace import Channel, SlackUser, SlackUserGroup, ViewStack

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
    #: The options the app last suggested per external select ("block_id|action_id").
    suggestions: Mapping[str, JsonDict] = field(default_factory=dict)


@dataclass(frozen=True)
class BlockKitRenderer:
    """Turns messages, Block Kit and mrkdwn into HTML; every piece of caller text is escaped.

    With a ``viewer`` (an app is connected) the page acts as that person: only their
    ephemeral messages show, buttons are clickable, their modal is a form and each channel
    has a message box. Without one it is a read-only view of everything.

    Attributes:
        users: the directory: message authors, ``<@U...>`` mentions, users selects.
        usergroups: what ``<!subteam^...>`` mentions name.
        channels: ``<#C...>`` mentions and conversations selects.
        viewer: the id of the person the page acts as, if any.
    """

    users: Mapping[str, SlackUser]
    usergroups: Mapping[str, SlackUserGroup]
    channels: Mapping[str, Channel]
    viewer: str | None = None

    # Messages ---------------------------------------------------------------

    def channel_pane(self, channel: Channel) -> str:
        ephemeral = [
            m
            for m in channel.ephemeral
            if self.viewer is None or m.get("ephemeral_for") == self.viewer
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

    def composer(self, channel: Channel) -> str:
        """The message box slash commands are typed in (only when an app is connected)."""
        if self.viewer is None:
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
            or (self.users[message["user"]].name if message.get("user") in self.users else "")
            or "app"
        )
        initials = "".join(part[0] for part in re.split(r"[\s_-]+", name) if part)[:2].upper()
        ephemeral_for = message.get("ephemeral_for")
        classes = "message ephemeral" if ephemeral_for else "message"
        if not ephemeral_for:
            note = ""
        elif self.viewer is not None:
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
        if blocks and self.viewer is not None and channel_id:
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

    def modals(self, views: list[JsonDict], stacks: Mapping[str, ViewStack]) -> str:
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
        self,
        view: JsonDict,
        *,
        errors: Mapping[str, str],
        notice: str | None,
        depth: int,
        suggestions: Mapping[str, JsonDict] | None = None,
    ) -> str:
        """The viewer's modal as a form over the page, as Slack shows a modal."""
        blocks = with_element_ids(view.get("blocks", []), view["id"])
        state = view.get("state", {}).get("values", {})
        live = _Live(
            "view",
            errors=errors,
            state=state if isinstance(state, dict) else {},
            suggestions=suggestions or {},
        )
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
            current = typed_from_entry(entry) if entry else typed_from_initial(element)
            if element_type == "external_select":
                return self.external_select(element, block_id, current, live)
            return self.live_control(element, block_id, current, dispatch=dispatch)
        if element_type in ("mrkdwn", "plain_text"):
            return self.text_object(element)
        if element_type == "button":
            style = element.get("style")
            css = f"button {style}" if style in ("primary", "danger") else "button"
            label = self.text_object(element.get("text"))
            url = str(element.get("url", ""))
            if SAFE_URL.match(url):
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
        if SAFE_URL.match(url):
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
            chosen = set(as_list(initial))
            items = []
            for index, option in enumerate(options_of(element)):
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

    def external_select(
        self, element: JsonDict, block_id: str, initial: TypedValue, live: _Live
    ) -> str:
        """A search box and the options the app last suggested for it (the page asks the app
        for them as the person types, with ``block_suggestion``)."""
        action_id = str(element.get("action_id", ""))
        key = f"{block_id}|{action_id}"
        control_id = _dom_id(key)
        suggested = live.suggestions.get(key, {})
        options = list(suggested.get("options") or [])
        chosen = _single(initial)
        initial_option = element.get("initial_option")
        known = {str(o.get("value")) for o in options}
        if chosen and chosen not in known:
            label = chosen
            if isinstance(initial_option, dict) and initial_option.get("value") == chosen:
                label = str((initial_option.get("text") or {}).get("text", chosen))
            options.insert(0, {"text": {"type": "plain_text", "text": label}, "value": chosen})
        placeholder = element.get("placeholder")
        hint = str(placeholder.get("text", "")) if isinstance(placeholder, dict) else ""
        items = "".join(
            f'<option value="{html.escape(str(o.get("value", "")))}"'
            f"{' selected' if str(o.get('value')) == chosen else ''}>"
            + (f"{html.escape(str(o['group']))}: " if o.get("group") else "")
            + f"{html.escape(str((o.get('text') or {}).get('text', '')))}</option>"
            for o in options
        )
        count = (
            f"{len(suggested.get('options') or [])} option(s) for "
            f"“{html.escape(str(suggested.get('typed', '')))}”"
            if suggested
            else "type or focus the box to ask the app for options"
        )
        return (
            f'<div class="el" data-kind="external_select" data-key="{html.escape(key)}" '
            f'data-block-id="{html.escape(block_id)}" data-action-id="{html.escape(action_id)}">'
            f'<input id="{control_id}-search" type="search" data-suggest'
            f"{' data-asked' if suggested else ''} "
            f'placeholder="{html.escape(hint or "Type to search")}" '
            f'value="{html.escape(str(suggested.get("typed", "")))}">'
            f'<select id="{control_id}"><option value="">Choose…</option>{items}</select>'
            f'<div class="hint suggest-count">{count}</div></div>'
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
        chosen = set(as_list(initial))
        if kind in ("users_select", "multi_users_select"):
            choices = [(u.id, f"{u.real_name} (@{u.name})") for u in self.users.values()]
        elif kind in ("conversations_select", "channels_select"):
            choices = [
                (c.id, c.display_name)
                for c in self.channels.values()
                if kind == "conversations_select" or not c.name.startswith("@")
            ]
        else:
            choices = [
                (str(o.get("value", "")), str((o.get("text") or {}).get("text", "")))
                for o in options_of(element)
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
            rendered = f'<a href="{html.escape(url)}">{label}</a>' if SAFE_URL.match(url) else label
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
            group = self.usergroups.get(target.removeprefix("!subteam^"))
            shown = label or (f"@{group.handle}" if group else "@group")
        elif target.startswith("!"):
            shown = label or f"@{target[1:].split('^')[0]}"
        else:
            shown = label or target
            if SAFE_URL.match(target):
                return f'<a href="{html.escape(target)}">{html.escape(_slack_unescape(shown))}</a>'
            return html.escape(_slack_unescape(shown))
        return f'<span class="mention">{html.escape(_slack_unescape(shown))}</span>'

    def _user_label(self, user_id: str) -> str:
        user = self.users.get(user_id)
        return f"@{user.name}" if user else f"@{user_id}"

    def _channel_label(self, channel_id: str) -> str:
        channel = self.channels.get(channel_id)
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


def _single(value: TypedValue) -> str | None:
    values = as_list(value)
    return values[0] if values and values[0] else None
