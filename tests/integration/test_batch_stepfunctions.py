"""The Step Functions definition executed by moto's interpreter, and the Step Functions
and CodeBuild runners against moto over HTTP.

moto's CodeBuild never runs a build: StartBuild answers IN_PROGRESS and the first
BatchGetBuilds answers SUCCEEDED (StopBuild answers STOPPED, and the next BatchGetBuilds
SUCCEEDED again). So moto reaches the definition's success, time-up and start-failure
paths; the branches of a build that fails, faults, times out or is stopped run against the
CodeBuild stand-in in test_batch_run_branches.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.batch.runners.base import RunnerError, RunSpec, StartedRun
from services.batch.runners.codebuild import (
    BUILDSPEC_COMMAND,
    BuildReader,
    CodeBuildRunner,
    PollPolicy,
    command_json,
)
from services.batch.runners.stepfunctions import (
    STATUS_CHANGE,
    ExecutionEvents,
    StepFunctionsRunner,
    execution_input,
)
from shared.aws import AwsClients
from shared.catalog import (
    CodeBuildRunnerSettings,
    StepFunctionsRunnerSettings,
    ValidatedRequest,
    validate_request,
)
from shared.events import BatchRunFinished, BatchRunStarted, RunParameter, new_event_id
from shared.state_table.runs import RunRecord
from shared.topology import BootstrapReport, Names
from tests.integration.batch_harness import (
    BatchHarness,
    make_harness,
    run_record,
    run_spec,
)
from tests.integration.sfn_moto import (
    build_variables,
    create_codebuild_project,
    create_state_machine,
    load_definition,
    moto_dialect,
    run_to_end,
    sfn_settings,
    stepfunctions_environment,
)
from tests.support import eventually

FAST_POLL = PollPolicy(initial=0.05, maximum=0.2)
ECHO_ARGS = Path(__file__).resolve().parents[2] / "catalog" / "scripts" / "echo_args.py"


@pytest.fixture
async def sfn(aws: AwsClients) -> Any:
    return await aws.client("stepfunctions")


@pytest.fixture
async def codebuild(aws: AwsClients) -> Any:
    return await aws.client("codebuild")


@pytest.fixture
async def project(codebuild: Any) -> str:
    name = f"toilkit-batch-{uuid.uuid4().hex[:8]}"
    await create_codebuild_project(codebuild, name)
    return name


@pytest.fixture
async def state_machine(sfn: Any) -> str:
    return await create_state_machine(sfn, f"toilkit-batch-run-{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def reader(aws: AwsClients, codebuild: Any) -> BuildReader:
    return BuildReader(codebuild, await aws.client("logs"), region="us-east-1", tail_lines=20)


def spec_for(
    settings: StepFunctionsRunnerSettings | CodeBuildRunnerSettings,
    *,
    argv: tuple[str, ...] = ("python3", "scripts/echo_args.py", "; rm -rf /"),
    timeout: float = 60,
) -> RunSpec:
    return run_spec(settings, *argv, env={"ECHO_VALUE": "; rm -rf /"}, timeout=timeout)


async def start_build_parameters(sfn: Any, execution_arn: str) -> dict[str, Any]:
    """What the execution's StartBuild task passed to CodeBuild (camelCase)."""
    history = await sfn.get_execution_history(executionArn=execution_arn)
    return next(
        json.loads(e["taskScheduledEventDetails"]["parameters"])
        for e in history["events"]
        if e.get("taskScheduledEventDetails", {}).get("resource") == "startBuild"
    )


async def visited(sfn: Any, execution_arn: str) -> list[str]:
    history = await sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)
    return [
        e["stateEnteredEventDetails"]["name"]
        for e in history["events"]
        if "stateEnteredEventDetails" in e
    ]


# --------------------------------------------------------------------------- the definition


