"""The gateway over real HTTP: signed requests in, the Slack stand-in and SNS/SQS out.

Each test starts the real gateway service (aiohttp, Bolt, the request ledger) on a free
loopback port against moto over HTTP and the Slack stand-in, sends requests signed exactly
as Slack signs them, and asserts the status codes, what reached the stand-in (views,
ephemeral messages) and what reached the queues behind the SNS topic.

Work the gateway does after its ack is awaited with ``service.after_ack.join()``, never
with a sleep.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.gateway.blocks import PICK_COMMAND_ACTION
from services.gateway.service import GatewayService
from services.gateway.settings import GatewaySettings
from shared.aws import AwsClients
from shared.runtime import Runtime
from shared.settings import AwsSettings
from shared.slack.signing import signed_headers
from shared.topology import BootstrapReport, Names
from tests.gateway_harness import (
    BACKFILL_COMMAND,
    BACKFILL_FORM_INPUTS,
    ECHO_COMMAND,
    ServedSlack,
    ephemeral_texts,
    events_on,
    input_types,
    served_gateway,
    serving,
    standin_settings,
)
from tests.support import runtime_over
from toilkit.standins.slack import SlackStandin
from toilkit.standins.slack.app_requests import (
    SlackUserRef,
    block_actions_payload,
    interaction_body,
    select,
    slash_command_body,
    view_submission_payload,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0OPS00001"
ALICE = SlackUserRef("U0ALICE001", "alice")  # in @sre (S0SRE00001)
BOB = SlackUserRef("U0BOB00002", "bob")  # in @sre
CAROL = SlackUserRef("U0CAROL003", "carol")  # not in @sre; may run in staging only

CATALOG = (
    "commands:"
    + BACKFILL_COMMAND
    + r"""      - {name: token, type: text, required: false, sensitive: true}
    env: {API_TOKEN: "{token}"}
    environments:
      staging:
        allowed: {usergroups: [S0SRE00001], users: [U0CAROL003]}
      production:
        allowed: {usergroups: [S0SRE00001]}
        approval: {approvers: {usergroups: [S0SRE00001]}}
