"""Local schedules: the detector asks itself for scans when a state's cron is due.

Under ``toilkit up`` nothing else runs schedules, so :class:`ScanScheduler` reads each
state's ``schedule`` (cron + time zone, croniter) and publishes a ``DriftScanRequested``
when it is due; the detector's own queue brings it back like any other request. On AWS
an EventBridge schedule starts ``toilkit drift scan`` instead and this is switched off
(``TOILKIT_DETECTOR_SCHEDULER=false``).

* States due at the same instant share one request (one scan, one digest).
* Missed runs (the machine slept) are not replayed one by one: each state runs once for
  its latest missed time, so a laptop that wakes after three days scans once.
* The request's ``event_id`` is derived from the states and the due time, so two
  detectors running the same schedules (or a restart within the minute) produce the same
  event and the worker's idempotency lets only one scan happen.
* Time comes from a :class:`Clock`; tests drive a fake one instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from croniter import croniter

from services.detector.config import Schedule, StateConfig
from shared.event_ids import fixed_event_id
from shared.events import Actor, DriftScanRequested

log = logging.getLogger(__name__)

#: Namespace of the deterministic event ids of scheduled scan requests.
SCHEDULE_NAMESPACE = uuid.UUID("6f1c1b1e-3c55-4b7e-9a53-0d3c5a2f7d10")
SCHEDULE_ACTOR = Actor(name="schedule")


class Clock(Protocol):
    """Where the scheduler gets the time and how it waits."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""

    async def sleep_until(self, moment: datetime) -> None:
        """Return at ``moment`` or later (earlier only if the clock says so)."""


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, moment: datetime) -> None:
        await asyncio.sleep(max(0.0, (moment - self.now()).total_seconds()))


def next_run(schedule: Schedule, after: datetime) -> datetime:
    """The first time strictly after ``after`` when ``schedule`` is due, in UTC."""
    local = after.astimezone(schedule.zone)
    following: datetime = croniter(schedule.cron, local).get_next(datetime)
    return following.astimezone(UTC)


@dataclass(frozen=True)
class DueScan:
    """States whose schedules were due, to be scanned together."""

    at: datetime
    states: tuple[str, ...]


def due_scans(states: Iterable[StateConfig], after: datetime, until: datetime) -> list[DueScan]:
    """The scans due in ``(after, until]``: each state once, at its latest due time."""
    latest: dict[str, datetime] = {}
    for state in states:
        if state.schedule is None:
            continue
        moment = next_run(state.schedule, after)
        if moment > until:
            continue
        while (following := next_run(state.schedule, moment)) <= until:
            moment = following
        latest[state.name] = moment
    grouped: dict[datetime, list[str]] = {}
    for name, moment in latest.items():
        grouped.setdefault(moment, []).append(name)
    return [DueScan(at=m, states=tuple(names)) for m, names in sorted(grouped.items())]


def scheduled_request(due: DueScan, *, source: str) -> DriftScanRequested:
    """The request a due scan becomes; the same inputs always give the same event id."""
    event_id = fixed_event_id(SCHEDULE_NAMESPACE, f"{due.at.isoformat()}|{'|'.join(due.states)}")
    return DriftScanRequested(
        event_id=event_id,
        correlation_id=event_id,
        source=source,
        occurred_at=due.at,
        states=due.states,
        requested_by=SCHEDULE_ACTOR,
    )


class ScanScheduler:
    """Publishes ``DriftScanRequested`` when states' schedules are due.

    Args:
        states: The configured states (those without a schedule are skipped).
        publish: Sends one event (``Publisher.publish``).
        clock: The time source (a fake in tests).
        source: The ``source`` of the events.
    """

    def __init__(
        self,
        states: Sequence[StateConfig],
        publish: Callable[[DriftScanRequested], Awaitable[Any]],
        *,
        clock: Clock | None = None,
        source: str = "detector-scheduler",
    ) -> None:
        self.states = [s for s in states if s.schedule is not None]
        self._publish = publish
        self.clock = clock or SystemClock()
        self.source = source
        self._stopping = asyncio.Event()
        self.published: list[DriftScanRequested] = []

    def next_due(self, after: datetime) -> datetime | None:
        """When the next scan is due after ``after`` (``None``: nothing is scheduled)."""
        times = [next_run(s.schedule, after) for s in self.states if s.schedule is not None]
        return min(times, default=None)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Publish due scans until :meth:`stop` (also if called before this started).

        A failed publish is logged, not fatal.
        """
        checked_until = self.clock.now()
        while not self._stopping.is_set():
            due_at = self.next_due(checked_until)
            if due_at is None:
                await self._stopping.wait()
                return
            if not await self._wait_until(due_at):
                return
            now = self.clock.now()
            if now < due_at:
                continue  # woken early; wait again
            for due in due_scans(self.states, checked_until, now):
                await self._send(due)
            checked_until = now

    async def _wait_until(self, moment: datetime) -> bool:
        """Wait for ``moment``; False when stopped first."""
        sleeper = asyncio.ensure_future(self.clock.sleep_until(moment))
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, stopper):
                task.cancel()
            for task in (sleeper, stopper):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return not self._stopping.is_set()

    async def _send(self, due: DueScan) -> None:
        request = scheduled_request(due, source=self.source)
        try:
            await self._publish(request)
        except Exception:
            # The next due time comes regardless; a lost scheduled scan is logged loudly
            # rather than stopping every later one.
            log.exception("could not publish the scheduled scan of %s", ", ".join(due.states))
            return
        self.published.append(request)
        log.info("scheduled scan of %s requested (due %s)", ", ".join(due.states), due.at)
