"""Live progress: a running run's last log lines and elapsed time, every few seconds.

While :class:`services.batch.supervisor.RunSupervisor` watches a run, a
:class:`ProgressReporter` task reads the run's log tail from its runner (the local runner's
output as it streams, CloudWatch Logs for a CodeBuild build) every ``interval`` seconds and
publishes a :class:`~shared.events.BatchRunProgress`; the notifier shows it in the run's
Slack message. The task stops before the run's ``BatchRunFinished`` is announced.

Only the newest progress matters, so nothing here queues or retries: a tail that cannot be
read or an event that cannot be published is skipped (and logged), and the next tick
sends a fresh one. ``sequence`` is the tick's time in epoch milliseconds, so it keeps
growing across a restart of the batch service (a resumed run's progress is never taken
for an older one).

Sensitive parameter values are replaced by ``(sensitive)`` in every line (the run's
:attr:`~services.batch.runners.base.RunSpec.secrets`; a run resumed after a restart no
longer has its values, see docs/batch.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

from services.batch.outcomes import outcome_header
from services.batch.runners.base import RunOutcome, RunSpec, StartedRun
from shared.clock import Clock, utc_now
from shared.events import SENSITIVE, BatchRunProgress
from shared.publishing import EventPublisher

log = logging.getLogger(__name__)

#: The shortest interval between two progress events of one run (Slack allows about one
#: ``chat.update`` per second per channel; the default is 10 s).
MIN_INTERVAL_SECONDS = 1.0
DEFAULT_INTERVAL_SECONDS = 10.0


@runtime_checkable
class TailSource(Protocol):
    """A runner that can read a running run's last log lines."""

    async def tail(self, spec: RunSpec, started: StartedRun, lines: int) -> tuple[str, ...]:
        """The last ``lines`` lines of the run's log so far (() when none or unreadable)."""


def mask_secrets(lines: Iterable[str], secrets: Iterable[str]) -> tuple[str, ...]:
    """``lines`` with every secret value replaced by ``(sensitive)`` (longest first, so a
    secret that contains another is masked whole)."""
    ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
    masked = []
    for line in lines:
        shown = line
        for secret in ordered:
            shown = shown.replace(secret, SENSITIVE)
        masked.append(shown)
    return tuple(masked)


def masked_outcome(outcome: RunOutcome, secrets: Iterable[str]) -> RunOutcome:
    """The outcome with its log tail masked (the same object when nothing is secret)."""
    secrets = tuple(secrets)
    if not secrets or not outcome.log_tail:
        return outcome
    return replace(outcome, log_tail=mask_secrets(outcome.log_tail, secrets))


@dataclass(frozen=True)
class ProgressReporter:
    """Publishes a running run's progress every ``interval`` seconds until cancelled.

    Args:
        publisher: where the events go.
        interval: seconds between two events of one run (at least
            :data:`MIN_INTERVAL_SECONDS`).
        tail_lines: how many last lines an event carries.
        clock: the current time.
        sleep: how to wait (tests may pass their own).
    """

    publisher: EventPublisher
    interval: float = DEFAULT_INTERVAL_SECONDS
    tail_lines: int = 10
    clock: Clock = utc_now
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def __post_init__(self) -> None:
        if self.interval < MIN_INTERVAL_SECONDS:
            raise ValueError(
                f"progress interval {self.interval:g}s is below the minimum "
                f"{MIN_INTERVAL_SECONDS:g}s"
            )

    def start(self, spec: RunSpec, runner: object, started: StartedRun) -> asyncio.Task[None]:
        """A task that reports ``spec``'s progress until it is cancelled."""
        return asyncio.create_task(self.follow(spec, runner, started))

    async def follow(self, spec: RunSpec, runner: object, started: StartedRun) -> None:
        """Report progress every ``interval`` seconds (runs until cancelled)."""
        while True:
            await self.sleep(self.interval)
            try:
                await self.report(spec, runner, started)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The next tick sends a newer one; progress never fails a run.
                log.warning("run %s: progress not sent: %s", spec.run_id, exc)

    async def report(self, spec: RunSpec, runner: object, started: StartedRun) -> BatchRunProgress:
        """Read the tail now and publish one progress event; returns it."""
        tail: tuple[str, ...] = ()
        if isinstance(runner, TailSource):
            tail = await runner.tail(spec, started, self.tail_lines)
        now = self.clock()
        sequence = max(1, int(now.timestamp() * 1000))
        event = BatchRunProgress(
            **outcome_header(spec.run_id, spec.command, spec.environment, f"progress/{sequence}"),
            sequence=sequence,
            started_at=started.started_at,
            elapsed_seconds=max((now - started.started_at).total_seconds(), 0.0),
            tail=mask_secrets(tail[-self.tail_lines :], spec.secrets),
            log_url=started.log_url,
        )
        await self.publisher.publish(event)
        return event
