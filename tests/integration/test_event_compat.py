"""Event compatibility across versions, with the real notifier worker on moto over HTTP.

A newer detector adds optional fields to ``DriftDetected`` and bumps ``schema_minor``: the
notifier of this release still posts it (the fields it does not know are ignored). A newer
*major* version is dead-lettered, and ``toilkit dlq show`` says to upgrade. The bodies are
published to SNS as raw JSON, as a newer producer would write them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tenacity import wait_none

from services.notifier.service import NotifierService, build_notifier
from services.notifier.settings import NotifierSettings, SlackRetrySettings
from shared.aws import AwsClients
from shared.events import SCHEMA_MINOR, SCHEMA_VERSION, dump_event
from shared.runtime import Runtime
from shared.topology import BootstrapReport, Names
from tests import notifier_samples as samples
from tests.support import FAST_WORKER, queue_depth, runtime_over
from toilkit import dlq
from toilkit.standins.slack import SlackStandin


@pytest.fixture
async def notifier(
    aws: AwsClients, names: Names, topology: BootstrapReport, standin: SlackStandin
) -> AsyncIterator[tuple[Runtime, NotifierService]]:
    runtime = runtime_over(aws, names, topology)
    settings = NotifierSettings(
        slack_api_url=standin.api_url,
        post_interval_seconds=0,
        routes=json.dumps({"default": "#toilkit", "states": {"prod-*": "#prod-drift"}}),
        worker=FAST_WORKER,
        retries=SlackRetrySettings(settle_seconds=0),
    )
    service = await build_notifier(runtime, settings=settings, post_wait=wait_none())
    yield runtime, service
    await service.aclose()


async def publish_raw(aws: AwsClients, topology: BootstrapReport, body: dict[str, Any]) -> None:
    """What a producer of another release puts on the topic (the attributes SNS filters on)."""
    await aws.sns.publish(
        TopicArn=topology.topic_arn,
        Message=json.dumps(body),
        MessageAttributes={"type": {"DataType": "String", "StringValue": body["type"]}},
    )


def newer_detected(**envelope: Any) -> dict[str, Any]:
    """A DriftDetected as a newer detector writes it: fields this release does not know."""
    body: dict[str, Any] = json.loads(dump_event(samples.drift_detected("prod-network")))
    body.update(envelope, owner_team="team-from-the-future")
    body["state"]["account_id"] = "210987654321"
    for finding in body["findings"]:
        finding["risk_score"] = 7
    return body


async def test_a_newer_minor_is_posted_and_a_newer_major_is_dead_lettered_saying_upgrade(
    aws: AwsClients,
    names: Names,
    topology: BootstrapReport,
    notifier: tuple[Runtime, NotifierService],
    standin: SlackStandin,
) -> None:
    _, service = notifier
    minor = newer_detected(schema_minor=SCHEMA_MINOR + 1)
    major = newer_detected(schema_version=SCHEMA_VERSION + 1)

    await publish_raw(aws, topology, minor)
    await publish_raw(aws, topology, major)
    await service.drain()

    # The minor bump is an ordinary drift report; the unknown fields are nowhere.
    (posted,) = standin.messages("#prod-drift")
    assert posted["metadata"]["event_payload"]["event_id"] == minor["event_id"]
    assert "Drift detected in prod-network" in json.dumps(posted["blocks"])
    assert "risk_score" not in json.dumps(posted) and "team-from-the-future" not in json.dumps(
        posted
    )
    # The major bump waits in the DLQ, saying why and what to do.
    assert await queue_depth(aws.sqs, topology.dlq_urls["notifier"]) == (1, 0)
    [dead] = await dlq.peek(aws, names, "notifier")
    assert dead.poison
    assert dead.event_id == major["event_id"]
    assert f"schema_version {SCHEMA_VERSION + 1} is newer" in (dead.reason or "")
    assert "upgrade this worker" in (dead.reason or "")
    assert "--include-poison" in (dead.reason or "")
