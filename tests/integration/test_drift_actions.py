"""The drift report's buttons over real HTTP: Ignore… (modal, rule, RBAC, audit) and Re-scan.

The real gateway serves signed requests on a loopback port, against moto over HTTP (the
state table, SNS/SQS) and the Slack stand-in (modals, thread replies, ephemerals). The
report's parent message is posted to the stand-in first, so thread answers have a parent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from services.gateway.drift_actions import ATTRIBUTE_BLOCK, EXPIRES_BLOCK, REASON_BLOCK
from services.gateway.service import GatewayService
from shared.aws import AwsClients
from shared.events import Actor
from shared.slack.actions import encode_ignore_value, encode_rescan_value
from shared.state_table.drift_actions import DriftAudit, IgnoreRuleStore, ScanGuard
from shared.topology import BootstrapReport, Names
from tests.gateway_harness import (
    ECHO_COMMAND,
    ServedSlack,
    ephemeral_texts,
    events_on,
    served_gateway,
)
from toilkit.standins.slack import SlackStandin, SlackUserRef

SECRET = "0f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0OPS00001"
ALICE = SlackUserRef("U0ALICE001", "alice")  # may ignore and re-scan
BOB = SlackUserRef("U0BOB00002", "bob")  # may re-scan only
CAROL = SlackUserRef("U0CAROL003", "carol")  # may do neither
STATE = "network-prod"
ADDRESS = "aws_security_group.web"

CATALOG = (
    "commands:"
    + ECHO_COMMAND
    + """drift:
  ignore: {users: [U0ALICE001]}
  rescan: {users: [U0ALICE001, U0BOB00002]}
  accept: {users: [U0BOB00002]}
