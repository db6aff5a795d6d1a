"""Every dead-lettered message says why: the reason is recorded before the receives run out.

A worker that knows the queue's ``maxReceiveCount`` records the reason of a failure on the
last receive (not only of poison and permanent failures), and writes a provisional one as
that last receive begins, so a worker killed while holding it still leaves an answer for
``toilkit dlq show``. Real workers against moto over HTTP.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

from shared.aws import AwsClients
from shared.errors import TransientError
from shared.events import DriftScanRequested, dump_event
from shared.idempotency import IdempotencyStore
from shared.settings import WorkerSettings
from shared.topology import MAX_RECEIVE_COUNT, BootstrapReport, Names
from shared.worker import Handler, Worker, failure_key
from tests.support import eventually, queue_depth, spawn_module
from toilkit import dlq

FAST = WorkerSettings(wait_time_seconds=1, visibility_timeout=5, retry_base_seconds=0)


def _spawn(env: dict[str, str]) -> subprocess.Popen[str]:
    return spawn_module("tests.integration.worker_process", env, capture=False)


def _detector_worker(
    aws: AwsClients, names: Names, url: str, handler: Handler, *, max_receive_count: int
) -> Worker:
    """A worker on the detector queue that hands every scan request to ``handler``."""
    return Worker(
        consumer="detector",
        queue_url=url,
        handlers={DriftScanRequested: handler},
        sqs=aws.sqs,
        s3=aws.s3,
        idempotency=IdempotencyStore(aws.dynamodb, names.idempotency_table),
        settings=FAST,
        max_receive_count=max_receive_count,
    )


def scan(name: str) -> str:
    return dump_event(DriftScanRequested(correlation_id=name, source="test"))


async def test_a_transient_failure_on_every_receive_is_shown_with_its_reason(
    aws: AwsClients, topology: BootstrapReport, names: Names
) -> None:
    # GIVEN a handler that fails transiently every time, and a worker that knows the count
    url = topology.queue_urls["detector"]
    await aws.sqs.send_message(QueueUrl=url, MessageBody=scan("scan-flaky"))
    attempts = 0

    async def flaky(event: Any) -> None:
        nonlocal attempts
        attempts += 1
        raise TransientError("terraform registry unreachable")

    worker = _detector_worker(aws, names, url, flaky, max_receive_count=MAX_RECEIVE_COUNT)
    # WHEN it fails until the redrive policy moves the message
    await worker.run(burst=True)

    # THEN dlq show gives the last failure's reason, recorded as not poison
    assert attempts == MAX_RECEIVE_COUNT
    assert await queue_depth(aws.sqs, topology.dlq_urls["detector"]) == (1, 0)
    [shown] = await dlq.peek(aws, names, "detector")
    assert f"terraform registry unreachable (receive {MAX_RECEIVE_COUNT})" in (shown.reason or "")
    assert not shown.poison


async def test_a_worker_killed_on_the_last_receive_leaves_a_reason(
    aws: AwsClients, topology: BootstrapReport, names: Names, moto_endpoint: str, tmp_path: Path
) -> None:
    # GIVEN a message received all but once already (a crash loop spent those receives)
    url = topology.queue_urls["detector"]
    sent = await aws.sqs.send_message(QueueUrl=url, MessageBody=scan("scan-killed"))
    for _ in range(MAX_RECEIVE_COUNT - 1):
        got = await aws.sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)
        [message] = got["Messages"]
        await aws.sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    # WHEN a worker process takes its last receive and is SIGKILLed mid-handler
    env = {
        **os.environ,
        "WP_ENDPOINT": moto_endpoint,
        "WP_QUEUE_URL": url,
        "WP_TABLE": names.idempotency_table,
        "WP_MARKERS": str(tmp_path),
        "WP_HANDLER_SECONDS": "120",
        "WP_MAX_RECEIVE_COUNT": str(MAX_RECEIVE_COUNT),
    }
    worker = _spawn(env)
    try:
        await eventually(
            lambda: asyncio.to_thread(lambda: any(tmp_path.glob("*.started"))),
            timeout=60,
            every=0.1,
        )
    finally:
        worker.kill()
        await asyncio.to_thread(worker.wait, 30)

    # THEN once the redrive policy moves it, dlq show says which receive was cut short
    async def moved() -> bool:
        await aws.sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)
        return (await queue_depth(aws.sqs, topology.dlq_urls["detector"]))[0] == 1

    await eventually(moved, timeout=60, every=0.5)
    [shown] = await dlq.peek(aws, names, "detector")
    assert shown.message_id == sent["MessageId"]
    assert f"its last receive ({MAX_RECEIVE_COUNT})" in (shown.reason or "")
    assert "was killed, crashed or stopped" in (shown.reason or "")


async def test_a_last_receive_that_succeeds_leaves_no_record(
    aws: AwsClients, topology: BootstrapReport, names: Names
) -> None:
    url = topology.queue_urls["detector"]
    sent = await aws.sqs.send_message(QueueUrl=url, MessageBody=scan("scan-late"))
    handled: list[str] = []

    async def ok(event: Any) -> None:
        handled.append(event.event_id)

    # The first receive is the last.
    worker = _detector_worker(aws, names, url, ok, max_receive_count=1)
    store = IdempotencyStore(aws.dynamodb, names.idempotency_table)
    await worker.run(burst=True)

    assert len(handled) == 1
    key = failure_key(topology.queue_urls["detector"].rsplit("/", 1)[-1], sent["MessageId"])
    assert await store.failure(key) is None
