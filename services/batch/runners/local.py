"""The local runner: the command as a subprocess of the batch service (embedded default).

The argv goes to ``exec`` as a list (never through a shell), so each parameter reaches
the program as exactly one argument, byte for byte. The process gets a clean
environment (a few inherited basics, the runner's and the command's variables; never
the service's AWS credentials), its own process group, and no stdin. Its output (stdout
and stderr, merged in order) is streamed line by line to the run's log.

Timeout and cancel stop the whole process group: SIGTERM, a grace period, then SIGKILL.
A group a killed batch service left behind is stopped by the next one, before its slot is
freed (:meth:`LocalRunner.stop_left_behind`, :mod:`.local_orphans`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from services.batch.runners import local_orphans
from services.batch.runners.base import (
    RUN_ID_VARIABLE,
    RUN_MODE_VARIABLE,
    RunnerError,
    RunOutcome,
    RunSpec,
    StartedRun,
)
from services.batch.runners.local_orphans import GroupRef
from services.batch.runners.logs import RunLog
from shared.events import RunStatus

log = logging.getLogger(__name__)

#: Variables a command inherits from the service's own environment (nothing secret). The
#: Terraform CLI configuration and the detector's toilkit.yaml are inherited too, so that a
#: command that runs Terraform (the Revert button's ``toilkit drift apply``) sees the same
#: providers and states as the detector does.
INHERITED_ENV = (
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "HOME",
    "TMPDIR",
    "SYSTEMROOT",
    "TF_CLI_CONFIG_FILE",
    "TF_PLUGIN_CACHE_DIR",
    "TOILKIT_DETECTOR_CONFIG",
)
#: How long the output may stay open after the process exits (a child that kept the
#: pipe) before the rest of its group is killed.
OUTPUT_DRAIN_SECONDS = 2.0


class RunLogOpener(Protocol):
    """Opens the log of a run (CloudWatch stream and local file)."""

    async def __call__(self, run_id: str) -> RunLog:
        """The opened log of ``run_id``."""


def inherited_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The basics a command inherits (from ``os.environ`` at start-up)."""
    env = {name: environ[name] for name in INHERITED_ENV if name in environ}
    # Python commands print progress as it happens instead of in one block at exit.
    env["PYTHONUNBUFFERED"] = "1"
    return env


StopReason = Literal["cancelled", "timed_out"]


class _Output(asyncio.SubprocessProtocol):
    """Receives the process's output and tells when it exits and when the output closes.

    A protocol rather than ``Process.wait()``: asyncio's ``wait()`` also waits for the
    output pipe to close, which a child left behind can keep open for ever.
    """

    def __init__(self, run_log: RunLog) -> None:
        self._lines = _LineSplitter(run_log)
        self.exited = asyncio.Event()
        self.output_closed = asyncio.Event()

    def pipe_data_received(self, fd: int, data: bytes | bytearray) -> None:
        self._lines.feed(bytes(data))

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self._lines.close()
            self.output_closed.set()

    def process_exited(self) -> None:
        self.exited.set()


class _LineSplitter:
    """Bytes in, one log line per newline out (long lines cut, bad UTF-8 replaced)."""

    def __init__(self, run_log: RunLog) -> None:
        self._log = run_log
        self._pending = b""

    def feed(self, chunk: bytes) -> None:
        self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        for line in lines:
            self._write(line)
        while len(self._pending) > 65536:  # no newline in sight: cut it
            self._write(self._pending[:65536])
            self._pending = self._pending[65536:]

    def close(self) -> None:
        if self._pending:
            self._write(self._pending)
            self._pending = b""

    def _write(self, line: bytes) -> None:
        self._log.write(line.rstrip(b"\r").decode("utf-8", errors="replace"))


@dataclass
class _LocalRun:
    transport: asyncio.SubprocessTransport
    output: _Output
    run_log: RunLog
    started: datetime
    stop_reason: StopReason | None = None
    terminating: asyncio.Task[None] | None = None
    header: str = ""

    @property
    def pid(self) -> int:
        pid = self.transport.get_pid()
        assert pid is not None
        return pid

    @property
    def returncode(self) -> int | None:
        return self.transport.get_returncode()