"""
    + ECHO_COMMAND
)


# --------------------------------------------------------------------------- fixtures


service = served_gateway(SECRET)


class Slack(ServedSlack):
    """Slack's side (signed requests); the run modal's steps are Alice's unless another
    person is named."""

    def __init__(self, service: GatewayService, standin: SlackStandin) -> None:
        super().__init__(service, SECRET, standin, CHANNEL)

    async def slash(
        self, text: str, user: SlackUserRef = ALICE, *, channel_id: str | None = None
    ) -> tuple[int, str]:
        return await super().slash(text, user, channel_id=channel_id)

    async def open_modal(self, user: SlackUserRef = ALICE) -> dict[str, Any]:
        status, text = await self.slash("run", user)
        assert (status, text) == (200, "")
        await self.service.after_ack.join()
        return self.standin.views()[-1]

    async def pick(
        self, view: dict[str, Any], command: str, user: SlackUserRef = ALICE
    ) -> dict[str, Any]:
        payload = block_actions_payload(
            select(PICK_COMMAND_ACTION, command, block_id="command"),
            user=user,
            trigger_id=self.standin.issue_trigger(user.id, view["id"]),
            view=view,
        )
        status, _ = await self.interact(payload)
        assert status == 200
        await self.service.after_ack.join()
        return next(v for v in self.standin.views() if v["id"] == view["id"])

    async def form(self, command: str, user: SlackUserRef = ALICE) -> dict[str, Any]:
        return await self.pick(await self.open_modal(user), command, user)


@pytest.fixture
async def slack(service: GatewayService, standin: SlackStandin) -> AsyncIterator[Slack]:
    side = Slack(service, standin)
    yield side
    await side.close()


GOOD_ANSWERS = {
    "environment": "staging",
    "param:since": "2024-05-01",
    "param:limit": "250",
    "param:mode": "fast",
    "param:notify": BOB.id,
    "param:dry_run": "false",
    "param:token": "s3cr3t; rm -rf /",
    "reason": "INC-42: totals missing since the May migration",
}


# --------------------------------------------------------------------------- the modal


async def test_health_answers(slack: Slack) -> None:
    async with slack.http.get(slack.service.url + "/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"ok": True}


async def test_run_opens_the_modal_with_the_catalog(slack: Slack, standin: SlackStandin) -> None:
    view = await slack.open_modal()

    [call] = standin.calls("views.open")
    assert call.ok
    assert view["callback_id"] == "toil_run"
    picker = view["blocks"][0]["element"]
    assert [o["value"] for o in picker["options"]] == ["backfill", "echo"]
    assert json.loads(view["private_metadata"])["channel_id"] == CHANNEL


async def test_picking_a_command_updates_the_modal_to_its_typed_form(
    slack: Slack, standin: SlackStandin
) -> None:
    view = await slack.form("backfill")

    [update] = standin.calls("views.update")
    assert update.ok
    assert input_types(view) == BACKFILL_FORM_INPUTS | {"param:token": "plain_text_input"}


async def test_a_valid_submission_publishes_exactly_one_batch_requested(
    slack: Slack, standin: SlackStandin, aws: AwsClients, topology: BootstrapReport
) -> None:
    view = await slack.form("backfill")

    status, text = await slack.submit(view, GOOD_ANSWERS, ALICE)

    assert (status, text) == (200, "")
    [event] = await events_on(aws, topology, "batch")
    assert event.type == "BatchRequested"
    assert (event.command, event.environment, event.source) == ("backfill", "staging", "gateway")
    assert {p.name: p.value for p in event.parameters} == {
        "since": "2024-05-01",
        "limit": "250",
        "mode": "fast",
        "notify": BOB.id,
        "dry_run": "false",
        # Exactly as typed: parameters are data, never interpolated anywhere.
        "token": "s3cr3t; rm -rf /",
    }
    assert event.requested_by.slack_user_id == ALICE.id
    assert event.channel_id == CHANNEL
    assert event.reason == GOOD_ANSWERS["reason"]
    assert event.correlation_id == event.run_id
    [confirmation] = ephemeral_texts(standin, CHANNEL, ALICE.id)
    assert event.run_id in confirmation


async def test_an_invalid_submission_shows_errors_inline_and_queues_nothing(
    slack: Slack, aws: AwsClients, topology: BootstrapReport
) -> None:
    view = await slack.form("backfill")
    answers = GOOD_ANSWERS | {"param:since": "yesterday", "param:limit": "0", "reason": "  "}

    status, text = await slack.submit(view, answers, ALICE)

    assert status == 200
    response = json.loads(text)
    assert response["response_action"] == "errors"
    assert set(response["errors"]) == {"param:since", "param:limit", "reason"}
    assert "pattern" in response["errors"]["param:since"]
    assert await events_on(aws, topology, "batch") == []


async def test_a_submission_for_a_form_of_another_command_shows_the_right_form(
    slack: Slack, aws: AwsClients, topology: BootstrapReport
) -> None:
    view = await slack.form("backfill")

    status, text = await slack.submit(view, GOOD_ANSWERS | {"command": "echo"}, ALICE)

    response = json.loads(text)
    assert (status, response["response_action"]) == (200, "update")
    blocks = {b.get("block_id") for b in response["view"]["blocks"]}
    assert "param:text" in blocks and "param:since" not in blocks
    assert await events_on(aws, topology, "batch") == []


async def test_an_unauthorized_submission_is_refused_with_an_ephemeral_and_an_audit_event(
    slack: Slack, standin: SlackStandin, aws: AwsClients, topology: BootstrapReport
) -> None:
    view = await slack.form("backfill", CAROL)

    status, _ = await slack.submit(view, GOOD_ANSWERS | {"environment": "production"}, CAROL)

    assert status == 200
    assert await events_on(aws, topology, "batch") == []
    [refused] = await events_on(aws, topology, "notifier")
    assert refused.type == "BatchRunRefused"
    assert (refused.stage, refused.source, refused.command) == (
        "authorization",
        "gateway",
        "backfill",
    )
    assert refused.requested_by.slack_user_id == CAROL.id
    [explanation] = ephemeral_texts(standin, CHANNEL, CAROL.id)
    assert "may not run" in explanation and "nothing was queued" in explanation
    # Group membership came from Slack (the catalog lists no static groups), once.
    assert [c.arguments["usergroup"] for c in standin.calls("usergroups.users.list")] == [
        "S0SRE00001"
    ]


async def test_slack_retries_and_replays_of_a_submission_queue_it_once(
    slack: Slack, aws: AwsClients, topology: BootstrapReport
) -> None:
    view = await slack.form("backfill")
    body = interaction_body(view_submission_payload(view, GOOD_ANSWERS, user=ALICE))

    first = await slack.post(body)
    retry = await slack.post(body, slack.headers(body, retry_num=1))
    replay = await slack.post(body)
    await slack.service.after_ack.join()

    assert first == (200, "")
    assert retry == (200, "")
    assert replay[0] == 401
    events = await events_on(aws, topology, "batch")
    assert [e.type for e in events] == ["BatchRequested"]


# --------------------------------------------------------------------------- slash command


async def test_help_and_unknown_subcommands_answer_ephemerally(slack: Slack) -> None:
    status, text = await slack.slash("help")
    helped = json.loads(text)
    assert (status, helped["response_type"]) == (200, "ephemeral")
    assert "drift scan STATE" in json.dumps(helped["blocks"])

    status, text = await slack.slash("frobnicate now")
    answer = json.loads(text)
    assert (status, answer["response_type"]) == (200, "ephemeral")
    assert "help" in answer["text"]


async def test_a_slash_command_whose_text_says_payload_is_still_a_slash_command(
    slack: Slack, aws: AwsClients, topology: BootstrapReport
) -> None:
    # Bolt's own body parser takes any form containing "payload" for an interaction.
    status, text = await slack.slash("drift scan payload-api")

    assert status == 200 and "payload-api" in json.loads(text)["text"]
    await slack.service.after_ack.join()
    [event] = await events_on(aws, topology, "detector")
    assert (event.type, event.states) == ("DriftScanRequested", ("payload-api",))


async def test_drift_scan_publishes_a_scan_request_for_the_state(
    slack: Slack, aws: AwsClients, topology: BootstrapReport
) -> None:
    status, _ = await slack.slash("drift scan network-prod")
    await slack.service.after_ack.join()

    assert status == 200
    [event] = await events_on(aws, topology, "detector")
    assert event.type == "DriftScanRequested"
    assert event.states == ("network-prod",)
    assert event.requested_by.slack_user_id == ALICE.id
    assert event.reply_channel == CHANNEL


async def test_drift_says_when_there_is_no_data_yet_then_shows_open_drift(
    slack: Slack, aws: AwsClients, names: Names
) -> None:
    _, text = await slack.slash("drift")
    assert "No drift data yet" in json.loads(text)["text"]

    now = datetime.now(UTC)
    stamp = (now - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    items = [
        {
            "pk": "drift#states",
            "sk": "network-prod",
            "scanned_at": stamp,
            "scan_id": "s1",
            "status": "drifted",
        },
        {
            "pk": "drift#network-prod",
            "sk": "finding#fp1",
            "fingerprint": "fp1",
            "address": "aws_security_group.web",
            "kind": "drift",
            "first_seen": stamp,
            "claimed_by_name": "bob",
            "claimed_by_slack": BOB.id,
        },
    ]
    for item in items:
        await aws.dynamodb.put_item(
            TableName=names.state_table, Item={k: {"S": v} for k, v in item.items()}
        )

    _, text = await slack.slash("drift")
    shown = json.dumps(json.loads(text)["blocks"])
    assert "aws_security_group.web" in shown and "first seen 2d ago" in shown and BOB.id in shown
    _, text = await slack.slash("drift sandbox")
    assert "No drift data for" in json.loads(text)["text"]


async def test_runs_lists_recent_runs(slack: Slack, aws: AwsClients, names: Names) -> None:
    _, text = await slack.slash("runs")
    assert "No batch runs yet" in json.loads(text)["text"]

    await put_run(aws, names, run_record("r1", status="succeeded"))

    _, text = await slack.slash("runs")
    shown = json.dumps(json.loads(text)["blocks"])
    assert "r1" in shown and "backfill" in shown and "succeeded" in shown


# --------------------------------------------------------------------------- buttons


def run_record(
    run_id: str, *, status: str, requester: SlackUserRef = ALICE, **extra: Any
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "request_event_id": f"e-{run_id}",
        "command": "backfill",
        "environment": "production",
        "parameters": [
            {"name": "since", "value": "2024-05-01", "sensitive": False},
            {"name": "limit", "value": "10", "sensitive": False},
        ],
        "reason": "INC-7",
        "requested_by": {"slack_user_id": requester.id, "name": requester.name},
        "channel_id": CHANNEL,
        "status": status,
        "requested_at": datetime.now(UTC).isoformat(),
        "approval": {
            "approvers": ["S0SRE00001"],
            "min_approvals": 1,
            "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        },
        **extra,
    }


async def put_run(aws: AwsClients, names: Names, record: dict[str, Any]) -> None:
    """A run record in the batch service's layout (services/batch/runs.py)."""
    table = names.state_table
    await aws.dynamodb.put_item(
        TableName=table,
        Item={
            "pk": {"S": f"run#{record['run_id']}"},
            "sk": {"S": "run"},
            "status": {"S": record["status"]},
            "version": {"N": "1"},
            "doc": {"S": json.dumps(record)},
        },
    )
    await aws.dynamodb.put_item(
        TableName=table,
        Item={
            "pk": {"S": "runs"},
            "sk": {"S": f"{record['requested_at']}#{record['run_id']}"},
            "run_id": {"S": record["run_id"]},
        },
    )


