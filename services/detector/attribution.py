"""Who probably made an out-of-band change: CloudTrail ``LookupEvents`` per drifted resource.

What the original authors did by hand from operation logs: for each resource that
drifted, look up the write events that name it (by ARN, id or name, the
``ResourceName`` lookup attribute) in a window before the scan, and list the principals
behind them, latest first, mapped to Slack users through ``attribution.slack_users``.

Only ``drift`` findings are attributed (a ``pending`` change is code nobody applied,
which CloudTrail cannot explain), and only read-write events count. Attribution is
best effort: when CloudTrail cannot be reached or refuses the call, the attributor
logs it once, switches itself off for a while (:attr:`CloudTrailAttributor.pause`)
and the scan goes on without suspects.

``LookupEvents`` is limited to 2 requests per second per account and region, so calls
are paced (``requests_per_second``) and a throttled call is retried with backoff.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tenacity import AsyncRetrying

from services.detector.config import AttributionConfig
from shared.aws import call_aws
from shared.errors import PermanentError, TransientError
from shared.events import PlannedFinding, Suspect, utc_now

log = logging.getLogger(__name__)

#: How long attribution stays off after CloudTrail could not be used.
DEFAULT_PAUSE = timedelta(minutes=15)
#: Events per lookup (the API's maximum); CloudTrail returns the latest first.
_PAGE_SIZE = 50


class _Pacer:
    """Spaces calls at least ``1 / rate`` seconds apart (shared by concurrent callers)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait_turn(self) -> None:
        async with self._lock:
            delay = self._next - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._next = time.monotonic() + self.interval


@dataclass(eq=False)
class CloudTrailAttributor:
    """Finds suspects for drifted resources in CloudTrail.

    Args:
        cloudtrail: An aiobotocore CloudTrail client (created once per process).
        config: The ``attribution`` settings.
        clock: The current time (tests inject their own).
        retry: The retry policy of one call (tests pass one without waits).
        pause: How long to stay off after CloudTrail failed.
    """

    cloudtrail: Any
    config: AttributionConfig
    _: KW_ONLY
    clock: Callable[[], datetime] = utc_now
    retry: Callable[[], AsyncRetrying] | None = None
    pause: timedelta = DEFAULT_PAUSE
    last_problem: str | None = field(default=None, init=False)
    _off_until: datetime | None = field(default=None, init=False)
    _pacer: _Pacer = field(init=False)

    def __post_init__(self) -> None:
        self._pacer = _Pacer(self.config.requests_per_second)

    def with_client(self, cloudtrail: Any) -> CloudTrailAttributor:
        """The same attribution against another account's CloudTrail (an assumed role).

        It shares the request pace; a failure there pauses only that account's lookups.
        """
        other = copy.copy(self)
        other.cloudtrail = cloudtrail
        return other

    @property
    def available(self) -> bool:
        """False while attribution is paused after a failure."""
        return self._off_until is None or self.clock() >= self._off_until

    async def suspects_for(
        self, findings: Sequence[PlannedFinding], plan_json: Mapping[str, Any]
    ) -> dict[str, tuple[Suspect, ...]]:
        """Suspects per fingerprint for the ``drift`` findings among ``findings``.

        Never raises for CloudTrail's sake: a failure pauses attribution and the
        findings it could not look up get no suspects.
        """
        found: dict[str, tuple[Suspect, ...]] = {}
        for finding in findings:
            if finding.kind != "drift" or finding.ignored or not self.available:
                continue
            identifiers = resource_identifiers(
                plan_json, finding.address, self.config.identifier_attributes
            )
            suspects = await self._lookup_all(identifiers)
            if suspects:
                found[finding.fingerprint] = suspects
        return found

    async def _lookup_all(self, identifiers: Iterable[str]) -> tuple[Suspect, ...]:
        latest: dict[tuple[str, str], Suspect] = {}
        end = self.clock()
        start = end - timedelta(hours=self.config.lookback_hours)
        for identifier in identifiers:
            if not self.available:
                break
            for suspect in await self._lookup(identifier, start, end):
                key = (suspect.principal, suspect.event_name)
                if key not in latest or latest[key].event_time < suspect.event_time:
                    latest[key] = suspect
        ordered = sorted(latest.values(), key=lambda s: s.event_time, reverse=True)
        return tuple(ordered[: self.config.max_suspects])

    async def _lookup(self, identifier: str, start: datetime, end: datetime) -> list[Suspect]:
        await self._pacer.wait_turn()
        try:
            response = await call_aws(
                "cloudtrail.lookup_events",
                lambda: self.cloudtrail.lookup_events(
                    LookupAttributes=[
                        {"AttributeKey": "ResourceName", "AttributeValue": identifier}
                    ],
                    StartTime=start,
                    EndTime=end,
                    MaxResults=_PAGE_SIZE,
                ),
                self.retry() if self.retry is not None else None,
            )
        except (TransientError, PermanentError) as exc:
            self._switch_off(str(exc))
            return []
        return [s for s in (self._suspect(e) for e in response.get("Events", [])) if s]

    def _suspect(self, event: Mapping[str, Any]) -> Suspect | None:
        if str(event.get("ReadOnly", "")).lower() == "true":
            return None
        try:
            detail = json.loads(event.get("CloudTrailEvent") or "{}")
        except ValueError:
            detail = {}
        identity = detail.get("userIdentity") if isinstance(detail, dict) else None
        identity = identity if isinstance(identity, dict) else {}
        arn = identity.get("arn")
        username = event.get("Username")
        principal = arn or username
        event_time = event.get("EventTime")
        if not principal or not isinstance(event_time, datetime) or not event.get("EventName"):
            return None
        session_name = arn.rsplit("/", 1)[-1] if arn and ":assumed-role/" in arn else None
        return Suspect(
            principal=principal,
            event_name=event["EventName"],
            event_time=event_time.astimezone(UTC),
            slack_user_id=self.config.slack_user_for(arn, username, session_name),
            source_ip=detail.get("sourceIPAddress") if isinstance(detail, dict) else None,
        )

    def _switch_off(self, problem: str) -> None:
        self._off_until = self.clock() + self.pause
        self.last_problem = problem
        log.warning("CloudTrail attribution is off for %s: %s", _minutes(self.pause), problem)


def resource_identifiers(
    plan_json: Mapping[str, Any], address: str, attributes: Sequence[str]
) -> list[str]:
    """The values CloudTrail may know a drifted resource by, from its prior state.

    Values Terraform marks sensitive are never sent anywhere.
    """
    for entry in plan_json.get("resource_drift") or ():
        if not isinstance(entry, dict) or entry.get("address") != address:
            continue
        change = entry.get("change")
        if not isinstance(change, dict):
            continue
        for side in ("before", "after"):
            values = change.get(side)
            sensitive = change.get(f"{side}_sensitive")
            if not isinstance(values, dict):
                continue
            found: list[str] = []
            for name in attributes:
                value = values.get(name)
                marked = sensitive is True or (
                    isinstance(sensitive, dict) and sensitive.get(name) not in (None, False)
                )
                if isinstance(value, str) and value and not marked and value not in found:
                    found.append(value)
            return found
    return []


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:g} min"
