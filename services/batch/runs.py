"""Run records, the audit trail and concurrency locks, in the shared DynamoDB state table.

Items (hash ``pk``, range ``sk``, TTL ``expires_at`` in epoch seconds):

* ``run#<id>`` / ``run``: the run record (status, version, the record as JSON);
* ``run#<id>`` / ``audit#<time>#<n>``: one audit entry per request, decision and outcome;
* ``runs`` / ``<requested_at>#<id>``: the listing index (``toilkit runs list``);
* ``runs#active`` / ``<id>``: runs started and not finished (resumed after a restart);
* ``approvals#pending`` / ``<expires_at>#<id>``: requests waiting for approval, by expiry;
* ``lock#<command>#<environment>`` / ``slot#<n>``: one item per concurrent run allowed.

Every change to a run record is a conditional put on its ``version``, so two handlers
deciding about the same run at once (two approvals, an approval and a cancel, a
redelivery) never both win: the loser reloads and decides again on fresh data.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.aws import call_aws, error_code
from shared.errors import TransientError
from shared.events import Actor, RefusalStage, RunParameter

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

Clock: TypeAlias = Callable[[], datetime]

RunState: TypeAlias = Literal[
    "received",
    "awaiting_approval",
    "starting",
    "running",
    "succeeded",
    "failed",
    "timed_out",
    "cancelled",
    "refused",
]
#: States after which nothing about the run changes any more.
FINAL_STATES: frozenset[str] = frozenset(
    {"succeeded", "failed", "timed_out", "cancelled", "refused"}
)

AuditAction: TypeAlias = Literal[
    "requested",
    "authorized",
    "refused",
    "approval_requested",
    "approved",
    "approval_refused",
    "rejected",
    "rejection_ignored",
    "expired",
    "lock_busy",
    "started",
    "start_failed",
    "cancel_requested",
    "cancel_refused",
    "finished",
    "duplicate",
]


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """A sortable UTC timestamp (microseconds, ``Z``) for sort keys."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ApprovalState(_Model):
    approvers: tuple[str, ...]
    min_approvals: int
    expires_at: AwareDatetime
    approvals: tuple[Actor, ...] = ()


class RunRecord(_Model):
    """Everything known about one run; stored as JSON under its ``version``."""

    run_id: str
    request_event_id: str
    command: str
    environment: str
    parameters: tuple[RunParameter, ...] = Field(
        default=(),
        description="Values as requested; sensitive ones are dropped once the run starts.",
    )
    sensitive_dropped: bool = False
    reason: str = ""
    requested_by: Actor
    channel_id: str | None = None
    rerun_of: str | None = None
    status: RunState = "received"
    requested_at: AwareDatetime
    approval: ApprovalState | None = None
    refusal_stage: RefusalStage | None = None
    refusal_reason: str | None = None
    decided_by: Actor | None = None
    starting_by: str | None = Field(
        default=None, description="The event id whose handler claimed the start."
    )
    owner: str | None = Field(default=None, description="host:pid running a local run.")
    runner: str | None = None
    runner_ref: str | None = None
    log_url: str | None = None
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    exit_code: int | None = None
    duration_seconds: float | None = None
    log_tail: tuple[str, ...] = ()
    error: str | None = None
    cancel_requested_by: Actor | None = None
    version: int = 0

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATES

    def without_secrets(self) -> RunRecord:
        """The record with sensitive values dropped (once they are no longer needed)."""
        return self.model_copy(
            update={"parameters": self.shown_parameters(), "sensitive_dropped": True}
        )

    def shown_parameters(self) -> tuple[RunParameter, ...]:
        """The parameters with every sensitive value hidden (for events and the CLI)."""
        return tuple(
            p.model_copy(update={"value": None}) if p.sensitive else p for p in self.parameters
        )


class AuditEntry(_Model):
    at: AwareDatetime
    action: AuditAction
    actor: Actor | None = None
    detail: str = ""
    event_id: str | None = None


class RecordChanged(TransientError):
    """The run record changed between read and write (another handler won)."""


