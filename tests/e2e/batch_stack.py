"""The batch end-to-end stack and a person's side of Slack, for the ``tests/e2e/test_batch_*``
modules (their fixtures are in ``tests/e2e/conftest.py``).

The gateway, the batch service and the notifier are built through the composition root
(:func:`toilkit.services.service_factories`) on one Runtime on moto, from their
environment variables, as ``toilkit up`` builds them; they run as tasks until the module
ends. The gateway listens on a free loopback port; the Slack stand-in is Slack for all
three. The catalog is the demo one (``catalog/demo.yaml``), with its scripts' folder made
absolute, the demo database in the test's folder and ``reindex-search``'s timeout cut to
:data:`REINDEX_TIMEOUT_SECONDS` so a timeout happens within the suite's budget.

A :class:`Person` does what a person does in Slack: ``/toil run`` (a signed slash command),
picking a command in the modal, submitting it with parameters, and clicking the buttons a
run message shows (their values are read from the message as posted). The readers below
read what the stand-in shows; nothing sleeps: each wait polls the stand-in with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import unquote, urlparse

import pytest
import yaml

from services.gateway.blocks import PICK_COMMAND_ACTION
from services.gateway.service import GatewayService
from shared.aws import AwsClients
from shared.catalog import DEMO_CATALOG
from shared.runtime import Service, open_runtime
from shared.settings import AwsSettings, TopologySettings
from shared.topology import Names, bootstrap
from tests.support import eventually, texts_of
from toilkit.services import service_factories
from toilkit.standins.slack import SlackStandin
from toilkit.standins.slack.app_requests import (
    SignedSlack,
    SlackUserRef,
    block_actions_payload,
    button,
    select,
    view_submission_payload,
)

SECRET = "e2e0batch0flow0signing0secret000"
#: Where people type ``/toil run``.
OPS_CHANNEL = "C0OPS00001"
#: Where the notifier posts runs under ``toilkit up`` (its default channel).
RUNS_CHANNEL = "#toilkit"
ALICE = SlackUserRef("U0ALICE001", "alice")  # in @sre: may run, may approve
BOB = SlackUserRef("U0BOB00002", "bob")  # in @sre
CAROL = SlackUserRef("U0CAROL003", "carol")  # may run, not an approver

#: reindex-search's timeout in this flow (the demo catalog says 120 s); a cancel happens
#: well within it, a 30-step reindex well past it.
REINDEX_TIMEOUT_SECONDS = 10
#: How long any one step of the flow may take before the test fails.
DEADLINE_SECONDS = 40.0

FINAL_STATUSES = ("Succeeded", "Failed", "Timed out", "Cancelled", "Refused")
RUN_ID_IN_REPLY = re.compile(r"\(run `([^`]+)`\)")

T = TypeVar("T")


# --------------------------------------------------------------------------- the stack


def flow_catalog(db_path: Path) -> dict[str, Any]:
    """The demo catalog as ``toilkit up`` reads it, with three changes a test needs.

    The scripts' folder is absolute (the file is written elsewhere), the demo database
    lives in the test's folder, and reindex-search times out after
    :data:`REINDEX_TIMEOUT_SECONDS`.
    """
    data: dict[str, Any] = yaml.safe_load(DEMO_CATALOG.read_text(encoding="utf-8"))
    for command in data["commands"]:
        # The YAML anchors made every environment of every command one shared object.
        environments = json.loads(json.dumps(command["environments"]))
        for policy in environments.values():
            policy["runner"] = {
                "kind": "local",
                "workdir": str(DEMO_CATALOG.parent),
                "env": {"TOILKIT_DEMO_DB": str(db_path)},
            }
        command["environments"] = environments
        if command["name"] == "run-patch":
            # Its list comes from this repository's git, and its scripts run from there.
            repository = DEMO_CATALOG.parent.parent
            command["parameters"][0]["options_from"]["repository"] = str(repository)
            for policy in environments.values():
                policy["runner"]["workdir"] = str(repository)
        if command["name"] == "reindex-search":
            command["timeout_seconds"] = REINDEX_TIMEOUT_SECONDS
    del data["x-environments"]
    return data


@dataclass
class Stack:
    """The running services and the Slack stand-in they all talk to."""

    standin: SlackStandin
    gateway: GatewayService
    services: list[Service]
    log_dir: Path


@contextlib.asynccontextmanager
async def open_stack(
    moto_endpoint: str,
    folder: Path,
    catalog: dict[str, Any],
    settings: dict[str, str] | None = None,
) -> AsyncIterator[Stack]:
    """gateway + batch + notifier on one Runtime over ``catalog``, configured as
    ``toilkit up`` does (``settings``: more environment variables)."""
    catalog_path = folder / "catalog.yaml"
    catalog_path.write_text(yaml.safe_dump(catalog))
    prefix = f"e2e{uuid.uuid4().hex[:8]}"
    async with SlackStandin() as standin:
        with pytest.MonkeyPatch.context() as env:
            for variable in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"):
                env.delenv(variable, raising=False)
            for prefix_of in ("NOTIFIER", "GATEWAY", "BATCH"):
                env.setenv(f"TOILKIT_{prefix_of}_SLACK_API_URL", standin.api_url)
            env.setenv("TOILKIT_GATEWAY_SLACK_SIGNING_SECRET", SECRET)
            env.setenv("TOILKIT_GATEWAY_PORT", "0")
            env.setenv("TOILKIT_GATEWAY_CATALOG_PATH", str(catalog_path))
            env.setenv("TOILKIT_BATCH_CATALOG_PATH", str(catalog_path))
            env.setenv("TOILKIT_BATCH_LOG_DIR", str(folder / "runs"))
            env.setenv("TOILKIT_BATCH_KILL_GRACE_SECONDS", "3")
            # A stopping worker lets its SQS long poll finish (what it brings is given
            # back), so shorter polls than the 20 s default make the stack stop sooner.
            for prefix_of in ("NOTIFIER", "BATCH"):
                env.setenv(f"TOILKIT_{prefix_of}_WORKER__WAIT_TIME_SECONDS", "2")
            env.setenv("TOILKIT_NAME_PREFIX", prefix)
            # The demo catalog's nightly schedule must not add runs at its hour.
            env.setenv("TOILKIT_BATCH_SCHEDULES_ENABLED", "false")
            for name, value in (settings or {}).items():
                env.setenv(name, value)
            aws_settings = AwsSettings(AWS_ENDPOINT_URL=moto_endpoint, AWS_REGION="us-east-1")
            topology_settings = TopologySettings()
            async with AwsClients(aws_settings) as aws:
                await bootstrap(aws, Names.from_settings(topology_settings))
            async with open_runtime(aws_settings, topology_settings) as runtime:
                factories = service_factories()
                services = [await factories[name](runtime) for name in ("batch", "notifier")]
                gateway = cast(GatewayService, await factories["gateway"](runtime))
                services.append(gateway)
                await gateway.start()
                tasks = [asyncio.create_task(service.run()) for service in services]
                try:
                    yield Stack(standin, gateway, services, folder / "runs")
                finally:
                    for service in services:
                        service.stop()
                    await asyncio.wait_for(asyncio.gather(*tasks), 60)


# --------------------------------------------------------------------------- Slack, as seen


async def until(check: Callable[[], Awaitable[T | None]]) -> T:
    """Poll ``check`` until it finds what it looks for (not None) or the deadline passes."""
    found = await eventually(check, timeout=DEADLINE_SECONDS)
    assert found is not None
    return found


def shown(message: dict[str, Any]) -> str:
    """What a message shows: its blocks' texts, one per line."""
    return "\n".join(texts_of(message.get("blocks", [])))


