"""Live progress in the notifier: BatchRunProgress -> the run's parent message (chat.update).

Real DynamoDB (moto over HTTP) holds the thread and its view, real slack-sdk talks to the
Slack stand-in over HTTP. The handlers are built as the service builds them; one test goes
through SNS -> SQS -> the worker to prove the event is routed to the notifier at all.
Checks read what the stand-in recorded: the ``chat.update`` calls and the message as a
reader sees it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from tenacity import wait_none

from services.notifier.blocks import SlackMessage
from services.notifier.delivery import Delivery
from services.notifier.handlers import NotifierHandlers
from services.notifier.pacing import ChannelPacer
from services.notifier.progress import ProgressUpdates
from services.notifier.settings import Routes
from services.notifier.slack import Posted, SlackWebApi
from services.notifier.store import NotifierStore
from shared.aws import AwsClients
from shared.runtime import Runtime
from shared.slack.blocks import GRAVE
from shared.topology import BootstrapReport, Names
from tests import notifier_samples as samples
from tests.integration.test_notifier import deliver, settings_for, start_notifier
from tests.support import runtime_over, texts_of
from toilkit.standins.slack import FaultSpec, SlackStandin

CHANNEL = "#toilkit"


@pytest.fixture
def runtime(aws: AwsClients, names: Names, topology: BootstrapReport) -> Runtime:
    return runtime_over(aws, names, topology)


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def notifier_handlers(
    runtime: Runtime,
    standin: SlackStandin,
    *,
    clock: Callable[[], float] | None = None,
    min_interval: float = 0,
    wrap: Callable[[SlackWebApi], Any] | None = None,
) -> AsyncIterator[NotifierHandlers]:
    """The notifier's run handlers over moto and the stand-in (``wrap``: a seam around the
    Slack adapter, to act at a chosen moment)."""
    settings = settings_for(standin, retries={"settle_seconds": 0, "rate_limited": 5})
    async with SlackWebApi.open(
        settings,
        ChannelPacer(0),
        backoff=FixedValueRetryIntervalCalculator(0),
        post_wait=wait_none(),
    ) as slack:
        port = wrap(slack) if wrap else slack
        store = NotifierStore(runtime.aws.dynamodb, runtime.names.state_table, ttl_seconds=86400)
        delivery = Delivery(port, store, claim_lease_seconds=60)
        progress = ProgressUpdates(
            port, store, min_interval=min_interval, **({"clock": clock} if clock else {})
        )
        yield NotifierHandlers(delivery, store, Routes(default=CHANNEL), None, progress)


@contextlib.asynccontextmanager
async def started_run(
    runtime: Runtime, standin: SlackStandin, **options: Any
) -> AsyncIterator[tuple[NotifierHandlers, str]]:
    """:func:`notifier_handlers` (``options`` go to it), with a fresh run started: the
    handlers and the run's id."""
    run = samples.run_id()
    async with notifier_handlers(runtime, standin, **options) as handlers:
        await handlers.on_run_event(samples.run_started(run))
        yield handlers, run


def parent_text(standin: SlackStandin, run: str) -> str:
    (parent,) = [
        m for m in standin.messages(CHANNEL) if f"Run `{run}`" in json.dumps(m.get("blocks", []))
    ]
    return "\n".join(texts_of(parent["blocks"]))


def updates_of(standin: SlackStandin) -> list[str]:
    """What each successful chat.update set the message to show, in order."""
    return [
        "\n".join(texts_of(c.arguments.get("blocks") or []))
        for c in standin.calls("chat.update")
        if c.ok
    ]


async def test_progress_shows_tail_and_elapsed_newest_only(
    runtime: Runtime, standin: SlackStandin
) -> None:
    async with started_run(runtime, standin) as (handlers, run):
        # GIVEN two progress events, the newer one handled first (SQS does not keep order)
        await handlers.on_run_progress(
            samples.run_progress(run, 3, "step 1", "step 2 <b> & `x`", elapsed=75)
        )
        await handlers.on_run_progress(samples.run_progress(run, 2, "step 1", elapsed=65))

    shown = parent_text(standin, run)
    # THEN the parent shows the newer one: elapsed time and its lines, escaped, in code
    assert "Running for *1m 15s*" in shown
    assert f"step 2 &lt;b&gt; &amp; `x{GRAVE}```" in shown  # no fence merged with a backtick
    assert "last 2 lines" in shown
    # and the older one was never sent (not newer than what the parent shows)
    assert len(updates_of(standin)) == 1
    # AND the stand-in's page shows the updated message: the tail as code, "(edited)"
    async with aiohttp.ClientSession() as session, session.get(standin.base_url + "/") as got:
        page = await got.text()
    assert f'<pre class="code">step 1\nstep 2 &lt;b&gt; &amp; `x{GRAVE}</pre>' in page
    assert "(edited)" in page


async def test_no_output_shows_elapsed_only(runtime: Runtime, standin: SlackStandin) -> None:
    async with started_run(runtime, standin) as (handlers, run):
        await handlers.on_run_progress(samples.run_progress(run, 1, elapsed=9))

    shown = parent_text(standin, run)
    assert "Running for *9s* · _no output yet_" in shown
    assert "```" not in shown


