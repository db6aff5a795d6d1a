"""Catalog schedules: when a run is due, which request it makes, and bad crons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.batch.schedules import due_runs, last_due, scheduled_request
from shared.catalog import Schedule, parse_catalog
from shared.errors import ConfigError


def catalog_with(schedule: dict[str, Any], *, check_schedules: bool = True) -> Any:
    return parse_catalog(
        {
            "commands": [
                {
                    "name": "nightly",
                    "description": "Nightly job.",
                    "argv": ["bin/job", "--month", "{month}"],
                    "parameters": [{"name": "month", "type": "text", "pattern": r"\d{4}-\d{2}"}],
                    "environments": {
                        "staging": {"allowed": {"users": ["U0ALICE001"]}, "schedule": schedule}
                    },
                }
            ]
        },
        check_schedules=check_schedules,
    )


NIGHTLY = {"cron": "30 2 * * *", "timezone": "Europe/Paris", "parameters": {"month": "2024-05"}}


def test_a_cron_reads_in_its_time_zone_across_daylight_saving() -> None:
    schedule = Schedule.model_validate(NIGHTLY)
    winter = last_due(schedule, datetime(2024, 1, 10, 12, 0, tzinfo=UTC))
    summer = last_due(schedule, datetime(2024, 7, 10, 12, 0, tzinfo=UTC))
    assert winter == datetime(2024, 1, 10, 1, 30, tzinfo=UTC)
    assert summer == datetime(2024, 7, 10, 0, 30, tzinfo=UTC)
    # The due instant itself counts.
    assert last_due(schedule, winter) == winter


def test_each_schedule_is_due_once_at_its_latest_missed_time() -> None:
    catalog = catalog_with(NIGHTLY)
    woke = datetime(2024, 1, 13, 12, 0, tzinfo=UTC)  # three nights missed
    [due] = due_runs(catalog, woke - timedelta(days=3), woke)
    assert due.at == datetime(2024, 1, 13, 1, 30, tzinfo=UTC)
    assert due_runs(catalog, woke - timedelta(hours=1), woke) == []


def test_a_due_run_is_one_request_by_schedule_with_fixed_ids() -> None:
    catalog = catalog_with(NIGHTLY)
    [due] = due_runs(catalog, datetime(2024, 1, 13, tzinfo=UTC), datetime(2024, 1, 14, tzinfo=UTC))
    first, again = scheduled_request(catalog, due), scheduled_request(catalog, due)
    assert first is not None and again is not None
    assert (first.event_id, first.run_id) == (again.event_id, again.run_id)
    assert first.requested_by.name == "schedule" and first.requested_by.slack_user_id is None
    assert first.scheduled_for == due.at
    assert [(p.name, p.value) for p in first.parameters] == [("month", "2024-05")]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cron": "61 2 * * *"}, "'61 2 * * *' is not a valid five-field cron expression"),
        ({"cron": "every night"}, "is not a valid five-field cron expression"),
        ({"timezone": "Mars/Olympus"}, "'Mars/Olympus' is not a known time zone"),
        ({"parameters": {"month": "May"}}, "schedule parameters: month: does not match"),
    ],
)
def test_a_bad_schedule_fails_the_catalog_naming_command_and_environment(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        catalog_with(NIGHTLY | change)
    assert "command nightly, environment staging: schedule" in str(info.value)
    assert message in str(info.value)


def test_a_reader_that_runs_no_schedule_skips_the_schedule_checks() -> None:
    # The gateway's function (check_schedules=False): croniter stays off its cold start; the
    # batch function, which runs the schedules, checks them when it opens.
    for change in ({"cron": "61 2 * * *"}, {"timezone": "Mars/Olympus"}):
        catalog = catalog_with(NIGHTLY | change, check_schedules=False)
        [(_, _, schedule)] = catalog.schedules()
        assert schedule.problem() is not None
    catalog_with(NIGHTLY | {"parameters": {"month": "May"}}, check_schedules=False)
    with pytest.raises(ConfigError, match="schedule parameters: month: does not match"):
        catalog_with(NIGHTLY | {"parameters": {"month": "May"}})
