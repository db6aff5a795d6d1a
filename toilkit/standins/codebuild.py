"""A CodeBuild stand-in: ``StartBuild``, ``BatchGetBuilds`` and ``StopBuild`` over AWS's
JSON 1.1 protocol, with builds that end the way a test says.

moto's CodeBuild never runs anything: every build it starts answers SUCCEEDED on the
first ``BatchGetBuilds``, so nothing on the emulator could reach a failed, faulted,
timed-out or stopped build. :class:`CodeBuildStandin` is an aiohttp server that answers
``POST /`` with ``X-Amz-Target: CodeBuild_20161006.<Operation>`` as CodeBuild does (the
build's JSON in CodeBuild's own camelCase: phases with their contexts, logs, times), so
the real ``codebuild`` client works against it unchanged through ``endpoint_url``, and so
does the Step Functions interpreter of the embedded emulator once CodeBuild is routed to
it (:meth:`toilkit.embedded.EmbeddedAws.route_service`).

What a build prints is its plan's ``output``: with a CloudWatch Logs writer
(:func:`cloudwatch_log_writer`, e.g. over moto), each ``BatchGetBuilds`` that sees the build
running writes its next ``lines_per_poll`` lines to the log group and stream its ``logs``
name (``/aws/codebuild/<project>``, the build's id after the colon), as CodeBuild's agent
does, and the rest when it ends; so a reader of the log (live progress) sees it grow.

How a build ends is a :class:`BuildPlan`: its final status (SUCCEEDED, FAILED, FAULT,
TIMED_OUT or STOPPED), after how many ``BatchGetBuilds`` that saw it running and/or after
how long, and its exit status. Plans are queued per project (:meth:`plan`); a project
without one ends its builds with its default plan. :meth:`finish` ends a running build at
once. ``StopBuild`` stops a running build (STOPPED) as CodeBuild does; a build that ended
stays as it ended. Every call is recorded.

HTTP endpoints besides the API::

    POST /_standin/projects        add a project: {"name": ..., "plan": {...}} (plan optional)
    POST /_standin/plans           queue a plan: {"project": ..., "status": ..., "after_polls": ...}
    POST /_standin/builds/finish   end a build now: {"id": ..., "status": ...}
    GET  /_standin/calls           every recorded call: operation, request body, status
    POST /_standin/reset           forget projects, builds and calls

Run it alone with ``python -m toilkit.standins.codebuild --port 4598``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import boto3
from aiohttp import web

from toilkit.standins.aws_json import AwsJsonFailure, AwsJsonStandin, admin_call
from toilkit.standins.server import run_from_command_line

logger = logging.getLogger(__name__)

TARGET_PREFIX = "CodeBuild_20161006."
ACCOUNT = "123456789012"
EndStatus = Literal["SUCCEEDED", "FAILED", "FAULT", "TIMED_OUT", "STOPPED"]
END_STATUSES: frozenset[str] = frozenset(get_args(EndStatus))
#: The phases a build goes through, in order (CodeBuild's ``phaseType``).
PHASES = (
    "SUBMITTED",
    "QUEUED",
    "PROVISIONING",
    "DOWNLOAD_SOURCE",
    "INSTALL",
    "PRE_BUILD",
    "BUILD",
    "POST_BUILD",
    "UPLOAD_ARTIFACTS",
    "FINALIZING",
    "COMPLETED",
)
#: What CodeBuild writes in the failing phase's context, by final status.
_CONTEXTS: dict[str, tuple[str, str]] = {
    "FAILED": (
        "COMMAND_EXECUTION_ERROR",
        "Error while executing command: ./run-toilkit-command. Reason: exit status {exit}",
    ),
    "FAULT": ("CLIENT_ERROR", "Failed to pull the build image: {detail}"),
    "TIMED_OUT": ("BUILD_TIMED_OUT", "Build has timed out. "),
    "STOPPED": ("BUILD_STOPPED", "Build was stopped. "),
}


@dataclass(frozen=True)
class BuildPlan:
    """How a build ends.

    Attributes:
        status: its final ``buildStatus``.
        after_polls: ``BatchGetBuilds`` answers IN_PROGRESS this many times first (None:
            polls alone never end it).
        after_seconds: it ends once this long has passed since it started (None: time
            alone never ends it). With neither, it runs until :meth:`CodeBuildStandin.finish`
            or ``StopBuild``.
        exit_status: the command's exit status a FAILED build reports.
        detail: what a FAULT says went wrong.
    """

    status: EndStatus = "SUCCEEDED"
    after_polls: int | None = 0
    after_seconds: float | None = None
    exit_status: int = 1
    detail: str = "toomanyrequests: the registry rate-limited the pull"
    output: tuple[str, ...] = ()
    lines_per_poll: int = 1

    def __post_init__(self) -> None:
        if self.status not in END_STATUSES:
            raise ValueError(f"a build ends {sorted(END_STATUSES)}, not {self.status!r}")
        if self.lines_per_poll < 1:
            raise ValueError(f"lines_per_poll must be at least 1, not {self.lines_per_poll}")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BuildPlan:
        fields = ("status", "after_polls", "after_seconds", "exit_status", "detail")
        values = {k: data[k] for k in fields if k in data}
        if "output" in data:
            values["output"] = tuple(str(line) for line in data["output"])
        if "lines_per_poll" in data:
            values["lines_per_poll"] = int(data["lines_per_poll"])
        return cls(**values)


#: Runs until finished or stopped.
RUNS_UNTIL_STOPPED = BuildPlan(after_polls=None)


@dataclass
class Build:
    """One build the stand-in started."""

    id: str
    number: int
    project: str
    plan: BuildPlan
    started: datetime
    request: Mapping[str, Any]
    status: str = "IN_PROGRESS"
    polls: int = 0
    ended: datetime | None = None
    stop_requested: bool = False
    printed: int = 0  # lines of the plan's output written to its log so far

    def end(self, status: str, now: datetime) -> None:
        if self.status == "IN_PROGRESS":
            self.status, self.ended = status, now

    def as_api(self, region: str) -> dict[str, Any]:
        """The ``Build`` shape of CodeBuild's responses."""
        variables = self.request.get("environmentVariablesOverride") or []
        return {
            "id": self.id,
            "arn": f"arn:aws:codebuild:{region}:{ACCOUNT}:build/{self.id}",
            "buildNumber": self.number,
            "startTime": self.started.timestamp(),
            **({"endTime": self.ended.timestamp()} if self.ended else {}),
            "currentPhase": "COMPLETED" if self.ended else "BUILD",
            "buildStatus": self.status,
            "projectName": self.project,
            "phases": self._phases(),
            "source": {"type": "NO_SOURCE"},
            "environment": {
                "type": "LINUX_CONTAINER",
                "image": self.request.get("imageOverride", "aws/codebuild/standard:7.0"),
                "computeType": "BUILD_GENERAL1_SMALL",
                "environmentVariables": variables,
            },
            "serviceRole": f"arn:aws:iam::{ACCOUNT}:role/{self.project}",
            "logs": self.logs(region),
            "timeoutInMinutes": self.request.get("timeoutInMinutesOverride", 60),
            "queuedTimeoutInMinutes": 480,
            "buildComplete": self.ended is not None,
            "initiator": "toilkit",
        }

    def logs(self, region: str) -> dict[str, str]:
        group, stream = f"/aws/codebuild/{self.project}", self.id.split(":", 1)[1]
        return {
            "groupName": group,
            "streamName": stream,
            "deepLink": (
                f"https://console.aws.amazon.com/cloudwatch/home?region={region}"
                f"#logEvent:group={group};stream={stream}"
            ),
        }

    def _phases(self) -> list[dict[str, Any]]:
        """Every phase up to BUILD succeeded; BUILD ends as the build did (or still runs)."""
        start = self.started.timestamp()
        phases: list[dict[str, Any]] = [
            {"phaseType": p, "phaseStatus": "SUCCEEDED", "startTime": start, "endTime": start}
            for p in PHASES[: PHASES.index("BUILD")]
        ]
        build: dict[str, Any] = {"phaseType": "BUILD", "startTime": start}
        if self.ended is not None:
            build |= {"phaseStatus": self.status, "endTime": self.ended.timestamp()}
            if self.status in _CONTEXTS:
                code, message = _CONTEXTS[self.status]
                text = message.format(exit=self.plan.exit_status, detail=self.plan.detail)
                build["contexts"] = [{"statusCode": code, "message": text}]
        phases.append(build)
        if self.ended is not None:
            end = self.ended.timestamp()
            phases += [{"phaseType": "COMPLETED", "startTime": end}]
        return phases


