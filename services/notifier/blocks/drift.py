"""Block Kit for a drift report: its parent message and the replies in its thread."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.notifier.blocks.message import SlackMessage
from services.notifier.blocks.text import (
    attribute_line,
    change_note,
    change_symbol,
    code_list,
    state_label,
    suspect_line,
)
from services.notifier.views import DriftView, actionable
from shared.events import (
    Actor,
    DriftDetected,
    DriftFinding,
    DriftResolved,
    ResolvedFinding,
)
from shared.slack.actions import (
    Action,
    encode_claim_value,
    encode_ignore_value,
    encode_rescan_value,
)
from shared.slack.blocks import (
    ARROW,
    ELLIPSIS,
    MAX_SECTION_TEXT,
    Block,
    actions,
    age,
    button,
    clip_mrkdwn,
    code_block,
    code_text,
    context,
    divider,
    escape,
    header,
    link_button,
    mention,
    plural,
    section,
    slack_date,
)

# What fits a glance.
MAX_RESOURCES_SHOWN = 15
MAX_ATTRIBUTES_SHOWN = 8
MAX_IGNORED_PATHS_SHOWN = 4
MAX_SUSPECTS_SHOWN = 2
MAX_LIST_ITEMS = 25
#: Resolved this many times in the detector's window (30 days), a drift gets the suggestion
#: to ignore it instead.
REPEATS_BEFORE_SUGGESTION = 3

#: The findings of each kind under their heading, with the direction of their values.
_KIND_HEADINGS = (
    ("drift", f"*:red_circle: Changed outside Terraform*  ·  _recorded {ARROW} actual_"),
    ("pending", f"*:large_yellow_circle: Code not applied yet*  ·  _current {ARROW} planned_"),
)


@dataclass(frozen=True)
class _Tally:
    """What the headline and the notification text both count.

    Attributes:
        findings: The actionable findings the report lists.
        total: Every finding of the set, those the detector cut for size included.
        open_count: Of ``total``, those not resolved yet.
        count: Resources (or, when the list was cut, findings) still open; all of them
            once every one is resolved.
        noun: ``resource(s)`` or ``difference(s)`` for ``count``.
        drift: Resources with open findings changed outside Terraform.
        pending: Resources with open findings of code not applied yet (a drift's revert
            is part of the drift, so a drifted resource counts once unless its code
            changed too).
    """

    findings: Sequence[DriftFinding]
    total: int
    open_count: int
    count: int
    noun: str
    drift: int = 0
    pending: int = 0


def render_drift(view: DriftView, *, revert: bool = False) -> SlackMessage:
    """The parent message of a drift report, in its current state.

    Shows the state, each resource with its kind of change and the attributes that differ,
    suspects, age since first seen, who is on it, an "I'm on it" button and the plan link;
    ``revert`` adds the Revert button (where the catalog has ``drift.revert``).
    Resolved findings are struck through; once all are, the message says so and loses its
    buttons; a superseded report says a newer message took over.
    """
    tally = _tally(view)
    shown = tally.findings[:MAX_RESOURCES_SHOWN]
    blocks: list[Block] = [
        header(_drift_title(view)),
        _drift_summary(view, tally),
        _scan_context(view.report),
        *_plan_notes(view.report),
        *_drift_notes(view),
        divider(),
        *_finding_sections(view, shown),
        *_unlisted_notes(view, hidden=tally.total - len(shown)),
        *_drift_buttons(view, revert=revert),
    ]
    text = _drift_notification(view, tally)
    return SlackMessage.fitted(text, blocks)


def _tally(view: DriftView) -> _Tally:
    findings = [f for f in view.report.findings if actionable(f)]
    # Findings the detector cut for size count too: they are in the plan.
    total = len(view.fingerprints) + view.unlisted
    open_count = len(view.open_fingerprints) + view.unlisted
    if view.all_resolved:
        count, noun = _resource_count(findings, findings, total)
        return _Tally(findings, total, open_count, count, noun)
    still_open = [f for f in findings if f.fingerprint not in view.resolved]
    count, noun = _resource_count(findings, still_open, total, open_count)
    return _Tally(
        findings,
        total,
        open_count,
        count,
        noun,
        drift=len({f.address for f in still_open if f.kind == "drift"}),
        pending=len({f.address for f in still_open if f.kind == "pending"}),
    )


def _drift_title(view: DriftView) -> str:
    name = view.report.state.name
    if view.all_resolved:
        return f":white_check_mark: Drift resolved in {name}"
    if view.superseded_at is not None:
        return f":arrows_counterclockwise: Drift in {name} (superseded)"
    return f":warning: Drift detected in {name}"


def _drift_summary(view: DriftView, tally: _Tally) -> Block:
    """The headline and the age of the oldest finding, beside a "View plan" button."""
    report = view.report
    summary = [_drift_headline(view, tally)]
    oldest = min((f.first_seen for f in tally.findings), default=None)
    if oldest is not None and not view.all_resolved:
        summary.append(
            f":hourglass_flowing_sand: Oldest first seen *{age(report.occurred_at - oldest)} ago* "
            f"({slack_date(oldest)})"
        )
    return section(
        "\n".join(summary),
        accessory=link_button("View plan", report.plan_url, Action.DRIFT_OPEN_PLAN),
    )


def _scan_context(report: DriftDetected) -> Block:
    parts = [
        f"Scan `{code_text(report.correlation_id)}`",
        "refresh-only" if report.mode == "refresh_only" else "full plan",
        f"`{code_text(report.state.path)}`",
        slack_date(report.occurred_at),
    ]
    return context(" · ".join(parts))


def _plan_notes(report: DriftDetected) -> list[Block]:
    """What the detector says about how it read the plan (a provider schema it could not
    read, so sets shown by position; a plan close to its timeout)."""
    if not report.notes:
        return []
    return [
        context(
            clip_mrkdwn(
                "\n".join(f":information_source: {escape(n)}" for n in report.notes),
                MAX_SECTION_TEXT,
            )
        )
    ]


def _drift_notes(view: DriftView) -> list[Block]:
    """Who is on it, and whether a newer message took over (while anything is open)."""
    if view.all_resolved:
        return []
    notes = []
    if view.claimed_by is not None:
        since = f" since {slack_date(view.claimed_at)}" if view.claimed_at else ""
        notes.append(context(f":eyes: {mention(view.claimed_by)} is on it{since}"))
    if view.superseded_at is not None:
        notes.append(
            context(
                ":arrows_counterclockwise: A later scan found a different set of drift here "
                f"({slack_date(view.superseded_at)}); this message is no longer updated."
            )
        )
    return notes


def _finding_sections(view: DriftView, shown: Sequence[DriftFinding]) -> list[Block]:
    """Each kind's heading, then one section per finding of that kind."""
    blocks = []
    for kind, heading in _KIND_HEADINGS:
        group = [f for f in shown if f.kind == kind]
        if not group:
            continue
        blocks.append(section(heading))
        for finding in group:
            resolved_at = view.resolved.get(finding.fingerprint)
            text = _finding_text(finding, view.report.occurred_at, resolved_at)
            live = resolved_at is None and view.superseded_at is None
            blocks.append(section(text, accessory=_ignore_button(view, finding) if live else None))
    return blocks


