"""The request ledger: each Slack request is acted on once, however often it arrives.

Slack resends a request it got no timely answer to, marking the copy with
``X-Slack-Retry-Num``; anyone who captured a signed request could send it again within the
5-minute signature window. Both carry the same body, so the ledger remembers each body's
hash for a while (one conditional put in the idempotency table) and the gateway answers a
second sighting without acting on it: ``200`` to a Slack retry (so Slack stops retrying),
``401`` to a replay (the same request with no retry mark).

If DynamoDB cannot be asked, the request goes through (an outage must not take Slack
commands down with it): the events it leads to carry ids derived from the same body hash
(:func:`services.gateway.handlers.derived_id`), which every consumer deduplicates anyway.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from shared.errors import ToilkitError
from shared.idempotency import Claim, IdempotencyStore

log = logging.getLogger(__name__)

KEY_PREFIX = "gateway#request#"
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


class RequestLedger:
    """Remembers requests by key in the idempotency table.

    Args:
        store: the idempotency store (its ``completed_ttl`` is how long a request is kept).
        remember_seconds: how long a sighting is remembered; longer than the signature
            window, so a replay cannot outlive its record.
        timeout: seconds to wait for DynamoDB before letting the request through.
    """

    def __init__(
        self, store: IdempotencyStore, *, remember_seconds: int, timeout: float = 1.0
    ) -> None:
        self._store = store
        self._remember = remember_seconds
        self._timeout = timeout

    async def sight(self, key: str) -> Sighting:
        """Record a sighting of ``key``; says whether it is the first."""
        try:
            async with asyncio.timeout(self._timeout):
                # Never completed: the record stays "in progress" for remember_seconds,
                # which is exactly "seen recently" (and needs one write, not two).
                claim = await self._store.claim(KEY_PREFIX + key, self._remember)
        except (ToilkitError, TimeoutError) as exc:
            log.warning("request ledger unavailable, handling the request anyway: %s", exc)
            return Sighting.UNKNOWN
        return Sighting.FIRST if claim is Claim.ACQUIRED else Sighting.SEEN


Middleware = Callable[..., Awaitable[BoltResponse | None]]


def ledger_middleware(ledger: RequestLedger | None) -> Middleware:
    """A Bolt global middleware that keys every request and answers second sightings.

    With ``ledger=None`` requests are keyed but not remembered (tests of pure wiring).
    """

    async def remember_request(
        req: AsyncBoltRequest, next_: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        key = request_key(req.raw_body, req.body)
        req.context[REQUEST_KEY] = key
        if ledger is not None and await ledger.sight(key) is Sighting.SEEN:
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
