"""Worker throughput: toilkit's runtime against two baselines, on one moto server.

In one run, against the same moto server (its own process, so it does not share our GIL),
N events are consumed by:

  (a) the toilkit worker runtime (burst mode, idempotency on, as in production);
  (b) a naive sequential boto3 loop: receive 1, handle, delete;
  (a0) the same with idempotency off (the runtime's own cost);
  (c) a raw aiobotocore concurrent loop with no framework: P pollers, each receiving 10
      and handling + deleting them concurrently (no idempotency, no retries, no heartbeat).

Every handler waits ``--handler-ms`` (default 100 ms), like one Slack Web API call. Prints
msgs/s for each and the ratios a/b and a/c. Targets: a/b >= 5, a/c >= 0.9.

Events are queued in rounds of ``--depth`` (moto's receive costs O(queue depth) per message,
so one deep queue would measure moto rather than the consumers); each consumer stops when
it has handled every event of the round, and the clock stops at the last event handled
(not when the consumer has wound down its last long poll).

Usage: python bench/worker_throughput.py [--events 400] [--handler-ms 20] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import free_port, use_fake_aws_credentials
from shared.aws import AwsClients
from shared.events import DriftScanRequested, dump_event
from shared.idempotency import IdempotencyStore
from shared.settings import AwsSettings, WorkerSettings
from shared.topology import Names, bootstrap
from shared.worker import Worker

use_fake_aws_credentials()


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"{endpoint}/moto-api/", timeout=1)
            return process, endpoint
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.1)


async def fill(aws: AwsClients, url: str, count: int) -> None:
    for start in range(0, count, 10):
        entries = []
        for i in range(start, min(start + 10, count)):
            event = DriftScanRequested(correlation_id=f"bench-{i}", source="bench")
            entries.append(
                {
                    "Id": str(i),
                    "MessageBody": dump_event(event),
                    "MessageAttributes": {
                        "type": {"DataType": "String", "StringValue": "DriftScanRequested"}
                    },
                }
            )
        await aws.sqs.send_message_batch(QueueUrl=url, Entries=entries)  # type: ignore[arg-type]


async def run_toilkit(
    aws: AwsClients,
    names: Names,
    url: str,
    n: int,
    args: argparse.Namespace,
    *,
    idempotent: bool = True,
) -> float:
    handled = 0
    finished: list[float] = []

    async def on_scan(event: DriftScanRequested) -> None:
        nonlocal handled
        await asyncio.sleep(args.handler_ms / 1000)
        handled += 1
        if handled == n:
            finished.append(time.perf_counter())
            worker.stop()

    worker = Worker(
        consumer="detector",
        queue_url=url,
        handlers={DriftScanRequested: on_scan},
        sqs=aws.sqs,
        s3=aws.s3,
        idempotency=IdempotencyStore(aws.dynamodb, names.idempotency_table) if idempotent else None,
        settings=WorkerSettings(concurrency=args.concurrency, wait_time_seconds=1),
    )
    started = time.perf_counter()
    await worker.run()
    assert handled == n, f"toilkit handled {handled} of {n}"
    return finished[0] - started


def run_naive(endpoint: str, url: str, n: int, args: argparse.Namespace) -> float:
    sqs = boto3.client("sqs", endpoint_url=endpoint)
    handled = 0
    started = time.perf_counter()
    while handled < n:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1).get(
            "Messages", []
        )
        for message in messages:
            time.sleep(args.handler_ms / 1000)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            handled += 1
    return time.perf_counter() - started


async def run_raw(aws: AwsClients, url: str, n: int, args: argparse.Namespace) -> float:
    handled = 0
    finished: list[float] = []

    async def handle(message: dict[str, str]) -> None:
        nonlocal handled
        await asyncio.sleep(args.handler_ms / 1000)
        await aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        handled += 1
        if handled == n:
            finished.append(time.perf_counter())

    async def poller() -> None:
        while handled < n:
            response = await aws.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            await asyncio.gather(*(handle(m) for m in response.get("Messages", [])))  # type: ignore[arg-type]

    started = time.perf_counter()
    await asyncio.gather(*(poller() for _ in range(max(1, args.concurrency // 10))))
    return finished[0] - started


async def main(args: argparse.Namespace) -> None:
    process, endpoint = start_moto()
    try:
        async with AwsClients(AwsSettings(AWS_ENDPOINT_URL=endpoint)) as aws:
            results: dict[str, float] = {}
            for label in ("a", "a0", "b", "c"):
                names = Names(
                    prefix=f"bench{uuid.uuid4().hex[:6]}", bucket=f"bench{uuid.uuid4().hex[:6]}"
                )
                report = await bootstrap(aws, names)
                url = report.queue_urls["detector"]
                total = args.naive_events if label == "b" else args.events
                print(f"  running ({label}) over {total} events ...", file=sys.stderr, flush=True)
                # Rounds of --depth events: moto's receive costs O(queue depth) per message,
                # so a deep queue would measure moto, not the consumers.
                elapsed = 0.0
                for start in range(0, total, args.depth):
                    count = min(args.depth, total - start)
                    await fill(aws, url, count)
                    if label in ("a", "a0"):
                        elapsed += await run_toilkit(
                            aws, names, url, count, args, idempotent=label == "a"
                        )
                    elif label == "b":
                        elapsed += await asyncio.to_thread(run_naive, endpoint, url, count, args)
                    else:
                        elapsed += await run_raw(aws, url, count, args)
                results[label] = total / elapsed
    finally:
        process.terminate()
        process.wait(10)
    a, a0, b, c = results["a"], results["a0"], results["b"], results["c"]
    print(
        f"worker throughput, handler {args.handler_ms} ms, concurrency {args.concurrency}, moto {endpoint}"
    )
    print(f"  (a) toilkit worker runtime     {a:8.1f} msgs/s  ({args.events} events)")
    print(f"  (a0) the same, idempotency off {a0:8.1f} msgs/s  ({args.events} events)")
    print(f"  (b) naive sequential boto3     {b:8.1f} msgs/s  ({args.naive_events} events)")
    print(f"  (c) raw aiobotocore concurrent {c:8.1f} msgs/s  ({args.events} events)")
    print(f"  a/b = {a / b:5.2f}   (target >= 5)")
    print(f"  a/c = {a / c:5.2f}   (target >= 0.9)")
    print(f"  a0/c = {a0 / c:4.2f}  (the runtime alone; a - a0 is one conditional put per message)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--naive-events", type=int, default=100, help="fewer: it is slow")
    parser.add_argument("--handler-ms", type=float, default=100, help="one Slack call")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--depth", type=int, default=50, help="events queued per round")
    asyncio.run(main(parser.parse_args()))
