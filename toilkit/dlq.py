"""Dead-letter queues: see what got stuck, and move it back once the cause is fixed.

``list_dlqs`` and ``peek`` never consume: what they receive is made visible again at once.
``replay`` moves messages back to their source queue: it first receives everything the DLQ
holds (hidden while it works: that is its snapshot, so copies that fail again and come back
with new message ids are never moved twice in one run), then, for each message of the
snapshot, sends a copy with every attribute to the source queue and deletes the original
only after the send succeeded: a crash mid-replay can duplicate a message (the consumer's
idempotency absorbs it) but never lose one. Messages that failed as poison (a body that is
not an event, a type nobody handles) stay unless ``include_poison``: they would only fail
again. With ``include_poison`` and no filter, SQS's own ``StartMessageMoveTask`` is used
where the endpoint has it (moto lacks it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.aws import call_aws
from shared.errors import PermanentError, TransientError
from shared.events import parse_event
from shared.idempotency import IdempotencyStore
from shared.publishing import resolve_body
from shared.topology import QUEUES, Names
from shared.worker import failure_key

if TYPE_CHECKING:
    from shared.aws import AwsClients

log = logging.getLogger(__name__)

#: How many messages ``list`` looks at to find the oldest one.
PEEK_FOR_AGE = 100
#: How long ``replay`` keeps its snapshot hidden (a longer replay: use ``limit``).
REPLAY_HIDE_SECONDS = 900
#: The message attribute a replayed copy carries: the id of the message it copies.
REPLAYED_FROM = "toilkit_replayed_from"
#: Why a dead-lettered message may have no recorded reason.
REASON_UNKNOWN = (
    "(not recorded: its receives ran out before a handler finished with it, i.e. the "
    "worker crashed, was killed or timed out every time it held it; see the worker's log "
    "around the sent time)"
)


@dataclass(frozen=True)
class DlqSummary:
    queue: str
    source: str
    depth: int
    oldest_age_seconds: float | None
    oldest_is_exact: bool


@dataclass(frozen=True)
class DeadMessage:
    """One message in a DLQ, decoded as far as it can be."""

    message_id: str
    type: str | None
    event_id: str | None
    correlation_id: str | None
    occurred_at: str | None
    sent_at: datetime | None
    receive_count: int
    reason: str | None
    body_excerpt: str
    poison: bool = False
    replayed_from: str | None = None


@dataclass
class ReplayReport:
    """What a replay did.

    Attributes:
        held_at_start: messages in the DLQ when the replay began (its snapshot).
        moved: moved back (or, dry run, would be).
        skipped: not matching the filters, or beyond the limit.
        poison: left in the DLQ because they failed as poison.
        failed: could not be moved (see ``errors``); still in the DLQ.
        came_back: copies moved by a replay that are in the DLQ again (failed again).
    """

    held_at_start: int = 0
    moved: int = 0
    skipped: int = 0
    poison: int = 0
    failed: int = 0
    came_back: int = 0
    dry_run: bool = False
    used_move_task: bool = False
    errors: list[str] = field(default_factory=list)


#: The "source" of the unrouted queue: the topic, through no consumer's filter.
UNROUTED_SOURCE = "(the topic: no routable type)"
#: Why a message is in the unrouted queue.
UNROUTED_REASON = (
    "published to the topic without a `type` message attribute any consumer filters on "
    "(missing, or a type nobody handles); fix the publisher, then publish it again"
)


def dlq_names(names: Names) -> dict[str, str]:
    """DLQ name -> its source queue name, for every consumer in the topology, and the
    unrouted queue (what no subscription filter matched)."""
    pairs = {names.dlq(q.consumer): names.queue(q.consumer) for q in QUEUES}
    pairs[names.unrouted] = UNROUTED_SOURCE
    return pairs


def resolve_dlq(names: Names, queue: str) -> tuple[str, str]:
    """Accept a DLQ name, a consumer name or a source queue name; return (dlq, source).

    Raises:
        PermanentError: the name matches no queue of the topology (the message lists them).
    """
    pairs = dlq_names(names)
    for dlq, source in pairs.items():
        consumer = dlq.removeprefix(f"{names.prefix}-").removesuffix("-dlq")
        if queue in (dlq, source, consumer):
            return dlq, source
    raise PermanentError(f"no dead-letter queue called {queue!r}; known: {', '.join(pairs)}")


async def _url(aws: AwsClients, name: str) -> str:
    response = await call_aws(
        f"sqs.get_queue_url {name}", lambda: aws.sqs.get_queue_url(QueueName=name)
    )
    return response["QueueUrl"]


async def _receive(aws: AwsClients, url: str, count: int, hide_for: int) -> list[Any]:
    response = await call_aws(
        "sqs.receive_message",
        lambda: aws.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(10, count),
            WaitTimeSeconds=0,
            VisibilityTimeout=hide_for,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        ),
    )
    return list(response.get("Messages", []))


async def _show_again(aws: AwsClients, url: str, messages: list[Any]) -> None:
    for start in range(0, len(messages), 10):
        entries: list[Any] = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for i, m in enumerate(messages[start : start + 10])
        ]
        await call_aws(
            "sqs.change_message_visibility_batch",
            lambda entries=entries: aws.sqs.change_message_visibility_batch(  # type: ignore[misc]
                QueueUrl=url, Entries=entries
            ),
        )


async def _peek(aws: AwsClients, url: str, limit: int) -> list[Any]:
    """Receive up to ``limit`` messages and make them visible again at once."""
    seen: list[Any] = []
    try:
        while len(seen) < limit:
            batch = await _receive(aws, url, limit - len(seen), hide_for=30)
            if not batch:
                break
            seen.extend(batch)
    finally:
        await _show_again(aws, url, seen)
    return seen


async def list_dlqs(aws: AwsClients, names: Names, now: float | None = None) -> list[DlqSummary]:
    """Every DLQ of the topology with its depth and the age of its oldest message."""
    now = time.time() if now is None else now
    summaries = []
    for dlq, source in dlq_names(names).items():
        url = await _url(aws, dlq)
        attributes = (
            await call_aws(
                "sqs.get_queue_attributes",
                lambda url=url: aws.sqs.get_queue_attributes(  # type: ignore[misc]
                    QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
                ),
            )
        )["Attributes"]
        depth = int(attributes.get("ApproximateNumberOfMessages", "0"))
        oldest = None
        if depth:
            peeked = await _peek(aws, url, PEEK_FOR_AGE)
            sent = [int(m.get("Attributes", {}).get("SentTimestamp", "0")) for m in peeked]
            if sent:
                oldest = max(0.0, now - min(sent) / 1000)
        summaries.append(DlqSummary(dlq, source, depth, oldest, depth <= PEEK_FOR_AGE))
    return summaries


def _text(value: Any) -> str | None:
    """A body field as text: strings as they are, anything else (lists, numbers) as JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def _decode(message: Any, reason: str | None, *, poison: bool = False) -> DeadMessage:
    body = str(message.get("Body", ""))
    attributes = message.get("MessageAttributes", {})
    system = message.get("Attributes", {})
    try:
        decoded = json.loads(body)
    except ValueError:
        decoded = None
    fields = decoded if isinstance(decoded, dict) else {}
    sent = system.get("SentTimestamp")
    try:
        sent_at = datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None
    except (TypeError, ValueError, OverflowError):
        sent_at = None
    return DeadMessage(
        message_id=str(message.get("MessageId", "?")),
        type=_text(fields.get("type")) or attributes.get("type", {}).get("StringValue"),
        event_id=_text(fields.get("event_id")),
        correlation_id=_text(fields.get("correlation_id")),
        occurred_at=_text(fields.get("occurred_at")),
        sent_at=sent_at,
        receive_count=int(system.get("ApproximateReceiveCount", "0") or 0),
        reason=reason,
        body_excerpt=body[:300],
        poison=poison,
        replayed_from=attributes.get(REPLAYED_FROM, {}).get("StringValue"),
    )


