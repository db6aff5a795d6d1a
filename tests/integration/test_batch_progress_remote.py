"""Live progress of a CodeBuild run: the tail read from CloudWatch Logs as the build prints.

The CodeBuild stand-in plays the build and, as CodeBuild's agent does, writes the build's
output to the CloudWatch Logs stream its ``logs`` name, on the session's moto server, a
few lines at each poll. The batch service's real CodeBuild runner and
:class:`~services.batch.progress.ProgressReporter` read it back over HTTP
(``BatchGetBuilds`` for the stream, ``GetLogEvents`` for the lines); the events they would
publish are recorded by a publisher that keeps them (the seam; SNS is covered elsewhere).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from services.batch.progress import ProgressReporter
from services.batch.runners.base import RunSpec
from services.batch.runners.codebuild import BuildReader, CodeBuildRunner, PollPolicy
from services.batch.runners.stepfunctions import StepFunctionsRunner
from shared.aws import AwsClients
from shared.catalog import CodeBuildRunnerSettings, StepFunctionsRunnerSettings
from shared.events import BatchRunProgress, EventBase
from shared.settings import AwsSettings
from tests.integration.batch_harness import run_spec
from tests.integration.sfn_moto import create_state_machine
from tests.support import eventually
from toilkit.embedded import EmbeddedAws
from toilkit.standins.codebuild import BuildPlan, CodeBuildStandin, cloudwatch_log_writer

PROJECT = "toilkit-progress"
SECRET = "hunter2-cafe"
OUTPUT = (f"using token {SECRET}", *(f"migrated batch {i}/9" for i in range(1, 10)))


class Recorder:
    """An :class:`~shared.publishing.EventPublisher` that keeps what it is given."""

    def __init__(self) -> None:
        self.events: list[EventBase] = []

    async def publish(self, event: EventBase) -> None:
        self.events.append(event)


class Ticking:
    """A clock that moves 10 s each time it is read."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 6, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=10)
        return self.now


#: The runner's and the reporters' time: 10 s further at each reading.
CLOCK = Ticking()


@pytest.fixture
async def codebuild_standin(moto_endpoint: str) -> AsyncIterator[CodeBuildStandin]:
    async with CodeBuildStandin(log_writer=cloudwatch_log_writer(moto_endpoint)) as standin:
        standin.add_project(PROJECT)
        yield standin


@pytest.fixture
async def runner(
    codebuild_standin: CodeBuildStandin, aws_settings: AwsSettings
) -> AsyncIterator[CodeBuildRunner]:
    standin_settings = AwsSettings(
        AWS_ENDPOINT_URL=codebuild_standin.endpoint_url, AWS_REGION="us-east-1"
    )
    async with AwsClients(standin_settings) as to_standin, AwsClients(aws_settings) as to_moto:
        codebuild = await to_standin.client("codebuild")
        logs = await to_moto.client("logs")
        reader = BuildReader(codebuild, logs, region="us-east-1", tail_lines=20)
        yield CodeBuildRunner(codebuild, reader, poll=PollPolicy(initial=0, maximum=0), clock=CLOCK)


def spec(settings: CodeBuildRunnerSettings | StepFunctionsRunnerSettings | None = None) -> RunSpec:
    return run_spec(
        settings or CodeBuildRunnerSettings(project=PROJECT, image="app:1"),
        "bin/migrate",
        "--token",
        SECRET,
        command="migrate",
        environment="production",
        timeout=600,
        secrets=(SECRET,),
    )


async def test_progress_follows_the_build_log_and_masks_secrets(
    codebuild_standin: CodeBuildStandin, runner: CodeBuildRunner
) -> None:
    # GIVEN a build that prints two lines a poll and succeeds after six polls
    codebuild_standin.plan(
        PROJECT, BuildPlan("SUCCEEDED", after_polls=6, output=OUTPUT, lines_per_poll=2)
    )
    run = spec()
    started = await runner.start(run)
    recorder = Recorder()
    reporter = ProgressReporter(recorder, interval=1, tail_lines=3, clock=CLOCK)

    # WHEN progress is reported three times while it runs
    for _ in range(3):
        await reporter.report(run, runner, started)

    # THEN each event has the log's newest lines, the secret masked, and a larger sequence
    events = [e for e in recorder.events if isinstance(e, BatchRunProgress)]
    assert [e.tail for e in events] == [
        ("using token (sensitive)", "migrated batch 1/9"),
        ("migrated batch 1/9", "migrated batch 2/9", "migrated batch 3/9"),
        ("migrated batch 3/9", "migrated batch 4/9", "migrated batch 5/9"),
    ]
    assert [e.sequence for e in events] == sorted({e.sequence for e in events})
    assert all(e.run_id == run.run_id and e.log_url for e in events)
    assert events[0].elapsed_seconds > 0
    assert not any(SECRET in line for e in events for line in e.tail)

    # AND the finish reads the whole log once the build ended
    outcome = await runner.wait(run, started)
    assert outcome.status == "succeeded"
    assert outcome.log_tail[-1] == "migrated batch 9/9"


async def test_no_output_yet_gives_elapsed_only(
    codebuild_standin: CodeBuildStandin, runner: CodeBuildRunner
) -> None:
    codebuild_standin.plan(PROJECT, BuildPlan("SUCCEEDED", after_polls=3))
    run = spec()
    started = await runner.start(run)
    recorder = Recorder()
    event = await ProgressReporter(recorder, interval=1, clock=CLOCK).report(run, runner, started)
    assert event.tail == ()
    assert event.elapsed_seconds >= 0
    assert recorder.events == [event]


def test_an_interval_below_the_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="below the minimum"):
        ProgressReporter(Recorder(), interval=0.2)


@pytest.mark.moto_only(reason="routes CodeBuild to a stand-in inside moto")
async def test_progress_of_a_step_functions_run_reads_the_log_of_the_build_it_started(
    embedded_aws: EmbeddedAws,
    codebuild_standin: CodeBuildStandin,
    runner: CodeBuildRunner,
    aws: AwsClients,
) -> None:
    # GIVEN the state machine's build prints a line at each of its polls and runs on
    codebuild_standin.plan(
        PROJECT, BuildPlan("SUCCEEDED", after_polls=None, output=OUTPUT, lines_per_poll=1)
    )
    embedded_aws.route_service("codebuild", codebuild_standin.url)
    try:
        sfn = await aws.client("stepfunctions")
        machine = await create_state_machine(sfn, f"progress-{uuid.uuid4().hex[:8]}")
        sfn_runner = StepFunctionsRunner(
            sfn, runner.codebuild, runner.reader, region="us-east-1", clock=CLOCK
        )
        settings = StepFunctionsRunnerSettings(
            state_machine_arn=machine, project=PROJECT, image="app:1", poll_seconds=0
        )
        run = spec(settings)
        started = await sfn_runner.start(run)

        # WHEN its progress is read: the build is found in the execution's history
        async def tail() -> tuple[str, ...]:
            return await sfn_runner.tail(run, started, 3)

        lines = await eventually(tail, timeout=30, every=0.05)
        await sfn_runner.cancel(run.run_id, started)
    finally:
        embedded_aws.route_service("codebuild", None)

    # THEN it has the build's last lines (masking is the reporter's, tested above)
    assert set(lines) <= set(OUTPUT) and len(lines) <= 3
