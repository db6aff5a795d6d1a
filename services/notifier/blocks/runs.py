"""Block Kit for batch runs: the run's parent message and its thread replies."""

from __future__ import annotations

from collections.abc import Callable

from services.notifier.blocks.message import SlackMessage
from services.notifier.blocks.progress import progress_blocks
from services.notifier.blocks.text import (
    MAX_CODE_CHARS,
    approver_mention,
    parameters_text,
    tail_lines,
)
from services.notifier.views import RunView
from shared.events import (
    Actor,
    BatchRunFinished,
    BatchRunRefused,
    BatchRunStarted,
    PreviewResult,
)
from shared.slack.actions import Action, encode_run_value
from shared.slack.blocks import (
    MAX_FIELD_TEXT,
    MAX_FIELDS,
    MAX_SECTION_TEXT,
    Block,
    actions,
    button,
    clip,
    clip_mrkdwn,
    code_block,
    code_text,
    context,
    duration,
    escape,
    fit_blocks,
    link_button,
    mention,
    plain,
    plural,
    section,
    slack_date,
)
from shared.state_table.runs import RUN_OUTCOMES

_PHASES: dict[str, tuple[str, str]] = {
    "awaiting_approval": (":hourglass_flowing_sand:", "Awaiting approval"),
    "running": (":rocket:", "Running"),
    "succeeded": (":white_check_mark:", "Succeeded"),
    "failed": (":x:", "Failed"),
    "timed_out": (":stopwatch:", "Timed out"),
    "cancelled": (":no_entry_sign:", "Cancelled"),
    "refused": (":no_entry:", "Refused"),
}

_REFUSAL_WORDS = {
    "validation": "the request is invalid",
    "authorization": "not allowed",
    "approval": "approval was refused",
    "concurrency": "another run holds the lock",
    "runner": "the runner could not start it",
    "schedule": "skipped, the previous scheduled run still runs",
    "preview": "the preview failed or is out of date",
}

#: How a preview ended, as its block's first line says it.
_PREVIEW_ENDS = {
    "succeeded": (":mag:", "Preview succeeded"),
    "failed": (":x:", "Preview failed"),
    "timed_out": (":stopwatch:", "Preview timed out"),
    "cancelled": (":no_entry_sign:", "Preview stopped"),
}


def render_run(view: RunView) -> SlackMessage:
    """A run's parent message: one line per run in the channel, updated to its status."""
    icon, status = _PHASES[view.phase]
    title = f"{icon} *{status}* · `{code_text(view.command)}` on *{escape(view.environment)}*"
    if view.break_glass:
        title += " · :rotating_light: break-glass"
    if view.phase in RUN_OUTCOMES:
        bits = []
        if view.duration_seconds is not None:
            bits.append(f"in {duration(view.duration_seconds)}")
        if view.exit_code is not None and view.phase != "succeeded":
            bits.append(f"exit code `{view.exit_code}`")
        if view.phase == "cancelled" and view.cancelled_by:
            bits.append(f"by {mention(view.cancelled_by)}")
        if bits:
            title += " " + ", ".join(bits)
    elif view.phase == "refused":
        stage = view.refusal_stage or "validation"
        title += f": {_REFUSAL_WORDS.get(stage, stage)}"
    blocks: list[Block] = [
        section(title, accessory=link_button("View logs", view.log_url, Action.BATCH_OPEN_LOGS))
    ]
    fields = []
    if view.requested_by is not None:
        fields.append(f"*Requested by*\n{mention(view.requested_by)}")
    if view.approved_by is not None:
        fields.append(f"*Approved by*\n{mention(view.approved_by)}")
    elif view.break_glass:
        fields.append("*Approval*\n:rotating_light: skipped: break-glass")
    elif view.phase == "awaiting_approval" and view.approvers:
        fields.append(f"*Approvers*\n{' '.join(approver_mention(a) for a in view.approvers)}")
    if view.phase == "awaiting_approval" and view.approval_expires_at is not None:
        fields.append(f"*Expires*\n{slack_date(view.approval_expires_at)}")
    if view.started_at is not None:
        fields.append(f"*Started*\n{slack_date(view.started_at)}")
    if view.runner:
        fields.append(f"*Runner*\n`{code_text(view.runner)}`")
    if view.parameters:
        fields.append(f"*Parameters*\n{parameters_text(view.parameters)}")
    if view.phase == "refused" and view.refusal_reason:
        who = f" ({mention(view.decided_by)})" if view.decided_by else ""
        fields.append(f"*Why*\n{clip(escape(view.refusal_reason), 1500)}{who}")
    if fields:
        blocks.append(section(fields=[clip_mrkdwn(f, MAX_FIELD_TEXT) for f in fields[:MAX_FIELDS]]))
    if view.reason:
        blocks.append(section(clip_mrkdwn(f"> {escape(view.reason)}", MAX_SECTION_TEXT)))
    if view.preview is not None:
        if view.phase in ("awaiting_approval", "refused"):
            blocks.extend(preview_blocks(view.preview))
        else:
            blocks.append(context(_preview_line(view.preview)))
    blocks.extend(progress_blocks(view))
    run_line = f"Run `{code_text(view.run_id)}`"
    if view.rerun_of:
        run_line += f" · run again from `{code_text(view.rerun_of)}`"
    blocks.append(context(run_line))
    buttons = _run_buttons(view)
    if buttons:
        blocks.append(actions(buttons))
    return SlackMessage.fitted(_run_notification(view), blocks)