async def test_cancel_publishes_a_cancel_request(
    slack: Slack, aws: AwsClients, names: Names, topology: BootstrapReport
) -> None:
    await put_run(aws, names, run_record("r2", status="running"))

    status, _ = await slack.press("batch_cancel", "r2", BOB)

    assert status == 200
    [event] = await events_on(aws, topology, "batch")
    assert (event.type, event.run_id, event.requested_by.slack_user_id) == (
        "BatchCancelRequested",
        "r2",
        BOB.id,
    )


async def test_approve_and_reject_by_another_approver_publish_the_decision(
    slack: Slack, aws: AwsClients, names: Names, topology: BootstrapReport
) -> None:
    await put_run(aws, names, run_record("r3", status="awaiting_approval"))
    await put_run(aws, names, run_record("r4", status="awaiting_approval"))

    await slack.press("batch_approve", "r3", BOB)
    await slack.press("batch_reject", "r4", BOB)

    events = sorted(await events_on(aws, topology, "batch"), key=lambda e: e.run_id)
    assert [(e.type, e.run_id) for e in events] == [
        ("BatchApproved", "r3"),
        ("BatchRejected", "r4"),
    ]
    assert events[0].approved_by.slack_user_id == BOB.id


async def test_self_approval_and_non_approvers_are_refused_and_nothing_is_published(
    slack: Slack, standin: SlackStandin, aws: AwsClients, names: Names, topology: BootstrapReport
) -> None:
    await put_run(aws, names, run_record("r5", status="awaiting_approval"))

    await slack.press("batch_approve", "r5", ALICE)
    await slack.press("batch_approve", "r5", CAROL)

    assert await events_on(aws, topology, "batch") == []
    [to_alice] = ephemeral_texts(standin, CHANNEL, ALICE.id)
    [to_carol] = ephemeral_texts(standin, CHANNEL, CAROL.id)
    assert "You requested this run" in to_alice and "self-approval" in to_alice
    assert "not an approver" in to_carol
    for said in (to_alice, to_carol):
        # Approvers as mentions Slack shows by name, never a raw user id.
        assert "<!subteam^S0SRE00001>" in said
        assert "U0ALICE001" not in said and "U0CAROL003" not in said


