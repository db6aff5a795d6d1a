"""Block Kit helpers and Slack's limits, for every message and modal toilkit draws.

Pure functions that return Block Kit dicts. Each helper keeps its piece inside Slack's own
limits (so a long plan or log can never make Slack refuse a whole message): text is clipped
with an ellipsis, mrkdwn never leaves a code fence open, lists are cut to what Slack takes.
Times are ``<!date^...>`` tokens, so every reader sees their own time zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from shared.events import Actor

Block = dict[str, Any]

# Slack's limits (https://docs.slack.dev/reference/block-kit/), checked where they are drawn.
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_FIELDS = 10
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_MODAL_TITLE = 24
MAX_OPTIONS = 100
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_LABEL = 2000
MAX_HINT = 2000
MAX_PLAIN_INPUT = 3000
MAX_PLACEHOLDER = 150
#: A message's notification text; Slack accepts 40k but shows a few lines.
MAX_NOTIFICATION_TEXT = 400

ELLIPSIS = "…"
ARROW = "→"
#: Stands in for a backtick inside code: Slack's mrkdwn has no way to escape one.
GRAVE = "\u02cb"


# =========================================================================== text


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def clip_mrkdwn(text: str, limit: int) -> str:
    """Clip mrkdwn without leaving a code fence open."""
    if len(text) <= limit:
        return text
    clipped = text[: limit - 4] + ELLIPSIS
    if clipped.count("```") % 2:
        clipped += "```"
    return clipped


def escape(text: str) -> str:
    """Text shown literally in mrkdwn (Slack's three control characters escaped)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code_text(text: str) -> str:
    """Text for inside `inline code`: escaped, backticks swapped (Slack has no escape)."""
    return escape(text.replace("`", GRAVE).replace("\n", " "))


def code(text: str) -> str:
    """Inline code that stays inline code whatever ``text`` contains."""
    return f"`{code_text(text)}`"


def code_block(text: str, *, limit: int, keep: str = "head") -> str:
    """A fenced code block of at most ``limit`` characters (the head or the tail kept)."""
    body = escape(text.replace("```", GRAVE * 3))
    if len(body) > limit:
        body = ELLIPSIS + body[-(limit - 1) :] if keep == "tail" else body[: limit - 1] + ELLIPSIS
    return f"```{body}```"


def tail_code_block(lines: Sequence[str], *, max_lines: int, limit: int) -> tuple[str, int]:
    """The last ``max_lines`` of a log as a fenced code block of at most ``limit``
    characters (escaped, fences defused, earliest lines dropped first), and how many
    earlier lines were left out."""
    kept: list[str] = []
    size = 6  # the fences
    for line in reversed(lines[-max_lines:] if max_lines > 0 else []):
        shown = escape(line.replace("```", GRAVE * 3))
        if kept and size + len(shown) + 1 > limit:
            break
        kept.append(shown)
        size += len(shown) + 1
    kept.reverse()
    if kept and size > limit:  # one line alone is too long: keep its end
        kept[0] = ELLIPSIS + kept[0][-(limit - 8) :]
    body = "\n".join(kept) or " "
    if body.endswith("`"):  # it would merge with the closing fence
        body = body[:-1] + GRAVE
    return f"```{body}```", len(lines) - len(kept)


def plural(count: int, word: str) -> str:
    return word if count == 1 else f"{word}s"


def mention(actor: Actor) -> str:
    """``<@U123>`` for a Slack user, the name in bold for anyone else (a schedule, the CLI)."""
    return f"<@{actor.slack_user_id}>" if actor.slack_user_id else f"*{escape(actor.name)}*"


def slack_date(moment: datetime | None) -> str:
    """A date token Slack shows in the reader's time zone (UTC text as the fallback)."""
    if moment is None:
        return ""
    epoch = int(moment.timestamp())
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{epoch}^{{date_short_pretty}} {{time}}|{fallback}>"


def age(delta: timedelta) -> str:
    """A duration as people say it in a sentence: ``12 min``, ``5 h``, ``3 days``."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 3600:
        minutes = max(1, seconds // 60)
        return f"{minutes} min"
    if seconds < 2 * 86400:
        hours = seconds // 3600
        return f"{hours} h"
    days = seconds // 86400
    return f"{days} days"


def short_age(delta: timedelta) -> str:
    """A duration for a dense list: ``3d``, ``5h``, ``12m``, ``now``."""
    seconds = max(0, int(delta.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return "now"


def ago(delta: timedelta) -> str:
    """``3d ago``, or ``just now``."""
    shown = short_age(delta)
    return "just now" if shown == "now" else f"{shown} ago"


def duration(seconds: float) -> str:
    """A run's duration: ``0.3s``, ``42s``, ``4m 12s``, ``1h 03m``."""
    if seconds < 0.95:
        # Rounded to whole seconds, a quick run would read "in 0s", as if it never ran.
        return f"{seconds:.1f}s"
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


# =========================================================================== blocks


def plain(text: str, limit: int = MAX_LABEL) -> Block:
    """A ``plain_text`` object (never empty: Slack refuses an empty one)."""
    return {"type": "plain_text", "text": clip(text, limit) or " ", "emoji": True}


def mrkdwn(text: str, limit: int = MAX_SECTION_TEXT) -> Block:
    return {"type": "mrkdwn", "text": clip_mrkdwn(text, limit)}


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, MAX_HEADER_TEXT)}


