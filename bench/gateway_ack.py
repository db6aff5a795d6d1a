"""Gateway ack latency: signed Slack requests at a steady rate, toilkit against a bare Bolt app.

In one run, every server in its own process (2 shared cores: the load generator must not
share a GIL with what it measures):

  moto (AWS)                the gateway's request ledger, SNS publishing;
  the Slack stand-in        views.open, usergroups, ephemeral replies, trigger ids;
  (t) the toilkit gateway   the real service (door, ledger, Bolt, listeners), built as
                            ``toilkit serve gateway`` builds it, configured by environment;
  (b) a bare Bolt app       AsyncApp on Bolt's own aiohttp server, signature verification
                            on, listeners that only ack: the floor any Bolt app stands on.

Each path gets signed requests at ``--rate`` per second for ``--seconds`` (open loop: a
request is sent on schedule whether or not earlier ones were answered, so a slow server
cannot slow the load down and hide its own latency). Latency is from sending the request
to reading the whole response: what Slack's 3-second timer sees, minus the internet.

Paths: ``/toil run`` (toilkit acks, then opens the modal with the trigger id: each request
gets a fresh trigger from the stand-in first, outside the timed part) and a valid
``view_submission`` of the run modal (validated against the catalog before the ack;
authorization, the SNS publish and the ephemeral reply follow it), and a ``block_suggestion``
of the demo's ``run-patch`` script list (``options_from`` git: answered from the gateway's
memory of the state table, never from git; the list is warmed up first). The baseline
answers the first two bodies.

The queues behind the topic are consumed (received and deleted) as the batch and notifier
services would; left to grow, they make moto's every publish slower.

Printed per path: p50/p95/p99/max, the HTTP statuses, how long the after-ack work took to
finish after the last request, and the CPU milliseconds each process spent per request.

moto runs at niceness 10 by default (``--emulator-nice``): it stands in for AWS, which in
production does not share the gateway's CPU, yet it spends about 35 ms of CPU per submission
(more than the gateway's own ~20 ms), and on two shared cores an equal-priority emulator
makes the gateway's acks wait for the emulator's CPU. At a lower priority the emulator still
does all the work, later: "after-ack work done N s after the last request" shows the backlog.
``--emulator-nice 0`` measures the fully contended case.

Target: toilkit p99 <= 100 ms (Slack allows 3000 ms).

Usage: python bench/gateway_ack.py [--rate 50] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.support import free_port, use_fake_aws_credentials  # noqa: E402
from services.gateway.blocks import ModalContext, run_modal  # noqa: E402
from shared.aws import AwsClients  # noqa: E402
from shared.catalog import load_catalog  # noqa: E402
from shared.settings import AwsSettings  # noqa: E402
from shared.slack.signing import signed_headers  # noqa: E402
from shared.topology import Names, bootstrap  # noqa: E402
from toilkit.standins.slack.app_requests import (  # noqa: E402
    SlackUserRef,
    block_suggestion_payload,
    interaction_body,
    slash_command_body,
    view_submission_payload,
)

SECRET = "bench0signing0secret0000000000000"
ALICE = SlackUserRef("U0ALICE001", "alice")
CHANNEL = "C0BENCH001"
CATALOG = ROOT / "catalog" / "demo.yaml"
COMMAND = "echo-args"
LISTED_COMMAND = "run-patch"

use_fake_aws_credentials()


# =========================================================================== the servers


def serve_toilkit() -> None:
    """Child process: the gateway, wired exactly as ``toilkit serve gateway`` wires it."""
    from services.gateway.service import build_gateway  # noqa: PLC0415
    from shared.runtime import open_runtime  # noqa: PLC0415
    from shared.settings import TopologySettings, load_settings  # noqa: PLC0415
    from shared.worker import stop_on_signals  # noqa: PLC0415

    async def run() -> None:
        async with open_runtime(
            load_settings(AwsSettings), load_settings(TopologySettings)
        ) as runtime:
            service = await build_gateway(runtime)
            stop_on_signals(service.stop)
            await service.run()

    asyncio.run(run())


def serve_baseline(port: int, api_url: str) -> None:
    """Child process: a bare Bolt app that only acks, on Bolt's own aiohttp server."""
    import re  # noqa: PLC0415

    from slack_bolt.app.async_app import AsyncApp  # noqa: PLC0415
    from slack_bolt.context.ack.async_ack import AsyncAck  # noqa: PLC0415
    from slack_sdk.web.async_client import AsyncWebClient  # noqa: PLC0415

    app = AsyncApp(
        client=AsyncWebClient(token="xoxb-bench", base_url=api_url), signing_secret=SECRET
    )

    async def only_ack(ack: AsyncAck) -> None:
        await ack()

    app.command(re.compile(".*"))(only_ack)
    app.view_submission(re.compile(".*"))(only_ack)
    app.start(port=port, path="/slack/events", host="127.0.0.1")


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def start_child(
    name: str, argv: list[str], url: str, env: dict[str, str], *, niceness: int = 0
) -> Child:
    # A file, not a pipe: a pipe nobody reads fills up and stalls the child mid-benchmark.
    log = Path(
        tempfile.mkstemp(prefix=f"gateway-bench-{name.replace(' ', '-')}-", suffix=".log")[1]
    )
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*(["nice", "-n", str(niceness)] if niceness else []), sys.executable, *argv],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=sink,
            cwd=ROOT,
        )
    return Child(name, process, url, log)


