"""The thread reply to "Accept into code": the diff, the branch, and what is left to do."""

from __future__ import annotations

from services.notifier.blocks.message import SlackMessage
from shared.events import DriftAccepted
from shared.slack.actions import Action
from shared.slack.blocks import (
    MAX_SECTION_TEXT,
    Block,
    actions,
    button,
    clip,
    code,
    code_block,
    context,
    escape,
    mention,
    plural,
    section,
)

#: Lines of "left to a person" listed before "and N more".
MAX_SKIPPED_SHOWN = 8


def render_drift_accepted_reply(event: DriftAccepted) -> SlackMessage:
    """What accepting produced: a headline, the diff, the branch, the attributes left."""
    who = mention(event.requested_by)
    written = len(event.changed)
    blocks: list[Block] = []
    if written:
        headline = (
            f":pencil2: {who} accepted the drift into code: *{written}* "
            f"{plural(written, 'attribute')} written"
        )
        if event.branch:
            headline += f" on branch {code(event.branch)}"
        blocks.append(section(headline + "."))
        blocks.append(section(code_block(event.diff, limit=MAX_SECTION_TEXT - 10)))
    else:
        blocks.append(section(f":pencil2: {who} asked to accept the drift into code."))
    if event.problem:
        blocks.append(section(f":warning: {escape(event.problem)}"))
    if event.skipped:
        blocks.append(section(_skipped_text(event)))
    if event.gone:
        count = len(event.gone)
        blocks.append(
            context(
                f"{count} {plural(count, 'finding')} of the report no longer drift "
                "(fixed since); nothing was written for them."
            )
        )
    if event.compare_url:
        blocks.append(
            actions(
                [button("Open a pull request", Action.DRIFT_OPEN_BRANCH, url=event.compare_url)]
            )
        )
    if written:
        blocks.append(
            context(
                "Merge it, then apply (or `terraform apply -refresh-only`) so the state "
                "records it; the next scan closes the drift."
            )
        )
    text = (
        f"Drift of {event.state} accepted into code ({written} {plural(written, 'attribute')})"
        if written
        else f"Drift of {event.state}: nothing accepted into code"
    )
    return SlackMessage(text=text, blocks=tuple(blocks))


def _skipped_text(event: DriftAccepted) -> str:
    """One line per attribute left to a person (reasons clipped), then how many more."""
    lines = []
    for item in event.skipped[:MAX_SKIPPED_SHOWN]:
        where = item.address if item.path == "*" else f"{item.address} {item.path}"
        lines.append(f"• {code(clip(where, 120))}: {escape(clip(item.reason or '', 240))}")
    head = f"*Left to a person* ({len(event.skipped)}):"
    while True:
        hidden = len(event.skipped) - len(lines)
        tail = [f"…and {hidden} more"] if hidden > 0 else []
        text = "\n".join([head, *lines, *tail])
        if len(text) <= MAX_SECTION_TEXT or not lines:
            return text
        lines.pop()
