"""Cached lists of choices (a parameter's ``options_from``), shared by who fills and who reads.

One item per command parameter (``pk = "options"``, ``sk = "<command>#<parameter>"``)
holds the last good list, when it was fetched, the fingerprint of the source definition it
came from, and the last failure (a failure keeps the last good list). Whoever refreshes a
source writes it (the gateway for ``git`` and ``url`` sources, the batch service for
every source, ``command`` ones included); the gateway reads it to answer Slack.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict

from shared.options import OptionItem
from shared.state_table.access import get_item, put_item
from shared.state_table.keys import OPTIONS_LISTS, key, options_sort_key

if TYPE_CHECKING:
    from tenacity import AsyncRetrying
    from types_aiobotocore_dynamodb import DynamoDBClient

#: The longest failure reason kept.
MAX_ERROR = 300
#: A source whose last fetch failed is asked again after this long (or its TTL if shorter).
RETRY_FAILED_SECONDS = 30


class OptionsList(BaseModel):
    """What is known of one parameter's list of choices."""

    # defer_build: built when a record is first read, not at import (a cold Lambda start).
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    command: str
    parameter: str
    fingerprint: str = ""
    items: tuple[OptionItem, ...] = ()
    fetched_at: AwareDatetime | None = None
    error: str | None = None
    error_at: AwareDatetime | None = None

    def fresh(self, fingerprint: str, ttl_seconds: float, now: datetime) -> bool:
        """Fetched from this very source definition less than ``ttl_seconds`` ago. A recent
        failure counts for :data:`RETRY_FAILED_SECONDS`: a broken source is not asked again
        at every keystroke, and one that is back is soon seen again."""
        if self.fingerprint != fingerprint:
            return False
        if self.error_at is not None and (
            self.fetched_at is None or self.error_at > self.fetched_at
        ):
            retry = min(ttl_seconds, RETRY_FAILED_SECONDS)
            return now - self.error_at < timedelta(seconds=retry)
        return self.fetched_at is not None and now - self.fetched_at < timedelta(
            seconds=ttl_seconds
        )

    def last_seen(self) -> datetime:
        """When the source was last asked (fetched or failed); the oldest time if never."""
        times = [t for t in (self.fetched_at, self.error_at) if t is not None]
        return max(times, default=datetime.min.replace(tzinfo=UTC))

    def usable(self, fingerprint: str) -> bool:
        """Whether the items came from this source definition (a changed catalog entry
        makes the old list unusable)."""
        return self.fetched_at is not None and self.fingerprint == fingerprint

    def values(self) -> frozenset[str]:
        return frozenset(item.value for item in self.items)


def _item(record: OptionsList) -> dict[str, Any]:
    return {
        **key(OPTIONS_LISTS, options_sort_key(record.command, record.parameter)),
        "list": {"S": record.model_dump_json()},
    }


async def read_options(
    dynamodb: DynamoDBClient,
    table: str,
    command: str,
    parameter: str,
    *,
    retry: AsyncRetrying | None = None,
) -> OptionsList | None:
    """The cached list of a parameter (None: never fetched, or unreadable)."""
    item = await get_item(
        dynamodb,
        table,
        key(OPTIONS_LISTS, options_sort_key(command, parameter)),
        what="options",
        consistent=False,
        retry=retry,
    )
    text = (item or {}).get("list", {}).get("S")
    if text is None:
        return None
    try:
        return OptionsList.model_validate(json.loads(text))
    except ValueError:
        return None


async def write_options(dynamodb: DynamoDBClient, table: str, record: OptionsList) -> None:
    """Store a parameter's list (the whole record: last good items and last failure)."""
    await put_item(dynamodb, table, _item(record), what="options")


def succeeded(
    previous: OptionsList | None,
    command: str,
    parameter: str,
    fingerprint: str,
    items: list[OptionItem],
    now: datetime,
) -> OptionsList:
    """The record after a successful fetch."""
    del previous  # a success replaces everything
    return OptionsList(
        command=command,
        parameter=parameter,
        fingerprint=fingerprint,
        items=tuple(items),
        fetched_at=now,
    )


def failed(
    previous: OptionsList | None,
    command: str,
    parameter: str,
    fingerprint: str,
    error: str,
    now: datetime,
) -> OptionsList:
    """The record after a failed fetch: the last good list stays (if from this source)."""
    keep = previous is not None and previous.fingerprint == fingerprint
    return OptionsList(
        command=command,
        parameter=parameter,
        fingerprint=fingerprint,
        items=previous.items if keep and previous else (),
        fetched_at=previous.fetched_at if keep and previous else None,
        error=error[:MAX_ERROR],
        error_at=now,
    )
