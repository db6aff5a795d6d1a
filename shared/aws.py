"""AWS clients, created once per process, and the one place boto errors are classified.

Every client is an aiobotocore client opened into one :class:`contextlib.AsyncExitStack`
once per process (never per message) and closed when it stops. The endpoint comes
from :class:`~shared.settings.AwsSettings`, so the same code talks to AWS, LocalStack
or moto.

A client costs a cold process tens of milliseconds (its service model parsed, then a TLS
context with the CA bundle on its first call), so a process that must start fast (a cold
Lambda sandbox) opens at start only the clients it calls at once; the others open on their
first API call. For the same reason aiobotocore and botocore (some 65 ms of imports) are
imported when the first client opens or the first AWS error is classified, not with this
module: a cold gateway sandbox that answers its first request without AWS never loads them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from shared.errors import ConditionFailed, PermanentError, ToilkitError, TransientError
from shared.retry import outbound_call_retry
from shared.settings import AwsSettings

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import AioSession
    from tenacity import AsyncRetrying
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sns import SNSClient
    from types_aiobotocore_sqs import SQSClient

#: Error codes that mean "try again later" whatever the HTTP status says.
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
        "TransactionInProgressException",
        "KMSThrottlingException",
    }
)


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError`` (None for anything else)."""
    from botocore.exceptions import ClientError  # noqa: PLC0415 - see the module docstring

    if isinstance(exc, ClientError):
        code: str | None = exc.response.get("Error", {}).get("Code")
        return code
    return None


