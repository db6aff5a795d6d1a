"""Block Kit for every outcome: what an SRE reads in Slack. Pure functions, no I/O.

Each ``render_*`` function returns a :class:`SlackMessage`: the notification text (what
Slack shows in notifications and to screen readers) and the blocks. Every message stays
inside Slack's limits (50 blocks, 3000 characters per section text, 2000 per field, 150 per
header, 10 context elements, 2000 characters per button value); long lists are cut with
"and N more" and a link to the full plan or log when there is one.

Conventions that make the messages readable at a glance:

* Terraform's own symbols for changes (``+`` create, ``~`` update, ``-`` destroy, ``-/+``
  replace), so the lines read like ``terraform plan``.
* Drift (someone changed the real infrastructure) and pending (code not applied yet) are
  listed apart, under their own heading, each with the direction of its values:
  ``recorded -> actual`` for drift, ``current -> planned`` for pending.
* Sensitive values are never shown, whatever the event carries: ``(sensitive)``.
* Ignored attributes are not listed with the rest; a count and their paths say they exist.
* Times are ``<!date^...>`` tokens, so every reader sees their own time zone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.notifier.views import DriftView, RunView, actionable
from shared.events import (
    SENSITIVE,
    Actor,
    AttributeChange,
    BatchRunFinished,
    BatchRunRefused,
    BatchRunStarted,
    DriftDetected,
    DriftFinding,
    DriftResolved,
    DriftScanCompleted,
    DriftScanFailed,
    ResolvedFinding,
    RunParameter,
    StateRef,
    Suspect,
)
from shared.slack.actions import Action, encode_claim_value, encode_run_value
from shared.slack.blocks import (
    ARROW,
    ELLIPSIS,
    MAX_FIELD_TEXT,
    MAX_FIELDS,
    MAX_NOTIFICATION_TEXT,
    MAX_SECTION_TEXT,
    Block,
    actions,
    age,
    button,
    clip,
    clip_mrkdwn,
    code_block,
    code_text,
    context,
    divider,
    duration,
    escape,
    fit_blocks,
    header,
    link_button,
    mention,
    plain,
    plural,
    section,
    slack_date,
)

# What fits a glance.
MAX_RESOURCES_SHOWN = 15
MAX_ATTRIBUTES_SHOWN = 8
MAX_IGNORED_PATHS_SHOWN = 4
MAX_SUSPECTS_SHOWN = 2
MAX_VALUE_CHARS = 90
MAX_DIGEST_STATES = 20
MAX_LIST_ITEMS = 25
MAX_CODE_CHARS = 2600


@dataclass(frozen=True)
class SlackMessage:
    """A message to post or an update to make: notification text and Block Kit blocks."""

    text: str
    blocks: tuple[Block, ...]

    def as_arguments(self) -> dict[str, Any]:
        """The ``text`` and ``blocks`` arguments of ``chat.postMessage``/``chat.update``."""
        return {"text": self.text, "blocks": [dict(block) for block in self.blocks]}


# =========================================================================== drift


def render_drift(view: DriftView) -> SlackMessage:
    """The parent message of a drift report, in its current state.

    Shows the state, each resource with its kind of change and the attributes that differ,
    suspects, age since first seen, who is on it, an "I'm on it" button and the plan link.
    Resolved findings are struck through; once all are, the message says so and loses its
    buttons; a superseded report says a newer message took over.
    """
    report = view.report
    state = report.state
    findings = [f for f in report.findings if actionable(f)]
    ignored = [f for f in report.findings if not actionable(f)]
    # Findings the detector cut for size count too: they are in the plan.
    total = len(view.fingerprints) + view.unlisted
    resolved = view.resolved
    open_count = len(view.open_fingerprints) + view.unlisted

    if view.all_resolved:
        title = f":white_check_mark: Drift resolved in {state.name}"
    elif view.superseded_at is not None:
        title = f":arrows_counterclockwise: Drift in {state.name} (superseded)"
    else:
        title = f":warning: Drift detected in {state.name}"

    blocks: list[Block] = [header(title)]
    summary = [_drift_headline(state, findings, total, open_count, view)]
    oldest = min((f.first_seen for f in findings), default=None)
    if oldest is not None and not view.all_resolved:
        summary.append(
            f":hourglass_flowing_sand: Oldest first seen *{age(report.occurred_at - oldest)} ago* "
            f"({slack_date(oldest)})"
        )
    blocks.append(
        section(
            "\n".join(summary),
            accessory=link_button("View plan", report.plan_url, Action.DRIFT_OPEN_PLAN),
        )
    )
    context_parts = [
        f"Scan `{code_text(report.correlation_id)}`",
        "refresh-only" if report.mode == "refresh_only" else "full plan",
        f"`{code_text(state.path)}`",
        slack_date(report.occurred_at),
    ]
    blocks.append(context(" · ".join(context_parts)))
    if view.claimed_by is not None and not view.all_resolved:
        since = f" since {slack_date(view.claimed_at)}" if view.claimed_at else ""
        blocks.append(context(f":eyes: {mention(view.claimed_by)} is on it{since}"))
    if view.superseded_at is not None and not view.all_resolved:
        blocks.append(
            context(
                ":arrows_counterclockwise: A later scan found a different set of drift here "
                f"({slack_date(view.superseded_at)}); this message is no longer updated."
            )
        )
    blocks.append(divider())

    shown = findings[:MAX_RESOURCES_SHOWN]
    for kind, heading in (
        ("drift", f"*:red_circle: Changed outside Terraform*  ·  _recorded {ARROW} actual_"),
        ("pending", f"*:large_yellow_circle: Code not applied yet*  ·  _current {ARROW} planned_"),
    ):
        group = [f for f in shown if f.kind == kind]
        if not group:
            continue
        blocks.append(section(heading))
        for finding in group:
            resolved_at = resolved.get(finding.fingerprint)
            blocks.append(section(_finding_text(finding, report.occurred_at, resolved_at)))
    hidden = total - len(shown)
    if hidden > 0:
        blocks.append(
            context(
                f"{ELLIPSIS}and *{hidden} more* {plural(hidden, 'resource')}"
                + (f" — <{report.plan_url}|see the full plan>" if report.plan_url else "")
            )
        )
    if ignored:
        names = ", ".join(f"`{code_text(f.address)}`" for f in ignored[:MAX_IGNORED_PATHS_SHOWN])
        more = f" and {len(ignored) - MAX_IGNORED_PATHS_SHOWN} more" if len(ignored) > 4 else ""
        blocks.append(
            context(
                f":see_no_evil: {len(ignored)} ignored {plural(len(ignored), 'resource')} "
                f"not shown (ignore rules): {names}{more}"
            )
        )
    if not view.all_resolved and view.superseded_at is None:
        buttons = [
            button(
                "I'm on it" if view.claimed_by is None else "I'm on it instead",
                Action.DRIFT_CLAIM,
                value=encode_claim_value(state.name, view.open_fingerprints),
                style="primary" if view.claimed_by is None else None,
            )
        ]
        if report.plan_url:
            buttons.append(button("Open plan", Action.DRIFT_OPEN_PLAN, url=report.plan_url))
        blocks.append(actions(buttons))

    text = _drift_notification(state, findings, total, open_count, view)
    return SlackMessage(text=clip(text, MAX_NOTIFICATION_TEXT), blocks=fit_blocks(blocks))


def _drift_headline(
    state: StateRef, findings: Sequence[DriftFinding], total: int, open_count: int, view: DriftView
) -> str:
    where = f"`{code_text(state.name)}`"
    if state.workspace != "default":
        where += f" (workspace `{code_text(state.workspace)}`)"
    if view.all_resolved:
        count, noun = _resource_count(findings, findings, total)
        return f"All *{count}* {noun} in {where} match the code again."
    still_open = [f for f in findings if f.fingerprint not in view.resolved]
    drift = sum(1 for f in still_open if f.kind == "drift")
    pending = sum(1 for f in still_open if f.kind == "pending")
    count, noun = _resource_count(findings, still_open, total, open_count)
    if noun.startswith("resource"):
        verb = "differs" if count == 1 else "differ"
        lines = [f"*{count}* {noun} in {where} {verb} from the code"]
    else:
        lines = [f"*{count}* {noun} between {where} and the code"]
    if open_count < total:
        lines[0] += f" ({total - open_count} of {total} findings resolved since)"
    counts = []
    if drift:
        counts.append(f":red_circle: *{drift}* changed outside Terraform")
    if pending:
        counts.append(f":large_yellow_circle: *{pending}* not applied yet")
    if counts:
        lines.append("   ".join(counts))
    new = sum(1 for f in findings if f.status == "new" and f.fingerprint not in view.resolved)
    if new and new < open_count:
        lines.append(f":new: *{new}* new since the last scan")
    return "\n".join(lines)


def _drift_notification(
    state: StateRef, findings: Sequence[DriftFinding], total: int, open_count: int, view: DriftView
) -> str:
    if view.all_resolved:
        count, noun = _resource_count(findings, findings, total)
        return f"Drift resolved in {state.name}: all {count} {noun} match"
    still_open = [f for f in findings if f.fingerprint not in view.resolved]
    drift = sum(1 for f in still_open if f.kind == "drift")
    pending = sum(1 for f in still_open if f.kind == "pending")
    parts = []
    if drift:
        parts.append(f"{drift} changed outside Terraform")
    if pending:
        parts.append(f"{pending} not applied")
    detail = f" ({', '.join(parts)})" if parts else ""
    count, noun = _resource_count(findings, still_open, total, open_count)
    verb = " differ" if noun == "resources" else " differs" if noun == "resource" else ""
    return f"Drift in {state.name}: {count} {noun}{verb}{detail}"


def _resource_count(
    findings: Sequence[DriftFinding],
    counted: Sequence[DriftFinding],
    total: int,
    counted_total: int | None = None,
) -> tuple[int, str]:
    """How many resources ``counted`` touches, with its noun.

    One resource can be two findings (changed outside Terraform, and the plan that would
    revert it): people count resources. When the detector cut the list for size, only
    the number of findings is known (``counted_total``, else ``total``): "differences".
    """
    if len(findings) >= total:
        count = len({f.address for f in counted})
        return count, plural(count, "resource")
    count = total if counted_total is None else counted_total
    return count, plural(count, "difference")


def _finding_text(finding: DriftFinding, now: datetime, resolved_at: datetime | None) -> str:
    """One resource: its change, its attributes, its suspects (one section's text)."""
    symbol = change_symbol(finding.actions)
    if resolved_at is not None:
        lasted = age(resolved_at - finding.first_seen)
        return (
            # Struck through as plain text: Slack does not strike through code.
            f"`{symbol}` ~{escape(finding.address)}~  :white_check_mark: _resolved after {lasted}_"
            f" ({slack_date(resolved_at)})"
        )
    badge = (
        ":new: *new*"
        if finding.status == "new"
        else f":hourglass: open *{age(now - finding.first_seen)}*"
    )
    # One code span, as `terraform plan` prints it: "~ aws_db_instance.main".
    lines = [f"`{symbol} {code_text(finding.address)}`   {badge}"]
    note = change_note(finding)
    if note:
        lines.append(note)
    # Who probably did it comes before the values: it is what a reader acts on first.
    for suspect in finding.suspects[:MAX_SUSPECTS_SHOWN]:
        lines.append(suspect_line(suspect))
    if len(finding.suspects) > MAX_SUSPECTS_SHOWN:
        lines.append(f"_and {len(finding.suspects) - MAX_SUSPECTS_SHOWN} more suspects_")
    shown = [a for a in finding.attributes if not a.ignored]
    ignored = [a for a in finding.attributes if a.ignored]
    if shown:
        attribute_lines = [attribute_line(a) for a in shown[:MAX_ATTRIBUTES_SHOWN]]
        if len(shown) > MAX_ATTRIBUTES_SHOWN:
            more = len(shown) - MAX_ATTRIBUTES_SHOWN
            attribute_lines.append(f"{ELLIPSIS} and {more} more {plural(more, 'attribute')}")
        lines.append(code_block("\n".join(attribute_lines), limit=1800))
    if ignored:
        paths = ", ".join(f"`{code_text(a.path)}`" for a in ignored[:MAX_IGNORED_PATHS_SHOWN])
        more = len(ignored) - MAX_IGNORED_PATHS_SHOWN
        lines.append(
            f"_{len(ignored)} ignored {plural(len(ignored), 'attribute')} not shown:_ {paths}"
            + (f" and {more} more" if more > 0 else "")
        )
    return clip_mrkdwn("\n".join(lines), MAX_SECTION_TEXT)


def attribute_line(change: AttributeChange) -> str:
    """``path: before → after`` with sensitive values masked."""
    if change.sensitive:
        return f"{change.path}: {SENSITIVE}"
    before = format_value(change.before)
    after = "(known after apply)" if change.after_unknown else format_value(change.after)
    return f"{change.path}: {before} {ARROW} {after}"


def format_value(value: Any) -> str:
    """A JSON value as a reader wants it: strings quoted, absent as ``(none)``, clipped."""
    if value is None:
        return "(none)"
    if value == SENSITIVE:
        return SENSITIVE
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return clip(text, MAX_VALUE_CHARS)


def suspect_line(suspect: Suspect) -> str:
    who = (
        f"<@{suspect.slack_user_id}> (`{code_text(short_principal(suspect.principal))}`)"
        if suspect.slack_user_id
        else f"`{code_text(short_principal(suspect.principal))}`"
    )
    source = f" from `{code_text(suspect.source_ip)}`" if suspect.source_ip else ""
    return (
        f":mag: Likely changed by {who} · `{code_text(suspect.event_name)}` "
        f"{slack_date(suspect.event_time)}{source}"
    )


def short_principal(principal: str) -> str:
    """``arn:aws:sts::1:assumed-role/Admin/alice`` -> ``Admin/alice`` (the readable part)."""
    if principal.startswith("arn:"):
        resource = principal.split(":", 5)[-1]
        return resource.split("/", 1)[1] if "/" in resource else resource
    return principal


def change_symbol(actions: Sequence[str]) -> str:
    """Terraform's plan symbol for a list of actions."""
    acts = tuple(actions)
    if acts == ("delete", "create"):
        return "-/+"
    if acts == ("create", "delete"):
        return "+/-"
    return {"create": "+", "update": "~", "delete": "-", "read": "<=", "no-op": " "}.get(
        acts[0] if acts else "update", "~"
    )


#: Terraform's ``action_reason`` values in words.
ACTION_REASONS = {
    "replace_because_tainted": "it is tainted",
    "replace_because_cannot_update": "it cannot be updated in place",
    "replace_by_request": "replacement was requested",
    "replace_by_triggers": "a replace_triggered_by reference changed",
    "delete_because_no_resource_config": "it was removed from the code",
    "delete_because_no_module": "its module was removed from the code",
    "delete_because_wrong_repetition": "count/for_each changed",
    "delete_because_count_index": "its count index is gone",
    "delete_because_each_key": "its for_each key is gone",
    "delete_because_no_move_target": "its moved target does not exist",
    "read_because_config_unknown": "its configuration is known only after apply",
    "read_because_dependency_pending": "a dependency has changes pending",
}


def change_note(finding: DriftFinding) -> str | None:
    """What the plan symbol and the group heading do not already say, if anything.

    An in-place update says it all with ``~`` under its heading; a deletion, a creation
    or a replacement (and why), a move or a deposed object deserve a line.
    """
    acts = tuple(finding.actions)
    replace = len(acts) == 2 and set(acts) == {"create", "delete"}
    what = None
    if finding.kind == "drift":
        if "delete" in acts and not replace:
            what = "*Deleted outside Terraform*"
        elif "create" in acts and not replace:
            what = "*Created outside Terraform*"
    elif replace:
        what = "*Will be replaced*"
    elif acts and acts[0] in ("create", "delete", "read"):
        what = {"create": "*Will be created*", "delete": "*Will be destroyed*"}.get(
            acts[0], "*Will be read*"
        )
    parts = [what] if what else []
    if finding.action_reason:
        reason = ACTION_REASONS.get(finding.action_reason, finding.action_reason.replace("_", " "))
        parts.append(f"because {escape(reason)}")
    if finding.previous_address:
        parts.append(f"moved from `{code_text(finding.previous_address)}`")
    if finding.deposed:
        parts.append(f"deposed object `{code_text(finding.deposed)}`")
    return " · ".join(parts) if parts else None


def render_drift_still_open(view: DriftView) -> SlackMessage:
    """The thread reply when a later scan finds the same drift still there."""
    report = view.report
    open_count = len(view.open_fingerprints)
    oldest = min((f.first_seen for f in report.findings if actionable(f)), default=None)
    since = f", the oldest for *{age(report.occurred_at - oldest)}*" if oldest else ""
    who = (
        f" {mention(view.claimed_by)} is on it." if view.claimed_by else " Nobody has taken it yet."
    )
    text = (
        f":repeat: Scan `{code_text(report.correlation_id)}` found it still there: "
        f"*{open_count}* {plural(open_count, 'resource')} differ{since}.{who}"
    )
    return SlackMessage(
        text=f"Drift in {report.state.name} still open ({open_count})",
        blocks=(section(text),),
    )


def render_drift_claimed_reply(actor: Actor) -> SlackMessage:
    """The thread reply when someone presses "I'm on it"."""
    return SlackMessage(
        text=f"{actor.name} is on it",
        blocks=(section(f":eyes: {mention(actor)} is on it."),),
    )


def render_drift_superseded_reply(newer: DriftDetected) -> SlackMessage:
    """The thread reply when a later scan reports a different set for the state."""
    text = (
        f":arrows_counterclockwise: Scan `{code_text(newer.correlation_id)}` found a different "
        f"set of drift in `{code_text(newer.state.name)}` and reported it in a new message; "
        "follow that one from now on."
    )
    return SlackMessage(
        text=f"Drift in {newer.state.name}: see the newer report", blocks=(section(text),)
    )


def render_drift_resolved_reply(
    event: DriftResolved, findings: Sequence[ResolvedFinding], all_resolved: bool
) -> SlackMessage:
    """The thread reply listing what a scan found fixed."""
    lines = [
        f"• `{code_text(f.address)}` — {_kind_words(f.kind)}, open "
        f"{age(event.occurred_at - f.first_seen)}"
        for f in findings[:MAX_LIST_ITEMS]
    ]
    if len(findings) > MAX_LIST_ITEMS:
        lines.append(f"{ELLIPSIS}and {len(findings) - MAX_LIST_ITEMS} more")
    head = (
        ":tada: *All resolved.* Everything in this report matches the code again."
        if all_resolved
        else f":white_check_mark: *{len(findings)} resolved* by scan "
        f"`{code_text(event.correlation_id)}`:"
    )
    count = len(findings)
    return SlackMessage(
        text=f"{count} {plural(count, 'drift')} resolved in {event.state.name}",
        blocks=(section(clip_mrkdwn(head + "\n" + "\n".join(lines), MAX_SECTION_TEXT)),),
    )


def render_drift_resolved(event: DriftResolved) -> SlackMessage:
    """A resolution with no drift message to reply to (posted before records were kept)."""
    count = len(event.resolved)
    lines = [
        f"• `{code_text(f.address)}` — {_kind_words(f.kind)}, open "
        f"{age(event.occurred_at - f.first_seen)}"
        for f in event.resolved[:MAX_LIST_ITEMS]
    ]
    if count > MAX_LIST_ITEMS:
        lines.append(f"{ELLIPSIS}and {count - MAX_LIST_ITEMS} more")
    blocks = (
        section(
            clip_mrkdwn(
                f":white_check_mark: *Drift resolved in `{code_text(event.state.name)}`*: "
                f"{count} {plural(count, 'resource')} match the code again\n" + "\n".join(lines),
                MAX_SECTION_TEXT,
            )
        ),
        context(f"Scan `{code_text(event.correlation_id)}` · {slack_date(event.occurred_at)}"),
    )
    return SlackMessage(
        text=f"Drift resolved in {event.state.name}: {count} {plural(count, 'resource')}",
        blocks=blocks,
    )


def _kind_words(kind: str) -> str:
    return "changed outside Terraform" if kind == "drift" else "code now applied"


def render_scan_failed(event: DriftScanFailed) -> SlackMessage:
    """A state that could not be scanned: which, where it failed, why, stderr."""
    state = event.state
    fields = [
        f"*State*\n`{code_text(state.name)}`"
        + (f" (workspace `{code_text(state.workspace)}`)" if state.workspace != "default" else ""),
        f"*Failed at*\n`terraform {event.phase}`"
        if event.phase not in ("discover", "parse", "timeout")
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
    return SlackMessage(
        text=clip(f"Drift scan failed for {state.name} ({event.phase}): {event.reason}", 400),
        blocks=fit_blocks(blocks),
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
        f"*{event.findings_open}* open {plural(event.findings_open, 'finding')}"
        + (f" ({event.findings_new} new)" if event.findings_new else "")
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
                new = f", {summary.new_findings} new" if summary.new_findings else ""
                lines.append(
                    f":red_circle: `{code_text(summary.name)}` — {summary.open_findings} open{new}"
                )
        if len(listed) > MAX_DIGEST_STATES:
            lines.append(f"{ELLIPSIS}and {len(listed) - MAX_DIGEST_STATES} more states")
        blocks.append(section(clip_mrkdwn("\n".join(lines), MAX_SECTION_TEXT)))
    elif scanned:
        blocks.append(section(":tada: Every state matches its code."))
    blocks.append(
        context(
            f"Scan `{code_text(event.correlation_id)}` · took {duration(event.duration_seconds)}"
            f" · {slack_date(event.occurred_at)}"
        )
    )
    text = (
        f"Drift scan: {scanned} {plural(scanned, 'state')}, {len(drifted)} drifted, "
        f"{len(failed)} failed, {event.findings_open} open findings"
    )
    return SlackMessage(text=text, blocks=fit_blocks(blocks))


# =========================================================================== batch runs

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
}


def render_run(view: RunView) -> SlackMessage:
    """A run's parent message: one line per run in the channel, updated to its status."""
    icon, status = _PHASES[view.phase]
    title = f"{icon} *{status}* · `{code_text(view.command)}` on *{escape(view.environment)}*"
    if view.phase in ("succeeded", "failed", "timed_out", "cancelled"):
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
    blocks.append(context(f"Run `{code_text(view.run_id)}`"))
    buttons = _run_buttons(view)
    if buttons:
        blocks.append(actions(buttons))
    return SlackMessage(text=_run_notification(view), blocks=fit_blocks(blocks))


def _run_buttons(view: RunView) -> list[Block]:
    if view.phase == "awaiting_approval":
        return [
            button(
                "Approve",
                Action.BATCH_APPROVE,
                value=encode_run_value(view.run_id),
                style="primary",
            ),
            button(
                "Reject", Action.BATCH_REJECT, value=encode_run_value(view.run_id), style="danger"
            ),
        ]
    if view.phase == "running":
        return [
            button(
                "Cancel run",
                Action.BATCH_CANCEL,
                value=encode_run_value(view.run_id),
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
    if view.phase in ("succeeded", "failed", "timed_out", "cancelled"):
        return [button("Run again", Action.BATCH_RERUN, value=encode_run_value(view.run_id))]
    return []


def _run_notification(view: RunView) -> str:
    _, status = _PHASES[view.phase]
    who = f" (requested by {view.requested_by.name})" if view.requested_by else ""
    return clip(f"{status}: {view.command} on {view.environment}{who}", MAX_NOTIFICATION_TEXT)


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
        blocks.append(section(clip_mrkdwn(f"*Error:* {escape(event.error)}", MAX_SECTION_TEXT)))
    if event.log_tail:
        shown, cut = tail_lines(event.log_tail, MAX_CODE_CHARS)
        label = f"*Last {len(shown)} log {plural(len(shown), 'line')}*"
        if cut:
            label += f" ({cut} earlier not shown"
            label += f", <{event.log_url}|full log>)" if event.log_url else ")"
        blocks.append(section(label + "\n" + code_block("\n".join(shown), limit=MAX_CODE_CHARS)))
    if event.log_url:
        blocks.append(context(f":scroll: <{event.log_url}|Full log>"))
    return SlackMessage(
        text=f"{status}: {event.command} on {event.environment}", blocks=fit_blocks(blocks)
    )


def render_run_refused_reply(event: BatchRunRefused) -> SlackMessage:
    """The thread reply saying why a run will not happen."""
    who = f" by {mention(event.decided_by)}" if event.decided_by else ""
    stage = _REFUSAL_WORDS.get(event.stage, event.stage)
    return SlackMessage(
        text=f"Refused: {event.command} on {event.environment}",
        blocks=(
            section(
                clip_mrkdwn(
                    f":no_entry: *Refused{who}* ({stage}):\n> {escape(event.reason)}",
                    MAX_SECTION_TEXT,
                )
            ),
        ),
    )


def parameters_text(parameters: Iterable[RunParameter]) -> str:
    """``name = value`` lines; sensitive values never shown."""
    lines = []
    for parameter in parameters:
        value = SENSITIVE if parameter.sensitive or parameter.value is None else parameter.value
        lines.append(f"`{code_text(parameter.name)}` = `{code_text(clip(value, 200))}`")
    return clip_mrkdwn("\n".join(lines), 1800)


def approver_mention(approver: str) -> str:
    """A user id as ``<@U...>``, a user group id as ``<!subteam^S...>``."""
    if approver.startswith("S"):
        return f"<!subteam^{approver}>"
    if approver[:1] in ("U", "W"):
        return f"<@{approver}>"
    return escape(approver)


# =========================================================================== text helpers


def tail_lines(lines: Sequence[str], limit: int) -> tuple[list[str], int]:
    """The last lines that fit ``limit`` characters, and how many earlier ones were cut."""
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        size += len(line) + 1
        if size > limit and kept:
            break
        kept.append(line[-limit:])
    kept.reverse()
    return kept, len(lines) - len(kept)
