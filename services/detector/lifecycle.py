"""What the detector remembers between scans: each finding's first and last sighting.

A finding is known by its fingerprint (state + address + kind + change + attribute
paths; see :mod:`services.detector.plan`). After every successful plan of a state,
:func:`reconcile` compares the plan's findings with the open records of that state:

* **new**: no open record (first sighting, or it came back after being resolved);
* **open**: an open record exists; ``first_seen`` is kept, so age can be told;
* **resolved**: an open record whose finding the plan no longer shows;
* **ignored**: an open record whose finding is now covered by an ignore rule, or a
  ``pending`` record of a resource whose drift now carries that change as its revert
  (both are closed quietly, not announced as fixed).

A failed plan reconciles nothing (no plan says nothing about the drift). A
``refresh_only`` plan only sees drift, so it never resolves ``pending`` records.

DynamoDB layout in the shared state table (``names.state_table``, hash ``pk``, range ``sk``):

=================================  ===========================================================
``drift#<state>`` / ``finding#<fp>``  open finding: address, kind, first/last seen, scan ids,
                                     status ``open``, claimed by, suspects (JSON)
``drift#<state>`` / ``history#<first seen>#<fp>``  a closed occurrence: first seen, closed at,
                                     outcome ``resolved`` or ``ignored``; TTL ``expires_at``
``drift#states`` / ``<state>``        the state's last scan: time, id, status
=================================  ===========================================================

Closing moves a record from ``finding#`` to ``history#`` in one transaction, so the
report (:mod:`toilkit.drift_report`) sees each occurrence exactly once. Writes are
idempotent per scan: a redelivered scan request (same scan id) reports the findings
it created as ``new`` again instead of ``open``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from services.detector.plan import PlanSummary, to_event_finding
from shared.aws import call_aws
from shared.errors import ConditionFailed
from shared.events import Actor, DriftFinding, FindingKind, ScanMode, Suspect
from shared.state_table.access import put_item, query_all, update_item
from shared.state_table.drift import (
    ADDRESS,
    CLAIMED_BY_NAME,
    CLAIMED_BY_SLACK,
    FINGERPRINT,
    FIRST_SEEN,
    KIND,
    StateScan,
    claimer_from_item,
    state_scan_from_item,
    state_scan_item,
)
from shared.state_table.keys import (
    DRIFT_STATES,
    EXPIRES_AT,
    FINDING_PREFIX,
    HISTORY_PREFIX,
    drift_partition,
    key,
    parse_time,
    sortable_time,
)

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

#: How long closed occurrences are kept for ``toilkit drift report``.
DEFAULT_HISTORY_DAYS = 400
#: Attribute paths kept per finding for the report's noisiest attributes.
_MAX_STORED_ATTRIBUTES = 50
#: DynamoDB writes in flight at once for one state.
_WRITE_CONCURRENCY = 8

CloseOutcome = Literal["resolved", "ignored"]


@dataclass(frozen=True)
class FindingRecord:
    """An open finding as stored."""

    state: str
    fingerprint: str
    address: str
    kind: FindingKind
    resource_type: str
    first_seen: datetime
    last_seen: datetime
    first_scan_id: str
    claimed_by: Actor | None = None
    suspects: tuple[Suspect, ...] = ()
    attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reconciliation:
    """One state's findings after one scan, compared with what was open before."""

    state: str
    #: The plan's findings with their history (status, first seen, claimer, suspects),
    #: as ``DriftDetected`` carries them.
    current: tuple[DriftFinding, ...] = ()
    resolved: tuple[FindingRecord, ...] = ()
    ignored: tuple[FindingRecord, ...] = ()

    @property
    def new(self) -> tuple[DriftFinding, ...]:
        return tuple(t for t in self.current if t.status == "new")

    @property
    def still_open(self) -> tuple[DriftFinding, ...]:
        return tuple(t for t in self.current if t.status == "open")

    def with_suspects(self, suspects: Mapping[str, tuple[Suspect, ...]]) -> Reconciliation:
        """A copy where the findings named in ``suspects`` (by fingerprint) carry them."""
        current = tuple(
            t.model_copy(update={"suspects": suspects.get(t.fingerprint, t.suspects)})
            for t in self.current
        )
        return replace(self, current=current)


