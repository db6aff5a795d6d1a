"""Batched acknowledgement of handled SQS messages (the worker's, :mod:`shared.worker`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types_aiobotocore_sqs.type_defs import MessageTypeDef

    from shared.events import EventBase

#: A settled message: (its idempotency key or None, the message, its event, its outcome).
Settled = tuple["str | None", "MessageTypeDef", "EventBase", Any]

#: How long a handled message may wait for its batched delete.
ACK_FLUSH_SECONDS = 0.05


class Acknowledger:
    """Collects settled messages and acknowledges them in batches of up to ten.

    Completing in DynamoDB and deleting from SQS one message at a time would triple the
    requests per message; batching keeps the runtime as cheap per message as a bare loop.
    """

    def __init__(self, acknowledge: Callable[[list[Settled]], Awaitable[None]]) -> None:
        self._acknowledge = acknowledge
        self._pending: list[Settled] = []
        self._flushing: list[Settled] = []
        self._full = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    def add(self, key: str | None, message: MessageTypeDef, event: EventBase, outcome: Any) -> None:
        self._pending.append((key, message, event, outcome))
        if len(self._pending) >= 10:
            self._full.set()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon())

    def holds(self, key: str) -> bool:
        """True while ``key`` is handled here and waits for its batched completion."""
        return any(k == key for k, *_ in (*self._pending, *self._flushing))

    async def _flush_soon(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._full.wait(), ACK_FLUSH_SECONDS)
        self._full.clear()
        while self._pending:
            self._flushing, self._pending = self._pending[:10], self._pending[10:]
            try:
                await self._acknowledge(self._flushing)
            finally:
                self._flushing = []

    async def close(self) -> None:
        """Flush whatever is pending now."""
        self._full.set()
        if self._flusher is not None:
            await self._flusher