async def test_final_message_keeps_the_tail_and_later_progress_never_overwrites_it(
    runtime: Runtime, standin: SlackStandin
) -> None:
    async with started_run(runtime, standin) as (handlers, run):
        await handlers.on_run_progress(
            samples.run_progress(run, 1, "batch 1/3: 10000 sessions expired")
        )
        await handlers.on_run_event(samples.run_finished(run))
        updates_before = len(standin.calls("chat.update"))
        # WHEN a progress sent before the finish arrives after it (a late SQS delivery)
        await handlers.on_run_progress(samples.run_progress(run, 2, "batch 2/3", elapsed=200))

    # THEN nothing is sent, and the final message shows the finish's tail
    assert len(standin.calls("chat.update")) == updates_before
    shown = parent_text(standin, run)
    assert "Succeeded" in shown
    assert "Last 5 log lines" in shown
    assert "done: 24211 sessions expired" in shown
    assert "Running for" not in shown


async def test_a_finish_stored_while_progress_is_on_its_way_is_shown_last(
    runtime: Runtime, standin: SlackStandin
) -> None:
    """The race: progress stored its view and sent chat.update; the finish stored the final
    view and updated Slack before the progress's update landed. The progress handler sees
    the newer view and shows it again, so the final message is what stays."""
    finish_now: list[Callable[[], Any]] = []

    class FinishFirst:
        """The Slack adapter, with the finish handled just before a progress update."""

        def __init__(self, slack: SlackWebApi) -> None:
            self._slack = slack

        def __getattr__(self, name: str) -> Any:
            return getattr(self._slack, name)

        async def update_unless_limited(self, posted: Posted, message: SlackMessage) -> None:
            while finish_now:
                await finish_now.pop()()
            await self._slack.update_unless_limited(posted, message)

    async with started_run(runtime, standin, wrap=FinishFirst) as (handlers, run):
        finish_now.append(lambda: handlers.on_run_event(samples.run_finished(run)))
        await handlers.on_run_progress(samples.run_progress(run, 1, "batch 1/3"))

    updates = updates_of(standin)
    # the finish's update, then the stale progress one, then the final view again
    assert any("Running for" in u for u in updates)
    assert "Succeeded" in updates[-1] and "Running for" not in updates[-1]
    assert "Succeeded" in parent_text(standin, run)


async def test_429_skips_progress_until_retry_after_and_the_finish_still_lands(
    runtime: Runtime, standin: SlackStandin
) -> None:
    clock = FakeClock()
    async with started_run(runtime, standin, clock=clock) as (handlers, run):
        # GIVEN Slack answers the next two chat.update calls 429, Retry-After 1 s
        standin.set_faults(
            FaultSpec(method="chat.update", rate_limited=1.0, retry_after=1, max_injections=2)
        )
        await handlers.on_run_progress(samples.run_progress(run, 1, "step 1"))
        # WHEN more progress comes before Retry-After has passed: not even tried
        clock.now += 0.5
        await handlers.on_run_progress(samples.run_progress(run, 2, "step 2"))
        tried = [c for c in standin.calls("chat.update")]
        assert [c.fault for c in tried] == ["rate_limited"]
        # THEN the finish waits the second 429 out (slack-sdk's handler) and lands
        await handlers.on_run_event(samples.run_finished(run))
        # and once Retry-After has passed, progress would be tried again (the run is over:
        # nothing to show, nothing sent)
        clock.now += 1
        await handlers.on_run_progress(samples.run_progress(run, 3, "step 3"))

    calls = standin.calls("chat.update")
    assert [c.fault for c in calls] == ["rate_limited", "rate_limited", None]
    assert "Succeeded" in parent_text(standin, run)
    (parent,) = [m for m in standin.messages(CHANNEL) if f"Run `{run}`" in json.dumps(m["blocks"])]
    assert any("*Succeeded* after 4m 12s" in json.dumps(r["blocks"]) for r in parent["replies"])


async def test_min_interval_per_run(runtime: Runtime, standin: SlackStandin) -> None:
    clock = FakeClock()
    async with started_run(runtime, standin, clock=clock, min_interval=5) as (handlers, run):
        await handlers.on_run_progress(samples.run_progress(run, 1, "a"))
        clock.now += 2
        await handlers.on_run_progress(samples.run_progress(run, 2, "b"))  # too soon: dropped
        clock.now += 4
        await handlers.on_run_progress(samples.run_progress(run, 3, "c"))

    assert len(updates_of(standin)) == 2
    assert "\nc" in parent_text(standin, run) or "```c```" in parent_text(standin, run)


async def test_progress_is_routed_to_the_notifier(runtime: Runtime, standin: SlackStandin) -> None:
    """Through SNS (the notifier queue's filter policy) and the worker."""
    service = await start_notifier(runtime, settings_for(standin, progress_min_interval_seconds=0))
    try:
        run = samples.run_id()
        await deliver(runtime, service, samples.run_started(run))
        await deliver(runtime, service, samples.run_progress(run, 1, "hello from the run"))
    finally:
        await service.aclose()
    assert "hello from the run" in parent_text(standin, run)
