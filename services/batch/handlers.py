"""The batch service's handlers: one async function per command event.

* ``BatchRequested``: record the request, validate and authorize it again (the gateway
  is never trusted), then ask for approval (after its preview, when the command has one:
  :mod:`services.batch.previews`) or start it.
* ``BatchApproved`` / ``BatchRejected``: count an approval (never the requester's, never
  after the expiry, never on a preview whose catalog entry or values changed since) or
  end the request.
* ``BatchCancelRequested``: withdraw a waiting request or stop a running one.

Every decision is written to the run's audit trail. A decision that ends a request is
announced with ``BatchRunRefused``, whose reason says what to do next.

Handlers take typed events and a :class:`BatchContext`; they never see boto or Slack.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC

from services.batch import lifecycle, outcomes
from services.batch.listed import listed_value_refusal
from services.batch.previews import Previews
from services.batch.runners.base import RunOutcome
from services.batch.schedules import fires_at
from services.batch.steps import RunSteps
from services.batch.store import AuditAction, RunStore
from services.batch.supervisor import RunSupervisor
from shared.authz import (
    approval_refusal,
    authorization_refusal,
    break_glass_refusal,
    may_cancel,
    rejection_refusal,
)
from shared.catalog import (
    Catalog,
    GroupDirectory,
    ValidatedRequest,
    validate_request,
)
from shared.clock import Clock
from shared.errors import TransientError
from shared.events import (
    Actor,
    BatchApproved,
    BatchCancelRequested,
    BatchRejected,
    BatchRequested,
    EventBase,
    RefusalStage,
)
from shared.options_fetch import OptionsRefresher
from shared.publishing import EventPublisher
from shared.state_table.keys import sortable_time
from shared.state_table.runs import RunRecord
from shared.worker import Handler

log = logging.getLogger(__name__)


@dataclass
class BatchContext:
    """What the handlers work with, built once by :func:`services.batch.service.build_batch`."""

    catalog: Catalog
    runs: RunStore
    steps: RunSteps
    supervisor: RunSupervisor
    publisher: EventPublisher
    directory: GroupDirectory
    clock: Clock
    #: The lists of listed choices (None: the catalog has none).
    options: OptionsRefresher | None = None

    @property
    def previews(self) -> Previews:
        return self.supervisor.previews


def build_handlers(ctx: BatchContext) -> Mapping[type[EventBase], Handler]:
    """The event type -> handler map the worker runs."""
    return {
        BatchRequested: functools.partial(on_batch_requested, ctx),
        BatchApproved: functools.partial(on_batch_approved, ctx),
        BatchRejected: functools.partial(on_batch_rejected, ctx),
        BatchCancelRequested: functools.partial(on_batch_cancel_requested, ctx),
    }


def _actor_label(actor: Actor) -> str:
    return f"{actor.name} ({actor.slack_user_id})" if actor.slack_user_id else actor.name


# --------------------------------------------------------------------------- requests

#: The fields of a ``BatchRequested`` its run record keeps as they are (same name, same
#: meaning); its ``parameters`` are marked sensitive by the catalog, its ``event_id`` is the
#: record's ``request_event_id``.
REQUEST_FIELDS_KEPT: set[str] = {
    "run_id",
    "command",
    "environment",
    "reason",
    "requested_by",
    "channel_id",
    "rerun_of",
    "reverts",
    "break_glass",
    "scheduled_for",
}


async def on_batch_requested(ctx: BatchContext, event: BatchRequested) -> None:
    """A new request: record it, check it, then ask for approval or start it."""
    # The catalog, not the request, says which values are secret.
    command = ctx.catalog.command(event.command)
    secret = command.sensitive_parameters if command is not None else frozenset()
    record = RunRecord(
        **event.model_dump(include=REQUEST_FIELDS_KEPT),
        request_event_id=event.event_id,
        parameters=tuple(
            p.model_copy(update={"sensitive": True}) if p.name in secret else p
            for p in event.parameters
        ),
        requested_at=ctx.clock(),
    )
    if await ctx.runs.create(record):
        shown = ", ".join(f"{p.name}={p.value!r}" for p in record.shown_parameters())
        await ctx.runs.audit(
            record.run_id,
            "requested",
            f"{record.command} in {record.environment} ({shown or 'no parameters'})"
            + (f"; reason: {record.reason}" if record.reason else "")
            + (f"; runs {record.rerun_of} again" if record.rerun_of else "")
            + ("; break-glass (without approval)" if record.break_glass else ""),
            actor=record.requested_by,
            event_id=event.event_id,
        )
        await _decide(ctx, record, event.event_id)
        return
    existing = await ctx.runs.get(event.run_id)
    if existing is None:
        raise TransientError(f"run {event.run_id} exists but cannot be read yet")
    if existing.request_event_id != event.event_id:
        await ctx.runs.audit(
            existing.run_id,
            "duplicate",
            f"another request (event {event.event_id}) for this run id was ignored",
            actor=event.requested_by,
            event_id=event.event_id,
        )
        return
    await _resume_request(ctx, existing, event.event_id)


async def _resume_request(ctx: BatchContext, record: RunRecord, event_id: str) -> None:
    """The same request again (redelivered after an interrupted handling): carry on from
    where it stands, never start it a second time."""
    log.info("run %s: request redelivered while %s", record.run_id, record.status)
    if record.status == "received":
        await _decide(ctx, record, event_id)
    elif record.status == "starting" and record.starting_by == event_id:
        await ctx.supervisor.watch(await ctx.steps.recover_start(record, event_id))
    elif record.status == "previewing" and record.preview_by == event_id:
        if record.preview_ref is None:
            # Interrupted before the preview started: preview it from the start.
            again, _ = await ctx.runs.update(record.run_id, lifecycle.abandon_preview)
            if again is not None and again.status == "received":
                await _decide(ctx, again, event_id)
        # Started: the supervisor (or, in Lambda, the execution's end) acts on its end.
    else:
        # Its event may not have gone out before the interruption; the same event id
        # makes announcing it twice harmless.
        event = outcomes.announcement(record)
        if event is not None:
            await ctx.publisher.publish(event)


async def _decide(ctx: BatchContext, record: RunRecord, event_id: str) -> None:
    request = ctx.steps.revalidate(record)
    if isinstance(request, str):
        await ctx.steps.refuse(record, "validation", request, event_id=event_id)
        return
    unlisted = await listed_value_refusal(ctx.options, request)
    if unlisted is not None:
        await ctx.steps.refuse(record, "validation", unlisted, event_id=event_id)
        return
    if record.scheduled_for is not None:
        if not await _schedule_allows(ctx, record, request, event_id):
            return
    else:
        refusal = await authorization_refusal(
            request, record.requested_by.slack_user_id, ctx.directory
        )
        if refusal is not None:
            await ctx.steps.refuse(record, "authorization", refusal, event_id=event_id)
            return
        await ctx.runs.audit(
            record.run_id,
            "authorized",
            f"{record.requested_by.slack_user_id} may run {record.command} in {record.environment}",
            event_id=event_id,
        )
    policy = request.policy.approval
    if policy is None:
        await ctx.supervisor.watch(await ctx.steps.start(record, request, event_id))
        return
    if record.break_glass:
        await _break_glass(ctx, record, request, event_id)
        return
    if request.command.preview is not None:
        await ctx.supervisor.watch_preview(await ctx.previews.start(record, request, event_id))
        return
    await ctx.steps.ask_approval(record, request, event_id)


async def _schedule_allows(
    ctx: BatchContext, record: RunRecord, request: ValidatedRequest, event_id: str
) -> bool:
    """A scheduled request: the catalog's own schedule with its own values, and not while
    the schedule's previous run still runs (then it is skipped, with a note)."""
    schedule = ctx.catalog.schedule(record.command, record.environment)
    expected = validate_request(
        ctx.catalog, record.command, record.environment, schedule.parameters if schedule else {}
    )
    if (
        schedule is None
        or record.requested_by.slack_user_id is not None
        or not isinstance(expected, ValidatedRequest)
        or expected.values != request.values
    ):
        reason = (
            f"the catalog schedules no run of {record.command} in {record.environment} "
            "with these values"
        )
        await ctx.steps.refuse(record, "authorization", reason, event_id=event_id)
        return False
    assert record.scheduled_for is not None
    if not fires_at(schedule, record.scheduled_for):
        reason = (
            f"scheduled for {sortable_time(record.scheduled_for)}, which is not a time the "
            f"catalog's schedule {schedule.cron} ({schedule.timezone}) fires at"
        )
        await ctx.steps.refuse(record, "schedule", reason, event_id=event_id)
        return False
    previous_id = await ctx.runs.last_scheduled_run(record.command, record.environment)
    previous = await ctx.runs.get(previous_id) if previous_id not in (None, record.run_id) else None
    if previous is not None and not previous.final:
        reason = (
            f"skipped: the previous scheduled run {previous.run_id} is still "
            f"{previous.status.replace('_', ' ')}"
        )
        await ctx.steps.refuse(record, "schedule", reason, event_id=event_id)
        return False
    await ctx.runs.set_last_scheduled_run(record.command, record.environment, record.run_id)
    await ctx.runs.audit(
        record.run_id,
        "scheduled",
        f"due {sortable_time(record.scheduled_for)} by the catalog's schedule "
        f"{schedule.cron} ({schedule.timezone})",
        event_id=event_id,
    )
    return True


