"""Work that happens after the ack: tracked, so it is drained on stop and tests can wait.

Slack wants an answer within 3 seconds, so listeners ack first and hand the slow part
(views.open/update, reading a run, publishing, an ephemeral reply) to :class:`AfterAck`.
Bolt's own lazy listeners would do it too, but fire and forget; here every task is kept
until it ends, a failure is logged with what it was doing, and :meth:`AfterAck.drain`
lets a stopping service finish what it promised people in Slack.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class AfterAck:
    """A set of background tasks that outlive the request that started them.

    Args:
        concurrency: at most this many run at once; the rest wait their turn. Acks share
            the process with this work, and a burst of it (each piece a few AWS and Slack
            calls) must not slow the next ack down: waiting work costs nothing.
    """

    def __init__(self, concurrency: int = 2) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(concurrency)
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, work: Coroutine[Any, Any, None], what: str, *, urgent: bool = False) -> None:
        """Run ``work`` in the background; ``what`` names it in logs.

        ``urgent`` work starts at once, without waiting for a slot: a modal must be opened
        within 3 seconds of the click, whatever else is queued.
        """
        task = asyncio.get_running_loop().create_task(
            self._guarded(work, what, urgent=urgent), name=what
        )
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()

    async def _guarded(self, work: Coroutine[Any, Any, None], what: str, *, urgent: bool) -> None:
        try:
            if urgent:
                await work
            else:
                async with self._slots:
                    await work
        except asyncio.CancelledError:
            # Work cancelled while waiting for a slot never started; closing it says so
            # (and is a no-op for work that did start).
            work.close()
            log.warning("%s: cancelled before it finished", what)
            raise
        except Exception:
            log.exception("%s failed", what)

    async def join(self) -> None:
        """Wait until every task (including ones spawned meanwhile) has ended."""
        while self._tasks:
            await self._idle.wait()

    async def drain(self, grace_seconds: float) -> None:
        """Give running tasks ``grace_seconds``, then cancel what is left."""
        if not self._tasks:
            return
        try:
            async with asyncio.timeout(grace_seconds):
                await self.join()
        except TimeoutError:
            left = list(self._tasks)
            log.warning("cancelling %d background task(s) still running at stop", len(left))
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)
