"""Records of the drift buttons: stored ignore rules, scans in flight, the audit trail.

Written by the gateway (the **Ignore…** modal, **Re-scan now**) and the CLI
(``toilkit drift ignores remove``); read by the detector (it applies the rules and releases
a state's scan when it is done) and the CLI. Keys are in :mod:`shared.state_table.keys`.

* An **ignore rule** (``drift#ignores`` / ``rule#<id>``) names one state, an address glob,
  optionally an attribute glob, a reason, the last day it applies, and who wrote it when.
  Removing one marks it removed (who, when) instead of deleting it, so the trail stays.
* A **scan in flight** (``drift#scans`` / ``inflight#<state>``) is one conditional put per
  state: a second press finds it and publishes nothing. It expires by itself
  (``expires_at``) if the detector never releases it.
* The **audit trail** (``drift#audit`` / ``<time>#<id>``) has one entry per press, done or
  refused, with who and why.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.errors import ConditionFailed
from shared.events import Actor
from shared.state_table.access import delete_item, get_item, put_item, query_all, update_item
from shared.state_table.keys import (
    DRIFT_AUDIT,
    DRIFT_IGNORES,
    DRIFT_SCANS,
    EXPIRES_AT,
    drift_audit_sort_key,
    ignore_rule_sort_key,
    key,
    parse_time,
    scan_in_flight_sort_key,
    sortable_time,
)

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

#: The expiry an ignore rule gets unless the person picks another day.
DEFAULT_IGNORE_DAYS = 14
#: No ignore rule from Slack or the CLI lasts longer: drift hidden for good belongs in code.
MAX_IGNORE_DAYS = 90
#: An expired rule's note goes with the drift it let through for this long.
EXPIRED_NOTE_DAYS = 30
#: How long a scan in flight blocks a second press if the detector never releases it.
SCAN_IN_FLIGHT_SECONDS = 30 * 60
#: Audit entries are kept this long (DynamoDB TTL).
AUDIT_DAYS = 400


def expiry_problem(expires: date | None, today: date) -> str | None:
    """Why ``expires`` is not a valid last day for a new ignore rule (None: it is)."""
    if expires is None:
        return "Pick the last day the rule applies."
    if expires < today:
        return f"{expires.isoformat()} is in the past; pick today or a later day."
    if expires > today + timedelta(days=MAX_IGNORE_DAYS):
        latest = (today + timedelta(days=MAX_IGNORE_DAYS)).isoformat()
        return f"At most {MAX_IGNORE_DAYS} days ahead (until {latest}); fix it in code instead."
    return None


@dataclass(frozen=True)
class StoredIgnoreRule:
    """One ignore rule written from Slack or the CLI."""

    rule_id: str
    state: str
    address: str
    attribute: str | None
    reason: str
    expires: date
    created_by: Actor
    created_at: datetime
    removed_by: Actor | None = None
    removed_at: datetime | None = None

    def is_expired(self, today: date) -> bool:
        return today > self.expires

    def status(self, today: date) -> str:
        if self.removed_at is not None:
            return "removed"
        return "expired" if self.is_expired(today) else "active"


def new_rule_id() -> str:
    return uuid.uuid4().hex[:10]


@dataclass
class IgnoreRuleStore:
    """Ignore rules in the shared state table."""

    dynamodb: DynamoDBClient
    table: str

    async def add(self, rule: StoredIgnoreRule) -> None:
        item: dict[str, Any] = {
            **key(DRIFT_IGNORES, ignore_rule_sort_key(rule.rule_id)),
            "rule_id": {"S": rule.rule_id},
            "state": {"S": rule.state},
            "address": {"S": rule.address},
            "reason": {"S": rule.reason},
            "expires": {"S": rule.expires.isoformat()},
            "created_at": {"S": sortable_time(rule.created_at)},
            **_actor_attributes("created_by", rule.created_by),
        }
        if rule.attribute:
            item["attribute"] = {"S": rule.attribute}
        await put_item(
            self.dynamodb,
            self.table,
            item,
            what="ignore rule",
            condition="attribute_not_exists(pk)",
        )

    async def all(self) -> list[StoredIgnoreRule]:
        """Every rule, removed ones included, oldest first."""
        items = await query_all(self.dynamodb, self.table, DRIFT_IGNORES, sk_prefix="rule#")
        rules = [_rule_from_item(item) for item in items]
        return sorted(rules, key=lambda r: r.created_at)

    async def in_force(self) -> list[StoredIgnoreRule]:
        """The rules not removed (expired ones included: the detector notes them)."""
        return [r for r in await self.all() if r.removed_at is None]

    async def remove(self, rule_id: str, by: Actor, *, now: datetime) -> StoredIgnoreRule | None:
        """Mark a rule removed; None when there is no such rule (or it was removed already)."""
        values: dict[str, Any] = {
            ":at": {"S": sortable_time(now)},
            **{f":{k}": v for k, v in _actor_attributes("removed_by", by).items()},
        }
        names = ", ".join(f"{k} = :{k}" for k in _actor_attributes("removed_by", by))
        try:
            item = await update_item(
                self.dynamodb,
                self.table,
                key(DRIFT_IGNORES, ignore_rule_sort_key(rule_id)),
                f"SET removed_at = :at, {names}",
                what="drift ignore rule",
                condition="attribute_exists(pk) AND attribute_not_exists(removed_at)",
                values=values,
                return_new=True,
            )
        except ConditionFailed:
            return None
        return _rule_from_item(item)


@dataclass
class ScanGuard:
    """One scan in flight per state, across gateway instances."""

    dynamodb: DynamoDBClient
    table: str
    hold_seconds: int = SCAN_IN_FLIGHT_SECONDS

    async def hold(self, state: str, scan_id: str, by: Actor, *, now: datetime) -> Actor | None:
        """Take the state's slot for ``scan_id``; None when taken, else who holds it."""
        slot = key(DRIFT_SCANS, scan_in_flight_sort_key(state))
        item = {
            **slot,
            "scan_id": {"S": scan_id},
            "since": {"S": sortable_time(now)},
            EXPIRES_AT: {"N": str(int(now.timestamp()) + self.hold_seconds)},
            **_actor_attributes("requested_by", by),
        }
        try:
            await put_item(
                self.dynamodb,
                self.table,
                item,
                what="scan in flight",
                condition=f"attribute_not_exists(pk) OR {EXPIRES_AT} < :now",
                values={":now": {"N": str(int(now.timestamp()))}},
            )
        except ConditionFailed:
            found = await get_item(self.dynamodb, self.table, slot, what="scan in flight")
            return _actor_from(found, "requested_by") if found else Actor(name="someone")
        return None

    async def release(self, state: str, scan_id: str) -> bool:
        """Free the state's slot if ``scan_id`` holds it; True when it did."""
        try:
            await delete_item(
                self.dynamodb,
                self.table,
                key(DRIFT_SCANS, scan_in_flight_sort_key(state)),
                what="scan in flight",
                condition="scan_id = :scan",
                values={":scan": {"S": scan_id}},
            )
        except ConditionFailed:
            return False
        return True