def test_the_moto_dialect_changes_only_the_casing_of_aws_sdk_fields() -> None:
    definition = load_definition()
    translated = moto_dialect(definition)
    assert translated["States"].keys() == definition["States"].keys()
    for name, state in definition["States"].items():
        moved = translated["States"][name]
        if not str(state.get("Resource", "")).startswith("arn:aws:states:::aws-sdk:"):
            assert moved == state
            continue
        assert json.dumps(moved).lower() == json.dumps(state).lower()
        assert {k: v for k, v in moved.items() if k not in ("Parameters", "ResultSelector")} == {
            k: v for k, v in state.items() if k not in ("Parameters", "ResultSelector")
        }
    start = translated["States"]["StartBuild"]
    assert start["Parameters"]["projectName.$"] == "$.project_name"
    assert start["ResultSelector"] == {"id.$": "$.build.id", "status.$": "$.build.buildStatus"}


def test_the_definition_uses_only_the_aws_sdk_start_then_poll_integrations() -> None:
    resources = {
        state["Resource"]
        for state in load_definition()["States"].values()
        if state["Type"] == "Task"
    }
    assert resources == {
        "arn:aws:states:::aws-sdk:codebuild:startBuild",
        "arn:aws:states:::aws-sdk:codebuild:batchGetBuilds",
        "arn:aws:states:::aws-sdk:codebuild:stopBuild",
    }


async def test_the_definition_starts_polls_and_finishes_a_build_in_moto(
    sfn: Any, state_machine: str, project: str
) -> None:
    settings = sfn_settings(state_machine, project)
    spec = spec_for(settings)
    described = await run_to_end(sfn, state_machine, execution_input(spec, settings))

    assert described["status"] == "SUCCEEDED"
    output = json.loads(described["output"])
    assert output["status"] == "SUCCEEDED" and output["id"].startswith(f"{project}:")
    assert await visited(sfn, described["executionArn"]) == [
        "Mode?",
        "StartBuild",
        "BuildEnded?",
        "NextPoll",
        "WaitBeforePoll",
        "PollBuild",
        "BuildEnded?",
        "Succeeded",
    ]
    # The command reached CodeBuild as data: one JSON variable, the injection verbatim.
    scheduled = await start_build_parameters(sfn, described["executionArn"])
    variables = build_variables(scheduled)
    assert json.loads(variables["TOILKIT_COMMAND"]) == {
        "argv": ["python3", "scripts/echo_args.py", "; rm -rf /"],
        "env": {"ECHO_VALUE": "; rm -rf /"},
    }
    assert variables["TOILKIT_RUN_ID"] == spec.run_id
    assert variables["TOILKIT_RUN_MODE"] == "run"
    assert scheduled["imageOverride"] == "app:1"
    assert scheduled["timeoutInMinutesOverride"] == 5


async def test_the_definition_stops_the_build_when_the_time_is_up(
    sfn: Any, state_machine: str, project: str
) -> None:
    settings = sfn_settings(state_machine, project)
    run_input = execution_input(spec_for(settings), settings)
    run_input["poll"]["max"] = 0  # no poll fits in the time left
    described = await run_to_end(sfn, state_machine, run_input)

    assert described["status"] == "FAILED"
    assert described["error"] == "RunTimedOut"
    assert json.loads(described["cause"])["status"] == "STOPPED"
    assert await visited(sfn, described["executionArn"]) == [
        "Mode?",
        "StartBuild",
        "BuildEnded?",
        "StopBuild",
        "EndedBeforeStop?",
        "TimedOut",
    ]


async def test_the_definition_catches_a_build_that_cannot_start(
    sfn: Any, state_machine: str
) -> None:
    settings = sfn_settings(state_machine, "no-such-project")
    described = await run_to_end(sfn, state_machine, execution_input(spec_for(settings), settings))

    assert described["status"] == "FAILED"
    assert described["error"] == "BuildNotStarted"
    assert "Project cannot be found" in described["cause"]
    assert await visited(sfn, described["executionArn"]) == [
        "Mode?",
        "StartBuild",
        "BuildNotStarted",
    ]


# --------------------------------------------------------------------------- the runner


@pytest.fixture
def runner(sfn: Any, codebuild: Any, reader: BuildReader) -> StepFunctionsRunner:
    return StepFunctionsRunner(sfn, codebuild, reader, region="us-east-1", poll=FAST_POLL)


