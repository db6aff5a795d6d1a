"""Telling operators that a worker gave up on a message.

The worker runtime is the one place that knows, message by message, that something is
going to a DLQ and why: a poison body, a permanent failure, or a transient one on the last
receive the redrive policy allows. It hands a :class:`DeadLetter` to its ``on_dead_letter``
hook; :class:`DeadLetterAnnouncer` (the hook :class:`~shared.runtime.Runtime` wires) turns
it into a :class:`~shared.events.MessageDeadLettered` on the events topic, which the
notifier draws in the ops channel with the exact ``toilkit replay`` command.

The same code runs under ``toilkit up``/``serve`` and in Lambda (the SQS event source
mappings go through the same runtime), so one mechanism covers both. The CloudWatch alarm
on DLQ depth stays as the backstop for what the runtime cannot see (a function that
crashes or times out before it settles a message).
"""

from __future__ import annotations

import asyncio
import json
import logging
import shlex
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.event_ids import fixed_event_id
from shared.events import MessageDeadLettered

if TYPE_CHECKING:
    from types_aiobotocore_sqs.type_defs import MessageTypeDef

    from shared.publishing import EventPublisher

log = logging.getLogger(__name__)

#: Seconds one announcement may take; a slow SNS must not hold the worker.
ANNOUNCE_SECONDS = 10.0

_NAMESPACE = uuid.UUID("6f1f3c53-7a0e-4a4b-9f55-2c4d0b7d6a11")


@dataclass(frozen=True)
class DeadLetter:
    """A message the worker gave up on, as the worker received it.

    The ids are read from the message itself (the body, else the attributes the publisher
    sets), so a body that is not a valid event still says what it can.

    Attributes:
        consumer: the service.
        queue: the queue it came from.
        message: the SQS message (body and attributes as received).
        reason: why it failed.
    """

    consumer: str
    queue: str
    message: MessageTypeDef
    reason: str

    @property
    def message_id(self) -> str:
        return self.message.get("MessageId", "?")

    @property
    def receive_count(self) -> int:
        count = self.message.get("Attributes", {}).get("ApproximateReceiveCount", "1")
        return int(count) if str(count).isdigit() else 1

    def field(self, name: str) -> str | None:
        """A string field of the body, else the message attribute of that name."""
        value = _body_fields(self.message).get(name)
        if not isinstance(value, str):
            value = _attribute(self.message, name)
        return value if isinstance(value, str) and value else None

    @property
    def event_type(self) -> str | None:
        return self.field("type")


def _attribute(message: MessageTypeDef, name: str) -> str | None:
    attributes: dict[str, Any] = dict(message.get("MessageAttributes", {}))
    value = (attributes.get(name) or {}).get("StringValue")
    return value if isinstance(value, str) else None


def _body_fields(message: MessageTypeDef) -> dict[str, Any]:
    try:
        decoded: Any = json.loads(message.get("Body", ""))
    except ValueError:
        decoded = None
    return decoded if isinstance(decoded, dict) else {}


def replay_filters(message: MessageTypeDef) -> tuple[str | None, str | None]:
    """The (type, correlation id) ``toilkit replay`` sees in a DLQ message.

    Read as :func:`toilkit.dlq.replay` reads it (the body's fields, the ``type`` message
    attribute when the body has none), so a command built from them matches the message.
    """
    fields = _body_fields(message)
    event_type = fields.get("type") or _attribute(message, "type")
    correlation_id = fields.get("correlation_id")
    return (
        event_type if isinstance(event_type, str) else None,
        correlation_id if isinstance(correlation_id, str) else None,
    )


def replay_command(dlq: str, message: MessageTypeDef) -> str:
    """The ``toilkit replay`` command that moves this message back to its queue (and any
    other of the same type and scan or run, which failed the same way)."""
    event_type, correlation_id = replay_filters(message)
    parts = ["toilkit", "replay", dlq]
    if event_type:
        parts += ["--type", event_type]
    if correlation_id:
        parts += ["--correlation-id", correlation_id]
    return shlex.join(parts)


def dead_letter_notice(dead: DeadLetter, *, dlq: str, source: str) -> MessageDeadLettered:
    """The event that announces ``dead``; its id is the same for every announcement of
    the same message, so the notifier posts once."""
    return MessageDeadLettered(
        event_id=fixed_event_id(_NAMESPACE, f"{dead.queue}/{dead.message_id}"),
        correlation_id=dead.field("correlation_id") or dead.message_id,
        source=source,
        consumer=dead.consumer,
        queue=dead.queue,
        dlq=dlq,
        message_id=dead.message_id,
        reason=dead.reason[:2000],
        receive_count=dead.receive_count,
        failed_type=dead.event_type,
        failed_event_id=dead.field("event_id"),
        run_id=dead.field("run_id"),
        replay_command=replay_command(dlq, dead.message),
    )


class DeadLetterAnnouncer:
    """Publishes a :class:`MessageDeadLettered` for each message a worker gives up on.

    Never raises: a failed announcement is logged (the DLQ alarm still fires). A
    ``MessageDeadLettered`` that itself fails is only logged, so a broken ops channel
    cannot announce its own failures in a loop.

    Args:
        publisher: publishes to the events topic.
        dlq_name: the name of a consumer's DLQ (:meth:`shared.topology.Names.dlq`).
    """

    def __init__(self, publisher: EventPublisher, dlq_name: Callable[[str], str]) -> None:
        self._publisher = publisher
        self._dlq_name = dlq_name

    async def __call__(self, dead: DeadLetter) -> None:
        if dead.event_type == "MessageDeadLettered":
            log.error(
                "%s: a dead-letter announcement itself failed (%s); not announcing it again",
                dead.consumer,
                dead.reason,
            )
            return
        dlq = self._dlq_name(dead.consumer)
        try:
            notice = dead_letter_notice(dead, dlq=dlq, source=dead.consumer)
            async with asyncio.timeout(ANNOUNCE_SECONDS):
                await self._publisher.publish(notice)
        except Exception as exc:
            log.warning(
                "%s: cannot announce that message %s goes to %s: %s",
                dead.consumer,
                dead.message_id,
                dlq,
                exc,
            )
            return
        log.info("%s: announced message %s going to %s", dead.consumer, dead.message_id, dlq)
