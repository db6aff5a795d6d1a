"""The notifier: every outcome event from its queue, as Slack messages, exactly once in effect.

:func:`build_notifier` wires it once at start-up: settings and routing, one aiohttp session
and the slack-sdk clients, the DynamoDB records, the posting pace and the worker on the
``notifier`` queue.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass

from slack_sdk.http_retry.interval_calculator import RetryIntervalCalculator
from tenacity.wait import wait_base

from services.notifier.delivery import Delivery
from services.notifier.handlers import NotifierHandlers, build_handlers
from services.notifier.pacing import ChannelPacer
from services.notifier.progress import ProgressUpdates
from services.notifier.settings import NotifierSettings, Routes, describe_routes
from services.notifier.slack import SlackWebApi
from services.notifier.store import NotifierStore
from shared.retry import OUTBOUND_WAIT
from shared.runtime import Runtime
from shared.settings import load_settings
from shared.worker import Worker, WorkerStats

log = logging.getLogger(__name__)

CONSUMER = "notifier"


@dataclass(eq=False)
class NotifierService:
    """The running notifier (the :class:`~shared.runtime.Service` protocol).

    Args:
        worker: the worker on the notifier queue, with the handlers registered.
        resources: what to close when it stops (the aiohttp session).
        settings: the settings it was built from.
        routes: the routing table in force.
    """

    name = CONSUMER

    worker: Worker
    resources: AsyncExitStack
    settings: NotifierSettings
    routes: Routes

    async def run(self) -> None:
        """Consume until :meth:`stop`; closes the Slack session when it returns."""
        try:
            await self.worker.run()
        finally:
            await self.aclose()

    async def drain(self) -> WorkerStats:
        """Handle what is in the queue now and return (tests, one-off runs).

        The Slack session stays open, so it can drain again; :meth:`aclose` closes it.
        """
        return await self.worker.run(burst=True)

    def stop(self) -> None:
        self.worker.stop()

    async def aclose(self) -> None:
        """Close the Slack session (idempotent)."""
        await self.resources.aclose()

    def describe(self) -> str:
        return (
            f"consumes {self.worker.queue_name}; Slack at {self.settings.slack_api_url}; "
            f"routes {describe_routes(self.routes)}"
        )


async def build_notifier(
    runtime: Runtime,
    *,
    settings: NotifierSettings | None = None,
    slack_backoff: RetryIntervalCalculator | None = None,
    post_wait: wait_base = OUTBOUND_WAIT,
) -> NotifierService:
    """Build the notifier from the runtime and its settings (read from the environment).

    Args:
        runtime: the process's clients, names and worker factory.
        settings: the settings; default: ``TOILKIT_NOTIFIER_*`` from the environment.
        slack_backoff: the wait between slack-sdk's 5xx/connection retries (tests: zero).
        post_wait: tenacity's wait between unknown-outcome post attempts (tests: none).

    Raises:
        ConfigError: the settings or the routing table are invalid.
    """
    settings = settings or load_settings(NotifierSettings)
    routes = settings.load_routes()
    resources = AsyncExitStack()
    slack = await resources.enter_async_context(
        SlackWebApi.open(
            settings,
            ChannelPacer(settings.post_interval_seconds),
            backoff=slack_backoff,
            post_wait=post_wait,
        )
    )
    store = NotifierStore(
        runtime.aws.dynamodb,
        runtime.names.state_table,
        ttl_seconds=settings.record_ttl_days * 86400,
    )
    delivery = Delivery(
        slack,
        store,
        claim_lease_seconds=settings.thread_claim_lease_seconds,
        attempt_window_seconds=settings.worker.handler_timeout,
        settle_seconds=settings.retries.settle_seconds,
    )
    progress = ProgressUpdates(slack, store, min_interval=settings.progress_min_interval_seconds)
    handlers = build_handlers(
        NotifierHandlers(
            delivery,
            store,
            routes,
            settings.ops_channel,
            progress,
            drift_revert=settings.drift_revert,
        )
    )
    worker = runtime.worker(CONSUMER, handlers, settings.worker)
    log.info("notifier: routes %s", describe_routes(routes))
    return NotifierService(worker, resources, settings, routes)
