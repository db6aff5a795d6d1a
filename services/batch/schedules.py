"""Catalog schedules: a command runs on its own, requested by "schedule".

A catalog environment may carry a ``schedule`` (cron + time zone, read with croniter). The
:class:`ScheduleTicker` publishes a ``BatchRequested`` when one is due; the request then
goes through the same pipeline as one from Slack (the batch queue, validation, approval
when the environment needs one, locks, Slack messages, audit).

Where it ticks: in the batch service itself, which already reads the catalog. Under
``toilkit serve``/``up`` a background task ticks every ``schedule_tick_seconds``; on AWS the
batch function's EventBridge Scheduler housekeeping invocation ticks
(``housekeeping_schedule``, so a schedule fires within that period: ``rate(1 minute)`` for
minute precision). One EventBridge schedule per catalog entry would put the catalog in
Terraform too, and every catalog change would need an apply.

* Only the latest missed due time of each schedule is requested (a machine that slept
  three days runs a nightly job once, not three times), within ``lookback``.
* The run and event ids are derived from the command, environment and due time, so two
  batch processes, a restart, or overlapping housekeeping windows request it once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from shared.catalog import Catalog, Schedule, ValidatedRequest, validate_request
from shared.event_ids import fixed_event_id
from shared.events import Actor, BatchRequested, EventBase

log = logging.getLogger(__name__)

SOURCE = "batch-schedule"
SCHEDULE_ACTOR = Actor(name="schedule")
_NAMESPACE = uuid.UUID("0b7f4a4e-2f1c-4d8e-a1d3-6c2b9e5f7a31")


@dataclass(frozen=True)
class DueRun:
    command: str
    environment: str
    schedule: Schedule
    at: datetime


def last_due(schedule: Schedule, until: datetime) -> datetime:
    """The latest time at or before ``until`` when ``schedule`` is due, in UTC."""
    local = until.astimezone(ZoneInfo(schedule.timezone))
    # croniter's get_prev is strictly before; a second later makes "at" inclusive.
    previous: datetime = croniter(schedule.cron, local + timedelta(seconds=1)).get_prev(datetime)
    return previous.astimezone(UTC)


def fires_at(schedule: Schedule, at: datetime) -> bool:
    """Whether ``schedule``'s cron fires at ``at`` (to the second, in its time zone)."""
    if at.tzinfo is None:
        return False
    return last_due(schedule, at) == at.astimezone(UTC)


def due_runs(catalog: Catalog, after: datetime, until: datetime) -> list[DueRun]:
    """The runs due in ``(after, until]``: each schedule once, at its latest due time."""
    due = []
    for command, environment, schedule in catalog.schedules():
        at = last_due(schedule, until)
        if after < at <= until:
            due.append(DueRun(command.name, environment, schedule, at))
    return due


def scheduled_request(catalog: Catalog, due: DueRun) -> BatchRequested | None:
    """The request a due run makes (None if the catalog no longer accepts its values)."""
    checked = validate_request(catalog, due.command, due.environment, due.schedule.parameters)
    if not isinstance(checked, ValidatedRequest):
        log.error("schedule of %s in %s: %s", due.command, due.environment, checked)
        return None
    key = f"{due.command}/{due.environment}/{due.at.isoformat()}"
    run_id = "s" + uuid.uuid5(_NAMESPACE, f"{key}/run").hex[:11]
    return BatchRequested(
        event_id=fixed_event_id(_NAMESPACE, key),
        correlation_id=run_id,
        source=SOURCE,
        run_id=run_id,
        command=due.command,
        environment=due.environment,
        parameters=checked.run_parameters(reveal_sensitive=True),
        reason=f"{due.schedule.reason} (schedule {due.schedule.cron}, {due.schedule.timezone})",
        requested_by=SCHEDULE_ACTOR,
        scheduled_for=due.at,
    )


class ScheduleTicker:
    """Publishes the catalog's due runs, each once.

    Args:
        catalog: the catalog.
        publish: publishes one event.
        lookback: how far back a tick looks the first time (and every time, in Lambda).
    """

    def __init__(
        self,
        catalog: Catalog,
        publish: Callable[[EventBase], Awaitable[object]],
        *,
        lookback: timedelta,
    ) -> None:
        self.catalog = catalog
        self._publish = publish
        self.lookback = lookback
        self.last_tick: datetime | None = None

    async def tick(self, now: datetime) -> list[str]:
        """Request what became due since the last tick; the run ids requested."""
        after = max(self.last_tick or now - self.lookback, now - self.lookback)
        requested = []
        for due in due_runs(self.catalog, after, now):
            event = scheduled_request(self.catalog, due)
            if event is not None:
                await self._publish(event)
                log.info(
                    "schedule: requested %s in %s (run %s)",
                    due.command,
                    due.environment,
                    event.run_id,
                )
                requested.append(event.run_id)
        self.last_tick = now
        return requested