def section(
    text: str | None = None,
    *,
    fields: Sequence[str] = (),
    accessory: Block | None = None,
) -> Block:
    block: Block = {"type": "section"}
    if text is not None:
        block["text"] = mrkdwn(text)
    if fields:
        block["fields"] = [mrkdwn(f, MAX_FIELD_TEXT) for f in fields[:MAX_FIELDS]]
    if accessory is not None:
        block["accessory"] = accessory
    return block


def context(*texts: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(t) for t in texts[:MAX_CONTEXT_ELEMENTS]]}


def divider() -> Block:
    return {"type": "divider"}


def actions(elements: Sequence[Block]) -> Block:
    return {"type": "actions", "elements": list(elements)}


def button(
    text: str,
    action_id: str,
    *,
    value: str | None = None,
    url: str | None = None,
    style: str | None = None,
    confirm: Block | None = None,
) -> Block:
    element: Block = {
        "type": "button",
        "text": plain(text, MAX_BUTTON_TEXT),
        "action_id": action_id,
    }
    if value is not None:
        element["value"] = value[:MAX_BUTTON_VALUE]
    if url is not None:
        element["url"] = url
    if style is not None:
        element["style"] = style
    if confirm is not None:
        element["confirm"] = confirm
    return element


def link_button(text: str, url: str | None, action_id: str) -> Block | None:
    """A button that opens ``url``; None without a URL."""
    return None if not url else button(text, action_id, url=url)


def option(text: str, value: str, description: str | None = None) -> Block:
    """One choice of a select menu."""
    built: Block = {"text": plain(text, MAX_OPTION_TEXT), "value": value[:MAX_OPTION_VALUE]}
    if description:
        built["description"] = plain(description, MAX_OPTION_TEXT)
    return built


def fit_blocks(blocks: Sequence[Block | None]) -> tuple[Block, ...]:
    """At most 50 blocks; an ``actions`` block at the end is kept when cutting."""
    present = [b for b in blocks if b is not None]
    if len(present) <= MAX_BLOCKS:
        return tuple(present)
    tail = [present[-1]] if present[-1]["type"] == "actions" else []
    room = MAX_BLOCKS - 1 - len(tail)
    cut = len(present) - len(tail) - room
    return (*present[:room], context(f"{ELLIPSIS}{cut} more blocks not shown"), *tail)
