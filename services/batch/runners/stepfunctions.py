"""The Step Functions runner (production): one execution of
``infra/stepfunctions/batch_run.asl.json`` per run.

The state machine starts a CodeBuild build with the command as environment overrides,
polls it, stops it when the run's time is up, and ends ``Succeeded`` or failed with
``BuildFailed`` / ``RunTimedOut`` / ``PollFailed`` / ``BuildNotStarted`` (the cause
carries the build id and status as JSON). The execution is named after the request's
event id, so a redelivered request finds ``ExecutionAlreadyExists`` and carries on with
the execution already running instead of starting a second one.

Completion: on AWS an EventBridge rule sends the execution's status changes to an SQS
queue (:class:`ExecutionEvents`); without one (moto, LocalStack) executions are polled
with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from services.batch.runners.base import RunnerError, RunOutcome, RunSpec, StartedRun
from services.batch.runners.codebuild import (
    DEFAULT_POLL,
    BuildReader,
    PollPolicy,
    build_timeout_minutes,
    command_json,
)
from shared.aws import call_aws, error_code
from shared.catalog import StepFunctionsRunnerSettings
from shared.errors import PermanentError

log = logging.getLogger(__name__)

#: The EventBridge ``detail-type`` of an execution status change.
STATUS_CHANGE = "Step Functions Execution Status Change"


def execution_name(request_event_id: str) -> str:
    """A valid execution name (1-80 of ``[A-Za-z0-9_-]``) from the request's event id."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", request_event_id)[:80] or "run"


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN an execution of ``state_machine_arn`` named ``name`` has."""
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"


#: The longest wait between two polls of a build: how late, at most, the end of a long run
#: is noticed.
MAX_POLL_SECONDS = 120
#: Past the first polls, each wait is this fraction of the time the run has taken so far.
POLL_GROWTH = 0.1


def poll_waits(first_seconds: int, timeout_seconds: float) -> list[int]:
    """The state machine's waits before each poll of the build, up to the run's timeout.

    ``first_seconds`` while the run is young, then a tenth of the time it has taken so far,
    up to :data:`MAX_POLL_SECONDS` (or ``first_seconds`` if that is longer): a short run is
    noticed within seconds of its end, and a 24 h run costs a few hundred polls instead of
    thousands (each poll is 11 history events, and an execution stops at 25,000). The
    waits add up to the timeout or just past it, so the build is never stopped early.
    ``first_seconds`` 0 (emulators) waits 0 s each time but counts as 1 s growing the same
    way, so the list stays as short as a real run's.
    """
    step = max(first_seconds, 1)
    longest = max(MAX_POLL_SECONDS, step)
    waits: list[int] = []
    elapsed = 0
    while elapsed < timeout_seconds:
        wait = min(longest, max(step, math.ceil(elapsed * POLL_GROWTH)))
        waits.append(wait if first_seconds > 0 else 0)
        elapsed += wait
    return waits or [first_seconds]


def execution_input(spec: RunSpec, settings: StepFunctionsRunnerSettings) -> dict[str, Any]:
    """The state machine's input: the build's parameters and its polls (``poll.waits``,
    one wait per poll; ``poll.max`` of them cover the timeout, rounded up, so the build is
    never stopped before its time). ``mode`` says whether the build is the run or its
    preview (the same state machine runs both; the build gets it as ``TOILKIT_RUN_MODE``)."""
    waits = poll_waits(settings.poll_seconds, spec.timeout_seconds)
    return {
        "mode": spec.mode,
        "run_id": spec.run_id,
        "project_name": settings.project,
        "image": settings.image,
        "build_timeout_minutes": build_timeout_minutes(spec.timeout_seconds),
        "command_json": command_json(spec),
        "poll": {"count": 0, "max": len(waits), "waits": waits},
    }


class ExecutionEvents:
    """Execution status changes that EventBridge puts on an SQS queue.

    Each waiter is an :class:`asyncio.Event` set when its execution leaves RUNNING. A
    change for an execution nobody here waits for (another batch instance's) is dropped:
    that instance still polls, only more slowly.
    """

    def __init__(self, sqs: Any, queue_url: str, *, wait_seconds: int = 20) -> None:
        self._sqs = sqs
        self.queue_url = queue_url
        self.wait_seconds = wait_seconds
        self._waiters: dict[str, asyncio.Event] = {}
        self._stopping = asyncio.Event()

    def waiter(self, arn: str) -> asyncio.Event:
        return self._waiters.setdefault(arn, asyncio.Event())

    def forget(self, arn: str) -> None:
        self._waiters.pop(arn, None)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Consume the queue until :meth:`stop`."""
        while not self._stopping.is_set():
            try:
                response = await self._sqs.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=self.wait_seconds,
                )
            except Exception as exc:
                log.warning("cannot receive execution status changes: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 5)
                continue
            for message in response.get("Messages", []):
                self.deliver(message.get("Body", ""))
                with contextlib.suppress(Exception):
                    await self._sqs.delete_message(
                        QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                    )

    def deliver(self, body: str) -> str | None:
        """Handle one EventBridge event; returns the execution ARN it ended, if any."""
        try:
            event = json.loads(body)
            detail = event["detail"]
            arn, status = str(detail["executionArn"]), str(detail["status"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a message that is no execution status change: %.200s", body)
            return None
        if event.get("detail-type") != STATUS_CHANGE or status == "RUNNING":
            return None
        waiter = self._waiters.get(arn)
        if waiter is not None:
            waiter.set()
        return arn


@dataclass(eq=False)
class StepFunctionsRunner:
    """Runs a command as a Step Functions execution that drives a CodeBuild build."""

    kind = "stepfunctions"
    idempotent_start = True
    resumable = True

    sfn: Any
    codebuild: Any
    reader: BuildReader
    _: KW_ONLY
    region: str
    poll: PollPolicy = DEFAULT_POLL
    events: ExecutionEvents | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    _cancelled: set[str] = field(default_factory=set, init=False)
    #: Execution ARN -> the build it started (found once in its history).
    _builds: dict[str, str] = field(default_factory=dict, init=False)

    def console_url(self, arn: str) -> str:
        return (
            f"https://{self.region}.console.aws.amazon.com/states/home?region={self.region}"
            f"#/v2/executions/details/{quote(arn, safe=':')}"
        )

    async def start(self, spec: RunSpec) -> StartedRun:
        settings = spec.settings
        if not isinstance(settings, StepFunctionsRunnerSettings):
            raise RunnerError(f"{spec.command} in {spec.environment} is not a Step Functions run")
        name = execution_name(spec.request_event_id)
        body = json.dumps(execution_input(spec, settings), ensure_ascii=False)
        resumed = False
        try:
            response = await call_aws(
                "stepfunctions.start_execution",
                lambda: self.sfn.start_execution(
                    stateMachineArn=settings.state_machine_arn, name=name, input=body
                ),
            )
            arn = str(response["executionArn"])
        except PermanentError as exc:
            if error_code(exc.__cause__ or exc) != "ExecutionAlreadyExists":
                raise RunnerError(f"Step Functions refused the run: {exc}") from exc
            # The same request was started before (a redelivery): that execution is it.
            arn = execution_arn(settings.state_machine_arn, name)
            resumed = True
            log.info("run %s: execution %s already exists; not starting another", spec.run_id, arn)
        return StartedRun(
            runner=self.kind,
            ref=arn,
            started_at=self.clock(),
            log_url=self.console_url(arn),
            resumed=resumed,
        )

    async def wait(self, spec: RunSpec, started: StartedRun) -> RunOutcome:
        arn = started.ref
        waiter = self.events.waiter(arn) if self.events is not None else None
        try:
            for delay in self.poll.delays():
                execution = await call_aws(
                    "stepfunctions.describe_execution",
                    lambda: self.sfn.describe_execution(executionArn=arn),
                )
                if execution["status"] != "RUNNING":
                    return await self._outcome(execution)
                if waiter is None:
                    await asyncio.sleep(delay)
                else:
                    # Notified by EventBridge; the slow poll only covers a lost event.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(waiter.wait(), max(delay, self.poll.maximum) * 4)
        finally:
            self._builds.pop(arn, None)
            if self.events is not None:
                self.events.forget(arn)
        raise AssertionError("unreachable")  # pragma: no cover

    async def tail(self, spec: RunSpec, started: StartedRun, lines: int) -> tuple[str, ...]:
        """The last log lines of the build the execution started (live progress; () until
        it has started one)."""
        build_id = self._builds.get(started.ref)
        if build_id is None:
            build_id = await self._build_id_from_history(started.ref)
            if build_id is None:
                return ()
            self._builds[started.ref] = build_id
        return await self.reader.tail(build_id, lines)

    async def cancel(self, run_id: str, started: StartedRun) -> None:
        arn = started.ref
        self._cancelled.add(arn)
        build_id = await self._build_id_from_history(arn)
        try:
            await call_aws(
                "stepfunctions.stop_execution",
                lambda: self.sfn.stop_execution(
                    executionArn=arn, error="Cancelled", cause=f"run {run_id} cancelled"
                ),
            )
        except PermanentError as exc:
            log.info("cannot stop execution %s: %s", arn, exc)
        if build_id is not None:
            # Stopping the execution does not stop the build it started.
            try:
                await call_aws(
                    "codebuild.stop_build", lambda: self.codebuild.stop_build(id=build_id)
                )
            except PermanentError as exc:
                log.info("cannot stop build %s: %s", build_id, exc)

    async def _build_id_from_history(self, arn: str) -> str | None:
        try:
            history = await call_aws(
                "stepfunctions.get_execution_history",
                lambda: self.sfn.get_execution_history(executionArn=arn, maxResults=100),
            )
        except PermanentError:
            return None
        for event in history.get("events", []):
            details = event.get("taskSucceededEventDetails") or {}
            if details.get("resource") != "startBuild":
                continue
            output = json.loads(details.get("output") or "{}")
            build = output.get("Build") or output.get("build") or {}
            build_id = build.get("Id") or build.get("id")
            if build_id:
                return str(build_id)
        return None

    async def _outcome(self, execution: dict[str, Any]) -> RunOutcome:
        arn = str(execution["executionArn"])
        status = execution["status"]
        cancelled = arn in self._cancelled
        self._cancelled.discard(arn)
        duration = None
        start, stop = execution.get("startDate"), execution.get("stopDate")
        if isinstance(start, datetime) and isinstance(stop, datetime):
            duration = max((stop - start).total_seconds(), 0.0)
        if status == "SUCCEEDED":
            build = json.loads(execution.get("output") or "{}")
            outcome = await self.reader.outcome(str(build.get("id")), "succeeded")
        elif status == "FAILED":
            outcome = await self._failed(execution)
        elif status == "TIMED_OUT":
            outcome = RunOutcome(
                status="timed_out", error="the execution hit the state machine's own timeout"
            )
        elif cancelled:
            outcome = RunOutcome(status="cancelled")
        else:
            outcome = RunOutcome(
                status="failed", error=f"execution {status.lower()} outside toilkit"
            )
        if outcome.duration_seconds is None and duration is not None:
            outcome = RunOutcome(**{**outcome.__dict__, "duration_seconds": duration})
        if outcome.log_url is None:
            outcome = RunOutcome(**{**outcome.__dict__, "log_url": self.console_url(arn)})
        return outcome

    async def _failed(self, execution: dict[str, Any]) -> RunOutcome:
        error = str(execution.get("error") or "")
        cause = str(execution.get("cause") or "")
        if error == "BuildNotStarted":
            return RunOutcome(status="failed", error=f"CodeBuild did not start the build: {cause}")
        try:
            build = json.loads(cause)
            build_id = str(build["id"])
        except (ValueError, KeyError, TypeError):
            return RunOutcome(status="failed", error=f"{error}: {cause}".strip(": "))
        if error == "RunTimedOut":
            return await self.reader.outcome(
                build_id, "timed_out", error=f"stopped when its time was up (build {build_id})"
            )
        if error == "PollFailed":
            with contextlib.suppress(PermanentError):
                await call_aws(
                    "codebuild.stop_build", lambda: self.codebuild.stop_build(id=build_id)
                )
            return await self.reader.outcome(
                build_id, "failed", error=f"lost track of build {build_id}; stopped it"
            )
        build_status = str(build.get("status", ""))
        if build_status == "TIMED_OUT":
            return await self.reader.outcome(build_id, "timed_out")
        if build_status == "STOPPED":
            # toilkit stops a build only with its execution (cancel, time up): someone else did.
            return await self.reader.outcome(
                build_id, "failed", error=f"build {build_id} was stopped outside toilkit"
            )
        return await self.reader.outcome(build_id, "failed")