class RunStore:
    """Run records, audit entries and the indexes, in the state table.

    Args:
        dynamodb: the process's DynamoDB client.
        table: the state table (``names.state_table``).
        retention: how long records and audit entries are kept.
        clock: the current time (tests pass their own).
    """

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        *,
        retention: timedelta = timedelta(days=400),
        clock: Clock = utc_now,
    ) -> None:
        self._ddb = dynamodb
        self.table = table
        self.retention = retention
        self.clock = clock

    def _expiry(self) -> str:
        return str(int((self.clock() + self.retention).timestamp()))

    # ------------------------------------------------------------------ records

    async def create(self, record: RunRecord) -> bool:
        """Store a new run record and its listing entry; False if the run exists already."""
        try:
            await call_aws(
                "dynamodb.put_item (run record)",
                lambda: self._ddb.put_item(
                    TableName=self.table,
                    Item=self._record_item(record.model_copy(update={"version": 1})),
                    ConditionExpression="attribute_not_exists(pk)",
                ),
            )
        except Exception as exc:
            if _is_condition_failure(exc):
                return False
            raise
        await self._put(
            {
                "pk": {"S": "runs"},
                "sk": {"S": f"{iso(record.requested_at)}#{record.run_id}"},
                "run_id": {"S": record.run_id},
                "expires_at": {"N": self._expiry()},
            }
        )
        return True

    async def get(self, run_id: str) -> RunRecord | None:
        response = await call_aws(
            "dynamodb.get_item (run record)",
            lambda: self._ddb.get_item(
                TableName=self.table,
                Key={"pk": {"S": f"run#{run_id}"}, "sk": {"S": "run"}},
                ConsistentRead=True,
            ),
        )
        item = response.get("Item")
        return None if item is None else _record_from_item(item)

    async def save(self, record: RunRecord) -> RunRecord:
        """Write ``record`` if nobody changed it since it was read.

        Raises:
            RecordChanged: the stored version moved on.
        """
        saved = record.model_copy(update={"version": record.version + 1})
        try:
            await call_aws(
                "dynamodb.put_item (run record)",
                lambda: self._ddb.put_item(
                    TableName=self.table,
                    Item=self._record_item(saved),
                    ConditionExpression="version = :expected",
                    ExpressionAttributeValues={":expected": {"N": str(record.version)}},
                ),
            )
        except Exception as exc:
            if _is_condition_failure(exc):
                raise RecordChanged(f"run {record.run_id} changed concurrently") from exc
            raise
        return saved

    async def update(
        self,
        run_id: str,
        decide: Callable[[RunRecord], RunRecord | None]
        | Callable[[RunRecord], Awaitable[RunRecord | None]],
        *,
        attempts: int = 5,
    ) -> tuple[RunRecord | None, bool]:
        """Read, decide, write; again on a concurrent change.

        ``decide`` gets the current record and returns the new one, or None to leave it
        as it is. Returns the record as stored and whether this call changed it (the
        record is None when the run does not exist).
        """
        for _ in range(attempts):
            current = await self.get(run_id)
            if current is None:
                return None, False
            decided = decide(current)
            changed = await decided if isinstance(decided, Awaitable) else decided
            if changed is None:
                return current, False
            try:
                return await self.save(changed), True
            except RecordChanged:
                continue
        raise RecordChanged(f"run {run_id} kept changing; giving up for now")

    def _record_item(self, record: RunRecord) -> dict[str, Any]:
        return {
            "pk": {"S": f"run#{record.run_id}"},
            "sk": {"S": "run"},
            "status": {"S": record.status},
            "version": {"N": str(record.version)},
            "doc": {"S": record.model_dump_json()},
            "expires_at": {"N": self._expiry()},
        }

    # ------------------------------------------------------------------ audit

    async def audit(
        self,
        run_id: str,
        action: AuditAction,
        detail: str = "",
        *,
        actor: Actor | None = None,
        event_id: str | None = None,
    ) -> AuditEntry:
        """Append one entry to the run's audit trail."""
        entry = AuditEntry(
            at=self.clock(), action=action, actor=actor, detail=detail, event_id=event_id
        )
        await self._put(
            {
                "pk": {"S": f"run#{run_id}"},
                "sk": {"S": f"audit#{iso(entry.at)}#{uuid.uuid4().hex[:8]}"},
                "doc": {"S": entry.model_dump_json()},
                "expires_at": {"N": self._expiry()},
            }
        )
        log.info("run %s: %s %s", run_id, action, detail)
        return entry

    async def audit_trail(self, run_id: str) -> list[AuditEntry]:
        items = await self._query(
            "#pk = :pk AND begins_with(sk, :audit)",
            {":pk": {"S": f"run#{run_id}"}, ":audit": {"S": "audit#"}},
        )
        return [AuditEntry.model_validate_json(item["doc"]["S"]) for item in items]

    # ------------------------------------------------------------------ listing

    async def recent(self, limit: int = 20) -> list[RunRecord]:
        """The latest runs, newest first."""
        items = await self._query(
            "#pk = :pk", {":pk": {"S": "runs"}}, newest_first=True, limit=limit
        )
        run_ids = [item["run_id"]["S"] for item in items]
        records = await self.get_many(run_ids)
        return [records[r] for r in run_ids if r in records]

    async def get_many(self, run_ids: Iterable[str]) -> dict[str, RunRecord]:
        wanted = list(dict.fromkeys(run_ids))
        found: dict[str, RunRecord] = {}
        for start in range(0, len(wanted), 100):
            keys: list[Any] = [
                {"pk": {"S": f"run#{r}"}, "sk": {"S": "run"}} for r in wanted[start : start + 100]
            ]
            for _ in range(5):
                response: Any = await call_aws(
                    "dynamodb.batch_get_item (run records)",
                    lambda keys=keys: self._ddb.batch_get_item(  # type: ignore[misc]
                        RequestItems={self.table: {"Keys": keys, "ConsistentRead": True}}
                    ),
                )
                for item in response.get("Responses", {}).get(self.table, []):
                    record = _record_from_item(item)
                    found[record.run_id] = record
                keys = list(response.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", []))
                if not keys:
                    break
        return found

    # ------------------------------------------------------------------ active runs

    async def mark_active(self, run_id: str) -> None:
        await self._put(
            {"pk": {"S": "runs#active"}, "sk": {"S": run_id}, "expires_at": {"N": self._expiry()}}
        )

    async def mark_inactive(self, run_id: str) -> None:
        await self._delete("runs#active", run_id)

    async def active_run_ids(self) -> list[str]:
        items = await self._query("#pk = :pk", {":pk": {"S": "runs#active"}})
        return [item["sk"]["S"] for item in items]

    # ------------------------------------------------------------------ pending approvals

    async def add_pending_approval(self, run_id: str, expires_at: datetime) -> None:
        await self._put(
            {
                "pk": {"S": "approvals#pending"},
                "sk": {"S": f"{iso(expires_at)}#{run_id}"},
                "run_id": {"S": run_id},
                "expires_at": {"N": self._expiry()},
            }
        )

    async def remove_pending_approval(self, run_id: str, expires_at: datetime) -> None:
        await self._delete("approvals#pending", f"{iso(expires_at)}#{run_id}")

    async def overdue_approvals(self, now: datetime) -> list[str]:
        """Runs whose approval request expired at or before ``now``."""
        items = await self._query(
            "#pk = :pk AND sk <= :now",
            {":pk": {"S": "approvals#pending"}, ":now": {"S": f"{iso(now)}#~"}},
        )
        return [item["run_id"]["S"] for item in items]

    # ------------------------------------------------------------------ plumbing

    async def _put(self, item: dict[str, Any]) -> None:
        await call_aws(
            "dynamodb.put_item (batch state)",
            lambda: self._ddb.put_item(TableName=self.table, Item=item),
        )

    async def _delete(self, pk: str, sk: str) -> None:
        await call_aws(
            "dynamodb.delete_item (batch state)",
            lambda: self._ddb.delete_item(
                TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}
            ),
        )

    async def _query(
        self,
        condition: str,
        values: dict[str, Any],
        *,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        start_key: dict[str, Any] | None = None
        while True:
            request: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": condition,
                "ExpressionAttributeNames": {"#pk": "pk"},
                "ExpressionAttributeValues": values,
                "ScanIndexForward": not newest_first,
                "ConsistentRead": True,
            }
            if limit is not None:
                request["Limit"] = limit - len(items)
            if start_key is not None:
                request["ExclusiveStartKey"] = start_key
            response = await call_aws(
                "dynamodb.query (batch state)",
                lambda request=request: self._ddb.query(**request),  # type: ignore[misc]
            )
            items.extend(response.get("Items", []))
            start_key = response.get("LastEvaluatedKey")
            if start_key is None or (limit is not None and len(items) >= limit):
                return items