def rendered(message: dict[str, Any]) -> str:
    """What a reader sees: the blocks' texts with Slack's ``&amp;``/``&lt;``/``&gt;`` undone."""
    return html.unescape(shown(message))


def buttons_of(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The message's buttons by action id."""
    found: dict[str, dict[str, Any]] = {}
    for block in message.get("blocks", []):
        elements = block.get("elements", []) if block.get("type") == "actions" else []
        accessory = block.get("accessory")
        for element in [*elements, *([accessory] if accessory else [])]:
            if element.get("type") == "button":
                found[element["action_id"]] = element
    return found


def status_of(message: dict[str, Any]) -> str:
    """The run's status word(s) as the message's notification text starts with them."""
    return str(message.get("text", "")).split(":", 1)[0]


class Person:
    """One person in the workspace, using Slack: typing, picking, submitting, clicking."""

    def __init__(self, user: SlackUserRef, stack: Stack, slack: SignedSlack) -> None:
        self.user = user
        self.stack = stack
        self.standin = stack.standin
        self.slack = slack

    # ------------------------------------------------------------ the modal

    async def open_run_modal(self) -> dict[str, Any]:
        """``/toil run`` in the ops channel; the modal Slack then shows."""
        before = self.view_ids()
        assert await self.slack.slash("run", self.user) == (200, "")
        return await self.view_opened(before)

    def view_ids(self) -> set[str]:
        """The ids of the modals Slack shows now (to tell a new one apart)."""
        return {view["id"] for view in self.standin.views()}

    async def view_opened(self, before: set[str]) -> dict[str, Any]:
        """The first modal Slack shows that was not among ``before``."""

        async def opened() -> dict[str, Any] | None:
            return next((v for v in self.standin.views() if v["id"] not in before), None)

        return await until(opened)

    async def pick(self, view: dict[str, Any], command: str) -> dict[str, Any]:
        """Pick ``command`` in the modal's command menu; the modal as it updates."""
        payload = block_actions_payload(
            select(PICK_COMMAND_ACTION, command, block_id="command"),
            user=self.user,
            trigger_id=self.standin.issue_trigger(self.user.id, view["id"]),
            view=view,
        )
        status, _ = await self.slack.interact(payload)
        assert status == 200

        async def updated() -> dict[str, Any] | None:
            current = next(v for v in self.standin.views() if v["id"] == view["id"])
            return current if current["hash"] != view["hash"] else None

        return await until(updated)

    async def request(
        self,
        command: str,
        environment: str,
        parameters: dict[str, str],
        reason: str,
        *,
        retries: int = 0,
    ) -> str:
        """Open the modal, pick, fill in and submit (plus Slack's ``retries`` of the
        submission); the run id the gateway's reply names."""
        form = await self.pick(await self.open_run_modal(), command)
        answers: dict[str, Any] = {
            "environment": environment,
            "reason": reason,
            **{f"param:{name}": value for name, value in parameters.items()},
        }
        return await self.submit(form, answers, retries=retries)

    async def submit(
        self,
        view: dict[str, Any],
        answers: dict[str, Any],
        *,
        retries: int = 0,
        reply_in: str | None = None,
    ) -> str:
        """Submit ``view`` with ``answers`` (other inputs keep what they show; plus Slack's
        ``retries`` of the submission); the run id the gateway's reply names.

        The reply is a "Requested ..." one in the ops channel or, for a modal opened from
        a message in channel ``reply_in``, any reply there.
        """

        def said() -> list[str]:
            elsewhere = self.ephemeral_texts(reply_in) if reply_in is not None else []
            return self.requested_replies() + elsewhere

        payload = view_submission_payload(view, answers, user=self.user)
        before = len(said())
        for attempt in range(retries + 1):
            status, text = await self.slack.interact(payload, retry_num=attempt or None)
            assert (status, text) == (200, ""), f"attempt {attempt}: {text}"

        async def answered() -> list[str]:
            return said()[before:]

        [reply] = await eventually(answered, timeout=DEADLINE_SECONDS)
        match = RUN_ID_IN_REPLY.search(reply)
        assert match, reply
        return match.group(1)

    def requested_replies(self) -> list[str]:
        """The "Requested ..." replies only this person sees in the ops channel."""
        return [
            text for text in self.ephemeral_texts(OPS_CHANNEL) if text.startswith(":inbox_tray:")
        ]

    def ephemeral_texts(self, channel: str) -> list[str]:
        return [
            message["text"]
            for message in self.standin.ephemeral_messages(channel)
            if message["ephemeral_for"] == self.user.id
        ]

    # ------------------------------------------------------------ the run message

    async def click(self, message: dict[str, Any], action_id: str) -> None:
        """Click a button of a run message (after Slack's confirm dialog, if it has one)."""
        element = buttons_of(message)[action_id]
        payload = block_actions_payload(
            button(action_id, element["value"]),
            user=self.user,
            trigger_id=self.standin.issue_trigger(self.user.id),
            channel_id=runs_channel_id(self.standin),
            message_ts=message["ts"],
        )
        status, _ = await self.slack.interact(payload)
        assert status == 200


def runs_channel_id(standin: SlackStandin) -> str:
    """The id Slack gave the runs channel (a person's client knows it)."""
    [call] = [
        c
        for c in standin.calls("chat.postMessage")
        if c.ok and c.arguments.get("channel") == RUNS_CHANNEL
    ][:1]
    assert call.response is not None
    return str(call.response["channel"])


def run_message(standin: SlackStandin, run_id: str) -> dict[str, Any] | None:
    """The run's message in the runs channel (latest version, thread replies inside)."""
    mark = f"Run `{run_id}`"
    return next((m for m in standin.messages(RUNS_CHANNEL) if mark in shown(m)), None)


def first_version(standin: SlackStandin, run_id: str) -> dict[str, Any]:
    """The run message as it was first posted (before any update)."""
    mark = f"Run `{run_id}`"
    posted = [
        call.arguments
        for call in standin.calls("chat.postMessage")
        if call.ok and mark in shown(call.arguments)
    ]
    assert len(posted) == 1, f"{len(posted)} messages posted for run {run_id}"
    return posted[0]


def every_version(standin: SlackStandin, run_id: str) -> list[dict[str, Any]]:
    """Every version of the run message the channel showed, first to last."""
    mark = f"Run `{run_id}`"
    return [
        call.arguments
        for call in standin.calls()
        if call.ok
        and call.method in ("chat.postMessage", "chat.update")
        and mark in shown(call.arguments)
    ]


async def run_message_where(
    standin: SlackStandin, run_id: str, condition: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Wait until the run's message meets ``condition``; the message then."""

    async def check() -> dict[str, Any] | None:
        message = run_message(standin, run_id)
        return message if message is not None and condition(message) else None

    return await until(check)


async def run_message_showing(standin: SlackStandin, run_id: str, status: str) -> dict[str, Any]:
    """Wait until the run's message shows ``status``; the message then."""
    return await run_message_where(standin, run_id, lambda m: status_of(m) == status)


async def finished(standin: SlackStandin, run_id: str) -> dict[str, Any]:
    """The run message once it shows an ending and its thread says how it ended."""

    def ended(message: dict[str, Any]) -> bool:
        status = status_of(message)
        return status in FINAL_STATUSES and any(
            status_of(reply) == status for reply in message["replies"]
        )

    return await run_message_where(standin, run_id, ended)


def thread_reply(message: dict[str, Any], status: str) -> str:
    [reply] = [r for r in message["replies"] if status_of(r) == status]
    return shown(reply)


def log_file(message: dict[str, Any]) -> str:
    """The run's log, read from the "View logs" link (a file link on an emulator)."""
    link = buttons_of(message)["batch_open_logs"]["url"]
    parsed = urlparse(link)
    assert parsed.scheme == "file", link
    return Path(unquote(parsed.path)).read_text(encoding="utf-8")


def unique_reason(what: str) -> str:
    return f"{what} ({uuid.uuid4().hex[:6]})"