def reconcile(
    previous: Mapping[str, FindingRecord],
    summary: PlanSummary,
    *,
    scan_id: str,
    now: datetime,
    mode: ScanMode,
) -> Reconciliation:
    """Compare a plan's findings with the open records of its state (pure).

    Args:
        previous: The state's open records by fingerprint.
        summary: The parsed plan.
        scan_id: This scan; a record this scan created still counts as new.
        now: The scan time.
        mode: ``refresh_only`` plans cannot see pending changes, so they never close
            ``pending`` records.
    """
    watched: frozenset[FindingKind] = (
        frozenset({"drift"}) if mode == "refresh_only" else frozenset({"drift", "pending"})
    )
    current: dict[str, DriftFinding] = {}
    for finding in summary.reported_findings:
        if finding.fingerprint in current:
            continue
        record = previous.get(finding.fingerprint)
        is_new = record is None or record.first_scan_id == scan_id
        current[finding.fingerprint] = to_event_finding(
            finding,
            status="new" if is_new else "open",
            first_seen=record.first_seen if record is not None else now,
            claimed_by=record.claimed_by if record is not None else None,
            suspects=record.suspects if record is not None else (),
        )
    now_ignored = {f.fingerprint for f in summary.findings if f.ignored}
    # Before issue #14 a drift's revert was recorded as a pending finding of its own; the
    # drift finding now carries it, so such a record closes quietly, not as "applied".
    reverted = {f.address for f in summary.reported_findings if f.revert is not None}
    reverted -= {f.address for f in summary.reported_findings if f.kind == "pending"}
    resolved: list[FindingRecord] = []
    ignored: list[FindingRecord] = []
    for fingerprint, record in sorted(previous.items()):
        if fingerprint in current or record.kind not in watched:
            continue
        quietly = fingerprint in now_ignored or (
            record.kind == "pending" and record.address in reverted
        )
        (ignored if quietly else resolved).append(record)
    return Reconciliation(
        state=summary.state,
        current=tuple(current.values()),
        resolved=tuple(resolved),
        ignored=tuple(ignored),
    )


@dataclass(frozen=True)
class Occurrence:
    """One drift from first sighting to close (or still open), for reports."""

    state: str
    fingerprint: str
    address: str
    kind: FindingKind
    first_seen: datetime
    closed_at: datetime | None = None
    outcome: CloseOutcome | Literal["open"] = "open"
    claimed_by: str | None = None
    attributes: tuple[str, ...] = ()

    @property
    def time_to_resolve(self) -> timedelta | None:
        if self.outcome != "resolved" or self.closed_at is None:
            return None
        return self.closed_at - self.first_seen


