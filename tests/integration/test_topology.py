"""Bootstrap against a real moto server: everything created once, then left alone."""

from __future__ import annotations

import json

import pytest

from shared.aws import AwsClients
from shared.settings import AwsSettings
from shared.topology import (
    MAX_RECEIVE_COUNT,
    QUEUES,
    TABLES,
    BootstrapReport,
    Names,
    bootstrap,
    resolve_urls,
)
from tests.support import receive_all
from toilkit import dlq


async def test_bootstrap_creates_everything_then_changes_nothing(
    aws: AwsClients, names: Names
) -> None:
    first = await bootstrap(aws, names)
    assert first.changed
    created = {(c.kind, c.name) for c in first.changes if c.action == "created"}
    assert ("sns topic", names.topic) in created
    for spec in QUEUES:
        assert ("sqs queue", names.queue(spec.consumer)) in created
        assert ("sqs queue", names.dlq(spec.consumer)) in created
        assert ("sns subscription", names.queue(spec.consumer)) in created
    for table in TABLES:
        assert ("dynamodb table", names.table(table.suffix)) in created
    assert ("s3 bucket", names.bucket) in created

    second = await bootstrap(aws, names)

    assert not second.changed
    assert {c.action for c in second.changes} == {"exists"}
    assert len(second.changes) == len(first.changes)
    assert second.topic_arn == first.topic_arn
    assert second.queue_urls == first.queue_urls


async def test_bootstrap_repairs_a_drifted_redrive_policy(aws: AwsClients, names: Names) -> None:
    report = await bootstrap(aws, names)
    url = report.queue_urls["batch"]
    await aws.sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "999"})

    again = await bootstrap(aws, names)

    assert [(c.name, c.action) for c in again.changes if c.action != "exists"] == [
        (names.queue("batch"), "updated")
    ]
    attrs = (await aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]))["Attributes"]
    assert attrs["VisibilityTimeout"] == "60"
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["maxReceiveCount"] == MAX_RECEIVE_COUNT
    assert redrive["deadLetterTargetArn"].endswith(names.dlq("batch"))


async def test_a_message_no_filter_matches_lands_in_the_unrouted_queue(
    aws: AwsClients, names: Names, topology: BootstrapReport
) -> None:
    await aws.sns.publish(TopicArn=topology.topic_arn, Message='{"no": "type attribute"}')
    await aws.sns.publish(
        TopicArn=topology.topic_arn,
        Message='{"type": "Bogus"}',
        MessageAttributes={"type": {"DataType": "String", "StringValue": "Bogus"}},
    )
    await aws.sns.publish(
        TopicArn=topology.topic_arn,
        Message="{}",
        MessageAttributes={"type": {"DataType": "String", "StringValue": "DriftScanRequested"}},
    )

    caught = await receive_all(aws.sqs, topology.unrouted_url)
    assert sorted(m["Body"] for m in caught) == ['{"no": "type attribute"}', '{"type": "Bogus"}']
    listed = {s.queue: s for s in await dlq.list_dlqs(aws, names)}
    assert names.unrouted in listed


async def test_clients_not_opened_at_start_open_on_their_first_call(
    aws_settings: AwsSettings, names: Names, topology: BootstrapReport
) -> None:
    # GIVEN clients entered with none of the core ones opened (a cold Lambda sandbox)
    async with AwsClients(aws_settings, open_at_start=()) as aws:
        assert aws.opened("sns") is None

        # WHEN code that holds the SNS client publishes, THEN that call opens it
        sns = aws.sns
        await sns.publish(TopicArn=topology.topic_arn, Message="{}")
        assert aws.opened("sns") is not None

        # AND what is not an API call is there once the client is open, not before
        with pytest.raises(AttributeError, match="not open yet"):
            aws.s3.get_paginator("list_objects_v2")
        await aws.client("s3")
        assert aws.s3.get_paginator("list_objects_v2") is not None

        # AND the topology is looked up with clients opened as it needs them
        found = await resolve_urls(aws, names)
        assert found.topic_arn == topology.topic_arn
        assert found.queue_urls == topology.queue_urls