async def test_rerun_requests_the_stored_run_again_as_the_presser(
    slack: Slack, aws: AwsClients, names: Names, topology: BootstrapReport
) -> None:
    await put_run(aws, names, run_record("r6", status="failed"))

    await slack.press("batch_rerun", "r6", BOB)

    [event] = await events_on(aws, topology, "batch")
    assert event.type == "BatchRequested"
    assert (event.command, event.environment, event.rerun_of) == ("backfill", "production", "r6")
    assert event.requested_by.slack_user_id == BOB.id
    assert {p.name: p.value for p in event.parameters}["since"] == "2024-05-01"
    assert event.run_id != "r6"


async def test_edit_and_rerun_opens_the_modal_prefilled_and_its_submission_links_the_runs(
    slack: Slack, aws: AwsClients, names: Names, topology: BootstrapReport
) -> None:
    secret = [{"name": "token", "value": None, "sensitive": True}]
    stored = run_record("r8", status="succeeded")
    await put_run(aws, names, stored | {"parameters": stored["parameters"] + secret})

    await slack.press("batch_rerun_edit", "r8", BOB)

    view = slack.standin.views()[-1]
    inputs = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
    assert inputs["command"]["initial_option"]["value"] == "backfill"
    assert inputs["environment"]["initial_option"]["value"] == "production"
    assert inputs["param:since"]["initial_value"] == "2024-05-01"
    assert inputs["param:limit"]["initial_value"] == "10"
    assert "initial_value" not in inputs["param:token"]
    assert json.loads(view["private_metadata"])["rerun_of"] == "r8"

    status, text = await slack.submit(
        view, {"param:limit": "20", "reason": "again, more rows"}, BOB
    )

    assert (status, text) == (200, "")
    [event] = await events_on(aws, topology, "batch")
    assert (event.type, event.rerun_of, event.requested_by.slack_user_id) == (
        "BatchRequested",
        "r8",
        BOB.id,
    )
    assert {p.name: p.value for p in event.parameters}["limit"] == "20"
    [said] = ephemeral_texts(slack.standin, CHANNEL, BOB.id)
    assert "It runs `r8` again." in said


