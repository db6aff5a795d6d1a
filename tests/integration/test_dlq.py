"""Dead-letter queues: list, show and replay against moto, as an operator uses them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.aws import AwsClients
from shared.errors import PermanentError
from shared.events import Actor, DriftClaimed, DriftScanRequested, dump_event
from shared.idempotency import IdempotencyStore
from shared.settings import WorkerSettings
from shared.topology import BootstrapReport, Names
from shared.worker import Worker
from tests.support import queue_depth, receive_all
from toilkit import dlq

FAST = WorkerSettings(wait_time_seconds=1, visibility_timeout=5, retry_base_seconds=0)


async def _dead_letter(
    aws: AwsClients, topology: BootstrapReport, names: Names, bodies: list[str]
) -> None:
    """Send bodies to the detector queue and let a real worker dead-letter them."""
    url = topology.queue_urls["detector"]
    for body in bodies:
        await aws.sqs.send_message(QueueUrl=url, MessageBody=body)

    async def refuse(event: Any) -> None:
        raise PermanentError("state 'network' is not in toilkit.yaml")

    worker = Worker(
        consumer="detector",
        queue_url=url,
        handlers={DriftScanRequested: refuse, DriftClaimed: refuse},
        sqs=aws.sqs,
        s3=aws.s3,
        idempotency=IdempotencyStore(aws.dynamodb, names.idempotency_table),
        settings=FAST,
    )
    await worker.run(burst=True)
    assert await queue_depth(aws.sqs, topology.dlq_urls["detector"]) == (len(bodies), 0)


def scan(correlation_id: str) -> str:
    return dump_event(DriftScanRequested(correlation_id=correlation_id, source="test"))


def claim(correlation_id: str) -> str:
    return dump_event(
        DriftClaimed(
            correlation_id=correlation_id, source="t", state="s", claimed_by=Actor(name="ana")
        )
    )


@pytest.fixture
async def stuck(aws: AwsClients, topology: BootstrapReport, names: Names) -> list[str]:
    bodies = ["{broken", scan("scan-a"), scan("scan-b"), claim("scan-a")]
    await _dead_letter(aws, topology, names, bodies)
    return bodies


async def test_list_shows_depth_and_age_without_consuming(
    aws: AwsClients, topology: BootstrapReport, names: Names, stuck: list[str]
) -> None:
    summaries = {s.queue: s for s in await dlq.list_dlqs(aws, names)}

    detector = summaries[names.dlq("detector")]
    assert (detector.depth, detector.source) == (4, names.queue("detector"))
    assert detector.oldest_age_seconds is not None and detector.oldest_age_seconds >= 0
    assert summaries[names.dlq("batch")].depth == 0
    assert await queue_depth(aws.sqs, topology.dlq_urls["detector"]) == (4, 0)


async def test_show_decodes_and_gives_the_recorded_reason(
    aws: AwsClients, topology: BootstrapReport, names: Names, stuck: list[str]
) -> None:
    shown = await dlq.peek(aws, names, "detector", limit=10)

    by_type = {m.type: m for m in shown}
    assert set(by_type) == {None, "DriftScanRequested", "DriftClaimed"}
    assert "not valid JSON" in (by_type[None].reason or "")
    assert "not in toilkit.yaml" in (by_type["DriftClaimed"].reason or "")
    assert by_type["DriftClaimed"].correlation_id == "scan-a"
    assert all(m.receive_count >= 5 for m in shown)
    assert await queue_depth(aws.sqs, topology.dlq_urls["detector"]) == (4, 0)


async def test_filtered_replay_moves_only_matches_and_dry_run_moves_nothing(
    aws: AwsClients, topology: BootstrapReport, names: Names, stuck: list[str]
) -> None:
    dry = await dlq.replay(aws, names, "detector", correlation_id="scan-a", dry_run=True)
    assert (dry.moved, dry.skipped, dry.failed) == (2, 2, 0)
    assert await queue_depth(aws.sqs, topology.dlq_urls["detector"]) == (4, 0)

    report = await dlq.replay(aws, names, names.dlq("detector"), event_type="DriftScanRequested")

    assert (report.moved, report.skipped, report.failed) == (2, 2, 0)
    back = await receive_all(aws.sqs, topology.queue_urls["detector"])
    assert sorted(json.loads(m["Body"])["correlation_id"] for m in back) == ["scan-a", "scan-b"]
    assert await queue_depth(aws.sqs, topology.dlq_urls["detector"]) == (2, 0)


async def test_unfiltered_replay_moves_everything_back(
    aws: AwsClients, topology: BootstrapReport, names: Names, stuck: list[str]
) -> None:
    report = await dlq.replay(aws, names, "detector")

    assert report.moved == 4
    assert await queue_depth(aws.sqs, topology.dlq_urls["detector"]) == (0, 0)
    back = await receive_all(aws.sqs, topology.queue_urls["detector"])
    assert sorted(m["Body"] for m in back) == sorted(stuck)


async def test_a_crash_between_send_and_delete_duplicates_but_never_loses(
    aws: AwsClients, topology: BootstrapReport, names: Names, stuck: list[str]
) -> None:
    async def send_then_crash(aws: AwsClients, message: Any, source: str, dlq_url: str) -> None:
        await aws.sqs.send_message(QueueUrl=source, MessageBody=message["Body"])
        raise ConnectionError("process died before the delete")

    report = await dlq.replay(aws, names, "detector", limit=1, move=send_then_crash)

    assert (report.moved, report.failed) == (0, 1)
    assert await queue_depth(aws.sqs, topology.dlq_urls["detector"]) == (4, 0)  # original kept
    assert len(await receive_all(aws.sqs, topology.queue_urls["detector"])) == 1  # the copy


async def test_an_unknown_queue_lists_the_known_ones(aws: AwsClients, names: Names) -> None:
    with pytest.raises(PermanentError, match=f"known: {names.dlq('detector')}"):
        await dlq.peek(aws, names, "nope")
