"""A batch service on moto for the tests: the demo catalog (plus a few test commands),
the real worker over SNS/SQS, and a way to read what reached the notifier's queue."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from services.batch.runners.base import RunSpec
from services.batch.service import BatchService, build_batch
from services.batch.settings import BatchSettings
from shared.aws import AwsClients
from shared.catalog import RunnerSettings
from shared.events import (
    Actor,
    BatchRequested,
    EventBase,
    RunParameter,
    new_event_id,
    parse_event,
)
from shared.publishing import Publisher
from shared.runtime import Runtime
from shared.settings import AwsSettings, WorkerSettings
from shared.state_table.runs import RunRecord
from shared.topology import BootstrapReport, Names, bootstrap
from tests.support import DELIVERY_WAIT_SECONDS, batch_requested, receive_all

REPO = Path(__file__).resolve().parents[2]
DEMO_CATALOG = REPO / "catalog" / "demo.yaml"

ALICE = Actor(slack_user_id="U0ALICE001", name="alice")  # in @sre
BOB = Actor(slack_user_id="U0BOB00002", name="bob")  # in @sre
CAROL = Actor(slack_user_id="U0CAROL003", name="carol")  # allowed, not an approver
DAVE = Actor(slack_user_id="U0DAVE0004", name="dave")  # nobody

FAST_WORKER = WorkerSettings(
    # Under asynchronous SNS delivery (LocalStack), a burst's last receive long-polls for
    # a request published a moment before, instead of finding the queue empty.
    wait_time_seconds=DELIVERY_WAIT_SECONDS,
    visibility_timeout=5,
    retry_base_seconds=0,
    handler_timeout=20,
    shutdown_grace=5,
)

#: Commands only the tests need, next to the demo's.
TEST_COMMANDS: list[dict[str, Any]] = [
    {
        "name": "stubborn",
        "description": "Ignores SIGTERM, so only SIGKILL stops it.",
        "argv": [
            "python3",
            "-c",
            "import signal, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ignoring SIGTERM', flush=True)\n"
            "time.sleep(60)\n",
        ],
        "timeout_seconds": 1,
    },
    {
        "name": "no-such-program",
        "description": "Names a program that does not exist.",
        "argv": ["toilkit-test-no-such-program"],
    },
]


class Clock:
    """Real time plus an offset the test moves (approval expiry without waiting)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


def catalog_for_tests(db_path: Path, *, reindex_timeout: int = 120) -> dict[str, Any]:
    """The demo catalog with its scripts' folder absolute and the test commands added."""
    data: dict[str, Any] = yaml.safe_load(DEMO_CATALOG.read_text())
    environments = data["x-environments"]
    for policy in environments.values():
        policy["runner"] = {
            "kind": "local",
            "workdir": str(DEMO_CATALOG.parent),
            "env": {"TOILKIT_DEMO_DB": str(db_path)},
        }
    for command in data["commands"]:
        command["environments"] = {name: environments[name] for name in command["environments"]}
        if command["name"] == "reindex-search":
            command["timeout_seconds"] = reindex_timeout
        if command["name"] == "run-patch":
            # Its scripts are listed from this repository's git (relative to the demo file).
            command["parameters"][0]["options_from"]["repository"] = str(REPO)
    for command in copy.deepcopy(TEST_COMMANDS):
        command["environments"] = {"staging": environments["staging"]}
        data["commands"].append(command)
    del data["x-environments"]
    return data


@dataclass
class BatchHarness:
    service: BatchService
    publisher: Publisher
    aws: AwsClients
    topology: BootstrapReport
    clock: Clock
    log_dir: Path
    seen: list[EventBase] = field(default_factory=list)

    @property
    def runs(self) -> Any:
        return self.service.context.runs

    async def request(
        self,
        command: str,
        environment: str = "staging",
        *,
        by: Actor = ALICE,
        run_id: str | None = None,
        event_id: str | None = None,
        **parameters: str | None,
    ) -> BatchRequested:
        event = batch_requested(
            command,
            environment,
            by=by,
            run_id=run_id,
            event_id=event_id,
            parameters=tuple(RunParameter(name=k, value=v) for k, v in parameters.items()),
        )
        await self.publisher.publish(event)
        return event

    async def publish(self, event: EventBase) -> None:
        await self.publisher.publish(event)

    async def handle(self, event: EventBase) -> None:
        """Publish ``event``, then drain the queue (handle it, wait for what it started)."""
        await self.publish(event)
        await self.drain()

    async def handle_queue(self) -> None:
        """Handle everything on the batch queue (runs it starts keep running)."""
        await self.service.worker.run(burst=True)

    async def drain(self) -> None:
        """Handle everything on the batch queue, then wait for the runs it started."""
        await self.handle_queue()
        await self.service.supervisor.wait_idle()

    async def outcomes(self, run_id: str | None = None) -> list[EventBase]:
        """The events that reached the notifier's queue so far (kept, oldest first)."""
        url = self.topology.queue_urls["notifier"]
        messages = await receive_all(self.aws.sqs, url, rounds=20)
        for message in messages:
            self.seen.append(parse_event(message["Body"]))
            await self.aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return [e for e in self.seen if run_id is None or getattr(e, "run_id", None) == run_id]

    async def last_outcome(self, run_id: str) -> EventBase:
        """The latest event about ``run_id`` that reached the notifier's queue."""
        return (await self.outcomes(run_id))[-1]

    async def outcome_types(self, run_id: str) -> list[str]:
        return [getattr(e, "type") for e in await self.outcomes(run_id)]  # noqa: B009

    def log_of(self, run_id: str) -> str:
        return (self.log_dir / f"{run_id}.log").read_text(encoding="utf-8")


