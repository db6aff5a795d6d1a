"""Scanning many states: plans under bounded concurrency, each parsed into findings.

:class:`Scanner` runs :meth:`PlanEngine.plan_state` for every state with at most
``concurrency`` at once, parses each plan with :func:`~services.detector.plan.parse_plan`
and returns one typed :class:`StateScan` per state, in the order given. Whatever goes
wrong with one state (a missing directory, a Terraform error, a timeout, a plan the
parser rejects, even a bug) becomes that state's :class:`ScanFailure`; the others carry
on. Cancelling :meth:`Scanner.scan` stops every running Terraform (the engine kills its
process group) before the cancellation propagates.

Plans hold secrets in clear, so the saved plan files live in a per-scan directory that
is removed when the scan ends; the parsed summaries are already masked.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, model_validator

from services.detector.config import StateConfig
from services.detector.credentials import AssumeRole
from services.detector.engine import PlanRun
from services.detector.ignore import IgnoreRule
from services.detector.plan import PlanParseError, PlanSummary, parse_plan
from shared.errors import ConfigError, ToilkitError
from shared.events import ScanMode, ScanPhase, utc_now

log = logging.getLogger(__name__)

ScanStatus = Literal["clean", "drifted", "failed"]

#: Exit codes of ``toilkit drift scan`` (and of anything else that reports a scan).
EXIT_CLEAN = 0
EXIT_FAILED = 1
EXIT_DRIFTED = 2

_UNSAFE_PATH_CHARACTERS = re.compile(r"[^A-Za-z0-9_.-]+")


class PlanEngine(Protocol):
    """Plans one state (``TerraformEngine`` in production)."""

    async def plan_state(
        self,
        path: Path,
        *,
        workspace: str = ...,
        backend_config: Path | None = None,
        refresh_only: bool = False,
        out_dir: Path,
        env: Mapping[str, str] | None = None,
    ) -> PlanRun: ...


class StateCredentials(Protocol):
    """Credentials for a state planned as an assumed role (``RoleCredentials``)."""

    async def environment(self, role: AssumeRole) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class ScanFailure:
    """Why a state has no findings this time.

    Attributes:
        phase: Where it failed: ``discover`` (no such directory or backend file, or a
            malformed entry), ``credentials`` (its role could not be assumed), ``init``,
            ``plan``, ``show``, ``parse`` or ``timeout``.
        reason: One line for people.
        exit_code: Terraform's exit code, when a command failed.
        stderr_excerpt: The end of Terraform's error output.
    """

    phase: ScanPhase
    reason: str
    exit_code: int | None = None
    stderr_excerpt: str = ""


class StateResult(BaseModel):
    """One state's outcome in a CLI run: a parsed plan, or the error that stopped it.

    Attributes:
        name: The state name.
        path: Its directory in the infrastructure repo.
        summary: The parsed plan, when there is one.
        error: Why the state failed (init, plan, parse...), when it did.
        notes: Warnings about how it was scanned (sets shown by position because a
            provider's schema could not be read, a plan close to its timeout).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    path: str
    summary: PlanSummary | None = None
    error: str | None = None
    notes: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _summary_or_error(self) -> StateResult:
        if self.summary is None and self.error is None:
            raise ValueError("a state result needs a summary or an error")
        return self

    @property
    def status(self) -> ScanStatus:
        """failed (error, no plan, or an errored plan), drifted, or clean."""
        if self.error is not None or self.summary is None or self.summary.errored:
            return "failed"
        return "drifted" if self.summary.drifted else "clean"

    @property
    def status_error(self) -> str | None:
        """The error to report: the given one, or a note that the plan errored."""
        if self.error is not None:
            return self.error
        if self.summary is not None and self.summary.errored:
            return "terraform reported errors while planning; findings may be incomplete"
        return None


@dataclass(frozen=True)
class StateScan:
    """One state's outcome in a scan.

    Attributes:
        state: The state as configured.
        mode: The mode it was planned in.
        started_at: When its turn came.
        duration_seconds: From its turn to its result.
        summary: The parsed plan (masked), unless it failed.
        plan_json: The raw ``show -json`` document. It holds secrets in clear: it never
            leaves the detector except through :func:`~services.detector.archive.redact_plan`.
        failure: Why it failed, if it did.
        phase_seconds: Time per Terraform phase, from the engine.
        notes: The engine's warnings (:attr:`~services.detector.engine.PlanRun.notes`).
    """

    state: StateConfig
    mode: ScanMode
    started_at: datetime
    duration_seconds: float
    summary: PlanSummary | None = None
    plan_json: dict[str, Any] | None = field(default=None, repr=False)
    failure: ScanFailure | None = None
    phase_seconds: Mapping[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def status(self) -> ScanStatus:
        return self.result().status

    def result(self) -> StateResult:
        """This state's outcome as a :class:`StateResult` (what the CLI prints)."""
        return StateResult(
            name=self.state.name,
            path=self.state.path,
            summary=self.summary,
            error=self.failure.reason if self.failure else None,
            notes=self.notes,
        )


@dataclass(frozen=True)
class ScanReport:
    """Every state's outcome, in the order the states were given."""

    scan_id: str
    started_at: datetime
    duration_seconds: float
    states: tuple[StateScan, ...]

    @property
    def exit_code(self) -> int:
        """1 when any state failed, else 2 when any drifted or has pending changes, else 0."""
        statuses = {s.status for s in self.states}
        if "failed" in statuses:
            return EXIT_FAILED
        if "drifted" in statuses:
            return EXIT_DRIFTED
        return EXIT_CLEAN

    def results(self) -> list[StateResult]:
        return [s.result() for s in self.states]


class ScanProgress(Protocol):
    """Told when each state starts and finishes (the CLI's progress bar)."""

    def state_started(self, state: StateConfig) -> None: ...

    def state_finished(self, scan: StateScan) -> None: ...


@dataclass(eq=False)
class Scanner:
    """Plans states with bounded concurrency and parses the plans.

    Attributes:
        engine: Runs Terraform for one state.
        concurrency: States planned at once (at least 1).
        work_dir: Where per-scan plan directories are created (and removed).
        ignore_rules: Applied to every plan.
        clock: The current time, timezone-aware (tests inject their own).
        credentials: Assumes the roles of states that name one (``None``: such states
            fail, saying the detector has no AWS access to assume them with).
    """

    engine: PlanEngine
    _: KW_ONLY
    concurrency: int
    work_dir: Path
    ignore_rules: Sequence[IgnoreRule] = ()
    clock: Callable[[], datetime] = utc_now
    credentials: StateCredentials | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.ignore_rules = tuple(self.ignore_rules)

    async def scan(
        self,
        states: Sequence[StateConfig],
        *,
        scan_id: str,
        mode: ScanMode | None = None,
        progress: ScanProgress | None = None,
        extra_rules: Sequence[IgnoreRule] = (),
    ) -> ScanReport:
        """Scan ``states``; one state's failure never stops the others.

        Args:
            states: What to scan.
            scan_id: Names the scan's plan directory (and correlates its events).
            mode: Plan every state in this mode instead of its own.
            progress: Told as states start and finish.
            extra_rules: Ignore rules applied after the configured ones (those written
                from Slack or the CLI, read for this scan).

        Raises:
            asyncio.CancelledError: The scan was cancelled; every Terraform process it
                started has been stopped.
        """
        started_at = self.clock()
        started = time.monotonic()
        scan_dir = self.work_dir / _safe(scan_id)
        slots = asyncio.Semaphore(self.concurrency)
        rules = (*self.ignore_rules, *extra_rules)

        async def one(state: StateConfig, index: int) -> StateScan:
            async with slots:
                if progress is not None:
                    progress.state_started(state)
                out_dir = scan_dir / f"{index:04d}-{_safe(state.name)}"
                outcome = await self._scan_state(state, mode or state.mode, out_dir, rules)
                if progress is not None:
                    progress.state_finished(outcome)
                return outcome

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(s, i)) for i, s in enumerate(states)]
        finally:
            # Saved plans hold secrets in clear; nothing keeps them past the scan.
            await asyncio.to_thread(shutil.rmtree, scan_dir, ignore_errors=True)
        return ScanReport(
            scan_id=scan_id,
            started_at=started_at,
            duration_seconds=time.monotonic() - started,
            states=tuple(t.result() for t in tasks),
        )

    async def _scan_state(
        self,
        state: StateConfig,
        mode: ScanMode,
        out_dir: Path,
        rules: Sequence[IgnoreRule],
    ) -> StateScan:
        started_at = self.clock()
        started = time.monotonic()

        def outcome(
            *,
            failure: ScanFailure | None = None,
            summary: PlanSummary | None = None,
            run: PlanRun | None = None,
        ) -> StateScan:
            return StateScan(
                state=state,
                mode=mode,
                started_at=started_at,
                duration_seconds=time.monotonic() - started,
                summary=summary,
                plan_json=run.plan_json if run is not None and summary is not None else None,
                failure=failure,
                phase_seconds=dict(run.durations) if run is not None else {},
                notes=run.notes if run is not None else (),
            )

        missing = state.config_error or _missing_inputs(state)
        if missing is not None:
            return outcome(failure=ScanFailure(phase="discover", reason=missing))
        try:
            env = await self._credentials_of(state)
        except ToilkitError as exc:
            return outcome(failure=ScanFailure(phase="credentials", reason=str(exc)))
        try:
            run = await self.engine.plan_state(
                state.directory,
                workspace=state.workspace,
                backend_config=state.backend_config,
                refresh_only=mode == "refresh_only",
                out_dir=out_dir,
                env=env,
            )
        except Exception as exc:
            # The engine returns Terraform's failures; reaching here is a bug or a broken
            # machine (disk full...). It fails this state, never the scan.
            log.exception("planning state %s failed unexpectedly", state.name)
            return outcome(failure=ScanFailure(phase="plan", reason=_unexpected(exc)))
        if run.status == "failed" or run.plan_json is None:
            return outcome(
                run=run,
                failure=ScanFailure(
                    phase=run.failed_phase or "plan",
                    reason=run.reason or "terraform failed without saying why",
                    exit_code=run.exit_code,
                    stderr_excerpt=run.stderr_excerpt,
                ),
            )
        try:
            # Parsing a large plan takes a while; a thread keeps the event loop (and the
            # SQS heartbeat of the message that asked for this scan) responsive.
            summary = await asyncio.to_thread(
                parse_plan,
                run.plan_json,
                state=state.name,
                ignore_rules=rules,
                now=started_at,
                set_paths=run.set_paths,
            )
        except PlanParseError as exc:
            return outcome(run=run, failure=ScanFailure(phase="parse", reason=str(exc)))
        except Exception as exc:
            log.exception("parsing the plan of state %s failed unexpectedly", state.name)
            return outcome(run=run, failure=ScanFailure(phase="parse", reason=_unexpected(exc)))
        return outcome(run=run, summary=summary)

    async def _credentials_of(self, state: StateConfig) -> Mapping[str, str] | None:
        if state.assume_role is None:
            return None
        if self.credentials is None:
            raise ConfigError(
                f"state {state.name} has assume_role but this scan has no AWS access to "
                "assume it with (set AWS credentials and AWS_ENDPOINT_URL/region for STS)"
            )
        return await self.credentials.environment(state.assume_role)


def _missing_inputs(state: StateConfig) -> str | None:
    if not state.directory.is_dir():
        return f"the state directory {state.path!r} does not exist ({state.directory})"
    if state.backend_config is not None and not state.backend_config.is_file():
        return f"the backend config file {state.backend_config} does not exist"
    return None


def _unexpected(exc: BaseException) -> str:
    return f"internal error: {type(exc).__name__}: {exc}"


def _safe(name: str) -> str:
    return _UNSAFE_PATH_CHARACTERS.sub("_", name)[:80] or "state"
