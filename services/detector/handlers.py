"""The detector's handlers: scan and tell (``DriftScanRequested``), and record claims.

:class:`DriftPipeline` is the whole "scan then tell" path, shared by the queue handler
and ``toilkit drift scan``: it scans the requested states, and for each one

* failed -> ``DriftScanFailed`` (phase, reason, exit code, stderr excerpt);
* planned -> its redacted plan to S3, its findings reconciled with DynamoDB
  (new / still open / resolved), CloudTrail suspects for new drift, then
  ``DriftDetected`` (one event with every open finding, when there is any) and
  ``DriftResolved`` (when findings went away);

and finally one ``DriftScanCompleted`` digest. Lifecycle records are written before the
events go out, and the scan id is the request's ``event_id``: a redelivered request
(after a crash between two publishes) scans again and reports the same findings as
``new`` again rather than losing them as ``open``. Outcome events carry the request's
``correlation_id``, so whoever asked can match the answers.

Handlers are plain async functions over typed events; they see no SQS message, boto
dict or environment variable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.detector.archive import PlanArchive
from services.detector.attribution import CloudTrailAttributor
from services.detector.config import DetectorConfig, StateConfig
from services.detector.credentials import RoleCredentials
from services.detector.lifecycle import LifecycleStore, Reconciliation, TrackedFinding, reconcile
from services.detector.plan import PlanFinding, to_event_finding
from services.detector.scan import Scanner, ScanProgress, ScanReport, StateScan
from shared.errors import ToilkitError
from shared.events import (
    Actor,
    DriftClaimed,
    DriftDetected,
    DriftFinding,
    DriftResolved,
    DriftScanCompleted,
    DriftScanFailed,
    DriftScanRequested,
    EventBase,
    ObjectRef,
    OldestDrift,
    ResolvedFinding,
    ScanMode,
    StateRef,
    StateSummary,
    Suspect,
    derived_event_id,
    utc_now,
)
from shared.publishing import EventPublisher
from shared.worker import Handler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScanRequest:
    """What to scan, whatever asked for it (the queue, the CLI).

    Attributes:
        scan_id: Unique per request and stable across its redeliveries.
        correlation_id: Carried by every outcome event.
        states: State names; empty means every configured state.
        mode: Plan every state in this mode instead of its own.
        requested_by: Who asked (a person, or the schedule).
    """

    scan_id: str
    correlation_id: str
    states: tuple[str, ...] = ()
    mode: ScanMode | None = None
    requested_by: Actor | None = None


@dataclass(frozen=True)
class StateOutcome:
    """One state's part of a finished scan."""

    scan: StateScan
    reconciliation: Reconciliation | None = None
    plan_ref: ObjectRef | None = None


@dataclass(frozen=True)
class PipelineOutcome:
    """A finished scan: the report, each state's reconciliation, the digest sent."""

    report: ScanReport
    states: tuple[StateOutcome, ...]
    unknown_states: tuple[str, ...]
    digest: DriftScanCompleted


