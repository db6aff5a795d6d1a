"""Worker throughput: toilkit's runtime against two baselines, on one moto server.

In one run, against the same moto server (its own process, so it does not share our GIL),
N events are consumed by:

  (a) the toilkit worker runtime (burst mode, idempotency on, as in production);
  (b) a naive sequential boto3 loop: receive 1, handle, delete;
  (c) a raw aiobotocore concurrent loop with no framework: P pollers, each receiving 10
      and handling + deleting them concurrently (no idempotency, no retries, no heartbeat).

Every handler waits ``--handler-ms`` (default 20 ms), like one Slack or AWS call. Prints
msgs/s for each and the ratios a/b and a/c. Targets: a/b >= 5, a/c >= 0.9.

Usage: python bench/worker_throughput.py [--events 400] [--handler-ms 20] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.aws import AwsClients  # noqa: E402
from shared.events import DriftScanRequested, dump_event  # noqa: E402
from shared.settings import AwsSettings, WorkerSettings  # noqa: E402
from shared.topology import Names, bootstrap  # noqa: E402
from shared.worker import Worker  # noqa: E402

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


async def run_toilkit(aws: AwsClients, names: Names, url: str, n: int, args: argparse.Namespace) -> float:
    from shared.idempotency import IdempotencyStore

    handled = 0

    async def on_scan(event: DriftScanRequested) -> None:
        nonlocal handled
        await asyncio.sleep(args.handler_ms / 1000)
        handled += 1

    worker = Worker(
        consumer="detector",
        queue_url=url,
        handlers={DriftScanRequested: on_scan},
        sqs=aws.sqs,
        s3=aws.s3,
        idempotency=IdempotencyStore(aws.dynamodb, names.idempotency_table),
        settings=WorkerSettings(concurrency=args.concurrency, wait_time_seconds=1),
    )
    started = time.perf_counter()
    await worker.run(burst=True)
    elapsed = time.perf_counter() - started
    assert handled == n, f"toilkit handled {handled} of {n}"
    return elapsed


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

    async def handle(message: dict[str, str]) -> None:
        nonlocal handled
        await asyncio.sleep(args.handler_ms / 1000)
        await aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        handled += 1

    async def poller() -> None:
        while handled < n:
            response = await aws.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            await asyncio.gather(*(handle(m) for m in response.get("Messages", [])))  # type: ignore[arg-type]

    started = time.perf_counter()
    await asyncio.gather(*(poller() for _ in range(max(1, args.concurrency // 10))))
    return time.perf_counter() - started


async def main(args: argparse.Namespace) -> None:
    process, endpoint = start_moto()
    try:
        async with AwsClients(AwsSettings(AWS_ENDPOINT_URL=endpoint)) as aws:
            results: dict[str, float] = {}
            for label in ("a", "b", "c"):
                names = Names(prefix=f"bench{uuid.uuid4().hex[:6]}", bucket=f"bench{uuid.uuid4().hex[:6]}")
                report = await bootstrap(aws, names)
                url = report.queue_urls["detector"]
                count = args.naive_events if label == "b" else args.events
                await fill(aws, url, count)
                print(f"  running ({label}) over {count} events ...", file=sys.stderr, flush=True)
                if label == "a":
                    elapsed = await run_toilkit(aws, names, url, count, args)
                elif label == "b":
                    elapsed = await asyncio.to_thread(run_naive, endpoint, url, count, args)
                else:
                    elapsed = await run_raw(aws, url, count, args)
                results[label] = count / elapsed
    finally:
        process.terminate()
        process.wait(10)
    a, b, c = results["a"], results["b"], results["c"]
    print(f"worker throughput, handler {args.handler_ms} ms, concurrency {args.concurrency}, moto {endpoint}")
    print(f"  (a) toilkit worker runtime     {a:8.1f} msgs/s  ({args.events} events)")
    print(f"  (b) naive sequential boto3     {b:8.1f} msgs/s  ({args.naive_events} events)")
    print(f"  (c) raw aiobotocore concurrent {c:8.1f} msgs/s  ({args.events} events)")
    print(f"  a/b = {a / b:5.2f}   (target >= 5)")
    print(f"  a/c = {a / c:5.2f}   (target >= 0.9)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--naive-events", type=int, default=100, help="fewer: it is slow")
    parser.add_argument("--handler-ms", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=32)
    asyncio.run(main(parser.parse_args()))
