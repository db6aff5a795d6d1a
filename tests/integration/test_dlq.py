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
from tests.integration.test_cli import run_cli
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


async def test_unfiltered_replay_moves_everything_but_poison_unless_asked(
    aws: AwsClients, topology: BootstrapReport, names: Names, stuck: list[str]
) -> None:
    report = await dlq.replay(aws, names, "detector")

    assert (report.held_at_start, report.moved, report.poison) == (4, 3, 1)
    assert await queue_depth(aws.sqs, topology.dlq_urls["detector"]) == (1, 0)
    back = await receive_all(aws.sqs, topology.queue_urls["detector"])
    assert sorted(m["Body"] for m in back) == sorted(stuck[1:])

    forced = await dlq.replay(aws, names, "detector", include_poison=True)

    assert (forced.moved, forced.poison) == (1, 0)
    assert await queue_depth(aws.sqs, topology.dlq_urls["detector"]) == (0, 0)
    back = await receive_all(aws.sqs, topology.queue_urls["detector"])
    assert [m["Body"] for m in back] == [stuck[0]]


async def test_replay_moves_at_most_what_the_dlq_held_when_it_began(
    aws: AwsClients, topology: BootstrapReport, names: Names, stuck: list[str]
) -> None:
    # GIVEN a consumer that fails every moved copy at once, back into the DLQ (new ids)
    async def move_and_fail_again(aws: AwsClients, message: Any, source: str, dlq_url: str) -> None:
        await dlq.move_one(aws, message, source, dlq_url)
        received = await aws.sqs.receive_message(QueueUrl=source, MessageAttributeNames=["All"])
        await dlq.move_one(aws, received["Messages"][0], dlq_url, source)

    # WHEN everything is replayed
    report = await dlq.replay(aws, names, "detector", include_poison=True, move=move_and_fail_again)

    # THEN each message of the snapshot moved once, and the copies that came back stay
    assert (report.held_at_start, report.moved, report.failed) == (4, 4, 0)
    assert report.came_back == 4
    assert await queue_depth(aws.sqs, topology.dlq_urls["detector"]) == (4, 0)
    shown = await dlq.peek(aws, names, "detector")
    assert all(m.replayed_from for m in shown)


async def test_show_renders_any_body_and_explains_a_missing_reason(
    aws: AwsClients, topology: BootstrapReport, names: Names
) -> None:
    # GIVEN odd fields (lists, numbers, markup) and no recorded reason (a crash loop)
    odd = {"type": ["x", 1], "event_id": 42, "correlation_id": {"a": "[bold]"}, "occurred_at": 1}
    await aws.sqs.send_message(QueueUrl=topology.dlq_urls["detector"], MessageBody=json.dumps(odd))

    [shown] = await dlq.peek(aws, names, "detector")

    assert (shown.type, shown.event_id) == ('["x", 1]', "42")
    assert shown.correlation_id == '{"a": "[bold]"}'
    assert shown.poison
    assert "receives ran out" in (shown.reason or "") or "poison" in (shown.reason or "")


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


async def test_the_cli_shows_odd_messages_and_says_what_replay_did(
    aws: AwsClients, topology: BootstrapReport, names: Names, moto_endpoint: str
) -> None:
    # GIVEN a dead-lettered message whose fields are lists and numbers, and a poison one
    odd = {"type": ["DriftClaimed"], "event_id": 7, "correlation_id": ["[red]x"], "source": 1}
    for body in (json.dumps(odd), "{broken"):
        await aws.sqs.send_message(QueueUrl=topology.dlq_urls["detector"], MessageBody=body)
    env = {"AWS_ENDPOINT_URL": moto_endpoint, "TOILKIT_NAME_PREFIX": names.prefix}

    # WHEN the operator looks, then replays
    shown = run_cli("dlq", "show", "detector", env=env)
    replayed = run_cli("replay", "detector", env=env)

    # THEN the table renders both, and replay leaves the poison where it is
    assert shown.returncode == 0, shown.stderr
    assert '["DriftClaimed"]' in shown.stdout and '["[red]x"]' in shown.stdout
    assert "[poison]" in shown.stdout
    assert replayed.returncode == 0, replayed.stderr
    assert "the DLQ held 2: moved 0" in replayed.stdout
    assert "left 2 that failed as poison" in replayed.stdout
    assert await queue_depth(aws.sqs, topology.dlq_urls["detector"]) == (2, 0)
