"""The CodeBuild stand-in, through the real aiobotocore ``codebuild`` client over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ClientError

from shared.aws import AwsClients
from shared.settings import AwsSettings
from toilkit.standins.codebuild import RUNS_UNTIL_STOPPED, BuildPlan, CodeBuildStandin


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def standin(clock: Clock) -> AsyncIterator[CodeBuildStandin]:
    async with CodeBuildStandin(clock=clock) as running:
        running.add_project("p1")
        yield running


@pytest.fixture
async def codebuild(standin: CodeBuildStandin) -> AsyncIterator[Any]:
    settings = AwsSettings(AWS_ENDPOINT_URL=standin.endpoint_url, AWS_REGION="us-east-1")
    async with AwsClients(settings) as aws:
        yield await aws.client("codebuild")


async def status_of(codebuild: Any, build_id: str) -> str:
    response = await codebuild.batch_get_builds(ids=[build_id])
    return str(response["builds"][0]["buildStatus"])


async def test_a_build_ends_as_planned_after_its_polls(
    standin: CodeBuildStandin, codebuild: Any
) -> None:
    standin.plan("p1", BuildPlan("FAILED", after_polls=2, exit_status=7))
    build = (await codebuild.start_build(projectName="p1", imageOverride="app:1"))["build"]
    assert build["buildStatus"] == "IN_PROGRESS" and build["id"].startswith("p1:")

    assert [await status_of(codebuild, build["id"]) for _ in range(3)] == [
        "IN_PROGRESS",
        "IN_PROGRESS",
        "FAILED",
    ]
    ended = (await codebuild.batch_get_builds(ids=[build["id"], "p1:gone"]))["builds"][0]
    build_phase = next(p for p in ended["phases"] if p["phaseType"] == "BUILD")
    assert build_phase["phaseStatus"] == "FAILED"
    assert "exit status 7" in build_phase["contexts"][0]["message"]
    assert ended["environment"]["image"] == "app:1"
    assert ended["logs"]["groupName"] == "/aws/codebuild/p1"
    # The next build has no plan queued: the project's default, SUCCEEDED at the first poll.
    second = (await codebuild.start_build(projectName="p1"))["build"]
    assert await status_of(codebuild, second["id"]) == "SUCCEEDED"
    assert [c.operation for c in standin.calls()].count("BatchGetBuilds") == 5


async def test_a_build_ends_after_its_duration(
    standin: CodeBuildStandin, codebuild: Any, clock: Clock
) -> None:
    standin.plan("p1", BuildPlan("TIMED_OUT", after_polls=None, after_seconds=600))
    build = (await codebuild.start_build(projectName="p1"))["build"]
    clock.now += timedelta(seconds=599)
    assert await status_of(codebuild, build["id"]) == "IN_PROGRESS"
    clock.now += timedelta(seconds=1)
    assert await status_of(codebuild, build["id"]) == "TIMED_OUT"


async def test_stop_and_finish_end_a_running_build(
    standin: CodeBuildStandin, codebuild: Any
) -> None:
    standin.plan("p1", RUNS_UNTIL_STOPPED, RUNS_UNTIL_STOPPED)
    first = (await codebuild.start_build(projectName="p1"))["build"]["id"]
    second = (await codebuild.start_build(projectName="p1"))["build"]["id"]

    stopped = (await codebuild.stop_build(id=first))["build"]
    standin.finish(second, "FAULT")

    assert stopped["buildStatus"] == "STOPPED"
    assert await status_of(codebuild, second) == "FAULT"
    # Stopping a build that ended changes nothing.
    assert (await codebuild.stop_build(id=second))["build"]["buildStatus"] == "FAULT"


async def test_errors_are_codebuilds(standin: CodeBuildStandin, codebuild: Any) -> None:
    with pytest.raises(ClientError) as unknown:
        await codebuild.start_build(projectName="nope")
    assert unknown.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert "Project cannot be found" in unknown.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as missing:
        await codebuild.stop_build(id="p1:gone")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    found = await codebuild.batch_get_builds(ids=["p1:gone"])
    assert found["builds"] == [] and found["buildsNotFound"] == ["p1:gone"]


async def test_a_repeated_idempotency_token_gets_the_same_build(codebuild: Any) -> None:
    first = await codebuild.start_build(projectName="p1", idempotencyToken="t-1")
    again = await codebuild.start_build(projectName="p1", idempotencyToken="t-1")
    assert first["build"]["id"] == again["build"]["id"]


async def test_the_admin_endpoints_plan_and_finish_builds(
    standin: CodeBuildStandin, codebuild: Any
) -> None:
    async with aiohttp.ClientSession(standin.url) as http:
        await http.post("/_standin/projects", json={"name": "p2", "plan": {"after_polls": None}})
        build_id = (await codebuild.start_build(projectName="p2"))["build"]["id"]
        answer = await http.post(
            "/_standin/builds/finish", json={"id": build_id, "status": "STOPPED"}
        )
        assert answer.status == 200
        bad = await http.post("/_standin/plans", json={"project": "p2", "status": "LOST"})
        assert bad.status == 400
        calls = await (await http.get("/_standin/calls")).json(content_type=None)
    assert await status_of(codebuild, build_id) == "STOPPED"
    assert [c["operation"] for c in calls] == ["StartBuild"]