@dataclass(frozen=True)
class AuditEntry:
    """One drift action: who pressed what for which state, and what came of it."""

    at: datetime
    action: str
    state: str
    actor: Actor
    outcome: str
    detail: str = ""
    entry_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])


@dataclass
class DriftAudit:
    """The audit trail of the drift buttons and the CLI's ignore commands."""

    dynamodb: DynamoDBClient
    table: str
    keep_days: int = AUDIT_DAYS

    async def record(self, entry: AuditEntry) -> None:
        expires = entry.at + timedelta(days=self.keep_days)
        item = {
            **key(DRIFT_AUDIT, drift_audit_sort_key(entry.at, entry.entry_id)),
            "action": {"S": entry.action},
            "state": {"S": entry.state},
            "outcome": {"S": entry.outcome},
            "detail": {"S": entry.detail[:2000]},
            "at": {"S": sortable_time(entry.at)},
            EXPIRES_AT: {"N": str(int(expires.timestamp()))},
            **_actor_attributes("actor", entry.actor),
        }
        await put_item(self.dynamodb, self.table, item, what="drift audit")

    async def entries(self) -> list[AuditEntry]:
        items = await query_all(self.dynamodb, self.table, DRIFT_AUDIT)
        return [
            AuditEntry(
                at=parse_time(item["at"]["S"]),
                action=item["action"]["S"],
                state=item["state"]["S"],
                actor=_actor_from(item, "actor"),
                outcome=item["outcome"]["S"],
                detail=item.get("detail", {}).get("S", ""),
                entry_id=item["sk"]["S"].rsplit("#", 1)[-1],
            )
            for item in items
        ]


def _actor_attributes(prefix: str, actor: Actor) -> dict[str, Any]:
    attributes: dict[str, Any] = {f"{prefix}_name": {"S": actor.name}}
    if actor.slack_user_id:
        attributes[f"{prefix}_slack"] = {"S": actor.slack_user_id}
    return attributes


def _actor_from(item: dict[str, Any], prefix: str) -> Actor:
    return Actor(
        name=item.get(f"{prefix}_name", {}).get("S", "someone"),
        slack_user_id=item.get(f"{prefix}_slack", {}).get("S"),
    )


def _rule_from_item(item: dict[str, Any]) -> StoredIgnoreRule:
    removed_at = item.get("removed_at", {}).get("S")
    return StoredIgnoreRule(
        rule_id=item["rule_id"]["S"],
        state=item["state"]["S"],
        address=item["address"]["S"],
        attribute=item.get("attribute", {}).get("S"),
        reason=item["reason"]["S"],
        expires=date.fromisoformat(item["expires"]["S"]),
        created_by=_actor_from(item, "created_by"),
        created_at=parse_time(item["created_at"]["S"]),
        removed_by=_actor_from(item, "removed_by") if removed_at else None,
        removed_at=parse_time(removed_at) if removed_at else None,
    )


def today_utc(now: datetime) -> date:
    return now.astimezone(UTC).date()
