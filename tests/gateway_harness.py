"""The real gateway, served for a test: what the gateway tests and the stand-in's client share.

A test builds the runtime over its moto topology, serves the gateway (aiohttp, Bolt, the
request ledger) on a free loopback port until the block ends, and looks at what reached
the queues and the stand-in's channel.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from services.gateway.service import GatewayService, build_gateway
from services.gateway.settings import GatewaySettings
from shared.aws import AwsClients
from shared.events import parse_event
from shared.runtime import Runtime
from shared.topology import BootstrapReport
from tests.support import receive_all
from toilkit.standins.slack import (
    SignedSlack,
    SlackStandin,
    SlackUserRef,
    block_actions_payload,
    button,
    view_submission_payload,
)

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


def served_gateway(secret: str) -> Callable[..., AsyncIterator[GatewayService]]:
    """A ``service`` fixture: the gateway served over the test's runtime and ``catalog_path``,
    calling the stand-in and checking Slack's signature with ``secret``.

    A test module takes it as ``service = served_gateway(SECRET)``.
    """

    @pytest.fixture
    async def service(
        runtime: Runtime, standin: SlackStandin, catalog_path: Path
    ) -> AsyncIterator[GatewayService]:
        async with serving(runtime, standin_settings(standin, secret, catalog_path)) as running:
            yield running

    return service


class ServedSlack(SignedSlack):
    """Slack's side of a served gateway, waiting for the gateway's after-ack work each time.

    Args:
        service: the gateway the requests go to.
        secret: the signing secret it was given.
        standin: the Slack stand-in that hands out trigger ids.
        channel_id: the channel commands are typed in and buttons are pressed in.
        message_ts: the message whose buttons are pressed (None: one made up).
    """

    def __init__(
        self,
        service: GatewayService,
        secret: str,
        standin: SlackStandin,
        channel_id: str,
        *,
        message_ts: str | None = None,
    ) -> None:
        super().__init__(service.events_url, secret, standin, channel_id)
        self.service = service
        self.message_ts = message_ts

    async def press(self, action_id: str, value: str, user: SlackUserRef) -> tuple[int, str]:
        """``user`` presses a button of the message."""
        payload = block_actions_payload(
            button(action_id, value),
            user=user,
            trigger_id=self.standin.issue_trigger(user.id),
            channel_id=self.channel_id,
            message_ts=self.message_ts,
        )
        status, text = await self.interact(payload)
        await self.service.after_ack.join()
        return status, text

    async def submit(
        self, view: dict[str, Any], answers: dict[str, Any], user: SlackUserRef
    ) -> tuple[int, str]:
        """``user`` submits the modal ``view`` with ``answers``."""
        status, text = await self.interact(view_submission_payload(view, answers, user=user))
        await self.service.after_ack.join()
        return status, text


async def events_on(aws: AwsClients, topology: BootstrapReport, consumer: str) -> list[Any]:
    """The events now visible on a consumer's queue (left there, hidden for 30 s)."""
    messages = await receive_all(aws.sqs, topology.queue_urls[consumer])
    return [parse_event(m["Body"]) for m in messages]


def ephemeral_texts(standin: SlackStandin, channel: str, user_id: str) -> list[str]:
    """The texts of the ephemeral messages only ``user_id`` sees in ``channel``."""
    return [m["text"] for m in standin.ephemeral_messages(channel) if m["ephemeral_for"] == user_id]
