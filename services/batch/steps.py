"""The steps a batch handler takes on a run: refuse it, start it, finish it.

Each step changes the run record through one transition of :mod:`services.batch.lifecycle`
(a conditional write, so a redelivered request or a second approval never starts a second
run), writes the audit trail and announces the outcome event. :meth:`RunSteps.start` takes
the concurrency slot, claims the start, starts the runner and announces ``BatchRunStarted``;
it returns the started run for :class:`services.batch.supervisor.RunSupervisor` to watch.
:meth:`RunSteps.finish` records the outcome, frees the slot and announces
``BatchRunFinished`` (once).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from services.batch import lifecycle, outcomes
from services.batch.runners.base import Runner, RunnerError, RunOutcome, RunSpec, StartedRun
from services.batch.runners.local_orphans import this_process
from services.batch.store import LockStore, RunStore
from shared.catalog import Catalog, LocalRunnerSettings, ValidatedRequest, validate_recorded
from shared.clock import Clock
from shared.events import Actor, PreviewResult, RefusalStage, RunParameter
from shared.publishing import EventPublisher
from shared.state_table.keys import sortable_time
from shared.state_table.runs import ApprovalState, RunRecord, RunState

log = logging.getLogger(__name__)

#: A held slot outlives the run's timeout by this much before another run may take it
#: (covers the kill grace and a slow finish; a crashed service frees it after that).
LOCK_MARGIN = timedelta(minutes=10)


@dataclass(frozen=True)
class Launched:
    """A run or its preview the runner has started, for the supervisor to watch (the
    record as it was when it started; a preview's ``spec`` is the preview's own)."""

    record: RunRecord
    spec: RunSpec
    runner: Runner
    started: StartedRun


@dataclass(eq=False, kw_only=True)
class RunSteps:
    """Refuses, starts and finishes runs: recorded, audited and announced.

    Args:
        catalog: the command catalog.
        runs: run records and audit.
        locks: concurrency slots.
        runners: runner by kind (``local``, ``codebuild``, ``stepfunctions``).
        publisher: where outcome events go.
        clock: the current time.
    """

    catalog: Catalog
    runs: RunStore
    locks: LockStore
    runners: Mapping[str, Runner]
    publisher: EventPublisher
    clock: Clock
    #: The process that claims the runs these steps start (``host:pid``).
    owner: str = field(default_factory=this_process, init=False)

    def __post_init__(self) -> None:
        self.runners = dict(self.runners)

    # ------------------------------------------------------------------ specs

    def spec_for(self, record: RunRecord, request: ValidatedRequest) -> RunSpec:
        settings = request.policy.runner
        workdir = self.catalog.base_dir()
        if isinstance(settings, LocalRunnerSettings):
            workdir = (workdir / settings.workdir).resolve()
        return RunSpec(
            run_id=record.run_id,
            request_event_id=record.request_event_id,
            command=record.command,
            environment=record.environment,
            argv=tuple(request.argv()),
            env={**settings.env, **request.env()},
            timeout_seconds=request.command.timeout_seconds,
            settings=settings,
            workdir=workdir,
            secrets=tuple(
                value
                for name, value in request.values.items()
                if name in request.command.sensitive_parameters and value
            ),
        )

    def spec_without_values(self, record: RunRecord) -> RunSpec | None:
        """A spec good enough to watch a started run (its values may be gone)."""
        command = self.catalog.command(record.command)
        if command is None or record.environment not in command.environments:
            return None
        settings = command.environments[record.environment].runner
        return RunSpec(
            run_id=record.run_id,
            request_event_id=record.request_event_id,
            command=record.command,
            environment=record.environment,
            argv=command.argv,
            env={},
            timeout_seconds=command.timeout_seconds,
            settings=settings,
        )

    @staticmethod
    def started_of(record: RunRecord) -> StartedRun | None:
        if record.runner is None or record.runner_ref is None or record.started_at is None:
            return None
        return StartedRun(
            runner=record.runner,
            ref=record.runner_ref,
            started_at=record.started_at,
            log_url=record.log_url,
        )

    # ------------------------------------------------------------------ refusing

    async def refuse(
        self,
        record: RunRecord,
        stage: RefusalStage,
        reason: str,
        *,
        decided_by: Actor | None = None,
        event_id: str | None = None,
    ) -> RunRecord:
        """End a run that has not started: record, audit and announce the refusal."""

        stored, changed = await self.runs.update(
            record.run_id,
            functools.partial(
                lifecycle.refuse,
                stage=stage,
                reason=reason,
                decided_by=decided_by,
                now=self.clock(),
            ),
        )
        if stored is None or not changed:
            return stored or record
        await self.runs.audit(
            record.run_id, "refused", f"{stage}: {reason}", actor=decided_by, event_id=event_id
        )
        if record.approval is not None:
            await self.runs.remove_pending_approval(record.run_id, record.approval.expires_at)
        await self.publisher.publish(outcomes.refused(stored))
        return stored

    # ------------------------------------------------------------------ approval

    async def ask_approval(
        self,
        record: RunRecord,
        request: ValidatedRequest,
        event_id: str | None,
        preview: PreviewResult | None = None,
    ) -> RunRecord | None:
        """Ask the approvers of ``request``'s environment (with the ``preview`` that
        succeeded, if the command has one); None when the run moved on meanwhile."""
        policy = request.policy.approval
        assert policy is not None
        approval = ApprovalState(
            approvers=policy.approvers.ids(),
            min_approvals=policy.min_approvals,
            expires_at=self.clock() + timedelta(seconds=policy.expires_after_seconds),
        )
        # Indexed first: the sweeper must find every request that waits (it drops an entry
        # whose run does not wait, should the next step not happen).
        await self.runs.add_pending_approval(record.run_id, approval.expires_at)
        waiting, changed = await self.runs.update(
            record.run_id,
            functools.partial(lifecycle.await_approval, approval=approval, preview=preview),
        )
        if waiting is None or not changed:
            return None
        await self.runs.audit(
            record.run_id,
            "approval_requested",
            f"{policy.min_approvals} approval(s) from {', '.join(approval.approvers)} "
            f"until {sortable_time(approval.expires_at)}",
            event_id=event_id,
        )
        await self.publisher.publish(outcomes.approval_requested(waiting))
        return waiting

    # ------------------------------------------------------------------ starting

    async def start(
        self, record: RunRecord, request: ValidatedRequest, event_id: str
    ) -> Launched | None:
        """Start an authorized (and, where needed, approved) run, at most once.

        Args:
            record: the run as last read.
            request: the request, validated again against the catalog.
            event_id: the event whose handler is starting it (a redelivery of the same
                event resumes an interrupted start; any other event leaves it alone).

        Returns:
            The started run, for the supervisor to watch; None when it was refused or
            someone else started it.

        Raises:
            TransientError: could not start now; the event is retried.
        """
        spec = self.spec_for(record, request)
        runner = self.runners.get(spec.settings.kind)
        if runner is None:
            await self.refuse(
                record,
                "runner",
                f"the {spec.settings.kind} runner is not configured in this batch service",
                event_id=event_id,
            )
            return None
        slots = request.command.concurrency
        if slots is not None:
            holders = await self.locks.acquire(
                record.command,
                record.environment,
                record.run_id,
                slots=slots,
                hold=timedelta(seconds=spec.timeout_seconds) + LOCK_MARGIN,
            )
            if holders:
                busy = ", ".join(holders)
                await self.runs.audit(record.run_id, "lock_busy", busy, event_id=event_id)
                await self.refuse(
                    record,
                    "concurrency",
                    f"{record.command} in {record.environment} runs {slots} at a time and "
                    f"{busy} {'is' if len(holders) == 1 else 'are'} running; "
                    "request it again when that ends",
                    event_id=event_id,
                )
                return None
        before = record.status

        claimed, changed = await self.runs.update(
            record.run_id,
            functools.partial(
                lifecycle.claim_start, event_id=event_id, owner=self.owner, runner=runner.kind
            ),
        )
        if claimed is None or not changed:
            if claimed is not None and claimed.final and slots is not None:
                await self.locks.release(
                    record.command, record.environment, record.run_id, slots=slots
                )
            log.info(
                "run %s: already %s; not starting it again",
                record.run_id,
                claimed and claimed.status,
            )
            return None
        await self.runs.mark_active(record.run_id)
        return await self._launch(
            claimed, spec, runner, event_id, revert_to=before, shown=request.run_parameters()
        )

    async def _launch(
        self,
        claimed: RunRecord,
        spec: RunSpec,
        runner: Runner,
        event_id: str,
        *,
        revert_to: RunState,
        shown: tuple[RunParameter, ...],
    ) -> Launched | None:
        try:
            started = await runner.start(spec)
        except RunnerError as exc:
            await self.refuse(claimed, "runner", str(exc), event_id=event_id)
            await self._release(claimed)
            return None
        except BaseException:
            if revert_to == "starting":
                raise  # a recovery: the claim stays with the event that will retry it
            # Nothing started: put the run back so the retried event can start it.
            with contextlib.suppress(Exception):
                await self.runs.update(
                    claimed.run_id, functools.partial(lifecycle.unclaim, back_to=revert_to)
                )
                await self._release(claimed)
            raise
        return await self._running(claimed.run_id, spec, runner, started, event_id, shown)

    async def _running(
        self,
        run_id: str,
        spec: RunSpec,
        runner: Runner,
        started: StartedRun,
        event_id: str,
        shown: tuple[RunParameter, ...],
    ) -> Launched | None:
        record, _ = await self.runs.update(
            run_id, functools.partial(lifecycle.mark_running, started=started, shown=shown)
        )
        if record is None:
            return None
        detail = f"{started.runner} {started.ref}" + (
            " (found already started)" if started.resumed else ""
        )
        await self.runs.audit(run_id, "started", detail, event_id=event_id)
        await self.publisher.publish(outcomes.started(record))
        return Launched(record=record, spec=spec, runner=runner, started=started)

    async def recover_start(self, record: RunRecord, event_id: str) -> Launched | None:
        """The event that claimed this start was redelivered: the start was interrupted
        (a crash or a timeout) and whether it happened is not recorded.

        Returns:
            The run, started again where the runner makes that safe (for the supervisor
            to watch); None when it was finished as failed instead.
        """
        request = self.revalidate(record)
        runner = self.runners.get(record.runner or "")
        if runner is not None and runner.idempotent_start and isinstance(request, ValidatedRequest):
            spec = self.spec_for(record, request)
            return await self._launch(
                record,
                spec,
                runner,
                event_id,
                revert_to="starting",
                shown=request.run_parameters(),
            )
        left = await self.stop_left_behind(record)
        if left is None:
            return None  # a process of it still runs and cannot be stopped: keep its slot
        await self.finish(
            record.run_id,
            RunOutcome(
                status="failed",
                error="the batch service stopped while starting this run; "
                f"{left}; it is not started again (see its log)",
            ),
        )
        return None

    async def stop_left_behind(self, record: RunRecord) -> str | None:
        """Stop the local processes a dead batch service left running for ``record``,
        before anything frees its slot.

        Returns:
            What was found (for the run's error), or None when something of it still runs
            and could not be stopped (the slot must stay taken; logged).
        """
        local = self.runners.get("local")
        stop = getattr(local, "stop_left_behind", None)
        if record.runner not in (None, "local") or stop is None:
            return "it ran elsewhere"
        try:
            detail: str = await stop(record.run_id, record.runner_ref)
        except RunnerError as exc:
            log.error("run %s: left running by a batch service that died: %s", record.run_id, exc)
            return None
        return detail

    def revalidate(self, record: RunRecord) -> ValidatedRequest | str:
        """The request checked against the catalog as it is now, or why it fails."""
        result = validate_recorded(self.catalog, record)
        if isinstance(result, ValidatedRequest):
            return result
        return "; ".join(str(error) for error in result)

    async def finish(self, run_id: str, outcome: RunOutcome) -> RunRecord | None:
        """Record how a run ended, free its slot, announce ``BatchRunFinished`` (once)."""
        record, changed = await self.runs.update(
            run_id, functools.partial(lifecycle.finish, outcome=outcome, now=self.clock())
        )
        if record is None or not changed:
            return record
        await self._release(record)
        detail = outcome.status + (
            f", exit status {outcome.exit_code}" if outcome.exit_code is not None else ""
        )
        if outcome.error:
            detail += f": {outcome.error}"
        await self.runs.audit(run_id, "finished", detail, actor=record.cancel_requested_by)
        await self.publisher.publish(outcomes.finished(record))
        return record

    async def _release(self, record: RunRecord) -> None:
        command = self.catalog.command(record.command)
        slots = command.concurrency if command is not None else None
        if slots is not None:
            await self.locks.release(record.command, record.environment, record.run_id, slots=slots)
        await self.runs.mark_inactive(record.run_id)