"""
)


service = served_gateway(SECRET)


class Slack(ServedSlack):
    """Slack's side, pressing the buttons of the drift report's message."""

    def __init__(self, service: GatewayService, standin: SlackStandin, parent_ts: str) -> None:
        super().__init__(service, SECRET, standin, CHANNEL, message_ts=parent_ts)
        self.parent_ts = parent_ts


@pytest.fixture
async def slack(service: GatewayService, standin: SlackStandin) -> AsyncIterator[Slack]:
    client = AsyncWebClient(token="xoxb-test", base_url=standin.api_url)
    parent = await client.chat_postMessage(channel=CHANNEL, text="Drift in network-prod")
    side = Slack(service, standin, str(parent["ts"]))
    yield side
    await side.close()


def thread_texts(standin: SlackStandin, parent_ts: str) -> list[str]:
    [parent] = [m for m in standin.messages(CHANNEL) if m["ts"] == parent_ts]
    return [str(reply.get("text", "")) for reply in parent["replies"]]


async def open_ignore_modal(slack: Slack, user: SlackUserRef = ALICE) -> dict[str, Any]:
    value = encode_ignore_value(STATE, ADDRESS, "ingress[0].cidr_blocks")
    status, _ = await slack.press("drift_ignore", value, user)
    assert status == 200
    view: dict[str, Any] = slack.standin.views()[-1]
    return view


def today() -> date:
    return datetime.now(UTC).date()


# --------------------------------------------------------------------------- Ignore…


async def test_ignore_opens_a_modal_prefilled_with_14_days_and_the_attribute(slack: Slack) -> None:
    view = await open_ignore_modal(slack)

    assert view["callback_id"] == "drift_ignore_modal"
    blocks = {b.get("block_id"): b for b in view["blocks"]}
    assert blocks[EXPIRES_BLOCK]["element"]["initial_date"] == str(today() + timedelta(days=14))
    assert blocks[ATTRIBUTE_BLOCK]["element"]["initial_value"] == "ingress[0].cidr_blocks"
    assert ADDRESS in json.dumps(view["blocks"][0])


@pytest.mark.parametrize(
    ("expires", "says"),
    [
        (lambda: today() - timedelta(days=1), "is in the past"),
        (lambda: today() + timedelta(days=91), "At most 90 days ahead"),
    ],
    ids=["in-the-past", "over-90-days"],
)
async def test_an_expiry_in_the_past_or_over_90_days_is_refused_in_the_modal(
    slack: Slack, aws: AwsClients, names: Names, expires: Any, says: str
) -> None:
    view = await open_ignore_modal(slack)

    status, text = await slack.submit(
        view, {REASON_BLOCK: "vendor rotates it", EXPIRES_BLOCK: str(expires())}, ALICE
    )

    assert status == 200
    answer = json.loads(text)
    assert answer["response_action"] == "errors"
    assert says in answer["errors"][EXPIRES_BLOCK]
    assert await IgnoreRuleStore(aws.dynamodb, names.state_table).all() == []


async def test_a_reason_is_required(slack: Slack, aws: AwsClients, names: Names) -> None:
    view = await open_ignore_modal(slack)

    status, text = await slack.submit(view, {REASON_BLOCK: "  "}, ALICE)

    assert status == 200
    assert REASON_BLOCK in json.loads(text)["errors"]
    assert await IgnoreRuleStore(aws.dynamodb, names.state_table).all() == []


async def test_a_valid_ignore_writes_the_rule_tells_the_thread_and_is_audited(
    slack: Slack, aws: AwsClients, names: Names, standin: SlackStandin
) -> None:
    view = await open_ignore_modal(slack)
    until = today() + timedelta(days=30)

    status, text = await slack.submit(
        view, {REASON_BLOCK: "vendor rotates it nightly", EXPIRES_BLOCK: str(until)}, ALICE
    )

    assert (status, text) == (200, "")
    [rule] = await IgnoreRuleStore(aws.dynamodb, names.state_table).all()
    assert (rule.state, rule.address, rule.attribute) == (STATE, ADDRESS, "ingress[0].cidr_blocks")
    assert (rule.reason, rule.expires) == ("vendor rotates it nightly", until)
    assert rule.created_by.slack_user_id == ALICE.id
    [said] = thread_texts(standin, slack.parent_ts)
    assert f"until {until.isoformat()}" in said and rule.rule_id in said
    [entry] = await DriftAudit(aws.dynamodb, names.state_table).entries()
    assert (entry.action, entry.outcome, entry.actor.slack_user_id) == ("ignore", "done", ALICE.id)


async def test_someone_the_catalog_does_not_allow_gets_no_modal_and_the_refusal_is_audited(
    slack: Slack, aws: AwsClients, names: Names, standin: SlackStandin
) -> None:
    views_before = len(standin.views())

    await slack.press("drift_ignore", encode_ignore_value(STATE, ADDRESS), BOB)

    assert len(standin.views()) == views_before
    [said] = ephemeral_texts(standin, CHANNEL, BOB.id)
    assert "may not ignore drift" in said
    [entry] = await DriftAudit(aws.dynamodb, names.state_table).entries()
    assert (entry.action, entry.outcome, entry.actor.slack_user_id) == ("ignore", "refused", BOB.id)


async def test_a_forged_ignore_button_gets_a_clear_answer(
    slack: Slack, standin: SlackStandin
) -> None:
    status, _ = await slack.press("drift_ignore", '{"state": ""}', ALICE)

    assert status == 200
    [said] = ephemeral_texts(standin, CHANNEL, ALICE.id)
    assert "does not say which drift to ignore" in said


# --------------------------------------------------------------------------- Re-scan


async def test_two_rescan_presses_publish_one_scan_and_the_second_is_told_why(
    slack: Slack, aws: AwsClients, names: Names, topology: BootstrapReport, standin: SlackStandin
) -> None:
    value = encode_rescan_value(STATE)

    await slack.press("drift_rescan_refresh", value, ALICE)
    await slack.press("drift_rescan_full", value, BOB)

    [event] = await events_on(aws, topology, "detector")
    assert event.type == "DriftScanRequested"
    assert (event.states, event.mode) == ((STATE,), "refresh_only")
    assert (event.reply_channel, event.reply_thread_ts) == (CHANNEL, slack.parent_ts)
    assert event.requested_by.slack_user_id == ALICE.id
    [second] = ephemeral_texts(standin, CHANNEL, BOB.id)
    assert "already running" in second and ALICE.id in second
    outcomes = [e.outcome for e in await DriftAudit(aws.dynamodb, names.state_table).entries()]
    assert sorted(outcomes) == ["done", "duplicate"]

    # The detector releases the state when its scan is done: a press then scans again.
    assert await ScanGuard(aws.dynamodb, names.state_table).release(STATE, event.event_id)
    await slack.press("drift_rescan_full", value, BOB)
    events = await events_on(aws, topology, "detector")
    assert [e.mode for e in events if e.event_id != event.event_id] == ["full"]


async def test_a_held_slot_from_a_lost_scan_expires(
    aws: AwsClients, names: Names, topology: BootstrapReport
) -> None:
    guard = ScanGuard(aws.dynamodb, names.state_table, hold_seconds=60)
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    alice = Actor(name="alice", slack_user_id=ALICE.id)

    assert await guard.hold(STATE, "scan-1", alice, now=start) is None
    assert await guard.hold(STATE, "scan-2", alice, now=start + timedelta(seconds=30)) == alice
    assert await guard.hold(STATE, "scan-3", alice, now=start + timedelta(seconds=61)) is None
    assert not await guard.release(STATE, "scan-1")  # not the holder any more


async def test_a_rescan_by_someone_not_allowed_publishes_nothing_and_is_audited(
    slack: Slack, aws: AwsClients, names: Names, topology: BootstrapReport, standin: SlackStandin
) -> None:
    await slack.press("drift_rescan_full", encode_rescan_value(STATE), CAROL)

    assert await events_on(aws, topology, "detector") == []
    [said] = ephemeral_texts(standin, CHANNEL, CAROL.id)
    assert "may not rescan drift" in said
    [entry] = await DriftAudit(aws.dynamodb, names.state_table).entries()
    assert (entry.action, entry.outcome) == ("rescan", "refused")


# --------------------------------------------------------------------------- Accept into code


async def test_accept_into_code_is_published_for_those_allowed_and_audited_either_way(
    slack: Slack, aws: AwsClients, names: Names, topology: BootstrapReport, standin: SlackStandin
) -> None:
    value = json.dumps({"state": STATE, "fingerprints": ["fp1"]})

    await slack.press("drift_accept", value, CAROL)
    await slack.press("drift_accept", value, BOB)

    [event] = await events_on(aws, topology, "detector")
    assert (event.type, event.state, event.fingerprints) == (
        "DriftAcceptRequested",
        STATE,
        ("fp1",),
    )
    assert event.requested_by.slack_user_id == BOB.id
    assert "may not accept drift" in " ".join(ephemeral_texts(standin, CHANNEL, CAROL.id))
    assert "Planning `network-prod` afresh" in " ".join(ephemeral_texts(standin, CHANNEL, BOB.id))
    entries = await DriftAudit(aws.dynamodb, names.state_table).entries()
    assert sorted((e.action, e.outcome, e.actor.slack_user_id) for e in entries) == [
        ("accept", "done", BOB.id),
        ("accept", "refused", CAROL.id),
    ]
