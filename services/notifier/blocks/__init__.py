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

The drawing is split by what it draws: :mod:`.drift` (a drift report and its thread),
:mod:`.scans` (a failed scan, the digest), :mod:`.runs` (batch runs), :mod:`.ops` (a
message dead-lettered, for the ops channel), with the text pieces
they share in :mod:`.text` and the message itself in :mod:`.message`.
"""

from services.notifier.blocks.accept import (
    render_drift_accepted_reply,
    render_revert_outcome_reply,
)
from services.notifier.blocks.drift import (
    render_drift,
    render_drift_claimed_reply,
    render_drift_resolved,
    render_drift_resolved_reply,
    render_drift_still_open,
    render_drift_superseded_reply,
)
from services.notifier.blocks.message import SlackMessage
from services.notifier.blocks.ops import render_dead_letter
from services.notifier.blocks.runs import (
    render_break_glass_notice,
    render_rerun_link_reply,
    render_run,
    render_run_finished_reply,
    render_run_refused_reply,
    render_run_started_reply,
)
from services.notifier.blocks.scans import render_digest, render_rescan_reply, render_scan_failed

__all__ = [
    "SlackMessage",
    "render_break_glass_notice",
    "render_dead_letter",
    "render_digest",
    "render_drift",
    "render_drift_accepted_reply",
    "render_drift_claimed_reply",
    "render_drift_resolved",
    "render_drift_resolved_reply",
    "render_drift_still_open",
    "render_drift_superseded_reply",
    "render_rerun_link_reply",
    "render_rescan_reply",
    "render_revert_outcome_reply",
    "render_run",
    "render_run_finished_reply",
    "render_run_refused_reply",
    "render_run_started_reply",
    "render_scan_failed",
]
