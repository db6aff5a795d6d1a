"""The outcome events the batch service publishes, built from run records.

Each outcome of a run has a fixed event id derived from the run id and the outcome's
kind, so announcing it again (after a crash between a state change and its event, or on a
redelivered request) is a no-op for every consumer: they deduplicate by event id.
"""

from __future__ import annotations

import uuid

from shared.event_ids import RunEventStart, fixed_event_id, run_event_start
from shared.events import (
    Actor,
    BatchApprovalRequested,
    BatchRunFinished,
    BatchRunRefused,
    BatchRunStarted,
    EventBase,
)
from shared.state_table.runs import RunRecord, is_run_outcome

SOURCE = "batch"
_NAMESPACE = uuid.UUID("6f1c1c7e-5b55-4d2e-9a51-0f3b7c1e9a10")


def outcome_event_id(run_id: str, kind: str) -> str:
    """The one event id of this outcome of this run."""
    return fixed_event_id(_NAMESPACE, f"{run_id}/{kind}")


class RunOutcomeHeader(RunEventStart):
    """The fields every outcome event of a run starts with."""

    command: str
    environment: str


def outcome_header(run_id: str, command: str, environment: str, kind: str) -> RunOutcomeHeader:
    """The start of the ``kind`` outcome event of a run of ``command`` in ``environment``:
    its one event id (:func:`outcome_event_id`), the run id as correlation id, and this
    service as its source."""
    return RunOutcomeHeader(
        **run_event_start(outcome_event_id(run_id, kind), source=SOURCE, run_id=run_id),
        command=command,
        environment=environment,
    )


def _header(record: RunRecord, kind: str) -> RunOutcomeHeader:
    return outcome_header(record.run_id, record.command, record.environment, kind)


# The fields each outcome event takes from the run record as they are (same name, same
# meaning); the others come from the header or are worked out by its builder below.
APPROVAL_REQUESTED_FROM_RECORD: set[str] = {"reason", "requested_by", "rerun_of", "preview"}
REFUSED_FROM_RECORD: set[str] = {"requested_by", "decided_by", "rerun_of", "reverts"}
STARTED_FROM_RECORD: set[str] = {
    "reason",
    "requested_by",
    "runner",
    "log_url",
    "started_at",
    "rerun_of",
    "break_glass_channel",
}
FINISHED_FROM_RECORD: set[str] = {"exit_code", "log_tail", "log_url", "error", "reverts"}


def approval_requested(record: RunRecord) -> BatchApprovalRequested:
    assert record.approval is not None
    return BatchApprovalRequested(
        **_header(record, "approval-requested"),
        **record.model_dump(include=APPROVAL_REQUESTED_FROM_RECORD),
        parameters=record.shown_parameters(),
        approvers=record.approval.approvers,
        expires_at=record.approval.expires_at,
    )


def refused(record: RunRecord, *, kind: str = "refused") -> BatchRunRefused:
    """The refusal stored in the record (``kind`` varies for a late approver's notice)."""
    return BatchRunRefused(
        **_header(record, kind),
        **record.model_dump(include=REFUSED_FROM_RECORD),
        stage=record.refusal_stage or "validation",
        reason=record.refusal_reason or "refused",
        preview=record.preview if record.refusal_stage == "preview" else None,
    )


def started(record: RunRecord) -> BatchRunStarted:
    assert record.started_at is not None and record.runner is not None
    approvals = record.approval.approvals if record.approval else ()
    return BatchRunStarted(
        **_header(record, "started"),
        **record.model_dump(include=STARTED_FROM_RECORD),
        parameters=record.shown_parameters(),
        approved_by=approvals[-1] if approvals else None,
        # The record's own break_glass says it was asked for; the event says it happened.
        break_glass=record.approval_skipped,
    )


def finished(record: RunRecord) -> BatchRunFinished:
    status = record.status
    assert is_run_outcome(status)
    return BatchRunFinished(
        **_header(record, "finished"),
        **record.model_dump(include=FINISHED_FROM_RECORD),
        status=status,
        duration_seconds=max(record.duration_seconds or 0.0, 0.0),
        cancelled_by=record.cancel_requested_by if status == "cancelled" else None,
    )


def announcement(record: RunRecord) -> EventBase | None:
    """The event that tells where the run stands now (None while nothing is settled)."""
    if record.status == "awaiting_approval":
        return approval_requested(record)
    if record.status == "refused":
        return refused(record)
    if record.status == "running":
        return started(record)
    if is_run_outcome(record.status):
        return finished(record)
    return None


def system_actor(what: str) -> Actor:
    return Actor(name=what)
