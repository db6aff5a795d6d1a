"""Run records, the audit trail and concurrency locks, in the shared DynamoDB state table.

The items and their keys are listed in :mod:`shared.state_table.keys`; the run record's
model is :class:`shared.state_table.runs.RunRecord`, which the gateway and the CLI read too.

Every change to a run record is a conditional put on its ``version``, so two handlers
deciding about the same run at once (two approvals, an approval and a cancel, a
redelivery) never both win: the loser reloads and decides again on fresh data.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import KW_ONLY, dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from pydantic import AwareDatetime, BaseModel, ConfigDict

from shared.clock import Clock, utc_now
from shared.errors import ConditionFailed, TransientError
from shared.events import Actor
from shared.state_table.access import (
    batch_get,
    delete_item,
    get_item,
    put_item,
    query_all,
    update_item,
)
from shared.state_table.keys import (
    ACTIVE_RUNS,
    AUDIT_PREFIX,
    EXPIRES_AT,
    PENDING_APPROVALS,
    RUN_ITEM,
    SLOT_PREFIX,
    break_glass_partition,
    key,
    lock_partition,
    run_partition,
    schedule_partition,
    sortable_time,
)
from shared.state_table.runs import (
    RunRecord,
    read_break_glass_runs,
    read_run_record,
    recent_run_ids,
    run_listing_item,
    run_record_from_item,
    run_record_item,
)

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)


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
    "break_glass",
    "scheduled",
    "preview_started",
    "previewed",
]


class AuditEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    at: AwareDatetime
    action: AuditAction
    actor: Actor | None = None
    detail: str = ""
    event_id: str | None = None


class RecordChanged(TransientError):
    """The run record changed between read and write (another handler won)."""


@dataclass(eq=False)
class RunStore:
    """Run records, audit entries and the indexes, in the state table.

    Args:
        dynamodb: the process's DynamoDB client.
        table: the state table (``names.state_table``).
        retention: how long records and audit entries are kept.
        clock: the current time (tests pass their own).
    """

    dynamodb: DynamoDBClient
    table: str
    _: KW_ONLY
    retention: timedelta = timedelta(days=400)
    clock: Clock = utc_now

    def _expiry(self) -> str:
        return str(int((self.clock() + self.retention).timestamp()))

    # ------------------------------------------------------------------ records

    async def create(self, record: RunRecord) -> bool:
        """Store a new run record and its listing entry; False if the run exists already."""
        try:
            await put_item(
                self.dynamodb,
                self.table,
                run_record_item(record.model_copy(update={"version": 1}), self._expiry()),
                what="run record",
                condition="attribute_not_exists(pk)",
            )
        except ConditionFailed:
            return False
        await self._put(run_listing_item(record))
        return True

    async def get(self, run_id: str) -> RunRecord | None:
        return await read_run_record(self.dynamodb, self.table, run_id)

    async def save(self, record: RunRecord) -> RunRecord:
        """Write ``record`` if nobody changed it since it was read.

        Raises:
            RecordChanged: the stored version moved on.
        """
        saved = record.model_copy(update={"version": record.version + 1})
        try:
            await put_item(
                self.dynamodb,
                self.table,
                run_record_item(saved, self._expiry()),
                what="run record",
                condition="version = :expected",
                values={":expected": {"N": str(record.version)}},
            )
        except ConditionFailed as exc:
            raise RecordChanged(f"run {record.run_id} changed concurrently") from exc
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
        sort_key = f"{AUDIT_PREFIX}{sortable_time(entry.at)}#{uuid.uuid4().hex[:8]}"
        await self._put(
            key(run_partition(run_id), sort_key) | {"doc": {"S": entry.model_dump_json()}}
        )
        log.info("run %s: %s %s", run_id, action, detail)
        return entry

    async def audit_trail(self, run_id: str) -> list[AuditEntry]:
        items = await self._query(run_partition(run_id), sk_prefix=AUDIT_PREFIX)
        return [AuditEntry.model_validate_json(item["doc"]["S"]) for item in items]

    # ------------------------------------------------------------------ listing

    async def recent(self, limit: int = 20) -> list[RunRecord]:
        """The latest runs, newest first."""
        run_ids = await recent_run_ids(self.dynamodb, self.table, limit)
        records = await self.get_many(run_ids)
        return [records[r] for r in run_ids if r in records]

    async def get_many(self, run_ids: Iterable[str]) -> dict[str, RunRecord]:
        keys = [key(run_partition(r), RUN_ITEM) for r in dict.fromkeys(run_ids)]
        items = await batch_get(self.dynamodb, self.table, keys, what="run records")
        records = [run_record_from_item(item) for item in items]
        return {record.run_id: record for record in records}

    # ------------------------------------------------------------------ active runs

    async def mark_active(self, run_id: str) -> None:
        await self._put(key(ACTIVE_RUNS, run_id))

    async def mark_inactive(self, run_id: str) -> None:
        await delete_item(self.dynamodb, self.table, key(ACTIVE_RUNS, run_id), what="batch state")

    async def active_run_ids(self) -> list[str]:
        return [item["sk"]["S"] for item in await self._query(ACTIVE_RUNS)]

    # ------------------------------------------------------------------ pending approvals

    async def add_pending_approval(self, run_id: str, expires_at: datetime) -> None:
        pending = key(PENDING_APPROVALS, f"{sortable_time(expires_at)}#{run_id}")
        await self._put(pending | {"run_id": {"S": run_id}})

    async def remove_pending_approval(self, run_id: str, expires_at: datetime) -> None:
        pending = key(PENDING_APPROVALS, f"{sortable_time(expires_at)}#{run_id}")
        await delete_item(self.dynamodb, self.table, pending, what="batch state")

    async def overdue_approvals(self, now: datetime) -> list[str]:
        """Runs whose approval request expired at or before ``now``."""
        items = await self._query(PENDING_APPROVALS, sk_at_most=f"{sortable_time(now)}#~")
        return [item["run_id"]["S"] for item in items]

    # ------------------------------------------------------------------ break-glass

    async def break_glass_runs(self, user_id: str, day: date) -> frozenset[str]:
        """The runs ``user_id`` started by break-glass on ``day`` (UTC)."""
        return await read_break_glass_runs(self.dynamodb, self.table, user_id, day)

    async def claim_break_glass(self, user_id: str, day: date, run_id: str, *, limit: int) -> bool:
        """Count ``run_id`` as one of the user's break-glass runs of ``day``; False when
        ``limit`` runs are counted already (claiming the same run again is a no-op)."""
        try:
            await update_item(
                self.dynamodb,
                self.table,
                key(break_glass_partition(user_id), day.isoformat()),
                f"ADD runs :run SET {EXPIRES_AT} = :expires",
                what="break-glass",
                condition=(
                    "attribute_not_exists(runs) OR size(runs) < :limit OR contains(runs, :one)"
                ),
                values={
                    ":run": {"SS": [run_id]},
                    ":one": {"S": run_id},
                    ":limit": {"N": str(limit)},
                    ":expires": {"N": self._expiry()},
                },
            )
        except ConditionFailed:
            return False
        return True

    # ------------------------------------------------------------------ schedules

    async def last_scheduled_run(self, command: str, environment: str) -> str | None:
        """The run the schedule of ``command`` in ``environment`` started last."""
        item = await get_item(
            self.dynamodb,
            self.table,
            key(schedule_partition(command, environment), "last"),
            what="schedule",
        )
        return None if item is None else str(item["run_id"]["S"])

    async def set_last_scheduled_run(self, command: str, environment: str, run_id: str) -> None:
        await self._put(
            key(schedule_partition(command, environment), "last") | {"run_id": {"S": run_id}}
        )

    # ------------------------------------------------------------------ plumbing

    async def _put(self, item: dict[str, Any]) -> None:
        """Write an index or audit item, kept as long as the records."""
        item = item | {EXPIRES_AT: {"N": self._expiry()}}
        await put_item(self.dynamodb, self.table, item, what="batch state")

    async def _query(
        self,
        partition: str,
        *,
        sk_prefix: str = "",
        sk_at_most: str | None = None,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        return await query_all(
            self.dynamodb,
            self.table,
            partition,
            sk_prefix=sk_prefix,
            sk_at_most=sk_at_most,
            newest_first=newest_first,
            limit=limit,
            what="dynamodb.query (batch state)",
        )


@dataclass(eq=False)
class LockStore:
    """Concurrency slots per command and environment (one item per slot).

    A slot is taken with a conditional put that succeeds when the slot is free, has
    expired (its holder died without releasing it), or is already held by the same run
    (a redelivered start). Holding expires after the run's timeout plus a margin, so a
    crashed service never blocks a command for good.
    """

    dynamodb: DynamoDBClient
    table: str
    _: KW_ONLY
    clock: Clock = utc_now

    async def acquire(
        self, command: str, environment: str, run_id: str, *, slots: int, hold: timedelta
    ) -> list[str]:
        """Take a slot for ``run_id``. Returns [] when taken, else the runs holding them all."""
        now = self.clock()
        for slot in range(slots):
            item = key(lock_partition(command, environment), f"{SLOT_PREFIX}{slot}") | {
                "run_id": {"S": run_id},
                "acquired_at": {"S": sortable_time(now)},
                EXPIRES_AT: {"N": str(int((now + hold).timestamp()))},
            }
            try:
                await put_item(
                    self.dynamodb,
                    self.table,
                    item,
                    what="lock",
                    condition=f"attribute_not_exists(pk) OR {EXPIRES_AT} < :now OR run_id = :run",
                    values={":now": {"N": str(int(now.timestamp()))}, ":run": {"S": run_id}},
                )
            except ConditionFailed:
                continue
            return []
        return await self.holders(command, environment)

    async def holders(self, command: str, environment: str) -> list[str]:
        items = await query_all(
            self.dynamodb,
            self.table,
            lock_partition(command, environment),
            what="dynamodb.query (lock)",
        )
        now = int(self.clock().timestamp())
        return [item["run_id"]["S"] for item in items if int(item[EXPIRES_AT]["N"]) >= now]

    async def release(self, command: str, environment: str, run_id: str, *, slots: int) -> None:
        """Free the slot ``run_id`` holds (nothing if it holds none)."""
        for slot in range(slots):
            try:
                await delete_item(
                    self.dynamodb,
                    self.table,
                    key(lock_partition(command, environment), f"{SLOT_PREFIX}{slot}"),
                    what="lock",
                    condition="run_id = :run",
                    values={":run": {"S": run_id}},
                )
            except ConditionFailed:
                continue


def record_summary(record: RunRecord) -> dict[str, Any]:
    """A JSON-ready view of a record with sensitive values hidden (``runs show --json``)."""
    data: dict[str, Any] = json.loads(record.model_dump_json())
    data["parameters"] = [p.model_dump() for p in record.shown_parameters()]
    return data
