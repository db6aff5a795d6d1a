"""Conditional updates of the state table through :func:`shared.state_table.access.update_item`."""

from __future__ import annotations

import pytest

from shared.aws import AwsClients
from shared.errors import ConditionFailed, PermanentError
from shared.state_table.access import put_item, update_item
from shared.state_table.keys import key
from shared.topology import BootstrapReport, Names

RECORD = key("test#access", "record")


async def stored(aws: AwsClients, names: Names) -> dict[str, object]:
    response = await aws.dynamodb.get_item(
        TableName=names.state_table, Key=RECORD, ConsistentRead=True
    )
    return dict(response.get("Item", {}))


async def test_an_update_sets_attributes_and_returns_nothing_unless_asked(
    aws: AwsClients, names: Names, topology: BootstrapReport
) -> None:
    await put_item(aws.dynamodb, names.state_table, RECORD | {"n": {"N": "1"}}, what="test")

    returned = await update_item(
        aws.dynamodb,
        names.state_table,
        RECORD,
        "SET n = :n, #status = :status",
        what="test record",
        names={"#status": "status"},
        values={":n": {"N": "2"}, ":status": {"S": "done"}},
    )

    assert returned == {}
    assert await stored(aws, names) == RECORD | {"n": {"N": "2"}, "status": {"S": "done"}}


async def test_an_update_returns_the_new_item_when_asked(
    aws: AwsClients, names: Names, topology: BootstrapReport
) -> None:
    await put_item(aws.dynamodb, names.state_table, RECORD | {"n": {"N": "1"}}, what="test")

    returned = await update_item(
        aws.dynamodb,
        names.state_table,
        RECORD,
        "SET n = :n",
        what="test record",
        values={":n": {"N": "5"}},
        return_new=True,
    )

    assert returned == RECORD | {"n": {"N": "5"}}


async def test_an_update_whose_condition_fails_writes_nothing_and_names_the_record(
    aws: AwsClients, names: Names, topology: BootstrapReport
) -> None:
    await put_item(aws.dynamodb, names.state_table, RECORD | {"n": {"N": "1"}}, what="test")

    with pytest.raises(ConditionFailed, match=r"^dynamodb\.update_item \(test record\) failed"):
        await update_item(
            aws.dynamodb,
            names.state_table,
            RECORD,
            "SET n = :n",
            what="test record",
            condition="n = :expected",
            values={":n": {"N": "3"}, ":expected": {"N": "2"}},
        )

    assert await stored(aws, names) == RECORD | {"n": {"N": "1"}}


async def test_an_update_of_a_missing_item_under_an_existence_condition_creates_nothing(
    aws: AwsClients, names: Names, topology: BootstrapReport
) -> None:
    with pytest.raises(ConditionFailed):
        await update_item(
            aws.dynamodb,
            names.state_table,
            RECORD,
            "SET n = :n",
            what="test record",
            condition="attribute_exists(pk)",
            values={":n": {"N": "3"}},
        )

    assert await stored(aws, names) == {}


async def test_a_refused_update_is_a_permanent_error_naming_the_record(
    aws: AwsClients, names: Names, topology: BootstrapReport
) -> None:
    with pytest.raises(PermanentError, match=r"dynamodb\.update_item \(test record\) failed"):
        await update_item(
            aws.dynamodb,
            names.state_table,
            RECORD,
            "SET n = :missing",
            what="test record",
        )