def classify_aws_error(exc: BaseException, action: str) -> ToilkitError:
    """Turn a boto/aiohttp exception into a transient or permanent toilkit error.

    Args:
        exc: what the AWS call raised.
        action: what was being done, for the message (``"sqs.receive_message"``).
    """
    from botocore.exceptions import (  # noqa: PLC0415 - see the module docstring
        BotoCoreError,
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    connection_errors = (
        EndpointConnectionError,
        ConnectionClosedError,
        ConnectTimeoutError,
        ReadTimeoutError,
    )
    if isinstance(exc, ClientError):
        code = error_code(exc) or "Unknown"
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        message = exc.response.get("Error", {}).get("Message", "")
        text = f"{action} failed: {code} {message}".strip()
        if code in TRANSIENT_CODES or status >= 500 or status == 429:
            return TransientError(text)
        if code == "ConditionalCheckFailedException":
            return ConditionFailed(text)
        return PermanentError(text)
    if isinstance(exc, (*connection_errors, asyncio.TimeoutError, OSError)):
        return TransientError(f"{action} failed: cannot reach the endpoint ({exc})")
    if isinstance(exc, BotoCoreError):
        return PermanentError(f"{action} failed: {exc}")
    return TransientError(f"{action} failed: {type(exc).__name__}: {exc}")


T = TypeVar("T")


async def call_aws(
    action: str,
    call: Callable[[], Awaitable[T]],
    retry: AsyncRetrying | None = None,
) -> T:
    """Make one AWS call, retried on transient errors, with errors classified once.

    Args:
        action: what is being done, for error messages (``"sns.publish"``).
        call: makes the call (a fresh coroutine per attempt).
        retry: the retry policy (default :func:`shared.retry.outbound_call_retry`).

    Raises:
        TransientError: still failing after the retries (the message will be redelivered).
        ConditionFailed: a DynamoDB condition did not hold (a kind of PermanentError).
        PermanentError: AWS refused the call; retrying cannot help. Missing resources
            included (``ResourceNotFoundException``, ``NoSuchKey`` ...).
    """
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    async for attempt in retry or outbound_call_retry():
        with attempt:
            try:
                return await call()
            except (TimeoutError, ClientError, BotoCoreError, OSError) as exc:
                raise classify_aws_error(exc, action) from exc
    raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover


def client_config(read_timeout: float = 30, connect_timeout: float = 5) -> AioConfig:
    """The botocore config every client uses.

    ``read_timeout`` stays above SQS's 20 s long poll; botocore's own retries are kept
    short ("standard", 3 attempts) because the worker and tenacity retry above it.
    """
    from aiobotocore.config import AioConfig  # noqa: PLC0415 - see the module docstring

    return AioConfig(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=64,
    )


def _stamp_call(context: dict[str, Any], **_: Any) -> None:
    context["toilkit_sent_at"] = time.monotonic()


def _log_stalled_attempt(
    request_dict: dict[str, Any],
    operation: Any,
    attempts: int,
    caught_exception: BaseException | None = None,
    **_: Any,
) -> None:
    """botocore's ``needs-retry`` hook: an attempt that timed out or lost its connection is
    logged with the endpoint and how long it waited, before botocore retries it."""
    if caught_exception is None:
        return
    context = request_dict.get("context") or {}
    started = context.get("toilkit_sent_at")
    waited = f"{time.monotonic() - started:.1f}s" if started is not None else "?"
    context["toilkit_sent_at"] = time.monotonic()  # the next attempt's wait starts now
    log.warning(
        "aws: %s to %s failed after waiting %s (attempt %d): %s: %s",
        getattr(operation, "name", operation),
        request_dict.get("url", "?"),
        waited,
        attempts,
        type(caught_exception).__name__,
        caught_exception,
    )


class ClientOnFirstCall:
    """Stands in for a core client that is not open yet: its first API call opens it.

    What the code that holds it sees is the client's API operations (all coroutines);
    anything else (``get_paginator``, ``meta``, ``exceptions``) is there only once the
    client is open, so code that needs those asks for the client itself
    (``await aws.client("sns")``).
    """

    def __init__(self, clients: AwsClients, service: str) -> None:
        self._clients = clients
        self._service = service

    def __getattr__(self, name: str) -> Any:
        opened = self._clients.opened(self._service)
        if opened is not None:
            return getattr(opened, name)
        if name.startswith("_") or name in _NOT_OPERATIONS:
            raise AttributeError(
                f"{self._service} client not open yet: await aws.client({self._service!r}) "
                f"before using {name!r}"
            )

        async def operation(*args: Any, **kwargs: Any) -> Any:
            client = await self._clients.client(self._service)
            return await getattr(client, name)(*args, **kwargs)

        return operation


#: A client's attributes that are not API operations (coroutines).
_NOT_OPERATIONS = frozenset(
    {"meta", "exceptions", "get_paginator", "get_waiter", "can_paginate", "waiter_names"}
)


ClientT = TypeVar("ClientT")


class _CoreClient(Generic[ClientT]):
    """A read-only attribute of :class:`AwsClients`: the core client its name says, open or
    opening on its first call (:class:`ClientOnFirstCall`), typed as that service's client."""

    def __set_name__(self, owner: type[AwsClients], name: str) -> None:
        self.service = name

    def __get__(self, clients: AwsClients, owner: type[AwsClients] | None = None) -> ClientT:
        client: ClientT = clients._core(self.service)
        return client

    def __set__(self, clients: AwsClients, value: object) -> None:
        raise AttributeError(f"{self.service} is read-only")


class AwsClients:
    """The process's AWS clients, opened once and closed together.

    Usage::

        async with AwsClients(settings) as aws:
            await aws.sqs.receive_message(...)
            logs = await aws.client("logs")

    Args:
        settings: endpoint and region.
        open_at_start: the core clients (:attr:`CORE`) opened on entering, side by side;
            the others open on their first API call (default: all of them).
    """

    CORE = ("sqs", "sns", "s3", "dynamodb")

    def __init__(self, settings: AwsSettings, open_at_start: Iterable[str] = CORE) -> None:
        self.settings = settings
        self.open_at_start = tuple(open_at_start)
        self._session: AioSession | None = None
        self._stack = AsyncExitStack()
        self._clients: dict[str, Any] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._entered = False

    async def __aenter__(self) -> AwsClients:
        self._entered = True
        await asyncio.gather(*(self.client(service) for service in self.open_at_start))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._entered = False
        await self._stack.aclose()
        self._clients.clear()

    def opened(self, service: str) -> Any | None:
        """The client for ``service`` if it is open, else None (nothing is opened)."""
        return self._clients.get(service)

    async def client(self, service: str) -> Any:
        """The client for ``service`` (boto3 name), created on first use and kept."""
        if service in self._clients:
            return self._clients[service]
        async with self._locks.setdefault(service, asyncio.Lock()):
            if service not in self._clients:
                if self._session is None:
                    from aiobotocore.session import get_session  # noqa: PLC0415

                    self._session = get_session()
                creator = self._session.create_client(
                    service,  # type: ignore[call-overload]
                    region_name=self.settings.region,
                    endpoint_url=self.settings.endpoint_for(service),
                    config=client_config(
                        self.settings.read_timeout_seconds, self.settings.connect_timeout_seconds
                    ),
                )
                client = await self._stack.enter_async_context(creator)
                client.meta.events.register("before-call", _stamp_call)
                client.meta.events.register("needs-retry", _log_stalled_attempt)
                self._clients[service] = client
            return self._clients[service]

    async def reset_connections(self) -> None:
        """Close every client's pooled connections; the next call opens new ones.

        For a process restored from a snapshot (Lambda SnapStart): its sockets died with the
        process that took the snapshot. aiobotocore opens its aiohttp sessions lazily, one
        per proxy, in ``AIOHTTPSession._sessions``; should that ever change, nothing is
        reset here and botocore's own retry replaces a dead connection on first use.
        """
        for client in list(self._clients.values()):
            http_session = getattr(getattr(client, "_endpoint", None), "http_session", None)
            sessions = getattr(http_session, "_sessions", None)
            if not isinstance(sessions, dict):
                continue
            for session in list(sessions.values()):
                await session.close()
            sessions.clear()

    def _core(self, service: str) -> Any:
        if not self._entered:
            raise RuntimeError("AwsClients must be entered (async with) before use")
        return self._clients.get(service) or ClientOnFirstCall(self, service)

    sqs: _CoreClient[SQSClient] = _CoreClient()
    sns: _CoreClient[SNSClient] = _CoreClient()
    s3: _CoreClient[S3Client] = _CoreClient()
    dynamodb: _CoreClient[DynamoDBClient] = _CoreClient()