async def _break_glass(
    ctx: BatchContext, record: RunRecord, request: ValidatedRequest, event_id: str
) -> None:
    """Start without approval if the catalog lets this person break glass here today."""
    user = record.requested_by.slack_user_id or ""
    day = ctx.clock().astimezone(UTC).date()
    used = await ctx.runs.break_glass_runs(user, day)
    refusal = await break_glass_refusal(
        request, user, record.reason, ctx.directory, used_today=len(used - {record.run_id})
    )
    policy = request.policy.break_glass
    if refusal is None and policy is not None:
        limit = policy.max_per_person_per_day
        if not await ctx.runs.claim_break_glass(user, day, record.run_id, limit=limit):
            refusal = f"{user} reached the break-glass limit of {limit} per day (UTC) just now"
    if refusal is not None or policy is None:
        await ctx.steps.refuse(
            record, "authorization", refusal or "no break-glass", event_id=event_id
        )
        return
    marked, _ = await ctx.runs.update(
        record.run_id,
        functools.partial(lifecycle.skip_approval, notify_channel=policy.notify_channel),
    )
    if marked is None or marked.status != "received":
        return
    await ctx.runs.audit(
        record.run_id,
        "break_glass",
        f"started without approval (break-glass {len(used | {record.run_id})} of "
        f"{policy.max_per_person_per_day} today); reason: {record.reason}",
        actor=record.requested_by,
        event_id=event_id,
    )
    await ctx.supervisor.watch(await ctx.steps.start(marked, request, event_id))


