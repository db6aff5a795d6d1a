"""Watching, cancelling and resuming the runs this process started.

:class:`services.batch.steps.RunSteps` starts a run and hands it over
(:meth:`RunSupervisor.watch`); a background task then waits for the run to end and
finishes it through the steps (outcome recorded, slot freed, ``BatchRunFinished``
announced). Handlers return as soon as the run is under way: a run may last much longer
than a message may stay hidden. After a restart :meth:`RunSupervisor.resume` picks up
what the previous process left.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from services.batch.previews import Previews
from services.batch.progress import ProgressReporter, masked_outcome
from services.batch.runners.base import (
    Runner,
    RunnerError,
    RunOutcome,
    RunSpec,
    StartedRun,
    preview_id,
    previewed_run_id,
)
from services.batch.steps import Launched, RunSteps
from shared.errors import ToilkitError, TransientError
from shared.state_table.runs import RunRecord

log = logging.getLogger(__name__)

#: How long past its own time limit a preview may take to report its end (a runner that
#: stops it at the limit, then a slow last poll) before it is stopped and counts as
#: timed out.
PREVIEW_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class _Watched:
    task: asyncio.Task[None]
    runner: Runner
    started: StartedRun


class RunSupervisor:
    """Owns the runner tasks of the runs this process started or resumed.

    Args:
        steps: how runs are finished (and restarts recovered).
        previews: how previews end (default: over ``steps``).
        progress: reports a watched run's live progress (None: no progress events).
    """

    def __init__(
        self,
        steps: RunSteps,
        previews: Previews | None = None,
        progress: ProgressReporter | None = None,
    ) -> None:
        self.steps = steps
        self.previews = previews or Previews(steps)
        self.progress = progress
        self.runs = steps.runs
        self.runners = steps.runners
        self._watched: dict[str, _Watched] = {}

    # ------------------------------------------------------------------ watching

    async def watch(self, launched: Launched | None) -> None:
        """Watch a run that :class:`RunSteps` started until it ends (None: nothing to do);
        a cancel that arrived while it was starting stops it now."""
        if launched is None:
            return
        record, runner, started = launched.record, launched.runner, launched.started
        self._watch(record, launched.spec, runner, started)
        if record.cancel_requested_by is not None:
            await runner.cancel(record.run_id, started)

    def _watch(self, record: RunRecord, spec: RunSpec, runner: Runner, started: StartedRun) -> None:
        task = asyncio.create_task(self._watch_until_end(record.run_id, spec, runner, started))
        self._watched[record.run_id] = _Watched(task=task, runner=runner, started=started)
        task.add_done_callback(lambda _: self._watched.pop(record.run_id, None))

    async def _watch_until_end(
        self, run_id: str, spec: RunSpec, runner: Runner, started: StartedRun
    ) -> None:
        progress = self.progress.start(spec, runner, started) if self.progress else None
        try:
            outcome = await self._wait_for_outcome(run_id, spec, runner, started)
        finally:
            if progress is not None:
                # Stopped before the finish is announced: no progress follows it.
                progress.cancel()
                await asyncio.gather(progress, return_exceptions=True)
        await self.steps.finish(run_id, masked_outcome(outcome, spec.secrets))

    async def _wait_for_outcome(
        self, run_id: str, spec: RunSpec, runner: Runner, started: StartedRun
    ) -> RunOutcome:
        delay = 1.0
        while True:
            try:
                outcome = await runner.wait(spec, started)
                break
            except TransientError as exc:
                if not runner.resumable:
                    outcome = RunOutcome(status="failed", error=f"lost track of the run: {exc}")
                    break
                log.warning("run %s: cannot read its status (%s); retrying", run_id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("run %s: watching it failed", run_id)
                outcome = RunOutcome(status="failed", error=f"lost track of the run: {exc}")
                break
        return outcome

    async def watch_preview(self, launched: Launched | None) -> None:
        """Wait for a started preview in the background, then act on its end (None:
        nothing to do). Watched under the preview's own id."""
        if launched is None:
            return
        self._watch_preview(
            launched.record.run_id, launched.spec, launched.runner, launched.started
        )

    def _watch_preview(
        self, run_id: str, spec: RunSpec, runner: Runner, started: StartedRun
    ) -> None:
        key = preview_id(run_id)
        task = asyncio.create_task(self._preview_until_end(run_id, spec, runner, started))
        self._watched[key] = _Watched(task=task, runner=runner, started=started)
        task.add_done_callback(lambda _: self._watched.pop(key, None))

    async def _preview_until_end(
        self, run_id: str, spec: RunSpec, runner: Runner, started: StartedRun
    ) -> None:
        try:
            async with asyncio.timeout(spec.timeout_seconds + PREVIEW_GRACE_SECONDS):
                outcome = await runner.wait(spec, started)
        except TimeoutError:
            log.warning("run %s: its preview did not report an end in time; stopping it", run_id)
            with contextlib.suppress(Exception):
                await runner.cancel(spec.run_id, started)
            outcome = RunOutcome(
                status="timed_out",
                error=f"did not end within its time limit of {spec.timeout_seconds:g}s",
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("run %s: waiting for its preview failed", run_id)
            outcome = RunOutcome(status="failed", error=f"lost track of the preview: {exc}")
        try:
            await self.previews.ended(run_id, outcome)
        except Exception:
            # The run stays active: a restart (or the Lambda housekeeping) settles it.
            log.exception("run %s: acting on the end of its preview failed", run_id)

    async def cancel_preview(self, run_id: str) -> None:
        """Stop a preview this process waits for (a withdrawn request)."""
        watched = self._watched.get(preview_id(run_id))
        if watched is not None:
            await watched.runner.cancel(preview_id(run_id), watched.started)

    # ------------------------------------------------------------------ cancelling

    async def cancel_running(self, record: RunRecord) -> bool:
        """Stop a running run this process can reach; False when it cannot."""
        watched = self._watched.get(record.run_id)
        if watched is not None:
            await watched.runner.cancel(record.run_id, watched.started)
            return True
        runner = self.runners.get(record.runner or "")
        started = self.steps.started_of(record)
        if runner is None or started is None or not runner.resumable:
            return False
        await runner.cancel(record.run_id, started)
        return True

    async def settle(self, run_id: str, *, wait_seconds: float, quiet: bool = False) -> bool:
        """Read a started run's outcome from its runner and finish the run (once).

        For a process that cannot watch its runs (a Lambda sandbox is frozen between
        invocations): it is told a run ended, or checks on its runs now and then.

        Args:
            run_id: the run.
            wait_seconds: how long to wait for the runner to report an end.
            quiet: a run still going is expected (a periodic check), not worth a warning.

        Returns:
            True when the run is final now (or unknown), False when it is still going or
            its outcome could not be read.
        """
        record = await self.runs.get(previewed_run_id(run_id) or run_id)
        if record is None or record.final:
            return True  # nothing left to do
        if record.status == "previewing":
            return await self._settle_preview(record, wait_seconds=wait_seconds, quiet=quiet)
        return await _settle_ended(
            self.runners.get(record.runner or ""),
            self.steps.spec_without_values(record),
            self.steps.started_of(record),
            functools.partial(self.steps.finish, run_id),
            wait_seconds=wait_seconds,
            quiet=quiet,
            what=f"run {run_id}: its execution",
        )

    async def _settle_preview(self, record: RunRecord, *, wait_seconds: float, quiet: bool) -> bool:
        spec = self.previews.spec_without_values(record)
        return await _settle_ended(
            self.runners.get(spec.settings.kind) if spec is not None else None,
            spec,
            self.previews.started_of(record),
            functools.partial(self.previews.ended, record.run_id),
            wait_seconds=wait_seconds,
            quiet=quiet,
            what=f"run {record.run_id}: its preview",
        )

    # ------------------------------------------------------------------ restart

    async def resume(self) -> None:
        """Pick up the runs a previous process left: watch remote runs again, settle the
        local ones whose process is gone."""
        for run_id in await self.runs.active_run_ids():
            record = await self.runs.get(run_id)
            if record is None or record.final:
                await self.runs.mark_inactive(run_id)
                continue
            runner = self.runners.get(record.runner or "")
            if record.status == "previewing":
                await self._resume_preview(record)
                continue
            if record.status == "starting":
                if record.owner != self.steps.owner and not _owner_alive(record.owner):
                    await self.watch(
                        await self.steps.recover_start(record, record.starting_by or "")
                    )
                continue
            started = self.steps.started_of(record)
            spec = self.steps.spec_without_values(record)
            if runner is not None and runner.resumable and started and spec:
                log.info("run %s: watching %s %s again", run_id, record.runner, record.runner_ref)
                self._watch(record, spec, runner, started)
            elif not _owner_alive(record.owner):
                left = await self.steps.stop_left_behind(record)
                if left is None:
                    continue  # still running and unstoppable: its slot stays taken
                await self.steps.finish(
                    run_id,
                    RunOutcome(
                        status="failed",
                        error="the batch service that ran it stopped during the run; "
                        f"{left}; its outcome is unknown (see its log)",
                    ),
                )

    async def _resume_preview(self, record: RunRecord) -> None:
        """A preview a previous process started: wait for it again where the runner
        allows, else (a local preview whose process is gone) count it as failed."""
        spec = self.previews.spec_without_values(record)
        started = self.previews.started_of(record)
        runner = self.runners.get(spec.settings.kind) if spec is not None else None
        if runner is not None and runner.resumable and spec is not None and started is not None:
            self._watch_preview(record.run_id, spec, runner, started)
        elif record.owner != self.steps.owner and not _owner_alive(record.owner):
            local = self.runners.get("local")
            stop = getattr(local, "stop_left_behind", None)
            if stop is not None:
                # Its processes carry the preview's own id (TOILKIT_RUN_ID).
                with contextlib.suppress(RunnerError):
                    await stop(preview_id(record.run_id), record.preview_ref)
            await self.previews.ended(
                record.run_id,
                RunOutcome(
                    status="failed",
                    error="the batch service stopped during the preview; request it again",
                ),
            )

    async def stop(self) -> None:
        """Stop local runs (children cannot outlive the service) and let them finish;
        stop watching remote ones (the next start resumes them)."""
        local = self.runners.get("local")
        stop_all = getattr(local, "stop_all", None)
        if stop_all is not None:
            await stop_all()
        remote = [w.task for w in self._watched.values() if w.runner.resumable]
        for task in remote:
            task.cancel()
        pending = [w.task for w in self._watched.values()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def wait_idle(self) -> None:
        """Wait until every watched run has finished (tests, burst mode)."""
        while self._watched:
            await asyncio.gather(
                *(w.task for w in list(self._watched.values())), return_exceptions=True
            )

    def watching(self) -> list[str]:
        return list(self._watched)


def _owner_alive(owner: str | None) -> bool:
    """Whether the process ``host:pid`` still runs (False when unknown or elsewhere dead)."""
    if not owner or ":" not in owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        # Another machine: assume alive; its own restart settles its runs.
        return True
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


async def _settle_ended(
    runner: Runner | None,
    spec: RunSpec | None,
    started: StartedRun | None,
    end: Callable[[RunOutcome], Awaitable[object]],
    *,
    wait_seconds: float,
    quiet: bool,
    what: str,
) -> bool:
    """``end`` an execution a restarted service found (a run's or a preview's) with how it
    ended, if its runner can be asked, it ends within ``wait_seconds`` and its outcome can be
    read (``what`` names it in the log); whether it was ended."""
    if runner is None or started is None or spec is None or not runner.resumable:
        return False
    try:
        async with asyncio.timeout(wait_seconds):
            outcome = await runner.wait(spec, started)
    except TimeoutError:
        if not quiet:
            log.warning("%s has not ended yet", what)
        return False
    except ToilkitError as exc:
        log.warning("%s: cannot read its outcome: %s", what, exc)
        return False
    await end(outcome)
    return True