def _run_buttons(view: RunView) -> list[Block]:
    """The buttons of the run's phase; each one's value names the run."""
    value = encode_run_value(view.run_id)
    if view.phase == "awaiting_approval":
        return [
            button("Approve", Action.BATCH_APPROVE, value=value, style="primary"),
            button("Reject", Action.BATCH_REJECT, value=value, style="danger"),
        ]
    if view.phase == "running":
        return [
            button(
                "Cancel run",
                Action.BATCH_CANCEL,
                value=value,
                style="danger",
                confirm={
                    "title": plain("Cancel this run?"),
                    "text": plain(f"{view.command} on {view.environment} will be stopped."),
                    "confirm": plain("Cancel it"),
                    "deny": plain("Keep running"),
                    "style": "danger",
                },
            )
        ]
    if view.phase in RUN_OUTCOMES:
        return [
            button("Run again", Action.BATCH_RERUN, value=value),
            button("Edit and run again", Action.BATCH_RERUN_EDIT, value=value),
        ]
    return []


def _run_notification(view: RunView) -> str:
    _, status = _PHASES[view.phase]
    who = f" (requested by {view.requested_by.name})" if view.requested_by else ""
    return f"{status}: {view.command} on {view.environment}{who}"


def render_run_started_reply(event: BatchRunStarted) -> SlackMessage:
    """The thread reply when a run that waited for approval starts."""
    approved = f"Approved by {mention(event.approved_by)}; s" if event.approved_by else "S"
    logs = f" · <{event.log_url}|logs>" if event.log_url else ""
    return SlackMessage(
        text=f"Started: {event.command} on {event.environment}",
        blocks=(
            section(
                f":rocket: {approved}tarted on `{code_text(event.runner)}` "
                f"{slack_date(event.started_at)}{logs}"
            ),
        ),
    )


def render_run_finished_reply(event: BatchRunFinished) -> SlackMessage:
    """The thread reply with a finished run's details: status, exit code, log tail."""
    icon, status = _PHASES[event.status]
    head = f"{icon} *{status}* after {duration(event.duration_seconds)}"
    if event.exit_code is not None:
        head += f" · exit code `{event.exit_code}`"
    if event.cancelled_by is not None:
        head += f" · cancelled by {mention(event.cancelled_by)}"
    blocks: list[Block] = [section(head)]
    if event.error:
        blocks.append(_error_section(event.error))
    if event.log_tail:
        blocks.append(
            _tail_section(
                event.log_tail, lambda n: f"*Last {n} log {plural(n, 'line')}*", event.log_url
            )
        )
    if event.log_url:
        blocks.append(context(f":scroll: <{event.log_url}|Full log>"))
    return SlackMessage(
        text=f"{status}: {event.command} on {event.environment}", blocks=fit_blocks(blocks)
    )


