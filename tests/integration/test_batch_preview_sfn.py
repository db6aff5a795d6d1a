"""A preview and its run as two executions of the one state machine, down to Slack.

``infra/stepfunctions/batch_run.asl.json`` runs in moto's interpreter; CodeBuild is the
project's stand-in (it ends each build as the test plans). ``expire-coupons`` in the
``aws`` environment needs an approval and runs on Step Functions, so its request starts a
preview execution (input ``mode: preview``, the argv with ``--dry-run``, its own name);
the approval request reaches Slack with the preview's outcome; Approve starts the run's
execution (``mode: run``) of the same state machine with the same values.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.batch.function import BatchFunction
from services.batch.runners.stepfunctions import execution_name
from shared.events import BatchApproved
from tests.integration.batch_harness import ALICE, BOB
from tests.integration.sfn_moto import build_variables
from tests.integration.sfn_stack import (
    Stack,
    parent_message,
    sfn_stack,
    shown,
)
from tests.support import eventually
from toilkit.embedded import EmbeddedAws
from toilkit.standins.codebuild import BuildPlan

pytestmark = pytest.mark.moto_only(reason="routes CodeBuild to a stand-in inside moto")

PROJECT = "toilkit-batch-preview"


@pytest.fixture(scope="module")
async def stack(
    embedded_aws: EmbeddedAws, moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """expire-coupons in ``aws`` previewed and run on the state machine, approved by @sre."""
    async with sfn_stack(
        embedded_aws,
        moto_endpoint,
        tmp_path_factory.mktemp("preview-sfn"),
        project=PROJECT,
        command="expire-coupons",
        policy={"approval": {"approvers": {"usergroups": ["S0SRE00001"]}}},
    ) as built:
        yield built


async def execution_input(stack: Stack, name: str) -> dict[str, Any]:
    arn = stack.state_machine.replace(":stateMachine:", ":execution:", 1) + f":{name}"
    described = await stack.sfn.describe_execution(executionArn=arn)
    return dict(json.loads(described["input"])) | {"_status": described["status"]}


async def test_the_preview_and_the_run_are_two_executions_of_one_state_machine(
    stack: Stack,
) -> None:
    stack.codebuild.plan(
        PROJECT, BuildPlan("SUCCEEDED", after_polls=1), BuildPlan("SUCCEEDED", after_polls=1)
    )
    builds_before = len(stack.codebuild.builds(PROJECT))
    request = await stack.batch.request(
        "expire-coupons", "aws", by=ALICE, campaign="spring-sale", max_coupons="50"
    )
    await stack.batch.drain()
    await stack.notifier.drain()

    preview = await execution_input(stack, execution_name(f"{request.event_id}-preview"))
    assert (preview["mode"], preview["_status"]) == ("preview", "SUCCEEDED")
    assert json.loads(preview["command_json"])["argv"][-1] == "--dry-run"
    [preview_build] = stack.codebuild.builds(PROJECT)[builds_before:]
    assert build_variables(preview_build.request)["TOILKIT_RUN_MODE"] == "preview"
    message = parent_message(stack, request.run_id)
    assert message["text"].startswith("Awaiting approval:")
    assert "Preview succeeded" in shown(message)
    assert "Approve" in shown(message)

    await stack.batch.publish(
        BatchApproved(
            correlation_id=request.run_id, source="test", run_id=request.run_id, approved_by=BOB
        )
    )
    await stack.batch.drain()
    await stack.notifier.drain()

    run = await execution_input(stack, execution_name(request.event_id))
    assert (run["mode"], run["_status"]) == ("run", "SUCCEEDED")
    run_argv = json.loads(run["command_json"])["argv"]
    assert run_argv == json.loads(preview["command_json"])["argv"][:-1]
    assert run_argv[-4:] == ["--campaign", "spring-sale", "--max", "50"]
    [_, run_build] = stack.codebuild.builds(PROJECT)[builds_before:]
    assert build_variables(run_build.request)["TOILKIT_RUN_MODE"] == "run"
    record = await stack.batch.runs.get(request.run_id)
    assert record is not None and record.status == "succeeded"
    assert parent_message(stack, request.run_id)["text"].startswith("Succeeded:")


async def test_a_preview_build_that_fails_asks_nobody_and_runs_nothing(stack: Stack) -> None:
    stack.codebuild.plan(PROJECT, BuildPlan("FAILED", after_polls=1, exit_status=4))
    builds_before = len(stack.codebuild.builds(PROJECT))
    request = await stack.batch.request("expire-coupons", "aws", by=ALICE, campaign="black-friday")
    await stack.batch.drain()
    await stack.notifier.drain()

    assert len(stack.codebuild.builds(PROJECT)) == builds_before + 1  # the preview only
    record = await stack.batch.runs.get(request.run_id)
    assert record is not None
    assert (record.status, record.refusal_stage) == ("refused", "preview")
    assert record.preview is not None and record.preview.exit_code == 4
    message = parent_message(stack, request.run_id)
    assert message["text"].startswith("Refused:")
    # The refusal is the run's first message: its parent shows the preview, for the
    # requester it names; nobody is asked to approve.
    parent = shown(message)
    assert "Approve" not in parent and "Approvers" not in parent
    assert f"<@{ALICE.slack_user_id}>" in parent
    assert "Preview failed" in parent and "exit code `4`" in parent


async def test_in_lambda_a_previews_end_is_settled_from_its_status_change(stack: Stack) -> None:
    """A Lambda sandbox waits for nothing: the preview execution's end, reported by
    EventBridge with the preview's run id, asks for the approval."""
    stack.codebuild.plan(PROJECT, BuildPlan("SUCCEEDED", after_polls=1))
    request = await stack.batch.request("expire-coupons", "aws", by=ALICE, campaign="spring-sale")
    await stack.batch.handle_queue()
    await stack.batch.service.supervisor.stop()  # as a frozen sandbox: nobody waits
    record = await stack.batch.runs.get(request.run_id)
    assert record is not None and record.status == "previewing" and record.preview_ref

    name = execution_name(f"{request.event_id}-preview")

    async def ended() -> dict[str, Any] | None:
        found = await execution_input(stack, name)
        return None if found["_status"] == "RUNNING" else found

    preview = await eventually(ended, timeout=30, every=0.05)
    change = {"detail": {"status": preview["_status"], "input": json.dumps(preview)}}
    function = BatchFunction(stack.batch.service)
    assert await function.settle_from_status_change(json.dumps(change)) is True

    record = await stack.batch.runs.get(request.run_id)
    assert record is not None and record.status == "awaiting_approval"
    assert record.preview is not None and record.preview.status == "succeeded"
