"""AWS Lambda entry points: the workers behind SQS event source mappings, the gateway
behind a function URL, and the scan a drift-scan CodeBuild build runs.

One deployment package serves every function; ``TOILKIT_SERVICE`` says which service a
function runs (``detector``, ``batch``, ``notifier`` or ``gateway``). The first invocation
in a sandbox (the cold start) reads the Slack secrets from SSM, opens the AWS clients and
builds the service once; later invocations reuse all of it on the same event loop.

* :func:`worker_handler`: an SQS event source mapping with ``ReportBatchItemFailures``.
  The messages go through :meth:`shared.worker.Worker.process_received`, so they get the
  same handlers, idempotency, poison handling and retry backoff as under ``toilkit serve``;
  the ids it could not handle are returned as ``batchItemFailures``.
* :func:`gateway_handler`: a Lambda function URL (payload format 2.0) in front of the
  gateway's Bolt app. Lambda freezes a sandbox once the function returns, so the work the
  gateway does after its ack (publishing, opening modals) finishes before the response
  leaves; docs/deploy.md explains why Slack's 3 seconds still hold.
* ``python -m toilkit.aws_lambda scan-request``: run by the drift-scan CodeBuild project
  with ``TOILKIT_SCAN_REQUEST`` set, it runs the detector's own scan handler for that one
  ``DriftScanRequested``. A scan plans for minutes, longer than a worker function may run
  (its timeout must stay within the queue's 60 s visibility timeout), so the detector
  function hands scans to CodeBuild when ``TOILKIT_DRIFT_SCAN_PROJECT`` is set.

The batch function also does what a long-running batch service does in the background:
it settles a run when EventBridge reports that its Step Functions execution ended (records
from the queue named by ``TOILKIT_BATCH_COMPLETION_QUEUE_URL``), and a scheduled
``{"toilkit": "housekeeping"}`` invocation closes expired approvals and settles runs whose
end event was lost.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import typer
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.aws import AwsClients, call_aws
from shared.errors import ConfigError, ToilkitError
from shared.events import DriftScanRequested, event_type_name, parse_event
from shared.observability import configure_function_logging
from shared.runtime import Runtime, open_runtime
from shared.settings import AwsSettings, TopologySettings, load_settings
from shared.worker import Worker

if TYPE_CHECKING:
    from types_aiobotocore_sqs.type_defs import MessageTypeDef

    from services.batch.service import BatchService
    from services.detector.handlers import DetectorHandlers
    from services.detector.settings import DetectorSettings
    from services.gateway.service import GatewayService

log = logging.getLogger(__name__)

T = TypeVar("T")

ServiceName = Literal["detector", "batch", "notifier", "gateway"]

#: The input of the batch function's scheduled invocation (EventBridge Scheduler).
HOUSEKEEPING = {"toilkit": "housekeeping"}

#: Seconds one settle may take: read the execution and the build's log tail, publish.
SETTLE_SECONDS = 20.0
#: Seconds the gateway function gives its after-ack work when Lambda does not say how
#: long the invocation has left (tests).
AFTER_ACK_SECONDS = 8.0

#: Where Slack's requests arrive (the same path as the gateway's own HTTP server).
EVENTS_PATH = "/slack/events"


class LambdaSettings(BaseSettings):
    """What a function reads besides its service's own settings (``TOILKIT_*``).

    Attributes:
        service: the service this function runs.
        slack_bot_token_parameter: SSM SecureString holding the Slack bot token.
        slack_signing_secret_parameter: SSM SecureString holding the signing secret
            (the gateway's).
        drift_scan_project: the CodeBuild project that runs scans (the detector's; the
            function has no Terraform and 55 seconds, so scans always run there).
    """

    model_config = SettingsConfigDict(env_prefix="TOILKIT_", extra="ignore")

    service: ServiceName
    slack_bot_token_parameter: str | None = Field(default=None, min_length=1)
    slack_signing_secret_parameter: str | None = Field(default=None, min_length=1)
    drift_scan_project: str | None = Field(default=None, min_length=2)


@dataclass(frozen=True)
class SlackSecrets:
    """The Slack credentials read from SSM (None: no parameter configured)."""

    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None

    def overrides(self, **fields: str) -> dict[str, SecretStr]:
        """Settings overrides: ``fields`` maps a settings field to ``bot_token`` or
        ``signing_secret``; secrets that were not read are left to the environment."""
        chosen = {field: getattr(self, secret) for field, secret in fields.items()}
        return {field: value for field, value in chosen.items() if value is not None}


async def read_slack_secrets(aws: AwsClients, settings: LambdaSettings) -> SlackSecrets:
    """The Slack secrets from SSM Parameter Store (decrypted), read once per sandbox.

    Raises:
        ConfigError: a configured parameter cannot be read (the message names it).
    """
    names = (settings.slack_bot_token_parameter, settings.slack_signing_secret_parameter)
    if not any(names):
        return SlackSecrets()
    ssm = await aws.client("ssm")

    async def read(name: str | None) -> SecretStr | None:
        if name is None:
            return None
        try:
            response = await call_aws(
                "ssm.get_parameter", lambda: ssm.get_parameter(Name=name, WithDecryption=True)
            )
        except ToilkitError as exc:
            raise ConfigError(f"cannot read SSM parameter {name!r}: {exc}") from exc
        return SecretStr(str(response["Parameter"]["Value"]))

    return SlackSecrets(bot_token=await read(names[0]), signing_secret=await read(names[1]))


# --------------------------------------------------------------------------- SQS records


def sqs_message(record: Mapping[str, Any]) -> MessageTypeDef:
    """A Lambda SQS record in the shape ReceiveMessage returns (what the worker reads)."""
    attributes: dict[str, Any] = {
        name: {"StringValue": value["stringValue"], "DataType": value.get("dataType", "String")}
        for name, value in (record.get("messageAttributes") or {}).items()
        if value.get("stringValue") is not None
    }
    return {
        "MessageId": record["messageId"],
        "ReceiptHandle": record["receiptHandle"],
        "Body": record.get("body", ""),
        "Attributes": dict(record.get("attributes") or {}),
        "MessageAttributes": attributes,
    }


def queue_name_of(record: Mapping[str, Any]) -> str:
    """The queue an SQS record came from (the last part of ``eventSourceARN``)."""
    return str(record.get("eventSourceARN", "")).rsplit(":", 1)[-1]


def batch_response(failed_ids: Sequence[str]) -> dict[str, Any]:
    """The partial batch response that leaves only ``failed_ids`` on the queue."""
    return {"batchItemFailures": [{"itemIdentifier": i} for i in failed_ids]}


class WorkerFunction(Protocol):
    """A service as the target of SQS event source mappings."""

    async def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Handle one invocation and return its partial batch response."""
        ...

    async def aclose(self) -> None:
        """Release what the service holds (when the sandbox is closed)."""
        ...


class QueueWorkerFunction:
    """A service whose whole job in Lambda is its queue (the notifier, the detector).

    Args:
        worker: the service's worker, its handlers registered.
        close: called when the sandbox is closed (the notifier's Slack session).
    """

    def __init__(self, worker: Worker, close: Callable[[], Awaitable[None]] | None = None) -> None:
        self.worker = worker
        self._close = close

    async def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        records = list(event.get("Records") or [])
        failed = await self.worker.process_received([sqs_message(r) for r in records])
        return batch_response(failed)

    async def aclose(self) -> None:
        if self._close is not None:
            await self._close()


# --------------------------------------------------------------------------- detector


class ScanBuilds:
    """Hands a scan request to the drift-scan CodeBuild project.

    The build runs ``python -m toilkit.aws_lambda scan-request``: the detector's own scan
    handler on the request as it arrived (same scan id, correlation id and requester).

    Args:
        codebuild: the CodeBuild client.
        project: the drift-scan project's name.
    """

    def __init__(self, codebuild: Any, project: str) -> None:
        self._codebuild = codebuild
        self.project = project

    async def start(self, event: DriftScanRequested) -> None:
        response = await call_aws(
            "codebuild.start_build",
            lambda: self._codebuild.start_build(
                projectName=self.project,
                # A redelivery within CodeBuild's 5-minute token window starts no second build.
                idempotencyToken=event.event_id[:64],
                environmentVariablesOverride=[
                    {
                        "name": "TOILKIT_SCAN_REQUEST",
                        "value": event.model_dump_json(),
                        "type": "PLAINTEXT",
                    }
                ],
            ),
        )
        build_id = response.get("build", {}).get("id")
        log.info("scan %s: started build %s of %s", event.event_id, build_id, self.project)


async def detector_handlers(runtime: Runtime, settings: DetectorSettings) -> DetectorHandlers:
    """The detector's handlers, wired as ``build_detector`` wires them."""
    from services.detector.config import DetectorConfig  # noqa: PLC0415
    from services.detector.handlers import DetectorHandlers  # noqa: PLC0415
    from services.detector.service import CONSUMER, build_pipeline, build_scanner  # noqa: PLC0415

    config = settings.load_detector_config() or DetectorConfig(repo=Path.cwd().resolve())
    scanner = build_scanner(config, settings)
    pipeline = await build_pipeline(runtime, config, scanner, source=CONSUMER)
    return DetectorHandlers(pipeline=pipeline, lifecycle=pipeline.lifecycle)


async def build_detector_function(runtime: Runtime, settings: LambdaSettings) -> WorkerFunction:
    """The detector's handlers on its queue; scans go to CodeBuild when a project is set."""
    from services.detector.service import CONSUMER  # noqa: PLC0415
    from services.detector.settings import DetectorSettings  # noqa: PLC0415

    # EventBridge Scheduler starts the daily scans in AWS; no local schedule here.
    detector_settings = load_settings(DetectorSettings, scheduler=False)
    mapping = dict((await detector_handlers(runtime, detector_settings)).mapping())
    if settings.drift_scan_project is not None:
        scans = ScanBuilds(await runtime.aws.client("codebuild"), settings.drift_scan_project)
        mapping[DriftScanRequested] = scans.start
    return QueueWorkerFunction(runtime.worker(CONSUMER, mapping, detector_settings.worker))


# --------------------------------------------------------------------------- notifier


async def build_notifier_function(runtime: Runtime, secrets: SlackSecrets) -> WorkerFunction:
    from services.notifier.service import build_notifier  # noqa: PLC0415
    from services.notifier.settings import NotifierSettings  # noqa: PLC0415

    settings = load_settings(NotifierSettings, **secrets.overrides(slack_bot_token="bot_token"))
    service = await build_notifier(runtime, settings=settings)
    return QueueWorkerFunction(service.worker, close=service.aclose)


# --------------------------------------------------------------------------- batch


class BatchFunction:
    """The batch service in Lambda: its queue, run completions and housekeeping.

    A long-running batch service watches each started run in a background task. A
    sandbox is frozen between invocations, so here nothing is left running: runs are
    settled when EventBridge reports their execution's end, and by the scheduled
    housekeeping for any end event that was lost.

    Args:
        service: the batch service, built once.
    """

    def __init__(self, service: BatchService) -> None:
        self.service = service
        self.supervisor = service.supervisor
        url = service.settings.completion_queue_url
        self.completion_queue = url.rstrip("/").rsplit("/", 1)[-1] if url else None

    async def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        from services.batch.handlers import expire_overdue_approvals  # noqa: PLC0415

        try:
            if event.get("toilkit") == HOUSEKEEPING["toilkit"]:
                closed = await expire_overdue_approvals(self.service.context)
                settled = await self.settle_active_runs()
                log.info("housekeeping: %d approval(s) expired, %d run(s) settled", closed, settled)
                return batch_response([])
            records = list(event.get("Records") or [])
            commands = [r for r in records if queue_name_of(r) != self.completion_queue]
            ends = [r for r in records if queue_name_of(r) == self.completion_queue]
            failed = await self.service.worker.process_received([sqs_message(r) for r in commands])
            ended = await asyncio.gather(
                *(self.settle_from_status_change(r.get("body", "")) for r in ends),
                return_exceptions=True,
            )
            failed += [r["messageId"] for r, ok in zip(ends, ended, strict=True) if ok is not True]
            return batch_response(failed)
        finally:
            # The watch tasks a start leaves would freeze with the sandbox and wake at
            # random in later invocations; completions and housekeeping do their job.
            await self.supervisor.stop()

    async def settle_from_status_change(self, body: str) -> bool:
        """Finish the run an EventBridge "Execution Status Change" reports as ended.

        Returns False when the run could not be settled now (the record is retried).
        """
        try:
            detail = json.loads(body)["detail"]
            status = str(detail["status"])
            run_id = json.loads(detail.get("input") or "{}").get("run_id")
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("ignoring a message that is no execution status change: %.200s", body)
            return True
        if status == "RUNNING" or not run_id:
            return True
        return await self.settle(str(run_id))

    async def settle_active_runs(self) -> int:
        """Settle every active run whose runner says it has ended; the count settled."""
        run_ids = await self.supervisor.runs.active_run_ids()
        results = await asyncio.gather(
            *(self.settle(r, quiet=True) for r in run_ids), return_exceptions=True
        )
        for run_id, result in zip(run_ids, results, strict=True):
            if isinstance(result, Exception):
                log.warning(
                    "run %s: not settled now (%s); the next housekeeping retries", run_id, result
                )
        return sum(1 for r in results if r is True)

    async def settle(self, run_id: str, *, quiet: bool = False) -> bool:
        """Finish an ended run (see :meth:`RunSupervisor.settle`); False while it goes on."""
        return await self.supervisor.settle(run_id, wait_seconds=SETTLE_SECONDS, quiet=quiet)

    async def aclose(self) -> None:
        await self.supervisor.stop()


async def build_batch_function(runtime: Runtime, secrets: SlackSecrets) -> WorkerFunction:
    from services.batch.service import build_batch  # noqa: PLC0415
    from services.batch.settings import BatchSettings  # noqa: PLC0415

    settings = load_settings(BatchSettings, **secrets.overrides(slack_bot_token="bot_token"))
    service = await build_batch(runtime, settings)
    local = [
        f"{command.name} in {environment}"
        for command in service.context.catalog.commands
        for environment, options in command.environments.items()
        if options.runner.kind == "local"
    ]
    if local:
        # A local run is a child of the sandbox, stopped when the invocation returns.
        raise ConfigError(
            "the batch function cannot run commands locally: give these a codebuild or "
            f"stepfunctions runner in the catalog: {', '.join(local)}"
        )
    return BatchFunction(service)


# --------------------------------------------------------------------------- gateway


def _response(status: int, text: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": dict(headers or {"Content-Type": "text/plain; charset=utf-8"}),
        "body": text,
    }


class GatewayFunction:
    """The gateway's Bolt app behind a Lambda function URL (payload format 2.0).

    Requests go through the gateway's own door (:meth:`SlackDoor.dispatch`), so they are
    answered as its HTTP server answers them: 413 for a body above ``max_body_bytes``, 401
    for a missing, stale or wrong Slack signature, 400 for a body that is not UTF-8 or not
    a request the gateway serves; then Bolt.

    Args:
        service: the gateway, built once (its HTTP server is never started here).
    """

    def __init__(self, service: GatewayService) -> None:
        self.service = service

    async def handle_http(
        self, event: Mapping[str, Any], *, time_left: float = AFTER_ACK_SECONDS
    ) -> dict[str, Any]:
        """Answer one function URL request.

        Args:
            event: the function URL event (payload format 2.0).
            time_left: seconds the after-ack work may take before the reply goes out
                (what the invocation has left, minus a margin to answer in).
        """
        http = (event.get("requestContext") or {}).get("http") or {}
        method, path = http.get("method", "GET"), event.get("rawPath", "/")
        if method == "GET" and path == "/healthz":
            return _response(200, '{"ok": true}', {"Content-Type": "application/json"})
        if method != "POST" or path != EVENTS_PATH:
            return _response(404, f"{method} {path} is not served here")
        raw = event.get("body") or ""
        body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode("utf-8")
        if len(body) > self.service.settings.max_body_bytes:
            return _response(
                413, f"the body is larger than {self.service.settings.max_body_bytes} bytes"
            )
        headers = {
            str(name).lower(): _header_values(str(name), str(value))
            for name, value in (event.get("headers") or {}).items()
        }
        response = await self.service.door.dispatch(
            body, headers, event.get("rawQueryString") or ""
        )
        # The sandbox freezes once this returns: what the listeners started after the
        # ack (publishing, views.open, replies) ends first, within the function's time.
        try:
            async with asyncio.timeout(time_left):
                await self.service.after_ack.join()
        except TimeoutError:
            log.warning("after-ack work still running after %.1fs; cancelled", time_left)
            await self.service.after_ack.drain(0)
        out_headers = {name: ",".join(values) for name, values in response.headers.items()}
        return _response(response.status, response.body, out_headers)

    async def aclose(self) -> None:
        await self.service.aclose(grace_seconds=5)


def _header_values(name: str, value: str) -> list[str]:
    """Function URLs join a repeated header's values with commas: Slack's signature
    headers are split again (two of them is a refusal); other headers stay whole."""
    if name.lower() in ("x-slack-request-timestamp", "x-slack-signature"):
        return [v.strip() for v in value.split(",")]
    return [value]


async def build_gateway_function(runtime: Runtime, secrets: SlackSecrets) -> GatewayFunction:
    """The gateway with the SSM secrets; the signing secret is required here.

    Raises:
        ConfigError: no signing secret (a function URL is on the internet).
    """
    from services.gateway.service import build_gateway  # noqa: PLC0415
    from services.gateway.settings import GatewaySettings  # noqa: PLC0415

    settings = load_settings(
        GatewaySettings,
        **secrets.overrides(slack_bot_token="bot_token", slack_signing_secret="signing_secret"),
    )
    if settings.slack_signing_secret is None:
        raise ConfigError(
            "the gateway function needs a signing secret: set TOILKIT_SLACK_SIGNING_SECRET_PARAMETER "
            "(an SSM SecureString) or SLACK_SIGNING_SECRET"
        )
    service = await build_gateway(runtime, settings)
    return GatewayFunction(service)


# --------------------------------------------------------------------------- the sandbox


class Sandbox:
    """What one Lambda execution environment keeps between invocations: an event loop,
    the AWS clients and the built service. Opened by the first invocation."""

    def __init__(self, settings: LambdaSettings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._stack = AsyncExitStack()
        self.function: WorkerFunction | GatewayFunction | None = None

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(work)

    async def open(self) -> None:
        runtime = await self._stack.enter_async_context(
            open_runtime(load_settings(AwsSettings), load_settings(TopologySettings))
        )
        secrets = await read_slack_secrets(runtime.aws, self.settings)
        service = self.settings.service
        if service == "gateway":
            self.function = await build_gateway_function(runtime, secrets)
        elif service == "batch":
            self.function = await build_batch_function(runtime, secrets)
        elif service == "notifier":
            self.function = await build_notifier_function(runtime, secrets)
        else:
            self.function = await build_detector_function(runtime, self.settings)
        log.info("sandbox ready: %s", service)

    async def aclose(self) -> None:
        if self.function is not None:
            await self.function.aclose()
        await self._stack.aclose()

    def close(self) -> None:
        self.run(self.aclose())
        self.loop.close()


_sandbox: Sandbox | None = None


def _open_sandbox() -> Sandbox:
    global _sandbox  # noqa: PLW0603 - one per Lambda execution environment, by design
    if _sandbox is None:
        settings = load_settings(LambdaSettings)
        configure_function_logging(settings.service)
        sandbox = Sandbox(settings)
        try:
            sandbox.run(sandbox.open())
        except BaseException:
            sandbox.close()
            raise
        _sandbox = sandbox
    return _sandbox


def close_sandbox() -> None:
    """Close this process's sandbox (tests; Lambda itself just discards the process)."""
    global _sandbox
    if _sandbox is not None:
        sandbox, _sandbox = _sandbox, None
        sandbox.close()


def worker_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda handler for SQS event source mappings (``ReportBatchItemFailures``), and
    for the batch function's scheduled housekeeping."""
    sandbox = _open_sandbox()
    function = sandbox.function
    if isinstance(function, GatewayFunction) or function is None:
        raise ConfigError("worker_handler runs a worker; this function is the gateway")
    return sandbox.run(function.handle(event))


def gateway_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda handler for the gateway's function URL (payload format 2.0)."""
    sandbox = _open_sandbox()
    function = sandbox.function
    if not isinstance(function, GatewayFunction):
        raise ConfigError("gateway_handler runs the gateway; set TOILKIT_SERVICE=gateway")
    remaining_ms = context.get_remaining_time_in_millis() if context is not None else None
    time_left = AFTER_ACK_SECONDS if remaining_ms is None else max(0.5, remaining_ms / 1000 - 1)
    return sandbox.run(function.handle_http(event, time_left=time_left))


# --------------------------------------------------------------------------- CodeBuild side

cli = typer.Typer(help="toilkit's AWS entry points that are not Lambda handlers.")


@cli.callback()
def _commands() -> None:
    """Keeps ``scan-request`` a named command."""


@cli.command("scan-request")
def scan_request() -> None:
    """Run the detector's scan handler on ``TOILKIT_SCAN_REQUEST`` (a DriftScanRequested
    as JSON). A failed state is published as DriftScanFailed, so the exit code is 0
    unless the scan could not run at all."""
    import os  # noqa: PLC0415

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    event = parse_event(os.environ.get("TOILKIT_SCAN_REQUEST", ""))
    if not isinstance(event, DriftScanRequested):
        raise ConfigError(
            f"TOILKIT_SCAN_REQUEST holds a {event_type_name(event)}, not a DriftScanRequested"
        )
    asyncio.run(run_scan_request(event))


async def run_scan_request(event: DriftScanRequested) -> None:
    """Scan what ``event`` asks for and publish the outcome, as the detector's worker would."""
    from services.detector.settings import DetectorSettings  # noqa: PLC0415

    async with open_runtime(load_settings(AwsSettings), load_settings(TopologySettings)) as runtime:
        handlers = await detector_handlers(
            runtime, load_settings(DetectorSettings, scheduler=False)
        )
        await handlers.scan_requested(event)


if __name__ == "__main__":
    cli()