async def wait_ready(child: Child, probe: str, http: aiohttp.ClientSession) -> None:
    deadline = time.monotonic() + 60
    while True:
        if child.process.poll() is not None:
            raise RuntimeError(f"{child.name} exited early:\n{child.log_tail()}")
        try:
            async with http.get(child.url + probe) as response:
                if response.status < 500:
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{child.name} did not start within 60 s")
        await asyncio.sleep(0.2)


def cpu_seconds(child: Child) -> float:
    """User + system CPU a child process has used (Linux /proc)."""
    try:
        fields = Path(f"/proc/{child.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop_children(children: list[Child]) -> None:
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.process.wait(15)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait(5)


# =========================================================================== the load


@dataclass
class Path_:
    label: str
    url: str
    make_body: Callable[[int], Awaitable[bytes]]
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    failures: int = 0
    drained_after_s: float = 0.0
    #: CPU milliseconds per request, by process (measured, after-ack work included).
    cpu_ms: dict[str, float] = field(default_factory=dict)


class Requests:
    """Request bodies for each path; every body is unique (the ledger refuses replays)."""

    def __init__(self, http: aiohttp.ClientSession, standin_url: str) -> None:
        self.http = http
        self.standin_url = standin_url
        self.run_id = uuid.uuid4().hex[:6]
        self.sent = 0
        catalog = load_catalog(CATALOG)
        self.view = run_modal(catalog, ModalContext(channel_id=CHANNEL, command=COMMAND))
        self.patch_view = run_modal(
            catalog, ModalContext(channel_id=CHANNEL, command=LISTED_COMMAND)
        ) | {"id": "VBENCHPATCH1", "hash": "1.bench"}

    async def slash_run(self, n: int) -> bytes:
        async with self.http.post(
            f"{self.standin_url}/_standin/triggers", json={"user_id": ALICE.id}
        ) as response:
            trigger_id = (await response.json())["trigger_id"]
        return slash_command_body("run", user=ALICE, channel_id=CHANNEL, trigger_id=trigger_id)

    async def submission(self, _: int) -> bytes:
        # Numbered across warm-up and measurement: a repeated body would be a replay.
        self.sent += 1
        n = self.sent
        view = self.view | {"id": f"VB{self.run_id}{n:08d}", "hash": f"{n}.bench"}
        answers = {
            "environment": "staging",
            "param:text": f"hello {n}; $(whoami)",
            "reason": f"benchmark {self.run_id} request {n}",
        }
        return interaction_body(
            view_submission_payload(view, answers, user=ALICE, trigger_id=f"{n}.1.bench")
        )

    async def suggestion(self, n: int) -> bytes:
        # The same text typed twice is the same body: Slack sends it so, and the gateway
        # never takes a suggestion for a replay.
        typed = ("", "fix", "reset", "order")[n % 4]
        return interaction_body(
            block_suggestion_payload(self.patch_view, "param:script", typed, user=ALICE)
        )


async def drive(path: Path_, http: aiohttp.ClientSession, rate: float, seconds: float) -> None:
    """Send ``rate`` requests per second for ``seconds``, on schedule (open loop)."""
    total = int(rate * seconds)
    started = time.perf_counter()

    async def one(n: int) -> None:
        body = await path.make_body(n)
        headers = signed_headers(SECRET, body)
        sent = time.perf_counter()
        try:
            async with http.post(path.url, data=body, headers=headers) as response:
                await response.read()
                status = response.status
        except aiohttp.ClientError:
            path.failures += 1
            return
        path.latencies_ms.append((time.perf_counter() - sent) * 1000)
        path.statuses[status] = path.statuses.get(status, 0) + 1

    tasks = []
    for n in range(total):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n)))
    await asyncio.gather(*tasks)


