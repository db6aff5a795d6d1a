"""The CodeBuild runner (a build per run, without Step Functions), and the build helpers
the Step Functions runner shares.

The command travels as one environment variable, ``TOILKIT_COMMAND``: JSON with the argv
list and the command's variables. The build project's buildspec runs
:data:`BUILDSPEC_COMMAND`, which decodes it and ``exec``s the argv, so no parameter ever
passes through a shell on the build side either.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from services.batch.runners.base import (
    RUN_ID_VARIABLE,
    RUN_MODE_VARIABLE,
    RunnerError,
    RunOutcome,
    RunSpec,
    StartedRun,
)
from services.batch.runners.logs import read_log_tail
from shared.aws import call_aws, error_code
from shared.catalog import CodeBuildRunnerSettings, StepFunctionsRunnerSettings
from shared.errors import PermanentError
from shared.events import RunStatus

log = logging.getLogger(__name__)

#: The variable the command travels in (its JSON: :func:`command_json`).
COMMAND_VARIABLE = "TOILKIT_COMMAND"
#: The buildspec line that runs a toilkit command (``phases.build.commands``). The shell
#: only ever sees this fixed text; the command comes from the environment as JSON.
BUILDSPEC_COMMAND = (
    f'python3 -c \'import json,os;c=json.loads(os.environ["{COMMAND_VARIABLE}"]);'
    'os.environ.update(c["env"]);os.execvp(c["argv"][0],c["argv"])\''
)

#: CodeBuild's own timeout bounds: 5 minutes .. 36 hours.
MIN_BUILD_MINUTES, MAX_BUILD_MINUTES = 5, 2160

_EXIT_STATUS = re.compile(r"exit status (\d+)")


def command_json(spec: RunSpec) -> str:
    """``TOILKIT_COMMAND``: the argv and the command's environment, as JSON."""
    return json.dumps({"argv": list(spec.argv), "env": dict(spec.env)}, ensure_ascii=False)


def build_timeout_minutes(timeout_seconds: float) -> int:
    """CodeBuild's own timeout: the run's, rounded up, within CodeBuild's bounds (a
    backstop; toilkit stops the build itself at the run's timeout)."""
    minutes = math.ceil(timeout_seconds / 60) + 1
    return max(MIN_BUILD_MINUTES, min(MAX_BUILD_MINUTES, minutes))


@dataclass(frozen=True)
class PollPolicy:
    """Waits between status polls: ``initial``, growing by ``factor`` up to ``maximum``."""

    initial: float = 2.0
    maximum: float = 30.0
    factor: float = 1.5

    def delays(self) -> Any:
        delay = self.initial
        while True:
            yield delay
            delay = min(self.maximum, max(delay * self.factor, 0.01))


#: The default polling of a remote run.
DEFAULT_POLL = PollPolicy()


def _ci(data: Any, key: str) -> Any:
    """``data[key]`` whatever the first letter's case (boto answers ``build``, Step
    Functions' aws-sdk integration ``Build``)."""
    if not isinstance(data, dict):
        return None
    if key in data:
        return data[key]
    return data.get(key[:1].upper() + key[1:], data.get(key[:1].lower() + key[1:]))


class BuildReader:
    """Reads a build's outcome: status, exit status, log tail and link."""

    def __init__(self, codebuild: Any, logs: Any, *, region: str, tail_lines: int) -> None:
        self._codebuild = codebuild
        self._logs = logs
        self.region = region
        self.tail_lines = tail_lines

    async def get(self, build_id: str) -> dict[str, Any] | None:
        response = await call_aws(
            "codebuild.batch_get_builds",
            lambda: self._codebuild.batch_get_builds(ids=[build_id]),
        )
        builds = response.get("builds", [])
        return builds[0] if builds else None

    def log_url(self, build: dict[str, Any] | None, build_id: str) -> str:
        logs = _ci(build, "logs") or {}
        group, stream = _ci(logs, "groupName"), _ci(logs, "streamName")
        link = _ci(logs, "deepLink")
        if group and stream and link:
            return str(link)
        project = build_id.split(":", 1)[0]
        return (
            f"https://{self.region}.console.aws.amazon.com/codesuite/codebuild/projects/"
            f"{quote(project, safe='')}/build/{quote(build_id, safe='')}/log?region={self.region}"
        )

    async def tail(self, build_id: str, lines: int) -> tuple[str, ...]:
        """The last ``lines`` lines of a build's CloudWatch log so far (() when the build
        names no log yet or it cannot be read)."""
        build = await self.get(build_id)
        logs = _ci(build, "logs") or {}
        group, stream = _ci(logs, "groupName"), _ci(logs, "streamName")
        if not (group and stream):
            return ()
        return await read_log_tail(self._logs, group, stream, lines)

    async def outcome(
        self, build_id: str, status: RunStatus, *, error: str | None = None
    ) -> RunOutcome:
        """The outcome of a build that ended with ``status`` (details read from CodeBuild)."""
        build = await self.get(build_id)
        tail: tuple[str, ...] = ()
        logs = _ci(build, "logs") or {}
        group, stream = _ci(logs, "groupName"), _ci(logs, "streamName")
        if group and stream:
            tail = await read_log_tail(self._logs, group, stream, self.tail_lines)
        exit_code = 0 if status == "succeeded" else _exit_status(build)
        duration = None
        start, end = _ci(build, "startTime"), _ci(build, "endTime")
        if isinstance(start, datetime) and isinstance(end, datetime):
            duration = max((end - start).total_seconds(), 0.0)
        if status == "failed" and error is None:
            error = _failed_phase(build) or f"build {build_id} failed"
        return RunOutcome(
            status=status,
            exit_code=exit_code,
            log_tail=tail,
            error=error,
            log_url=self.log_url(build, build_id),
            duration_seconds=duration,
        )


