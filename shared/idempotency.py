"""Idempotency by event id: one DynamoDB conditional put per handled event.

Delivery is at-least-once, so a redelivered event must not be handled twice. Before a
handler runs, the worker claims ``<consumer>#<event_id>`` with a conditional put
(``attribute_not_exists(id) OR expiration < :now OR (status = INPROGRESS AND
in_progress_expiration < :now)``); when the handler succeeds the record becomes
COMPLETED with a TTL; when it fails the record is deleted so a retry can claim it again.

The claim is a *lease* as long as the message's visibility timeout, held by one worker
(``owner``) and renewed by the heartbeat that keeps the message hidden. A worker that dies
mid-handler stops renewing both: its claim lapses when its message becomes visible again,
so the redelivery takes the claim over (:meth:`IdempotencyStore.take_over` waits the last
few seconds out in process) instead of spending a receive on "another worker is handling
it", which would dead-letter an event nobody failed to handle after a few crashes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from shared.errors import ConditionFailed
from shared.state_table.access import batch_put, delete_item, get_item, put_item, update_item

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient


class Claim(Enum):
    """The result of trying to claim an event for handling."""

    ACQUIRED = "acquired"  # run the handler
    COMPLETED = "completed"  # done before: acknowledge, do nothing
    IN_PROGRESS = "in_progress"  # another worker is on it: try again later


IN_PROGRESS = "INPROGRESS"
#: The longest a receive waits in process for a claim about to lapse (a dead worker's lease
#: runs out about when its message reappears) before giving the message back to SQS.
TAKEOVER_WAIT_SECONDS = 5.0
COMPLETED = "COMPLETED"
#: The idempotency table's TTL attribute (epoch seconds; the table is created with it).
EXPIRATION = "expiration"
#: The kind of a failure record written as a message's last receive begins: replaced by the
#: real reason if the handler fails, deleted if it succeeds, left if the worker never returns.
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Failure:
    """Why a message failed for good, as the worker recorded it."""

    reason: str
    poison: bool


@dataclass(eq=False)
class IdempotencyStore:
    """Claims and completes events in the idempotency table.

    Args:
        dynamodb: the process's DynamoDB client.
        table: the idempotency table (hash key ``id``, TTL attribute ``expiration``).
        completed_ttl: seconds a COMPLETED record is kept (longer than any redelivery).
        clock: returns epoch seconds; tests inject their own.
        owner: who holds this store's claims (default: a new id per store, i.e. per worker
            process); only the owner renews a claim.
    """

    dynamodb: DynamoDBClient
    table: str
    _: KW_ONLY
    completed_ttl: int = 7 * 24 * 3600
    clock: Callable[[], float] = time.time
    owner: str = field(default_factory=lambda: uuid.uuid4().hex)

    async def claim(self, key: str, in_progress_seconds: float) -> Claim:
        """Try to take ``key`` for handling for at most ``in_progress_seconds``."""
        now = self.clock()
        item = {
            "id": {"S": key},
            "status": {"S": IN_PROGRESS},
            "owner": {"S": self.owner},
            "in_progress_expiration": {"N": str(int(now + in_progress_seconds) + 1)},
            EXPIRATION: {"N": str(int(now + self.completed_ttl))},
        }
        try:
            await put_item(
                self.dynamodb,
                self.table,
                item,
                what="idempotency",
                condition=(
                    f"attribute_not_exists(id) OR {EXPIRATION} < :now OR "
                    "(#status = :in_progress AND in_progress_expiration < :now)"
                ),
                names={"#status": "status"},
                values={":now": {"N": str(int(now))}, ":in_progress": {"S": IN_PROGRESS}},
            )
        except ConditionFailed:
            return await self._current_claim(key)
        return Claim.ACQUIRED

    async def claim_many(self, keys: Sequence[str], in_progress_seconds: float) -> dict[str, Claim]:
        """Claim several keys at once (one conditional put each, sent concurrently).

        Concurrent single puts rather than one TransactWriteItems: the same latency on
        AWS at half the write cost, and no whole-batch cancellation when one key was
        seen before.
        """
        unique = list(dict.fromkeys(keys))
        claims = await asyncio.gather(*(self.claim(k, in_progress_seconds) for k in unique))
        return dict(zip(unique, claims, strict=True))

    async def _record(self, key: str) -> dict[str, Any]:
        """The record of ``key`` as it is now (a consistent read; ``{}`` when there is none)."""
        return (
            await get_item(self.dynamodb, self.table, {"id": {"S": key}}, what="idempotency") or {}
        )

    async def _update(
        self,
        key: str,
        expression: str,
        *,
        names: dict[str, str],
        values: dict[str, Any],
        condition: str | None = None,
    ) -> None:
        """Apply the update ``expression`` to the record of ``key`` (if ``condition`` holds)."""
        await update_item(
            self.dynamodb,
            self.table,
            {"id": {"S": key}},
            expression,
            what="idempotency",
            condition=condition,
            names=names,
            values=values,
        )

    async def _delete_if(
        self,
        key: str,
        condition: str,
        values: dict[str, Any],
        *,
        what: str,
        names: dict[str, str] | None = None,
    ) -> None:
        """Delete the record of ``key`` if ``condition`` holds; else leave it as it is."""
        with contextlib.suppress(ConditionFailed):
            await delete_item(
                self.dynamodb,
                self.table,
                {"id": {"S": key}},
                what=what,
                condition=condition,
                names=names,
                values=values,
            )

    async def _current_claim(self, key: str) -> Claim:
        status = (await self._record(key)).get("status", {}).get("S")
        return Claim.COMPLETED if status == COMPLETED else Claim.IN_PROGRESS

    async def seconds_until_free(self, key: str) -> float:
        """How long until an INPROGRESS claim on ``key`` can be taken (0 if it is not
        held). Expirations are whole seconds compared with ``<`` against the whole current
        second, so a claim expiring at E can be taken from E + 1."""
        item = await self._record(key)
        if item.get("status", {}).get("S") != IN_PROGRESS:
            return 0.0
        expires = float(item.get("in_progress_expiration", {}).get("N", "0"))
        return max(0.0, expires + 1 - self.clock())

    async def renew(self, key: str, in_progress_seconds: float) -> bool:
        """Extend this store's claim on ``key`` by ``in_progress_seconds`` from now (the
        heartbeat); False if the claim is no longer ours (it lapsed and was taken over)."""
        now = self.clock()
        try:
            await self._update(
                key,
                "SET in_progress_expiration = :until",
                condition="#status = :in_progress AND #owner = :owner",
                names={"#status": "status", "#owner": "owner"},
                values={
                    ":until": {"N": str(int(now + in_progress_seconds) + 1)},
                    ":in_progress": {"S": IN_PROGRESS},
                    ":owner": {"S": self.owner},
                },
            )
        except ConditionFailed:
            return False
        return True

    async def take_over(
        self, key: str, in_progress_seconds: float, within: float = TAKEOVER_WAIT_SECONDS
    ) -> tuple[Claim, float]:
        """Claim ``key`` held by another worker if that claim lapses within ``within``
        seconds (waiting for it here); else (IN_PROGRESS, seconds until it lapses)."""
        wait = await self.seconds_until_free(key)
        if wait > within:
            return Claim.IN_PROGRESS, wait
        if wait > 0:
            await asyncio.sleep(wait + 0.05)
        claim = await self.claim(key, in_progress_seconds)
        return claim, 0.0 if claim is not Claim.IN_PROGRESS else in_progress_seconds

    async def complete(self, key: str) -> None:
        """Mark ``key`` handled; a redelivery of the same event is then skipped."""
        await self._update(
            key,
            f"SET #status = :completed, {EXPIRATION} = :expiration",
            names={"#status": "status"},
            values={
                ":completed": {"S": COMPLETED},
                ":expiration": {"N": str(int(self.clock() + self.completed_ttl))},
            },
        )

    async def complete_many(self, keys: Sequence[str]) -> None:
        """Mark several keys handled with batch writes (25 per request)."""
        expiration = {"N": str(int(self.clock() + self.completed_ttl))}
        items = [
            {"id": {"S": k}, "status": {"S": COMPLETED}, EXPIRATION: expiration}
            for k in dict.fromkeys(keys)
        ]
        await batch_put(self.dynamodb, self.table, items, what="idempotency")

    async def release(self, key: str) -> None:
        """Give ``key`` up after a failed attempt, so the retry can claim it at once."""
        await self._delete_if(
            key,
            "#status = :in_progress",
            {":in_progress": {"S": IN_PROGRESS}},
            names={"#status": "status"},
            what="idempotency",
        )

    async def record_failure_once(
        self, key: str, reason: str, ttl: int, *, poison: bool = False, kind: str | None = None
    ) -> bool:
        """Remember why a message failed for good; True the first time only.

        The worker logs a poison message once (not on every receive) and ``toilkit dlq
        show`` reads the reason back; ``toilkit replay`` leaves ``poison`` ones (a body that
        is not an event, or a type nobody handles) in the DLQ unless asked. A provisional
        record (kind :data:`INTERRUPTED`, written when the last receive begins) is replaced.

        Args:
            kind: what the record says; default ``poison`` or ``permanent`` by ``poison``.
                :data:`INTERRUPTED` writes the provisional record (never replaces anything).
        """
        now = self.clock()
        kind = kind or ("poison" if poison else "permanent")
        item = {
            "id": {"S": key},
            "status": {"S": "FAILED"},
            "reason": {"S": reason[:2000]},
            "kind": {"S": kind},
            "failed_at": {"N": str(int(now))},
            EXPIRATION: {"N": str(int(now + ttl))},
        }
        condition = "attribute_not_exists(id)"
        values: dict[str, Any] | None = None
        if kind != INTERRUPTED:
            condition += " OR kind = :interrupted"
            values = {":interrupted": {"S": INTERRUPTED}}
        try:
            await put_item(
                self.dynamodb, self.table, item, what="failure", condition=condition, values=values
            )
        except ConditionFailed:
            return False
        return True

    async def forget_interrupted(self, key: str) -> None:
        """Delete the provisional record of a message whose last receive was handled."""
        await self._delete_if(
            key, "kind = :interrupted", {":interrupted": {"S": INTERRUPTED}}, what="failure"
        )

    async def failure_reason(self, key: str) -> str | None:
        """The reason recorded by :meth:`record_failure_once`, if any."""
        failure = await self.failure(key)
        return None if failure is None else failure.reason

    async def failure(self, key: str) -> Failure | None:
        """What :meth:`record_failure_once` recorded, if anything."""
        item = await get_item(
            self.dynamodb, self.table, {"id": {"S": key}}, what="failure", consistent=False
        )
        if not item or "reason" not in item:
            return None
        return Failure(item["reason"]["S"], item.get("kind", {}).get("S") == "poison")
