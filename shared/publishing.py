"""Publishing events to the SNS topic, with large payloads offloaded to S3.

SNS and SQS cap a message at 256 KiB. An event whose JSON is larger than
:data:`OFFLOAD_THRESHOLD` is stored in S3 and the message carries a small pointer
instead; :func:`resolve_body` (used by the worker runtime) fetches it back, so handlers
never see the difference.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import KW_ONLY, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from shared.aws import call_aws
from shared.errors import PoisonMessage
from shared.events import EventBase, ObjectRef, dump_event, event_type_name

if TYPE_CHECKING:
    from tenacity import AsyncRetrying
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sns import SNSClient

log = logging.getLogger(__name__)

#: Bodies above this size go to S3 (SNS/SQS allow 256 KiB including attributes).
OFFLOAD_THRESHOLD = 200 * 1024

#: Where every published event is also kept (``toilkit replay --from-archive``).
ARCHIVE_PREFIX = "archive/"

#: The message attribute that marks a pointer body.
OFFLOAD_ATTRIBUTE = "toilkit_offloaded"
#: The key of the pointer object in an offloaded body.
POINTER_KEY = "toilkit_payload"


class EventPublisher(Protocol):
    """Publishes one event to the events topic (:class:`Publisher` in production; a test's
    recorder or the CLI's stand-in elsewhere)."""

    async def publish(self, event: EventBase) -> Any:
        """Publish ``event``."""


@dataclass(frozen=True)
class Published:
    message_id: str
    offloaded_to: ObjectRef | None = None


def archive_hour_prefix(at: datetime) -> str:
    """The archive's partition for the UTC hour of ``at`` (``toilkit archive`` lists by it)."""
    return f"{ARCHIVE_PREFIX}{at.astimezone(UTC):%Y/%m/%d/%H}/"


def archive_key(event: EventBase) -> str:
    """Where the event archive keeps an event: partitioned by hour, sortable by time."""
    at = event.occurred_at.astimezone(UTC)
    return f"{archive_hour_prefix(at)}{at:%Y%m%dT%H%M%S%f}-{event.event_id}.json"


def payload_key(event: EventBase) -> str:
    day = event.occurred_at.strftime("%Y/%m/%d")
    return f"payloads/{day}/{event_type_name(event)}/{event.event_id}.json"


@dataclass(eq=False)
class Publisher:
    """Publishes events to the toilkit topic.

    Args:
        sns: the process's SNS client.
        s3: the process's S3 client (for offloaded payloads).
        topic_arn: the events topic.
        bucket: where offloaded payloads go.
        offload_threshold: body size in bytes above which the payload goes to S3.
        retry: the retry policy for one call (tests pass one without waits); None:
            :func:`shared.retry.outbound_call_retry`, a fresh one per call.
        archive: also keep every event in S3 under ``archive/YYYY/MM/DD/HH/`` (the
            EventBridge archive-and-replay idea; ``toilkit replay --from-archive``).
    """

    sns: SNSClient
    s3: S3Client
    topic_arn: str
    bucket: str
    _: KW_ONLY
    offload_threshold: int = OFFLOAD_THRESHOLD
    retry: AsyncRetrying | None = None
    archive: bool = True

    async def publish(self, event: EventBase) -> Published:
        """Publish one event; returns the SNS message id and where the payload went.

        Raises:
            TransientError: SNS or S3 stayed unreachable through the retries.
            PermanentError: the call was refused (e.g. the topic does not exist).
        """
        body = dump_event(event)
        event_type = event_type_name(event)
        attributes: dict[str, Any] = {
            "type": {"DataType": "String", "StringValue": event_type},
            "event_id": {"DataType": "String", "StringValue": event.event_id},
            "correlation_id": {"DataType": "String", "StringValue": event.correlation_id},
            "source": {"DataType": "String", "StringValue": event.source},
        }
        ref = None
        encoded = body.encode()
        if len(encoded) > self.offload_threshold:
            ref = ObjectRef(bucket=self.bucket, key=payload_key(event), size=len(encoded))
            await call_aws(
                "s3.put_object",
                lambda: self.s3.put_object(
                    Bucket=ref.bucket, Key=ref.key, Body=encoded, ContentType="application/json"
                ),
                self.retry,
            )
            body = json.dumps(
                {
                    POINTER_KEY: ref.model_dump(),
                    "type": event_type,
                    "event_id": event.event_id,
                }
            )
            attributes[OFFLOAD_ATTRIBUTE] = {"DataType": "String", "StringValue": "true"}
        publishing = call_aws(
            "sns.publish",
            lambda: self.sns.publish(
                TopicArn=self.topic_arn, Message=body, MessageAttributes=attributes
            ),
            self.retry,
        )
        if self.archive:
            response, _ = await asyncio.gather(publishing, self._archive(event, encoded))
        else:
            response = await publishing
        log.debug("published %s %s", event_type, event.event_id)
        return Published(message_id=response["MessageId"], offloaded_to=ref)

    async def _archive(self, event: EventBase, encoded: bytes) -> None:
        """Keep a copy in the archive; a failure is logged, never blocks the event.

        Sensitive parameter values (a command has to carry them to its runner) never
        reach the archive: the copy has them blanked, so a replayed copy is refused by
        validation instead of running with a wrong value.
        """
        redacted = redacted_for_archive(event)
        if redacted is not event:
            encoded = dump_event(redacted).encode()
        key = archive_key(event)
        try:
            await call_aws(
                "s3.put_object (archive)",
                lambda: self.s3.put_object(
                    Bucket=self.bucket, Key=key, Body=encoded, ContentType="application/json"
                ),
                self.retry,
            )
        except Exception as exc:
            log.error("event %s not archived to %s: %s", event.event_id, key, exc)


def redacted_for_archive(event: EventBase) -> EventBase:
    """The event with every sensitive parameter value removed (the same event if none)."""
    parameters = getattr(event, "parameters", ())
    if not any(p.sensitive and p.value is not None for p in parameters):
        return event
    blanked = tuple(p.model_copy(update={"value": None}) if p.sensitive else p for p in parameters)
    return event.model_copy(update={"parameters": blanked})


async def resolve_body(body: str, attributes: dict[str, str], s3: S3Client) -> str:
    """The event JSON of a received message, fetched from S3 when it was offloaded.

    Raises:
        PoisonMessage: the pointer is malformed or the object is gone (it will not come
            back by retrying).
        TransientError: S3 could not be reached.
    """
    if attributes.get(OFFLOAD_ATTRIBUTE) != "true":
        return body
    try:
        pointer = json.loads(body)[POINTER_KEY]
        ref = ObjectRef.model_validate(pointer)
    except (ValueError, KeyError, TypeError) as exc:
        raise PoisonMessage(f"offloaded payload pointer is malformed: {exc}") from exc
    response = await call_aws(
        f"s3.get_object {ref.key}", lambda: s3.get_object(Bucket=ref.bucket, Key=ref.key)
    )
    async with response["Body"] as stream:
        data: bytes = await stream.read()
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise PoisonMessage(f"offloaded payload {ref.key} is not UTF-8") from exc