# --------------------------------------------------------------------------- approvals


@dataclass(frozen=True)
class _Decision:
    """One person's event about one run (an approval, a rejection, a cancel): what it
    decides is written to the run's audit trail in that person's name and the event's."""

    ctx: BatchContext
    record: RunRecord
    actor: Actor
    event_id: str

    async def note(self, action: AuditAction, detail: str) -> None:
        """Append ``action`` with ``detail`` to the run's audit trail."""
        await self.ctx.runs.audit(
            self.record.run_id, action, detail, actor=self.actor, event_id=self.event_id
        )

    async def refuse(self, action: AuditAction, stage: RefusalStage, reason: str) -> None:
        """Note ``reason`` as ``action``, then end the request with it, decided by the actor."""
        await self.note(action, reason)
        await self.ctx.steps.refuse(
            self.record, stage, reason, decided_by=self.actor, event_id=self.event_id
        )


async def _known_run(ctx: BatchContext, run_id: str, what: str) -> RunRecord:
    record = await ctx.runs.get(run_id)
    if record is None:
        # Standard SQS does not keep order: the request may still be on its way.
        raise TransientError(f"{what} for run {run_id}, which is not known (yet)")
    return record


async def on_batch_approved(ctx: BatchContext, event: BatchApproved) -> None:
    """An approval: counted if it is in time, from an approver, and not the requester's.

    A self-approval or one from someone who is not an approver ends the request (fail
    closed): the gateway never offers either, so one that arrives here is a bypass.
    """
    record = await _known_run(ctx, event.run_id, "an approval")
    approver = event.approved_by
    decision = _Decision(ctx, record, approver, event.event_id)
    if record.status == "starting" and record.starting_by == event.event_id:
        await ctx.supervisor.watch(await ctx.steps.recover_start(record, event.event_id))
        return
    now = ctx.clock()
    if record.status != "awaiting_approval":
        await _late_approval(decision)
        return
    assert record.approval is not None
    if now >= record.approval.expires_at:
        await _expire(ctx, record)
        expired = await _known_run(ctx, record.run_id, "an approval")
        await _late_approval(replace(decision, record=expired))
        return
    request = ctx.steps.revalidate(record)
    if isinstance(request, str):
        await ctx.steps.refuse(record, "validation", request, event_id=event.event_id)
        return
    stale = ctx.previews.refusal(record, request)
    if stale is not None:
        await decision.refuse("approval_refused", "preview", stale)
        return
    policy = request.policy.approval
    if policy is not None:
        refusal = await approval_refusal(
            policy, record.requested_by.slack_user_id, approver.slack_user_id, ctx.directory
        )
        if refusal is not None:
            await decision.refuse("approval_refused", "approval", refusal)
            return

    counted, changed = await ctx.runs.update(
        record.run_id, functools.partial(lifecycle.count_approval, approver=approver)
    )
    if counted is None or not changed:
        await decision.note(
            "approval_refused", f"{_actor_label(approver)} approved already or the run moved on"
        )
        return
    assert counted.approval is not None
    have, need = len(counted.approval.approvals), counted.approval.min_approvals
    await decision.note("approved", f"approval {have} of {need}")
    if not lifecycle.approvals_complete(counted):
        return
    await ctx.runs.remove_pending_approval(record.run_id, counted.approval.expires_at)
    await ctx.supervisor.watch(await ctx.steps.start(counted, request, event.event_id))