async def test_a_rerun_of_a_command_removed_from_the_catalog_starts_nothing(
    slack: Slack, aws: AwsClients, names: Names, topology: BootstrapReport
) -> None:
    await put_run(aws, names, run_record("r9", status="failed", command="retired-report"))
    views = len(slack.standin.views())

    await slack.press("batch_rerun_edit", "r9", BOB)
    await slack.press("batch_rerun", "r9", BOB)

    assert len(slack.standin.views()) == views
    assert await events_on(aws, topology, "batch") == []
    said = ephemeral_texts(slack.standin, CHANNEL, BOB.id)
    assert len(said) == 2
    for text in said:
        assert "*retired-report* is no longer in the catalog" in text
        assert "Nothing was started" in text


async def test_drift_claim_publishes_who_took_which_findings(
    slack: Slack, aws: AwsClients, topology: BootstrapReport
) -> None:
    value = json.dumps({"state": "network-prod", "fingerprints": ["fp1", "fp2"]})

    await slack.press("drift_claim", value, BOB)

    [event] = await events_on(aws, topology, "detector")
    assert event.type == "DriftClaimed"
    assert (event.state, event.fingerprints) == ("network-prod", ("fp1", "fp2"))
    assert event.claimed_by.slack_user_id == BOB.id


async def test_accept_into_code_publishes_the_request_and_says_where_the_answer_comes(
    slack: Slack, standin: SlackStandin, aws: AwsClients, topology: BootstrapReport
) -> None:
    value = json.dumps({"state": "network-prod", "fingerprints": ["fp1"]})

    await slack.press("drift_accept", value, BOB)
    await slack.press("drift_accept", "not json", BOB)

    [event] = await events_on(aws, topology, "detector")
    assert event.type == "DriftAcceptRequested"
    assert (event.state, event.fingerprints) == ("network-prod", ("fp1",))
    assert event.requested_by.slack_user_id == BOB.id
    said = ephemeral_texts(standin, CHANNEL, BOB.id)
    assert any("Planning `network-prod` afresh" in text for text in said)
    assert any("does not say which drift it is about" in text for text in said)


async def test_unknown_actions_get_a_friendly_ephemeral(
    slack: Slack, standin: SlackStandin, aws: AwsClients, topology: BootstrapReport
) -> None:
    status, _ = await slack.press("launch_rockets", "now", ALICE)

    assert status == 200
    [reply] = ephemeral_texts(standin, CHANNEL, ALICE.id)
    assert "launch_rockets" in reply
    assert await events_on(aws, topology, "batch") == []


# --------------------------------------------------------------------------- bad input


def _stale_headers(body: bytes) -> dict[str, str]:
    return signed_headers(SECRET, body, timestamp=int(time.time()) - 301)


