"""Each Slack request is acted on once, however often it arrives.

Slack resends a request it got no timely answer to, marking the copy with
``X-Slack-Retry-Num``; anyone who captured a signed request could send it again within the
5-minute signature window. Both carry the same body, so requests are known by their body's
hash, at two levels:

* :class:`RecentRequests`, in this process, answers a second sighting at once, before any
  listener runs: ``200`` to a Slack retry (so Slack stops retrying), ``401`` to a replay (the
  same request without a retry mark). It costs no I/O, so the ack stays fast.
* :class:`RequestLedger`, one conditional put in the DynamoDB idempotency table, is asked
  after the ack and before anything is published, so a copy that reached *another*
  gateway instance (or this one after a restart) still changes nothing.

If DynamoDB cannot be asked, the work goes ahead (an outage must not take Slack commands
down with it): the events it publishes carry ids derived from the same body hash
(:func:`services.gateway.handlers.derived_id`), which every consumer deduplicates anyway.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field
from enum import Enum
from typing import Any

from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from shared.errors import ToilkitError
from shared.idempotency import Claim, IdempotencyStore
from shared.state_table.keys import GATEWAY_REQUEST_PREFIX

log = logging.getLogger(__name__)

#: The context key under which listeners find the request's key.
REQUEST_KEY = "toilkit_request_key"
RETRY_HEADER = "x-slack-retry-num"


class Sighting(Enum):
    FIRST = "first"
    SEEN = "seen"
    UNKNOWN = "unknown"  # the ledger could not be asked


def request_key(raw_body: str, body: dict[str, Any]) -> str:
    """The hash that identifies a request: of the raw body as signed (HTTP), or of the
    payload in canonical form (Socket Mode, which has no raw body)."""
    text = raw_body or json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(eq=False, kw_only=True)
class RecentRequests:
    """The keys of requests this process saw lately (bounded, oldest forgotten first).

    Args:
        remember_seconds: how long a key is remembered; longer than the signature window,
            so a replay cannot outlive its record.
        max_entries: at most this many keys are kept.
        clock: monotonic seconds; tests pass their own.
    """

    remember_seconds: float
    max_entries: int = 200_000
    clock: Callable[[], float] = time.monotonic
    _seen: OrderedDict[str, float] = field(default_factory=OrderedDict, init=False, repr=False)

    def sight(self, key: str) -> bool:
        """Record ``key``; True when it was not seen within ``remember_seconds``."""
        now = self.clock()
        expires = self._seen.get(key)
        if expires is not None and expires > now:
            return False
        self._seen.pop(key, None)
        # Keys are kept in the order they were seen, which is the order they expire in.
        while self._seen:
            oldest, oldest_expires = next(iter(self._seen.items()))
            if oldest_expires > now and len(self._seen) < self.max_entries:
                break
            del self._seen[oldest]
        self._seen[key] = now + self.remember_seconds
        return True


@dataclass(eq=False)
class RequestLedger:
    """Requests by key in the idempotency table, shared by every gateway instance.

    Args:
        store: the idempotency store (its ``completed_ttl`` is how long a record is kept).
        remember_seconds: how long a sighting counts.
        timeout: seconds to wait for DynamoDB before letting the work go ahead.
    """

    store: IdempotencyStore
    _: KW_ONLY
    remember_seconds: int
    timeout: float = 2.0

    async def sight(self, key: str) -> Sighting:
        """Record a sighting of ``key``; says whether it is the first."""
        try:
            async with asyncio.timeout(self.timeout):
                # Never completed: the record stays "in progress" for remember_seconds,
                # which is exactly "seen recently" (and needs one write, not two).
                claim = await self.store.claim(GATEWAY_REQUEST_PREFIX + key, self.remember_seconds)
        except (ToilkitError, TimeoutError) as exc:
            log.warning("request ledger unavailable, acting on the request anyway: %s", exc)
            return Sighting.UNKNOWN
        return Sighting.FIRST if claim is Claim.ACQUIRED else Sighting.SEEN

    async def once(self, key: str, start: Callable[[], Awaitable[None]]) -> None:
        """Run ``start()`` unless a gateway already acted on this request."""
        if await self.sight(key) is Sighting.SEEN:
            log.info("request %s… was acted on already (another instance); skipped", key[:12])
            return
        await start()


Middleware = Callable[..., Awaitable[BoltResponse | None]]


def recent_requests_middleware(recent: RecentRequests | None) -> Middleware:
    """A Bolt global middleware that keys every request and answers second sightings.

    With ``recent=None`` requests are keyed but not remembered.
    """

    async def remember_request(
        req: AsyncBoltRequest, next_: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        key = request_key(req.raw_body, req.body)
        req.context[REQUEST_KEY] = key
        # A suggestion request reads and changes nothing, and Slack sends the same body
        # each time the same text is typed: never taken for a replay.
        reads_only = req.body.get("type") == "block_suggestion"
        if recent is not None and not reads_only and not recent.sight(key):
            retry = req.headers.get(RETRY_HEADER, [None])[0]
            if retry is not None:
                log.info("Slack retry %s of a request already handled; acknowledged", retry)
                return BoltResponse(status=200, body="")
            log.warning("replayed request refused (same body, no retry mark)")
            return BoltResponse(status=401, body="replayed request")
        # Bolt's convention: a middleware that lets the request through returns next()'s
        # None, so the listener's ack becomes the response.
        await next_()
        return None

    return remember_request
