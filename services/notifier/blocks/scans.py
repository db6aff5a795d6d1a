"""Block Kit for drift scans as a whole: a state that could not be scanned, the digest."""

from __future__ import annotations

from services.notifier.blocks.message import SlackMessage
from services.notifier.blocks.text import MAX_CODE_CHARS, state_label
from shared.events import DriftScanCompleted, DriftScanFailed
from shared.slack.blocks import (
    ELLIPSIS,
    MAX_SECTION_TEXT,
    Block,
    age,
    clip_mrkdwn,
    code_block,
    code_text,
    context,
    duration,
    escape,
    fit_blocks,
    header,
    mention,
    plural,
    section,
    slack_date,
)

#: States listed by name in the digest.
MAX_DIGEST_STATES = 20


def render_scan_failed(event: DriftScanFailed) -> SlackMessage:
    """A state that could not be scanned: which, where it failed, why, stderr."""
    state = event.state
    fields = [
        f"*State*\n{state_label(state)}",
        f"*Failed at*\n`terraform {event.phase}`"
        if event.phase not in ("discover", "credentials", "parse", "timeout")
        else f"*Failed at*\n{event.phase}",
    ]
    if event.exit_code is not None:
        fields.append(f"*Exit code*\n`{event.exit_code}`")
    fields.append(f"*Path*\n`{code_text(state.path)}`")
    blocks: list[Block] = [
        header(f":x: Drift scan failed for {state.name}"),
        section(clip_mrkdwn(f"*Why:* {escape(event.reason)}", MAX_SECTION_TEXT), fields=fields),
    ]
    if event.stderr_excerpt.strip():
        blocks.append(
            section(code_block(event.stderr_excerpt.strip(), limit=MAX_CODE_CHARS, keep="tail"))
        )
    blocks.append(
        context(
            f"Scan `{code_text(event.correlation_id)}` · {slack_date(event.occurred_at)} · "
            "drift in this state is unknown until a scan succeeds"
        )
    )
    return SlackMessage.fitted(
        f"Drift scan failed for {state.name} ({event.phase}): {event.reason}", blocks
    )


def render_digest(event: DriftScanCompleted) -> SlackMessage:
    """The scan digest: how many states were scanned, drifted, failed; the oldest drift."""
    scanned = len(event.states)
    drifted = [s for s in event.states if s.status == "drifted"]
    failed = [s for s in event.states if s.status == "failed"]
    clean = scanned - len(drifted) - len(failed)
    if failed:
        icon = ":x:"
    elif drifted:
        icon = ":warning:"
    else:
        icon = ":white_check_mark:"
    # Two lines of counts rather than six fields: the digest is read every morning.
    counts = (
        f"*{scanned}* {plural(scanned, 'state')} scanned · *{clean}* clean · "
        f"*{len(drifted)}* drifted · *{len(failed)}* failed\n"
        + _open_count(event.resources_open, event.findings_open)
        + _new_count(event.resources_open, event.resources_new, event.findings_new)
        + f" · *{event.findings_resolved}* resolved since the last scan"
    )
    blocks: list[Block] = [
        header(f"{icon} Drift scan digest: {len(drifted)} drifted, {len(failed)} failed"),
        section(counts),
    ]
    if event.oldest_open is not None:
        oldest = event.oldest_open
        blocks.append(
            section(
                f":hourglass: *Oldest open drift:* `{code_text(oldest.address)}` in "
                f"`{code_text(oldest.state)}`, open *{age(event.occurred_at - oldest.first_seen)}* "
                f"(since {slack_date(oldest.first_seen)})"
            )
        )
    listed = [*failed, *drifted]
    if listed:
        lines = []
        for summary in listed[:MAX_DIGEST_STATES]:
            if summary.status == "failed":
                lines.append(f":x: `{code_text(summary.name)}` — scan failed")
            else:
                new = _new_count(
                    summary.open_resources,
                    summary.new_resources,
                    summary.new_findings,
                    separator=", ",
                )
                lines.append(
                    f":red_circle: `{code_text(summary.name)}` — "
                    f"{_open_count(summary.open_resources, summary.open_findings, bold=False)}"
                    f"{new}"
                )
        if len(listed) > MAX_DIGEST_STATES:
            lines.append(f"{ELLIPSIS}and {len(listed) - MAX_DIGEST_STATES} more states")
        blocks.append(section(clip_mrkdwn("\n".join(lines), MAX_SECTION_TEXT)))
    elif scanned:
        blocks.append(section(":tada: Every state matches its code."))
    if event.team is not None:
        blocks.append(section(_team_text(event)))
    blocks += _notes_section(event)
    blocks.append(
        context(
            f"Scan `{code_text(event.correlation_id)}` · took {duration(event.duration_seconds)}"
            f" · {slack_date(event.occurred_at)}"
        )
    )
    text = (
        f"Drift scan: {scanned} {plural(scanned, 'state')}, {len(drifted)} drifted, "
        f"{len(failed)} failed, "
        + _open_count(event.resources_open, event.findings_open, bold=False)
    )
    return SlackMessage(text=text, blocks=fit_blocks(blocks))