#: Writes lines to a CloudWatch log stream: ``(group, stream, lines)``.
LogWriter = Callable[[str, str, list[str]], None]


def cloudwatch_log_writer(endpoint_url: str, region: str = "us-east-1") -> LogWriter:
    """A :data:`LogWriter` over CloudWatch Logs at ``endpoint_url`` (moto's, in tests)."""
    logs: Any = boto3.client(
        "logs",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )

    def write(group: str, stream: str, lines: list[str]) -> None:
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_group(logGroupName=group)
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
        now = int(datetime.now(UTC).timestamp() * 1000)
        events = [{"timestamp": now, "message": line or " "} for line in lines]
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)

    return write


@dataclass
class _State:
    projects: dict[str, BuildPlan] = field(default_factory=dict)
    plans: dict[str, deque[BuildPlan]] = field(default_factory=dict)
    builds: dict[str, Build] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)


class CodeBuildStandin(AwsJsonStandin):
    """The CodeBuild stand-in server (``async with CodeBuildStandin() as codebuild:``).

    Args:
        region: the region in ARNs and links.
        clock: the time builds start and end by (for :attr:`BuildPlan.after_seconds`).
        log_writer: where builds print their plan's ``output`` (None: nowhere).
    """

    name = "CodeBuild stand-in"
    target_prefix = TARGET_PREFIX
    endpoint_variable = "AWS_ENDPOINT_URL_CODEBUILD"
    default_port = 4598

    def __init__(
        self,
        region: str = "us-east-1",
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        log_writer: LogWriter | None = None,
    ) -> None:
        super().__init__()
        self.region = region
        self._clock = clock
        self._state = _State()
        self._log_writer = log_writer
        self._to_print: list[tuple[str, str, list[str]]] = []

    def add_admin_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/_standin/projects", self._handle_add_project)
        router.add_post("/_standin/plans", self._handle_plan)
        router.add_post("/_standin/builds/finish", self._handle_finish)

    @property
    def endpoint_url(self) -> str:
        """The URL to give the ``codebuild`` client as ``endpoint_url``."""
        return self.url

    # ------------------------------------------------------------ in-process API

    def add_project(self, name: str, plan: BuildPlan | None = None) -> None:
        """A project whose builds end by ``plan`` unless one is queued (default: SUCCEEDED
        on the first poll)."""
        self._state.projects[name] = plan or BuildPlan()

    def plan(self, project: str, *plans: BuildPlan) -> None:
        """How the next builds of ``project`` end, in start order."""
        if project not in self._state.projects:
            raise KeyError(f"no project {project!r}")
        self._state.plans.setdefault(project, deque()).extend(plans)

    def finish(self, build_id: str, status: EndStatus) -> None:
        """End a running build now."""
        if status not in END_STATUSES:
            raise ValueError(f"a build ends {sorted(END_STATUSES)}, not {status!r}")
        self._state.builds[build_id].end(status, self._clock())

    def builds(self, project: str | None = None) -> list[Build]:
        """The builds started so far, oldest first."""
        return [b for b in self._state.builds.values() if project in (None, b.project)]

    def forget(self) -> None:
        self._state = _State()

    # ------------------------------------------------------------------ the API

    def dispatch(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "StartBuild": self._start_build,
            "BatchGetBuilds": self._batch_get_builds,
            "StopBuild": self._stop_build,
        }
        if operation not in operations:
            raise AwsJsonFailure(
                "UnknownOperationException", f"the stand-in does not implement {operation!r}"
            )
        return operations[operation](body)

    def _start_build(self, body: dict[str, Any]) -> dict[str, Any]:
        project = _required_string(body, "projectName")
        if project not in self._state.projects:
            raise AwsJsonFailure(
                "ResourceNotFoundException",
                f"Project cannot be found: arn:aws:codebuild:{self.region}:{ACCOUNT}"
                f":project/{project}",
            )
        token = body.get("idempotencyToken")
        if isinstance(token, str) and token in self._state.tokens:
            # CodeBuild answers a repeated token (within its window) with the same build.
            return {"build": self._state.builds[self._state.tokens[token]].as_api(self.region)}
        queued = self._state.plans.get(project)
        plan = queued.popleft() if queued else self._state.projects[project]
        number = 1 + sum(1 for b in self._state.builds.values() if b.project == project)
        build = Build(
            id=f"{project}:{uuid.uuid4()}",
            number=number,
            project=project,
            plan=plan,
            started=self._clock(),
            request=body,
        )
        self._state.builds[build.id] = build
        if isinstance(token, str):
            self._state.tokens[token] = build.id
        return {"build": build.as_api(self.region)}

    def _batch_get_builds(self, body: dict[str, Any]) -> dict[str, Any]:
        ids = body.get("ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            raise AwsJsonFailure("InvalidInputException", "ids must name 1 to 100 builds")
        found, missing = [], []
        for build_id in ids:
            build = self._state.builds.get(str(build_id))
            if build is None:
                missing.append(build_id)
                continue
            self._advance(build)
            found.append(build.as_api(self.region))
        return {"builds": found, "buildsNotFound": missing}

    def _advance(self, build: Build) -> None:
        """Let a poll move a running build on by its plan."""
        if build.status != "IN_PROGRESS":
            return
        plan, now = build.plan, self._clock()
        polls_done = plan.after_polls is not None and build.polls >= plan.after_polls
        time_done = (
            plan.after_seconds is not None
            and (now - build.started).total_seconds() >= plan.after_seconds
        )
        if polls_done or time_done:
            build.end(plan.status, now)
            self._print(build, len(plan.output))
        else:
            build.polls += 1
            self._print(build, plan.lines_per_poll)

    def _print(self, build: Build, count: int) -> None:
        """Queue the build's next ``count`` output lines for its log."""
        lines = list(build.plan.output[build.printed : build.printed + count])
        if not lines or self._log_writer is None:
            return
        build.printed += len(lines)
        logs = build.logs(self.region)
        self._to_print.append((logs["groupName"], logs["streamName"], lines))

    async def _handle_api(self, request: web.Request) -> web.Response:
        response = await super()._handle_api(request)
        # Written before answering: whoever polled sees the log as it was at the poll.
        while self._to_print and self._log_writer is not None:
            group, stream, lines = self._to_print.pop(0)
            try:
                await asyncio.to_thread(self._log_writer, group, stream, lines)
            except Exception:
                logger.exception("CodeBuild stand-in: cannot write %s/%s", group, stream)
        return response

    def _stop_build(self, body: dict[str, Any]) -> dict[str, Any]:
        build_id = _required_string(body, "id")
        build = self._state.builds.get(build_id)
        if build is None:
            raise AwsJsonFailure("ResourceNotFoundException", f"Build {build_id} does not exist")
        build.stop_requested = True
        build.end("STOPPED", self._clock())
        return {"build": build.as_api(self.region)}

    # ------------------------------------------------------------ admin endpoints

    async def _handle_add_project(self, request: web.Request) -> web.Response:
        return await admin_call(
            request,
            "invalid project",
            lambda raw: self.add_project(
                str(raw["name"]), BuildPlan.from_json(raw["plan"]) if raw.get("plan") else None
            ),
        )

    async def _handle_plan(self, request: web.Request) -> web.Response:
        return await admin_call(
            request,
            "invalid plan",
            lambda raw: self.plan(str(raw["project"]), BuildPlan.from_json(raw)),
        )

    async def _handle_finish(self, request: web.Request) -> web.Response:
        return await admin_call(
            request, "cannot finish", lambda raw: self.finish(str(raw["id"]), raw["status"])
        )


def _required_string(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise AwsJsonFailure("InvalidInputException", f"{name} is required")
    return value


# ------------------------------------------------------------------- standalone


def main(argv: list[str] | None = None) -> None:
    """``python -m toilkit.standins.codebuild [--host H] [--port P]``."""
    run_from_command_line(CodeBuildStandin, argv)


if __name__ == "__main__":
    main()
