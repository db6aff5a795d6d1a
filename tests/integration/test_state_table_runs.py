"""Reading a run record from the state table, as the batch service and the gateway do."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.aws import AwsClients
from shared.events import Actor
from shared.state_table.keys import RUN_ITEM, key, run_partition
from shared.state_table.runs import RunRecord, read_run_record, run_record_item
from shared.topology import BootstrapReport, Names


async def test_a_stored_run_record_is_read_back_with_its_version_and_a_missing_one_is_none(
    aws: AwsClients, names: Names, topology: BootstrapReport
) -> None:
    record = RunRecord(
        run_id="run-1",
        request_event_id="evt-1",
        command="reindex",
        environment="staging",
        requested_by=Actor(slack_user_id="U0ALICE001", name="alice"),
        requested_at=datetime(2026, 12, 5, 9, 0, tzinfo=UTC),
        version=3,
    )
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