BAD_REQUESTS: dict[str, tuple[bytes, Any, int]] = {
    "unsigned": (b"command=%2Ftoil&text=help&user_id=U0ALICE001", lambda b: {}, 401),
    "wrongly signed": (
        b"command=%2Ftoil&text=help&user_id=U0ALICE001",
        lambda b: signed_headers("not-the-secret", b),
        401,
    ),
    "stale": (b"command=%2Ftoil&text=help&user_id=U0ALICE001", _stale_headers, 401),
    "signature not hex": (
        b"command=%2Ftoil",
        lambda b: signed_headers(SECRET, b) | {"X-Slack-Signature": "v0=" + "zz" * 32},
        401,
    ),
    "timestamp not a number": (
        b"command=%2Ftoil",
        lambda b: signed_headers(SECRET, b) | {"X-Slack-Request-Timestamp": "soon"},
        401,
    ),
    "malformed payload JSON": (b"payload=%7Bnot+json", lambda b: signed_headers(SECRET, b), 400),
    "payload of the wrong shape": (
        interaction_body({"type": "block_actions", "user": 7, "actions": "no"}),
        lambda b: signed_headers(SECRET, b),
        400,
    ),
    "neither command nor interaction": (b"hello=world", lambda b: signed_headers(SECRET, b), 400),
    "non-UTF-8": (b"command=%2Ftoil&text=\xff\xfe", lambda b: signed_headers(SECRET, b), 400),
    "JSON that is not a request we serve": (
        b'{"type": "event_callback"}',
        lambda b: signed_headers(SECRET, b, content_type="application/json"),
        400,
    ),
    "oversized": (b"text=" + b"a" * 300_000, lambda b: signed_headers(SECRET, b), 413),
}


async def test_bad_requests_get_a_4xx_and_reach_nothing(
    slack: Slack, standin: SlackStandin, aws: AwsClients, topology: BootstrapReport
) -> None:
    # One gateway for every case: each would otherwise pay for its own topology.
    answered = {}
    for case, (body, headers, _) in BAD_REQUESTS.items():
        answered[case], _ = await slack.post(body, headers(body))

    assert answered == {case: expected for case, (_, _, expected) in BAD_REQUESTS.items()}
    assert standin.calls() == []
    assert await events_on(aws, topology, "batch") == []


async def test_a_body_cut_short_gets_400_or_a_closed_connection_never_5xx(slack: Slack) -> None:
    body = slash_command_body("help", user=ALICE, channel_id=CHANNEL, trigger_id="1.2.3")
    host, port = slack.service.url.removeprefix("http://").split(":")
    headers = signed_headers(SECRET, body)
    head = (
        f"POST /slack/events HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body) + 50}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        + "\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head + body)
    await writer.drain()
    writer.write_eof()

    answer = await reader.read()
    writer.close()

    if answer:
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500


async def test_unhandled_slash_command_names_get_a_friendly_answer(slack: Slack) -> None:
    body = slash_command_body(
        "help", user=ALICE, channel_id=CHANNEL, trigger_id="1.2.3", command="/other"
    )
    status, text = await slack.post(body)
    assert status == 200 and "/toil" in json.loads(text)["text"]


# --------------------------------------------------------------------------- fuzzing

_HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)
_PAYLOAD_KEYS = (
    "type",
    "user",
    "team",
    "actions",
    "view",
    "channel",
    "enterprise",
    "authorizations",
    "response_urls",
    "trigger_id",
)
_PAYLOADS = st.fixed_dictionaries(
    {},
    optional={key: _JSON for key in _PAYLOAD_KEYS}
    | {"type": st.sampled_from(["block_actions", "view_submission", "view_closed", "shortcut"])},
)
_FORMS = st.dictionaries(
    st.sampled_from(
        ["command", "text", "user_id", "trigger_id", "ssl_check", "payload", "channel_id", "x"]
    ),
    st.text(max_size=40),
    max_size=6,
)


