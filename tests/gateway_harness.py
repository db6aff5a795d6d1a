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

#: A catalog's ``backfill`` command as far as the gateway tests share it: its description,
#: argv and typed parameters (a catalog adds its environments, and may add parameters).
BACKFILL_COMMAND = r"""
  - name: backfill
    description: Backfill order totals since a date.
    argv: [python3, backfill.py, --since, "{since}", --limit, "{limit}", --mode, "{mode}",
           --notify, "{notify}", "{dry_run}"]
    parameters:
      - {name: since, type: text, label: "Since (YYYY-MM-DD)", pattern: '\d{4}-\d{2}-\d{2}',
         max_length: 10}
      - {name: limit, type: integer, minimum: 1, maximum: 1000, default: 100}
      - {name: mode, type: choice, choices: [fast, safe], default: safe}
      - {name: notify, type: slack_user, required: false}
      - {name: dry_run, type: boolean, default: true}
"""

#: The input blocks of :data:`BACKFILL_COMMAND`'s form: block id -> element type.
BACKFILL_FORM_INPUTS = {
    "command": "static_select",
    "environment": "static_select",
    "param:since": "plain_text_input",
    "param:limit": "number_input",
    "param:mode": "static_select",
    "param:notify": "users_select",
    "param:dry_run": "radio_buttons",
    "reason": "plain_text_input",
}

#: A catalog command only Alice may run, in staging: ``echo {text}``.
ECHO_COMMAND = """
  - name: echo
    description: Print the text.
    argv: [echo, "{text}"]
    parameters: [{name: text, type: text}]
    environments:
      staging: {allowed: {users: [U0ALICE001]}}
"""


def input_types(view: dict[str, Any]) -> dict[str, str]:
    """A modal's input blocks: block id -> element type."""
    return {b["block_id"]: b["element"]["type"] for b in view["blocks"] if b["type"] == "input"}


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