def suggests_ignore(finding: DriftFinding) -> bool:
    """Resolved again and again: the report suggests an ignore rule (one click)."""
    return finding.kind == "drift" and finding.resolved_recently >= REPEATS_BEFORE_SUGGESTION


def _ignore_button(view: DriftView, finding: DriftFinding) -> Block | None:
    """ "Ignore…" beside a finding; prefilled with its one attribute when it has one."""
    paths = sorted({a.path for a in finding.attributes if not a.ignored})
    suggested = suggests_ignore(finding)
    try:
        value = encode_ignore_value(
            view.report.state.name,
            finding.address,
            paths[0] if len(paths) == 1 else None,
            suggested=suggested,
        )
    except ValueError:
        return None
    return button(
        "Ignore… (suggested)" if suggested else "Ignore…",
        Action.DRIFT_IGNORE,
        value=value,
        style="primary" if suggested else None,
    )


def _unlisted_notes(view: DriftView, *, hidden: int) -> list[Block]:
    """What the message does not list: findings cut for size, and ignored resources."""
    report = view.report
    notes = []
    if hidden > 0:
        notes.append(
            context(
                f"{ELLIPSIS}and *{hidden} more* {plural(hidden, 'resource')}"
                + (f" — <{report.plan_url}|see the full plan>" if report.plan_url else "")
            )
        )
    ignored = [f.address for f in report.findings if not actionable(f)]
    if ignored:
        notes.append(
            context(
                f":see_no_evil: {len(ignored)} ignored {plural(len(ignored), 'resource')} "
                f"not shown (ignore rules): {code_list(ignored, MAX_IGNORED_PATHS_SHOWN)}"
            )
        )
    return notes


