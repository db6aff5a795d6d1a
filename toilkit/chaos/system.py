"""One running toilkit for a chaos scenario: emulator, gate, Slack stand-in, services.

:class:`ChaosSystem` starts them, publishes outcome events, injects faults (kills, Slack
fault rules, the AWS gate) and counts what reached Slack against what was published.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp

from shared.aws import AwsClients
from shared.events import DriftScanFailed, EventBase, StateRef
from shared.publishing import Publisher
from shared.settings import AwsSettings
from shared.topology import BootstrapReport, Names, bootstrap
from toilkit.chaos.processes import Process, TcpGate, free_port, python_process, wait_for_port
from toilkit.embedded import use_dummy_credentials

#: The services the harness can run (``toilkit serve <name>``).
SERVICES = ("gateway", "detector", "batch", "notifier")

#: The gateway's signing secret in a chaos run.
SIGNING_SECRET = "chaos-signing-secret"

#: Settings every service process gets: short polls and timeouts, so faults show quickly.
SERVICE_ENV = {
    "TOILKIT_AWS_CONNECT_TIMEOUT": "2",
    "TOILKIT_AWS_READ_TIMEOUT": "10",
    "TOILKIT_NOTIFIER_SLACK_TIMEOUT_SECONDS": "2",
    "TOILKIT_NOTIFIER_POST_INTERVAL_SECONDS": "0",
    "TOILKIT_NOTIFIER_RETRIES__SETTLE_SECONDS": "5",
    "TOILKIT_NOTIFIER_WORKER__WAIT_TIME_SECONDS": "1",
    "TOILKIT_NOTIFIER_WORKER__VISIBILITY_TIMEOUT": "10",
    "TOILKIT_NOTIFIER_WORKER__HANDLER_TIMEOUT": "20",
    "TOILKIT_NOTIFIER_WORKER__RETRY_BASE_SECONDS": "1",
    "TOILKIT_NOTIFIER_WORKER__RETRY_MAX_SECONDS": "20",
    "TOILKIT_NOTIFIER_WORKER__SHUTDOWN_GRACE": "5",
    **{
        f"TOILKIT_{service}_WORKER__{name}": value
        for service in ("DETECTOR", "BATCH")
        for name, value in (
            ("WAIT_TIME_SECONDS", "1"),
            ("VISIBILITY_TIMEOUT", "10"),
            ("HANDLER_TIMEOUT", "60"),
            ("RETRY_BASE_SECONDS", "1"),
            ("RETRY_MAX_SECONDS", "20"),
            ("SHUTDOWN_GRACE", "5"),
        )
    },
    "TOILKIT_DETECTOR_WORKER__CONCURRENCY": "3",
    "TOILKIT_DETECTOR_SCHEDULER": "false",
    "TOILKIT_BATCH_KILL_GRACE_SECONDS": "2",
}


class ChaosSystem:
    """Processes for one scenario, started by :meth:`start` and stopped by :meth:`stop`."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        prefix = f"chaos{uuid.uuid4().hex[:6]}"
        self.names = Names(prefix=prefix, bucket=f"{prefix}-artifacts")
        self.emulator_port = free_port()
        self.slack_port = free_port()
        self.gateway_port = free_port()
        self.gate = TcpGate(self.emulator_port)
        self.processes: dict[str, Process] = {}
        self.published: list[str] = []
        self.exits: dict[str, int] = {}  # services that exited by themselves, restarted
        self.service_env: dict[str, str] = {}  # a scenario's own settings (catalog, config)
        self._supervisor: asyncio.Task[None] | None = None
        self._stack = AsyncExitStack()
        self.aws: AwsClients
        self.topology: BootstrapReport

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    @property
    def slack_url(self) -> str:
        return f"http://127.0.0.1:{self.slack_port}"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        }

    async def start(self, services: Iterable[str] = ("notifier",)) -> None:
        use_dummy_credentials()
        env = self._env()
        emulator = python_process(
            "emulator", ["-m", "toilkit.chaos.emulator", str(self.emulator_port)], env, self.log_dir
        )
        slack = python_process(
            "slack",
            ["-m", "toilkit.standins.slack", "--port", str(self.slack_port)],
            env,
            self.log_dir,
        )
        for process in (emulator, slack):
            self.processes[process.name] = process
            process.start()
        await asyncio.gather(wait_for_port(self.emulator_port), wait_for_port(self.slack_port))
        await self.gate.open()
        self.aws = await self._stack.enter_async_context(
            AwsClients(AwsSettings(AWS_ENDPOINT_URL=self.emulator_url))
        )
        self.topology = await bootstrap(self.aws, self.names)
        self.publisher = Publisher(
            self.aws.sns, self.aws.s3, self.topology.topic_arn, self.names.bucket
        )
        for service in services:
            self.add_service(service)
        await asyncio.gather(*(self.wait_ready(service) for service in services))
        self._supervisor = asyncio.create_task(self._restart_exited())

    async def wait_ready(self, service: str, within: float = 120) -> None:
        """Until ``service`` logs that it is consuming (the worker's first line)."""
        if service == "gateway":
            await wait_for_port(self.gateway_port, within)
            return
        process = self.processes[service]
        marker = f"--- start {process.starts} "

        def consuming() -> bool:
            text = process.log_path.read_text()
            return marker in text and ": consuming " in text.rsplit(marker, 1)[1]

        if not await until(consuming, within, every=0.2):
            raise TimeoutError(f"{service} did not start consuming within {within}s")

    async def _restart_exited(self) -> None:
        """Restart a service that exited by itself, as ``restart: unless-stopped`` does in
        docker-compose.yml (a service that cannot reach AWS at start-up exits)."""
        while True:
            await asyncio.sleep(1)
            for name, process in self.processes.items():
                if name in SERVICES and not process.running:
                    self.exits[name] = self.exits.get(name, 0) + 1
                    process.start()

    def add_service(self, service: str) -> Process:
        env = {
            **self._env(),
            **SERVICE_ENV,
            "AWS_ENDPOINT_URL": self.gate.url,
            "TOILKIT_NAME_PREFIX": self.names.prefix,
            "TOILKIT_BUCKET": self.names.bucket,
            "TOILKIT_NOTIFIER_SLACK_API_URL": f"{self.slack_url}/api/",
            "TOILKIT_GATEWAY_SLACK_API_URL": f"{self.slack_url}/api/",
            "TOILKIT_GATEWAY_SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "TOILKIT_GATEWAY_PORT": str(self.gateway_port),
            **self.service_env,
        }
        process = python_process(service, ["-m", "toilkit", "serve", service], env, self.log_dir)
        self.processes[service] = process
        process.start()
        return process

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
        for name in reversed(list(self.processes)):
            await asyncio.to_thread(self.processes[name].stop)
        await self.gate.close()
        await self._stack.aclose()

    # ------------------------------------------------------------------ load

    async def publish_outcomes(self, count: int, *, per_second: float | None = None) -> None:
        """Publish ``count`` outcome events the notifier posts one message each for."""
        started = time.monotonic()
        for n in range(count):
            event = scan_failed(n)
            await self.publish(event)
            if per_second:
                ahead = started + (n + 1) / per_second - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)

    async def publish(self, event: EventBase) -> None:
        await self.publisher.publish(event)
        self.published.append(event.event_id)

    async def set_slack_faults(self, spec: dict[str, Any] | None) -> None:
        async with aiohttp.ClientSession() as session:
            if spec is None:
                await session.delete(f"{self.slack_url}/_standin/faults")
            else:
                await session.post(f"{self.slack_url}/_standin/faults", json=spec)

    # ------------------------------------------------------------------ counting

    async def slack_messages(self) -> list[dict[str, Any]]:
        """Every message in the stand-in, top-level ones and thread replies."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.slack_url}/_standin/messages") as response,
        ):
            body = await response.json()
        return [
            one
            for channel in body.get("channels", [])
            for message in channel.get("messages", [])
            for one in (message, *message.get("replies", []))
        ]

    async def posted(self) -> Counter[str]:
        """How many Slack messages carry each event id (top-level and thread replies)."""
        counts: Counter[str] = Counter()
        for message in await self.slack_messages():
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if "event_id" in payload:
                counts[f"{payload['event_id']}"] += 1
        return counts

    async def queue_busy(self, consumer: str = "notifier") -> int:
        """Messages visible or in flight on ``consumer``'s queue."""
        return await self._messages_in(self.topology.queue_urls[consumer])

    async def dlq_depth(self, consumer: str = "notifier") -> int:
        """Messages visible or in flight on ``consumer``'s dead-letter queue."""
        return await self._messages_in(self.topology.dlq_urls[consumer])

    async def _messages_in(self, queue_url: str) -> int:
        """Messages visible or in flight on the queue at ``queue_url``."""
        response = await self.aws.sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
        attributes = response.get("Attributes", {})
        return int(attributes.get("ApproximateNumberOfMessages", "0")) + int(
            attributes.get("ApproximateNumberOfMessagesNotVisible", "0")
        )

    async def wait_quiet(
        self,
        within: float,
        consumer: str = "notifier",
        *,
        expected: Iterable[str] | None = None,
        upstream: Iterable[str] = (),
    ) -> None:
        """Until every ``expected`` event id (default: every published event) is in Slack
        and the queues (``consumer``'s and ``upstream``'s) are empty, then 3 s more (a
        late duplicate would show then), or ``within`` seconds."""
        ids = list(self.published if expected is None else expected)
        queues = (*upstream, consumer)

        async def quiet() -> bool:
            posted = await self.posted()
            if not all(posted[e] for e in ids):
                return False
            busy = await asyncio.gather(*(self.queue_busy(q) for q in queues))
            return not any(busy)

        await until(quiet, within)
        await asyncio.sleep(3)

    async def tally(self, expected: Iterable[str] | None = None) -> tuple[int, int]:
        """(lost, duplicated) of ``expected`` (default: everything published)."""
        posted = await self.posted()
        ids = list(self.published if expected is None else expected)
        lost = sum(1 for e in ids if posted[e] == 0)
        duplicated = sum(posted[e] - 1 for e in ids if posted[e] > 1)
        return lost, duplicated


async def until(
    check: Callable[[], bool | Awaitable[bool]], within: float, every: float = 1.0
) -> bool:
    """Poll ``check`` until it holds (True) or ``within`` seconds pass (False)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if await result if inspect.isawaitable(result) else result:
            return True
        await asyncio.sleep(every)
    return False


def scan_failed(n: int) -> DriftScanFailed:
    """An outcome event the notifier posts as one message."""
    return DriftScanFailed(
        correlation_id=f"chaos-{uuid.uuid4().hex[:10]}",
        source="chaos",
        state=StateRef(name=f"state-{n}", path=f"infra/state-{n}"),
        phase="plan",
        reason=f"chaos event {n}",
        exit_code=1,
    )


def poison_body(n: int) -> str:
    """A body that is not a valid event (its required fields missing): poison for any consumer."""
    return json.dumps({"type": "DriftScanFailed", "event_id": f"poison-{n}", "bogus": True})