async def _failed_as_poison(
    aws: AwsClients, store: IdempotencyStore, source: str, message: Any
) -> tuple[str | None, bool]:
    """The recorded reason of a dead message, and whether it failed as poison.

    Poison is what the worker recorded as such, or, without a record (or a record from an
    older version), a body that does not parse as an event: it would fail again as it is.
    """
    failure = await store.failure(failure_key(source, message.get("MessageId", "")))
    if failure is not None and failure.poison:
        return failure.reason, True
    attributes = {
        name: value.get("StringValue", "")
        for name, value in message.get("MessageAttributes", {}).items()
    }
    try:
        parse_event(await resolve_body(message.get("Body", ""), attributes, aws.s3))
    except PermanentError as exc:  # PoisonMessage, or its offloaded body is gone
        return (failure.reason if failure else f"poison: {exc}"), True
    except TransientError:
        pass  # S3 unreachable: cannot tell; not poison as far as we know
    return (failure.reason if failure else None), False


async def peek(aws: AwsClients, names: Names, queue: str, limit: int = 10) -> list[DeadMessage]:
    """Decoded messages of one DLQ, with the failure reason the worker recorded."""
    dlq, source = resolve_dlq(names, queue)
    messages = await _peek(aws, await _url(aws, dlq), limit)
    store = IdempotencyStore(aws.dynamodb, names.idempotency_table)
    out = []
    for message in messages:
        if source == UNROUTED_SOURCE:
            out.append(_decode(message, UNROUTED_REASON))
            continue
        reason, poison = await _failed_as_poison(aws, store, source, message)
        out.append(_decode(message, reason or REASON_UNKNOWN, poison=poison))
    return out


async def _receive_everything(aws: AwsClients, url: str, hide_for: int) -> list[Any]:
    """Every message the queue holds now, received and hidden for ``hide_for`` seconds."""
    taken: list[Any] = []
    seen: set[str] = set()
    while True:
        batch = await _receive(aws, url, 10, hide_for=hide_for)
        fresh = [m for m in batch if m.get("MessageId") not in seen]
        if not fresh:
            return taken
        seen.update(m.get("MessageId", "") for m in fresh)
        taken.extend(fresh)


