"""The drift thread's replies to its actions: "Accept into code" (the diff, the branch,
what is left to do) and how a Revert run ended."""

from __future__ import annotations

from services.notifier.blocks.message import SlackMessage
from shared.events import BatchRunFinished, BatchRunRefused, DriftAccepted
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


def render_revert_outcome_reply(event: BatchRunFinished | BatchRunRefused) -> SlackMessage:
    """How the Revert run of this drift ended, in the drift report's thread."""
    run = code(event.run_id)
    state = code(event.reverts.state) if event.reverts else "the state"
    if isinstance(event, BatchRunRefused):
        text = (
            f":no_entry: The revert run {run} did not run ({escape(event.stage)}): "
            f"{escape(event.reason)}"
        )
    elif event.status == "succeeded":
        text = (
            f":leftwards_arrow_with_hook: Revert run {run} succeeded: {state} is back to what "
            "its code says; the next scan closes this drift."
        )
    else:
        code_note = f", exit code {event.exit_code}" if event.exit_code is not None else ""
        text = (
            f":x: Revert run {run} {escape(event.status.replace('_', ' '))}{code_note}: the "
            "drift stays open; the run's own message has its log."
        )
    blocks: list[Block] = [section(text)]
    if isinstance(event, BatchRunFinished) and event.log_url:
        blocks.append(context(f"<{event.log_url}|Open the run's log>"))
    return SlackMessage(text=f"Revert run {event.run_id}", blocks=tuple(blocks))