@dataclass
class LifecycleStore:
    """Finding records in the shared DynamoDB state table.

    Args:
        dynamodb: The process's DynamoDB client.
        table: ``names.state_table``.
        history_days: Days a closed occurrence is kept (DynamoDB TTL).
    """

    dynamodb: DynamoDBClient
    table: str
    history_days: int = DEFAULT_HISTORY_DAYS
    _writes: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(_WRITE_CONCURRENCY), repr=False
    )

    async def open_findings(self, state: str) -> dict[str, FindingRecord]:
        """The state's open records by fingerprint."""
        items = await self._query(drift_partition(state), FINDING_PREFIX)
        records = [_record_from_item(state, item) for item in items]
        return {r.fingerprint: r for r in records}

    async def record(self, reconciliation: Reconciliation, *, scan_id: str, now: datetime) -> None:
        """Write one state's reconciliation: sightings, then closes.

        Raises:
            TransientError: DynamoDB stayed unreachable (the scan request is retried).
            PermanentError: DynamoDB refused a write.
        """
        state = reconciliation.state
        writes: list[Callable[[], Awaitable[Any]]] = []
        for finding in reconciliation.current:
            writes.append(self._sighting(state, finding, scan_id=scan_id, now=now))
        for record in reconciliation.resolved:
            writes.append(self._close(record, "resolved", scan_id=scan_id, now=now))
        for record in reconciliation.ignored:
            writes.append(self._close(record, "ignored", scan_id=scan_id, now=now))
        await self._run_all(writes)

    async def record_scan(self, state: str, *, status: str, scan_id: str, now: datetime) -> None:
        """Remember that ``state`` was scanned (the report lists states from these)."""
        item = state_scan_item(StateScan(state, scanned_at=now, status=status, scan_id=scan_id))
        await put_item(self.dynamodb, self.table, item, what="drift state scan")

    async def claim(
        self, state: str, fingerprints: Iterable[str], claimed_by: Actor, *, now: datetime
    ) -> list[str]:
        """Record who took these findings; returns the fingerprints that were still open.

        A finding resolved in the meantime has no open record, and is skipped.
        """
        claimed: list[str] = []

        def claim_one(fingerprint: str) -> Callable[[], Awaitable[Any]]:
            async def write() -> None:
                values: dict[str, Any] = {
                    ":name": {"S": claimed_by.name},
                    ":at": {"S": sortable_time(now)},
                }
                expression = f"SET {CLAIMED_BY_NAME} = :name, claimed_at = :at"
                if claimed_by.slack_user_id:
                    values[":slack"] = {"S": claimed_by.slack_user_id}
                    expression += f", {CLAIMED_BY_SLACK} = :slack"
                else:
                    expression += f" REMOVE {CLAIMED_BY_SLACK}"
                try:
                    await update_item(
                        self.dynamodb,
                        self.table,
                        key(drift_partition(state), FINDING_PREFIX + fingerprint),
                        expression,
                        what="drift finding claim",
                        condition="attribute_exists(pk)",
                        values=values,
                    )
                except ConditionFailed:
                    return
                claimed.append(fingerprint)

            return write

        await self._run_all([claim_one(fp) for fp in dict.fromkeys(fingerprints)])
        return claimed

    async def resolved_since(self, state: str, since: datetime) -> dict[str, int]:
        """How many times each fingerprint of ``state`` was resolved at or after ``since``."""
        counts: dict[str, int] = {}
        for item in await self._query(drift_partition(state), HISTORY_PREFIX):
            if item.get("outcome", {}).get("S") != "resolved":
                continue
            if parse_time(item["closed_at"]["S"]) < since:
                continue
            fingerprint = item[FINGERPRINT]["S"]
            counts[fingerprint] = counts.get(fingerprint, 0) + 1
        return counts

    async def scanned_states(self) -> list[StateScan]:
        """Every state the detector has scanned, with its last scan."""
        return [state_scan_from_item(item) for item in await self._query(DRIFT_STATES, "")]

    async def occurrences(self, states: Sequence[str] | None = None) -> list[Occurrence]:
        """Every open and closed occurrence of the given (default: all scanned) states."""
        if states is None:
            states = [s.state for s in await self.scanned_states()]
        found: list[Occurrence] = []
        for state in states:
            for item in await self._query(drift_partition(state), ""):
                sort_key = item["sk"]["S"]
                if sort_key.startswith(FINDING_PREFIX):
                    record = _record_from_item(state, item)
                    found.append(
                        Occurrence(
                            state=state,
                            fingerprint=record.fingerprint,
                            address=record.address,
                            kind=record.kind,
                            first_seen=record.first_seen,
                            claimed_by=record.claimed_by.name if record.claimed_by else None,
                            attributes=_attributes_of(item),
                        )
                    )
                elif sort_key.startswith(HISTORY_PREFIX):
                    found.append(
                        Occurrence(
                            state=state,
                            fingerprint=item[FINGERPRINT]["S"],
                            address=item[ADDRESS]["S"],
                            kind=_kind(item[KIND]["S"]),
                            first_seen=parse_time(item[FIRST_SEEN]["S"]),
                            closed_at=parse_time(item["closed_at"]["S"]),
                            outcome="ignored" if item["outcome"]["S"] == "ignored" else "resolved",
                            claimed_by=item.get(CLAIMED_BY_NAME, {}).get("S"),
                            attributes=_attributes_of(item),
                        )
                    )
        return found

    # ------------------------------------------------------------------ writes

    def _sighting(
        self, state: str, finding: DriftFinding, *, scan_id: str, now: datetime
    ) -> Callable[[], Awaitable[Any]]:
        finding_key = key(drift_partition(state), FINDING_PREFIX + finding.fingerprint)
        if finding.status == "new":
            item: dict[str, Any] = {
                **finding_key,
                "state": {"S": state},
                FINGERPRINT: {"S": finding.fingerprint},
                ADDRESS: {"S": finding.address},
                KIND: {"S": finding.kind},
                "resource_type": {"S": finding.resource_type},
                "status": {"S": "open"},
                FIRST_SEEN: {"S": sortable_time(finding.first_seen)},
                "last_seen": {"S": sortable_time(now)},
                "first_scan_id": {"S": scan_id},
                "last_scan_id": {"S": scan_id},
                "suspects": {"S": _dump_suspects(finding.suspects)},
            }
            paths = sorted({a.path for a in finding.attributes if not a.ignored})
            if paths:
                item["attributes"] = {"SS": paths[:_MAX_STORED_ATTRIBUTES]}
            return lambda: put_item(self.dynamodb, self.table, item, what="drift finding")
        return lambda: update_item(
            self.dynamodb,
            self.table,
            finding_key,
            f"SET last_seen = :now, last_scan_id = :scan, {ADDRESS} = :address, suspects = :suspects",
            what="drift finding",
            values={
                ":now": {"S": sortable_time(now)},
                ":scan": {"S": scan_id},
                ":address": {"S": finding.address},
                ":suspects": {"S": _dump_suspects(finding.suspects)},
            },
        )

    def _close(
        self, record: FindingRecord, outcome: CloseOutcome, *, scan_id: str, now: datetime
    ) -> Callable[[], Awaitable[Any]]:
        history: dict[str, Any] = {
            **key(
                drift_partition(record.state),
                f"{HISTORY_PREFIX}{sortable_time(record.first_seen)}#{record.fingerprint}",
            ),
            "state": {"S": record.state},
            FINGERPRINT: {"S": record.fingerprint},
            ADDRESS: {"S": record.address},
            KIND: {"S": record.kind},
            FIRST_SEEN: {"S": sortable_time(record.first_seen)},
            "closed_at": {"S": sortable_time(now)},
            "closed_by_scan": {"S": scan_id},
            "outcome": {"S": outcome},
            EXPIRES_AT: {"N": str(int((now + timedelta(days=self.history_days)).timestamp()))},
        }
        if record.claimed_by is not None:
            history[CLAIMED_BY_NAME] = {"S": record.claimed_by.name}
        if record.attributes:
            history["attributes"] = {"SS": list(record.attributes)}
        finding_key = key(drift_partition(record.state), FINDING_PREFIX + record.fingerprint)
        # One transaction: the occurrence is either open or closed, never both nor neither.
        return lambda: call_aws(
            "dynamodb.transact_write_items",
            lambda: self.dynamodb.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": self.table, "Item": history}},
                    {"Delete": {"TableName": self.table, "Key": finding_key}},
                ]
            ),
        )

    async def _run_all(self, writes: Sequence[Callable[[], Awaitable[Any]]]) -> None:
        async def bounded(write: Callable[[], Awaitable[Any]]) -> None:
            async with self._writes:
                await write()

        async with asyncio.TaskGroup() as group:
            for write in writes:
                group.create_task(bounded(write))

    async def _query(self, partition: str, prefix: str) -> list[dict[str, Any]]:
        return await query_all(self.dynamodb, self.table, partition, sk_prefix=prefix)


def _kind(text: str) -> FindingKind:
    return "pending" if text == "pending" else "drift"


def _dump_suspects(suspects: Sequence[Suspect]) -> str:
    return json.dumps([s.model_dump(mode="json") for s in suspects], separators=(",", ":"))


def _record_from_item(state: str, item: Mapping[str, Any]) -> FindingRecord:
    suspects_json = item.get("suspects", {}).get("S", "[]")
    return FindingRecord(
        state=state,
        fingerprint=item[FINGERPRINT]["S"],
        address=item[ADDRESS]["S"],
        kind=_kind(item[KIND]["S"]),
        resource_type=item.get("resource_type", {}).get("S", ""),
        first_seen=parse_time(item[FIRST_SEEN]["S"]),
        last_seen=parse_time(item["last_seen"]["S"]),
        first_scan_id=item.get("first_scan_id", {}).get("S", ""),
        claimed_by=claimer_from_item(item),
        suspects=tuple(Suspect.model_validate(s) for s in json.loads(suspects_json)),
        attributes=_attributes_of(item),
    )


def _attributes_of(item: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(item.get("attributes", {}).get("SS", ())))
