"""What a service's Lambda function (``services/<name>/function.py``) and the sandbox that
hosts it (``toilkit/aws_lambda.py``) agree on: the two kinds of function, the SQS records
Lambda delivers in the shape the worker reads, and the partial batch response.

A function is built once per sandbox from its service's ``build_<name>``; the sandbox owns
the event loop, the AWS clients and the secrets, and hands each invocation to the function.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import SecretStr

if TYPE_CHECKING:
    from types_aiobotocore_sqs.type_defs import MessageTypeDef

    from shared.runtime import Runtime
    from shared.secrets import SsmSecrets
    from shared.worker import Worker


@dataclass(frozen=True)
class FunctionContext:
    """What the sandbox hands a function's builder.

    Attributes:
        runtime: the process's AWS clients, names, publisher and worker factory.
        secrets: the SSM parameters configured for the function (possibly none).
        secrets_read: the first read of the secrets, still under way while the function
            is built (None: done already); :meth:`secret_overrides` waits for it, so a
            builder does what needs no secret first.
    """

    runtime: Runtime
    secrets: SsmSecrets
    secrets_read: asyncio.Future[None] | None = None

    async def secret_overrides(self, **fields: str) -> dict[str, SecretStr]:
        """Settings overrides: ``fields`` maps a settings field to a secret's key; secrets
        that are not configured are left to the environment. Waits for the first read.

        Raises:
            ConfigError: the first read failed (the message names the parameter).
        """
        if self.secrets_read is not None:
            await self.secrets_read
        chosen = {name: self.secrets.get(key) for name, key in fields.items()}
        return {name: value for name, value in chosen.items() if value is not None}


@runtime_checkable
class WorkerFunction(Protocol):
    """A service behind SQS event source mappings (and scheduled invocations)."""

    async def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Handle one invocation and return its partial batch response."""
        ...

    async def aclose(self) -> None:
        """Release what the service holds (when the sandbox is closed)."""
        ...


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request as a function URL delivered it, decoded."""

    method: str
    path: str
    body: bytes
    #: Every value of each header, by lower-case name.
    headers: Mapping[str, Sequence[str]]
    query: str = ""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: str
    headers: Mapping[str, str] = field(
        default_factory=lambda: {"Content-Type": "text/plain; charset=utf-8"}
    )


@runtime_checkable
class HttpFunction(Protocol):
    """A service behind a function URL (the gateway)."""

    async def handle_http(self, request: HttpRequest, *, time_left: float) -> HttpResponse:
        """Answer one request; ``time_left`` is what the invocation may still spend."""
        ...

    async def aclose(self) -> None: ...


FunctionBuilder = Callable[[FunctionContext], Awaitable[WorkerFunction | HttpFunction]]


def sqs_message(record: Mapping[str, Any]) -> MessageTypeDef:
    """A Lambda SQS record in the shape ReceiveMessage returns (what the worker reads)."""
    attributes: dict[str, Any] = {
        name: {"StringValue": value["stringValue"], "DataType": value.get("dataType", "String")}
        for name, value in (record.get("messageAttributes") or {}).items()
        if value.get("stringValue") is not None
    }
    return {
        "MessageId": record["messageId"],
        "ReceiptHandle": record["receiptHandle"],
        "Body": record.get("body", ""),
        "Attributes": dict(record.get("attributes") or {}),
        "MessageAttributes": attributes,
    }


def queue_name_of(record: Mapping[str, Any]) -> str:
    """The queue an SQS record came from (the last part of ``eventSourceARN``)."""
    return str(record.get("eventSourceARN", "")).rsplit(":", 1)[-1]


def batch_response(failed_ids: Sequence[str]) -> dict[str, Any]:
    """The partial batch response that leaves only ``failed_ids`` on the queue."""
    return {"batchItemFailures": [{"itemIdentifier": i} for i in failed_ids]}


class QueueWorkerFunction:
    """A service whose whole job in Lambda is its queue (the notifier, the detector).

    The messages go through :meth:`shared.worker.Worker.process_received`: the same
    handlers, idempotency, poison handling and retry backoff as under ``toilkit serve``.

    Args:
        worker: the service's worker, its handlers registered.
        close: called when the sandbox is closed (the notifier's Slack session).
    """

    def __init__(self, worker: Worker, close: Callable[[], Awaitable[None]] | None = None) -> None:
        self.worker = worker
        self._close = close

    async def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        records = list(event.get("Records") or [])
        failed = await self.worker.process_received([sqs_message(r) for r in records])
        return batch_response(failed)

    async def aclose(self) -> None:
        if self._close is not None:
            await self._close()
