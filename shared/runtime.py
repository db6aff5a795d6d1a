"""What a running service is handed at start-up: clients, names, a publisher, a worker
factory. Built once per process by :func:`open_runtime` and passed in; nothing reads
globals or ``os.environ`` after that.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from shared.aws import AwsClients
from shared.events import EventBase
from shared.idempotency import IdempotencyStore
from shared.metrics import EmfMetrics, WorkerMetrics
from shared.observability import ObservabilitySettings
from shared.ops import DeadLetterAnnouncer
from shared.publishing import Publisher
from shared.settings import AwsSettings, TopologySettings, WorkerSettings, load_settings
from shared.topology import QUEUES, BootstrapReport, Names, resolve_urls

if TYPE_CHECKING:
    from shared.worker import Handler, Worker


@dataclass
class Runtime:
    """The process-wide dependencies every service uses.

    Attributes:
        metrics: where workers report handler attempts (None: no metrics).
        announce_dead_letters: workers publish a MessageDeadLettered for each message
            they give up on (the notifier tells the ops channel).
    """

    aws: AwsClients
    names: Names
    topology: BootstrapReport
    publisher: Publisher
    metrics: WorkerMetrics | None = None
    announce_dead_letters: bool = True

    def idempotency(self, completed_ttl: int = 7 * 24 * 3600) -> IdempotencyStore:
        return IdempotencyStore(
            self.aws.dynamodb, self.names.idempotency_table, completed_ttl=completed_ttl
        )

    def worker(
        self,
        consumer: str,
        handlers: Mapping[type[EventBase], Handler],
        settings: WorkerSettings,
    ) -> Worker:
        """A worker on ``consumer``'s queue with idempotency on, its metrics and its
        dead-letter announcements."""
        from shared.worker import Worker  # noqa: PLC0415 - not loaded by the gateway, which has none

        spec = next((q for q in QUEUES if q.consumer == consumer), None)
        announcer = DeadLetterAnnouncer(self.publisher, self.names.dlq)
        return Worker(
            consumer=consumer,
            queue_url=self.topology.queue_urls[consumer],
            handlers=handlers,
            sqs=self.aws.sqs,
            s3=self.aws.s3,
            idempotency=self.idempotency(settings.idempotency_ttl_seconds),
            settings=settings,
            metrics=self.metrics,
            on_dead_letter=announcer if self.announce_dead_letters else None,
            max_receive_count=spec.max_receive_count if spec is not None else None,
        )


@asynccontextmanager
async def open_runtime(
    aws_settings: AwsSettings,
    topology_settings: TopologySettings,
    observability: ObservabilitySettings | None = None,
) -> AsyncIterator[Runtime]:
    """Open the AWS clients and look up the deployed topology (never creates it).

    ``observability`` (default: ``TOILKIT_METRICS*`` from the environment) says whether
    workers write EMF metrics, and under which namespace.

    Raises:
        ConfigError: the topology is missing (run ``toilkit bootstrap``).
    """
    async with AwsClients(aws_settings) as aws:
        yield await runtime_on(aws, Names.from_settings(topology_settings), observability)


async def runtime_on(
    aws: AwsClients,
    names: Names,
    observability: ObservabilitySettings | None = None,
    *,
    topology: BootstrapReport | None = None,
) -> Runtime:
    """The runtime on clients that are already open: looks up the deployed topology.

    ``observability`` as for :func:`open_runtime`. ``topology``: the topic ARN and queue
    URLs when the deployment already says them (a Lambda function's environment), so
    nothing is looked up.

    Raises:
        ConfigError: the topology is missing (run ``toilkit bootstrap``).
    """
    observability = observability or load_settings(ObservabilitySettings)
    metrics = None
    if observability.emf_metrics:
        metrics = EmfMetrics(observability.metrics_namespace or names.prefix)
    if topology is None:
        topology = await resolve_urls(aws, names)
    return Runtime(
        aws=aws,
        names=names,
        topology=topology,
        publisher=Publisher(aws.sns, aws.s3, topology.topic_arn, names.bucket),
        metrics=metrics,
    )


class Service(Protocol):
    """A running toilkit service as the process that hosts it sees it."""

    name: str

    async def run(self) -> None:
        """Run until :meth:`stop` is called; never returns early on a bad message."""

    def stop(self) -> None:
        """Ask the service to finish its in-flight work and return from :meth:`run`."""

    def describe(self) -> str:
        """One line for the start-up banner (what it consumes, where it listens)."""
