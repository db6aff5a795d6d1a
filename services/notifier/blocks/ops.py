"""Block Kit for the ops channel: a message a worker gave up on, and how to bring it back."""

from __future__ import annotations

from services.notifier.blocks.message import SlackMessage
from services.notifier.blocks.text import MAX_CODE_CHARS
from shared.events import MessageDeadLettered
from shared.slack.blocks import (
    MAX_FIELD_TEXT,
    MAX_SECTION_TEXT,
    Block,
    clip_mrkdwn,
    code_block,
    code_text,
    context,
    escape,
    header,
    section,
    slack_date,
)


def render_dead_letter(event: MessageDeadLettered) -> SlackMessage:
    """What went to which DLQ, why, and the command that moves it back after the fix."""
    what = event.failed_type or "an unreadable message"
    fields = [
        f"*Event*\n`{code_text(event.failed_type or '?')}`",
        f"*Service*\n{escape(event.consumer)}",
        f"*Dead-letter queue*\n`{code_text(event.dlq)}`",
        f"*Receives*\n{event.receive_count}",
    ]
    if event.failed_event_id:
        fields.append(f"*Event id*\n`{code_text(event.failed_event_id)}`")
    fields.append(f"*Correlation id*\n`{code_text(event.correlation_id)}`")
    if event.run_id:
        fields.append(f"*Run*\n`{code_text(event.run_id)}`")
    fields.append(f"*Message id*\n`{code_text(event.message_id)}`")
    blocks: list[Block] = [
        header(f":rotating_light: {what} went to {event.dlq}"),
        section(
            clip_mrkdwn(f"*Why:* {escape(event.reason)}", MAX_SECTION_TEXT),
            fields=[clip_mrkdwn(f, MAX_FIELD_TEXT) for f in fields],
        ),
        section(
            "*After the fix, move it back:*\n"
            + code_block(event.replay_command, limit=MAX_CODE_CHARS)
        ),
        context(
            f"{slack_date(event.occurred_at)} · `toilkit dlq show {code_text(event.dlq)}` "
            "lists what else is there"
        ),
    ]
    return SlackMessage.fitted(f"{what} went to {event.dlq}: {event.reason}", blocks)
