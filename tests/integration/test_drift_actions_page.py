"""Ignore… and Re-scan clicked on the stand-in's page, as a person clicks them.

The stand-in plays Slack's client (the same ``/_standin/client/*`` endpoints the page's
script calls) in front of the real gateway; the message clicked is the notifier's own
rendering of a drift report, posted through the Web API. (The headless-Chromium variant of
this path is the page test in ``test_slack_standin_client.py``; it needs a chromium.)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from services.gateway.drift_actions import (
    ATTRIBUTE_BLOCK,
    EXPIRES_BLOCK,
    INPUT_ACTION,
    REASON_BLOCK,
)
from services.notifier.blocks import render_drift
from services.notifier.views import drift_view_of
from shared.aws import AwsClients
from shared.slack.actions import Action
from shared.state_table.drift_actions import IgnoreRuleStore
from shared.topology import BootstrapReport, Names
from tests import notifier_samples as samples
from tests.gateway_harness import events_on
from tests.integration.test_slack_standin_client import (  # noqa: F401 - fixtures, their catalog
    ALICE,
    CATALOG,
    CHANNEL,
    Page,
    gateway,
    page,
)
from toilkit.standins.slack import SlackStandin


@pytest.fixture
async def report_ts(standin: SlackStandin) -> str:
    """The notifier's drift report (the database drifted), posted to the channel: its ts."""
    report = samples.drift_detected(findings=(samples.database_drift(),))
    message = render_drift(drift_view_of(report))
    client = AsyncWebClient(token="xoxb-test", base_url=standin.api_url)
    posted = await client.chat_postMessage(
        channel=CHANNEL, text=message.text, blocks=list(message.blocks)
    )
    return str(posted["ts"])


async def test_ignore_clicked_on_the_page_opens_the_modal_and_its_submission_writes_the_rule(
    page: Page,  # noqa: F811
    report_ts: str,
    standin: SlackStandin,
    aws: AwsClients,
    names: Names,
) -> None:
    await page.click(report_ts, Action.DRIFT_IGNORE, ALICE)
    modal = await page.modal(ALICE)
    assert modal is not None and modal["view"]["callback_id"] == "drift_ignore_modal"
    view_id = modal["view"]["id"]
    too_far = (datetime.now(UTC).date() + timedelta(days=120)).isoformat()
    refused = await page.submit(
        view_id,
        {
            REASON_BLOCK: {INPUT_ACTION: "db team resizes it"},
            EXPIRES_BLOCK: {INPUT_ACTION: too_far},
        },
        ALICE,
    )
    assert "At most 90 days" in str(refused)
    assert await IgnoreRuleStore(aws.dynamodb, names.state_table).all() == []

    until = (datetime.now(UTC).date() + timedelta(days=7)).isoformat()
    await page.submit(
        view_id,
        {
            REASON_BLOCK: {INPUT_ACTION: "db team resizes it"},
            EXPIRES_BLOCK: {INPUT_ACTION: until},
            ATTRIBUTE_BLOCK: {INPUT_ACTION: "instance_class"},
        },
        ALICE,
    )

    assert await page.modal(ALICE) is None
    [rule] = await IgnoreRuleStore(aws.dynamodb, names.state_table).all()
    assert (rule.address, rule.attribute, rule.expires.isoformat()) == (
        samples.database_drift().address,
        "instance_class",
        until,
    )
    [parent] = [m for m in standin.messages(CHANNEL) if m["ts"] == report_ts]
    assert "ignored" in parent["replies"][-1]["text"]


async def test_rescan_clicked_twice_on_the_page_asks_for_one_scan(
    page: Page,  # noqa: F811
    report_ts: str,
    aws: AwsClients,
    topology: BootstrapReport,
) -> None:
    await page.click(report_ts, Action.DRIFT_RESCAN_REFRESH, ALICE)
    await page.click(report_ts, Action.DRIFT_RESCAN_REFRESH, ALICE)

    [scan] = await events_on(aws, topology, "detector")
    assert (scan.states, scan.mode, scan.reply_thread_ts) == (
        ("prod-network",),
        "refresh_only",
        report_ts,
    )
