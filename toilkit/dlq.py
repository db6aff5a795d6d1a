"""Dead-letter queues: see what got stuck, and move it back once the cause is fixed.

``list_dlqs`` and ``peek`` never consume: what they receive is made visible again at once.
``replay`` moves messages back to their source queue. Unfiltered, it uses SQS's own
``StartMessageMoveTask`` where the endpoint has it; otherwise (filters, or moto which lacks
it) it receives, sends a copy with every attribute to the source queue, and deletes the
original only after the send succeeded: a crash mid-replay can duplicate a message (the
consumer's idempotency absorbs it) but never lose one.
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
from shared.errors import PermanentError
from shared.idempotency import IdempotencyStore
from shared.topology import QUEUES, Names
from shared.worker import failure_key

if TYPE_CHECKING:
    from shared.aws import AwsClients

log = logging.getLogger(__name__)

#: How many messages ``list`` looks at to find the oldest one.
PEEK_FOR_AGE = 100


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


@dataclass
class ReplayReport:
    moved: int = 0
    skipped: int = 0
    failed: int = 0
    dry_run: bool = False
    used_move_task: bool = False
    errors: list[str] = field(default_factory=list)


def dlq_names(names: Names) -> dict[str, str]:
    """DLQ name -> its source queue name, for every consumer in the topology."""
    return {names.dlq(q.consumer): names.queue(q.consumer) for q in QUEUES}


def resolve_dlq(names: Names, queue: str) -> tuple[str, str]:
    """Accept a DLQ name, a consumer name or a source queue name; return (dlq, source).

    Raises:
        PermanentError: the name matches no queue of the topology (the message lists them).
    """
    pairs = dlq_names(names)
    for dlq, source in pairs.items():
        consumer = source.removeprefix(f"{names.prefix}-")
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


def _decode(message: Any, reason: str | None) -> DeadMessage:
    body = message.get("Body", "")
    attributes = message.get("MessageAttributes", {})
    system = message.get("Attributes", {})
    try:
        decoded = json.loads(body)
    except ValueError:
        decoded = None
    fields = decoded if isinstance(decoded, dict) else {}
    sent = system.get("SentTimestamp")
    return DeadMessage(
        message_id=message.get("MessageId", "?"),
        type=fields.get("type") or attributes.get("type", {}).get("StringValue"),
        event_id=fields.get("event_id"),
        correlation_id=fields.get("correlation_id"),
        occurred_at=fields.get("occurred_at"),
        sent_at=datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None,
        receive_count=int(system.get("ApproximateReceiveCount", "0")),
        reason=reason,
        body_excerpt=body[:300],
    )


async def peek(aws: AwsClients, names: Names, queue: str, limit: int = 10) -> list[DeadMessage]:
    """Decoded messages of one DLQ, with the failure reason the worker recorded."""
    dlq, source = resolve_dlq(names, queue)
    messages = await _peek(aws, await _url(aws, dlq), limit)
    store = IdempotencyStore(aws.dynamodb, names.idempotency_table)
    out = []
    for message in messages:
        reason = await store.failure_reason(failure_key(source, message.get("MessageId", "")))
        out.append(_decode(message, reason))
    return out


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
    sleep: Callable[[float], Any] = asyncio.sleep,
    move: Callable[[AwsClients, Any, str, str], Awaitable[None]] | None = None,
) -> ReplayReport:
    """Move messages from a DLQ back to the queue they failed on.

    Args:
        queue: the DLQ, its source queue or the consumer's name.
        event_type: only messages of this event type.
        correlation_id: only messages of this scan or run.
        limit: try to move at most this many.
        rate: at most this many messages per second.
        dry_run: count what would move, move nothing (and leave it all visible).
        sleep: injected for tests.
        move: moves one message (default: send a copy, then delete the original).
    """
    move = move or move_one
    dlq, source = resolve_dlq(names, queue)
    dlq_url, source_url = await _url(aws, dlq), await _url(aws, source)
    report = ReplayReport(dry_run=dry_run)
    unfiltered = event_type is None and correlation_id is None and limit is None
    if unfiltered and not dry_run:
        depth = (
            await aws.sqs.get_queue_attributes(
                QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
            )
        )["Attributes"].get("ApproximateNumberOfMessages", "0")
        if await _try_move_task(aws, dlq_url, source_url, rate):
            report.used_move_task = True
            report.moved = int(depth)
            return report
    held: list[Any] = []  # skipped (or dry-run) messages, shown again at the end
    try:
        while limit is None or report.moved + report.failed < limit:
            wanted = 10 if limit is None else min(10, limit - report.moved - report.failed)
            batch = await _receive(aws, dlq_url, wanted, hide_for=60)
            if not batch:
                break
            for message in batch:
                decoded = _decode(message, None)
                matches = (event_type is None or decoded.type == event_type) and (
                    correlation_id is None or decoded.correlation_id == correlation_id
                )
                attempted = report.moved + report.failed
                if not matches or dry_run or (limit is not None and attempted >= limit):
                    held.append(message)
                    if matches and dry_run:
                        report.moved += 1
                    else:
                        report.skipped += 1
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
    return report


async def move_one(aws: AwsClients, message: Any, source_url: str, dlq_url: str) -> None:
    """Send a copy to the source queue, then delete the original (in that order)."""
    attributes: Any = {
        name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
        for name, value in message.get("MessageAttributes", {}).items()
    }
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
