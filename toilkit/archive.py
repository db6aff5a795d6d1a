"""Republish a time window of archived events (the EventBridge archive-and-replay idea).

Every published event is also kept in S3 under ``archive/YYYY/MM/DD/HH/`` (see
:mod:`shared.publishing`). Replaying a window republishes those events in the order they
happened. By default each keeps its event id, so a consumer that handled it already skips
it and only what was never handled runs; ``fresh`` gives outcome events new ids so the
notifier posts them again (e.g. to rebuild a lost Slack channel). Commands are never
re-issued with new ids: that would start a batch run or a scan a second time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from shared.aws import call_aws
from shared.errors import PermanentError, PoisonMessage
from shared.events import EVENT_TYPES, EventBase, event_type_name, new_event_id, parse_event
from shared.publishing import archive_hour_prefix

if TYPE_CHECKING:
    from shared.runtime import Runtime


@dataclass
class ArchiveReplayReport:
    published: int = 0
    matched: int = 0
    unreadable: list[str] = field(default_factory=list)
    dry_run: bool = False


def hour_prefixes(since: datetime, until: datetime) -> list[str]:
    """The archive prefixes (one per hour) that cover ``[since, until]``."""
    start = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    prefixes = []
    while start <= until:
        prefixes.append(archive_hour_prefix(start))
        start += timedelta(hours=1)
    return prefixes


async def load_window(
    runtime: Runtime, since: datetime, until: datetime, types: frozenset[str] | None
) -> tuple[list[EventBase], list[str]]:
    """Archived events with ``since <= occurred_at <= until``, oldest first."""
    s3 = runtime.aws.s3
    events: list[EventBase] = []
    unreadable: list[str] = []
    for prefix in hour_prefixes(since, until):
        paginator = s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=runtime.names.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                response = await call_aws(
                    f"s3.get_object {key}",
                    lambda key=key: s3.get_object(Bucket=runtime.names.bucket, Key=key),  # type: ignore[misc]
                )
                async with response["Body"] as stream:
                    body = await stream.read()
                try:
                    event = parse_event(body)
                except PoisonMessage as exc:
                    unreadable.append(f"{key}: {exc}")
                    continue
                if not since <= event.occurred_at <= until:
                    continue
                if types is not None and event_type_name(event) not in types:
                    continue
                events.append(event)
    events.sort(key=lambda e: e.occurred_at)
    return events, unreadable


async def replay_archive(
    runtime: Runtime,
    *,
    since: datetime,
    until: datetime,
    types: frozenset[str] | None = None,
    fresh: bool = False,
    dry_run: bool = False,
) -> ArchiveReplayReport:
    """Republish archived events of a time window in the order they happened.

    Raises:
        PermanentError: an unknown type was asked for, or ``fresh`` would re-issue a
            command.
    """
    unknown = (types or frozenset()) - set(EVENT_TYPES)
    if unknown:
        raise PermanentError(f"unknown event type(s): {', '.join(sorted(unknown))}")
    events, unreadable = await load_window(runtime, since, until, types)
    report = ArchiveReplayReport(matched=len(events), unreadable=unreadable, dry_run=dry_run)
    if fresh:
        commands = sorted({event_type_name(e) for e in events if not e.is_outcome})
        if commands:
            raise PermanentError(
                f"--fresh would run these commands again: {', '.join(commands)}; "
                "narrow the window with --type to outcome events"
            )
    if dry_run:
        return report
    for archived in events:
        event = archived.model_copy(update={"event_id": new_event_id()}) if fresh else archived
        await runtime.publisher.publish(event)
        report.published += 1
    return report


def parse_since(text: str, now: datetime) -> datetime:
    """``30d``, ``6h``, ``45m`` ago, or an ISO 8601 time (UTC when no zone is given)."""
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if text and text[-1] in units and text[:-1].isdigit():
        return now - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise PermanentError(
            f"cannot read the time {text!r}: use e.g. 30d, 6h, 45m or 2026-11-27T07:00"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def describe(report: ArchiveReplayReport) -> str:
    verb = "would republish" if report.dry_run else "republished"
    count = report.matched if report.dry_run else report.published
    text = f"{verb} {count} archived event(s)"
    if report.unreadable:
        text += f"; {len(report.unreadable)} unreadable object(s) skipped"
    return text