_KNOWN_ACTIONS = (
    "run_pick_command",
    "batch_cancel",
    "batch_approve",
    "batch_rerun",
    "batch_rerun_edit",
    "drift_claim",
    "drift_accept",
)
#: Bodies with the shape of real requests and arbitrary values: these get past the door
#: into Bolt and the listeners.
_WELL_SHAPED = st.one_of(
    st.builds(
        lambda text, user: urlencode(
            {"command": "/toil", "text": text, "user_id": user, "trigger_id": "1.2.3"}
        ).encode(),
        st.text(max_size=60),
        st.text(min_size=1, max_size=12),
    ),
    st.builds(
        lambda action_id, value, user, channel: interaction_body(
            {
                "type": "block_actions",
                "user": {"id": user},
                "actions": [{"action_id": action_id, "value": value}],
                **({"channel": {"id": channel}} if channel else {}),
            }
        ),
        st.sampled_from(_KNOWN_ACTIONS) | st.text(min_size=1, max_size=20),
        st.text(max_size=60),
        st.text(min_size=1, max_size=12),
        st.none() | st.text(min_size=1, max_size=12),
    ),
    st.builds(
        lambda values, metadata: interaction_body(
            {
                "type": "view_submission",
                "user": {"id": "U0ALICE001"},
                "view": {
                    "id": "V1",
                    "type": "modal",
                    "callback_id": "toil_run",
                    "private_metadata": metadata,
                    "state": {"values": values},
                },
            }
        ),
        st.dictionaries(
            st.sampled_from(["command", "environment", "reason", "param:since", "param:limit"]),
            st.fixed_dictionaries(
                {
                    "value": st.fixed_dictionaries(
                        {"type": st.just("x"), "value": st.text(max_size=20)}
                    )
                }
            ),
        ),
        st.text(max_size=40),
    ),
)
_BODIES = st.one_of(
    st.binary(max_size=300),
    _FORMS.map(lambda form: urlencode(form).encode()),
    _PAYLOADS.map(interaction_body),
    _JSON.map(lambda v: json.dumps(v).encode()),
    _WELL_SHAPED,
)


@pytest.fixture
async def fuzz_target(service: GatewayService) -> tuple[asyncio.AbstractEventLoop, str]:
    # The loop the service runs on, taken while it runs: asking the main thread for "the"
    # loop afterwards fails when another test module left none set.
    return asyncio.get_running_loop(), service.events_url


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=_BODIES,
    sign=st.booleans(),
    content_type=st.sampled_from(
        ["application/x-www-form-urlencoded", "application/json", "text/plain", ""]
    ),
    extra_headers=st.dictionaries(
        st.sampled_from(
            ["X-Slack-Retry-Num", "X-Slack-Signature", "X-Slack-Request-Timestamp", "X-Other"]
        ),
        _HEADER_TEXT,
        max_size=2,
    ),
)
def test_fuzzed_bodies_and_headers_never_get_a_5xx(
    fuzz_target: tuple[asyncio.AbstractEventLoop, str],
    body: bytes,
    sign: bool,
    content_type: str,
    extra_headers: dict[str, str],
) -> None:
    loop, url = fuzz_target
    headers = (
        signed_headers(SECRET, body, content_type=content_type)
        if sign
        else {"Content-Type": content_type}
    )
    headers |= extra_headers

    async def send() -> int:
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, data=body, headers=headers) as response,
        ):
            return response.status

    status = loop.run_until_complete(send())

    assert status < 500


# --------------------------------------------------------------------------- several instances


async def test_a_copy_reaching_another_gateway_instance_publishes_nothing(
    slack: Slack, runtime: Runtime, standin: SlackStandin, catalog_path: Path
) -> None:
    view = await slack.form("backfill")
    body = interaction_body(view_submission_payload(view, GOOD_ANSWERS, user=ALICE))
    async with serving(runtime, standin_settings(standin, SECRET, catalog_path)) as other:
        assert await slack.post(body) == (200, "")
        await slack.service.after_ack.join()
        async with slack.http.post(
            other.events_url, data=body, headers=signed_headers(SECRET, body)
        ) as response:
            # The other instance never saw it: it acks, then its ledger lookup says "done".
            assert response.status == 200
        await other.after_ack.join()

    batch_events = await events_on(runtime.aws, runtime.topology, "batch")
    assert [e.type for e in batch_events] == ["BatchRequested"]
    assert len(ephemeral_texts(standin, CHANNEL, ALICE.id)) == 1