async def settle(http: aiohttp.ClientSession, standin_url: str, quiet_for: float = 1.0) -> float:
    """Seconds until the stand-in stops receiving calls (after-ack work has drained)."""
    started = time.perf_counter()
    last_count, last_change = -1, started
    while time.perf_counter() - started < 300:
        async with http.get(f"{standin_url}/_standin/state") as response:
            count = (await response.json())["call_count"]
        now = time.perf_counter()
        if count != last_count:
            last_count, last_change = count, now
        elif now - last_change >= quiet_for:
            return last_change - started
        await asyncio.sleep(0.1)
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


def report(paths: list[Path_], rate: float, seconds: float) -> None:
    print(f"\nGateway ack latency: {rate:g} requests/s for {seconds:g} s per path (ms)")
    print(f"(machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end)")
    print(f"{'path':<44}{'n':>6}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}  statuses")
    for path in paths:
        values = path.latencies_ms
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(path.statuses.items()))
        if path.failures:
            statuses += f", connection failures: {path.failures}"
        if path.drained_after_s >= 0.5:
            statuses += f"; after-ack work done {path.drained_after_s:.1f} s after the last request"
        cpu = ", ".join(f"{name} {ms:.1f}" for name, ms in path.cpu_ms.items() if ms >= 0.05)
        statuses += f"\n{'':<44}CPU ms per request: {cpu}"
        print(
            f"{path.label:<44}{len(values):>6}{percentile(values, 50):>8.1f}"
            f"{percentile(values, 95):>8.1f}{percentile(values, 99):>8.1f}"
            f"{max(values, default=float('nan')):>8.1f}  {statuses}"
        )
    toilkit_p99 = max(percentile(p.latencies_ms, 99) for p in paths if p.label.startswith("(t)"))
    verdict = "met" if toilkit_p99 <= 100 else "NOT met"
    print(f"\ntoilkit p99 (worst path) = {toilkit_p99:.1f} ms; target <= 100 ms: {verdict}")


async def consume(aws: AwsClients, queue_url: str) -> None:
    """Stand in for a consuming service: receive and delete what arrives.

    Without consumers the queues grow, and moto's cost per published message grows with
    them (SNS delivery into a deep queue is O(depth) there).
    """
    while True:
        response = await aws.sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        messages = response.get("Messages", [])
        if messages:
            await aws.sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )


async def cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def ephemeral_count(http: aiohttp.ClientSession, standin_url: str) -> int:
    async with http.get(
        f"{standin_url}/_standin/calls", params={"method": "chat.postEphemeral"}
    ) as response:
        return len((await response.json())["calls"])


async def measure(
    path: Path_,
    http: aiohttp.ClientSession,
    args: argparse.Namespace,
    children: list[Child],
    standin_url: str,
) -> None:
    # Warm up (connections, Bolt's one auth.test, the group cache), untimed.
    await drive(Path_(path.label, path.url, path.make_body), http, args.rate, 1)
    print(f"  measuring {path.label} ...", file=sys.stderr, flush=True)
    before = {c.name: cpu_seconds(c) for c in children}
    await drive(path, http, args.rate, args.seconds)
    # The next path starts on a quiet machine: this one's after-ack work (views,
    # publishing, replies) has finished.
    path.drained_after_s = await settle(http, standin_url)
    sent = max(1, len(path.latencies_ms))
    path.cpu_ms = {c.name: (cpu_seconds(c) - before[c.name]) * 1000 / sent for c in children}


async def warm_list(http: aiohttp.ClientSession, path: Path_, bodies: Requests) -> None:
    """Ask for the listed choices until the gateway has them (its first fetch runs behind)."""
    for _ in range(600):
        body = await bodies.suggestion(1)
        async with http.post(path.url, data=body, headers=signed_headers(SECRET, body)) as answer:
            if "fix_order_totals" in await answer.text():
                return
        await asyncio.sleep(0.1)
    raise RuntimeError("the gateway never listed the demo's patch scripts")