def _drift_buttons(view: DriftView, *, revert: bool = False) -> list[Block]:
    """ "I'm on it", "Accept into code" (when something drifted), "Open plan" and the
    re-scans, while the report is open and not superseded."""
    if view.all_resolved or view.superseded_at is not None:
        return []
    buttons = [
        button(
            "I'm on it" if view.claimed_by is None else "I'm on it instead",
            Action.DRIFT_CLAIM,
            value=encode_claim_value(view.report.state.name, view.open_fingerprints),
            style="primary" if view.claimed_by is None else None,
        )
    ]
    if any(f.kind == "drift" for f in view.report.findings if actionable(f)):
        value = encode_claim_value(view.report.state.name, view.open_fingerprints)
        if revert:
            buttons.append(button("Revert", Action.DRIFT_REVERT, value=value, style="danger"))
        buttons.append(button("Accept into code", Action.DRIFT_ACCEPT, value=value))
    if view.report.plan_url:
        buttons.append(button("Open plan", Action.DRIFT_OPEN_PLAN, url=view.report.plan_url))
    try:
        state = encode_rescan_value(view.report.state.name)
    except ValueError:
        return [actions(buttons)]
    buttons.append(button("Re-scan (refresh-only)", Action.DRIFT_RESCAN_REFRESH, value=state))
    buttons.append(button("Re-scan (full)", Action.DRIFT_RESCAN_FULL, value=state))
    return [actions(buttons)]


def _drift_headline(view: DriftView, tally: _Tally) -> str:
    where = state_label(view.report.state)
    if view.all_resolved:
        return f"All *{tally.count}* {tally.noun} in {where} match the code again."
    if tally.noun.startswith("resource"):
        verb = "differs" if tally.count == 1 else "differ"
        lines = [f"*{tally.count}* {tally.noun} in {where} {verb} from the code"]
    else:
        lines = [f"*{tally.count}* {tally.noun} between {where} and the code"]
    if tally.open_count < tally.total:
        lines[0] += f" ({tally.total - tally.open_count} of {tally.total} findings resolved since)"
    counts = []
    if tally.drift:
        counts.append(f":red_circle: *{tally.drift}* changed outside Terraform")
    if tally.pending:
        counts.append(f":large_yellow_circle: *{tally.pending}* not applied yet")
    if counts:
        lines.append("   ".join(counts))
    new = sum(1 for f in tally.findings if f.status == "new" and f.fingerprint not in view.resolved)
    if new and new < tally.open_count:
        lines.append(f":new: *{new}* new since the last scan")
    return "\n".join(lines)


def _drift_notification(view: DriftView, tally: _Tally) -> str:
    name = view.report.state.name
    if view.all_resolved:
        return f"Drift resolved in {name}: all {tally.count} {tally.noun} match"
    parts = []
    if tally.drift:
        parts.append(f"{tally.drift} changed outside Terraform")
    if tally.pending:
        parts.append(f"{tally.pending} not applied")
    detail = f" ({', '.join(parts)})" if parts else ""
    verb = {"resources": " differ", "resource": " differs"}.get(tally.noun, "")
    return f"Drift in {name}: {tally.count} {tally.noun}{verb}{detail}"


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
    if finding.ignore_expired:
        lines.append(f":alarm_clock: _{escape(finding.ignore_expired)}_")
    if suggests_ignore(finding):
        lines.append(
            f":repeat: _resolved {finding.resolved_recently} times in 30 days and back again: "
            "ignore it for a while (or fix it in code)?_"
        )
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
        paths = code_list([a.path for a in ignored], MAX_IGNORED_PATHS_SHOWN)
        lines.append(
            f"_{len(ignored)} ignored {plural(len(ignored), 'attribute')} not shown:_ {paths}"
        )
    return clip_mrkdwn("\n".join(lines), MAX_SECTION_TEXT)


def render_drift_still_open(view: DriftView) -> SlackMessage:
    """The thread reply when a later scan finds the same drift still there."""
    report = view.report
    open_set = set(view.open_fingerprints)
    # People count resources: a drift and its code change on one resource are one.
    open_count = len({f.address for f in report.findings if f.fingerprint in open_set})
    open_count += view.unlisted
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
    lines = _resolved_lines(findings, event.occurred_at)
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
    lines = _resolved_lines(event.resolved, event.occurred_at)
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


def _resolved_lines(findings: Sequence[ResolvedFinding], now: datetime) -> list[str]:
    """One bullet per resolved finding (what it was, how long it lasted), cut for size."""
    lines = [
        f"• `{code_text(f.address)}` — {_kind_words(f.kind)}, open {age(now - f.first_seen)}"
        for f in findings[:MAX_LIST_ITEMS]
    ]
    if len(findings) > MAX_LIST_ITEMS:
        lines.append(f"{ELLIPSIS}and {len(findings) - MAX_LIST_ITEMS} more")
    return lines


def _kind_words(kind: str) -> str:
    return "changed outside Terraform" if kind == "drift" else "code now applied"
