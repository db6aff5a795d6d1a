"""Every way a Step Functions run can end, on the real definition, down to Slack.

``infra/stepfunctions/batch_run.asl.json`` (the file Terraform deploys) runs in the
session's moto server's Step Functions interpreter. CodeBuild is the project's stand-in
(:class:`~toilkit.standins.codebuild.CodeBuildStandin`) on a free loopback port: the
emulator routes every request signed for ``codebuild`` to it, so the interpreter's
``aws-sdk:codebuild`` tasks and the batch service's own CodeBuild client both reach it
over HTTP. The stand-in ends each build as the test plans (SUCCEEDED, FAILED, FAULT,
TIMED_OUT, STOPPED, or never, so the run's time runs out). The batch service (the real
worker and Step Functions runner) runs the request; the notifier posts the outcome to the
Slack stand-in, and the test reads the run record and what Slack shows.

The one change moto needs is the casing of the aws-sdk tasks' fields
(:func:`tests.integration.sfn_moto.moto_dialect`, getmoto/moto#10076).
"""

from __future__ import annotations

import html
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from tenacity import wait_none

from services.batch.runners.base import RunSpec
from services.batch.runners.stepfunctions import execution_input, poll_waits
from services.notifier.service import NotifierService, build_notifier
from services.notifier.settings import NotifierSettings
from shared.aws import AwsClients
from shared.catalog import StepFunctionsRunnerSettings
from shared.settings import AwsSettings, WorkerSettings
from tests.integration.batch_harness import BatchHarness, bootstrap_once, make_harness
from tests.integration.sfn_moto import create_state_machine, load_definition
from tests.support import eventually, runtime_over, texts_of
from tests.unit.test_batch_run_history import history_events
from toilkit.embedded import EmbeddedAws
from toilkit.standins.codebuild import RUNS_UNTIL_STOPPED, BuildPlan, CodeBuildStandin
from toilkit.standins.slack import SlackStandin

pytestmark = pytest.mark.moto_only(reason="routes CodeBuild to a stand-in inside moto")

PROJECT = "toilkit-batch-runner"
RUNS_CHANNEL = "#toilkit"
#: echo-args' timeout here: its polls (0 s apart on the emulator) run out quickly.
TIMEOUT_SECONDS = 20


@dataclass
class Stack:
    codebuild: CodeBuildStandin
    slack: SlackStandin
    batch: BatchHarness
    notifier: NotifierService
    sfn: Any
    state_machine: str


@pytest.fixture(scope="module")
async def codebuild(embedded_aws: EmbeddedAws) -> AsyncIterator[CodeBuildStandin]:
    """The CodeBuild stand-in, standing in for moto's CodeBuild while the module runs."""
    async with CodeBuildStandin() as standin:
        standin.add_project(PROJECT)
        embedded_aws.route_service("codebuild", standin.url)
        try:
            yield standin
        finally:
            embedded_aws.route_service("codebuild", None)


