"""Run records in the state table, as the batch service writes them and the gateway reads them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from shared.aws import AwsClients
from shared.events import Actor
from shared.state_table.keys import RUN_ITEM, break_glass_partition, key, run_partition
from shared.state_table.runs import (
    RunRecord,
    read_break_glass_runs,
    read_run_record,
    recent_run_ids,
    run_listing_item,
    run_record_item,
)
from shared.topology import BootstrapReport, Names

NOON = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def record_of(run_id: str, requested_at: datetime = NOON, version: int = 0) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        request_event_id=f"evt-{run_id}",
        command="reindex",
        environment="staging",
        requested_by=Actor(slack_user_id="U0ALICE001", name="alice"),
        requested_at=requested_at,
        version=version,
    )


async def test_a_stored_run_record_is_read_back_with_its_version_and_a_missing_one_is_none(
    aws: AwsClients, names: Names, topology: BootstrapReport
) -> None:
    record = record_of("run-1", version=3)
    await aws.dynamodb.put_item(
        TableName=names.state_table, Item=run_record_item(record, expires_at="4102444800")
    )

    assert await read_run_record(aws.dynamodb, names.state_table, "run-1") == record
    assert await read_run_record(aws.dynamodb, names.state_table, "run-2") is None


async def test_an_item_that_is_not_a_run_record_is_refused(
    aws: AwsClients, names: Names, topology: BootstrapReport
) -> None:
    item = key(run_partition("run-1"), RUN_ITEM) | {"doc": {"S": "{}"}, "version": {"N": "1"}}
    await aws.dynamodb.put_item(TableName=names.state_table, Item=item)

    with pytest.raises(ValueError, match="validation error"):
        await read_run_record(aws.dynamodb, names.state_table, "run-1")


async def test_the_run_list_gives_the_latest_runs_newest_first(
    aws: AwsClients, names: Names, topology: BootstrapReport
) -> None:
    for hours, run_id in [(0, "run-b"), (2, "run-c"), (-1, "run-a")]:
        listed = run_listing_item(record_of(run_id, NOON + timedelta(hours=hours)))
        await aws.dynamodb.put_item(TableName=names.state_table, Item=listed)

    assert await recent_run_ids(aws.dynamodb, names.state_table, 2) == ["run-c", "run-b"]
    assert await recent_run_ids(aws.dynamodb, names.state_table, 10) == [
        "run-c",
        "run-b",
        "run-a",
    ]


async def test_the_break_glass_runs_of_a_day_are_read_from_its_counter(
    aws: AwsClients, names: Names, topology: BootstrapReport
) -> None:
    day = date(2026, 12, 5)
    counter = key(break_glass_partition("U0ALICE001"), day.isoformat())
    await aws.dynamodb.put_item(
        TableName=names.state_table, Item=counter | {"runs": {"SS": ["run-1", "run-2"]}}
    )

    assert await read_break_glass_runs(aws.dynamodb, names.state_table, "U0ALICE001", day) == {
        "run-1",
        "run-2",
    }
    assert (
        await read_break_glass_runs(
            aws.dynamodb, names.state_table, "U0ALICE001", date(2026, 12, 6)
        )
        == frozenset()
    )
    assert await read_break_glass_runs(aws.dynamodb, names.state_table, "U0BOB0001", day) == (
        frozenset()
    )
