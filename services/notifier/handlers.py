"""What the notifier does with each event: which message, where, posted or updated.

Every handler is a plain ``async def`` over a typed event. It decides the channel (from the
routing table), the thread and the rendering; :class:`~services.notifier.delivery.Delivery`
makes each post happen once and keeps thread parents current. Every step is safe to repeat,
so an event redelivered at any point finishes the job without a second message.

Threads:

* **A batch run** is one parent message (the first of its events: the approval request,
  the start, or a refusal), updated with ``chat.update`` as the run moves on, so the
  channel reads as one line per run. The start after an approval, the finish (log tail)
  and a refusal are replies in its thread.
* **A drift report** is one parent per state and *set* of findings. The next day's scan
  finding the same set updates it (ages, suspects) and says so in the thread, rather than
  posting a copy; a different set (new drift appeared) gets a new message, and the old one
  is marked superseded. Claims and resolutions update the parent and reply in its thread.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass

from services.notifier.blocks import (
    SlackMessage,
    render_break_glass_notice,
    render_dead_letter,
    render_digest,
    render_drift,
    render_drift_accepted_reply,
    render_drift_claimed_reply,
    render_drift_resolved,
    render_drift_resolved_reply,
    render_drift_still_open,
    render_drift_superseded_reply,
    render_rerun_link_reply,
    render_rescan_reply,
    render_revert_outcome_reply,
    render_run,
    render_run_finished_reply,
    render_run_refused_reply,
    render_run_started_reply,
    render_scan_failed,
)
from services.notifier.delivery import Delivery
from services.notifier.progress import ProgressUpdates
from services.notifier.settings import Routes
from services.notifier.slack import Posted, PostMarker
from services.notifier.store import NotifierStore, ThreadKey, ThreadRecord
from services.notifier.views import (
    DriftView,
    RunEvent,
    RunView,
    drift_view_of,
    merge_run,
    run_view_of,
    with_claim,
    with_new_report,
    with_resolved,
    with_superseded,
)
from shared.events import (
    BatchApprovalRequested,
    BatchRunFinished,
    BatchRunProgress,
    BatchRunRefused,
    BatchRunStarted,
    DriftAccepted,
    DriftClaimed,
    DriftDetected,
    DriftResolved,
    DriftScanCompleted,
    DriftScanFailed,
    EventBase,
    MessageDeadLettered,
    StateRef,
)
from shared.worker import Handler

log = logging.getLogger(__name__)


@dataclass(eq=False)
class NotifierHandlers:
    """The notifier's handlers, over its delivery, records and routing table.

    Args:
        delivery: posts once, keeps thread parents current.
        store: the notifier's records (to find drift threads by fingerprint).
        routes: which channel each event goes to.
        ops_channel: where dead-lettered messages are announced (None: nowhere).
        drift_revert: draw the Revert button on drift reports (the catalog has drift.revert).
        progress: shows live progress in run messages (None: progress is dropped).
    """

    delivery: Delivery
    store: NotifierStore
    routes: Routes
    ops_channel: str | None = None
    progress: ProgressUpdates | None = None
    _: KW_ONLY
    drift_revert: bool = False

    def _render_drift(self, view: DriftView) -> SlackMessage:
        """A drift report, with the Revert button when the catalog has drift.revert."""
        return render_drift(view, revert=self.drift_revert)

    # ------------------------------------------------------------------ drift

    def _drift_channel(self, state: StateRef) -> str:
        """The state's own channel from toilkit.yaml, else the routing table's."""
        return state.channel or self.routes.for_state(state.name)

    async def on_drift_detected(self, event: DriftDetected) -> None:
        """Post a drift report, or update the one showing the same set of findings."""
        state = event.state.name
        view = drift_view_of(event)
        if not view.fingerprints:
            log.info("notifier: %s has only ignored findings; nothing to post", state)
            return
        key = ThreadKey.drift(state, view.set_id)
        # Read before pointing the findings at this report: they may belong to older ones.
        earlier = await self.store.drift_pointers(state, view.fingerprints)
        record, created = await self.delivery.open_thread(
            key,
            event_id=event.event_id,
            channel=self._drift_channel(event.state),
            view=view,
            render=self._render_drift,
        )
        if not created and record.owner != event.event_id:
            merged = await self.delivery.update_thread(
                key, DriftView, lambda v: with_new_report(v, event), self._render_drift
            )
            await self._reply(
                event, "still-open", merged.record, render_drift_still_open(merged.after)
            )
        for old_set in sorted({s for s in earlier.values() if s != view.set_id}):
            await self._supersede(ThreadKey.drift(state, old_set), event)
        await self.store.point_drift(state, view.fingerprints, view.set_id)

    async def _supersede(self, key: ThreadKey, newer: DriftDetected) -> None:
        if await self.store.get_thread(key) is None:
            return  # expired
        merged = await self.delivery.update_thread(
            key,
            DriftView,
            lambda v: v if v.all_resolved else with_superseded(v, newer.occurred_at),
            self._render_drift,
        )
        if merged.after.superseded_at is not None and not merged.after.all_resolved:
            await self._reply(
                newer, f"superseded#{key.sk}", merged.record, render_drift_superseded_reply(newer)
            )

    async def on_drift_resolved(self, event: DriftResolved) -> None:
        """Mark findings resolved in their reports and say so in each thread."""
        state = event.state.name
        pointers = await self.store.drift_pointers(state, (r.fingerprint for r in event.resolved))
        by_report = defaultdict(list)
        unknown = []
        for finding in event.resolved:
            set_id = pointers.get(finding.fingerprint)
            if set_id is None:
                unknown.append(finding)
            else:
                by_report[set_id].append(finding)
        for set_id, findings in sorted(by_report.items()):
            key = ThreadKey.drift(state, set_id)
            if await self.store.get_thread(key) is None:
                unknown.extend(findings)
                continue
            fingerprints = {f.fingerprint for f in findings}
            merged = await self.delivery.update_thread(
                key,
                DriftView,
                lambda v, fps=fingerprints: with_resolved(v, fps, event.occurred_at),  # type: ignore[misc]
                self._render_drift,
            )
            reply = render_drift_resolved_reply(event, findings, merged.after.all_resolved)
            await self._reply(event, f"resolved#{set_id}", merged.record, reply)
        if unknown:
            # Reported before the notifier kept records, or the records expired.
            standalone = event.model_copy(update={"resolved": tuple(unknown)})
            await self.delivery.post_once(
                PostMarker(event.event_id, "resolved"),
                self._drift_channel(event.state),
                render_drift_resolved(standalone),
            )

    async def on_drift_claimed(self, event: DriftClaimed) -> None:
        """Show who took the drift on the report(s) and in their threads."""
        pointers = await self.store.drift_pointers(event.state, event.fingerprints)
        if not pointers:
            log.warning(
                "notifier: %s claimed drift in %s that no report shows; the next scan's "
                "report will show the claim",
                event.claimed_by.name,
                event.state,
            )
            return
        for set_id in sorted(set(pointers.values())):
            key = ThreadKey.drift(event.state, set_id)
            if await self.store.get_thread(key) is None:
                continue
            merged = await self.delivery.update_thread(
                key,
                DriftView,
                lambda v: with_claim(v, event.claimed_by, event.occurred_at),
                self._render_drift,
            )
            await self._reply(
                event,
                f"claimed#{set_id}",
                merged.record,
                render_drift_claimed_reply(event.claimed_by),
            )

    async def on_drift_accepted(self, event: DriftAccepted) -> None:
        """The diff and branch of an "Accept into code", in the drift message's thread."""
        await self._reply_to_drift(
            event, event.state, event.fingerprints, "accepted", render_drift_accepted_reply(event)
        )

    async def _reply_to_drift(
        self,
        event: EventBase,
        state: str,
        fingerprints: tuple[str, ...],
        role: str,
        message: SlackMessage,
    ) -> None:
        """Reply in the threads of the reports showing these findings; in the state's
        channel when no report shows them any more (superseded, expired)."""
        pointers = await self.store.drift_pointers(state, fingerprints)
        threads = []
        for set_id in sorted(set(pointers.values())):
            record = await self.store.get_thread(ThreadKey.drift(state, set_id))
            if record is not None and record.ts is not None:
                threads.append((set_id, record))
        if not threads:
            await self.delivery.post_once(
                PostMarker(event.event_id, role), self.routes.for_state(state), message
            )
            return
        for set_id, record in threads:
            await self._reply(event, f"{role}#{set_id}", record, message)

    async def on_drift_scan_failed(self, event: DriftScanFailed) -> None:
        await self.delivery.post_once(
            PostMarker(event.event_id, "message"),
            self._drift_channel(event.state),
            render_scan_failed(event),
        )

    async def on_drift_scan_completed(self, event: DriftScanCompleted) -> None:
        if event.reply_channel and event.reply_thread_ts:
            # A Re-scan button asked: the answer goes to that report's thread.
            await self.delivery.post_once(
                PostMarker(event.event_id, "rescan"),
                event.reply_channel,
                render_rescan_reply(event),
                thread=Posted(event.reply_channel, event.reply_thread_ts),
            )
            return
        await self.delivery.post_once(
            PostMarker(event.event_id, "message"), self.routes.default, render_digest(event)
        )

    # ------------------------------------------------------------------ runs

    async def on_run_event(self, event: RunEvent) -> None:
        """Post or update the run's parent; add the event's details to its thread."""
        key = ThreadKey.run(event.run_id)
        record, created = await self.delivery.open_thread(
            key,
            event_id=event.event_id,
            channel=self.routes.for_command(event.command),
            view=run_view_of(event),
            render=render_run,
        )
        before: RunView | None = None  # None: this event's view is the parent's first
        first = created or record.owner == event.event_id
        if first and not isinstance(event, BatchRunFinished) and event.rerun_of:
            await self._link_rerun(event.rerun_of, event)
        if isinstance(event, BatchRunStarted) and event.break_glass:
            # The approvers' own message, apart from the run's thread: they were skipped.
            channel = event.break_glass_channel or self.routes.for_command(event.command)
            await self.delivery.post_once(
                PostMarker(event.event_id, "break-glass"),
                channel,
                render_break_glass_notice(event),
            )
        if not first:
            merged = await self.delivery.update_thread(
                key, RunView, lambda v: merge_run(v, event), render_run
            )
            before, record = merged.before, merged.record
        reply = _run_reply(event, before)
        if reply is not None:
            await self._reply(event, "reply", record, reply)
        if isinstance(event, BatchRunFinished | BatchRunRefused) and event.reverts is not None:
            drift = event.reverts
            await self._reply_to_drift(
                event, drift.state, drift.fingerprints, "revert", render_revert_outcome_reply(event)
            )

    async def on_run_progress(self, event: BatchRunProgress) -> None:
        """Show a running run's newest log tail and elapsed time in its message."""
        if self.progress is not None:
            await self.progress.on_run_progress(event)

    async def _link_rerun(
        self, earlier: str, event: BatchApprovalRequested | BatchRunStarted | BatchRunRefused
    ) -> None:
        """Say in the earlier run's thread that it was run again, and as which run."""
        thread = await self.store.get_thread(ThreadKey.run(earlier))
        if thread is None or thread.ts is None:
            log.info("notifier: run %s re-runs %s, whose thread is gone", event.run_id, earlier)
            return
        await self._reply(
            event, "rerun-link", thread, render_rerun_link_reply(event.run_id, event.requested_by)
        )

    # ------------------------------------------------------------------ operations

    async def on_message_dead_lettered(self, event: MessageDeadLettered) -> None:
        """Tell the ops channel what went to a DLQ, why, and how to replay it (once)."""
        if self.ops_channel is None:
            log.info(
                "notifier: %s went to %s (no ops channel set: not posted)",
                event.message_id,
                event.dlq,
            )
            return
        await self.delivery.post_once(
            PostMarker(event.event_id, "message"), self.ops_channel, render_dead_letter(event)
        )

    # ------------------------------------------------------------------ helpers

    async def _reply(
        self, event: EventBase, role: str, thread: ThreadRecord, message: SlackMessage
    ) -> None:
        if thread.ts is None:  # pragma: no cover - open_thread/update_thread return posted threads
            raise AssertionError("a reply needs a posted parent")
        await self.delivery.post_once(
            PostMarker(event.event_id, role),
            thread.channel,
            message,
            thread=Posted(thread.channel, thread.ts),
        )


