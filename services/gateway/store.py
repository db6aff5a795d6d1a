"""What the gateway reads from the shared state table: open drift and run records.

The gateway never writes these. It reads them through the state table's shared models
(:mod:`shared.state_table`), which its owners (the detector, the batch service) write.

Reads answer a person waiting in Slack, so they are retried briefly, not for 30 s; an
item that cannot be read is skipped with a warning instead of failing the whole answer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

from shared.errors import TransientError
from shared.state_table.access import query_all
from shared.state_table.drift import (
    OpenDrift,
    StateScan,
    open_drift_from_item,
    state_scan_from_item,
)
from shared.state_table.keys import (
    DRIFT_STATES,
    FINDING_PREFIX,
    drift_partition,
)
from shared.state_table.runs import RunRecord, read_run_record, recent_run_ids

if TYPE_CHECKING:
    from tenacity import AsyncRetrying
    from types_aiobotocore_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)


def interactive_retry() -> AsyncRetrying:
    """Retry a read once, quickly: someone is waiting in Slack for the answer."""
    from tenacity import (  # noqa: PLC0415 - tenacity loads with the first read, not at start
        AsyncRetrying,
        retry_if_exception_type,
        stop_after_attempt,
        stop_after_delay,
        wait_random_exponential,
    )

    return AsyncRetrying(
        stop=stop_after_attempt(2) | stop_after_delay(1),
        wait=wait_random_exponential(multiplier=0.05, max=0.2),
        retry=retry_if_exception_type(TransientError),
        reraise=True,
    )


# --------------------------------------------------------------------------- what is read


class Records(Protocol):
    """What the gateway's handlers read (the DynamoDB reader, or a test's own)."""

    async def scanned_states(self) -> list[StateScan]:
        """Every state the detector has scanned, with its last scan."""

    async def open_drift(self, state: str) -> list[OpenDrift]:
        """The state's open findings, oldest first."""

    async def recent_runs(self, limit: int) -> list[RunRecord]:
        """The latest runs, newest first."""

    async def run(self, run_id: str) -> RunRecord | None:
        """One run record (None: no such run)."""


# --------------------------------------------------------------------------- the reader


class StateTableRecords:
    """:class:`Records` read from the shared DynamoDB state table.

    Args:
        dynamodb: the process's DynamoDB client.
        table: ``names.state_table``.
    """

    def __init__(self, dynamodb: DynamoDBClient, table: str) -> None:
        self._ddb = dynamodb
        self.table = table

    async def scanned_states(self) -> list[StateScan]:
        scans: list[StateScan] = []
        for item in await self._query(DRIFT_STATES):
            try:
                scans.append(state_scan_from_item(item))
            except (KeyError, ValueError) as exc:
                log.warning("skipping an unreadable drift state item: %r", exc)
        return scans

    async def open_drift(self, state: str) -> list[OpenDrift]:
        found: list[OpenDrift] = []
        for item in await self._query(drift_partition(state), FINDING_PREFIX):
            try:
                found.append(open_drift_from_item(state, item))
            except (KeyError, ValueError) as exc:
                log.warning("skipping an unreadable finding of %s: %r", state, exc)
        return sorted(found, key=lambda d: (d.first_seen, d.address))

    async def recent_runs(self, limit: int) -> list[RunRecord]:
        run_ids = await recent_run_ids(self._ddb, self.table, limit, interactive_retry())
        records = await asyncio.gather(*(self.run(run_id) for run_id in run_ids))
        return [r for r in records if r is not None]

    async def run(self, run_id: str) -> RunRecord | None:
        try:
            return await read_run_record(self._ddb, self.table, run_id, interactive_retry())
        except (KeyError, ValueError) as exc:
            log.warning("run record %s is unreadable: %s", run_id, exc)
            return None

    async def _query(self, partition: str, prefix: str = "") -> list[dict[str, Any]]:
        return await query_all(
            self._ddb, self.table, partition, sk_prefix=prefix, retry=interactive_retry()
        )