async def test_the_runner_starts_an_execution_once_per_request(
    runner: StepFunctionsRunner, sfn: Any, state_machine: str, project: str
) -> None:
    settings = sfn_settings(state_machine, project)
    spec = spec_for(settings)
    started = await runner.start(spec)
    # A redelivered request while it runs: Step Functions answers with the same
    # execution (same name, same input).
    again = await runner.start(spec)
    assert again.ref == started.ref
    assert started.ref.endswith(
        f":execution:{state_machine.rsplit(':', 1)[1]}:{spec.request_event_id}"
    )
    assert started.log_url and "console.aws.amazon.com/states" in started.log_url

    outcome = await runner.wait(spec, started)
    assert outcome.status == "succeeded" and outcome.exit_code == 0
    assert outcome.duration_seconds is not None

    # Redelivered after it ended: ExecutionAlreadyExists, taken as "started before".
    late = await runner.start(spec)
    assert late.resumed and late.ref == started.ref
    executions = await sfn.list_executions(stateMachineArn=state_machine)
    assert len(executions["executions"]) == 1


async def test_the_runner_reports_a_build_that_never_started(
    runner: StepFunctionsRunner, state_machine: str
) -> None:
    settings = sfn_settings(state_machine, "no-such-project")
    spec = spec_for(settings)
    outcome = await runner.wait(spec, await runner.start(spec))
    assert outcome.status == "failed"
    assert outcome.error and outcome.error.startswith("CodeBuild did not start the build: ")


async def test_the_runner_reports_a_run_stopped_at_its_deadline_as_timed_out(
    runner: StepFunctionsRunner, sfn: Any, state_machine: str, project: str
) -> None:
    settings = sfn_settings(state_machine, project)
    spec = spec_for(settings)
    run_input = execution_input(spec, settings)
    run_input["poll"]["max"] = 0
    described = await run_to_end(sfn, state_machine, run_input)
    started = StartedRun(
        runner="stepfunctions", ref=described["executionArn"], started_at=datetime.now(UTC)
    )
    outcome = await runner.wait(spec, started)
    assert outcome.status == "timed_out"
    assert outcome.error and "stopped when its time was up" in outcome.error


async def test_cancel_stops_the_execution_and_reports_cancelled(
    runner: StepFunctionsRunner, sfn: Any, state_machine: str, project: str
) -> None:
    # A long wait between polls keeps the execution RUNNING until the cancel.
    settings = sfn_settings(state_machine, project, poll_seconds=300)
    spec = spec_for(settings, timeout=3600)
    started = await runner.start(spec)

    async def waiting() -> bool:
        return "WaitBeforePoll" in await visited(sfn, started.ref)

    await eventually(waiting, timeout=30)
    watcher = asyncio.create_task(runner.wait(spec, started))
    await runner.cancel(spec.run_id, started)
    outcome = await asyncio.wait_for(watcher, 30)

    assert outcome.status == "cancelled"
    described = await sfn.describe_execution(executionArn=started.ref)
    assert described["status"] == "ABORTED"


async def test_an_eventbridge_status_change_ends_the_wait_without_polling(
    aws: AwsClients, sfn: Any, codebuild: Any, reader: BuildReader, state_machine: str, project: str
) -> None:
    queue_url = (await aws.sqs.create_queue(QueueName=f"sfn-status-{uuid.uuid4().hex[:8]}"))[
        "QueueUrl"
    ]
    events = ExecutionEvents(aws.sqs, queue_url, wait_seconds=1)
    # Without the event it would poll again only after an hour.
    slow = PollPolicy(initial=3600, maximum=3600)
    runner = StepFunctionsRunner(
        sfn, codebuild, reader, region="us-east-1", poll=slow, events=events
    )
    settings = sfn_settings(state_machine, project, poll_seconds=2)
    spec = spec_for(settings)
    started = await runner.start(spec)
    listener = asyncio.create_task(events.run())
    try:
        watcher = asyncio.create_task(runner.wait(spec, started))

        async def ended() -> bool:
            described = await sfn.describe_execution(executionArn=started.ref)
            return described["status"] != "RUNNING"

        await eventually(ended, timeout=30)
        # What the EventBridge rule puts on the queue (detail trimmed to what is read).
        await aws.sqs.send_message(
            QueueUrl=queue_url,
            MessageBody=json.dumps(
                {
                    "version": "0",
                    "detail-type": STATUS_CHANGE,
                    "source": "aws.states",
                    "detail": {"executionArn": started.ref, "status": "SUCCEEDED"},
                }
            ),
        )
        outcome = await asyncio.wait_for(watcher, 30)
    finally:
        events.stop()
        await listener
    assert outcome.status == "succeeded"


