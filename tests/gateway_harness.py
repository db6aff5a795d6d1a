"""The real gateway, served for a test: what the gateway tests and the stand-in's client share.

A test builds the runtime over its moto topology, serves the gateway (aiohttp, Bolt, the
request ledger) on a free loopback port until the block ends, and looks at what reached
the queues and the stand-in's channel.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from services.gateway.service import GatewayService, build_gateway
from services.gateway.settings import GatewaySettings
from shared.aws import AwsClients
from shared.events import parse_event
from shared.runtime import Runtime
from shared.topology import BootstrapReport
from tests.support import receive_all
from toilkit.standins.slack import SlackStandin


def standin_settings(standin: SlackStandin, secret: str, catalog_path: Path) -> GatewaySettings:
    """A gateway that calls the stand-in's Web API and checks Slack's signature with ``secret``."""
    return GatewaySettings(
        slack_api_url=standin.api_url,
        slack_signing_secret=secret,
        port=0,
        catalog_path=catalog_path,
    )


@asynccontextmanager
async def serving(runtime: Runtime, settings: GatewaySettings) -> AsyncIterator[GatewayService]:
    """The gateway listening and running; stopped (its in-flight work finished) on exit."""
    running = await build_gateway(runtime, settings)
    await running.start()
    task = asyncio.create_task(running.run())
    try:
        yield running
    finally:
        running.stop()
        await task


async def events_on(aws: AwsClients, topology: BootstrapReport, consumer: str) -> list[Any]:
    """The events now visible on a consumer's queue (left there, hidden for 30 s)."""
    messages = await receive_all(aws.sqs, topology.queue_urls[consumer])
    return [parse_event(m["Body"]) for m in messages]


def ephemeral_texts(standin: SlackStandin, channel: str, user_id: str) -> list[str]:
    """The texts of the ephemeral messages only ``user_id`` sees in ``channel``."""
    return [m["text"] for m in standin.ephemeral_messages(channel) if m["ephemeral_for"] == user_id]
