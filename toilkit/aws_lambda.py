"""AWS Lambda's side of toilkit: the sandbox a function runs in, and the two handlers.

Each function runs one service, named by ``TOILKIT_SERVICE``, and is built by that service's
own ``services/<name>/function.py`` (``build_function``) from the same ``build_<name>`` as
``toilkit serve``. ``scripts/build-lambda.sh`` packs one zip per function with only what it
imports; this module and :mod:`shared` are in every one of them.

* :func:`worker_handler`: SQS event source mappings with ``ReportBatchItemFailures`` (the
  detector, batch and notifier functions) and the batch function's scheduled housekeeping.
* :func:`gateway_handler`: the gateway's function URL (payload format 2.0), decoded into an
  :class:`~shared.lambda_function.HttpRequest` and answered from an ``HttpResponse``.

The sandbox (:class:`Sandbox`) is what one execution environment keeps between invocations:
an event loop, the AWS clients, the SSM secrets and the built function. In Lambda it is
opened while the module is imported, in the init phase, so a SnapStart snapshot holds it
whole: imports, clients and the built service. Opening runs the AWS lookups (none when
the environment names the topic and queues) and the SSM reads side by side. After a
SnapStart restore it reads the secrets again, reseeds ``random`` and drops the pooled
connections of the process that took the snapshot.

With the AWS Parameters and Secrets Lambda Extension on the function
(``TOILKIT_SECRETS_EXTENSION``), an on-demand init reads its first secrets through it
(:mod:`shared.ssm_extension`) instead of an SSM client, so a cold gateway answers its first
request without botocore. The extension answers only once a request came, so such an init
only imports the function's modules; the sandbox opens on the first request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import importlib
import logging
import os
import random
from collections.abc import Coroutine, Iterator, Mapping
from contextlib import AsyncExitStack
from typing import Any, Literal, TypeVar

from pydantic import Field, SecretStr

from shared.aws import AwsClients, ClientOnFirstCall
from shared.env_settings import EnvConfigDict, EnvSettings
from shared.errors import ConfigError
from shared.lambda_function import (
    FunctionBuilder,
    FunctionContext,
    HttpFunction,
    HttpRequest,
    WorkerFunction,
)
from shared.observability import configure_function_logging
from shared.runtime import runtime_on
from shared.secrets import (
    BOT_TOKEN,
    MAX_AGE_SECONDS,
    REFRESH_INTERVAL_SECONDS,
    SIGNING_SECRET,
    SsmSecrets,
)
from shared.settings import AwsSettings, TopologySettings, load_settings
from shared.ssm_extension import DEFAULT_PORT, ParametersExtension
from shared.topology import QUEUES, BootstrapReport, Names

log = logging.getLogger(__name__)

T = TypeVar("T")

ServiceName = Literal["detector", "batch", "notifier", "gateway"]

#: Seconds the gateway function gives its after-ack work when Lambda does not say how
#: long the invocation has left (tests).
AFTER_ACK_SECONDS = 8.0

#: Lambda sets this in every execution environment (``on-demand``, ``snap-start``,
#: ``provisioned-concurrency``): the module is being imported in a function's init phase.
INIT_TYPE_VARIABLE = "AWS_LAMBDA_INITIALIZATION_TYPE"


class LambdaSettings(EnvSettings):
    """What a function reads besides its service's own settings (``TOILKIT_*``).

    Attributes:
        service: the service this function runs.
        slack_bot_token_parameter: SSM SecureString holding the Slack bot token.
        slack_signing_secret_parameter: SSM SecureString holding the signing secret
            (the gateway's).
        secret_refresh_seconds: the least time between two reads of the secrets after the
            first (a signature mismatch asks for one).
        secret_max_age_seconds: how old the copy of the secrets may get before a function
            reads them again (the gateway: before its next request).
        topic_arn: the events topic's ARN (``TOILKIT_TOPIC_ARN``), and
        queue_urls: each consumer's queue URL (``TOILKIT_QUEUE_URLS``, a JSON object):
            what Terraform knows, so that a cold sandbox looks nothing up. Without them (or
            without the function's own queue) the sandbox looks the topology up by name.
        initialization_type: Lambda's ``AWS_LAMBDA_INITIALIZATION_TYPE``. An ``on-demand``
            init is on the first request's path, so it opens only the clients that the
            sandbox calls at once; a SnapStart or provisioned-concurrency init is not, so
            it opens them all.
        secrets_extension: the AWS Parameters and Secrets Lambda Extension's layer is on
            the function: an on-demand sandbox reads its first secrets through it.
        secrets_extension_port: the extension's ``PARAMETERS_SECRETS_EXTENSION_HTTP_PORT``.
        session_token: Lambda's ``AWS_SESSION_TOKEN``, which the extension asks for (Lambda
            does not set it in every kind of init; without it the SDK reads the secrets).
    """

    model_config = EnvConfigDict(env_prefix="TOILKIT_", extra="ignore")

    service: ServiceName
    slack_bot_token_parameter: str | None = Field(default=None, min_length=1)
    slack_signing_secret_parameter: str | None = Field(default=None, min_length=1)
    secret_refresh_seconds: float = Field(default=REFRESH_INTERVAL_SECONDS, ge=0, le=3600)
    secret_max_age_seconds: float = Field(default=MAX_AGE_SECONDS, ge=0, le=86400)
    topic_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:sns:[^:]+:\d{12}:.+$")
    queue_urls: dict[str, str] = Field(default_factory=dict)
    initialization_type: str | None = Field(
        default=None, validation_alias=INIT_TYPE_VARIABLE, min_length=1
    )
    secrets_extension: bool = False
    secrets_extension_port: int = Field(
        default=DEFAULT_PORT,
        validation_alias="PARAMETERS_SECRETS_EXTENSION_HTTP_PORT",
        ge=1,
        le=65535,
    )
    session_token: SecretStr | None = Field(default=None, validation_alias="AWS_SESSION_TOKEN")

    def secret_parameters(self) -> dict[str, str]:
        """The SSM parameter of each configured secret, by the key functions ask for."""
        named = {
            BOT_TOKEN: self.slack_bot_token_parameter,
            SIGNING_SECRET: self.slack_signing_secret_parameter,
        }
        return {key: name for key, name in named.items() if name is not None}

    def known_topology(self) -> BootstrapReport | None:
        """The topic and queues from the environment, when they hold all this function
        uses (the topic, and its own queue if it consumes one); else None."""
        consumes = self.service in {spec.consumer for spec in QUEUES}
        if self.topic_arn is None or (consumes and self.service not in self.queue_urls):
            return None
        return BootstrapReport(topic_arn=self.topic_arn, queue_urls=dict(self.queue_urls))

    def secrets_extension_at_start(self) -> ParametersExtension | None:
        """The extension to read the first secrets through: only in an on-demand init (the
        first request waits for it; a SnapStart or provisioned init reads SSM off the
        request path), with its layer configured, a session token and secrets to read."""
        if not (
            self.secrets_extension
            and self.initialization_type == "on-demand"
            and self.session_token is not None
            and self.secret_parameters()
        ):
            return None
        return ParametersExtension(
            port=self.secrets_extension_port, token=self.session_token.get_secret_value()
        )

    def clients_at_start(self) -> tuple[str, ...]:
        """The core AWS clients to open before the first request (see the class)."""
        return () if self.initialization_type == "on-demand" else AwsClients.CORE


def function_builder(service: ServiceName) -> FunctionBuilder:
    """``services/<service>/function.py``'s ``build_function``, imported only now: a
    function's package holds its own service and no other."""
    module = importlib.import_module(f"services.{service}.function")
    builder: FunctionBuilder = module.build_function
    return builder


class Sandbox:
    """What one Lambda execution environment keeps between invocations: an event loop,
    the AWS clients, the secrets and the built function."""

    def __init__(self, settings: LambdaSettings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._stack = AsyncExitStack()
        self.context: FunctionContext | None = None
        self.function: WorkerFunction | HttpFunction | None = None

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(work)

    async def open(self) -> None:
        """Open the clients, look up the topology and read the secrets, then build."""
        build = function_builder(self.settings.service)
        aws = await self._stack.enter_async_context(
            AwsClients(load_settings(AwsSettings), open_at_start=self.settings.clients_at_start())
        )
        parameters = self.settings.secret_parameters()
        secrets = SsmSecrets(
            ClientOnFirstCall(aws, "ssm") if parameters else None,
            parameters,
            min_interval=self.settings.secret_refresh_seconds,
            max_age=self.settings.secret_max_age_seconds,
            first_read=self.settings.secrets_extension_at_start(),
        )
        # The first read runs while the rest opens and the function is built: a builder
        # waits for it (FunctionContext.secret_overrides) once it needs a secret.
        reading = asyncio.ensure_future(secrets.load())
        await asyncio.sleep(0)  # under way now (the extension's reads are in threads)
        try:
            names = Names.from_settings(load_settings(TopologySettings))
            runtime = await runtime_on(aws, names, topology=self.settings.known_topology())
            self.context = FunctionContext(runtime=runtime, secrets=secrets, secrets_read=reading)
            self.function = await build(self.context)
            await reading
        except BaseException:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
            raise
        log.info("sandbox ready: %s", self.settings.service)

    async def restored(self) -> None:
        """After a SnapStart restore: new connections, secrets read again, and the function
        told (or built again when it has no ``restored`` of its own and a secret changed)."""
        if self.context is None or self.function is None:
            return
        await self.context.runtime.aws.reset_connections()
        hook = getattr(self.function, "restored", None)
        if hook is not None:
            await hook()
            return
        if await self.context.secrets.refresh(force=True):
            await self.function.aclose()
            self.function = await function_builder(self.settings.service)(self.context)

    async def aclose(self) -> None:
        if self.function is not None:
            await self.function.aclose()
        await self._stack.aclose()

    def close(self) -> None:
        self.run(self.aclose())
        self.loop.close()


_sandbox: Sandbox | None = None


def _open_sandbox(settings: LambdaSettings | None = None) -> Sandbox:
    global _sandbox  # noqa: PLW0603 - one per Lambda execution environment, by design
    if _sandbox is None:
        settings = settings or load_settings(LambdaSettings)
        configure_function_logging(settings.service)
        sandbox = Sandbox(settings)
        with _collector_paused():
            try:
                sandbox.run(sandbox.open())
            except BaseException:
                sandbox.close()
                raise
        _sandbox = sandbox
    return _sandbox


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a Lambda sandbox opens (toilkit/__init__.py says
    why); what opening made lives as long as the sandbox, so it leaves the collector's sight
    for good. Outside Lambda (tests, tools) nothing changes."""
    if not os.environ.get(INIT_TYPE_VARIABLE):
        yield
        return
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if collecting:
            gc.enable()


def _init_phase() -> None:
    """Lambda's init: open the sandbox; or, when its first secrets come from the extension
    (which answers only once a request came), import the function's modules and leave the
    opening to the first request."""
    settings = load_settings(LambdaSettings)
    if settings.secrets_extension_at_start() is None:
        _open_sandbox(settings)
    else:
        configure_function_logging(settings.service)
        function_builder(settings.service)


def close_sandbox() -> None:
    """Close this process's sandbox (tests; Lambda itself just discards the process)."""
    global _sandbox
    if _sandbox is not None:
        sandbox, _sandbox = _sandbox, None
        sandbox.close()


def _after_restore() -> None:
    """SnapStart's after-restore hook: every restored copy of the snapshot is its own."""
    random.seed()
    if _sandbox is not None:
        _sandbox.run(_sandbox.restored())


def worker_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda handler for SQS event source mappings (``ReportBatchItemFailures``), and
    for the batch function's scheduled housekeeping."""
    sandbox = _open_sandbox()
    function = sandbox.function
    if not isinstance(function, WorkerFunction):
        raise ConfigError("worker_handler runs a worker; this function is the gateway")
    return sandbox.run(function.handle(event))


def gateway_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda handler for the gateway's function URL (payload format 2.0)."""
    sandbox = _open_sandbox()
    function = sandbox.function
    if not isinstance(function, HttpFunction):
        raise ConfigError("gateway_handler runs the gateway; set TOILKIT_SERVICE=gateway")
    remaining_ms = context.get_remaining_time_in_millis() if context is not None else None
    time_left = AFTER_ACK_SECONDS if remaining_ms is None else max(0.5, remaining_ms / 1000 - 1)
    response = sandbox.run(function.handle_http(http_request(event), time_left=time_left))
    return {"statusCode": response.status, "headers": dict(response.headers), "body": response.body}


# --------------------------------------------------------------------------- function URLs


def http_request(event: Mapping[str, Any]) -> HttpRequest:
    """The request a function URL event (payload format 2.0) carries."""
    http = (event.get("requestContext") or {}).get("http") or {}
    raw = event.get("body") or ""
    body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode("utf-8")
    return HttpRequest(
        method=str(http.get("method", "GET")),
        path=str(event.get("rawPath", "/")),
        body=body,
        headers={
            str(name).lower(): _header_values(str(name), str(value))
            for name, value in (event.get("headers") or {}).items()
        },
        query=str(event.get("rawQueryString") or ""),
    )


def _header_values(name: str, value: str) -> list[str]:
    """Function URLs join a repeated header's values with commas: Slack's signature
    headers are split again (two of them is a refusal); other headers stay whole."""
    if name.lower() in ("x-slack-request-timestamp", "x-slack-signature"):
        return [v.strip() for v in value.split(",")]
    return [value]


def _register_snapstart_hooks() -> None:
    try:
        from snapshot_restore_py import register_after_restore  # noqa: PLC0415
    except ImportError:  # not in Lambda's python3.12+ runtime: no snapshots to restore
        return
    register_after_restore(_after_restore)


# Lambda's init phase: open the sandbox now, so the first request finds it ready and a
# SnapStart snapshot holds it. Anywhere else (tests, tools) importing this opens nothing.
if os.environ.get(INIT_TYPE_VARIABLE):
    _register_snapstart_hooks()
    try:
        _init_phase()
    finally:
        # Collection was off while importing and opening (toilkit/__init__.py): what init
        # made lives as long as the sandbox, so it leaves the collector's sight for good.
        gc.freeze()
        gc.enable()
