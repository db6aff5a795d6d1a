"""Posting once when Slack's answer is ambiguous: late answers and lost connections.

Real slack-sdk (``AsyncWebClient`` on an aiohttp session with a 2 s timeout) posts to the
Slack stand-in over HTTP. The stand-in processes some posts 3 s late, as Slack does under
load: the client gives up at 2 s, yet the message is posted at 3 s and only then shows in
``conversations.history``. Others are processed and then lose their answer (the connection
is closed). A look-up made right after the timeout cannot see the late message; only one
made after Slack has finished processing can.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.web.async_client import AsyncWebClient
from tenacity import wait_none

from services.notifier.blocks import SlackMessage
from services.notifier.delivery import Delivery
from services.notifier.pacing import ChannelPacer
from services.notifier.settings import SlackRetrySettings
from services.notifier.slack import NotPosted, PostMarker, SlackWebApi
from services.notifier.store import NotifierStore, PostKey
from shared.aws import AwsClients
from shared.errors import TransientError
from shared.slack.blocks import section
from shared.topology import BootstrapReport, Names
from tests.support import eventually
from toilkit.standins.slack import FaultSpec, SlackStandin

CLIENT_TIMEOUT = 2.0
SLACK_LATE_BY = 3.0
CHANNELS = ("#amb-a", "#amb-b", "#amb-c")


@pytest.fixture
async def standin() -> AsyncIterator[SlackStandin]:
    async with SlackStandin() as running:
        yield running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)) as opened:
        yield opened


@pytest.fixture
def store(aws: AwsClients, names: Names, topology: BootstrapReport) -> NotifierStore:
    """The notifier's records in the bootstrapped state table."""
    return NotifierStore(aws.dynamodb, names.state_table)


def adapter(standin: SlackStandin, session: aiohttp.ClientSession, **retries: Any) -> SlackWebApi:
    return SlackWebApi(
        token="xoxb-test",
        base_url=standin.api_url,
        session=session,
        retries=SlackRetrySettings(**retries),
        pacer=ChannelPacer(0),
        backoff=FixedValueRetryIntervalCalculator(0),
        post_wait=wait_none(),
    )


def windowed_delivery(
    slack: SlackWebApi, store: NotifierStore, *, clock: Callable[[], float] = time.time
) -> Delivery:
    """A delivery whose attempts may still post for 5 minutes, settled 30 s after that."""
    return Delivery(
        slack,
        store,
        claim_lease_seconds=600,
        attempt_window_seconds=300,
        settle_seconds=30,
        clock=clock,
    )


async def post_many(slack: SlackWebApi, count: int) -> tuple[int, int]:
    """Post ``count`` messages at once; (posted, gave up) as the adapter saw it."""

    async def one(index: int) -> bool:
        marker = PostMarker(f"event-{index:04d}", "message")
        message = SlackMessage(text=f"message {index}", blocks=(section(f"message {index}"),))
        try:
            await slack.post(CHANNELS[index % len(CHANNELS)], message, marker=marker)
        except TransientError:
            return False
        return True

    outcomes = await asyncio.gather(*(one(i) for i in range(count)))
    return sum(outcomes), outcomes.count(False)


async def posted_per_event(standin: SlackStandin) -> Counter[str]:
    # A late post may still be on its way in: count once the stand-in has none in flight.
    await eventually(lambda: _none_in_flight(standin), timeout=SLACK_LATE_BY * 4)
    return Counter(
        message["metadata"]["event_payload"]["event_id"]
        for channel in CHANNELS
        for message in standin.messages(channel)
    )