def run_record(environment: str, **fields: Any) -> RunRecord:
    """A run of ``echo-args`` Alice requested just now, with fresh ids; ``fields`` set the rest.

    For tests that put a run in the store as the service would have left it (claimed,
    started elsewhere, owned by a process that is gone) instead of requesting one.
    """
    values: dict[str, Any] = {
        "run_id": f"run-{new_event_id()[:8]}",
        "request_event_id": new_event_id(),
        "command": "echo-args",
        "environment": environment,
        "requested_by": ALICE,
        "requested_at": datetime.now(UTC),
    }
    return RunRecord(**(values | fields))


def run_spec(
    settings: RunnerSettings,
    *argv: str,
    command: str = "echo-args",
    environment: str = "aws",
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
    run_id: str | None = None,
    request_event_id: str | None = None,
    **fields: Any,
) -> RunSpec:
    """What a runner gets for one run of ``command`` (fresh ids unless given); ``fields``
    set the rest (``workdir``, ``secrets``)."""
    return RunSpec(
        run_id=run_id or f"run-{uuid.uuid4().hex[:8]}",
        request_event_id=request_event_id or str(uuid.uuid4()),
        command=command,
        environment=environment,
        argv=argv,
        env=env or {},
        timeout_seconds=timeout,
        settings=settings,
        **fields,
    )


async def bootstrap_once(endpoint: str) -> tuple[Names, BootstrapReport]:
    """A topology of its own (for a module's tests to share)."""
    prefix = f"b{uuid.uuid4().hex[:10]}"
    names = Names(prefix=prefix, bucket=f"{prefix}-artifacts")
    async with AwsClients(AwsSettings(AWS_ENDPOINT_URL=endpoint, AWS_REGION="us-east-1")) as aws:
        return names, await bootstrap(aws, names)


async def make_harness(
    aws: AwsClients,
    names: Names,
    topology: BootstrapReport,
    tmp_path: Path,
    *,
    reindex_timeout: int = 120,
    kill_grace: float = 1.0,
    customize: Callable[[dict[str, Any]], None] | None = None,
) -> BatchHarness:
    """A batch service on the given topology; ``customize`` may edit the catalog data."""
    data = catalog_for_tests(tmp_path / "orders.sqlite", reindex_timeout=reindex_timeout)
    if customize is not None:
        customize(data)
    catalog_file = tmp_path / "catalog.yaml"
    catalog_file.write_text(yaml.safe_dump(data, sort_keys=False))
    publisher = Publisher(aws.sns, aws.s3, topology.topic_arn, names.bucket)
    runtime = Runtime(aws=aws, names=names, topology=topology, publisher=publisher)
    clock = Clock()
    settings = BatchSettings(
        catalog_path=catalog_file,
        worker=FAST_WORKER,
        log_dir=tmp_path / "logs",
        kill_grace_seconds=kill_grace,
        poll_initial_seconds=0.05,
        poll_max_seconds=0.2,
        # A test decides when a schedule ticks (the demo catalog has one).
        schedules_enabled=False,
    )
    service = await build_batch(runtime, settings, clock=clock)
    return BatchHarness(
        service=service,
        publisher=publisher,
        aws=aws,
        topology=topology,
        clock=clock,
        log_dir=settings.log_dir,
    )


def echo_lines(log: str) -> dict[str, str | None]:
    """What ``echo_args.py`` printed: ``argv[1]`` / ``env ECHO_VALUE`` -> decoded value."""
    found: dict[str, str | None] = {}
    for line in log.splitlines():
        for prefix in ("argv[", "env ECHO_VALUE"):
            if line.startswith(prefix) and " = " in line:
                key, _, value = line.partition(" = ")
                found[key] = json.loads(value)
    return found