async def _late_approval(approval: _Decision) -> None:
    """An approval for a run that no longer waits for one."""
    record, approver = approval.record, approval.actor
    if record.status == "refused" and record.approval is not None:
        reason = (
            f"the approval by {_actor_label(approver)} came after the request was closed "
            f"({record.refusal_reason}); nothing runs — request it again"
        )
        await approval.note("approval_refused", reason)
        late = record.model_copy(
            update={"refusal_stage": "approval", "refusal_reason": reason, "decided_by": approver}
        )
        # Its own event id: the approver is told, the first refusal stays as it was.
        await approval.ctx.publisher.publish(
            outcomes.refused(late, kind=f"late-approval/{approval.event_id}")
        )
        return
    await approval.note(
        "approval_refused",
        f"the run is {record.status}; the approval by {_actor_label(approver)} changes nothing",
    )


async def on_batch_rejected(ctx: BatchContext, event: BatchRejected) -> None:
    """A rejection by an approver (or the requester withdrawing) ends the request."""
    record = await _known_run(ctx, event.run_id, "a rejection")
    rejector = event.rejected_by
    decision = _Decision(ctx, record, rejector, event.event_id)
    if record.status != "awaiting_approval" or record.approval is None:
        await decision.note("rejection_ignored", f"the run is {record.status}")
        return
    command = ctx.catalog.command(record.command)
    environment = command.environments.get(record.environment) if command else None
    policy = environment.approval if environment is not None else None
    refusal = await rejection_refusal(
        policy, record.requested_by.slack_user_id, rejector.slack_user_id, ctx.directory
    )
    if refusal is not None:
        await decision.note(
            "rejection_ignored",
            f"{_actor_label(rejector)} is neither the requester nor an approver",
        )
        return
    reason = f"rejected by {_actor_label(rejector)}" + (f": {event.reason}" if event.reason else "")
    await decision.refuse("rejected", "approval", reason)