def _record_from_item(item: dict[str, Any]) -> RunRecord:
    record = RunRecord.model_validate_json(item["doc"]["S"])
    return record.model_copy(update={"version": int(item["version"]["N"])})


def _is_condition_failure(exc: BaseException) -> bool:
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    return error_code(cause) == "ConditionalCheckFailedException"


class LockStore:
    """Concurrency slots per command and environment (one item per slot).

    A slot is taken with a conditional put that succeeds when the slot is free, has
    expired (its holder died without releasing it), or is already held by the same run
    (a redelivered start). Holding expires after the run's timeout plus a margin, so a
    crashed service never blocks a command for good.
    """

    def __init__(self, dynamodb: DynamoDBClient, table: str, *, clock: Clock = utc_now) -> None:
        self._ddb = dynamodb
        self.table = table
        self.clock = clock

    @staticmethod
    def _pk(command: str, environment: str) -> str:
        return f"lock#{command}#{environment}"

    async def acquire(
        self, command: str, environment: str, run_id: str, *, slots: int, hold: timedelta
    ) -> list[str]:
        """Take a slot for ``run_id``. Returns [] when taken, else the runs holding them all."""
        now = self.clock()
        for slot in range(slots):
            try:
                await call_aws(
                    "dynamodb.put_item (lock)",
                    lambda slot=slot: self._ddb.put_item(  # type: ignore[misc]
                        TableName=self.table,
                        Item={
                            "pk": {"S": self._pk(command, environment)},
                            "sk": {"S": f"slot#{slot}"},
                            "run_id": {"S": run_id},
                            "acquired_at": {"S": iso(now)},
                            "expires_at": {"N": str(int((now + hold).timestamp()))},
                        },
                        ConditionExpression=(
                            "attribute_not_exists(pk) OR expires_at < :now OR run_id = :run"
                        ),
                        ExpressionAttributeValues={
                            ":now": {"N": str(int(now.timestamp()))},
                            ":run": {"S": run_id},
                        },
                    ),
                )
            except Exception as exc:
                if _is_condition_failure(exc):
                    continue
                raise
            return []
        return await self.holders(command, environment)

    async def holders(self, command: str, environment: str) -> list[str]:
        response = await call_aws(
            "dynamodb.query (lock)",
            lambda: self._ddb.query(
                TableName=self.table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": self._pk(command, environment)}},
                ConsistentRead=True,
            ),
        )
        now = int(self.clock().timestamp())
        return [
            item["run_id"]["S"]
            for item in response.get("Items", [])
            if int(item["expires_at"]["N"]) >= now
        ]

    async def release(self, command: str, environment: str, run_id: str, *, slots: int) -> None:
        """Free the slot ``run_id`` holds (nothing if it holds none)."""
        for slot in range(slots):
            try:
                await call_aws(
                    "dynamodb.delete_item (lock)",
                    lambda slot=slot: self._ddb.delete_item(  # type: ignore[misc]
                        TableName=self.table,
                        Key={
                            "pk": {"S": self._pk(command, environment)},
                            "sk": {"S": f"slot#{slot}"},
                        },
                        ConditionExpression="run_id = :run",
                        ExpressionAttributeValues={":run": {"S": run_id}},
                    ),
                )
            except Exception as exc:
                if not _is_condition_failure(exc):
                    raise


def record_summary(record: RunRecord) -> dict[str, Any]:
    """A JSON-ready view of a record with sensitive values hidden (``runs show --json``)."""
    data: dict[str, Any] = json.loads(record.model_dump_json())
    data["parameters"] = [p.model_dump() for p in record.shown_parameters()]
    return data
