"""A production batch run from Slack, end to end, driven only the way a person drives it.

The gateway, the batch service and the notifier are built through the composition root
(:func:`toilkit.services.service_factories`) on one Runtime on moto, from their
environment variables, as ``toilkit up`` builds them; they run as tasks until the module
ends. The gateway listens on a free loopback port; the Slack stand-in is Slack for all
three. The catalog is the demo one (``catalog/demo.yaml``), with its scripts' folder made
absolute, the demo database in the test's folder and ``reindex-search``'s timeout cut to
:data:`REINDEX_TIMEOUT_SECONDS` so a timeout happens within the suite's budget.

Everything a test does is what a person does in Slack: ``/toil run`` (a signed slash
command), picking a command in the modal, submitting it with parameters, and clicking the
buttons the run message shows (their values are read from the message as posted). Every
check reads what the stand-in shows: the ephemeral replies, the run message (its first
version as posted and its latest one), and the replies in its thread. Nothing sleeps:
each wait polls the stand-in with a deadline.
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
from shared.slack.actions import Action
from shared.slack.blocks import GRAVE
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


@pytest.fixture(scope="module")
async def stack(
    moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """gateway + batch + notifier on one Runtime, configured as ``toilkit up`` does."""
    folder = tmp_path_factory.mktemp("batch-flow")
    async with open_stack(moto_endpoint, folder, flow_catalog(folder / "orders.sqlite")) as running:
        yield running


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
        before = {view["id"] for view in self.standin.views()}
        assert await self.slack.slash("run", self.user) == (200, "")

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
        payload = view_submission_payload(form, answers, user=self.user)
        before = len(self.requested_replies())
        for attempt in range(retries + 1):
            status, text = await self.slack.interact(payload, retry_num=attempt or None)
            assert (status, text) == (200, ""), f"attempt {attempt}"

        async def answered() -> list[str]:
            return self.requested_replies()[before:]

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


@pytest.fixture
async def slack(stack: Stack) -> AsyncIterator[SignedSlack]:
    side = SignedSlack(stack.gateway.events_url, SECRET, stack.standin, OPS_CHANNEL)
    yield side
    await side.close()


@pytest.fixture
def alice(stack: Stack, slack: SignedSlack) -> Person:
    return Person(ALICE, stack, slack)


@pytest.fixture
def bob(stack: Stack, slack: SignedSlack) -> Person:
    return Person(BOB, stack, slack)


@pytest.fixture
def carol(stack: Stack, slack: SignedSlack) -> Person:
    return Person(CAROL, stack, slack)


def unique_reason(what: str) -> str:
    return f"{what} ({uuid.uuid4().hex[:6]})"


# --------------------------------------------------------------------------- staging runs


async def test_a_run_shows_started_then_finished_with_its_exit_code_and_log_tail(
    stack: Stack, alice: Person
) -> None:
    # GIVEN alice fills in the backfill form for staging
    run_id = await alice.request(
        "backfill-orders",
        "staging",
        {"since": "2024-06-01", "batch_size": "250"},
        unique_reason("INC-7: totals missing since June"),
    )

    # THEN the runs channel shows the run started: who, what, with what, where the log is
    await run_message_where(stack.standin, run_id, lambda m: True)
    started = first_version(stack.standin, run_id)
    assert status_of(started) == "Running"
    text = shown(started)
    assert "`backfill-orders` on *staging*" in text
    assert "<@U0ALICE001>" in text
    assert "`since` = `2024-06-01`" in text
    assert "`batch_size` = `250`" in text
    assert "`dry_run` = `false`" in text
    assert "INC-7: totals missing since June" in text
    assert buttons_of(started)["batch_open_logs"]["url"].startswith("file://")
    assert Action.BATCH_CANCEL in buttons_of(started)

    # AND once it ends, the message says so and its thread has the exit code and the log tail
    message = await finished(stack.standin, run_id)
    assert status_of(message) == "Succeeded"
    assert Action.BATCH_CANCEL not in buttons_of(message)
    reply = thread_reply(message, "Succeeded")
    assert "exit code `0`" in reply
    assert re.search(r"backfilled \d+ orders in \d+ batches", reply), reply
    # The log the link opens is the script's whole output.
    assert "created demo database with 2000 orders" in log_file(message)


async def test_a_failing_command_shows_its_exit_code_and_stderr(
    stack: Stack, carol: Person
) -> None:
    run_id = await carol.request(
        "check-invoices", "staging", {"month": "2024-05"}, unique_reason("closing May")
    )

    message = await finished(stack.standin, run_id)

    assert status_of(message) == "Failed"
    assert "exit code `3`" in shown(message)
    reply = thread_reply(message, "Failed")
    assert "exit code `3`" in reply
    assert "refusing to close the month" in reply
    assert "hint: run reconcile-payments for these invoices, then retry" in reply


async def test_a_run_past_its_timeout_is_stopped_and_shows_timed_out(
    stack: Stack, alice: Person, carol: Person
) -> None:
    # GIVEN a reindex longer than its timeout, with a sensitive API key
    run_id = await alice.request(
        "reindex-search",
        "staging",
        {"steps": "30", "api_key": "sk-live-e2e-not-for-slack"},
        unique_reason("reindex after the upgrade"),
    )
    await run_message_where(stack.standin, run_id, lambda m: status_of(m) == "Running")

    # WHILE it runs, a second reindex is refused: the command runs once at a time
    second = await carol.request(
        "reindex-search", "staging", {"steps": "1"}, unique_reason("a second reindex")
    )
    busy = await run_message_where(stack.standin, second, lambda m: status_of(m) == "Refused")
    assert "another run holds the lock" in shown(busy)
    assert not (stack.log_dir / f"{second}.log").exists()

    # THEN the first is stopped at its timeout and says so, with the log's last lines
    message = await finished(stack.standin, run_id)
    assert status_of(message) == "Timed out"
    reply = thread_reply(message, "Timed out")
    assert "exit code `143`" in reply  # the script's own exit after SIGTERM
    assert "received SIGTERM, stopping" in reply
    assert "step 30/30" not in log_file(message)
    # AND the key reached the process only: Slack never saw it, the message says it was set.
    assert "`api_key` = `(sensitive)`" in shown(message)
    assert not any(
        "sk-live-e2e-not-for-slack" in json.dumps(c.arguments) for c in stack.standin.calls()
    )


async def test_cancel_on_the_run_message_stops_the_run(stack: Stack, alice: Person) -> None:
    run_id = await alice.request(
        "reindex-search", "staging", {"steps": "30"}, unique_reason("reindex, then cancel")
    )
    running = await run_message_where(
        stack.standin, run_id, lambda m: Action.BATCH_CANCEL in buttons_of(m)
    )

    # Alice watches its log until the reindex is under way, then clicks Cancel (and
    # confirms); the script stops cleanly on the SIGTERM that follows.
    async def under_way() -> bool:
        return "reindexing in 30 steps" in log_file(running)

    await eventually(under_way, timeout=DEADLINE_SECONDS)
    await alice.click(running, Action.BATCH_CANCEL)

    message = await finished(stack.standin, run_id)
    assert status_of(message) == "Cancelled"
    assert "by <@U0ALICE001>" in shown(message)
    reply = thread_reply(message, "Cancelled")
    assert "cancelled by <@U0ALICE001>" in reply
    assert "received SIGTERM, stopping" in reply
    assert any("Cancelling run" in text for text in alice.ephemeral_texts(RUNS_CHANNEL))


# --------------------------------------------------------------------------- approvals


async def test_production_waits_for_an_approval_by_someone_else_then_runs(
    stack: Stack, alice: Person, bob: Person
) -> None:
    run_id = await alice.request(
        "backfill-orders",
        "production",
        {"since": "2024-01-01", "batch_size": "500", "dry_run": "true"},
        unique_reason("INC-9: count what is left"),
    )
    waiting = await run_message_where(
        stack.standin, run_id, lambda m: status_of(m) == "Awaiting approval"
    )
    assert "<!subteam^S0SRE00001>" in shown(waiting)
    assert "It waits for an approval" in alice.requested_replies()[-1]

    await bob.click(waiting, Action.BATCH_APPROVE)

    message = await finished(stack.standin, run_id)
    assert status_of(message) == "Succeeded"
    text = shown(message)
    assert "*Approved by*\n<@U0BOB00002>" in text
    assert "*Requested by*\n<@U0ALICE001>" in text
    started = [r for r in message["replies"] if status_of(r) == "Started"]
    assert len(started) == 1 and "Approved by <@U0BOB00002>" in shown(started[0])
    assert "exit code `0`" in thread_reply(message, "Succeeded")


async def test_a_rejected_request_never_runs(stack: Stack, alice: Person, bob: Person) -> None:
    run_id = await alice.request(
        "echo-args", "production", {"text": "not today"}, unique_reason("try production")
    )
    waiting = await run_message_where(
        stack.standin, run_id, lambda m: status_of(m) == "Awaiting approval"
    )

    await bob.click(waiting, Action.BATCH_REJECT)

    message = await finished(stack.standin, run_id)
    assert status_of(message) == "Refused"
    assert "approval was refused" in shown(message)
    assert "Refused by <@U0BOB00002>" in thread_reply(message, "Refused")
    assert [status_of(v) for v in every_version(stack.standin, run_id)] == [
        "Awaiting approval",
        "Refused",
    ]
    assert not (stack.log_dir / f"{run_id}.log").exists()


async def test_the_requester_cannot_approve_their_own_request(
    stack: Stack, alice: Person, bob: Person
) -> None:
    run_id = await alice.request(
        "echo-args", "production", {"text": "self-approved?"}, unique_reason("approve myself")
    )
    waiting = await run_message_where(
        stack.standin, run_id, lambda m: status_of(m) == "Awaiting approval"
    )

    await alice.click(waiting, Action.BATCH_APPROVE)

    async def refusal() -> list[str]:
        return [t for t in alice.ephemeral_texts(RUNS_CHANNEL) if run_id in t]

    [said] = await eventually(refusal, timeout=DEADLINE_SECONDS)
    assert said.startswith(":no_entry: You cannot approve run")
    assert "You requested this run, so another approver must approve it" in said
    assert "<!subteam^S0SRE00001>" in said  # Slack shows the @sre group by name
    # Nothing ran: the message still waits, and only ever waited.
    assert status_of(run_message(stack.standin, run_id) or {}) == "Awaiting approval"
    assert not (stack.log_dir / f"{run_id}.log").exists()

    # Bob rejects it, so the request ends; it never ran.
    await bob.click(waiting, Action.BATCH_REJECT)
    message = await finished(stack.standin, run_id)
    assert status_of(message) == "Refused"
    assert "Running" not in [status_of(v) for v in every_version(stack.standin, run_id)]


# --------------------------------------------------------------------------- duplicates


async def test_a_submission_slack_delivers_twice_starts_one_run(
    stack: Stack, alice: Person
) -> None:
    reason = unique_reason("delivered twice")
    run_id = await alice.request("echo-args", "staging", {"text": "once"}, reason, retries=1)

    message = await finished(stack.standin, run_id)

    assert status_of(message) == "Succeeded"
    runs_with_this_reason = [m for m in stack.standin.messages(RUNS_CHANNEL) if reason in shown(m)]
    assert runs_with_this_reason == [message]
    assert len(first_version(stack.standin, run_id)["blocks"]) > 0
    assert log_file(message).count('argv[1] = "once"') == 1


# --------------------------------------------------------------------------- injection


INJECTION_CORPUS = (
    "; rm -rf /",
    "$(id)",
    "`id`",
    "first line\nsecond line",
    "it's \"quoted\" and 'single'",
    "&& echo pwned #",
)


async def test_shell_metacharacters_reach_the_demo_command_as_the_literal_strings(
    stack: Stack, alice: Person
) -> None:
    run_ids = [
        await alice.request("echo-args", "staging", {"text": text}, unique_reason("injection"))
        for text in INJECTION_CORPUS
    ]

    for text, run_id in zip(INJECTION_CORPUS, run_ids, strict=True):
        message = await finished(stack.standin, run_id)
        assert status_of(message) == "Succeeded", text
        # The script prints what it received as JSON strings: exactly what was typed.
        log = log_file(message)
        assert f"argv[1] = {json.dumps(text)}" in log.splitlines(), log
        assert f"env ECHO_VALUE = {json.dumps(text)}" in log.splitlines(), log
        # Slack shows it as typed, within what inline code can show (one line, no backticks)
        as_code = text.replace("`", GRAVE).replace("\n", " ")
        assert f"`text` = `{as_code}`" in rendered(first_version(stack.standin, run_id)), text
        # and the thread's log tail shows the script's lines exactly.
        assert f"argv[1] = {json.dumps(text)}" in rendered(message["replies"][-1]), text
