"""Reads, batch reads and conditional updates of the state table through
:mod:`shared.state_table.access`."""

from __future__ import annotations

from typing import Any

import pytest

from shared.aws import AwsClients
from shared.errors import ConditionFailed, PermanentError
from shared.state_table.access import Item, batch_get, batch_put, get_item, put_item, update_item
from shared.state_table.keys import key
from shared.topology import BootstrapReport, Names

RECORD = key("test#access", "record")


@pytest.fixture
async def record(aws: AwsClients, names: Names, topology: BootstrapReport) -> None:
    """RECORD stored, with ``n`` = 1."""
    await put_item(aws.dynamodb, names.state_table, RECORD | {"n": {"N": "1"}}, what="test")


async def stored(aws: AwsClients, names: Names) -> dict[str, object]:
    response = await aws.dynamodb.get_item(
        TableName=names.state_table, Key=RECORD, ConsistentRead=True
    )
    return dict(response.get("Item", {}))


async def update(aws: AwsClients, tables: Names, expression: str, **options: Any) -> Item:
    """``update_item`` of RECORD, named "test record" in errors."""
    return await update_item(
        aws.dynamodb, tables.state_table, RECORD, expression, what="test record", **options
    )


async def test_an_update_sets_attributes_and_returns_nothing_unless_asked(
    aws: AwsClients, names: Names, record: None
) -> None:
    returned = await update(
        aws,
        names,
        "SET n = :n, #status = :status",
        names={"#status": "status"},
        values={":n": {"N": "2"}, ":status": {"S": "done"}},
    )

    assert returned == {}
    assert await stored(aws, names) == RECORD | {"n": {"N": "2"}, "status": {"S": "done"}}


async def test_an_update_returns_the_new_item_when_asked(
    aws: AwsClients, names: Names, record: None
) -> None:
    returned = await update(aws, names, "SET n = :n", values={":n": {"N": "5"}}, return_new=True)

    assert returned == RECORD | {"n": {"N": "5"}}


async def test_an_update_whose_condition_fails_writes_nothing_and_names_the_record(
    aws: AwsClients, names: Names, record: None
) -> None:
    with pytest.raises(ConditionFailed, match=r"^dynamodb\.update_item \(test record\) failed"):
        await update(
            aws,
            names,
            "SET n = :n",
            condition="n = :expected",
            values={":n": {"N": "3"}, ":expected": {"N": "2"}},
        )

    assert await stored(aws, names) == RECORD | {"n": {"N": "1"}}


async def test_an_update_of_a_missing_item_under_an_existence_condition_creates_nothing(
    aws: AwsClients, names: Names, topology: BootstrapReport
) -> None:
    with pytest.raises(ConditionFailed):
        await update(
            aws, names, "SET n = :n", condition="attribute_exists(pk)", values={":n": {"N": "3"}}
        )

    assert await stored(aws, names) == {}


async def test_a_refused_update_is_a_permanent_error_naming_the_record(
    aws: AwsClients, names: Names, topology: BootstrapReport
) -> None:
    with pytest.raises(PermanentError, match=r"dynamodb\.update_item \(test record\) failed"):
        await update(aws, names, "SET n = :missing")


async def test_a_read_gives_the_item_or_none_and_names_the_record_when_refused(
    aws: AwsClients, names: Names, topology: BootstrapReport
) -> None:
    assert await get_item(aws.dynamodb, names.state_table, RECORD, what="test record") is None
    await put_item(aws.dynamodb, names.state_table, RECORD | {"n": {"N": "1"}}, what="test")

    assert await get_item(aws.dynamodb, names.state_table, RECORD, what="test record") == (
        RECORD | {"n": {"N": "1"}}
    )
    assert await get_item(
        aws.dynamodb, names.state_table, RECORD, what="test record", consistent=False
    ) == RECORD | {"n": {"N": "1"}}
    with pytest.raises(PermanentError, match=r"dynamodb\.get_item \(test record\) failed"):
        await get_item(aws.dynamodb, names.state_table, {"pk": {"S": "x"}}, what="test record")


async def test_a_batch_read_gives_the_items_that_exist_over_several_requests(
    aws: AwsClients, names: Names, topology: BootstrapReport
) -> None:
    keys = [key("test#access", f"item-{n:03}") for n in range(130)]
    items = [k | {"n": {"N": str(n)}} for n, k in enumerate(keys) if n % 10]
    await batch_put(aws.dynamodb, names.state_table, items, what="test")

    found = await batch_get(aws.dynamodb, names.state_table, keys, what="test records")

    assert sorted(found, key=lambda item: item["sk"]["S"]) == items
    assert await batch_get(aws.dynamodb, names.state_table, [], what="test records") == []