def _notes_section(event: DriftScanCompleted) -> list[Block]:
    """Warnings about the scan (close to its runner's limit) and each state's (a plan close
    to its timeout, sets shown by position)."""
    warned = [escape(note) for note in event.notes] + [
        f"`{code_text(summary.name)}`: {escape(note)}"
        for summary in event.states
        for note in summary.notes
    ]
    if not warned:
        return []
    text = ":information_source: *Scan notes*\n" + "\n".join(warned)
    return [section(clip_mrkdwn(text, MAX_SECTION_TEXT))]


def _open_count(resources: int, findings: int, *, bold: bool = True) -> str:
    """Open drift in resources, each counted once (a drift and its revert are one).

    Events from a detector that did not count resources (``resources_open`` 0 while
    findings are open) fall back to the findings.
    """
    count, noun = (resources, "resource") if resources or not findings else (findings, "finding")
    number = f"*{count}*" if bold else str(count)
    return f"{number} open {plural(count, noun)}"


def _team_text(event: DriftScanCompleted) -> str:
    """The week's three team lines (``toilkit drift report`` has the tables)."""
    assert event.team is not None
    team = event.team
    return clip_mrkdwn(
        "*This week*\n"
        f":stopwatch: Time to resolve by who claimed it: {escape(team.time_to_resolve)}\n"
        f":repeat: Came back: {escape(team.came_back)}\n"
        f":loud_sound: Noisiest: {escape(team.noisiest)}",
        MAX_SECTION_TEXT,
    )


def render_rescan_reply(event: DriftScanCompleted) -> SlackMessage:
    """The answer in a report's thread when the scan its Re-scan button asked for is done."""
    who = event.requested_by
    asked = f" (asked by {mention(who)})" if who is not None else ""
    failed = [s.name for s in event.states if s.status == "failed"]
    if failed:
        outcome = f":x: the scan of {', '.join(f'`{code_text(n)}`' for n in failed)} failed"
    else:
        outcome = (
            f":mag: {_open_count(event.resources_open, event.findings_open)}"
            + _new_count(event.resources_open, event.resources_new, event.findings_new)
            + f" · *{event.findings_resolved}* resolved"
        )
    text = f"Re-scan done{asked}: {outcome}"
    return SlackMessage.fitted(text, [section(clip_mrkdwn(text, MAX_SECTION_TEXT))])


def _new_count(
    resources_open: int, resources_new: int, findings_new: int, *, separator: str = " ("
) -> str:
    """How many of the open ones are new, in the unit :func:`_open_count` counts in.

    Resources, each counted once like the header. An event written before
    ``resources_new`` existed (schema 1.0: new findings but no new resources) says
    findings, so a drift and its revert are never shown as two new resources.
    """
    close = ")" if separator == " (" else ""
    if resources_new or not findings_new:
        return f"{separator}{resources_new} new{close}" if resources_new else ""
    if not resources_open:  # the header counts findings too
        return f"{separator}{findings_new} new{close}"
    return f"{separator}{findings_new} new {plural(findings_new, 'finding')}{close}"
