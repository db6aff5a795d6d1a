"""Local schedules: cron in a time zone, coalesced catch-up, deterministic requests.

The scheduler runs on a fake clock: tests move time forward and wait for the
scheduler to react, never for real time to pass.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.detector.config import Schedule, StateConfig
from services.detector.scheduler import (
    DueScan,
    ScanScheduler,
    due_scans,
    next_run,
    scheduled_request,
)
from shared.events import DriftScanRequested
from tests.support import SteppingClock, eventually


def state(name: str, schedule: Schedule | None) -> StateConfig:
    return StateConfig(name=name, path=name, directory=Path("/repo") / name, schedule=schedule)


def test_the_default_schedule_is_due_every_day_at_seven_utc() -> None:
    after = datetime(2025, 6, 1, 7, 0, tzinfo=UTC)

    assert next_run(Schedule(), after) == datetime(2025, 6, 2, 7, 0, tzinfo=UTC)
    assert next_run(Schedule(), after - timedelta(seconds=1)) == after


def test_a_schedule_follows_daylight_saving_time_in_its_zone() -> None:
    paris = Schedule(cron="0 7 * * *", timezone="Europe/Paris")

    winter = next_run(paris, datetime(2025, 1, 10, tzinfo=UTC))
    summer = next_run(paris, datetime(2025, 7, 10, tzinfo=UTC))

    assert winter == datetime(2025, 1, 10, 6, 0, tzinfo=UTC)
    assert summer == datetime(2025, 7, 10, 5, 0, tzinfo=UTC)


def test_weekday_schedules_skip_the_weekend() -> None:
    weekdays = Schedule(cron="0 7 * * 1-5")
    friday_evening = datetime(2025, 6, 6, 18, 0, tzinfo=UTC)

    assert next_run(weekdays, friday_evening) == datetime(2025, 6, 9, 7, 0, tzinfo=UTC)


def test_states_due_together_share_one_scan_and_missed_runs_coalesce() -> None:
    states = [
        state("network", Schedule()),
        state("app", Schedule()),
        state("hourly", Schedule(cron="0 * * * *")),
        state("on-demand", None),
    ]
    # The machine slept from Monday 06:00 to Wednesday 07:30.
    after = datetime(2025, 6, 2, 6, 0, tzinfo=UTC)
    until = datetime(2025, 6, 4, 7, 30, tzinfo=UTC)

    due = due_scans(states, after, until)

    assert due == [
        DueScan(at=datetime(2025, 6, 4, 7, 0, tzinfo=UTC), states=("network", "app", "hourly"))
    ]


def test_nothing_is_due_before_its_time() -> None:
    after = datetime(2025, 6, 2, 7, 0, tzinfo=UTC)

    assert due_scans([state("a", Schedule())], after, after + timedelta(hours=23)) == []


def test_the_same_due_scan_always_becomes_the_same_event() -> None:
    due = DueScan(at=datetime(2025, 6, 4, 7, 0, tzinfo=UTC), states=("network", "app"))

    first = scheduled_request(due, source="detector-scheduler")
    again = scheduled_request(due, source="detector-scheduler")
    other = scheduled_request(DueScan(at=due.at, states=("network",)), source="detector-scheduler")

    assert first.event_id == again.event_id != other.event_id
    assert first.correlation_id == first.event_id
    assert first.states == ("network", "app")
    assert first.requested_by is not None and first.requested_by.name == "schedule"
    assert first.mode is None  # each state keeps its own mode


async def test_the_scheduler_publishes_when_the_clock_reaches_a_due_time() -> None:
    clock = SteppingClock(datetime(2025, 6, 2, 6, 59, tzinfo=UTC))
    published: list[DriftScanRequested] = []

    async def publish(event: DriftScanRequested) -> None:
        published.append(event)

    scheduler = ScanScheduler(
        [state("network", Schedule()), state("later", Schedule(cron="0 9 * * *"))],
        publish,
        clock=clock,
    )
    running = asyncio.create_task(scheduler.run())
    try:

        async def waiting() -> bool:
            return clock.sleeping == 1

        await eventually(waiting)
        assert published == []

        clock.advance_to(datetime(2025, 6, 2, 7, 0, 30, tzinfo=UTC))

        async def one_published() -> bool:
            return len(published) == 1

        await eventually(one_published)
        assert published[0].states == ("network",)
        assert published[0].occurred_at == datetime(2025, 6, 2, 7, 0, tzinfo=UTC)

        clock.advance_to(datetime(2025, 6, 2, 9, 0, tzinfo=UTC))

        async def two_published() -> bool:
            return len(published) == 2

        await eventually(two_published)
        assert published[1].states == ("later",)
    finally:
        scheduler.stop()
        await asyncio.wait_for(running, 5)
    assert scheduler.published == published


async def test_a_failed_publish_is_logged_and_later_schedules_still_fire() -> None:
    clock = SteppingClock(datetime(2025, 6, 2, 6, 59, tzinfo=UTC))
    attempts: list[DriftScanRequested] = []

    async def flaky_publish(event: DriftScanRequested) -> None:
        attempts.append(event)
        if len(attempts) == 1:
            raise ConnectionError("SNS is down")

    scheduler = ScanScheduler(
        [state("hourly", Schedule(cron="0 * * * *"))], flaky_publish, clock=clock
    )
    running = asyncio.create_task(scheduler.run())
    try:

        async def waiting() -> bool:
            return clock.sleeping == 1

        await eventually(waiting)
        clock.advance_to(datetime(2025, 6, 2, 7, 0, tzinfo=UTC))

        async def first_attempt() -> bool:
            return len(attempts) == 1 and clock.sleeping == 1

        await eventually(first_attempt)
        clock.advance_to(datetime(2025, 6, 2, 8, 0, tzinfo=UTC))

        async def second_attempt() -> bool:
            return len(attempts) == 2

        await eventually(second_attempt)
    finally:
        scheduler.stop()
        await asyncio.wait_for(running, 5)
    assert [e.occurred_at.hour for e in scheduler.published] == [8]


async def test_a_scheduler_with_nothing_scheduled_waits_for_stop() -> None:
    scheduler = ScanScheduler(
        [state("manual", None)],
        lambda event: asyncio.sleep(0),
        clock=SteppingClock(datetime(2025, 6, 2, tzinfo=UTC)),
    )
    running = asyncio.create_task(scheduler.run())

    scheduler.stop()

    await asyncio.wait_for(running, 5)
    assert scheduler.next_due(datetime(2025, 6, 2, tzinfo=UTC)) is None
