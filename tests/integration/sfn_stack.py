"""A batch command on the real Step Functions definition, followed down to Slack.

``infra/stepfunctions/batch_run.asl.json`` runs in the session's moto server's interpreter.
CodeBuild is the project's stand-in (:class:`~toilkit.standins.codebuild.CodeBuildStandin`)
on a free loopback port: the emulator routes every request signed for ``codebuild`` to it,
so the interpreter's ``aws-sdk:codebuild`` tasks and the batch service's own CodeBuild
client both reach it over HTTP. The batch service (the real worker and Step Functions
runner) runs the requests; the notifier posts the outcomes to the Slack stand-in.
"""

from __future__ import annotations

import contextlib
import html
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from tenacity import wait_none

from services.notifier.service import NotifierService, build_notifier
from services.notifier.settings import NotifierSettings
from shared.aws import AwsClients
from shared.settings import AwsSettings, WorkerSettings
from tests.integration.batch_harness import BatchHarness, bootstrap_once, make_harness
from tests.integration.sfn_moto import create_state_machine, stepfunctions_environment
from tests.support import runtime_over, texts_of
from toilkit.embedded import EmbeddedAws
from toilkit.standins.codebuild import CodeBuildStandin
from toilkit.standins.slack import SlackStandin

RUNS_CHANNEL = "#toilkit"


@dataclass
class Stack:
    codebuild: CodeBuildStandin
    slack: SlackStandin
    batch: BatchHarness
    notifier: NotifierService
    sfn: Any
    state_machine: str


@contextlib.asynccontextmanager
async def routed_codebuild(
    embedded_aws: EmbeddedAws, project: str
) -> AsyncIterator[CodeBuildStandin]:
    """The CodeBuild stand-in (with ``project``), standing in for moto's CodeBuild while
    the block runs."""
    async with CodeBuildStandin() as standin:
        standin.add_project(project)
        embedded_aws.route_service("codebuild", standin.url)
        try:
            yield standin
        finally:
            embedded_aws.route_service("codebuild", None)


@contextlib.asynccontextmanager
async def sfn_stack(
    embedded_aws: EmbeddedAws,
    moto_endpoint: str,
    folder: Path,
    *,
    project: str,
    command: str,
    policy: Mapping[str, Any] | None = None,
    command_fields: Mapping[str, Any] | None = None,
) -> AsyncIterator[Stack]:
    """The batch service, whose ``command`` in ``aws`` runs on a fresh state machine
    building ``project`` on the CodeBuild stand-in (``policy`` adds to that environment,
    ``command_fields`` to the command), and the notifier, on a topology of their own; the
    notifier posts to the Slack stand-in."""
    names, topology = await bootstrap_once(moto_endpoint)
    settings = AwsSettings(AWS_ENDPOINT_URL=moto_endpoint, AWS_REGION="us-east-1")
    async with (
        routed_codebuild(embedded_aws, project) as codebuild,
        AwsClients(settings) as aws,
        SlackStandin() as slack,
    ):
        sfn = await aws.client("stepfunctions")
        state_machine = await create_state_machine(sfn, f"batch-run-{uuid.uuid4().hex[:8]}")

        def run_on_step_functions(data: dict[str, Any]) -> None:
            [entry] = [c for c in data["commands"] if c["name"] == command]
            entry.update(command_fields or {})
            entry["environments"]["aws"] = stepfunctions_environment(
                state_machine, project, **(policy or {})
            )

        batch = await make_harness(aws, names, topology, folder, customize=run_on_step_functions)
        notifier = await build_notifier(
            runtime_over(aws, names, topology),
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


def shown(message: dict[str, Any]) -> str:
    """What a message shows: its blocks' texts, one per line, as a reader sees them."""
    return html.unescape("\n".join(texts_of(message.get("blocks", []))))


def parent_message(stack: Stack, run_id: str) -> dict[str, Any]:
    """The run's message in the runs channel (its parent, with the replies)."""
    [message] = [m for m in stack.slack.messages(RUNS_CHANNEL) if f"Run `{run_id}`" in shown(m)]
    return message