async def main(args: argparse.Namespace) -> None:
    moto_port, standin_port, gateway_port, baseline_port = (free_port() for _ in range(4))
    moto_url = f"http://127.0.0.1:{moto_port}"
    standin_url = f"http://127.0.0.1:{standin_port}"
    api_url = f"{standin_url}/api/"
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    children = [
        start_child(
            "moto",
            ["-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
            moto_url,
            {},
            niceness=args.emulator_nice,
        ),
        start_child(
            "stand-in",
            ["-m", "toilkit.standins.slack", "--port", str(standin_port)],
            standin_url,
            {},
        ),
    ]
    try:
        async with contextlib.AsyncExitStack() as stack:
            http = await stack.enter_async_context(
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))
            )
            await wait_ready(children[0], "/moto-api/", http)
            await wait_ready(children[1], "/_standin/state", http)
            aws = await stack.enter_async_context(
                AwsClients(AwsSettings(AWS_ENDPOINT_URL=moto_url))
            )
            topology = await bootstrap(aws, Names(prefix=prefix, bucket=f"{prefix}-artifacts"))
            for queue_url in topology.queue_urls.values():
                stack.push_async_callback(cancelled, asyncio.create_task(consume(aws, queue_url)))
            gateway = start_child(
                "toilkit gateway",
                [__file__, "--serve", "toilkit"],
                f"http://127.0.0.1:{gateway_port}",
                {
                    "AWS_ENDPOINT_URL": moto_url,
                    "TOILKIT_NAME_PREFIX": prefix,
                    "TOILKIT_GATEWAY_SLACK_API_URL": api_url,
                    "TOILKIT_GATEWAY_PORT": str(gateway_port),
                    "TOILKIT_CATALOG_PATH": str(CATALOG),
                    "SLACK_SIGNING_SECRET": SECRET,
                },
            )
            baseline = start_child(
                "bare Bolt app",
                [
                    __file__,
                    "--serve",
                    "baseline",
                    "--port",
                    str(baseline_port),
                    "--api-url",
                    api_url,
                ],
                f"http://127.0.0.1:{baseline_port}",
                {},
            )
            children += [gateway, baseline]
            await wait_ready(gateway, "/healthz", http)
            await wait_ready(baseline, "/slack/events", http)
            bodies = Requests(http, standin_url)
            events = "/slack/events"
            slash = Path_(
                "(t) toilkit: /toil run (ack, then views.open)",
                gateway.url + events,
                bodies.slash_run,
            )
            submission = Path_(
                "(t) toilkit: view_submission (valid run)", gateway.url + events, bodies.submission
            )
            baselines = [
                Path_(
                    "(b) bare Bolt, ack only: slash command",
                    baseline.url + events,
                    bodies.slash_run,
                ),
                Path_(
                    "(b) bare Bolt, ack only: view_submission",
                    baseline.url + events,
                    bodies.submission,
                ),
            ]
            await measure(slash, http, args, children, standin_url)
            confirmed_before, submitted_before = (
                await ephemeral_count(http, standin_url),
                bodies.sent,
            )
            await measure(submission, http, args, children, standin_url)
            confirmed = await ephemeral_count(http, standin_url) - confirmed_before
            submitted = bodies.sent - submitted_before
            suggestion = Path_(
                "(t) toilkit: block_suggestion (listed choice)",
                gateway.url + events,
                bodies.suggestion,
            )
            await warm_list(http, suggestion, bodies)
            await measure(suggestion, http, args, children, standin_url)
            for path in baselines:
                await measure(path, http, args, children, standin_url)
            report([slash, submission, suggestion, *baselines], args.rate, args.seconds)
            print(f"moto (standing in for AWS) ran at niceness {args.emulator_nice}")
            print(
                f"after-ack work finished for {confirmed} of {submitted} toilkit submissions "
                "(their ephemeral confirmations reached the stand-in)"
            )
            for child in (gateway, baseline):
                problems = [
                    line
                    for line in child.log.read_text(errors="replace").splitlines()
                    if "WARNING" in line or "ERROR" in line
                ]
                if problems:
                    print(
                        f"{child.name} logged {len(problems)} warnings/errors, e.g.: {problems[0]}"
                    )
    finally:
        stop_children(children)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50, help="requests per second per path")
    parser.add_argument("--seconds", type=float, default=20, help="seconds per path")
    parser.add_argument(
        "--emulator-nice",
        type=int,
        default=10,
        help="niceness of the moto process (0: compete with the gateway for the CPU as equals)",
    )
    parser.add_argument("--serve", choices=["toilkit", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--api-url", help=argparse.SUPPRESS)
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if options.serve == "toilkit":
        serve_toilkit()
    elif options.serve == "baseline":
        serve_baseline(options.port, options.api_url)
    else:
        asyncio.run(main(options))
