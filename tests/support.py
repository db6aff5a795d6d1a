"""Small helpers the tests share: polling with a deadline, queue inspection, a TCP gate."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from shared.aws import AwsClients
from shared.events import Actor, BatchRequested, new_event_id
from shared.publishing import Publisher
from shared.runtime import Runtime
from shared.settings import WorkerSettings
from shared.topology import BootstrapReport, Names

T = TypeVar("T")

#: The repository root: where ``python -m tests...`` and ``python -m toilkit`` run from.
REPO = Path(__file__).resolve().parents[1]

#: moto delivers an SNS message to the subscribed queues before Publish returns; LocalStack
#: (``TOILKIT_TEST_AWS_ENDPOINT``) and AWS deliver in the background, so a read right after a
#: publish long-polls this long for what is still on its way.
DELIVERY_WAIT_SECONDS = 2 if os.environ.get("TOILKIT_TEST_AWS_ENDPOINT") else 0

#: A worker for tests: short polls, retries at once, generous timeouts.
FAST_WORKER = WorkerSettings(
    wait_time_seconds=1,
    visibility_timeout=20,
    retry_base_seconds=0,
    handler_timeout=60,
    shutdown_grace=5,
)


def spawn_module(
    module: str, env: Mapping[str, str], *args: str, capture: bool = True
) -> subprocess.Popen[str]:
    """``python -m module *args`` from the repository root, in its own process.

    With ``capture`` its stdout and stderr are piped (read them with ``communicate``);
    otherwise they are dropped.
    """
    stream = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        env=dict(env),
        cwd=REPO,
        stdout=stream,
        stderr=stream,
        text=True,
    )


async def eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = 30, every: float = 0.1
) -> T:
    """Poll ``check`` until it returns a truthy value (returned) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(every)


async def queue_depth(sqs: Any, url: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    attrs = (
        await sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


async def receive_all(sqs: Any, url: str, *, rounds: int = 5) -> list[dict[str, Any]]:
    """Receive what is visible now, or delivered within ``DELIVERY_WAIT_SECONDS`` (without
    deleting; hidden for 30 s)."""
    out: list[dict[str, Any]] = []
    for _ in range(rounds):
        response = await sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=DELIVERY_WAIT_SECONDS,
            VisibilityTimeout=30,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        batch = response.get("Messages", [])
        if not batch:
            break
        out.extend(batch)
    return out


class SteppingClock:
    """A scheduler's clock: its time moves, and its sleepers wake, only when the test says so."""

    def __init__(self, start: datetime) -> None:
        self.current = start
        self.moved = asyncio.Event()
        self.sleeping = 0

    def now(self) -> datetime:
        return self.current

    async def sleep_until(self, moment: datetime) -> None:
        self.sleeping += 1
        try:
            while self.current < moment:
                self.moved.clear()
                await self.moved.wait()
        finally:
            self.sleeping -= 1

    def advance_to(self, moment: datetime) -> None:
        self.current = moment
        self.moved.set()


class TcpGate:
    """A loopback TCP forwarder that can be closed (connection refused) and reopened.

    Stands between a client and the emulator to play an outage: while closed nothing
    listens on its port; reopened, it forwards to ``target`` again.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        for coro in (pipe(reader, up_writer), pipe(up_reader, writer)):
            task = asyncio.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


def texts_of(node: Any) -> Iterator[str]:
    """Every piece of text in a Slack message's blocks (or any part of them), in reading
    order."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield value
            else:
                yield from texts_of(value)
    elif isinstance(node, list):
        for item in node:
            yield from texts_of(item)


def runtime_over(aws: AwsClients, names: Names, topology: BootstrapReport) -> Runtime:
    """The runtime a service gets, over a topology the test bootstrapped."""
    return Runtime(
        aws=aws,
        names=names,
        topology=topology,
        publisher=Publisher(aws.sns, aws.s3, topology.topic_arn, names.bucket),
    )


def batch_requested(
    command: str,
    environment: str = "staging",
    *,
    by: Actor,
    run_id: str | None = None,
    event_id: str | None = None,
    **fields: Any,
) -> BatchRequested:
    """A request from the tests (source ``test``) for a run of ``command``, ``run_id``
    (fresh unless given) also its correlation id; ``fields`` set the rest (parameters,
    reason, occurred_at) or override (source)."""
    run = run_id or f"run-{new_event_id()[:8]}"
    values: dict[str, Any] = {
        "event_id": event_id or new_event_id(),
        "correlation_id": run,
        "source": "test",
        "run_id": run,
        "command": command,
        "environment": environment,
        "requested_by": by,
    }
    return BatchRequested(**(values | fields))
