"""The notifier's Slack adapter: post, update and find messages through slack-sdk.

One aiohttp session and two ``AsyncWebClient`` objects are made at start-up and shared by
every handler. Retries are slack-sdk's own handlers, chosen per kind of call:

* ``chat.update``, ``conversations.history`` and ``conversations.replies`` are idempotent,
  so their client retries 429 (sleeping the ``Retry-After`` Slack sends), 500/503 and
  dropped connections (``AsyncRateLimitErrorRetryHandler``, ``AsyncServerErrorRetryHandler``,
  ``AsyncConnectionErrorRetryHandler``).
* ``chat.postMessage`` is not idempotent. A 429 means Slack refused it, so slack-sdk's
  rate-limit handler retries it like the rest. But a 5xx, a timeout or a connection lost
  after the request went out leaves it unknown whether the message was posted ("maybe
  posted"), and a blind retry could post it twice. The handlers cannot check that, so this
  is the one place tenacity is used: before posting again, the adapter looks for the
  message by the event id it carries in its Slack ``metadata``, and only posts if it is not
  there.

  A look-up right after a timeout proves nothing: Slack may still be processing the
  request, and the message shows in ``conversations.history`` only once it is done. So a
  maybe-posted attempt is *settled* only by a look-up that starts ``settle_seconds`` after
  the request was sent (Slack's processing is assumed to end by then); the adapter looks
  every few seconds until then, stops as soon as it finds the message, and posts again only
  after a settled look-up found nothing. docs/reliability.md states the guarantee.

Errors come out classified once, here: :class:`~shared.errors.TransientError` (retry the SQS
message later) or :class:`~shared.errors.PermanentError` (``channel_not_found``,
``invalid_auth``, ``not_in_channel``, ``invalid_blocks``...: the message goes to the DLQ).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.interval_calculator import RetryIntervalCalculator
from slack_sdk.web.async_client import AsyncWebClient
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_base

from services.notifier.blocks import SlackMessage
from services.notifier.pacing import ChannelPacer
from services.notifier.settings import NotifierSettings, SlackRetrySettings
from shared.errors import PermanentError, ToilkitError, TransientError
from shared.retry import OUTBOUND_WAIT

log = logging.getLogger(__name__)

#: Slack error codes that mean "try again later".
TRANSIENT_SLACK_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable",
     "request_timeout"}
)  # fmt: skip
#: Of those, the ones after which a post may or may not have happened.
UNKNOWN_OUTCOME_ERRORS = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
#: How far before a post's first attempt a look-up for it starts (clock skew, slow answers).
LOOKUP_MARGIN_SECONDS = 120
#: Pages of history a look-up reads at most (200 messages each).
LOOKUP_MAX_PAGES = 10
#: Seconds between look-ups while waiting for Slack to settle a maybe-posted message
#: (``conversations.history`` is rate-limited, about 50 calls a minute).
SETTLE_POLL_SECONDS = 2.0


@dataclass(frozen=True)
class PostMarker:
    """What identifies one message the notifier posts: the event and the message's role.

    It travels in the message's Slack ``metadata``, so a message can be found again after a
    crash or an unanswered request, and never posted twice.
    """

    event_id: str
    role: str

    METADATA_TYPE: ClassVar[str] = "toilkit_notification"

    def metadata(self) -> dict[str, Any]:
        return {
            "event_type": self.METADATA_TYPE,
            "event_payload": {"event_id": self.event_id, "role": self.role},
        }

    def matches(self, message: Mapping[str, Any]) -> bool:
        metadata = message.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        return bool(
            metadata.get("event_type") == self.METADATA_TYPE
            and payload.get("event_id") == self.event_id
            and payload.get("role") == self.role
        )


@dataclass(frozen=True)
class Posted:
    """Where a message is: its channel and its ``ts`` (Slack's id for it)."""

    channel: str
    ts: str


class SlackPort(Protocol):
    """What the notifier needs from Slack (the seam tests replace to crash on purpose)."""

    async def post(
        self, channel: str, message: SlackMessage, *, marker: PostMarker, thread_ts: str | None
    ) -> Posted: ...

    async def update(self, posted: Posted, message: SlackMessage) -> None: ...

    async def find(
        self,
        channel: str,
        marker: PostMarker,
        *,
        since: float,
        thread_ts: str | None,
        settle_at: float | None = None,
    ) -> Posted | None: ...


class NotPosted(TransientError):
    """Every attempt to post failed, and none of them was posted: a settled look-up shows
    it, or Slack refused the last one (429) after the earlier ones were settled.

    Nothing of the message is in Slack and no request for it is still in flight, so the
    caller may forget its claim: the retry posts without a look-up.
    """


class RateLimited(TransientError):
    """Slack answered 429; ``retry_after`` seconds must pass before the next such call."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _UnknownOutcome(Exception):
    """chat.postMessage failed in a way that leaves it unknown whether it posted."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class SlackWebApi:
    """:class:`SlackPort` over slack-sdk's ``AsyncWebClient``.

    Args:
        token: the bot token.
        base_url: the Web API base URL (slack.com's or the stand-in's ``.../api/``).
        session: the process's aiohttp session (its timeout bounds every call).
        retries: how many times slack-sdk's handlers retry each kind of failure.
        pacer: spaces posts to one channel.
        backoff: the interval calculator of the 5xx and connection handlers (tests pass a
            zero one; the 429 handler always sleeps what ``Retry-After`` says).
        post_wait: tenacity's wait between post attempts with an unknown outcome.
        settle_poll: seconds between look-ups while a maybe-posted message settles.
    """

    def __init__(
        self,
        *,
        token: str,
        base_url: str,
        session: aiohttp.ClientSession,
        retries: SlackRetrySettings,
        pacer: ChannelPacer,
        backoff: RetryIntervalCalculator | None = None,
        post_wait: wait_base = OUTBOUND_WAIT,
        settle_poll: float = SETTLE_POLL_SECONDS,
    ) -> None:
        backoff = backoff or BackoffRetryIntervalCalculator(backoff_factor=0.5)
        rate_limit = AsyncRateLimitErrorRetryHandler(max_retry_count=retries.rate_limited)
        idempotent_handlers: list[AsyncRetryHandler] = [
            rate_limit,
            AsyncServerErrorRetryHandler(
                max_retry_count=retries.server_errors, interval_calculator=backoff
            ),
            AsyncConnectionErrorRetryHandler(
                max_retry_count=retries.connection_errors, interval_calculator=backoff
            ),
        ]
        self._client = AsyncWebClient(
            token=token, base_url=base_url, session=session, retry_handlers=idempotent_handlers
        )
        self._post_client = AsyncWebClient(
            token=token,
            base_url=base_url,
            session=session,
            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=retries.rate_limited)],
        )
        # Live progress: a 429 is not waited out (the update would be stale by then) but
        # handed back with its Retry-After, so the caller skips updates until it passes.
        self._progress_client = AsyncWebClient(
            token=token,
            base_url=base_url,
            session=session,
            retry_handlers=idempotent_handlers[1:],
        )
        self._pacer = pacer
        self._post_attempts = retries.post_attempts
        self._post_wait = post_wait
        self.settle_seconds = retries.settle_seconds
        self._settle_poll = settle_poll

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: NotifierSettings,
        pacer: ChannelPacer,
        *,
        backoff: RetryIntervalCalculator | None = None,
        post_wait: wait_base = OUTBOUND_WAIT,
    ) -> AsyncIterator[SlackWebApi]:
        """The adapter with its own aiohttp session, closed on exit."""
        timeout = aiohttp.ClientTimeout(total=settings.slack_timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            yield cls(
                token=settings.token,
                base_url=settings.slack_api_url,
                session=session,
                retries=settings.retries,
                pacer=pacer,
                backoff=backoff,
                post_wait=post_wait,
            )

    async def post(
        self,
        channel: str,
        message: SlackMessage,
        *,
        marker: PostMarker,
        thread_ts: str | None = None,
    ) -> Posted:
        """Post a message once, even if Slack's answer gets lost on the way.

        Raises:
            NotPosted: every attempt failed and none was posted (settled look-ups).
            TransientError: failing for now, and an attempt may have posted (the SQS retry
                looks the message up before posting).
            PermanentError: Slack refused it (bad channel, token, blocks...).
        """
        began = time.time()
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._post_attempts),
            wait=self._post_wait,
            retry=retry_if_exception_type(_UnknownOutcome),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._pacer.wait_turn(channel)
                    try:
                        return await self._post_attempt(channel, message, marker, thread_ts)
                    except _UnknownOutcome as exc:
                        # The maybe-posted request was sent no later than now; not "when
                        # the attempt began": slack-sdk may have retried a 429 in between.
                        failed_at = time.time()
                        found = await self._settle(
                            channel, marker, exc, began, failed_at, thread_ts
                        )
                        if found is not None:
                            return found
                        raise
        except _UnknownOutcome as exc:
            raise NotPosted(
                f"slack chat.postMessage to {channel}: {exc.detail} "
                f"({self._post_attempts} attempts, none posted)"
            ) from exc
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    async def _settle(
        self,
        channel: str,
        marker: PostMarker,
        failure: _UnknownOutcome,
        began: float,
        failed_at: float,
        thread_ts: str | None,
    ) -> Posted | None:
        """Where a maybe-posted attempt's message is, or None once Slack has settled it
        (a look-up that began ``settle_seconds`` after ``failed_at``, by when the request
        that failed had been sent)."""
        log.warning(
            "slack: chat.postMessage of %s/%s to %s may have been posted (%s); looking for it "
            "until %.0fs after it failed",
            marker.event_id,
            marker.role,
            channel,
            failure.detail,
            self.settle_seconds,
        )
        found = await self.find(
            channel,
            marker,
            since=began - LOOKUP_MARGIN_SECONDS,
            thread_ts=thread_ts,
            settle_at=failed_at + self.settle_seconds,
        )
        if found is not None:
            log.warning(
                "slack: %s/%s was posted after all (%s); not posting again",
                marker.event_id,
                marker.role,
                found.ts,
            )
        else:
            log.warning(
                "slack: %s/%s was not posted (settled %.0fs after it failed); posting again",
                marker.event_id,
                marker.role,
                self.settle_seconds,
            )
        return found

    async def _post_attempt(
        self, channel: str, message: SlackMessage, marker: PostMarker, thread_ts: str | None
    ) -> Posted:
        try:
            response = await self._post_client.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                metadata=marker.metadata(),
                unfurl_links=False,
                unfurl_media=False,
                **message.as_arguments(),
            )
        except SlackApiError as exc:
            status, code = _status_and_code(exc)
            if status >= 500 or code in UNKNOWN_OUTCOME_ERRORS:
                raise _UnknownOutcome(f"HTTP {status} {code or ''}".strip()) from exc
            if status == 429:
                # Refused, and so was every retry slack-sdk made of it; any attempt before
                # it was settled as not posted: nothing of this message is in Slack.
                raise NotPosted(
                    f"slack chat.postMessage ({channel}): HTTP 429 {code or ''}".strip(),
                    retry_after=retry_after_seconds(getattr(exc.response, "headers", None)),
                ) from exc
            raise classify_slack_error(exc, "chat.postMessage", channel) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _UnknownOutcome(f"{type(exc).__name__}: {exc}") from exc
        return Posted(channel=str(response["channel"]), ts=str(response["ts"]))

    async def update(self, posted: Posted, message: SlackMessage) -> None:
        """Replace a message's text and blocks (``chat.update``; safe to repeat)."""
        try:
            await self._client.chat_update(
                channel=posted.channel, ts=posted.ts, **message.as_arguments()
            )
        except (SlackClientError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise classify_slack_error(exc, "chat.update", posted.channel) from exc

    async def update_unless_limited(self, posted: Posted, message: SlackMessage) -> None:
        """``chat.update`` for a message that a newer one may replace soon (live progress).

        Raises:
            RateLimited: Slack answered 429 (not retried; its ``Retry-After`` is given).
            TransientError, PermanentError: as :meth:`update`.
        """
        try:
            await self._progress_client.chat_update(
                channel=posted.channel, ts=posted.ts, **message.as_arguments()
            )
        except SlackApiError as exc:
            if _status_and_code(exc)[0] == 429:
                retry_after = retry_after_seconds(getattr(exc.response, "headers", None))
                raise RateLimited(
                    f"slack chat.update ({posted.channel}): HTTP 429, retry after {retry_after:g}s",
                    retry_after,
                ) from exc
            raise classify_slack_error(exc, "chat.update", posted.channel) from exc
        except (SlackClientError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise classify_slack_error(exc, "chat.update", posted.channel) from exc

    async def find(
        self,
        channel: str,
        marker: PostMarker,
        *,
        since: float,
        thread_ts: str | None = None,
        settle_at: float | None = None,
    ) -> Posted | None:
        """The message carrying ``marker`` posted since ``since`` (epoch seconds), if any.

        Top-level messages are searched with ``conversations.history``, replies with
        ``conversations.replies`` on their thread; both with ``include_all_metadata``.

        Args:
            settle_at: when given (epoch seconds), "not found" is only answered by a look-up
                that started at or after it: until then the look-up is repeated every few
                seconds, since Slack may still be processing the post.
        """
        while True:
            started = time.time()
            found = await self._find_once(channel, marker, since, thread_ts)
            if found is not None or settle_at is None or started >= settle_at:
                return found
            await asyncio.sleep(max(0.0, min(self._settle_poll, settle_at - time.time())))

    async def _find_once(
        self, channel: str, marker: PostMarker, since: float, thread_ts: str | None
    ) -> Posted | None:
        method = "conversations.history" if thread_ts is None else "conversations.replies"
        cursor: str | None = None
        for _ in range(LOOKUP_MAX_PAGES):
            arguments: dict[str, Any] = {
                "channel": channel,
                "oldest": f"{max(since, 0):.6f}",
                "limit": 200,
                "include_all_metadata": True,
            }
            if cursor:
                arguments["cursor"] = cursor
            try:
                if thread_ts is None:
                    response = await self._client.conversations_history(**arguments)
                else:
                    response = await self._client.conversations_replies(ts=thread_ts, **arguments)
            except (SlackClientError, aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise classify_slack_error(exc, method, channel) from exc
            messages: list[dict[str, Any]] = response.get("messages") or []
            for message in messages:
                if marker.matches(message):
                    return Posted(channel=channel, ts=str(message["ts"]))
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not response.get("has_more") or not cursor:
                return None
        return None


def retry_after_seconds(headers: Mapping[str, Any] | None, default: float = 1.0) -> float:
    """A 429's ``Retry-After`` in seconds (``default`` when missing or unreadable)."""
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            first = value[0] if isinstance(value, list | tuple) and value else value
            try:
                return max(float(first), 0.0)
            except (TypeError, ValueError):
                return default
    return default


def _status_and_code(exc: SlackApiError) -> tuple[int, str | None]:
    response = exc.response
    status = int(getattr(response, "status_code", 0) or 0)
    data = getattr(response, "data", None)
    code = data.get("error") if isinstance(data, dict) else None
    return status, code


def classify_slack_error(exc: BaseException, method: str, channel: str) -> ToilkitError:
    """Turn what slack-sdk raised (after its own retries) into a toilkit error.

    429, 5xx, Slack's own "try later" codes, timeouts and lost connections are transient;
    every other Slack error code is permanent: retrying a bad channel, token or block
    cannot make it work.
    """
    if isinstance(exc, SlackApiError):
        status, code = _status_and_code(exc)
        where = f"slack {method} ({channel})"
        if status == 429 or status >= 500 or code in TRANSIENT_SLACK_ERRORS:
            return TransientError(f"{where}: HTTP {status} {code or ''}".strip())
        detail = ""
        data = getattr(exc.response, "data", None)
        if isinstance(data, dict):
            messages = (data.get("response_metadata") or {}).get("messages") or []
            if messages:
                detail = ": " + "; ".join(str(m) for m in messages[:5])
        return PermanentError(f"{where}: {code or f'HTTP {status}'}{detail}")
    if isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError, OSError)):
        return TransientError(f"slack {method} ({channel}): {type(exc).__name__}: {exc}")
    return PermanentError(f"slack {method} ({channel}): {type(exc).__name__}: {exc}")
