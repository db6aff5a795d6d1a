"""What the gateway reads from the shared state table: open drift and run records.

The gateway never writes these. It reads the layout its owners document, without
importing them (services share only events and ``shared/``):

* the detector (:mod:`services.detector.lifecycle`): ``drift#states`` / ``<state>`` is a
  state's last scan; ``drift#<state>`` / ``finding#<fingerprint>`` an open finding;
* the batch service (:mod:`services.batch.runs`): ``runs`` / ``<requested_at>#<id>`` lists
  runs; ``run#<id>`` / ``run`` holds the run record as JSON in ``doc``.

Reads answer a person waiting in Slack, so they are retried briefly, not for 30 s; an
item that cannot be read is skipped with a warning instead of failing the whole answer.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from shared.aws import call_aws
from shared.errors import TransientError
from shared.events import Actor, RunParameter

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

DRIFT_STATES_KEY = "drift#states"
FINDING_PREFIX = "finding#"
RUN_LIST_KEY = "runs"


def drift_key(state: str) -> str:
    return f"drift#{state}"


def run_key(run_id: str) -> str:
    return f"run#{run_id}"


def interactive_retry() -> AsyncRetrying:
    """Retry a read once, quickly: someone is waiting in Slack for the answer."""
    return AsyncRetrying(
        stop=stop_after_attempt(2) | stop_after_delay(1),
        wait=wait_random_exponential(multiplier=0.05, max=0.2),
        retry=retry_if_exception_type(TransientError),
        reraise=True,
    )


# --------------------------------------------------------------------------- what is read


@dataclass(frozen=True)
class StateScan:
    """A state's last scan as the detector recorded it."""

    state: str
    scanned_at: datetime
    status: str


@dataclass(frozen=True)
class OpenDrift:
    """One open finding of a state."""

    state: str
    fingerprint: str
    address: str
    kind: str
    first_seen: datetime
    claimed_by_name: str | None = None
    claimed_by_slack: str | None = None


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class RunRecord(_Lenient):
    """The fields of the batch service's run record that the gateway uses."""

    run_id: str
    command: str
    environment: str
    parameters: tuple[RunParameter, ...] = ()
    sensitive_dropped: bool = False
    reason: str = ""
    requested_by: Actor
    channel_id: str | None = None
    rerun_of: str | None = None
    status: str = "received"
    requested_at: AwareDatetime
    log_url: str | None = None
    exit_code: int | None = None
    finished_at: AwareDatetime | None = None


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
        for item in await self._query(DRIFT_STATES_KEY):
            try:
                scans.append(
                    StateScan(
                        state=item["sk"]["S"],
                        scanned_at=_parse_time(item["scanned_at"]["S"]),
                        status=item["status"]["S"],
                    )
                )
            except (KeyError, ValueError) as exc:
                log.warning("skipping an unreadable drift state item: %r", exc)
        return scans

    async def open_drift(self, state: str) -> list[OpenDrift]:
        found: list[OpenDrift] = []
        for item in await self._query(drift_key(state), FINDING_PREFIX):
            try:
                found.append(
                    OpenDrift(
                        state=state,
                        fingerprint=item["fingerprint"]["S"],
                        address=item["address"]["S"],
                        kind=item.get("kind", {}).get("S", "drift"),
                        first_seen=_parse_time(item["first_seen"]["S"]),
                        claimed_by_name=item.get("claimed_by_name", {}).get("S"),
                        claimed_by_slack=item.get("claimed_by_slack", {}).get("S"),
                    )
                )
            except (KeyError, ValueError) as exc:
                log.warning("skipping an unreadable finding of %s: %r", state, exc)
        return sorted(found, key=lambda d: (d.first_seen, d.address))

    async def recent_runs(self, limit: int) -> list[RunRecord]:
        index = await self._query(RUN_LIST_KEY, newest_first=True, limit=limit)
        run_ids = [item["run_id"]["S"] for item in index if "run_id" in item]
        records = await asyncio.gather(*(self.run(run_id) for run_id in run_ids))
        return [r for r in records if r is not None]

    async def run(self, run_id: str) -> RunRecord | None:
        response = await call_aws(
            "dynamodb.get_item (run record)",
            lambda: self._ddb.get_item(
                TableName=self.table,
                Key={"pk": {"S": run_key(run_id)}, "sk": {"S": "run"}},
                ConsistentRead=True,
            ),
            interactive_retry(),
        )
        item = response.get("Item")
        if item is None:
            return None
        try:
            return RunRecord.model_validate_json(item["doc"]["S"])
        except (KeyError, ValidationError) as exc:
            log.warning("run record %s is unreadable: %s", run_id, exc)
            return None

    async def _query(
        self, partition: str, prefix: str = "", *, newest_first: bool = False, limit: int = 0
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while True:
            arguments: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": "pk = :pk"
                + (" AND begins_with(sk, :prefix)" if prefix else ""),
                "ExpressionAttributeValues": {":pk": {"S": partition}}
                | ({":prefix": {"S": prefix}} if prefix else {}),
                "ScanIndexForward": not newest_first,
            }
            if limit:
                arguments["Limit"] = limit - len(items)
            if start is not None:
                arguments["ExclusiveStartKey"] = start
            page = await call_aws(
                "dynamodb.query",
                lambda arguments=arguments: self._ddb.query(**arguments),  # type: ignore[misc]
                interactive_retry(),
            )
            items.extend(page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if not start or (limit and len(items) >= limit):
                return items


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