async def _expire(ctx: BatchContext, record: RunRecord) -> None:
    assert record.approval is not None
    reason = (
        f"nobody approved it before {sortable_time(record.approval.expires_at)} "
        f"({len(record.approval.approvals)} of {record.approval.min_approvals} approvals); "
        "request it again"
    )
    await ctx.runs.audit(record.run_id, "expired", reason)
    await ctx.steps.refuse(record, "approval", reason)


async def expire_overdue_approvals(ctx: BatchContext) -> int:
    """Close the requests whose approval window has passed; returns how many."""
    now = ctx.clock()
    closed = 0
    for run_id in await ctx.runs.overdue_approvals(now):
        record = await ctx.runs.get(run_id)
        if record is None or record.approval is None:
            continue
        if record.status == "awaiting_approval" and now >= record.approval.expires_at:
            await _expire(ctx, record)
            closed += 1
        else:
            await ctx.runs.remove_pending_approval(run_id, record.approval.expires_at)
    return closed


# --------------------------------------------------------------------------- cancel


async def on_batch_cancel_requested(ctx: BatchContext, event: BatchCancelRequested) -> None:
    """Withdraw a waiting request or stop a running run (requester, approvers, or anyone
    allowed to run that command there)."""
    record = await _known_run(ctx, event.run_id, "a cancel")
    actor = event.requested_by
    decision = _Decision(ctx, record, actor, event.event_id)
    if record.final:
        await decision.note("cancel_refused", f"the run is already {record.status}")
        return
    allowed = await may_cancel(ctx.catalog, record, actor.slack_user_id, ctx.directory)
    if not allowed:
        await decision.note(
            "cancel_refused",
            f"{_actor_label(actor)} is not the requester, an approver, or allowed to run "
            f"{record.command} in {record.environment}",
        )
        return
    await decision.note("cancel_requested", f"while {record.status}")
    noted, _ = await ctx.runs.update(
        record.run_id, functools.partial(lifecycle.note_cancel, actor=actor)
    )
    if noted is None or noted.final:
        return
    withdrawn = f"withdrawn by {_actor_label(actor)}"
    if noted.status == "previewing":
        await ctx.supervisor.cancel_preview(noted.run_id)
        await ctx.steps.finish(noted.run_id, _cancelled(f"{withdrawn} during its preview"))
    elif noted.status in lifecycle.WAITING_STATES:
        if noted.approval is not None:
            await ctx.runs.remove_pending_approval(noted.run_id, noted.approval.expires_at)
        await ctx.steps.finish(noted.run_id, _cancelled(f"{withdrawn} before it started"))
    elif noted.status == "running" and not await ctx.supervisor.cancel_running(noted):
        await decision.note(
            "cancel_refused", f"it runs in another batch process ({noted.owner}); cancel it there"
        )
    # "starting": the supervisor cancels it as soon as it is under way.


def _cancelled(error: str) -> RunOutcome:
    """The outcome of a run withdrawn before it ran: nothing ran, so it took no time."""
    return RunOutcome(status="cancelled", duration_seconds=0.0, error=error)