class LocalRunner:
    """Runs commands as subprocesses of this process.

    Args:
        open_log: makes the run's log (called with the run id).
        base_env: inherited variables (see :func:`inherited_env`).
        kill_grace: seconds between SIGTERM and SIGKILL.
        clock: the current time.
    """

    kind = "local"
    idempotent_start = False
    resumable = False

    def __init__(
        self,
        *,
        open_log: RunLogOpener,
        base_env: Mapping[str, str],
        kill_grace: float = 10,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._open_log = open_log
        self._base_env = dict(base_env)
        self.kill_grace = kill_grace
        self._clock = clock
        self._runs: dict[str, _LocalRun] = {}
        self.owner = local_orphans.this_process()

    def running(self) -> list[str]:
        """Run ids of the processes this runner is watching."""
        return list(self._runs)

    async def start(self, spec: RunSpec) -> StartedRun:
        run_log = await self._open_log(spec.run_id)
        env = {
            **self._base_env,
            **spec.env,
            RUN_ID_VARIABLE: spec.run_id,
            RUN_MODE_VARIABLE: spec.mode,
        }
        header = f"toilkit: {spec.command} in {spec.environment}, run {spec.run_id}"
        run_log.write(header)
        output = _Output(run_log)
        try:
            transport, _ = await asyncio.get_running_loop().subprocess_exec(
                lambda: output,
                *spec.argv,
                cwd=spec.workdir,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as a whole
            )
        except OSError as exc:
            reason = f"cannot start {spec.argv[0]!r} in {spec.workdir}: {exc.strerror or exc}"
            run_log.write(f"toilkit: {reason}")
            await run_log.close()
            raise RunnerError(reason) from exc
        started = self._clock()
        run = _LocalRun(
            transport=transport, output=output, run_log=run_log, started=started, header=header
        )
        self._runs[spec.run_id] = run
        log.info("run %s: started pid %d: %s", spec.run_id, run.pid, spec.argv[0])
        return StartedRun(
            runner=self.kind,
            ref=str(GroupRef.of_leader(os.getpid(), run.pid)),
            started_at=started,
            log_url=run_log.url,
        )

    async def wait(self, spec: RunSpec, started: StartedRun) -> RunOutcome:
        run = self._runs.get(spec.run_id)
        if run is None:
            return RunOutcome(
                status="failed",
                error="the process is not a child of this batch service (it restarted "
                "during the run); its outcome is unknown",
            )
        try:
            try:
                async with asyncio.timeout(spec.timeout_seconds):
                    await run.output.exited.wait()
            except TimeoutError:
                if run.stop_reason is None:
                    run.stop_reason = "timed_out"
                    run.run_log.write(
                        f"toilkit: timed out after {spec.timeout_seconds:g}s; stopping it"
                    )
                await self._terminate(run)
            if run.terminating is not None:
                await run.terminating
            await self._drain_output(run)
            return self._outcome(spec, run)
        finally:
            self._runs.pop(spec.run_id, None)
            run.transport.close()
            await run.run_log.close()

    async def tail(self, spec: RunSpec, started: StartedRun, lines: int) -> tuple[str, ...]:
        """The last ``lines`` lines the run printed so far (live progress; the runner's
        own first line left out)."""
        run = self._runs.get(spec.run_id)
        if run is None:
            return ()
        printed = list(run.run_log.tail)
        if printed and printed[0] == run.header:
            printed.pop(0)
        return tuple(printed[-lines:]) if lines > 0 else ()

    async def cancel(self, run_id: str, started: StartedRun) -> None:
        run = self._runs.get(run_id)
        if run is None or run.returncode is not None:
            return
        if run.stop_reason is None:
            run.stop_reason = "cancelled"
            run.run_log.write("toilkit: cancel requested; stopping it")
        await self._terminate(run)

    async def stop_all(self) -> None:
        """Cancel every run (the service is stopping; its children cannot outlive it)."""
        for run in list(self._runs.values()):
            if run.stop_reason is None:
                run.stop_reason = "cancelled"
                run.run_log.write("toilkit: the batch service is stopping; stopping the run")
            await self._terminate(run)

    async def stop_left_behind(self, run_id: str, ref: str | None) -> str:
        """Stop what a batch service that died left running of ``run_id`` on this host.

        Args:
            run_id: the run (its processes carry it in ``TOILKIT_RUN_ID``).
            ref: its ``runner_ref`` when it got that far (the group and its start time).

        Returns:
            What was found and done, for the run's error and audit.

        Raises:
            RunnerError: it still runs after SIGKILL, or it runs on another host; its slot
                must stay taken.
        """
        group = GroupRef.parse(ref)
        if group is not None and group.host != socket.gethostname():
            raise RunnerError(f"its process group {group} runs on {group.host}, not here")
        pgids = local_orphans.groups_of_run(run_id)
        if group is not None and local_orphans.is_still_ours(group):
            pgids.add(group.pgid)
        if not pgids:
            return "its process had ended"
        for pgid in sorted(pgids):
            log.warning("run %s: stopping process group %d left by a batch service", run_id, pgid)
            if not await local_orphans.stop_group(pgid, self.kill_grace):
                raise RunnerError(f"its process group {pgid} still runs after SIGKILL")
        return f"its process group {', '.join(map(str, sorted(pgids)))} was still running and was stopped"

    async def _terminate(self, run: _LocalRun) -> None:
        if run.terminating is None:
            run.terminating = asyncio.create_task(self._stop_group(run))
        await asyncio.shield(run.terminating)

    async def _stop_group(self, run: _LocalRun) -> None:
        """SIGTERM the group, give it ``kill_grace`` seconds, then SIGKILL what is left."""
        pgid = run.pid
        _signal_group(pgid, signal.SIGTERM)
        try:
            async with asyncio.timeout(self.kill_grace):
                await run.output.exited.wait()
        except TimeoutError:
            run.run_log.write(
                f"toilkit: still running {self.kill_grace:g}s after SIGTERM; sending SIGKILL"
            )
        # Also reaches children the program left behind when it exited on SIGTERM.
        _signal_group(pgid, signal.SIGKILL)
        await run.output.exited.wait()

    async def _drain_output(self, run: _LocalRun) -> None:
        try:
            async with asyncio.timeout(OUTPUT_DRAIN_SECONDS):
                await run.output.output_closed.wait()
        except TimeoutError:
            # A child still holds the output pipe after the program exited.
            run.run_log.write("toilkit: the program left processes behind; killing them")
            _signal_group(run.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(OUTPUT_DRAIN_SECONDS):
                    await run.output.output_closed.wait()

    def _outcome(self, spec: RunSpec, run: _LocalRun) -> RunOutcome:
        code = run.returncode
        assert code is not None
        exit_code = code if code >= 0 else None
        error = None
        if code < 0:
            error = f"killed by {signal.Signals(-code).name}"
        if run.stop_reason is not None:
            status: RunStatus = run.stop_reason
        elif code == 0:
            status = "succeeded"
        else:
            # The exit code says why; ``error`` is for what it cannot say (a signal).
            status = "failed"
        duration = (self._clock() - run.started).total_seconds()
        run.run_log.write(
            f"toilkit: {status}"
            + (f", exit status {exit_code}" if exit_code is not None else "")
            + (f" ({error})" if error and exit_code is None else "")
            + f" after {duration:.1f}s"
        )
        return RunOutcome(
            status=status,
            exit_code=exit_code,
            log_tail=tuple(run.run_log.tail),
            error=error if status != "succeeded" else None,
            log_url=run.run_log.url,
            duration_seconds=max(duration, 0.0),
        )


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
