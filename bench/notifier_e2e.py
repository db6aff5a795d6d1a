"""Notifier end to end: event published to SNS -> message visible on the Slack stand-in.

In one run, against one moto server and one Slack stand-in (each its own process, so neither
shares our GIL), outcome events (drift reports with five resources and failed scans, one
Slack message each) are published to the topic while a consumer runs, and the time from
each publish to the stand-in recording the ``chat.postMessage`` that showed it is measured,
in two phases per consumer:

  latency: ``--latency-events`` published at a steady ``--rate`` (below either consumer's
      capacity, so it measures the pipeline, not a queue): p50 and p99;
  throughput: a burst of ``--events`` queued first, then drained by a fresh consumer:
      events/s from its start to the last message visible.

The consumers:

  (a) the toilkit notifier, wired as in production (``build_notifier``: worker with
      concurrency and idempotency, DynamoDB post records written before and after each post,
      slack-sdk retry handlers, one HTTP session);
  (b) a naive baseline: one event at a time (boto3 receive 1, render, post, delete) with a
      new ``WebClient`` for every call, no records, no retries.

Both render the same Block Kit. Posting pace is off for both (the stand-in does not enforce
Slack's one message per second per channel, which would cap either at 1 event/s per channel).

Each runs twice: with Slack on loopback (a Web API call costs ~1 ms and a new connection
nothing, while every one of the notifier's DynamoDB records costs ~15 ms in moto, which
serves one request at a time: the worst case for the notifier), and with every Slack call
answered ``--slack-latency-ms`` late, as Slack over the internet is. Prints both phases for
each, and the ratios.

Usage: python bench/notifier_e2e.py [--events 200] [--naive-events 100] [--rate 4]
                                    [--latency-events 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import requests
from slack_sdk import WebClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import free_port, use_fake_aws_credentials
from services.notifier.blocks import SlackMessage, render_drift, render_scan_failed
from services.notifier.service import NotifierService, build_notifier
from services.notifier.settings import NotifierSettings
from services.notifier.slack import PostMarker
from services.notifier.views import drift_view_of
from shared.aws import AwsClients
from shared.events import DriftDetected, DriftScanFailed, EventBase, parse_event
from shared.publishing import Publisher
from shared.runtime import Runtime
from shared.settings import AwsSettings
from shared.topology import BootstrapReport, Names, bootstrap
from tests import notifier_samples as samples

use_fake_aws_credentials()

PUBLISH_CONCURRENCY = 8


def start_process(command: list[str], ready_url: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(ready_url, timeout=1)
            return process
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.1)


def make_events(count: int, phase: str) -> list[EventBase]:
    """One message each: a state's drift report or its failed scan (states never repeat,
    or a report would update the earlier one instead of posting)."""
    events: list[EventBase] = []
    for i in range(count):
        state = f"{phase}-{i:04d}"
        if i % 2:
            events.append(samples.scan_failed(state))
        else:
            events.append(samples.drift_detected(state))
    return events


def render_naively(event: EventBase) -> SlackMessage:
    if isinstance(event, DriftDetected):
        return render_drift(drift_view_of(event))
    if isinstance(event, DriftScanFailed):
        return render_scan_failed(event)
    raise TypeError(type(event).__name__)


@dataclass
class Result:
    label: str
    latencies: list[float]
    events_per_second: float

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p99(self) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[98]

    def line(self) -> str:
        return (
            f"  {self.label:<48} latency p50 {self.p50 * 1000:6.0f} ms  p99 "
            f"{self.p99 * 1000:6.0f} ms   burst {self.events_per_second:5.1f} events/s"
        )


async def publish_all(
    publisher: Publisher, events: list[EventBase], rate: float | None = None
) -> dict[str, float]:
    """Publish at ``rate`` events/s (None: as fast as a few in flight allow).

    Returns:
        event id -> epoch seconds when its publish call started.
    """
    published: dict[str, float] = {}
    if rate is not None:
        start = time.monotonic()
        for index, event in enumerate(events):
            await asyncio.sleep(max(0.0, start + index / rate - time.monotonic()))
            published[event.event_id] = time.time()
            await publisher.publish(event)
        return published
    queue: asyncio.Queue[EventBase] = asyncio.Queue()
    for event in events:
        queue.put_nowait(event)

    async def publisher_task() -> None:
        while not queue.empty():
            event = queue.get_nowait()
            published[event.event_id] = time.time()
            await publisher.publish(event)

    await asyncio.gather(*(publisher_task() for _ in range(PUBLISH_CONCURRENCY)))
    return published


def messages_in(standin: str, channel_name: str) -> int:
    state = requests.get(f"{standin}/_standin/state", timeout=10).json()
    return next((c["message_count"] for c in state["channels"] if c["name"] == channel_name), 0)


async def wait_for_messages(standin: str, channel_name: str, count: int) -> None:
    # Polled from a thread: a blocking call here would stall the notifier's event loop.
    deadline = time.monotonic() + 180
    while (seen := await asyncio.to_thread(messages_in, standin, channel_name)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {seen} of {count} messages arrived")
        await asyncio.sleep(0.2)


def posted_times(standin: str, channel: str) -> dict[str, float]:
    """event id -> when the stand-in recorded the chat.postMessage that showed it."""
    calls = requests.get(
        f"{standin}/_standin/calls", params={"method": "chat.postMessage"}, timeout=30
    ).json()["calls"]
    times = {}
    for call in calls:
        if call["arguments"]["channel"] == f"#{channel}" and (call["response"] or {}).get("ok"):
            payload = call["arguments"]["metadata"]["event_payload"]
            times.setdefault(payload["event_id"], call["time"])
    return times


def measure(
    label: str, steady: dict[str, float], started: float, burst: int, visible: dict[str, float]
) -> Result:
    """Latencies of the steady events; burst events/s from the consumer's start to the last
    burst message visible."""
    missing = set(steady) - set(visible)
    if missing:
        raise AssertionError(f"{label}: {len(missing)} events never reached the stand-in")
    latencies = [visible[e] - steady[e] for e in steady]
    burst_done = sorted(t for e, t in visible.items() if e not in steady)
    if len(burst_done) != burst:
        raise AssertionError(f"{label}: {len(burst_done)} of {burst} burst events arrived")
    return Result(label, latencies, burst / (burst_done[-1] - started))


async def topology_for(aws: AwsClients) -> tuple[Names, BootstrapReport]:
    suffix = uuid.uuid4().hex[:6]
    names = Names(prefix=f"bench{suffix}", bucket=f"bench{suffix}")
    return names, await bootstrap(aws, names)


async def fresh_runtime(aws: AwsClients) -> Runtime:
    """A runtime on a topology of its own (its own queue, tables' keys, channel)."""
    names, topology = await topology_for(aws)
    publisher = Publisher(aws.sns, aws.s3, topology.topic_arn, names.bucket)
    return Runtime(aws=aws, names=names, topology=topology, publisher=publisher)


async def start_notifier(
    runtime: Runtime, standin: str, channel: str
) -> tuple[NotifierService, asyncio.Task[None]]:
    """The notifier wired as in production, consuming ``runtime``'s queue."""
    settings = NotifierSettings(
        slack_api_url=f"{standin}/api/",
        post_interval_seconds=0,
        routes=json.dumps({"default": f"#{channel}"}),
    )
    service = await build_notifier(runtime, settings=settings)
    return service, asyncio.create_task(service.run())


async def run_toilkit(aws: AwsClients, standin: str, args: argparse.Namespace) -> Result:
    runtime = await fresh_runtime(aws)
    channel = f"bench-toilkit-{runtime.names.prefix}"
    service, running = await start_notifier(runtime, standin, channel)
    events = make_events(args.latency_events, "steady")
    steady = await publish_all(runtime.publisher, events, args.rate)
    await wait_for_messages(standin, channel, args.latency_events)
    service.stop()
    await running

    # Throughput: the whole burst is queued first, then a fresh notifier drains it.
    runtime = await fresh_runtime(aws)
    await publish_all(runtime.publisher, make_events(args.events, "burst"))
    started = time.time()
    service, running = await start_notifier(runtime, standin, channel)
    await wait_for_messages(standin, channel, args.latency_events + args.events)
    service.stop()
    await running
    visible = await asyncio.to_thread(posted_times, standin, channel)
    return measure("(a) toilkit notifier", steady, started, args.events, visible)


def consume_naively(endpoint: str, queue_url: str, api_url: str, channel: str, count: int) -> None:
    sqs = boto3.client("sqs", endpoint_url=endpoint)
    handled = 0
    while handled < count:
        response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1)
        for message in response.get("Messages", []):
            event = parse_event(message["Body"])
            # A new client per call: a new HTTP connection every time.
            WebClient(token="xoxb-naive", base_url=api_url).chat_postMessage(
                channel=channel,
                metadata=PostMarker(event.event_id, "message").metadata(),
                **render_naively(event).as_arguments(),
            )
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            handled += 1


