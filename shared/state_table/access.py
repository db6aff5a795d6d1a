"""Reading and writing the state table: reads, paging, batch writes, conditional writes and updates.

Every call goes through :func:`shared.aws.call_aws`, so errors are classified once; a
failed condition is :class:`~shared.errors.ConditionFailed`, which no store re-detects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from shared.aws import call_aws

if TYPE_CHECKING:
    from tenacity import AsyncRetrying
    from types_aiobotocore_dynamodb import DynamoDBClient

Item = dict[str, Any]


class WriteCondition(TypedDict, total=False):
    """The keywords of a conditional write (:func:`put_item`, :func:`delete_item`,
    :func:`update_item`): the write happens only if ``condition`` holds, and ``names`` and
    ``values`` are the expression attribute names and values that the condition (or the
    update expression) uses."""

    condition: str | None
    names: dict[str, str] | None
    values: Item | None


#: DynamoDB's limit of items per ``BatchWriteItem``.
BATCH_WRITE_SIZE = 25
#: Rounds of ``UnprocessedItems`` retried before the rest is written one item at a time.
BATCH_WRITE_ROUNDS = 5
#: DynamoDB's limit of keys per ``BatchGetItem``.
BATCH_GET_SIZE = 100
#: Rounds of ``UnprocessedKeys`` retried before the rest is read one item at a time.
BATCH_GET_ROUNDS = 5


async def query_all(
    dynamodb: DynamoDBClient,
    table: str,
    partition: str,
    *,
    sk_prefix: str = "",
    sk_at_most: str | None = None,
    newest_first: bool = False,
    limit: int | None = None,
    retry: AsyncRetrying | None = None,
    what: str = "dynamodb.query",
) -> list[Item]:
    """Every item of ``partition`` (optionally those whose sort key starts with ``sk_prefix``
    or sorts at or before ``sk_at_most``), following DynamoDB's pages, consistently read.

    Args:
        limit: stop after this many items (None: all of them).
        retry: the retry policy of each page (default: the outbound-call policy).
        what: names the call in errors.
    """
    condition = "#pk = :pk"
    values: Item = {":pk": {"S": partition}}
    if sk_prefix:
        condition += " AND begins_with(sk, :prefix)"
        values[":prefix"] = {"S": sk_prefix}
    if sk_at_most is not None:
        condition += " AND sk <= :last"
        values[":last"] = {"S": sk_at_most}
    items: list[Item] = []
    start: Item | None = None
    while True:
        request: Item = {
            "TableName": table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": {"#pk": "pk"},
            "ExpressionAttributeValues": values,
            "ScanIndexForward": not newest_first,
            "ConsistentRead": True,
        }
        if limit is not None:
            request["Limit"] = limit - len(items)
        if start is not None:
            request["ExclusiveStartKey"] = start
        page = await call_aws(
            what,
            lambda request=request: dynamodb.query(**request),  # type: ignore[misc]
            retry,
        )
        items.extend(page.get("Items", []))
        start = page.get("LastEvaluatedKey")
        if not start or (limit is not None and len(items) >= limit):
            return items


async def batch_put(
    dynamodb: DynamoDBClient, table: str, items: Sequence[Item], *, what: str
) -> None:
    """Write ``items`` 25 to a request, retrying what DynamoDB leaves unprocessed.

    What is still unprocessed after a few rounds is written one item at a time, so nothing
    is dropped whatever the table's throttling.
    """
    for start in range(0, len(items), BATCH_WRITE_SIZE):
        requests: list[Any] = [
            {"PutRequest": {"Item": item}} for item in items[start : start + BATCH_WRITE_SIZE]
        ]
        for _ in range(BATCH_WRITE_ROUNDS):
            response = await call_aws(
                f"dynamodb.batch_write_item ({what})",
                lambda requests=requests: dynamodb.batch_write_item(  # type: ignore[misc]
                    RequestItems={table: requests}
                ),
            )
            requests = list((response.get("UnprocessedItems") or {}).get(table, []))
            if not requests:
                break
        for request in requests:
            await put_item(dynamodb, table, request["PutRequest"]["Item"], what=what)


async def batch_get(
    dynamodb: DynamoDBClient, table: str, keys: Sequence[Item], *, what: str
) -> list[Item]:
    """The items of ``keys`` that exist (in no particular order), read consistently 100 to a
    request, retrying what DynamoDB leaves unprocessed.

    What is still unprocessed after a few rounds is read one item at a time, so no item
    is missed whatever the table's throttling.
    """
    found: list[Item] = []
    for start in range(0, len(keys), BATCH_GET_SIZE):
        wanted: list[Any] = list(keys[start : start + BATCH_GET_SIZE])
        for _ in range(BATCH_GET_ROUNDS):
            response: Any = await call_aws(
                f"dynamodb.batch_get_item ({what})",
                lambda wanted=wanted: dynamodb.batch_get_item(  # type: ignore[misc]
                    RequestItems={table: {"Keys": wanted, "ConsistentRead": True}}
                ),
            )
            found.extend(response.get("Responses", {}).get(table, []))
            wanted = list((response.get("UnprocessedKeys") or {}).get(table, {}).get("Keys", []))
            if not wanted:
                break
        for key in wanted:
            item = await get_item(dynamodb, table, key, what=what)
            if item is not None:
                found.append(item)
    return found


async def get_item(
    dynamodb: DynamoDBClient,
    table: str,
    key: Item,
    *,
    what: str,
    consistent: bool = True,
    retry: AsyncRetrying | None = None,
) -> Item | None:
    """One item (None: there is none), consistently read unless ``consistent`` is False.

    Args:
        retry: the retry policy of the read (default: the outbound-call policy).
    """
    response = await call_aws(
        f"dynamodb.get_item ({what})",
        lambda: dynamodb.get_item(TableName=table, Key=key, ConsistentRead=consistent),
        retry,
    )
    item = response.get("Item")
    return None if item is None else dict(item)


async def put_item(
    dynamodb: DynamoDBClient,
    table: str,
    item: Item,
    *,
    what: str,
    return_old: bool = False,
    **condition: Unpack[WriteCondition],
) -> Item:
    """Write one item, under ``condition`` when given.

    Returns:
        The item it replaced, when ``return_old`` asks for it and there was one; else ``{}``.

    Raises:
        ConditionFailed: the condition did not hold (nothing was written).
    """
    arguments: Item = {"TableName": table, "Item": item} | _condition(condition)
    if return_old:
        arguments["ReturnValues"] = "ALL_OLD"
    response = await call_aws(f"dynamodb.put_item ({what})", lambda: dynamodb.put_item(**arguments))
    return dict(response.get("Attributes") or {})


async def delete_item(
    dynamodb: DynamoDBClient,
    table: str,
    key: Item,
    *,
    what: str,
    **condition: Unpack[WriteCondition],
) -> None:
    """Delete one item, under ``condition`` when given.

    Raises:
        ConditionFailed: the condition did not hold (nothing was deleted).
    """
    arguments: Item = {"TableName": table, "Key": key} | _condition(condition)
    await call_aws(f"dynamodb.delete_item ({what})", lambda: dynamodb.delete_item(**arguments))


async def update_item(
    dynamodb: DynamoDBClient,
    table: str,
    key: Item,
    expression: str,
    *,
    what: str,
    return_new: bool = False,
    **condition: Unpack[WriteCondition],
) -> Item:
    """Apply the update ``expression`` to one item, under ``condition`` when given.

    Returns:
        The item as it is after the update, when ``return_new`` asks for it; else ``{}``.

    Raises:
        ConditionFailed: the condition did not hold (nothing was written).
    """
    arguments: Item = {"TableName": table, "Key": key, "UpdateExpression": expression}
    arguments |= _condition(condition)
    if return_new:
        arguments["ReturnValues"] = "ALL_NEW"
    response = await call_aws(
        f"dynamodb.update_item ({what})", lambda: dynamodb.update_item(**arguments)
    )
    return dict(response.get("Attributes") or {})


def _condition(condition: WriteCondition) -> Item:
    """The request arguments of a write's :class:`WriteCondition` (each left out when not given)."""
    if unknown := condition.keys() - WriteCondition.__optional_keys__:
        raise TypeError(f"unexpected keyword arguments: {', '.join(sorted(unknown))}")
    arguments: Item = {}
    if (expression := condition.get("condition")) is not None:
        arguments["ConditionExpression"] = expression
    if names := condition.get("names"):
        arguments["ExpressionAttributeNames"] = names
    if values := condition.get("values"):
        arguments["ExpressionAttributeValues"] = values
    return arguments