async def test_requests_are_still_served_when_the_ledger_table_cannot_be_reached(
    moto_endpoint: str,
    names: Names,
    topology: BootstrapReport,
    standin: SlackStandin,
    catalog_path: Path,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    broken = AwsSettings(
        AWS_ENDPOINT_URL=moto_endpoint,
        AWS_ENDPOINT_URL_DYNAMODB=f"http://127.0.0.1:{dead_port}",
        AWS_REGION="us-east-1",
    )
    async with AwsClients(broken) as aws:
        runtime = runtime_over(aws, names, topology)
        settings_ = standin_settings(standin, SECRET, catalog_path)
        async with serving(runtime, settings_) as running:
            side = Slack(running, standin)
            try:
                view = await side.form("backfill")
                assert await side.submit(view, GOOD_ANSWERS, ALICE) == (200, "")
            finally:
                await side.close()
        [event] = await events_on(aws, topology, "batch")
    assert event.type == "BatchRequested"


# --------------------------------------------------------------------------- Socket Mode


class SocketModeSlack:
    """Slack's Socket Mode side: ``apps.connections.open`` hands out a WebSocket URL, the
    WebSocket carries envelopes to the app and acks back. Every other Web API method is
    passed on to the stand-in, so views and messages land there as usual."""

    def __init__(self, standin: SlackStandin) -> None:
        self.standin = standin
        self.connected = asyncio.Event()
        self.acks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.opened_with: list[str] = []
        self._socket: web.WebSocketResponse | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/apps.connections.open", self._open)
        app.router.add_route("*", "/api/{method}", self._forward)
        app.router.add_get("/link", self._link)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _open(self, request: web.Request) -> web.Response:
        self.opened_with.append(request.headers.get("Authorization", ""))
        ws_url = self.url.replace("http://", "ws://") + "/link"
        return web.json_response({"ok": True, "url": ws_url})

    async def _forward(self, request: web.Request) -> web.Response:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                self.standin.api_url + request.match_info["method"],
                data=await request.read(),
                headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
            ) as answer,
        ):
            return web.Response(
                status=answer.status, body=await answer.read(), content_type="application/json"
            )

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        socket_ = web.WebSocketResponse()
        await socket_.prepare(request)
        self._socket = socket_
        await socket_.send_json({"type": "hello", "num_connections": 1})
        self.connected.set()
        async for message in socket_:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.acks.put_nowait(json.loads(message.data))
        return socket_

    async def deliver(self, envelope: dict[str, Any]) -> dict[str, Any]:
        """Send one envelope and return the app's ack."""
        assert self._socket is not None
        await self._socket.send_json(envelope)
        return await asyncio.wait_for(self.acks.get(), timeout=10)


async def test_socket_mode_serves_the_same_app_over_slacks_websocket(
    runtime: Runtime, standin: SlackStandin, catalog_path: Path
) -> None:
    slack_side = SocketModeSlack(standin)
    await slack_side.start()
    socket_mode = GatewaySettings(
        slack_api_url=slack_side.api_url,
        slack_bot_token="xoxb-test",
        slack_app_token="xapp-1-test",
        port=0,
        catalog_path=catalog_path,
    )
    try:
        async with serving(runtime, socket_mode) as running:
            await asyncio.wait_for(slack_side.connected.wait(), timeout=10)
            fields = dict(
                parse_qsl(
                    slash_command_body(
                        "help", user=ALICE, channel_id=CHANNEL, trigger_id="1.2.3"
                    ).decode()
                )
            )
            helped = await slack_side.deliver(
                {
                    "envelope_id": "env-1",
                    "type": "slash_commands",
                    "accepts_response_payload": True,
                    "payload": fields,
                }
            )
            fields |= {"text": "run", "trigger_id": standin.issue_trigger(ALICE.id)}
            opened = await slack_side.deliver(
                {
                    "envelope_id": "env-2",
                    "type": "slash_commands",
                    "accepts_response_payload": True,
                    "payload": fields,
                }
            )
            await running.after_ack.join()
            async with aiohttp.ClientSession() as http:
                async with http.get(running.url + "/healthz") as health:
                    assert health.status == 200
                async with http.post(running.url + "/slack/events", data=b"x") as events:
                    assert events.status == 404  # nothing to receive over HTTP in Socket Mode
    finally:
        await slack_side.stop()

    assert slack_side.opened_with == ["Bearer xapp-1-test"]
    assert helped["envelope_id"] == "env-1"
    assert helped["payload"]["response_type"] == "ephemeral"
    assert "drift scan STATE" in json.dumps(helped["payload"])
    assert opened == {"envelope_id": "env-2"}
    [view] = standin.views()
    assert view["callback_id"] == "toil_run"
