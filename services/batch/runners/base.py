"""The one interface every runner implements, and what it is given and gives back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from shared.catalog import RunnerSettings
from shared.errors import PermanentError
from shared.events import RunStatus


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
