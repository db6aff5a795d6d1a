"""A batch run's lifecycle: every change of its stored state, as a pure function.

Each transition takes the run as it is stored *now* and returns the run as it should be
stored, or ``None`` when the transition does not apply from that state (the illegal
moves). :meth:`services.batch.store.RunStore.update` applies one with a conditional write
and re-reads on a race, so of two processes making the same move only one wins, and the
loser sees ``None`` or "unchanged" and does nothing. The handlers and the run steps
decide *which* transition to make; this module alone says *what* it does to the record::

    received ──begin_preview──> previewing ──fail_preview──> refused
       │   ^                            │
       │   └──────abandon_preview───────┤
       │                                │ await_approval (the preview succeeded)
       │                                v
       ├───────await_approval──> awaiting_approval ──count_approval──> awaiting_approval
       │                              │
       └───────────claim_start────────┴──> starting ──mark_running──> running
                                              │                          │
               (back where it was) <──unclaim─┘                       finish
                                                                         v
    any state that is not final ──refuse──> refused      succeeded | failed | cancelled
                                 ──finish──> (an outcome)                | timed_out

``note_cancel`` records who asked for a cancel on any run that has not ended; the
the supervisor acts on it once the run is under way.
"""

from __future__ import annotations

from datetime import datetime

from services.batch.runners.base import RunOutcome, StartedRun
from shared.events import Actor, PreviewResult, RefusalStage, RunParameter
from shared.state_table.runs import ApprovalState, RunRecord, RunState

#: Where a run waits before it starts; a start may be claimed from either.
WAITING_STATES: frozenset[RunState] = frozenset({"received", "awaiting_approval"})


def await_approval(
    current: RunRecord, approval: ApprovalState, preview: PreviewResult | None = None
) -> RunRecord | None:
    """A request now waits for ``approval``: a received one without a preview, or one
    whose ``preview`` succeeded (with the fingerprint recorded when it began)."""
    if current.status == "received" and preview is None:
        return current.model_copy(update={"status": "awaiting_approval", "approval": approval})
    if (
        current.status == "previewing"
        and preview is not None
        and preview.status == "succeeded"
        and preview.fingerprint == current.preview_fingerprint
    ):
        return current.model_copy(
            update={"status": "awaiting_approval", "approval": approval, "preview": preview}
        )
    return None


def begin_preview(
    current: RunRecord, *, event_id: str, fingerprint: str, owner: str
) -> RunRecord | None:
    """A received request's preview is run by the handling of ``event_id`` in process
    ``owner``, for the catalog entry and values whose digest is ``fingerprint``."""
    if current.status != "received":
        return None
    return current.model_copy(
        update={
            "status": "previewing",
            "preview_by": event_id,
            "preview_fingerprint": fingerprint,
            "owner": owner,
        }
    )


def preview_started(current: RunRecord, started: StartedRun) -> RunRecord | None:
    """The runner started the preview: record where (to wait for it after a restart)."""
    if current.status != "previewing" or current.preview_ref is not None:
        return None
    return current.model_copy(
        update={"preview_ref": started.ref, "preview_started_at": started.started_at}
    )


def abandon_preview(current: RunRecord) -> RunRecord | None:
    """The preview could not run now (a transient error): the request is received again,
    for the retried event to preview it."""
    if current.status != "previewing":
        return None
    return current.model_copy(
        update={
            "status": "received",
            "preview_by": None,
            "preview_fingerprint": None,
            "preview_ref": None,
            "preview_started_at": None,
        }
    )


def fail_preview(current: RunRecord, preview: PreviewResult, now: datetime) -> RunRecord | None:
    """The preview failed, timed out or was stopped: the request ends without asking
    anyone to approve it (the requester sees the preview's tail)."""
    if current.status != "previewing" or preview.status == "succeeded":
        return None
    if preview.status == "timed_out":
        reason = "the preview did not end within its time limit"
    elif preview.exit_code is not None:
        reason = f"the preview exited with status {preview.exit_code}"
    else:
        reason = "the preview did not run to its end"
    if preview.error:
        reason += f" ({preview.error})"
    return current.without_secrets().model_copy(
        update={
            "status": "refused",
            "refusal_stage": "preview",
            "refusal_reason": reason + "; nothing was asked of the approvers",
            "preview": preview,
            "finished_at": now,
        }
    )


