"""The whole "scan then tell" path, shared by the queue handler
(:mod:`services.detector.handlers`) and ``toilkit drift scan``.

:class:`DriftPipeline` scans the requested states, and for each one

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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from services.detector.archive import PlanArchive
from services.detector.attribution import CloudTrailAttributor
from services.detector.config import DetectorConfig, StateConfig
from services.detector.credentials import RoleCredentials
from services.detector.engine import TIMEOUT_WARNING_FRACTION
from services.detector.lifecycle import LifecycleStore, Reconciliation, reconcile
from services.detector.plan import to_event_finding
from services.detector.scan import Scanner, ScanProgress, ScanReport, StateScan
from services.detector.scheduler import SCHEDULE_ACTOR
from services.detector.stored_rules import active_rules, expired_note
from services.detector.team import team_figures, team_lines
from shared.errors import ToilkitError
from shared.events import (
    Actor,
    DriftDetected,
    DriftResolved,
    DriftScanCompleted,
    DriftScanFailed,
    DriftScanRequested,
    EventBase,
    ObjectRef,
    OldestDrift,
    PlannedFinding,
    ResolvedFinding,
    ScanMode,
    StateRef,
    StateSummary,
    Suspect,
    TeamLines,
    derived_event_id,
    utc_now,
)
from shared.publishing import EventPublisher
from shared.state_table.drift_actions import IgnoreRuleStore, StoredIgnoreRule, today_utc

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
        reply_channel: With ``reply_thread_ts``: the report whose Re-scan button asked;
            the digest answers in its thread.
    """

    scan_id: str
    correlation_id: str
    states: tuple[str, ...] = ()
    mode: ScanMode | None = None
    requested_by: Actor | None = None
    reply_channel: str | None = None
    reply_thread_ts: str | None = None

    @classmethod
    def asked_by(cls, event: DriftScanRequested) -> ScanRequest:
        """The scan ``event`` asks for.

        Its event id is the scan id; every other field is the event's of the same name.
        """
        carried = {f.name: getattr(event, f.name) for f in fields(cls) if f.name != "scan_id"}
        return cls(scan_id=event.event_id, **carried)


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
        ignores: Ignore rules written from Slack or the CLI (``None``: only toilkit.yaml's).
        repeat_days: A finding resolved in this many days before is counted as a repeat.
        team_weekday: The scheduled digest of this weekday (0 = Monday) carries the team
            lines; ``None``: never.
        run_limit_seconds: How long the process may run a scan (the CodeBuild build
            timeout, the worker's handler timeout); ``None``: no limit to warn about.
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
    ignores: IgnoreRuleStore | None = None
    repeat_days: int = 30
    team_weekday: int | None = 0
    run_limit_seconds: float | None = None
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
        stored = await self.ignores.in_force() if self.ignores is not None else []
        report = await self.scanner.scan(
            chosen,
            scan_id=request.scan_id,
            mode=request.mode,
            progress=progress,
            extra_rules=active_rules(stored, today=today_utc(self.clock())),
        )
        for name in unknown:
            await self._publish(
                request,
                DriftScanFailed,
                state=StateRef(name=name, path=""),
                phase="discover",
                reason=f"no state named {name!r} in {self.config.source or self.config.repo}",
            )
        outcomes = [await self._handle_state(request, scan, stored) for scan in report.states]
        digest = await self._digest(request, report, outcomes, unknown)
        await self.publisher.publish(digest)
        return PipelineOutcome(
            report=report, states=tuple(outcomes), unknown_states=tuple(unknown), digest=digest
        )

    async def _handle_state(
        self, request: ScanRequest, scan: StateScan, stored: list[StoredIgnoreRule]
    ) -> StateOutcome:
        state = scan.state
        now = self.clock()
        if scan.failure is not None or scan.summary is None or scan.plan_json is None:
            return await self._report_failure(request, scan, now)

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
                suspects = await self._suspects(state, reconciliation.new, scan.plan_json)
                reconciliation = reconciliation.with_suspects(suspects)
            await self.lifecycle.record(reconciliation, scan_id=request.scan_id, now=now)
            await self.lifecycle.record_scan(
                state.name, status=scan.status, scan_id=request.scan_id, now=now
            )

        if reconciliation.current:
            limit = self.config.max_findings_per_event
            repeats = await self.lifecycle.resolved_since(
                state.name, now - timedelta(days=self.repeat_days)
            )
            today = today_utc(now)
            findings = [
                t.model_copy(
                    update={
                        "ignore_expired": expired_note(t, state.name, stored, today=today),
                        "resolved_recently": repeats.get(t.fingerprint, 0),
                    }
                )
                for t in reconciliation.current[:limit]
            ]
            # Ignored findings travel too (flagged, with their reason): never silently dropped.
            hidden = [f for f in scan.summary.findings if f.ignored]
            findings += [
                to_event_finding(f, first_seen=now, status="new")
                for f in hidden[: max(0, limit - len(findings))]
            ]
            await self._publish(
                request,
                DriftDetected,
                state=state.ref,
                mode=scan.mode,
                findings=tuple(findings),
                findings_total=len(reconciliation.current),
                plan_ref=plan_ref,
                notes=scan.notes,
            )
        if reconciliation.resolved:
            await self._publish(
                request,
                DriftResolved,
                state=state.ref,
                resolved=tuple(
                    ResolvedFinding.model_validate(r, from_attributes=True)
                    for r in reconciliation.resolved
                ),
            )
        return StateOutcome(scan=scan, reconciliation=reconciliation, plan_ref=plan_ref)

    async def _report_failure(
        self, request: ScanRequest, scan: StateScan, now: datetime
    ) -> StateOutcome:
        """A state that could not be planned: recorded, and ``DriftScanFailed`` says why."""
        failure = scan.failure
        await self.lifecycle.record_scan(
            scan.state.name, status="failed", scan_id=request.scan_id, now=now
        )
        await self._publish(
            request,
            DriftScanFailed,
            state=scan.state.ref,
            phase=failure.phase if failure else "parse",
            reason=failure.reason if failure else "the plan could not be read",
            exit_code=failure.exit_code if failure else None,
            stderr_excerpt=failure.stderr_excerpt if failure else "",
        )
        return StateOutcome(scan=scan)

    async def _suspects(
        self, state: StateConfig, findings: Sequence[PlannedFinding], plan_json: dict[str, Any]
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

    async def _digest(
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
                    {t.address for t in o.reconciliation.current} if o.reconciliation else ()
                ),
                new_resources=len(
                    {t.address for t in o.reconciliation.new} if o.reconciliation else ()
                ),
                notes=o.scan.notes,
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
            resources_open=len({(name, t.address) for name, t in current}),
            resources_new=len({(name, t.address) for name, t in current if t.status == "new"}),
            findings_resolved=sum(
                len(o.reconciliation.resolved) for o in outcomes if o.reconciliation
            ),
            oldest_open=OldestDrift(
                state=oldest[0], address=oldest[1].address, first_seen=oldest[1].first_seen
            )
            if oldest
            else None,
            duration_seconds=report.duration_seconds,
            reply_channel=request.reply_channel if request.reply_thread_ts else None,
            reply_thread_ts=request.reply_thread_ts if request.reply_channel else None,
            requested_by=request.requested_by,
            team=await self._team_lines(request),
            notes=run_limit_notes(report.duration_seconds, self.run_limit_seconds),
        )

    async def _team_lines(self, request: ScanRequest) -> TeamLines | None:
        """The team's figures over the last week, on the scheduled digest of its weekday."""
        now = self.clock()
        # EventBridge's requests name nobody; the local scheduler names SCHEDULE_ACTOR.
        scheduled = request.requested_by in (None, SCHEDULE_ACTOR)
        if self.team_weekday is None or not scheduled or request.reply_thread_ts:
            return None
        if now.astimezone(UTC).weekday() != self.team_weekday:
            return None
        occurrences = await self.lifecycle.occurrences()
        return team_lines(team_figures(occurrences, since=now - timedelta(days=7), until=now))

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


def run_limit_notes(duration_seconds: float, limit: float | None) -> tuple[str, ...]:
    """A warning for the digest when a scan used most of the time its process may run."""
    if limit is None or duration_seconds < TIMEOUT_WARNING_FRACTION * limit:
        return ()
    log.warning("a scan took %.0f s of the %g s its runner allows", duration_seconds, limit)
    return (
        f"The scan took {duration_seconds:.0f} s of the {limit:g} s its runner allows "
        f"({duration_seconds / limit:.0%}): raise the drift-scan build timeout (or the "
        "detector's handler timeout) or concurrency in toilkit.yaml, or split the states "
        "between scans before it is cut off",
    )