@dataclass
class DriftPipeline:
    """Scan, reconcile, archive, attribute and publish.

    Attributes:
        config: The repository's states and settings.
        scanner: Plans and parses the states.
        lifecycle: The finding records.
        archive: Where redacted plans go.
        publisher: Where events go.
        attributor: CloudTrail attribution, or ``None`` when it is off.
        credentials: Opens clients as a state's assumed role, so a state of another
            account is attributed from that account's CloudTrail.
        source: The ``source`` of every event.
        clock: The current time.
    """

    config: DetectorConfig
    scanner: Scanner
    lifecycle: LifecycleStore
    archive: PlanArchive
    publisher: EventPublisher
    attributor: CloudTrailAttributor | None = None
    credentials: RoleCredentials | None = None
    source: str = "detector"
    clock: Callable[[], datetime] = utc_now
    _state_locks: dict[str, asyncio.Lock] = field(default_factory=dict, repr=False)

    async def run(
        self, request: ScanRequest, *, progress: ScanProgress | None = None
    ) -> PipelineOutcome:
        """Scan the requested states and publish every outcome event.

        Raises:
            TransientError: DynamoDB or SNS stayed unreachable (the request is retried).
            PermanentError: AWS refused a write or a publish.
        """
        chosen, unknown = self.config.select(request.states)
        report = await self.scanner.scan(
            chosen, scan_id=request.scan_id, mode=request.mode, progress=progress
        )
        for name in unknown:
            await self._publish(
                request,
                DriftScanFailed,
                state=StateRef(name=name, path=""),
                phase="discover",
                reason=f"no state named {name!r} in {self.config.source or self.config.repo}",
            )
        outcomes = [await self._handle_state(request, scan) for scan in report.states]
        digest = self._digest(request, report, outcomes, unknown)
        await self.publisher.publish(digest)
        return PipelineOutcome(
            report=report, states=tuple(outcomes), unknown_states=tuple(unknown), digest=digest
        )

    async def _handle_state(self, request: ScanRequest, scan: StateScan) -> StateOutcome:
        state = scan.state
        now = self.clock()
        if scan.failure is not None or scan.summary is None or scan.plan_json is None:
            failure = scan.failure
            await self.lifecycle.record_scan(
                state.name, status="failed", scan_id=request.scan_id, now=now
            )
            await self._publish(
                request,
                DriftScanFailed,
                state=state.ref,
                phase=failure.phase if failure else "parse",
                reason=failure.reason if failure else "the plan could not be read",
                exit_code=failure.exit_code if failure else None,
                stderr_excerpt=failure.stderr_excerpt if failure else "",
            )
            return StateOutcome(scan=scan)

        plan_ref = await self._archive(scan, request.scan_id)
        lock = self._state_locks.setdefault(state.name, asyncio.Lock())
        # Two scans of one state in this process (a schedule and a Slack request) must
        # not read and write its records interleaved.
        async with lock:
            previous = await self.lifecycle.open_findings(state.name)
            reconciliation = reconcile(
                previous, scan.summary, scan_id=request.scan_id, now=now, mode=scan.mode
            )
            if self.attributor is not None:
                new_findings = [t.finding for t in reconciliation.new]
                suspects = await self._suspects(state, new_findings, scan.plan_json)
                reconciliation = reconciliation.with_suspects(suspects)
            await self.lifecycle.record(reconciliation, scan_id=request.scan_id, now=now)
            await self.lifecycle.record_scan(
                state.name, status=scan.status, scan_id=request.scan_id, now=now
            )

        if reconciliation.current:
            limit = self.config.max_findings_per_event
            await self._publish(
                request,
                DriftDetected,
                state=state.ref,
                mode=scan.mode,
                findings=tuple(_event_finding(t) for t in reconciliation.current[:limit]),
                findings_total=len(reconciliation.current),
                plan_ref=plan_ref,
            )
        if reconciliation.resolved:
            await self._publish(
                request,
                DriftResolved,
                state=state.ref,
                resolved=tuple(
                    ResolvedFinding(
                        fingerprint=r.fingerprint,
                        address=r.address,
                        kind=r.kind,
                        first_seen=r.first_seen,
                    )
                    for r in reconciliation.resolved
                ),
            )
        return StateOutcome(scan=scan, reconciliation=reconciliation, plan_ref=plan_ref)

    async def _suspects(
        self, state: StateConfig, findings: list[PlanFinding], plan_json: dict[str, Any]
    ) -> dict[str, tuple[Suspect, ...]]:
        """Suspects from CloudTrail: the state's own account's when it assumes a role."""
        assert self.attributor is not None
        if state.assume_role is None or self.credentials is None:
            return await self.attributor.suspects_for(findings, plan_json)
        try:
            async with self.credentials.client("cloudtrail", state.assume_role) as cloudtrail:
                return await self.attributor.with_client(cloudtrail).suspects_for(
                    findings, plan_json
                )
        except ToilkitError as exc:
            # The findings matter more than who made them.
            log.warning("no attribution for %s: %s", state.name, exc)
            return {}

    async def _archive(self, scan: StateScan, scan_id: str) -> ObjectRef | None:
        assert scan.plan_json is not None
        try:
            return await self.archive.store(
                scan.plan_json, state=scan.state.name, scan_id=scan_id, scanned_at=scan.started_at
            )
        except ToilkitError as exc:
            # The findings matter more than the archive: report them without the link
            # rather than plan every state again.
            log.warning("could not archive the plan of %s: %s", scan.state.name, exc)
            return None

    def _digest(
        self,
        request: ScanRequest,
        report: ScanReport,
        outcomes: list[StateOutcome],
        unknown: list[str],
    ) -> DriftScanCompleted:
        summaries = [
            StateSummary(
                name=o.scan.state.name,
                status=o.scan.status,
                open_findings=len(o.reconciliation.current) if o.reconciliation else 0,
                new_findings=len(o.reconciliation.new) if o.reconciliation else 0,
                open_resources=len(
                    {t.finding.address for t in o.reconciliation.current}
                    if o.reconciliation
                    else ()
                ),
            )
            for o in outcomes
        ]
        summaries += [StateSummary(name=name, status="failed") for name in unknown]
        current = [
            (o.scan.state.name, t)
            for o in outcomes
            if o.reconciliation
            for t in o.reconciliation.current
        ]
        oldest = min(current, key=lambda pair: pair[1].first_seen, default=None)
        return DriftScanCompleted(
            event_id=derived_event_id(request.scan_id, "DriftScanCompleted"),
            correlation_id=request.correlation_id,
            source=self.source,
            states=tuple(summaries),
            findings_open=len(current),
            findings_new=sum(1 for _, t in current if t.status == "new"),
            resources_open=len({(name, t.finding.address) for name, t in current}),
            findings_resolved=sum(
                len(o.reconciliation.resolved) for o in outcomes if o.reconciliation
            ),
            oldest_open=OldestDrift(
                state=oldest[0], address=oldest[1].finding.address, first_seen=oldest[1].first_seen
            )
            if oldest
            else None,
            duration_seconds=report.duration_seconds,
        )

    async def _publish(
        self, request: ScanRequest, event_class: type[EventBase], **fields: Any
    ) -> None:
        # The same id when a crashed scan runs again: the notifier announces it once.
        state = fields["state"].name if "state" in fields else ""
        event = event_class(
            event_id=derived_event_id(request.scan_id, event_class.__name__, state),
            correlation_id=request.correlation_id,
            source=self.source,
            **fields,
        )
        await self.publisher.publish(event)