@pytest.fixture(scope="module")
async def stack(
    moto_endpoint: str,
    codebuild: CodeBuildStandin,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    """The batch service (echo-args in ``aws`` runs on the state machine) and the notifier
    on one topology, the notifier posting to the Slack stand-in."""
    names, topology = await bootstrap_once(moto_endpoint)
    settings = AwsSettings(AWS_ENDPOINT_URL=moto_endpoint, AWS_REGION="us-east-1")
    async with AwsClients(settings) as aws, SlackStandin() as slack:
        sfn = await aws.client("stepfunctions")
        state_machine = await create_state_machine(sfn, f"batch-run-{uuid.uuid4().hex[:8]}")

        def run_on_step_functions(data: dict[str, Any]) -> None:
            [command] = [c for c in data["commands"] if c["name"] == "echo-args"]
            command["timeout_seconds"] = TIMEOUT_SECONDS
            command["environments"]["aws"] = {
                "allowed": {"usergroups": ["S0SRE00001"]},
                "runner": {
                    "kind": "stepfunctions",
                    "state_machine_arn": state_machine,
                    "project": PROJECT,
                    "image": "app:1",
                    "poll_seconds": 0,
                },
            }

        folder = tmp_path_factory.mktemp("branches")
        batch = await make_harness(aws, names, topology, folder, customize=run_on_step_functions)
        runtime = runtime_over(aws, names, topology)
        notifier = await build_notifier(
            runtime,
            settings=NotifierSettings(
                slack_api_url=slack.api_url,
                post_interval_seconds=0,
                worker=WorkerSettings(
                    wait_time_seconds=0, visibility_timeout=20, retry_base_seconds=0
                ),
            ),
            slack_backoff=FixedValueRetryIntervalCalculator(0),
            post_wait=wait_none(),
        )
        try:
            yield Stack(codebuild, slack, batch, notifier, sfn, state_machine)
        finally:
            await notifier.aclose()


# --------------------------------------------------------------------------- helpers


def shown(message: dict[str, Any]) -> str:
    """What a message shows: its blocks' texts, one per line, as a reader sees them."""
    return html.unescape("\n".join(texts_of(message.get("blocks", []))))


@dataclass(frozen=True)
class Ending:
    status: str
    error: str | None
    exit_code: int | None
    message: str
    reply: str


async def run_to_its_end(stack: Stack, text: str) -> Ending:
    """Request echo-args in ``aws``, let the batch service run it to its end and the
    notifier post it; how the run record and Slack show the ending."""
    request = await stack.batch.request("echo-args", "aws", text=text)
    await stack.batch.drain()
    record = await stack.batch.runs.get(request.run_id)
    await stack.notifier.drain()
    mark = f"Run `{request.run_id}`"
    [message] = [m for m in stack.slack.messages(RUNS_CHANNEL) if mark in shown(m)]
    replies = [shown(r) for r in message["replies"]]
    return Ending(
        status=record.status,
        error=record.error,
        exit_code=record.exit_code,
        message=str(message["text"]),
        reply=replies[-1] if replies else "",
    )


async def last_execution(stack: Stack) -> dict[str, Any]:
    executions = await stack.sfn.list_executions(stateMachineArn=stack.state_machine)
    newest = max(executions["executions"], key=lambda e: e["startDate"])
    return dict(await stack.sfn.describe_execution(executionArn=newest["executionArn"]))


# --------------------------------------------------------------------------- the branches


@pytest.mark.parametrize(
    ("plan", "error", "status", "slack_status", "says"),
    [
        pytest.param(
            BuildPlan("FAILED", after_polls=1, exit_status=3),
            "BuildFailed",
            "failed",
            "Failed",
            "exit status 3",
            id="failed",
        ),
        pytest.param(
            BuildPlan("FAULT", after_polls=1, detail="the registry said no"),
            "BuildFailed",
            "failed",
            "Failed",
            "BUILD phase FAULT: Failed to pull the build image: the registry said no",
            id="fault",
        ),
        pytest.param(
            BuildPlan("TIMED_OUT", after_polls=1),
            "BuildFailed",
            "timed_out",
            "Timed out",
            None,
            id="codebuild-timed-out",
        ),
        pytest.param(
            BuildPlan("STOPPED", after_polls=1),
            "BuildFailed",
            "failed",
            "Failed",
            "was stopped outside toilkit",
            id="stopped-outside-toilkit",
        ),
        pytest.param(
            RUNS_UNTIL_STOPPED,
            "RunTimedOut",
            "timed_out",
            "Timed out",
            "stopped when its time was up",
            id="run-out-of-time",
        ),
    ],
)
async def test_a_build_that_does_not_succeed_ends_its_run_and_says_how_in_slack(
    stack: Stack,
    plan: BuildPlan,
    error: str,
    status: str,
    slack_status: str,
    says: str | None,
) -> None:
    stack.codebuild.plan(PROJECT, plan)

    ending = await run_to_its_end(stack, f"branch {plan.status}")

    execution = await last_execution(stack)
    assert (execution["status"], execution["error"]) == ("FAILED", error)
    build = stack.codebuild.builds(PROJECT)[-1]
    assert build.plan is plan
    assert ending.status == status
    assert ending.message.startswith(f"{slack_status}:"), ending.message
    assert f"*{slack_status}*" in ending.reply.splitlines()[0], ending.reply
    if says is not None:
        assert ending.error and says in ending.error
        assert says in ending.reply
    if plan.status == "FAILED":
        assert ending.exit_code == plan.exit_status
        assert f"exit code `{plan.exit_status}`" in ending.reply
    if plan is RUNS_UNTIL_STOPPED:
        # The state machine stopped the build itself, after every poll the run was given.
        assert build.stop_requested and build.status == "STOPPED"
        waits = poll_waits(0, TIMEOUT_SECONDS)
        assert build.polls == len(waits)


async def test_a_build_that_succeeds_ends_its_run_succeeded_in_slack(stack: Stack) -> None:
    stack.codebuild.plan(PROJECT, BuildPlan("SUCCEEDED", after_polls=2))

    ending = await run_to_its_end(stack, "all good")

    execution = await last_execution(stack)
    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"])["status"] == "SUCCEEDED"
    assert (ending.status, ending.exit_code, ending.error) == ("succeeded", 0, None)
    assert ending.message.startswith("Succeeded:")
    assert stack.codebuild.builds(PROJECT)[-1].polls == 2


async def test_the_build_gets_the_command_as_data(stack: Stack) -> None:
    """What the state machine passed to StartBuild, as CodeBuild received it."""
    hostile = "; rm -rf / $(touch x)"
    await run_to_its_end(stack, hostile)

    [*_, start] = stack.codebuild.calls("StartBuild")
    variables = {v["name"]: v["value"] for v in start.request["environmentVariablesOverride"]}
    assert json.loads(variables["TOILKIT_COMMAND"])["argv"][-1] == hostile
    assert start.request["imageOverride"] == "app:1"
    assert start.request["timeoutInMinutesOverride"] == 5


async def test_the_history_of_a_run_is_what_the_definition_says_it_costs(stack: Stack) -> None:
    """The events the interpreter records for a run that polls until its time is up are
    the count tests/unit/test_batch_run_history.py predicts from the definition, which it
    then computes for the longest run the catalog allows."""
    stack.codebuild.plan(PROJECT, RUNS_UNTIL_STOPPED)
    settings = StepFunctionsRunnerSettings(
        state_machine_arn=stack.state_machine, project=PROJECT, image="app:1", poll_seconds=0
    )
    spec_input = execution_input(_spec(settings), settings)
    started = await stack.sfn.start_execution(
        stateMachineArn=stack.state_machine,
        name=str(uuid.uuid4()),
        input=json.dumps(spec_input),
    )

    async def ended() -> dict[str, Any] | None:
        described = await stack.sfn.describe_execution(executionArn=started["executionArn"])
        return None if described["status"] == "RUNNING" else described

    await eventually(ended, timeout=60, every=0.05)
    history = await stack.sfn.get_execution_history(
        executionArn=started["executionArn"], maxResults=1000
    )
    polls = spec_input["poll"]["max"]
    assert len(history["events"]) == history_events(load_definition(), polls)


def _spec(settings: StepFunctionsRunnerSettings) -> RunSpec:
    return RunSpec(
        run_id="run-history",
        request_event_id=str(uuid.uuid4()),
        command="echo-args",
        environment="aws",
        argv=("python3", "scripts/echo_args.py", "x"),
        env={},
        timeout_seconds=TIMEOUT_SECONDS,
        settings=settings,
    )
