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

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from services.batch.runners.stepfunctions import execution_input, poll_waits
from tests.integration.batch_harness import run_spec
from tests.integration.sfn_moto import build_variables, load_definition, run_to_end, sfn_settings
from tests.integration.sfn_stack import (
    Stack,
    parent_message,
    sfn_stack,
    shown,
)
from tests.unit.test_batch_run_history import history_events
from toilkit.embedded import EmbeddedAws
from toilkit.standins.codebuild import RUNS_UNTIL_STOPPED, BuildPlan

pytestmark = pytest.mark.moto_only(reason="routes CodeBuild to a stand-in inside moto")

PROJECT = "toilkit-batch-runner"
#: echo-args' timeout here: its polls (0 s apart on the emulator) run out quickly.
TIMEOUT_SECONDS = 20


@pytest.fixture(scope="module")
async def stack(
    embedded_aws: EmbeddedAws,
    moto_endpoint: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    """The batch service (echo-args in ``aws`` runs on the state machine) and the notifier
    on one topology, the notifier posting to the Slack stand-in."""
    async with sfn_stack(
        embedded_aws,
        moto_endpoint,
        tmp_path_factory.mktemp("branches"),
        project=PROJECT,
        command="echo-args",
        command_fields={"timeout_seconds": TIMEOUT_SECONDS},
    ) as built:
        yield built


# --------------------------------------------------------------------------- helpers


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
    message = parent_message(stack, request.run_id)
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
    variables = build_variables(start.request)
    assert json.loads(variables["TOILKIT_COMMAND"])["argv"][-1] == hostile
    assert start.request["imageOverride"] == "app:1"
    assert start.request["timeoutInMinutesOverride"] == 5


async def test_the_history_of_a_run_is_what_the_definition_says_it_costs(stack: Stack) -> None:
    """The events the interpreter records for a run that polls until its time is up are
    the count tests/unit/test_batch_run_history.py predicts from the definition, which it
    then computes for the longest run the catalog allows."""
    stack.codebuild.plan(PROJECT, RUNS_UNTIL_STOPPED)
    settings = sfn_settings(stack.state_machine, PROJECT)
    spec = run_spec(
        settings,
        "python3",
        "scripts/echo_args.py",
        "x",
        run_id="run-history",
        timeout=TIMEOUT_SECONDS,
    )
    spec_input = execution_input(spec, settings)
    ended = await run_to_end(stack.sfn, stack.state_machine, spec_input, timeout=60)
    history = await stack.sfn.get_execution_history(
        executionArn=ended["executionArn"], maxResults=1000
    )
    polls = spec_input["poll"]["max"]
    assert len(history["events"]) == history_events(load_definition(), polls)