def render_break_glass_notice(event: BatchRunStarted) -> SlackMessage:
    """The approvers' own message: a run started without their approval, and why."""
    head = (
        f":rotating_light: *Break-glass:* {mention(event.requested_by)} started "
        f"`{code_text(event.command)}` on *{escape(event.environment)}* without approval"
    )
    blocks: list[Block] = [section(head)]
    if event.reason:
        blocks.append(section(clip_mrkdwn(f"*Reason*\n> {escape(event.reason)}", MAX_SECTION_TEXT)))
    if event.parameters:
        blocks.append(
            section(
                clip_mrkdwn(f"*Parameters*\n{parameters_text(event.parameters)}", MAX_FIELD_TEXT)
            )
        )
    blocks.append(
        context(
            f"Run `{code_text(event.run_id)}` · started {slack_date(event.started_at)} · "
            "review it in the run's thread; `toilkit runs list --break-glass` lists them all"
        )
    )
    text = (
        f"Break-glass: {event.requested_by.name} started {event.command} on "
        f"{event.environment} without approval"
    )
    return SlackMessage.fitted(text, blocks)


def render_rerun_link_reply(run_id: str, requested_by: Actor) -> SlackMessage:
    """The reply in a run's thread when someone runs it again (with or without edits)."""
    return SlackMessage(
        text=f"Run again as {run_id}",
        blocks=(
            section(f":repeat: Run again by {mention(requested_by)} as run `{code_text(run_id)}`"),
        ),
    )


def render_run_refused_reply(event: BatchRunRefused) -> SlackMessage:
    """The thread reply saying why a run will not happen (with the failed preview's
    tail, for the requester, when the preview is why)."""
    who = f" by {mention(event.decided_by)}" if event.decided_by else ""
    stage = _REFUSAL_WORDS.get(event.stage, event.stage)
    head = f":no_entry: *Refused{who}* ({stage}):\n> {escape(event.reason)}"
    if event.stage == "preview" and event.decided_by is None:
        head = f"{mention(event.requested_by)} " + head
    blocks: list[Block] = [section(clip_mrkdwn(head, MAX_SECTION_TEXT))]
    if event.preview is not None:
        blocks.extend(preview_blocks(event.preview))
    return SlackMessage(
        text=f"Refused: {event.command} on {event.environment}", blocks=fit_blocks(blocks)
    )


def preview_blocks(preview: PreviewResult) -> list[Block]:
    """A preview's outcome and the last lines of its output (as many as fit Slack)."""
    blocks: list[Block] = [section(clip_mrkdwn(_preview_line(preview), MAX_SECTION_TEXT))]
    if preview.error:
        blocks.append(_error_section(preview.error))
    if preview.log_tail:
        blocks.append(
            _tail_section(
                preview.log_tail, lambda n: f"*Preview output, last {n} {plural(n, 'line')}*"
            )
        )
    else:
        blocks.append(context("The preview printed nothing."))
    return blocks


def _error_section(error: str) -> Block:
    """An error message, as much of it as fits a section."""
    return section(clip_mrkdwn(f"*Error:* {escape(error)}", MAX_SECTION_TEXT))


def _tail_section(
    lines: tuple[str, ...], heading: Callable[[int], str], full_log_url: str | None = None
) -> Block:
    """The last of ``lines`` that fit a code block, under ``heading(how many)``; when earlier
    lines are cut, it says how many (with a link to ``full_log_url`` when there is one)."""
    shown, cut = tail_lines(lines, MAX_CODE_CHARS)
    label = heading(len(shown))
    if cut:
        label += f" ({cut} earlier not shown"
        label += f", <{full_log_url}|full log>)" if full_log_url else ")"
    return section(label + "\n" + code_block("\n".join(shown), limit=MAX_CODE_CHARS))


def _preview_line(preview: PreviewResult) -> str:
    icon, status = _PREVIEW_ENDS[preview.status]
    line = f"{icon} *{status}* after {duration(preview.duration_seconds)}"
    if preview.exit_code is not None:
        line += f" · exit code `{preview.exit_code}`"
    if preview.log_url:
        line += f" · <{preview.log_url}|preview log>"
    return line + f" · fingerprint `{code_text(preview.fingerprint[:12])}`"