def _exit_status(build: dict[str, Any] | None) -> int | None:
    for phase in _ci(build, "phases") or []:
        for context in _ci(phase, "contexts") or []:
            match = _EXIT_STATUS.search(str(_ci(context, "message") or ""))
            if match:
                return int(match.group(1))
    return None


def _failed_phase(build: dict[str, Any] | None) -> str | None:
    for phase in _ci(build, "phases") or []:
        if _ci(phase, "phaseStatus") not in (None, "SUCCEEDED"):
            messages = [str(_ci(c, "message")) for c in _ci(phase, "contexts") or []]
            return f"{_ci(phase, 'phaseType')} phase {_ci(phase, 'phaseStatus')}: " + "; ".join(
                m for m in messages if m
            )
    return None


def build_status_to_run_status(build_status: str, *, cancel_requested: bool) -> RunStatus | None:
    """A run status for an ended build (None while it runs)."""
    statuses: dict[str, RunStatus | None] = {
        "SUCCEEDED": "succeeded",
        "FAILED": "failed",
        "FAULT": "failed",
        "TIMED_OUT": "timed_out",
        "STOPPED": "cancelled" if cancel_requested else "failed",
        "IN_PROGRESS": None,
    }
    return statuses.get(build_status, "failed")


def environment_overrides(spec: RunSpec) -> list[dict[str, str]]:
    return [
        {"name": RUN_ID_VARIABLE, "value": spec.run_id, "type": "PLAINTEXT"},
        {"name": RUN_MODE_VARIABLE, "value": spec.mode, "type": "PLAINTEXT"},
        {"name": COMMAND_VARIABLE, "value": command_json(spec), "type": "PLAINTEXT"},
    ]


@dataclass(eq=False)
class CodeBuildRunner:
    """Starts one CodeBuild build per run and polls it.

    A redelivered start inside CodeBuild's idempotency window (5 minutes) gets the same
    build back: the request's event id is the build's idempotency token.
    """

    kind = "codebuild"
    idempotent_start = True
    resumable = True

    codebuild: Any
    reader: BuildReader
    _: KW_ONLY
    poll: PollPolicy = DEFAULT_POLL
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    _cancelled: set[str] = field(default_factory=set, init=False)

    @staticmethod
    def _settings(spec: RunSpec) -> CodeBuildRunnerSettings | StepFunctionsRunnerSettings:
        settings = spec.settings
        if not isinstance(settings, CodeBuildRunnerSettings | StepFunctionsRunnerSettings):
            raise RunnerError(f"{spec.command} in {spec.environment} is not a CodeBuild run")
        return settings

    async def start(self, spec: RunSpec) -> StartedRun:
        settings = self._settings(spec)
        try:
            response = await call_aws(
                "codebuild.start_build",
                lambda: self.codebuild.start_build(
                    projectName=settings.project,
                    imageOverride=settings.image,
                    timeoutInMinutesOverride=build_timeout_minutes(spec.timeout_seconds),
                    environmentVariablesOverride=environment_overrides(spec),
                    idempotencyToken=spec.request_event_id,
                ),
            )
        except PermanentError as exc:
            raise RunnerError(f"CodeBuild refused to start {settings.project}: {exc}") from exc
        build = response["build"]
        return StartedRun(
            runner=self.kind,
            ref=build["id"],
            started_at=self.clock(),
            log_url=self.reader.log_url(build, build["id"]),
        )

    async def wait(self, spec: RunSpec, started: StartedRun) -> RunOutcome:
        build_id = started.ref
        deadline = started.started_at.timestamp() + spec.timeout_seconds
        timed_out = False
        for delay in self.poll.delays():
            build = await self.reader.get(build_id)
            if build is None:
                return RunOutcome(status="failed", error=f"build {build_id} no longer exists")
            status = build_status_to_run_status(
                str(build.get("buildStatus")), cancel_requested=build_id in self._cancelled
            )
            if status is not None:
                self._cancelled.discard(build_id)
                return await self.reader.outcome(
                    build_id,
                    "timed_out" if timed_out and status != "succeeded" else status,
                    error=f"timed out after {spec.timeout_seconds:g}s" if timed_out else None,
                )
            if not timed_out and self.clock().timestamp() >= deadline:
                timed_out = True
                self._cancelled.add(build_id)
                await self._stop(build_id)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def tail(self, spec: RunSpec, started: StartedRun, lines: int) -> tuple[str, ...]:
        """The build's last log lines so far (live progress)."""
        return await self.reader.tail(started.ref, lines)

    async def cancel(self, run_id: str, started: StartedRun) -> None:
        self._cancelled.add(started.ref)
        await self._stop(started.ref)

    async def _stop(self, build_id: str) -> None:
        try:
            await call_aws("codebuild.stop_build", lambda: self.codebuild.stop_build(id=build_id))
        except PermanentError as exc:
            # Already ended, or gone: the next poll says how it ended.
            log.info(
                "cannot stop build %s: %s (%s)", build_id, exc, error_code(exc.__cause__ or exc)
            )