def count_approval(current: RunRecord, approver: Actor) -> RunRecord | None:
    """One more approval; ``None`` if the run no longer waits or ``approver`` counted already.

    Who *may* approve is decided before (:func:`shared.authz.approval_refusal`).
    """
    if current.status != "awaiting_approval" or current.approval is None:
        return None
    if approver.slack_user_id in {a.slack_user_id for a in current.approval.approvals}:
        return None
    approval = current.approval.model_copy(
        update={"approvals": (*current.approval.approvals, approver)}
    )
    return current.model_copy(update={"approval": approval, "decided_by": approver})


def approvals_complete(record: RunRecord) -> bool:
    """Whether the run has all the approvals it needs."""
    approval = record.approval
    return approval is not None and len(approval.approvals) >= approval.min_approvals


def claim_start(current: RunRecord, *, event_id: str, owner: str, runner: str) -> RunRecord | None:
    """The start is claimed by the handling of ``event_id`` in process ``owner``.

    Only a waiting run can be claimed: a run being started, running or ended never is.
    """
    if current.status not in WAITING_STATES:
        return None
    return current.model_copy(
        update={"status": "starting", "starting_by": event_id, "owner": owner, "runner": runner}
    )


def unclaim(current: RunRecord, back_to: RunState) -> RunRecord | None:
    """Nothing started after all: the run waits again in ``back_to`` for a retried start."""
    if current.status != "starting" or back_to not in WAITING_STATES:
        return None
    return current.model_copy(update={"status": back_to, "starting_by": None})


def mark_running(
    current: RunRecord, started: StartedRun, shown: tuple[RunParameter, ...]
) -> RunRecord | None:
    """The runner started it: record where, and keep only ``shown`` parameters at rest
    (the defaults filled in; the process has the secret values now)."""
    if current.status != "starting":
        return None
    return current.model_copy(
        update={
            "status": "running",
            "runner": started.runner,
            "runner_ref": started.ref,
            "log_url": started.log_url,
            "started_at": started.started_at,
            "parameters": shown,
            "sensitive_dropped": True,
        }
    )


def skip_approval(current: RunRecord, *, notify_channel: str | None) -> RunRecord | None:
    """A break-glass request allowed to start without approval (the approvers are told in
    ``notify_channel``, or the run's own channel when None)."""
    if current.status != "received" or not current.break_glass:
        return None
    return current.model_copy(
        update={"approval_skipped": True, "break_glass_channel": notify_channel}
    )


def note_cancel(current: RunRecord, actor: Actor) -> RunRecord | None:
    """``actor`` asked to cancel a run that has not ended."""
    if current.final:
        return None
    return current.model_copy(update={"cancel_requested_by": actor})


def refuse(
    current: RunRecord,
    *,
    stage: RefusalStage,
    reason: str,
    decided_by: Actor | None,
    now: datetime,
) -> RunRecord | None:
    """End a run before it ran: ``stage`` says which check refused it and ``reason`` why."""
    if current.final:
        return None
    return current.without_secrets().model_copy(
        update={
            "status": "refused",
            "refusal_stage": stage,
            "refusal_reason": reason,
            "decided_by": decided_by,
            "finished_at": now,
        }
    )


def finish(current: RunRecord, outcome: RunOutcome, now: datetime) -> RunRecord | None:
    """Record how the run ended; its duration is the runner's or measured from its start."""
    if current.final:
        return None
    duration = outcome.duration_seconds
    if duration is None and current.started_at is not None:
        duration = (now - current.started_at).total_seconds()
    return current.without_secrets().model_copy(
        update={
            "status": outcome.status,
            "finished_at": now,
            "exit_code": outcome.exit_code,
            "duration_seconds": max(duration or 0.0, 0.0),
            "log_tail": outcome.log_tail,
            "error": outcome.error,
            "log_url": outcome.log_url or current.log_url,
        }
    )