def _event_finding(tracked: TrackedFinding) -> DriftFinding:
    event_finding = to_event_finding(
        tracked.finding, first_seen=tracked.first_seen, status=tracked.status
    )
    return event_finding.model_copy(
        update={"claimed_by": tracked.claimed_by, "suspects": tracked.suspects}
    )


@dataclass
class DetectorHandlers:
    """The queue handlers, built once with their dependencies.

    Attributes:
        pipeline: Scans and publishes.
        lifecycle: Records claims.
        clock: The current time.
    """

    pipeline: DriftPipeline
    lifecycle: LifecycleStore
    clock: Callable[[], datetime] = utc_now

    async def on_drift_scan_requested(self, event: DriftScanRequested) -> None:
        """Scan the requested states (all when none is named) and publish the outcome."""
        outcome = await self.pipeline.run(
            ScanRequest(
                scan_id=event.event_id,
                correlation_id=event.correlation_id,
                states=event.states,
                mode=event.mode,
                requested_by=event.requested_by,
            )
        )
        log.info(
            "scan %s: %d state(s), %d open finding(s), %d new, %d resolved",
            event.event_id,
            len(outcome.digest.states),
            outcome.digest.findings_open,
            outcome.digest.findings_new,
            outcome.digest.findings_resolved,
        )

    async def on_drift_claimed(self, event: DriftClaimed) -> None:
        """Record who took the findings ("I'm on it"); resolved ones are skipped."""
        claimed = await self.lifecycle.claim(
            event.state, event.fingerprints, event.claimed_by, now=self.clock()
        )
        skipped = len(set(event.fingerprints)) - len(claimed)
        if skipped:
            log.info(
                "%s claimed %d finding(s) of %s; %d were no longer open",
                event.claimed_by.name,
                len(claimed),
                event.state,
                skipped,
            )


def build_handlers(deps: DetectorHandlers) -> Mapping[type[EventBase], Handler]:
    """Event class -> handler, for :meth:`shared.runtime.Runtime.worker`."""
    return {DriftScanRequested: deps.on_drift_scan_requested, DriftClaimed: deps.on_drift_claimed}
