"""The worker runtime against a real moto server over HTTP (aiobotocore clients)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.aws import AwsClients
from shared.errors import PermanentError, TransientError
from shared.events import (
    Actor,
    DriftDetected,
    DriftScanRequested,
    StateRef,
    dump_event,
)
from shared.idempotency import IdempotencyStore
from shared.publishing import Publisher
from shared.settings import AwsSettings, WorkerSettings
from shared.topology import MAX_RECEIVE_COUNT, BootstrapReport, Names
from shared.worker import Handler, Worker, failure_key
from tests import notifier_samples as samples
from tests.support import (
    FAST_WORKER,
    TcpGate,
    batch_requested,
    eventually,
    queue_depth,
    receive_all,
    spawn_module,
)

FAST = FAST_WORKER.model_copy(update={"visibility_timeout": 5, "handler_timeout": 10})


def scan(n: int = 0) -> DriftScanRequested:
    return DriftScanRequested(correlation_id=f"scan-{n}", source="test", states=(f"state-{n}",))


def make_worker(
    aws: AwsClients,
    topology: BootstrapReport,
    names: Names,
    handlers: dict[Any, Handler],
    consumer: str = "detector",
    settings: WorkerSettings = FAST,
) -> Worker:
    return Worker(
        consumer=consumer,
        queue_url=topology.queue_urls[consumer],
        handlers=handlers,
        sqs=aws.sqs,
        s3=aws.s3,
        idempotency=IdempotencyStore(aws.dynamodb, names.idempotency_table),
        settings=settings,
    )


async def test_sns_fans_out_by_type_to_each_consumer_queue(
    aws: AwsClients, topology: BootstrapReport, publisher: Publisher
) -> None:
    actor = Actor(slack_user_id="U1", name="ana")
    await publisher.publish(scan())
    await publisher.publish(batch_requested("backfill", by=actor, run_id="run-1"))
    await publisher.publish(samples.run_finished("run-1", "backfill"))

    got = {
        consumer: sorted(
            m["MessageAttributes"]["type"]["StringValue"] for m in await receive_all(aws.sqs, url)
        )
        for consumer, url in topology.queue_urls.items()
    }

    assert got == {
        "detector": ["DriftScanRequested"],
        "batch": ["BatchRequested"],
        "notifier": ["BatchRunFinished"],
    }


async def test_one_failure_never_fails_the_batch(
    aws: AwsClients, topology: BootstrapReport, names: Names, publisher: Publisher
) -> None:
    events = [scan(i) for i in range(10)]
    flaky = {events[2].event_id, events[5].event_id, events[7].event_id}
    attempts: Counter[str] = Counter()
    handled: list[str] = []

    async def on_scan(event: DriftScanRequested) -> None:
        attempts[event.event_id] += 1
        if event.event_id in flaky and attempts[event.event_id] == 1:
            raise TransientError("the cloud said 503")
        handled.append(event.event_id)

    for event in events:
        await publisher.publish(event)
    worker = make_worker(aws, topology, names, {DriftScanRequested: on_scan})

    stats = await worker.run(burst=True)

    assert sorted(handled) == sorted(e.event_id for e in events)
    assert stats.handled == 10
    assert stats.retried == 3
    assert all(attempts[e] == 2 for e in flaky)
    assert await queue_depth(aws.sqs, topology.queue_urls["detector"]) == (0, 0)


async def test_poison_goes_to_the_dlq_logged_once_while_the_worker_keeps_going(
    aws: AwsClients,
    topology: BootstrapReport,
    names: Names,
    publisher: Publisher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = topology.queue_urls["detector"]
    good = scan(1)
    missing_field = json.loads(dump_event(scan(2)))
    del missing_field["correlation_id"]
    bodies = {
        "bad json": "{not json",
        "unknown type": json.dumps({"type": "Nope", "event_id": "x"}),
        "missing field": json.dumps(missing_field),
    }
    sent = {}
    for label, body in bodies.items():
        sent[label] = (await aws.sqs.send_message(QueueUrl=url, MessageBody=body))["MessageId"]
    await publisher.publish(good)
    handled: list[str] = []

    async def on_scan(event: DriftScanRequested) -> None:
        handled.append(event.event_id)

    worker = make_worker(aws, topology, names, {DriftScanRequested: on_scan})
    with caplog.at_level(logging.ERROR, logger="shared.worker"):
        stats = await worker.run(burst=True)

    assert handled == [good.event_id]
    dead = await receive_all(aws.sqs, topology.dlq_urls["detector"])
    assert sorted(m["MessageId"] for m in dead) == sorted(sent.values())
    assert stats.dead_lettered == 3 * MAX_RECEIVE_COUNT  # each received maxReceiveCount times
    for label, message_id in sent.items():
        logged = [r for r in caplog.records if message_id in r.getMessage()]
        assert len(logged) == 1, f"{label}: logged {len(logged)} times"
    store = IdempotencyStore(aws.dynamodb, names.idempotency_table)
    reasons = {
        label: await store.failure_reason(failure_key(names.queue("detector"), mid))
        for label, mid in sent.items()
    }
    assert "not valid JSON" in (reasons["bad json"] or "")
    assert "unknown event type 'Nope'" in (reasons["unknown type"] or "")
    assert "correlation_id" in (reasons["missing field"] or "")


async def test_permanent_handler_error_goes_to_the_dlq(
    aws: AwsClients, topology: BootstrapReport, names: Names, publisher: Publisher
) -> None:
    calls: Counter[str] = Counter()

    async def on_scan(event: DriftScanRequested) -> None:
        calls[event.event_id] += 1
        raise PermanentError("channel_not_found")

    event = scan()
    await publisher.publish(event)
    stats = await make_worker(aws, topology, names, {DriftScanRequested: on_scan}).run(burst=True)

    dead = await receive_all(aws.sqs, topology.dlq_urls["detector"])
    assert [json.loads(m["Body"])["event_id"] for m in dead] == [event.event_id]
    assert stats.dead_lettered == MAX_RECEIVE_COUNT
    assert calls[event.event_id] == MAX_RECEIVE_COUNT


async def test_a_redelivered_event_is_not_handled_twice(
    aws: AwsClients, topology: BootstrapReport, names: Names
) -> None:
    url = topology.queue_urls["detector"]
    event = scan()
    # The same event sent twice, as SNS/SQS at-least-once delivery may do.
    for _ in range(2):
        await aws.sqs.send_message(
            QueueUrl=url,
            MessageBody=dump_event(event),
            MessageAttributes={"type": {"DataType": "String", "StringValue": event.type}},
        )
    handled: list[str] = []

    async def on_scan(e: DriftScanRequested) -> None:
        handled.append(e.event_id)

    settings = FAST.model_copy(update={"concurrency": 1})
    stats = await make_worker(
        aws, topology, names, {DriftScanRequested: on_scan}, settings=settings
    ).run(burst=True)

    assert handled == [event.event_id]
    assert stats.duplicates == 1
    assert await queue_depth(aws.sqs, url) == (0, 0)


@dataclass(frozen=True)
class WorkerProcesses:
    """Starts tests/integration/worker_process.py on the detector queue, in its own process.

    Its handler leaves ``<event_id>.started`` and ``.done`` files in ``markers``.
    """

    endpoint: str
    topology: BootstrapReport
    names: Names
    markers: Path

    def spawn(self, **env: str) -> subprocess.Popen[str]:
        """A worker process; ``env`` adds WP_* settings (worker_process.py reads them)."""
        process_env = {
            **os.environ,
            "WP_ENDPOINT": self.endpoint,
            "WP_QUEUE_URL": self.topology.queue_urls["detector"],
            "WP_TABLE": self.names.idempotency_table,
            "WP_MARKERS": str(self.markers),
            **env,
        }
        return spawn_module("tests.integration.worker_process", process_env)

    async def kill_mid_handler(self, event: DriftScanRequested, handler_timeout: str) -> None:
        """A worker (handler timeout ``handler_timeout`` s) SIGKILLed once it has started
        handling ``event``."""
        dying = self.spawn(WP_HANDLER_SECONDS="60", WP_HANDLER_TIMEOUT=handler_timeout)
        try:
            await eventually(
                lambda: _all_exist(self.markers, [event], "started"), timeout=60, every=0.1
            )
        finally:
            dying.kill()
            await asyncio.to_thread(dying.wait, 30)

    async def handle_until_done(
        self, event: DriftScanRequested, handler_timeout: str, *, timeout: float
    ) -> str:
        """A worker run until it has handled ``event``, then stopped (SIGTERM): its stderr."""
        survivor = self.spawn(WP_HANDLER_SECONDS="0", WP_HANDLER_TIMEOUT=handler_timeout)
        try:
            await eventually(
                lambda: _all_exist(self.markers, [event], "done"), timeout=timeout, every=0.5
            )
        finally:
            survivor.send_signal(signal.SIGTERM)
            _out, err = await asyncio.to_thread(survivor.communicate, timeout=60)
        return err


@pytest.fixture
def workers(
    moto_endpoint: str, topology: BootstrapReport, names: Names, tmp_path: Path
) -> WorkerProcesses:
    return WorkerProcesses(moto_endpoint, topology, names, tmp_path)


async def test_a_worker_killed_between_handling_and_delete_does_not_handle_again(
    aws: AwsClients, topology: BootstrapReport, publisher: Publisher, workers: WorkerProcesses
) -> None:
    event = scan()
    await publisher.publish(event)
    crashing = workers.spawn(WP_CRASH_AFTER_HANDLED="1")
    try:
        returncode = await asyncio.to_thread(crashing.wait, 60)
    finally:
        crashing.kill()
    assert returncode == -signal.SIGKILL
    assert (workers.markers / f"{event.event_id}.done").read_text() == "x"
    # The message was never deleted: it comes back once its visibility timeout (2 s) ends.
    second = workers.spawn()
    try:
        await eventually(
            lambda: _is_empty(aws, topology.queue_urls["detector"]), timeout=60, every=0.5
        )
    finally:
        second.send_signal(signal.SIGTERM)
        _out, err = await asyncio.to_thread(second.communicate, timeout=60)

    assert second.returncode == 0, err
    assert "was handled before; skipping the redelivery" in err
    assert (workers.markers / f"{event.event_id}.done").read_text() == "x"  # handled once in effect


async def test_a_worker_killed_mid_handler_is_retried_after_its_lease_not_dead_lettered(
    aws: AwsClients, topology: BootstrapReport, publisher: Publisher, workers: WorkerProcesses
) -> None:
    event = scan()
    await publisher.publish(event)
    # Handler timeout 4 s + visibility 2 s: the dead worker's claim lapses after ~6 s,
    # while the message comes back every 2 s; without waiting for the lease, retries
    # with no backoff would use up maxReceiveCount (5) and dead-letter the event.
    await workers.kill_mid_handler(event, handler_timeout="4")
    (workers.markers / f"{event.event_id}.started").unlink()
    await workers.handle_until_done(event, handler_timeout="4", timeout=90)
    assert await queue_depth(aws.sqs, topology.dlq_urls["detector"]) == (0, 0)


async def test_a_dead_workers_claim_is_taken_over_when_its_message_comes_back(
    aws: AwsClients,
    topology: BootstrapReport,
    publisher: Publisher,
    workers: WorkerProcesses,
    tmp_path: Path,
) -> None:
    # GIVEN a worker (visibility 2 s, handler timeout 300 s) SIGKILLed mid-handler
    event = scan()
    await publisher.publish(event)
    await workers.kill_mid_handler(event, handler_timeout="300")

    # WHEN the message comes back to another worker
    err = await workers.handle_until_done(event, handler_timeout="300", timeout=60)

    # THEN the dead worker's claim (a lease as long as the visibility timeout, no longer
    # renewed) is taken over by that receive: not "another worker is handling it" until
    # the handler timeout, which would spend the receive count
    assert "another worker is handling it" not in err
    assert (tmp_path / f"{event.event_id}.done").read_text() == "x"
    assert await queue_depth(aws.sqs, topology.dlq_urls["detector"]) == (0, 0)


async def _is_empty(aws: AwsClients, url: str) -> bool:
    return await queue_depth(aws.sqs, url) == (0, 0)


async def test_sigterm_stops_receiving_and_drains_in_flight_work(
    aws: AwsClients, topology: BootstrapReport, publisher: Publisher, workers: WorkerProcesses
) -> None:
    first = [scan(i) for i in range(3)]
    for event in first:
        await publisher.publish(event)
    worker = workers.spawn(WP_HANDLER_SECONDS="3")
    try:
        await eventually(
            lambda: _all_exist(workers.markers, first, "started"), timeout=60, every=0.1
        )
        worker.send_signal(signal.SIGTERM)
        late = scan(99)
        await publisher.publish(late)
        _out, err = await asyncio.to_thread(worker.communicate, timeout=60)
    finally:
        worker.kill()

    assert worker.returncode == 0, err
    assert await _all_exist(workers.markers, first, "done")  # in-flight work finished
    assert not (workers.markers / f"{late.event_id}.started").exists()  # nothing new taken
    remaining = await receive_all(aws.sqs, topology.queue_urls["detector"])
    assert [json.loads(m["Body"])["event_id"] for m in remaining] == [late.event_id]


async def _all_exist(folder: Path, events: list[DriftScanRequested], suffix: str) -> bool:
    return all((folder / f"{e.event_id}.{suffix}").exists() for e in events)


async def test_heartbeat_keeps_a_long_handler_message_hidden(
    aws: AwsClients, topology: BootstrapReport, names: Names, publisher: Publisher
) -> None:
    url = topology.queue_urls["detector"]
    started = asyncio.Event()
    finish = asyncio.Event()
    calls = 0

    async def on_scan(event: DriftScanRequested) -> None:
        nonlocal calls
        calls += 1
        started.set()
        await finish.wait()

    settings = FAST.model_copy(update={"visibility_timeout": 2, "heartbeat_every": 0.5})
    worker = make_worker(aws, topology, names, {DriftScanRequested: on_scan}, settings=settings)
    await publisher.publish(scan())
    run = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 30)

    # Three visibility timeouts later, another consumer still cannot see the message.
    peeks = []
    for _ in range(6):
        peeks.append(await receive_all(aws.sqs, url, rounds=1))
        await asyncio.sleep(1)
    finish.set()
    await eventually(lambda: _is_empty(aws, url), timeout=30)
    worker.stop()
    stats = await run

    assert peeks == [[]] * 6
    assert calls == 1
    assert stats.heartbeats >= 6
    assert stats.handled == 1


async def test_handler_timeout_is_a_transient_failure(
    aws: AwsClients, topology: BootstrapReport, names: Names, publisher: Publisher
) -> None:
    attempts = 0

    async def on_scan(event: DriftScanRequested) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            await asyncio.sleep(60)

    settings = FAST.model_copy(update={"handler_timeout": 0.5})
    await publisher.publish(scan())
    stats = await make_worker(
        aws, topology, names, {DriftScanRequested: on_scan}, settings=settings
    ).run(burst=True)

    assert attempts == 2
    assert (stats.retried, stats.handled) == (1, 1)


async def test_large_payload_travels_through_s3(
    aws: AwsClients, topology: BootstrapReport, names: Names, publisher: Publisher
) -> None:
    findings = samples.wide_drift(400, "aws_s3_bucket", value_chars=300)
    event = DriftDetected(
        correlation_id="scan-big",
        source="test",
        state=StateRef(name="network", path="stacks/network"),
        findings=findings,
        findings_total=len(findings),
    )
    assert len(dump_event(event).encode()) > 200 * 1024

    published = await publisher.publish(event)

    assert published.offloaded_to is not None
    stored = await aws.s3.get_object(Bucket=names.bucket, Key=published.offloaded_to.key)
    assert json.loads(await stored["Body"].read())["event_id"] == event.event_id
    received: list[DriftDetected] = []

    async def on_drift(e: DriftDetected) -> None:
        received.append(e)

    raw = await receive_all(aws.sqs, topology.queue_urls["notifier"])
    assert len(raw[0]["Body"]) < 1024
    await aws.sqs.change_message_visibility(
        QueueUrl=topology.queue_urls["notifier"],
        ReceiptHandle=raw[0]["ReceiptHandle"],
        VisibilityTimeout=0,
    )
    await make_worker(aws, topology, names, {DriftDetected: on_drift}, consumer="notifier").run(
        burst=True
    )
    assert received == [event]


async def test_unreachable_endpoint_backs_off_and_recovers(
    moto_endpoint: str, topology: BootstrapReport, names: Names, publisher: Publisher
) -> None:
    host, port = moto_endpoint.removeprefix("http://").split(":")
    gate = TcpGate(host, int(port))
    await gate.open()
    gate_url = gate.url
    await gate.close()  # SQS is now unreachable for the worker
    handled: list[str] = []

    async def on_scan(event: DriftScanRequested) -> None:
        handled.append(event.event_id)

    settings = FAST.model_copy(update={"retry_base_seconds": 0.2, "retry_max_seconds": 1})
    async with AwsClients(
        AwsSettings(AWS_ENDPOINT_URL=moto_endpoint, AWS_ENDPOINT_URL_SQS=gate_url)
    ) as gated:
        worker = make_worker(
            gated, topology, names, {DriftScanRequested: on_scan}, settings=settings
        )
        run = asyncio.create_task(worker.run())
        await eventually(lambda: _at_least(worker.stats.receive_failures, 3), timeout=60)
        event = scan(7)
        await publisher.publish(event)  # published while the worker cannot reach SQS
        failures_before = worker.stats.receive_failures
        await asyncio.sleep(2)
        # Backing off (capped at 1 s, plus botocore's own retries), not spinning.
        assert worker.stats.receive_failures - failures_before <= 4
        await gate.open()
        await eventually(lambda: _contains(handled, event.event_id), timeout=60)
        worker.stop()
        await run
        await gate.close()
    assert handled == [event.event_id]


async def _at_least(value: int, minimum: int) -> bool:
    return value >= minimum


async def _contains(items: list[str], item: str) -> bool:
    return item in items
