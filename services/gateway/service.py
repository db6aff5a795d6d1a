"""The gateway as a running service: built once from the Runtime, served over HTTP (and
Socket Mode when an app-level token is given).

HTTP mode listens on ``host:port`` (default 127.0.0.1:3000) with ``POST /slack/events``
for slash commands and interactivity, and ``GET /healthz``. Socket Mode connects out to
Slack instead (nothing to expose); ``/healthz`` is still served, ``/slack/events`` is not.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from services.gateway.app import AppParts, build_bolt_app
from services.gateway.background import AfterAck
from services.gateway.handlers import Gateway
from services.gateway.ledger import RecentRequests, RequestLedger
from services.gateway.replies import EphemeralReplier, origin
from services.gateway.settings import GatewaySettings, generate_signing_secret
from services.gateway.store import StateTableRecords, interactive_retry
from services.gateway.submission import SubmissionChecks, break_glass_reader
from services.gateway.suggestions import ListedOptions
from services.gateway.transport import EVENTS_PATH, SlackDoor
from shared.catalog import Catalog, load_catalog
from shared.idempotency import IdempotencyStore
from shared.options_fetch import OptionsRefresher, listed_parameters
from shared.runtime import Runtime
from shared.settings import load_settings
from shared.slack.groups import slack_directory
from shared.slack.settings import SLACK_API_URL
from shared.state_table.options import read_options

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    from services.gateway.drift_actions import DriftActions
    from shared.catalog import GroupDirectory

log = logging.getLogger(__name__)

#: Seconds in-flight requests and after-ack work get to finish on stop.
SHUTDOWN_GRACE_SECONDS = 10.0


@dataclass(eq=False, kw_only=True)
class GatewayService:
    """The gateway's HTTP server (and Socket Mode connection) as a toilkit Service.

    Args:
        settings: the gateway's settings.
        door: the checks in front of the Bolt app, also for another way of receiving requests
            (Lambda).
        after_ack: the background work the listeners started.
        signing_secret_generated: the development secret, when one was generated.
        options: the lists of choices from elsewhere (None: the catalog has none).
    """

    name = "gateway"

    settings: GatewaySettings
    door: SlackDoor
    after_ack: AfterAck
    signing_secret_generated: str | None = field(default=None, repr=False)
    options: ListedOptions | None = None
    _runner: web.AppRunner | None = field(default=None, init=False, repr=False)
    _socket: AsyncSocketModeHandler | None = field(default=None, init=False, repr=False)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)
    _url: str | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        """``http://host:port`` the server listens on (after :meth:`start`)."""
        if self._url is None:
            raise RuntimeError("the gateway is not started")
        return self._url

    @property
    def app(self) -> AsyncApp:
        """The Bolt app behind the door."""
        return self.door.app

    @property
    def signing_secret(self) -> str:
        """The secret Slack's requests are checked against (given, or generated here)."""
        return self.door.signing_secret

    @property
    def events_url(self) -> str:
        return self.url + EVENTS_PATH

    async def start(self) -> None:
        """Listen (and connect to Slack in Socket Mode). Idempotent."""
        if self._runner is not None:
            return
        runner = web.AppRunner(
            self.door.web_app(serve_events=not self.settings.socket_mode),
            access_log=None,
            shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.settings.host, self.settings.port)
        await site.start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        shown_host = f"[{host}]" if ":" in str(host) else str(host)
        self._url = f"http://{shown_host}:{port}"
        if self.settings.slack_app_token is not None:
            # Only Socket Mode needs it (200 ms of imports a Lambda function never uses).
            from slack_bolt.adapter.socket_mode.async_handler import (  # noqa: PLC0415
                AsyncSocketModeHandler,
            )

            self._socket = AsyncSocketModeHandler(
                self.app, self.settings.slack_app_token.get_secret_value()
            )
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
        log.info("gateway: %s", self.describe())

    async def run(self) -> None:
        await self.start()
        await self._stopping.wait()
        await self._shutdown()

    def stop(self) -> None:
        self._stopping.set()

    async def aclose(self, grace_seconds: float = SHUTDOWN_GRACE_SECONDS) -> None:
        """Stop serving, let after-ack work finish (up to ``grace_seconds``), close the
        Slack session. For a gateway whose requests arrive another way (Lambda)."""
        await self._shutdown(grace_seconds)

    async def _shutdown(self, grace_seconds: float = SHUTDOWN_GRACE_SECONDS) -> None:
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None
        if self._runner is not None:
            # Stops listening, then lets requests in flight finish (up to the grace).
            await self._runner.cleanup()
            self._runner = None
        await self.after_ack.drain(grace_seconds)
        if self.options is not None:
            await self.options.aclose(min(grace_seconds, 2.0))
        if self.app.client.session is not None:
            await self.app.client.session.close()

    async def reopen_slack_session(self) -> None:
        """Replace the Web API client's HTTP session (its pooled connections) with a new one.

        For a process restored from a snapshot (Lambda SnapStart), whose sockets are gone."""
        client = self.app.client
        old = client.session
        client.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.slack_timeout_seconds)
        )
        if old is not None:
            await old.close()

    def use_bot_token(self, token: str) -> None:
        """Send ``token`` from now on (the Bolt app reads it at each request)."""
        self.app.client.token = token

    def describe(self) -> str:
        where = self._url or f"http://{self.settings.host}:{self.settings.port}"
        if self.settings.socket_mode:
            mode = f"Slack Socket Mode (health on {where}/healthz)"
        else:
            mode = f"Slack requests on {where}{EVENTS_PATH}"
        slack = (
            ""
            if self.settings.slack_api_url == SLACK_API_URL
            else f", Web API {self.settings.slack_api_url}"
        )
        secret = (
            f"; development signing secret (generated): {self.signing_secret_generated}"
            if self.signing_secret_generated
            else ""
        )
        return f"{mode}, command {self.settings.command_name}{slack}{secret}"


