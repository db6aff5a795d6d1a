"""The one interface every runner implements, and what it is given and gives back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol, TypeAlias

from shared.catalog import RunnerSettings
from shared.errors import PermanentError
from shared.events import RunStatus

#: What a build or process is for: the run itself, or its preview (a dry run shown to the
#: approvers). Runners pass it on as ``TOILKIT_RUN_MODE``; the state machine takes it as
#: its input's ``mode``.
RunMode: TypeAlias = Literal["run", "preview"]


#: What a preview's run id and request event id add to the run's (its log, its process,
#: its build and its execution are its own).
PREVIEW_SUFFIX = "-preview"
#: What every runner puts in a command's environment: its run's id and mode. The local
#: runner also finds a run's leftover processes by the id (``local_orphans``).
RUN_ID_VARIABLE = "TOILKIT_RUN_ID"
RUN_MODE_VARIABLE = "TOILKIT_RUN_MODE"


def preview_id(run_id: str) -> str:
    """The id a run's preview goes by at the runner."""
    return run_id + PREVIEW_SUFFIX


def previewed_run_id(runner_id: str) -> str | None:
    """The run whose preview goes by ``runner_id`` at the runner (None: not a preview)."""
    return runner_id.removesuffix(PREVIEW_SUFFIX) if runner_id.endswith(PREVIEW_SUFFIX) else None


class RunnerError(PermanentError):
    """The runner cannot start this run (missing program, unknown project ...)."""


@dataclass(frozen=True)
class RunSpec:
    """Everything a runner needs to run one command; built from the catalog, never from
    the request alone.

    Attributes:
        argv: the program and its arguments, parameters already filled in; each item
            reaches the process as it is (no shell ever sees it).
        env: the command's own environment variables (parameters filled in) merged over
            the runner settings' ``env``.
        workdir: the local runner's working directory (ignored by remote runners).
        mode: ``preview`` for a run's preview: its own ``run_id`` and
            ``request_event_id`` (``<run's>-preview``), so it never meets the run's own
            process, log, build or execution.
        secrets: the values of its sensitive parameters, masked out of the log tails it
            shows (empty for a run resumed after a restart: the values are gone).
    """

    run_id: str
    request_event_id: str
    command: str
    environment: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    timeout_seconds: float
    settings: RunnerSettings
    workdir: Path = field(default_factory=Path.cwd)
    mode: RunMode = "run"
    secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class StartedRun:
    """A run that is under way.

    Attributes:
        ref: what identifies it to the runner (``host:pid``, an execution ARN, a build id).
        resumed: the runner found it already started (a redelivered request).
    """

    runner: str
    ref: str
    started_at: datetime
    log_url: str | None = None
    resumed: bool = False


@dataclass(frozen=True)
class RunOutcome:
    status: RunStatus
    exit_code: int | None = None
    log_tail: tuple[str, ...] = ()
    error: str | None = None
    log_url: str | None = None
    duration_seconds: float | None = None


class Runner(Protocol):
    """Starts runs, waits for them to end, and stops them."""

    kind: str
    #: Starting the same run twice starts it once (so a start interrupted by a crash can
    #: simply be tried again).
    idempotent_start: bool
    #: :meth:`wait` works in a process other than the one that started the run.
    resumable: bool

    async def start(self, spec: RunSpec) -> StartedRun:
        """Start the run and return as soon as it is under way.

        Raises:
            RunnerError: it cannot start (nothing ran).
            TransientError: try again later.
        """

    async def wait(self, spec: RunSpec, started: StartedRun) -> RunOutcome:
        """Wait until the run ends (enforcing its timeout) and say how it ended."""

    async def cancel(self, run_id: str, started: StartedRun) -> None:
        """Ask the run to stop; :meth:`wait` then returns ``cancelled``."""
