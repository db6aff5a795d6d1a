"""What a thread's parent message shows, as data: one view per run and per drift report.

A run's parent message is updated as its events arrive (awaiting approval -> running ->
finished), and a drift report's parent as its findings are claimed and resolved. Events can
arrive out of order (SQS redelivers a failed one later), so each view is the merge of every
event seen so far, and a merge never moves a run backwards (a late ``BatchRunStarted`` fills
in who started it but does not turn a finished run back into a running one).

Views are stored with the thread (see :mod:`services.notifier.store`) and rendered by
:mod:`services.notifier.blocks`; both are pure.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TypeAlias

from pydantic import AwareDatetime, BaseModel, ConfigDict

from shared.events import (
    Actor,
    BatchApprovalRequested,
    BatchRunFinished,
    BatchRunProgress,
    BatchRunRefused,
    BatchRunStarted,
    DriftDetected,
    DriftFinding,
    PreviewResult,
    RefusalStage,
    RunParameter,
)
from shared.state_table.runs import FINAL_RUN_STATES, RunState

#: Where a run stands as its messages show it (a run is never drawn before it waits for
#: approval or runs, so "received" and "starting" do not occur).
RunPhase: TypeAlias = RunState
TERMINAL_PHASES: frozenset[str] = FINAL_RUN_STATES

#: The most findings a drift view keeps (the renderer shows fewer; the rest are counted).
MAX_FINDINGS_KEPT = 40

RunEvent: TypeAlias = BatchApprovalRequested | BatchRunStarted | BatchRunFinished | BatchRunRefused


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _rank(phase: RunPhase) -> int:
    if phase == "awaiting_approval":
        return 0
    if phase == "running":
        return 1
    return 2


class RunView(_View):
    """Everything known about one batch run, merged from its events."""

    run_id: str
    command: str
    environment: str
    phase: RunPhase
    parameters: tuple[RunParameter, ...] = ()
    reason: str = ""
    requested_by: Actor | None = None
    approvers: tuple[str, ...] = ()
    approval_expires_at: AwareDatetime | None = None
    approved_by: Actor | None = None
    runner: str | None = None
    log_url: str | None = None
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    exit_code: int | None = None
    duration_seconds: float | None = None
    error: str | None = None
    cancelled_by: Actor | None = None
    refusal_stage: RefusalStage | None = None
    refusal_reason: str | None = None
    decided_by: Actor | None = None
    rerun_of: str | None = None
    break_glass: bool = False
    preview: PreviewResult | None = None
    #: Live progress: the log's last lines (the finish's tail once it ended), when the
    #: newest progress shown was sent (its ``sequence``) and how long the run had run.
    tail: tuple[str, ...] = ()
    tail_sequence: int = 0
    elapsed_seconds: float | None = None

    @property
    def is_terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES


def with_progress(view: RunView, event: BatchRunProgress) -> RunView:
    """The view with a running run's newer progress; the same view when the run is not
    (or no longer) running or the progress is not newer than what it shows."""
    if view.phase != "running" or event.sequence <= view.tail_sequence:
        return view
    return view.model_copy(
        update={
            "tail": event.tail,
            "tail_sequence": event.sequence,
            "elapsed_seconds": event.elapsed_seconds,
            "log_url": view.log_url or event.log_url,
        }
    )


def run_view_of(event: RunEvent) -> RunView:
    """The view of a run known only from ``event``."""
    return merge_run(
        RunView(
            run_id=event.run_id,
            command=event.command,
            environment=event.environment,
            phase="awaiting_approval",
        ),
        event,
    )


def merge_run(view: RunView, event: RunEvent) -> RunView:
    """``view`` with what ``event`` tells added; the phase only ever moves forward."""
    update: dict[str, object] = {}
    phase: RunPhase
    if not isinstance(event, BatchRunFinished):
        update["rerun_of"] = view.rerun_of or event.rerun_of
    if isinstance(event, BatchApprovalRequested):
        phase = "awaiting_approval"
        update.update(
            parameters=view.parameters or event.parameters,
            reason=view.reason or event.reason,
            requested_by=view.requested_by or event.requested_by,
            approvers=event.approvers,
            approval_expires_at=event.expires_at,
            preview=view.preview or event.preview,
        )
    elif isinstance(event, BatchRunStarted):
        phase = "running"
        update.update(
            parameters=event.parameters or view.parameters,
            reason=event.reason or view.reason,
            requested_by=event.requested_by,
            approved_by=event.approved_by or view.approved_by,
            runner=event.runner,
            log_url=view.log_url or event.log_url,
            started_at=event.started_at,
            break_glass=view.break_glass or event.break_glass,
        )
    elif isinstance(event, BatchRunFinished):
        phase = event.status
        update.update(
            exit_code=event.exit_code,
            duration_seconds=event.duration_seconds,
            error=event.error,
            cancelled_by=event.cancelled_by,
            log_url=event.log_url or view.log_url,
            finished_at=event.occurred_at,
            # The final message keeps a tail: the finish's, else the last progress one.
            tail=event.log_tail or view.tail,
        )
    else:
        phase = "refused"
        update.update(
            requested_by=view.requested_by or event.requested_by,
            refusal_stage=event.stage,
            refusal_reason=event.reason,
            decided_by=event.decided_by,
            finished_at=event.occurred_at,
            preview=view.preview or event.preview,
        )
    if view.is_terminal or _rank(phase) < _rank(view.phase):
        # A late or repeated event adds its details but never moves the run backwards,
        # and the first final status stands.
        update = {k: v for k, v in update.items() if getattr(view, k) in (None, "", (), False)}
    else:
        update["phase"] = phase
    return view.model_copy(update=update)


class DriftView(_View):
    """One drift report (a state's set of open findings) and what happened to it since.

    Attributes:
        report: the latest scan that found exactly this set (findings sorted as shown,
            at most :data:`MAX_FINDINGS_KEPT`).
        fingerprints: every fingerprint of the set, including findings cut from ``report``.
        resolved: fingerprint -> when a scan found it gone.
        claimed_by: who pressed "I'm on it" last.
        superseded_at: when a later scan found a different set for the state (this message
            is then no longer updated; the newer one is).
        unlisted: findings the detector counted in ``findings_total`` but cut from the
            event for size (they are in the plan, not in the message).
    """

    report: DriftDetected
    fingerprints: tuple[str, ...]
    unlisted: int = 0
    resolved: dict[str, AwareDatetime] = {}
    claimed_by: Actor | None = None
    claimed_at: AwareDatetime | None = None
    superseded_at: AwareDatetime | None = None

    @property
    def set_id(self) -> str:
        # The first sighting is part of the identity: the same findings back after they
        # were all resolved are news (a new message), not an update of the resolved one.
        since = min((f.first_seen for f in self.report.findings if actionable(f)), default=None)
        return drift_set_id(self.fingerprints, since)

    @property
    def open_fingerprints(self) -> tuple[str, ...]:
        return tuple(f for f in self.fingerprints if f not in self.resolved)

    @property
    def all_resolved(self) -> bool:
        return not self.open_fingerprints


def drift_set_id(fingerprints: tuple[str, ...] | list[str], since: datetime | None = None) -> str:
    """A short stable id of one occurrence of a set of fingerprints (the thread's key).

    Args:
        fingerprints: the set's findings.
        since: when the occurrence began (its oldest finding's first sighting).
    """
    material = "\n".join(sorted(set(fingerprints)))
    if since is not None:
        # Whole seconds: the same sighting must give the same id however it was stored.
        material += f"\n@{int(since.timestamp())}"
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def actionable(finding: DriftFinding) -> bool:
    """Whether a finding is something to fix (ignored findings are only counted)."""
    return not finding.ignored


def display_order(findings: tuple[DriftFinding, ...]) -> tuple[DriftFinding, ...]:
    """Drift before pending, new before already open, then by address."""
    return tuple(
        sorted(
            findings,
            key=lambda f: (f.ignored, f.kind != "drift", f.status != "new", f.address),
        )
    )


def drift_view_of(report: DriftDetected) -> DriftView:
    """A fresh view of a report: findings in display order, cut to what is kept."""
    ordered = display_order(report.findings)
    kept = report.model_copy(update={"findings": ordered[:MAX_FINDINGS_KEPT]})
    return DriftView(
        report=kept,
        fingerprints=tuple(f.fingerprint for f in ordered if actionable(f)),
        unlisted=max(0, report.findings_total - len(report.findings)),
        claimed_by=_common_claim(ordered),
    )


def with_new_report(view: DriftView, report: DriftDetected) -> DriftView:
    """The view after a later scan found the same set again (newer ages, suspects)."""
    if report.occurred_at <= view.report.occurred_at:
        return view
    fresh = drift_view_of(report)
    return view.model_copy(
        update={
            "report": fresh.report,
            "unlisted": fresh.unlisted,
            "claimed_by": view.claimed_by or fresh.claimed_by,
        }
    )


def with_resolved(view: DriftView, fingerprints: set[str], at: datetime) -> DriftView:
    """The view with ``fingerprints`` (those of this set) marked resolved at ``at``."""
    newly = {f: at for f in fingerprints if f in view.fingerprints and f not in view.resolved}
    if not newly:
        return view
    return view.model_copy(update={"resolved": {**view.resolved, **newly}})


def with_claim(view: DriftView, actor: Actor, at: datetime) -> DriftView:
    """The view with ``actor`` on it (a later claim replaces an earlier one)."""
    if view.claimed_by == actor:
        return view
    return view.model_copy(update={"claimed_by": actor, "claimed_at": at})


def with_superseded(view: DriftView, at: datetime) -> DriftView:
    if view.superseded_at is not None:
        return view
    return view.model_copy(update={"superseded_at": at})


def _common_claim(findings: tuple[DriftFinding, ...]) -> Actor | None:
    """Who the detector says is on every actionable finding, if one person is."""
    claims = {f.claimed_by for f in findings if actionable(f)}
    if len(claims) == 1:
        return next(iter(claims))
    return None