def test_a_malformed_status_change_is_ignored() -> None:
    events = ExecutionEvents(sqs=None, queue_url="unused")
    waiter = events.waiter("arn:x")
    assert events.deliver("not json") is None
    assert events.deliver(json.dumps({"detail-type": STATUS_CHANGE, "detail": {}})) is None
    running = {
        "detail-type": STATUS_CHANGE,
        "detail": {"executionArn": "arn:x", "status": "RUNNING"},
    }
    assert events.deliver(json.dumps(running)) is None
    assert not waiter.is_set()
    ended = {"detail-type": STATUS_CHANGE, "detail": {"executionArn": "arn:x", "status": "FAILED"}}
    assert events.deliver(json.dumps(ended)) == "arn:x"
    assert waiter.is_set()


# --------------------------------------------------------------------------- CodeBuild


async def test_the_codebuild_runner_starts_and_follows_a_build(
    codebuild: Any, reader: BuildReader, project: str
) -> None:
    runner = CodeBuildRunner(codebuild, reader, poll=FAST_POLL)
    settings = CodeBuildRunnerSettings(project=project, image="app:1")
    spec = spec_for(settings)
    started = await runner.start(spec)
    assert started.ref.startswith(f"{project}:")
    outcome = await runner.wait(spec, started)
    assert outcome.status == "succeeded" and outcome.exit_code == 0


async def test_the_codebuild_runner_refuses_an_unknown_project(
    codebuild: Any, reader: BuildReader
) -> None:
    runner = CodeBuildRunner(codebuild, reader, poll=FAST_POLL)
    with pytest.raises(RunnerError, match="CodeBuild refused to start no-such-project"):
        await runner.start(spec_for(CodeBuildRunnerSettings(project="no-such-project", image="x")))


async def test_the_buildspec_line_runs_the_argv_without_a_shell_seeing_it(tmp_path: Path) -> None:
    """What the build container does with ``TOILKIT_COMMAND`` (a real ``sh -c``)."""
    marker = tmp_path / "pwned"
    hostile = f"$(touch {marker}); `touch {marker}` \"quotes\" 'and'\nnewline ünï"
    settings = CodeBuildRunnerSettings(project="p1", image="x")
    script = ECHO_ARGS
    spec = run_spec(
        settings,
        "python3",
        str(script),
        hostile,
        env={"ECHO_VALUE": hostile},
        timeout=30,
        run_id="r",
        request_event_id="e",
    )
    process = await asyncio.create_subprocess_exec(
        "sh",
        "-c",
        BUILDSPEC_COMMAND,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "TOILKIT_COMMAND": command_json(spec)},
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    lines = dict(line.split(" = ", 1) for line in out.decode().splitlines())
    assert json.loads(lines["argv[1]"]) == hostile
    assert json.loads(lines["env ECHO_VALUE"]) == hostile
    assert not marker.exists()


# --------------------------------------------------------------------------- the service


@pytest.fixture
async def aws_batch(
    aws: AwsClients,
    shared_topology: tuple[Names, BootstrapReport],
    tmp_path: Path,
    state_machine: str,
    project: str,
) -> BatchHarness:
    def add_aws_environment(data: dict[str, Any]) -> None:
        for command in data["commands"]:
            if command["name"] == "echo-args":
                command["environments"]["aws"] = stepfunctions_environment(state_machine, project)

    names, topology = shared_topology
    return await make_harness(aws, names, topology, tmp_path, customize=add_aws_environment)


