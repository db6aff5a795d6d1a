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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from shared.aws import call_aws, classify_aws_error
from shared.errors import PermanentError, PoisonMessage, TransientError
from shared.events import EventBase, event_type_name, parse_event
from shared.idempotency import Claim, IdempotencyStore
from shared.publishing import resolve_body
from shared.settings import WorkerSettings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sqs import SQSClient
    from types_aiobotocore_sqs.type_defs import MessageTypeDef

log = logging.getLogger(__name__)

#: A handler takes one typed event and returns nothing; raising says what went wrong.
Handler = Callable[[Any], Awaitable[None]]

#: Seconds a poison message's failure reason is kept (as long as the DLQ keeps messages).
FAILURE_RECORD_TTL = 14 * 24 * 3600


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
        on_outcome: called after each message's outcome is settled in DynamoDB and
            before the message is deleted (metrics, tracing).
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
        self._stopping = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self.stats = WorkerStats()

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Stop receiving; in-flight handlers get ``shutdown_grace`` seconds to finish."""
        if not self._stopping.is_set():
            log.info(
                "%s: stopping; draining %d in-flight message(s)", self.consumer, len(self._inflight)
            )
        self._stopping.set()

    async def run(self, *, burst: bool = False) -> WorkerStats:
        """Consume until :meth:`stop` (or, with ``burst``, until the queue is empty).

        Never raises for a message or an unreachable endpoint: those are logged, backed
        off and retried. Returns the counters.
        """
        self._stopping.clear()
        failures = 0
        log.info(
            "%s: consuming %s (concurrency %d)",
            self.consumer,
            self.queue_name,
            self.settings.concurrency,
        )
        try:
            while not self._stopping.is_set():
                free = self.settings.concurrency - len(self._inflight)
                if free <= 0:
                    await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                wait = (
                    min(1, self.settings.wait_time_seconds)
                    if burst
                    else self.settings.wait_time_seconds
                )
                # In burst mode the queue counts as drained only after an empty receive
                # that began with no handler running (a retry may re-show a message).
                idle_at_start = not self._inflight
                try:
                    messages = await self._receive(min(free, self.settings.max_messages), wait)
                except asyncio.CancelledError:
                    raise
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
                    for message in messages:
                        task = asyncio.create_task(self._process(message))
                        self._inflight.add(task)
                        task.add_done_callback(self._inflight.discard)
                elif burst:
                    if idle_at_start and not self._inflight:
                        break
                    if self._inflight:
                        await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await self._drain()
        log.info("%s: stopped: %s", self.consumer, self.stats)
        return self.stats

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
            # Stopped mid-poll: anything SQS hands out now reappears after its timeout.
            receive.cancel()
            with contextlib.suppress(BaseException):
                await receive
            raise _Stopped
        return list(receive.result().get("Messages", []))

    async def _drain(self) -> None:
        if not self._inflight:
            return
        pending = set(self._inflight)
        _, still_running = await asyncio.wait(pending, timeout=self.settings.shutdown_grace)
        if still_running:
            log.warning(
                "%s: %d handler(s) still running after %.0fs grace; cancelling them "
                "(their messages will be redelivered)",
                self.consumer,
                len(still_running),
                self.settings.shutdown_grace,
            )
            for task in still_running:
                task.cancel()
            await asyncio.gather(*still_running, return_exceptions=True)

    # ------------------------------------------------------------------ one message

    async def _process(self, message: MessageTypeDef) -> None:
        """Settle one message. Never raises (but for cancellation)."""
        message_id = message.get("MessageId", "?")
        try:
            event, outcome = await self._settle(message)
        except asyncio.CancelledError:
            self.stats.count(Outcome.CANCELLED)
            raise
        except Exception:
            # A bug or an outage of DynamoDB: the message reappears after its timeout.
            log.exception(
                "%s: unexpected failure on message %s; it will be redelivered",
                self.consumer,
                message_id,
            )
            self.stats.count(Outcome.RETRY)
            return
        self.stats.count(outcome)
        if self._on_outcome is not None:
            self._on_outcome(event, outcome)
        if outcome in (Outcome.HANDLED, Outcome.DUPLICATE):
            await self._delete(message)

    async def _settle(self, message: MessageTypeDef) -> tuple[EventBase | None, Outcome]:
        receipt = message["ReceiptHandle"]
        message_id = message.get("MessageId", "?")
        receive_count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        attributes = {
            name: value.get("StringValue", "")
            for name, value in message.get("MessageAttributes", {}).items()
        }
        try:
            body = await resolve_body(message.get("Body", ""), attributes, self._s3)
            event = parse_event(body)
            handler = self._handlers.get(type(event))
            if handler is None:
                raise PoisonMessage(
                    f"{self.consumer} has no handler for {event_type_name(event)} "
                    "(check the subscription filter policy)"
                )
        except PermanentError as exc:
            await self._leave_for_dlq(message_id, receipt, str(exc))
            return None, Outcome.DEAD_LETTER
        except TransientError as exc:
            await self._retry_later(message_id, receipt, receive_count, str(exc))
            return None, Outcome.RETRY

        key = f"{self.consumer}#{event.event_id}"
        claim = Claim.ACQUIRED
        if self._idempotency is not None:
            lease = self.settings.handler_timeout + self.settings.visibility_timeout
            try:
                claim = await self._idempotency.claim(key, lease)
            except Exception as exc:
                await self._retry_later(message_id, receipt, receive_count, f"idempotency: {exc}")
                return event, Outcome.RETRY
        if claim is Claim.COMPLETED:
            log.info(
                "%s: %s %s was handled before; skipping the redelivery",
                self.consumer,
                event_type_name(event),
                event.event_id,
            )
            return event, Outcome.DUPLICATE
        if claim is Claim.IN_PROGRESS:
            await self._retry_later(
                message_id, receipt, receive_count, "another worker is handling it"
            )
            return event, Outcome.RETRY

        heartbeat = asyncio.create_task(self._heartbeat(receipt, message_id))
        try:
            async with asyncio.timeout(self.settings.handler_timeout):
                await handler(event)
        except asyncio.CancelledError:
            await self._give_back(key, receipt)
            raise
        except PermanentError as exc:
            await self._release(key)
            await self._leave_for_dlq(
                message_id, receipt, f"{event_type_name(event)} {event.event_id}: {exc}"
            )
            return event, Outcome.DEAD_LETTER
        except Exception as exc:
            await self._release(key)
            reason = (
                f"handler timed out after {self.settings.handler_timeout:g}s"
                if isinstance(exc, TimeoutError)
                else f"{type(exc).__name__}: {exc}"
            )
            if not isinstance(exc, TransientError | TimeoutError):
                log.exception(
                    "%s: handler for %s %s raised",
                    self.consumer,
                    event_type_name(event),
                    event.event_id,
                )
            await self._retry_later(message_id, receipt, receive_count, reason)
            return event, Outcome.RETRY
        finally:
            heartbeat.cancel()
        if self._idempotency is not None:
            await self._idempotency.complete(key)
        return event, Outcome.HANDLED

    # ------------------------------------------------------------------ SQS actions

    async def _heartbeat(self, receipt: str, message_id: str) -> None:
        """Keep a long handler's message hidden until the handler ends."""
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval)
            try:
                await self._sqs.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=receipt,
                    VisibilityTimeout=self.settings.visibility_timeout,
                )
                self.stats.heartbeats += 1
            except Exception as exc:
                log.warning(
                    "%s: cannot extend visibility of %s: %s", self.consumer, message_id, exc
                )

    async def _retry_later(
        self, message_id: str, receipt: str, receive_count: int, reason: str
    ) -> None:
        delay = min(
            self.settings.retry_max_seconds,
            self.settings.retry_base_seconds * 2 ** min(receive_count - 1, 16),
        )
        log.warning(
            "%s: message %s failed (receive %d): %s; retrying in %.0fs",
            self.consumer,
            message_id,
            receive_count,
            reason,
            delay,
        )
        await self._set_visibility(receipt, int(delay), message_id)

    async def _leave_for_dlq(self, message_id: str, receipt: str, reason: str) -> None:
        first = True
        if self._idempotency is not None:
            try:
                first = await self._idempotency.record_failure_once(
                    failure_key(self.queue_name, message_id), reason, FAILURE_RECORD_TTL
                )
            except Exception as exc:
                log.warning("%s: cannot record why %s failed: %s", self.consumer, message_id, exc)
        if first:
            log.error(
                "%s: message %s on %s cannot be handled and is left for the DLQ: %s",
                self.consumer,
                message_id,
                self.queue_name,
                reason,
            )
        # Visible at once: the redrive policy moves it after maxReceiveCount receives.
        await self._set_visibility(receipt, 0, message_id)

    async def _give_back(self, key: str, receipt: str) -> None:
        """A cancelled handler: free the event and let another worker take it now."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._release(key), 5)
            await asyncio.wait_for(self._set_visibility(receipt, 0, "(cancelled)"), 5)

    async def _release(self, key: str) -> None:
        if self._idempotency is None:
            return
        try:
            await self._idempotency.release(key)
        except Exception as exc:
            # The INPROGRESS record expires after the lease; the retry waits until then.
            log.warning("%s: cannot release %s: %s", self.consumer, key, exc)

    async def _set_visibility(self, receipt: str, seconds: int, message_id: str) -> None:
        try:
            await call_aws(
                "sqs.change_message_visibility",
                lambda: self._sqs.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=receipt, VisibilityTimeout=seconds
                ),
            )
        except Exception as exc:
            log.warning("%s: cannot change visibility of %s: %s", self.consumer, message_id, exc)

    async def _delete(self, message: MessageTypeDef) -> None:
        try:
            await call_aws(
                "sqs.delete_message",
                lambda: self._sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                ),
            )
        except Exception as exc:
            # Redelivered later and then skipped as a duplicate: nothing is lost.
            log.warning("%s: cannot delete %s: %s", self.consumer, message.get("MessageId"), exc)


class _Stopped(Exception):
    """Raised inside the receive loop when stop() interrupted a long poll."""


def failure_key(queue_name: str, message_id: str) -> str:
    """The idempotency-table key under which a dead-lettered message's reason is kept."""
    return f"failure#{queue_name}#{message_id}"


def stop_on_signals(*stoppables: Callable[[], None]) -> None:
    """Call each ``stop`` on SIGTERM or SIGINT (graceful shutdown for containers and Ctrl-C)."""
    loop = asyncio.get_running_loop()

    def _stop_all() -> None:
        for stop in stoppables:
            stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _stop_all)