def _run_reply(event: RunEvent, before: RunView | None) -> SlackMessage | None:
    """The thread reply a run event adds, if any.

    Args:
        event: the event.
        before: what the parent showed before the event; None when the event posted it.

    A finish always replies (its log tail and details belong in the thread). A start is
    news only after an approval request (otherwise it is the parent, or it arrived after
    the finish and just fills the parent in); a refusal is news when a parent came first.
    """
    if isinstance(event, BatchRunFinished):
        return render_run_finished_reply(event)
    if before is None:
        return None
    if isinstance(event, BatchRunStarted) and before.phase == "awaiting_approval":
        return render_run_started_reply(event)
    if isinstance(event, BatchRunRefused):
        return render_run_refused_reply(event)
    return None


def build_handlers(deps: NotifierHandlers) -> Mapping[type[EventBase], Handler]:
    """Event class -> handler, for the worker."""
    return {
        DriftDetected: deps.on_drift_detected,
        DriftResolved: deps.on_drift_resolved,
        DriftClaimed: deps.on_drift_claimed,
        DriftAccepted: deps.on_drift_accepted,
        DriftScanFailed: deps.on_drift_scan_failed,
        DriftScanCompleted: deps.on_drift_scan_completed,
        BatchApprovalRequested: deps.on_run_event,
        BatchRunStarted: deps.on_run_event,
        BatchRunFinished: deps.on_run_event,
        BatchRunRefused: deps.on_run_event,
        BatchRunProgress: deps.on_run_progress,
        MessageDeadLettered: deps.on_message_dead_lettered,
    }