async def _none_in_flight(standin: SlackStandin) -> bool:
    return standin.in_flight == 0


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param({"slow": 0.3}, id="answered-3s-late-timeout-2s"),
        pytest.param({"lost_answer": 0.3}, id="connection-dropped-after-posting"),
        pytest.param({"slow": 0.2, "lost_answer": 0.1, "drop": 0.1}, id="mixed"),
    ],
)
async def test_a_post_slack_answers_late_or_never_is_posted_once(
    standin: SlackStandin, session: aiohttp.ClientSession, faults: dict[str, float]
) -> None:
    # GIVEN Slack processes some posts after the client's timeout, or loses their answer
    standin.set_faults(
        FaultSpec(method="chat.postMessage", slow_seconds=SLACK_LATE_BY, seed=13, **faults)
    )
    slack = adapter(standin, session, settle_seconds=SLACK_LATE_BY + 2)

    # WHEN 24 messages are posted at once
    posted, gave_up = await post_many(slack, 24)

    # THEN every message is in Slack exactly once, and the adapter knows where each one is
    per_event = await posted_per_event(standin)
    duplicated = {event: n for event, n in per_event.items() if n > 1}
    assert duplicated == {}
    assert len(per_event) == 24
    assert (posted, gave_up) == (24, 0)
    faulted = [c for c in standin.calls("chat.postMessage") if c.fault]
    assert faulted, "the seed injected no fault"


async def test_a_post_whose_worker_died_mid_request_is_found_once_slack_settles_it(
    standin: SlackStandin, session: aiohttp.ClientSession, store: NotifierStore
) -> None:
    # GIVEN an attempt claimed the post, sent it, and died while Slack was still processing
    marker = PostMarker("event-died", "message")
    key = PostKey(marker.event_id, marker.role)
    assert await store.claim_post(key, CHANNELS[0], None) is None
    standin.set_faults(FaultSpec(method="chat.postMessage", slow=1.0, slow_seconds=SLACK_LATE_BY))
    dying = AsyncWebClient(token="xoxb-test", base_url=standin.api_url, session=session)
    with pytest.raises((TimeoutError, aiohttp.ClientError)):
        await dying.chat_postMessage(
            channel=CHANNELS[0], text="first try", metadata=marker.metadata()
        )
    standin.clear_faults()

    # WHEN the redelivered event posts it (the attempt's handler had 1 s to send)
    slack = adapter(standin, session, settle_seconds=SLACK_LATE_BY + 2)
    delivery = Delivery(
        slack,
        store,
        claim_lease_seconds=600,
        attempt_window_seconds=1,
        settle_seconds=slack.settle_seconds,
    )
    message = SlackMessage(text="second try", blocks=(section("second try"),))
    posted = await delivery.post_once(marker, CHANNELS[0], message)

    # THEN it finds the late message instead of posting another
    per_event = await posted_per_event(standin)
    assert per_event == {"event-died": 1}
    assert [m["ts"] for m in standin.messages(CHANNELS[0])] == [posted.ts]
    assert len(standin.calls("chat.postMessage")) == 1


async def test_a_long_way_from_settled_gives_the_event_back_with_the_delay(
    standin: SlackStandin, session: aiohttp.ClientSession, store: NotifierStore
) -> None:
    # GIVEN a claim whose attempt may send until 300 s after it (the handler timeout)
    marker = PostMarker("event-far", "message")
    await store.claim_post(PostKey(marker.event_id, marker.role), CHANNELS[0], None)
    slack = adapter(standin, session, settle_seconds=30)
    delivery = windowed_delivery(slack, store)

    # WHEN its redelivery finds nothing yet, THEN it is retried once Slack has settled it
    message = SlackMessage(text="x", blocks=(section("x"),))
    with pytest.raises(TransientError) as raised:
        await delivery.post_once(marker, CHANNELS[0], message)
    assert 250 < raised.value.retry_after <= 300
    assert standin.calls("chat.postMessage") == []