async def test_a_request_runs_through_step_functions_end_to_end(
    aws_batch: BatchHarness, sfn: Any, state_machine: str
) -> None:
    request = await aws_batch.request("echo-args", "aws", text="; rm -rf /")
    await aws_batch.drain()

    events = await aws_batch.outcomes(request.run_id)
    assert [e.type for e in events] == ["BatchRunStarted", "BatchRunFinished"]  # type: ignore[attr-defined]
    started, finished = events
    assert isinstance(started, BatchRunStarted) and isinstance(finished, BatchRunFinished)
    assert started.runner == "stepfunctions"
    assert started.log_url and "states/home" in started.log_url
    assert finished.status == "succeeded"
    record = await aws_batch.runs.get(request.run_id)
    assert record.runner_ref.endswith(f":{request.event_id}")
    executions = await sfn.list_executions(stateMachineArn=state_machine)
    assert [e["name"] for e in executions["executions"]] == [request.event_id]


async def test_a_start_interrupted_by_a_crash_resumes_the_existing_execution(
    aws_batch: BatchHarness, sfn: Any, state_machine: str
) -> None:
    """The handler claimed the start and started the execution, then the process died
    before recording it. The redelivered request finds the execution and follows it."""
    event_id = new_event_id()
    run_id = f"run-{event_id[:8]}"
    runs = aws_batch.runs
    supervisor = aws_batch.service.supervisor
    request = validate_request(
        aws_batch.service.context.catalog, "echo-args", "aws", {"text": "crash"}
    )
    assert isinstance(request, ValidatedRequest)
    await runs.create(
        run_record(
            "aws",
            run_id=run_id,
            request_event_id=event_id,
            parameters=(RunParameter(name="text", value="crash"),),
        )
    )
    claimed = (await runs.get(run_id)).model_copy(
        update={"status": "starting", "starting_by": event_id, "runner": "stepfunctions"}
    )
    await runs.save(claimed)
    await runs.mark_active(run_id)
    first_attempt = await supervisor.runners["stepfunctions"].start(
        supervisor.steps.spec_for(claimed, request)
    )
    assert not first_attempt.resumed
    # ... and here the process died.

    await aws_batch.request("echo-args", "aws", run_id=run_id, event_id=event_id, text="crash")
    await aws_batch.drain()

    assert (await runs.get(run_id)).status == "succeeded"
    executions = await sfn.list_executions(stateMachineArn=state_machine)
    assert [e["name"] for e in executions["executions"]] == [event_id]
    trail = await runs.audit_trail(run_id)
    assert [e.action for e in trail] == ["started", "finished"]
    assert "found already started" in trail[0].detail


async def started_elsewhere(
    harness: BatchHarness, text: str, *, owner: str | None = None
) -> tuple[RunRecord, StartedRun]:
    """An ``echo-args`` execution started in Step Functions and recorded as running, as a
    batch process that then stopped (or a Lambda sandbox between invocations) leaves it."""
    supervisor = harness.service.supervisor
    request = validate_request(harness.service.context.catalog, "echo-args", "aws", {"text": text})
    assert isinstance(request, ValidatedRequest)
    record = run_record("aws")
    started = await supervisor.runners["stepfunctions"].start(
        supervisor.steps.spec_for(record, request)
    )
    running = record.model_copy(
        update={
            "status": "running",
            "runner": "stepfunctions",
            "runner_ref": started.ref,
            "started_at": started.started_at,
            "owner": owner,
        }
    )
    await harness.runs.create(running)
    await harness.runs.mark_active(record.run_id)
    return running, started


async def test_a_restart_watches_the_running_executions_again(aws_batch: BatchHarness) -> None:
    """A run left running by a stopped service is followed to its end by the next one."""
    supervisor = aws_batch.service.supervisor
    record, _ = await started_elsewhere(aws_batch, "r", owner="another-host:1")

    await supervisor.resume()
    await supervisor.wait_idle()

    assert (await aws_batch.runs.get(record.run_id)).status == "succeeded"
    finished = await aws_batch.last_outcome(record.run_id)
    assert isinstance(finished, BatchRunFinished) and finished.status == "succeeded"


