"""The SQS worker runtime every consuming service runs.

A :class:`Worker` long-polls one queue and runs one async handler per event type, with
bounded concurrency. Each message gets its own outcome, so one failure never fails the
others:

* handled -> the event is marked COMPLETED (idempotency) and the message deleted;
* a redelivered event that was handled already -> deleted, the handler is not called;
* transient failure (or a handler timeout) -> the message is hidden again for a backoff
  that grows with its receive count, and SQS redelivers it;
* poison (unparseable, unknown type) or permanent failure -> logged once with the message
  id and reason, the reason recorded, and the message made visible at once so SQS's
  redrive policy moves it to the DLQ after ``maxReceiveCount`` receives.

Long handlers keep their message hidden with a heartbeat that extends its visibility.
``stop()`` (wired to SIGTERM/SIGINT by :func:`stop_on_signals`) stops receiving, lets
in-flight handlers finish within a grace period, then cancels the rest and makes their
messages visible again. ``run(burst=True)`` drains the queue and returns (tests, CLI).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from shared.acks import Acknowledger, Settled
from shared.aws import call_aws, classify_aws_error
from shared.errors import PermanentError, PoisonMessage, TransientError
from shared.events import EventBase, event_type_name, parse_event
from shared.idempotency import INTERRUPTED, Claim, IdempotencyStore
from shared.metrics import WorkerMetrics
from shared.observability import event_log_fields, log_context
from shared.ops import DeadLetter
from shared.publishing import resolve_body
from shared.settings import MAX_VISIBILITY_SECONDS, WorkerSettings
from shared.topology import DLQ_RETENTION_SECONDS

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sqs import SQSClient
    from types_aiobotocore_sqs.type_defs import MessageTypeDef

log = logging.getLogger(__name__)

#: A handler takes one typed event and returns nothing; raising says what went wrong.
Handler = Callable[[Any], Awaitable[None]]

#: Seconds a poison message's failure reason is kept (as long as the DLQ keeps messages).
FAILURE_RECORD_TTL = DLQ_RETENTION_SECONDS


class Outcome(Enum):
    HANDLED = "handled"
    DUPLICATE = "duplicate"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"
    CANCELLED = "cancelled"


@dataclass
class WorkerStats:
    """Counters of what a worker did since it started."""

    received: int = 0
    handled: int = 0
    duplicates: int = 0
    retried: int = 0
    dead_lettered: int = 0
    cancelled: int = 0
    heartbeats: int = 0
    receive_failures: int = 0

    def count(self, outcome: Outcome) -> None:
        field = {
            Outcome.HANDLED: "handled",
            Outcome.DUPLICATE: "duplicates",
            Outcome.RETRY: "retried",
            Outcome.DEAD_LETTER: "dead_lettered",
            Outcome.CANCELLED: "cancelled",
        }[outcome]
        setattr(self, field, getattr(self, field) + 1)


@dataclass
class _Prepared:
    """A decoded message waiting for its handler."""

    message: MessageTypeDef
    event: EventBase
    handler: Handler
    receive_count: int

    @property
    def key(self) -> str:
        return self.event.event_id

    @property
    def message_id(self) -> str:
        return self.message.get("MessageId", "?")


class Worker:
    """Consumes one SQS queue and dispatches each event to its handler.

    Args:
        consumer: the consuming service's name (part of the idempotency key).
        queue_url: the queue to consume.
        handlers: event class -> handler coroutine function, built once at start-up.
        sqs: the process's SQS client.
        s3: the process's S3 client (to fetch offloaded payloads).
        idempotency: the idempotency store; None turns deduplication off (benchmarks).
        settings: concurrency, timeouts, backoff.
        on_outcome: called once an outcome is settled (for HANDLED: after the event is
            recorded as completed) and before the message is deleted (metrics, tracing).
        metrics: told of each handler attempt and each message given up on.
        on_dead_letter: awaited once for each message given up on (poison, a permanent
            failure, or a failure on receive ``max_receive_count``); never fails a message.
        max_receive_count: the queue's redrive ``maxReceiveCount`` (None: unknown, so a
            transient failure on the last receive is not recognised as the last).
    """

    def __init__(
        self,
        *,
        consumer: str,
        queue_url: str,
        handlers: Mapping[type[EventBase], Handler],
        sqs: SQSClient,
        s3: S3Client,
        idempotency: IdempotencyStore | None,
        settings: WorkerSettings | None = None,
        on_outcome: Callable[[EventBase | None, Outcome], None] | None = None,
        metrics: WorkerMetrics | None = None,
        on_dead_letter: Callable[[DeadLetter], Awaitable[None]] | None = None,
        max_receive_count: int | None = None,
    ) -> None:
        self.consumer = consumer
        self.queue_url = queue_url
        self.queue_name = queue_url.rstrip("/").rsplit("/", 1)[-1]
        self._handlers = dict(handlers)
        self._sqs = sqs
        self._s3 = s3
        self._idempotency = idempotency
        self.settings = settings or WorkerSettings()
        self._on_outcome = on_outcome
        self._metrics = metrics
        self._on_dead_letter = on_dead_letter
        self._max_receive_count = max_receive_count
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._busy = 0  # messages received and not settled yet
        self._batches: set[asyncio.Task[set[str]]] = set()
        self._acks = Acknowledger(self._acknowledge)
        self._interrupted_receive: asyncio.Future[Any] | None = None
        self.stats = WorkerStats()

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Stop receiving; in-flight handlers get ``shutdown_grace`` seconds to finish."""
        if not self._stopping.is_set():
            log.info("%s: stopping; draining %d in-flight message(s)", self.consumer, self._busy)
        self._stopping.set()

    async def run(self, *, burst: bool = False) -> WorkerStats:
        """Consume until :meth:`stop` (or, with ``burst``, until the queue is empty).

        Never raises for a message or an unreachable endpoint: those are logged, backed
        off and retried. Returns the counters. Every line it logs names its service.
        """
        with log_context(service=self.consumer):
            return await self._consume(burst)

    async def _consume(self, burst: bool) -> WorkerStats:
        self._stopping.clear()
        failures = 0
        log.info(
            "%s: consuming %s (concurrency %d)",
            self.consumer,
            self.queue_name,
            self.settings.concurrency,
        )
        wait = min(1, self.settings.wait_time_seconds) if burst else self.settings.wait_time_seconds
        try:
            while not self._stopping.is_set():
                free = self.settings.concurrency - self._busy
                if free <= 0:
                    await self._wait_for_a_slot()
                    continue
                # In burst mode the queue counts as drained only after an empty receive
                # that began with nothing in flight (a retry may show a message again).
                idle_at_start = self._busy == 0
                try:
                    messages = await self._receive(min(free, self.settings.max_messages), wait)
                except _Stopped:
                    break
                except Exception as exc:
                    failures += 1
                    self.stats.receive_failures += 1
                    delay = self._receive_backoff(failures)
                    log.warning(
                        "%s: cannot receive from %s (%s); attempt %d, retrying in %.1fs",
                        self.consumer,
                        self.queue_name,
                        classify_aws_error(exc, "sqs.receive_message"),
                        failures,
                        delay,
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), delay)
                    continue
                if failures:
                    log.info(
                        "%s: %s is reachable again after %d failed receive(s)",
                        self.consumer,
                        self.queue_name,
                        failures,
                    )
                    failures = 0
                if messages:
                    self.stats.received += len(messages)
                    self._busy += len(messages)
                    task = asyncio.create_task(self._process_batch(messages))
                    self._batches.add(task)
                    task.add_done_callback(self._batches.discard)
                elif burst:
                    if idle_at_start and self._busy == 0:
                        break
                    if self._busy:
                        await self._wait_for_a_slot()
        finally:
            await asyncio.gather(self._drain(), self._give_back_interrupted_receive())
            await self._acks.close()
        log.info("%s: stopped: %s", self.consumer, self.stats)
        return self.stats

    async def _wait_for_a_slot(self) -> None:
        self._slot_freed.clear()
        await self._slot_freed.wait()

    def _receive_backoff(self, failures: int) -> float:
        cap = self.settings.retry_max_seconds
        base = max(self.settings.retry_base_seconds, 0.05)
        return float(min(cap, base * 2 ** min(failures - 1, 16)) * random.uniform(0.5, 1.0))

    async def _receive(self, count: int, wait_seconds: int) -> list[MessageTypeDef]:
        receive = asyncio.ensure_future(
            self._sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=count,
                WaitTimeSeconds=wait_seconds,
                VisibilityTimeout=self.settings.visibility_timeout,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
        )
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({receive, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not receive.done():
            # Stopped mid-poll. Cancelling the request would not stop SQS from handing
            # messages to it, and those would stay hidden for a whole visibility timeout;
            # so the poll is left to finish and what it brings is given back at once.
            self._interrupted_receive = receive
            raise _Stopped
        return list(receive.result().get("Messages", []))

    async def _give_back_interrupted_receive(self) -> None:
        receive, self._interrupted_receive = self._interrupted_receive, None
        if receive is None:
            return
        try:
            response = await asyncio.wait_for(receive, self.settings.shutdown_grace)
        except TimeoutError:
            return  # cancelled by wait_for; anything it got reappears after its timeout
        except Exception:
            return  # the poll failed: it received nothing
        messages = response.get("Messages", [])
        if messages:
            log.info(
                "%s: giving back %d message(s) received while stopping",
                self.consumer,
                len(messages),
            )
            entries: list[Any] = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(messages)
            ]
            with contextlib.suppress(Exception):
                await self._sqs.change_message_visibility_batch(
                    QueueUrl=self.queue_url, Entries=entries
                )

    async def _drain(self) -> None:
        if not self._batches:
            return
        _, still_running = await asyncio.wait(
            set(self._batches), timeout=self.settings.shutdown_grace
        )
        if still_running:
            log.warning(
                "%s: %d message(s) still in flight after %.0fs grace; cancelling them "
                "(they will be redelivered)",
                self.consumer,
                self._busy,
                self.settings.shutdown_grace,
            )
            for task in still_running:
                task.cancel()
            await asyncio.gather(*still_running, return_exceptions=True)

    # ------------------------------------------------------------------ messages

    def _settled(self, outcome: Outcome) -> None:
        self.stats.count(outcome)
        self._busy -= 1
        self._slot_freed.set()

    async def _process_batch(self, messages: Sequence[MessageTypeDef]) -> set[str]:
        with log_context(service=self.consumer):
            return await self._settle_batch(messages)

    async def _settle_batch(self, messages: Sequence[MessageTypeDef]) -> set[str]:
        """Decode a received batch, claim its events in one request, run the handlers.

        Returns the ids of the messages whose event is handled (now or before); every
        other message has been given its outcome (retry later, left for the DLQ).
        """
        prepared: list[_Prepared] = []
        for message in messages:
            try:
                item = await self._prepare(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "%s: cannot decode message %s", self.consumer, message.get("MessageId")
                )
                item = None
                self._settled(Outcome.RETRY)
            if item is not None:
                prepared.append(item)
        if not prepared:
            return set()
        claims = dict.fromkeys((p.key for p in prepared), Claim.ACQUIRED)
        if self._idempotency is not None:
            lease = self.settings.visibility_timeout  # renewed by the heartbeat
            try:
                claims = await self._idempotency.claim_many(
                    [f"{self.consumer}#{p.key}" for p in prepared], lease
                )
                claims = {k.split("#", 1)[1]: v for k, v in claims.items()}
            except Exception as exc:
                for p in prepared:
                    await self._retry_later(p.message, p.receive_count, f"idempotency: {exc}")
                    self._settled(Outcome.RETRY)
                return set()
        first_of_key: set[str] = set()
        runs = []
        for p in prepared:
            claim = claims[p.key]
            repeated = claim is Claim.ACQUIRED and p.key in first_of_key
            if repeated:
                claim = Claim.IN_PROGRESS  # the same event twice in one batch: ours
            first_of_key.add(p.key)
            runs.append(self._process(p, claim, claim_is_ours=repeated))
        outcomes = await asyncio.gather(*runs)
        return {
            p.message_id
            for p, outcome in zip(prepared, outcomes, strict=True)
            if outcome in (Outcome.HANDLED, Outcome.DUPLICATE)
        }

    async def _prepare(self, message: MessageTypeDef) -> _Prepared | None:
        """Decode one message; poison is settled here (None), the rest is returned."""
        message_id = message.get("MessageId", "?")
        receive_count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        attributes = {
            name: value.get("StringValue", "")
            for name, value in message.get("MessageAttributes", {}).items()
        }
        try:
            body = await resolve_body(message.get("Body", ""), attributes, self._s3)
            event = parse_event(body, default_event_id=message_id)
            handler = self._handlers.get(type(event))
            if handler is None:
                raise PoisonMessage(
                    f"{self.consumer} has no handler for {event_type_name(event)} "
                    "(check the subscription filter policy)"
                )
        except PermanentError as exc:
            await self._leave_for_dlq(message, str(exc), poison=isinstance(exc, PoisonMessage))
            self._settled(Outcome.DEAD_LETTER)
            return None
        except TransientError as exc:
            await self._retry_later(message, receive_count, str(exc))
            self._settled(Outcome.RETRY)
            return None
        return _Prepared(message, event, handler, receive_count)

    async def _process(
        self, item: _Prepared, claim: Claim, *, claim_is_ours: bool = False
    ) -> Outcome:
        """Run one handler (its log lines carry the event's ids), settle its message and
        count the attempt. Never raises (but for cancellation)."""
        with log_context(message_id=item.message_id, **event_log_fields(item.event)):
            started = time.monotonic()
            last = claim is Claim.ACQUIRED and self._is_last_receive(item.receive_count)
            if last:  # if this worker never returns, dlq show still says why
                await self._record_reason(item.message, self._interrupted_reason(item), INTERRUPTED)
            outcome = await self._settle(item, claim, claim_is_ours)
            if last and outcome is Outcome.HANDLED and self._idempotency is not None:
                with contextlib.suppress(Exception):
                    await self._idempotency.forget_interrupted(self._failure_key(item.message))
            if self._metrics is not None and claim is Claim.ACQUIRED:  # the handler ran
                seconds, event_type = time.monotonic() - started, event_type_name(item.event)
                if outcome is Outcome.HANDLED:
                    self._metrics.handled(self.consumer, event_type, seconds)
                elif outcome in (Outcome.RETRY, Outcome.DEAD_LETTER):
                    self._metrics.failed(self.consumer, event_type, seconds)
            return outcome

    async def _settle(self, item: _Prepared, claim: Claim, claim_is_ours: bool) -> Outcome:
        try:
            outcome = await self._run_handler(item, claim, claim_is_ours)
        except asyncio.CancelledError:
            self._settled(Outcome.CANCELLED)
            raise
        except Exception:
            # A bug or a DynamoDB outage: the message reappears after its timeout.
            log.exception(
                "%s: unexpected failure on message %s; it will be redelivered",
                self.consumer,
                item.message_id,
            )
            outcome = Outcome.RETRY
        self._settled(outcome)
        if outcome is Outcome.HANDLED:
            self._acks.add(f"{self.consumer}#{item.key}", item.message, item.event, outcome)
        elif outcome is Outcome.DUPLICATE:
            self._acks.add(None, item.message, item.event, outcome)
        elif self._on_outcome is not None:
            self._on_outcome(item.event, outcome)
        return outcome

    async def _run_handler(self, item: _Prepared, claim: Claim, claim_is_ours: bool) -> Outcome:
        event, message = item.event, item.message
        if claim is Claim.IN_PROGRESS:
            # A dead worker's claim lapses when its message reappears: take it over (its
            # last seconds waited out here) rather than spend a receive on it, which
            # would dead-letter after a few crashes an event nobody failed to handle.
            claim, wait = await self._take_over(item, claim_is_ours)
            if claim is Claim.IN_PROGRESS:
                await self._retry_later(
                    message,
                    item.receive_count,
                    "another worker is handling it",
                    at_least=wait + 1 if wait else 0,
                )
                return Outcome.RETRY
        if claim is Claim.COMPLETED:
            log.info(
                "%s: %s %s was handled before; skipping the redelivery",
                self.consumer,
                event_type_name(event),
                event.event_id,
            )
            return Outcome.DUPLICATE
        key = f"{self.consumer}#{item.key}"
        heartbeat = asyncio.create_task(self._heartbeat(message, key))
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.settings.handler_timeout):
                await item.handler(event)
        except asyncio.CancelledError:
            await self._give_back(key, message)
            raise
        except PermanentError as exc:
            await self._release(key)
            await self._leave_for_dlq(message, f"{event_type_name(event)} {event.event_id}: {exc}")
            return Outcome.DEAD_LETTER
        except Exception as exc:
            await self._release(key)
            if isinstance(exc, TimeoutError):
                reason = f"handler timed out after {self.settings.handler_timeout:g}s"
            else:
                reason = f"{type(exc).__name__}: {exc}"
                if not isinstance(exc, TransientError):
                    log.exception(
                        "%s: handler for %s %s raised",
                        self.consumer,
                        event_type_name(event),
                        event.event_id,
                    )
            at_least = exc.retry_after if isinstance(exc, TransientError) else 0.0
            await self._retry_later(message, item.receive_count, reason, at_least=at_least)
            return Outcome.RETRY
        finally:
            heartbeat.cancel()
        log.info(
            "%s: handled %s %s (correlation %s) in %.2fs",
            self.consumer,
            event_type_name(event),
            event.event_id,
            event.correlation_id,
            time.monotonic() - started,
        )
        return Outcome.HANDLED

    # ------------------------------------------------------------------ received elsewhere

    async def process_received(self, messages: Sequence[MessageTypeDef]) -> list[str]:
        """Handle messages that something else received and return the ids of those
        that were not handled.

        For a Lambda SQS event source mapping with ``ReportBatchItemFailures``: the
        returned ids are the ``batchItemFailures``. Each message gets the outcome the
        receive loop would give it (idempotency, poison, retry backoff, DLQ); handled and
        duplicate messages are completed and deleted before this returns, because a
        frozen Lambda sandbox cannot flush a batched acknowledgement later.

        Args:
            messages: messages as ReceiveMessage returns them, with their receipt handles
                and the ``ApproximateReceiveCount`` attribute.
        """
        messages = list(messages)
        self.stats.received += len(messages)
        self._busy += len(messages)
        handled = await self._process_batch(messages)
        await self._acks.close()
        return [m.get("MessageId", "?") for m in messages if m.get("MessageId") not in handled]

    # ------------------------------------------------------------------ SQS actions

    async def _take_over(self, item: _Prepared, claim_is_ours: bool) -> tuple[Claim, float]:
        """Claim an event another worker holds if its lease is about to lapse."""
        key = f"{self.consumer}#{item.key}"
        if claim_is_ours or self._acks.holds(key) or self._idempotency is None:
            return Claim.IN_PROGRESS, 0.0  # handled here (the ack is not flushed yet)
        try:
            return await self._idempotency.take_over(key, self.settings.visibility_timeout)
        except Exception:
            return Claim.IN_PROGRESS, 0.0

    async def _heartbeat(self, message: MessageTypeDef, key: str) -> None:
        """Keep a long handler's message hidden, and its claim held, until it ends."""
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval)
            try:
                await self._sqs.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=self.settings.visibility_timeout,
                )
                self.stats.heartbeats += 1
                if self._idempotency is not None and not await self._idempotency.renew(
                    key, self.settings.visibility_timeout
                ):
                    log.warning("%s: lost the claim on %s (taken over)", self.consumer, key)
            except Exception as exc:
                log.warning(
                    "%s: cannot extend visibility or claim of %s: %s",
                    self.consumer,
                    message.get("MessageId"),
                    exc,
                )

    async def _retry_later(
        self, message: MessageTypeDef, receive_count: int, reason: str, at_least: float = 0
    ) -> None:
        if self._is_last_receive(receive_count):  # the redrive policy moves it next
            if await self._record_reason(message, f"{reason} (receive {receive_count})", "retries"):
                log.error(
                    "%s: message %s on %s failed on its last receive and goes to the DLQ: %s",
                    self.consumer,
                    message.get("MessageId"),
                    self.queue_name,
                    reason,
                )
            await self._dead_lettered(message, reason)
        delay = min(
            self.settings.retry_max_seconds,
            self.settings.retry_base_seconds * 2 ** min(receive_count - 1, 16),
        )
        delay = min(max(delay, at_least), MAX_VISIBILITY_SECONDS)
        log.warning(
            "%s: message %s failed (receive %d): %s; retrying in %.0fs",
            self.consumer,
            message.get("MessageId"),
            receive_count,
            reason,
            delay,
        )
        await self._set_visibility(message, int(delay))

    async def _leave_for_dlq(
        self, message: MessageTypeDef, reason: str, *, poison: bool = False
    ) -> None:
        if await self._record_reason(message, reason, "poison" if poison else "permanent"):
            log.error(
                "%s: message %s on %s cannot be handled and is left for the DLQ: %s",
                self.consumer,
                message.get("MessageId", "?"),
                self.queue_name,
                reason,
            )
            await self._dead_lettered(message, reason)
        # Visible at once: the redrive policy moves it after maxReceiveCount receives.
        await self._set_visibility(message, 0)

    def _is_last_receive(self, receive_count: int) -> bool:
        return self._max_receive_count is not None and receive_count >= self._max_receive_count

    def _failure_key(self, message: MessageTypeDef) -> str:
        return failure_key(self.queue_name, message.get("MessageId", "?"))

    def _interrupted_reason(self, item: _Prepared) -> str:
        return (
            f"{event_type_name(item.event)} {item.key}: its last receive ({item.receive_count}) "
            f"began at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} and no handler "
            f"finished with it: the {self.consumer} worker was killed, crashed or stopped "
            f"(its handler timeout is {self.settings.handler_timeout:g}s)"
        )

    async def _record_reason(self, message: MessageTypeDef, reason: str, kind: str) -> bool:
        """Record why ``message`` goes to the DLQ (for ``dlq show``); True the first time,
        or when it replaces an interrupted last receive's record, or when none is kept."""
        if self._idempotency is None:
            return True
        try:
            return await self._idempotency.record_failure_once(
                self._failure_key(message), reason, FAILURE_RECORD_TTL, kind=kind
            )
        except Exception as exc:
            message_id = message.get("MessageId")
            log.warning("%s: cannot record why %s failed: %s", self.consumer, message_id, exc)
            return True

    async def _dead_lettered(self, message: MessageTypeDef, reason: str) -> None:
        """Count and announce a message that is going to the DLQ (never raises)."""
        dead = DeadLetter(self.consumer, self.queue_name, message, reason)
        try:
            if self._metrics is not None:
                self._metrics.dead_lettered(self.consumer, dead.event_type or "unknown")
            if self._on_dead_letter is not None:
                await self._on_dead_letter(dead)
        except Exception:
            log.exception("%s: cannot announce dead-lettered %s", self.consumer, dead.message_id)

    async def _give_back(self, key: str, message: MessageTypeDef) -> None:
        """A cancelled handler: free the event and let another worker take it now."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._release(key), 5)
            await asyncio.wait_for(self._set_visibility(message, 0), 5)

    async def _release(self, key: str) -> None:
        if self._idempotency is None:
            return
        try:
            await self._idempotency.release(key)
        except Exception as exc:
            # The INPROGRESS record expires after the lease; the retry waits until then.
            log.warning("%s: cannot release %s: %s", self.consumer, key, exc)

    async def _set_visibility(self, message: MessageTypeDef, seconds: int) -> None:
        try:
            await call_aws(
                "sqs.change_message_visibility",
                lambda: self._sqs.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=seconds,
                ),
            )
        except Exception as exc:
            log.warning(
                "%s: cannot change visibility of %s: %s",
                self.consumer,
                message.get("MessageId"),
                exc,
            )

    async def _acknowledge(self, batch: list[Settled]) -> None:
        """Record handled events as completed, then delete their messages (batched)."""
        keys = [key for key, *_ in batch if key is not None]
        if keys and self._idempotency is not None:
            try:
                await self._idempotency.complete_many(keys)
            except Exception as exc:
                # Not deleted: redelivered after the lease, when the handler runs again.
                log.warning(
                    "%s: cannot record %d event(s) as handled: %s", self.consumer, len(keys), exc
                )
                batch = [entry for entry in batch if entry[0] is None]
        if self._on_outcome is not None:
            for _, _, event, outcome in batch:
                self._on_outcome(event, outcome)
        if not batch:
            return
        entries: list[Any] = [
            {"Id": str(i), "ReceiptHandle": message["ReceiptHandle"]}
            for i, (_, message, _, _) in enumerate(batch)
        ]
        try:
            response = await call_aws(
                "sqs.delete_message_batch",
                lambda: self._sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries),
            )
            failed: list[Any] = list(response.get("Failed", []))
        except Exception as exc:
            failed = [{"Id": e["Id"], "Message": str(exc)} for e in entries]
        for failure in failed:
            # Redelivered later and then skipped as a duplicate: nothing is lost.
            log.warning(
                "%s: cannot delete a handled message: %s", self.consumer, failure.get("Message")
            )


class _Stopped(Exception):
    """Raised inside the receive loop when stop() interrupted a long poll."""


def failure_key(queue_name: str, message_id: str) -> str:
    """The idempotency-table key under which a dead-lettered message's reason is kept."""
    return f"failure#{queue_name}#{message_id}"


def stop_on_signals(*stoppables: Callable[[], None]) -> None:
    """Call each ``stop`` on SIGTERM or SIGINT (graceful shutdown for containers and
    Ctrl-C); a second signal cancels the calling task at once (a second Ctrl-C)."""
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    signalled = False

    def _stop_all() -> None:
        nonlocal signalled
        if signalled and main_task is not None:
            log.warning("second signal: stopping now without draining")
            main_task.cancel()
            return
        signalled = True
        for stop in stoppables:
            stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _stop_all)
