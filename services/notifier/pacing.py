"""Posting pace: at most one message per interval per channel.

Slack allows about one ``chat.postMessage`` per second per channel (short bursts aside) and
answers 429 beyond. Pacing before posting keeps a burst of events (a scan that finds drift in
twenty states routed to one channel) from turning into a storm of 429s and Retry-After
waits, while messages to different channels go out at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class ChannelPacer:
    """Hands out posting slots per channel, ``interval`` seconds apart, first come first served.

    Args:
        interval: minimum seconds between two posts to one channel (0 turns pacing off).
        clock: monotonic seconds; tests inject their own.
        sleep: how to wait; tests inject one that records instead of waiting.
    """

    def __init__(
        self,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._next_slot: dict[str, float] = {}

    async def wait_turn(self, channel: str) -> None:
        """Wait until ``channel`` may take another message, and take the slot."""
        if self.interval <= 0:
            return
        now = self._clock()
        # The slot is reserved before sleeping, so concurrent callers queue up behind it
        # instead of all waking at the same moment.
        slot = max(now, self._next_slot.get(channel, now))
        self._next_slot[channel] = slot + self.interval
        if slot > now:
            await self._sleep(slot - now)