async def test_a_process_that_cannot_watch_settles_a_run_from_its_status_change(
    aws_batch: BatchHarness, sfn: Any
) -> None:
    """A Lambda sandbox watches nothing between invocations: the EventBridge status change
    (or the periodic housekeeping) makes it read the run's outcome and finish it, once."""
    from services.batch.function import BatchFunction  # noqa: PLC0415

    record, started = await started_elsewhere(aws_batch, "z")

    async def ended() -> bool:
        described = await sfn.describe_execution(executionArn=started.ref)
        return described["status"] != "RUNNING"

    await eventually(ended, timeout=30)
    function = BatchFunction(aws_batch.service)
    status_change = {
        "detail-type": STATUS_CHANGE,
        "source": "aws.states",
        "detail": {
            "executionArn": started.ref,
            "status": "SUCCEEDED",
            "input": (await sfn.describe_execution(executionArn=started.ref))["input"],
        },
    }
    assert await function.settle_from_status_change(json.dumps(status_change))
    # A second delivery of the same change, and housekeeping, change nothing.
    assert await function.settle_from_status_change(json.dumps(status_change))
    assert await function.settle_active_runs() == 0

    assert (await aws_batch.runs.get(record.run_id)).status == "succeeded"
    finished = [
        e for e in await aws_batch.outcomes(record.run_id) if isinstance(e, BatchRunFinished)
    ]
    assert [e.status for e in finished] == ["succeeded"]
    # Not JSON at all: ignored (acknowledged), never retried forever.
    assert await function.settle_from_status_change("not json")


async def test_an_input_without_a_mode_runs_as_a_run(
    sfn: Any, state_machine: str, project: str
) -> None:
    """An execution input written before previews existed (no ``mode``) is a run."""
    settings = sfn_settings(state_machine, project)
    old_input = execution_input(spec_for(settings), settings)
    del old_input["mode"]
    described = await run_to_end(sfn, state_machine, old_input)

    assert described["status"] == "SUCCEEDED"
    assert (await visited(sfn, described["executionArn"]))[:3] == [
        "Mode?",
        "ModeRun",
        "StartBuild",
    ]
    scheduled = await start_build_parameters(sfn, described["executionArn"])
    variables = build_variables(scheduled)
    assert variables["TOILKIT_RUN_MODE"] == "run"


async def test_a_batch_service_killed_mid_execution_is_followed_by_the_next_one(
    aws_batch: BatchHarness, sfn: Any, state_machine: str
) -> None:
    """The crash rule on Step Functions: a batch service SIGKILLed while its execution runs
    leaves the run "running" under an owner that is gone. The next service watches that
    execution again: the run is neither failed nor started a second time."""
    # GIVEN a run whose execution was started by a batch process on this host, now dead
    dead = await asyncio.create_subprocess_exec("true")
    await dead.wait()
    owner = f"{socket.gethostname()}:{dead.pid}"
    record, started = await started_elsewhere(aws_batch, "killed", owner=owner)

    # WHEN the next batch service starts
    supervisor = aws_batch.service.supervisor
    await supervisor.resume()
    assert record.run_id in supervisor.watching()
    await supervisor.wait_idle()

    # THEN it followed the same execution to its end, once
    settled = await aws_batch.runs.get(record.run_id)
    assert settled.status == "succeeded"
    assert settled.runner_ref == started.ref
    executions = await sfn.list_executions(stateMachineArn=state_machine)
    assert [e["executionArn"] for e in executions["executions"]] == [started.ref]
    outcomes = await aws_batch.outcomes(record.run_id)
    finished = [e for e in outcomes if isinstance(e, BatchRunFinished)]
    assert [f.status for f in finished] == ["succeeded"]
    assert record.run_id not in await aws_batch.runs.active_run_ids()