async def run_naive(
    aws: AwsClients, endpoint: str, standin: str, args: argparse.Namespace
) -> Result:
    names, topology = await topology_for(aws)
    publisher = Publisher(aws.sns, aws.s3, topology.topic_arn, names.bucket)
    channel = f"bench-naive-{names.prefix}"
    queue = topology.queue_urls["notifier"]
    consumer = threading.Thread(
        target=consume_naively,
        args=(endpoint, queue, f"{standin}/api/", f"#{channel}", args.latency_events),
        daemon=True,
    )
    consumer.start()
    steady = await publish_all(publisher, make_events(args.latency_events, "steady"), args.rate)
    await asyncio.to_thread(consumer.join)

    await publish_all(publisher, make_events(args.naive_events, "burst"))
    started = time.time()
    await asyncio.to_thread(
        consume_naively, endpoint, queue, f"{standin}/api/", f"#{channel}", args.naive_events
    )
    visible = await asyncio.to_thread(posted_times, standin, channel)
    label = "(b) naive: 1 at a time, new WebClient per call"
    return measure(label, steady, started, args.naive_events, visible)


async def main(args: argparse.Namespace) -> None:
    moto_port, standin_port = free_port(), free_port()
    endpoint = f"http://127.0.0.1:{moto_port}"
    standin = f"http://127.0.0.1:{standin_port}"
    moto = start_process(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
        f"{endpoint}/moto-api/",
    )
    slack = start_process(
        [sys.executable, "-m", "toilkit.standins.slack", "--port", str(standin_port)],
        f"{standin}/_standin/state",
    )
    results: list[tuple[float, Result, Result]] = []
    try:
        async with AwsClients(AwsSettings(AWS_ENDPOINT_URL=endpoint)) as aws:
            for latency_ms in sorted({0.0, args.slack_latency_ms}):
                await asyncio.to_thread(set_slack_latency, standin, latency_ms)
                print(f"  running (a), Slack +{latency_ms:g} ms ...", file=sys.stderr, flush=True)
                toilkit = await run_toilkit(aws, standin, args)
                print(f"  running (b), Slack +{latency_ms:g} ms ...", file=sys.stderr, flush=True)
                naive = await run_naive(aws, endpoint, standin, args)
                results.append((latency_ms, toilkit, naive))
    finally:
        for process in (moto, slack):
            process.terminate()
            process.wait(10)
    print(
        "notifier e2e: SNS publish -> message on the Slack stand-in (drift reports with 5 "
        f"resources and failed scans; latency at {args.rate:g} events/s over "
        f"{args.latency_events} events, burst of {args.events} (a) / {args.naive_events} (b); "
        "pacing off)"
    )
    for latency_ms, toilkit, naive in results:
        where = (
            "Slack on loopback (no added latency)"
            if latency_ms == 0
            else f"every Slack call answered {latency_ms:g} ms late (Slack over the internet)"
        )
        print(f" {where}:")
        print(toilkit.line())
        print(naive.line())
        print(
            f"  burst throughput a/b = "
            f"{toilkit.events_per_second / naive.events_per_second:.1f}x"
            f"   p50 latency a/b = {toilkit.p50 / naive.p50:.2f}x"
        )


def set_slack_latency(standin: str, latency_ms: float) -> None:
    """Make every Web API call answer ``latency_ms`` late (the stand-in's "slow" fault)."""
    requests.delete(f"{standin}/_standin/faults", timeout=10).raise_for_status()
    if latency_ms > 0:
        rule = {"method": "*", "slow": 1.0, "slow_seconds": latency_ms / 1000}
        requests.post(f"{standin}/_standin/faults", json=rule, timeout=10).raise_for_status()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--naive-events", type=int, default=100)
    parser.add_argument("--latency-events", type=int, default=40)
    parser.add_argument("--rate", type=float, default=4.0, help="events/s in the latency phase")
    parser.add_argument(
        "--slack-latency-ms",
        type=float,
        default=150,
        help="a second round with every Slack call this late (0: loopback only)",
    )
    asyncio.run(main(parser.parse_args()))