def _signing_secret(settings: GatewaySettings) -> tuple[str | None, str | None]:
    """The secret requests are checked against, and the development one if generated here."""
    if settings.slack_signing_secret is not None:
        return settings.slack_signing_secret.get_secret_value(), None
    if settings.socket_mode:
        return None, None
    # Settings allow this only on a loopback address (see GatewaySettings).
    generated = generate_signing_secret()
    log.warning(
        "no SLACK_SIGNING_SECRET given: generated a development one for this run: %s", generated
    )
    return generated, generated


def _slack_client(settings: GatewaySettings) -> AsyncWebClient:
    """The Web API client, on one session for every call: slack-sdk otherwise opens a new
    connection (and a new session) per call."""
    return AsyncWebClient(
        token=settings.token,
        base_url=settings.slack_api_url,
        timeout=settings.slack_timeout_seconds,
        session=aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=settings.slack_timeout_seconds)
        ),
    )


def _shared_ledger(runtime: Runtime, settings: GatewaySettings) -> RequestLedger | None:
    if not settings.shared_ledger:
        return None
    return RequestLedger(
        IdempotencyStore(
            runtime.aws.dynamodb,
            runtime.names.idempotency_table,
            completed_ttl=settings.request_record_seconds,
        ),
        remember_seconds=settings.request_record_seconds,
    )


def _drift_actions(runtime: Runtime, catalog: Catalog, directory: GroupDirectory) -> DriftActions:
    """What the drift buttons do, built on the first press (``AppParts.drift``).

    Imported here, not at the top: a cold start that serves a ``/toil run`` needs neither
    these stores nor the Ignore… modal (~5 ms of a Lambda cold start)."""
    from services.gateway.drift_actions import DriftActions  # noqa: PLC0415 - see the docstring
    from shared.state_table.drift_actions import (  # noqa: PLC0415
        DriftAudit,
        IgnoreRuleStore,
        ScanGuard,
    )

    ddb, table = runtime.aws.dynamodb, runtime.names.state_table
    return DriftActions(
        catalog=catalog,
        directory=directory,
        publish=runtime.publisher.publish,
        ignores=IgnoreRuleStore(ddb, table),
        guard=ScanGuard(ddb, table),
        audit=DriftAudit(ddb, table),
    )


def _listed_options(
    runtime: Runtime, settings: GatewaySettings, catalog: Catalog
) -> ListedOptions | None:
    """The lists of choices from elsewhere (None when no parameter has ``options_from``)."""
    if not listed_parameters(catalog):
        return None
    ddb, table = runtime.aws.dynamodb, runtime.names.state_table
    refresher = (
        OptionsRefresher(
            catalog,
            ddb,
            table,
            kinds=frozenset({"git", "url"}),
            cache_dir=settings.options_cache_dir,
        )
        if settings.refresh_options
        else None
    )

    async def read(command: str, parameter: str) -> Any:
        return await read_options(ddb, table, command, parameter, retry=interactive_retry())

    return ListedOptions(
        catalog, read, refresher, read_timeout=min(settings.read_timeout_seconds, 1.5)
    )


async def build_gateway(
    runtime: Runtime, settings: GatewaySettings | None = None, *, catalog: Catalog | None = None
) -> GatewayService:
    """Wire the gateway once: catalog, Slack client, group cache, ledger, Bolt app, server.

    ``catalog``: the one at ``settings.catalog_path``, already loaded (default: load it).

    Raises:
        ConfigError: bad settings (naming the variable) or an invalid catalog.
    """
    settings = settings or load_settings(GatewaySettings)
    catalog = load_catalog(settings.catalog_path) if catalog is None else catalog
    signing_secret, generated = _signing_secret(settings)
    client = _slack_client(settings)
    gateway = Gateway(
        catalog=catalog,
        records=StateTableRecords(runtime.aws.dynamodb, runtime.names.state_table),
        directory=slack_directory(catalog, client, ttl_seconds=settings.usergroup_cache_seconds),
        publish=runtime.publisher.publish,
        command_name=settings.command_name,
        recent_runs=settings.recent_runs,
    )
    after_ack = AfterAck(settings.after_ack_concurrency)
    options = _listed_options(runtime, settings, catalog)
    trusted = () if settings.slack_api_url == SLACK_API_URL else (origin(settings.slack_api_url),)
    parts = AppParts(
        gateway=gateway,
        client=client,
        replier=EphemeralReplier(client, trusted_response_hosts=trusted),
        after_ack=after_ack,
        command_name=settings.command_name,
        read_timeout=settings.read_timeout_seconds,
        ledger=_shared_ledger(runtime, settings),
        drift=partial(_drift_actions, runtime, catalog, gateway.directory),
        checks=SubmissionChecks(
            options=options,
            break_glass_used=break_glass_reader(runtime.aws.dynamodb, runtime.names.state_table),
            timeout=min(settings.read_timeout_seconds, 1.5),
        ),
    )
    app = build_bolt_app(
        parts, recent=RecentRequests(remember_seconds=settings.request_record_seconds)
    )
    door = SlackDoor(
        app,
        # Socket Mode serves no /slack/events; the door then only answers /healthz.
        signing_secret=signing_secret or generate_signing_secret(),
        max_body_bytes=settings.max_body_bytes,
    )
    return GatewayService(
        settings=settings,
        door=door,
        after_ack=after_ack,
        signing_secret_generated=generated,
        options=options,
    )