async def replay(
    aws: AwsClients,
    names: Names,
    queue: str,
    *,
    event_type: str | None = None,
    correlation_id: str | None = None,
    limit: int | None = None,
    rate: float | None = None,
    dry_run: bool = False,
    include_poison: bool = False,
    sleep: Callable[[float], Any] = asyncio.sleep,
    move: Callable[[AwsClients, Any, str, str], Awaitable[None]] | None = None,
) -> ReplayReport:
    """Move messages from a DLQ back to the queue they failed on: at most what it held when
    the replay began.

    Args:
        queue: the DLQ, its source queue or the consumer's name.
        event_type: only messages of this event type.
        correlation_id: only messages of this scan or run.
        limit: try to move at most this many.
        rate: at most this many messages per second.
        dry_run: count what would move, move nothing (and leave it all visible).
        include_poison: move messages that failed as poison too.
        sleep: injected for tests.
        move: moves one message (default: send a copy, then delete the original).
    """
    move = move or move_one
    dlq, source = resolve_dlq(names, queue)
    if source == UNROUTED_SOURCE:
        raise PermanentError(
            f"{dlq} holds messages no consumer takes; there is no queue to move them back "
            "to: fix their publisher and publish them again"
        )
    dlq_url, source_url = await _url(aws, dlq), await _url(aws, source)
    report = ReplayReport(dry_run=dry_run)
    unfiltered = event_type is None and correlation_id is None and limit is None
    if include_poison and unfiltered and not dry_run:
        depth = await _depth(aws, dlq_url)
        if await _try_move_task(aws, dlq_url, source_url, rate):
            report.used_move_task = True
            report.held_at_start = report.moved = depth
            return report
    store = IdempotencyStore(aws.dynamodb, names.idempotency_table)
    snapshot = await _receive_everything(aws, dlq_url, REPLAY_HIDE_SECONDS)
    report.held_at_start = len(snapshot)
    held: list[Any] = []  # not moved: shown again at the end
    try:
        for message in snapshot:
            decoded = _decode(message, None)
            matches = (event_type is None or decoded.type == event_type) and (
                correlation_id is None or decoded.correlation_id == correlation_id
            )
            if not matches or (limit is not None and report.moved + report.failed >= limit):
                held.append(message)
                report.skipped += 1
                continue
            if not include_poison and (await _failed_as_poison(aws, store, source, message))[1]:
                held.append(message)
                report.poison += 1
                continue
            if dry_run:
                held.append(message)
                report.moved += 1
                continue
            try:
                await move(aws, message, source_url, dlq_url)
                report.moved += 1
            except Exception as exc:
                held.append(message)
                report.failed += 1
                report.errors.append(f"{decoded.message_id}: {exc}")
            if rate:
                await sleep(1 / rate)
    finally:
        await _show_again(aws, dlq_url, held)
    report.came_back = await _count_came_back(aws, dlq_url)
    return report


async def _count_came_back(aws: AwsClients, dlq_url: str) -> int:
    """Replayed copies in the DLQ again (they failed again), among the first 100."""
    peeked = await _peek(aws, dlq_url, PEEK_FOR_AGE)
    return sum(1 for m in peeked if REPLAYED_FROM in m.get("MessageAttributes", {}))


async def _depth(aws: AwsClients, url: str) -> int:
    response = await call_aws(
        "sqs.get_queue_attributes",
        lambda: aws.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        ),
    )
    return int(response["Attributes"].get("ApproximateNumberOfMessages", "0"))


async def move_one(aws: AwsClients, message: Any, source_url: str, dlq_url: str) -> None:
    """Send a copy to the source queue, then delete the original (in that order)."""
    attributes: Any = {
        name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
        for name, value in message.get("MessageAttributes", {}).items()
    }
    # Marks the copy, so a copy that fails again is told apart in the DLQ ("came back").
    attributes[REPLAYED_FROM] = {"DataType": "String", "StringValue": message["MessageId"]}
    await call_aws(
        "sqs.send_message (replay)",
        lambda: aws.sqs.send_message(
            QueueUrl=source_url, MessageBody=message["Body"], MessageAttributes=attributes
        ),
    )
    await call_aws(
        "sqs.delete_message (replay)",
        lambda: aws.sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"]),
    )


async def _try_move_task(
    aws: AwsClients, dlq_url: str, source_url: str, rate: float | None
) -> bool:
    """Start SQS's own move task; False where the endpoint does not have it."""

    async def _arn(url: str) -> str:
        response = await aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return response["Attributes"]["QueueArn"]

    arguments: dict[str, Any] = {
        "SourceArn": await _arn(dlq_url),
        "DestinationArn": await _arn(source_url),
    }
    if rate:
        arguments["MaxNumberOfMessagesPerSecond"] = max(1, int(rate))
    try:
        await aws.sqs.start_message_move_task(**arguments)
    except Exception as exc:
        # The manual path is always correct, so any refusal (moto has no move task and
        # answers 500) just means doing it by hand.
        log.info("StartMessageMoveTask unavailable here (%s); moving messages one by one", exc)
        return False
    return True