async def test_a_post_answered_late_after_a_429_is_settled_from_its_own_request(
    standin: SlackStandin, session: aiohttp.ClientSession
) -> None:
    # GIVEN Slack answers the first post 429 (Retry-After 2 s) and processes slack-sdk's
    # retry of it 3 s late, after the client's 2 s timeout (seed 1: 429, then slow)
    standin.set_faults(
        FaultSpec(
            method="chat.postMessage",
            rate_limited=0.5,
            retry_after=2,
            slow=0.5,
            slow_seconds=SLACK_LATE_BY,
            seed=1,
            max_injections=2,
        )
    )
    slack = adapter(standin, session, settle_seconds=SLACK_LATE_BY + 0.5)

    # WHEN one message is posted
    posted, gave_up = await post_many(slack, 1)

    # THEN the late message is found, not posted again: the look-up settles from the
    # failed request, not from the attempt's first request (the 429), 2 s earlier
    assert await posted_per_event(standin) == {"event-0000": 1}
    assert (posted, gave_up) == (1, 0)
    assert [c.fault for c in standin.calls("chat.postMessage")] == ["rate_limited", "slow"]


async def test_an_attempt_that_posts_again_restamps_the_claim_a_later_one_waits_for(
    standin: SlackStandin,
    session: aiohttp.ClientSession,
    aws: AwsClients,
    names: Names,
    topology: BootstrapReport,
) -> None:
    # GIVEN a claim left without a ts long ago (at t=1000), by an attempt long settled
    now = [1000.0]
    store = NotifierStore(aws.dynamodb, names.state_table, clock=lambda: now[0])
    marker = PostMarker("event-restamp", "message")
    await store.claim_post(PostKey(marker.event_id, marker.role), CHANNELS[0], None)
    slack = adapter(standin, session, settle_seconds=30, rate_limited=0)
    delivery = windowed_delivery(slack, store, clock=lambda: now[0])
    message = SlackMessage(text="x", blocks=(section("x"),))

    # WHEN a redelivery at t=2000 finds nothing and posts again, and that post fails
    # without a verdict (a 500, and the look-up for it is refused: seed 10 lets the
    # look-up before the post through and refuses the one after it), leaving the claim
    # without a ts
    now[0] = 2000.0
    standin.set_faults(FaultSpec(method="chat.postMessage", server_error=1.0))
    standin.set_faults(
        FaultSpec(method="conversations.history", rate_limited=0.5, seed=10, max_injections=1)
    )
    with pytest.raises(TransientError) as failed:
        await delivery.post_once(marker, CHANNELS[0], message)
    assert not isinstance(failed.value, NotPosted)
    assert len(standin.calls("chat.postMessage")) == 1

    # THEN the next redelivery waits for Slack to settle the t=2000 attempt's requests
    # (not the t=1000 one's, long settled) before it may post
    standin.clear_faults()
    now[0] = 2010.0
    with pytest.raises(TransientError) as raised:
        await delivery.post_once(marker, CHANNELS[0], message)
    assert 250 < raised.value.retry_after <= 300
    assert len(standin.calls("chat.postMessage")) == 1


async def test_a_post_slack_refused_with_429_is_released_and_posted_at_the_next_try(
    standin: SlackStandin,
    session: aiohttp.ClientSession,
    aws: AwsClients,
    names: Names,
    topology: BootstrapReport,
) -> None:
    # GIVEN Slack answers every post 429 and slack-sdk has no retries of it left
    store = NotifierStore(aws.dynamodb, names.state_table)
    slack = adapter(standin, session, settle_seconds=30, rate_limited=0)
    delivery = windowed_delivery(slack, store)
    marker = PostMarker("event-refused", "message")
    message = SlackMessage(text="x", blocks=(section("x"),))
    standin.set_faults(FaultSpec(method="chat.postMessage", rate_limited=1.0, retry_after=3))

    # WHEN the post is refused, THEN nothing was posted and the retry waits Retry-After
    with pytest.raises(NotPosted) as refused:
        await delivery.post_once(marker, CHANNELS[0], message)
    assert refused.value.retry_after == 3

    # AND the next try posts at once (no look-up, no wait for an attempt that might post)
    standin.clear_faults()
    posted = await delivery.post_once(marker, CHANNELS[0], message)
    assert await posted_per_event(standin) == {"event-refused": 1}
    assert posted.ts
    assert standin.calls("conversations.history") == []
