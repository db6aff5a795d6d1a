"""The notifier end to end: SNS -> SQS (moto over HTTP) -> notifier worker -> Slack stand-in.

Everything is real but Slack, which is the project's stand-in over HTTP: events are published
to the topic, the notifier consumes its queue with the production wiring
(:func:`~services.notifier.service.build_notifier`), and the assertions read what the
stand-in recorded (calls, arguments, times) and the channels it ends up with.

The notifier's thread claims rely on DynamoDB's atomic conditional writes; the suite's moto
server (tests/conftest.py) serves DynamoDB one request at a time to keep them atomic.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from datetime import timedelta
from typing import Any

import pytest
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from tenacity import wait_none

from services.notifier.blocks import SlackMessage
from services.notifier.delivery import Delivery
from services.notifier.handlers import NotifierHandlers, build_handlers
from services.notifier.pacing import ChannelPacer
from services.notifier.service import NotifierService, build_notifier
from services.notifier.settings import NotifierSettings, SlackRetrySettings
from services.notifier.slack import PostMarker, SlackWebApi
from services.notifier.store import NotifierStore
from shared.aws import AwsClients
from shared.errors import PermanentError
from shared.events import EventBase
from shared.idempotency import IdempotencyStore
from shared.runtime import Runtime
from shared.slack.blocks import section
from shared.topology import MAX_RECEIVE_COUNT, BootstrapReport, Names
from shared.worker import failure_key
from tests import notifier_samples as samples
from tests.support import (
    FAST_WORKER,
    eventually,
    queue_depth,
    receive_all,
    spawn_module,
)
from toilkit.standins.slack import FaultSpec, SlackStandin

FULL_SIZE = os.environ.get("TOILKIT_FULL_SIZE") == "1"

ROUTES = {
    "default": "#toilkit",
    "states": {"prod-*": "#prod-drift"},
    "commands": {"db-*": "#data-runs"},
}


# --------------------------------------------------------------------------- fixtures


def settings_for(standin: SlackStandin, **overrides: Any) -> NotifierSettings:
    values: dict[str, Any] = {
        "slack_api_url": standin.api_url,
        "post_interval_seconds": 0,
        "routes": json.dumps(ROUTES),
        "worker": FAST_WORKER,
        # The stand-in's faults here answer at once (its late answers are within the
        # client's timeout): a look-up settles at once. test_notifier_ambiguous.py has the
        # late ones.
        "retries": SlackRetrySettings(settle_seconds=0),
        **overrides,
    }
    return NotifierSettings(**values)


@pytest.fixture
async def notifier(runtime: Runtime, standin: SlackStandin) -> AsyncIterator[NotifierService]:
    service = await start_notifier(runtime, settings_for(standin))
    yield service
    await service.aclose()


async def start_notifier(runtime: Runtime, settings: NotifierSettings) -> NotifierService:
    return await build_notifier(
        runtime,
        settings=settings,
        slack_backoff=FixedValueRetryIntervalCalculator(0),
        post_wait=wait_none(),
    )


async def deliver(runtime: Runtime, service: NotifierService, *events: EventBase) -> None:
    """Publish the events to the topic and let the notifier drain its queue."""
    for event in events:
        await runtime.publisher.publish(event)
    await service.drain()


def marker(message: dict[str, Any]) -> tuple[str, str]:
    payload = message["metadata"]["event_payload"]
    return payload["event_id"], payload["role"]


def everything_posted(standin: SlackStandin, channels: Iterable[str]) -> list[dict[str, Any]]:
    """Every top-level message and reply in the channels."""
    found = []
    for channel in channels:
        for message in standin.messages(channel):
            found.append(message)
            found.extend(message["replies"])
    return found


def block_text(message: dict[str, Any]) -> str:
    """All the text of a message's blocks, as one string to search."""
    return json.dumps(message.get("blocks", []), ensure_ascii=False)


def shown(standin: SlackStandin, channel: str) -> list[Any]:
    """What a reader sees in a channel: each message's blocks and its replies' blocks."""
    return [(m["blocks"], [r["blocks"] for r in m["replies"]]) for m in standin.messages(channel)]


def posted_by(messages: list[dict[str, Any]], event_id: str) -> dict[str, Any]:
    """The top-level message an event posted."""
    (message,) = [m for m in messages if marker(m)[0] == event_id]
    return message


def run_parent(messages: list[dict[str, Any]], run_id: str) -> dict[str, Any]:
    (parent,) = [m for m in messages if f"Run `{run_id}`" in block_text(m)]
    return parent


def button(message: dict[str, Any], action_id: str) -> dict[str, Any] | None:
    for block in message.get("blocks", []):
        for element in block.get("elements", []):
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return element
    return None


# --------------------------------------------------------------------------- drift


async def test_a_drift_report_is_posted_routed_claimed_and_resolved(
    runtime: Runtime, notifier: NotifierService, standin: SlackStandin
) -> None:
    report = samples.drift_detected("prod-network")
    actionable = [f for f in report.findings if not f.ignored]

    await deliver(runtime, notifier, report, samples.scan_failed("prod-dns"), samples.digest())

    drift_channel = standin.messages("#prod-drift")
    assert len(drift_channel) == 2  # the report and the failed scan, both routed by state
    parent = posted_by(drift_channel, report.event_id)
    text = block_text(parent)
    assert "Drift detected in prod-network" in text
    for finding in actionable:
        assert finding.address.replace('"', '\\"') in text
    assert "(sensitive)" in text
    claim = button(parent, "drift_claim")
    assert claim is not None
    value = json.loads(claim["value"])
    assert value["state"] == "prod-network"
    assert sorted(value["fingerprints"]) == sorted(f.fingerprint for f in actionable)
    failed = next(m for m in drift_channel if m is not parent)
    assert "Drift scan failed for prod-dns" in block_text(failed)
    (digest,) = standin.messages("#toilkit")
    assert "Drift scan digest" in block_text(digest)

    # Someone presses "I'm on it": the report says who, and the thread records it.
    await deliver(
        runtime,
        notifier,
        samples.drift_claimed("prod-network", tuple(f.fingerprint for f in actionable)),
    )
    parent = posted_by(standin.messages("#prod-drift"), report.event_id)
    assert "<@U0BOB00002> is on it" in block_text(parent)
    assert "edited" in parent
    assert [block_text(r) for r in parent["replies"]] == [
        json.dumps([section(":eyes: <@U0BOB00002> is on it.")], ensure_ascii=False)
    ]

    # The next scan finds the security group fixed, then the one after finds the rest.
    first_fix = samples.drift_resolved("prod-network", (actionable[0],))
    await deliver(runtime, notifier, first_fix)
    parent = posted_by(standin.messages("#prod-drift"), report.event_id)
    assert f"~{actionable[0].address}~" in block_text(parent)
    assert "Drift detected in prod-network" in block_text(parent)
    assert "1 resolved" in block_text(parent["replies"][-1])

    rest = samples.drift_resolved("prod-network", tuple(actionable[1:]), scan_id="scan-0314")
    await deliver(runtime, notifier, rest)
    parent = posted_by(standin.messages("#prod-drift"), report.event_id)
    assert "Drift resolved in prod-network" in block_text(parent)
    assert button(parent, "drift_claim") is None
    assert "All resolved" in block_text(parent["replies"][-1])
    assert len(parent["replies"]) == 3
    assert len(standin.calls("chat.postMessage")) == 3 + 3  # 3 top-level, 3 replies


async def test_the_same_drift_again_updates_its_report_and_new_drift_supersedes_it(
    runtime: Runtime, notifier: NotifierService, standin: SlackStandin
) -> None:
    day_one = samples.drift_detected(
        "prod-network", (samples.database_drift(), samples.bucket_policy_deleted())
    )
    await deliver(runtime, notifier, day_one)
    day_two = samples.drift_detected(
        "prod-network",
        (samples.database_drift(), samples.bucket_policy_deleted()),
        scan_id="scan-0313",
        occurred_at=samples.NOW + timedelta(days=1),
    )
    await deliver(runtime, notifier, day_two)

    (report,) = standin.messages("#prod-drift")
    assert "Scan `scan-0313`" in block_text(report)  # updated to the latest scan
    assert "open *5 days*" in block_text(report)
    (still,) = report["replies"]
    assert "still there" in block_text(still)

    # Day three: new drift next to the old: a new message, and the old one says so.
    day_three = samples.drift_detected(
        "prod-network",
        (samples.database_drift(), samples.bucket_policy_deleted(), samples.security_group_drift()),
        scan_id="scan-0314",
        occurred_at=samples.NOW + timedelta(days=2),
    )
    await deliver(runtime, notifier, day_three)
    old, new = standin.messages("#prod-drift")
    assert "superseded" in block_text(old)
    assert button(old, "drift_claim") is None
    assert "reported it in a new message" in block_text(old["replies"][-1])
    assert "aws_security_group.web" in block_text(new)

    # A resolution now lands in the new report's thread, not the superseded one.
    await deliver(
        runtime,
        notifier,
        samples.drift_resolved("prod-network", (samples.database_drift(),), scan_id="scan-0315"),
    )
    old, new = standin.messages("#prod-drift")
    assert len(old["replies"]) == 2
    assert len(new["replies"]) == 1
    assert "~aws_db_instance.main~" in block_text(new)


# --------------------------------------------------------------------------- runs


async def test_a_run_is_one_parent_updated_to_its_final_status_with_details_in_its_thread(
    runtime: Runtime, notifier: NotifierService, standin: SlackStandin
) -> None:
    run = samples.run_id()
    await deliver(runtime, notifier, samples.approval_requested(run, "db-backfill"))
    (parent,) = standin.messages("#data-runs")
    assert "Awaiting approval" in block_text(parent)
    assert button(parent, "batch_approve")["value"] == run  # type: ignore[index]
    assert button(parent, "batch_reject")["value"] == run  # type: ignore[index]
    assert "(sensitive)" in block_text(parent)
    assert "<!subteam^S0SRE00001>" in block_text(parent)

    await deliver(runtime, notifier, samples.run_started(run, "db-backfill", approved=True))
    (parent,) = standin.messages("#data-runs")
    assert "Running" in block_text(parent)
    assert button(parent, "batch_approve") is None
    assert button(parent, "batch_cancel")["value"] == run  # type: ignore[index]
    (started,) = parent["replies"]
    assert "Approved by <@U0CAROL003>" in block_text(started)

    await deliver(runtime, notifier, samples.run_finished(run, "db-backfill", "failed"))
    (parent,) = standin.messages("#data-runs")
    assert ":x: *Failed*" in block_text(parent)
    assert button(parent, "batch_cancel") is None
    assert button(parent, "batch_rerun")["value"] == run  # type: ignore[index]
    finished = parent["replies"][-1]
    assert "done: 24211 sessions expired" in block_text(finished)
    assert "exit code `1`" in block_text(finished)
    assert len(standin.calls("chat.postMessage")) == 3


async def test_run_events_handled_together_or_out_of_order_still_make_one_parent(
    runtime: Runtime, notifier: NotifierService, standin: SlackStandin
) -> None:
    together, reversed_run, refused = samples.run_id(), samples.run_id(), samples.run_id()
    # Published at once: the worker handles them concurrently.
    await deliver(
        runtime,
        notifier,
        samples.run_started(together),
        samples.run_finished(together),
        samples.run_finished(reversed_run, status="cancelled"),
        samples.run_refused(refused, command="rails-runner"),
    )
    await deliver(runtime, notifier, samples.run_started(reversed_run))  # arrives last

    parents = standin.messages("#toilkit")
    assert len(parents) == 3
    first = run_parent(parents, together)
    assert "*Succeeded*" in block_text(first)
    assert len(first["replies"]) == 1  # the finish, whichever of the two came first
    late = run_parent(parents, reversed_run)
    assert "*Cancelled*" in block_text(late)  # a late start never turns it back to running
    assert "<@U0BOB00002>" in block_text(late)  # but fills in who asked for it
    (cancelled,) = late["replies"]
    assert "cancelled by <@U0ALICE001>" in block_text(cancelled)
    no = run_parent(parents, refused)
    assert ":no_entry: *Refused*" in block_text(no)
    assert "deploy freeze" in block_text(no)
    assert no["replies"] == []


# --------------------------------------------------------------------------- exactly once


async def test_every_event_handled_twice_posts_once_and_updates_in_place(
    aws: AwsClients, names: Names, topology: BootstrapReport, standin: SlackStandin
) -> None:
    """As if the worker's idempotency record were lost: the notifier's own records hold."""
    settings = settings_for(standin)
    store = NotifierStore(aws.dynamodb, names.state_table)
    run = samples.run_id()
    report = samples.drift_detected("prod-network")
    events: list[EventBase] = [
        report,
        samples.drift_claimed("prod-network", (samples.database_drift().fingerprint,)),
        samples.drift_resolved("prod-network"),
        samples.scan_failed(),
        samples.digest(),
        samples.approval_requested(run, "db-backfill"),
        samples.run_started(run, "db-backfill", approved=True),
        samples.run_finished(run, "db-backfill"),
        samples.run_refused(samples.run_id()),
    ]
    async with SlackWebApi.open(settings, ChannelPacer(0)) as slack:
        delivery = Delivery(slack, store, claim_lease_seconds=600)
        handlers = build_handlers(NotifierHandlers(delivery, store, settings.load_routes()))
        for event in events:
            await handlers[type(event)](event)
        posted_once = len(standin.calls("chat.postMessage"))
        channels = {c: shown(standin, c) for c in ("#prod-drift", "#toilkit", "#data-runs")}

        for event in events:
            await handlers[type(event)](event)

    assert len(standin.calls("chat.postMessage")) == posted_once == 9
    assert {c: shown(standin, c) for c in channels} == channels
    assert standin.calls("conversations.history") == []  # records made look-ups needless


async def test_a_post_whose_answer_is_lost_is_looked_up_before_posting_again(
    runtime: Runtime, notifier: NotifierService, standin: SlackStandin
) -> None:
    # The first post gets a 503 (not posted), the next two lose their connection.
    standin.set_faults(
        FaultSpec(method="chat.postMessage", server_error=1.0, max_injections=1, seed=1)
    )
    first = samples.scan_failed("prod-a")
    await deliver(runtime, notifier, first)
    standin.set_faults(FaultSpec(method="chat.postMessage", drop=1.0, max_injections=2, seed=2))
    second = samples.scan_failed("prod-b")
    await deliver(runtime, notifier, second)

    posted = [marker(m) for m in standin.messages("#prod-drift")]
    assert posted == [(first.event_id, "message"), (second.event_id, "message")]
    assert len(standin.calls("conversations.history")) == 1 + 2  # one look-up per unknown


@pytest.mark.heavy
async def test_under_rate_limits_5xx_and_slow_calls_every_event_arrives_once(
    runtime: Runtime, notifier: NotifierService, standin: SlackStandin
) -> None:
    size = 200 if FULL_SIZE else 60
    events: list[EventBase] = []
    expected: set[tuple[str, str]] = set()
    runs: list[tuple[str, str]] = []
    for group in range(size // 4):
        run = samples.run_id()
        started = samples.run_started(run, "db-backfill" if group % 2 else "rails-runner")
        finished = samples.run_finished(run, started.command)
        report = samples.drift_detected(
            f"prod-{group}",
            (
                samples.database_drift(f"{group:08x}aaaaaaaa"),
                samples.lambda_pending(f"{group:08x}bbbbbbbb"),
            ),
        )
        failed = samples.scan_failed(f"prod-failing-{group}")
        events += [started, finished, report, failed]
        runs.append((started.event_id, finished.event_id))
        # Whichever of a run's two events is handled first posts its parent.
        expected |= {
            (finished.event_id, "reply"),
            (report.event_id, "parent"),
            (failed.event_id, "message"),
        }
    for event in events:
        await runtime.publisher.publish(event)
    standin.set_faults(
        FaultSpec(
            rate_limited=0.20,
            retry_after=1,
            server_error=0.10,
            slow=0.05,
            slow_seconds=1.0,
            seed=20250312,
        )
    )

    await notifier.drain()

    channels = ("#toilkit", "#data-runs", "#prod-drift")
    delivered = Counter(marker(m) for m in everything_posted(standin, channels))
    assert max(delivered.values()) == 1  # none twice
    run_parents = {m for m in delivered if m[1] == "parent" and m not in expected}
    assert set(delivered) == expected | run_parents  # all delivered, nothing else
    for started, finished in runs:
        both = run_parents & {(started, "parent"), (finished, "parent")}
        if len(both) != 1:
            for c in standin.calls():
                if started in json.dumps(c.arguments) or finished in json.dumps(c.arguments):
                    print(
                        "DEBUG",
                        c.seq,
                        c.method,
                        c.fault,
                        c.http_status,
                        c.error,
                        c.time,
                        c.arguments.get("metadata"),
                        c.arguments.get("ts"),
                    )
        assert len(both) == 1
    run_messages = standin.messages("#toilkit") + standin.messages("#data-runs")
    assert len(run_messages) == len(runs)
    for message in run_messages:
        assert "*Succeeded*" in block_text(message)
    # Retry-After honoured: a post answered 429 was not sent again for a second.
    calls = standin.calls()
    limited = [c for c in calls if c.fault == "rate_limited" and c.method == "chat.postMessage"]
    assert limited, "the seed injected no 429 into chat.postMessage"
    for call in limited:
        retry = next(
            c
            for c in calls
            if c.seq > call.seq and c.method == call.method and c.arguments == call.arguments
        )
        assert retry.time - call.time >= 1.0, (call.seq, retry.seq)
    assert {c.fault for c in calls} >= {"rate_limited", "server_error", "slow"}
    topology = runtime.topology
    assert await queue_depth(runtime.aws.sqs, topology.queue_urls["notifier"]) == (0, 0)
    assert await receive_all(runtime.aws.sqs, topology.dlq_urls["notifier"]) == []


async def test_a_worker_killed_between_posting_and_recording_does_not_post_twice(
    runtime: Runtime,
    standin: SlackStandin,
    names: Names,
    moto_endpoint: str,
) -> None:
    run = samples.run_id()
    started = samples.run_started(run)
    await runtime.publisher.publish(started)

    dying = _spawn_notifier(moto_endpoint, names, standin, NP_DIE_AFTER_POST="1")
    try:
        returncode = await asyncio.to_thread(dying.wait, 60)
    finally:
        dying.kill()
    assert returncode == -signal.SIGKILL
    (parent,) = standin.messages("#toilkit")  # Slack has it; DynamoDB does not know its ts
    assert marker(parent) == (started.event_id, "parent")

    recovering = _spawn_notifier(moto_endpoint, names, standin)
    try:
        queue = runtime.topology.queue_urls["notifier"]
        await eventually(lambda: _queue_is_empty(runtime, queue), timeout=60, every=0.5)
        # The thread works from the recovered record: the finish replies under the parent.
        await runtime.publisher.publish(samples.run_finished(run))
        await eventually(lambda: _has_replies(standin, 1), timeout=60, every=0.2)
        await eventually(lambda: _queue_is_empty(runtime, queue), timeout=60, every=0.5)
    finally:
        recovering.send_signal(signal.SIGTERM)
        _out, err = await asyncio.to_thread(recovering.communicate, timeout=60)

    assert recovering.returncode == 0, err
    assert "was posted by an attempt that died" in err
    (parent,) = standin.messages("#toilkit")
    assert "*Succeeded*" in block_text(parent)
    assert len(standin.calls("chat.postMessage")) == 2  # the parent once, the reply once
    assert len(standin.calls("conversations.history")) == 1
    assert await receive_all(runtime.aws.sqs, runtime.topology.dlq_urls["notifier"]) == []


async def _queue_is_empty(runtime: Runtime, url: str) -> bool:
    return await queue_depth(runtime.aws.sqs, url) == (0, 0)


async def _has_replies(standin: SlackStandin, count: int) -> bool:
    messages = standin.messages("#toilkit")
    return bool(messages) and len(messages[0]["replies"]) >= count


def _spawn_notifier(
    moto_endpoint: str, names: Names, standin: SlackStandin, **env: str
) -> subprocess.Popen[str]:
    process_env = {
        **os.environ,
        "NP_ENDPOINT": moto_endpoint,
        "NP_PREFIX": names.prefix,
        "NP_BUCKET": names.bucket,
        "NP_SLACK_API_URL": standin.api_url,
        **env,
    }
    return spawn_module("tests.integration.notifier_process", process_env)


# --------------------------------------------------------------------------- permanent errors


@pytest.mark.parametrize(
    ("standin_options", "settings_overrides", "error"),
    [
        ({}, {"routes": json.dumps({"default": "C_MISSING"})}, "channel_not_found"),
        ({"valid_tokens": ["xoxb-right"]}, {"slack_bot_token": "xoxb-wrong"}, "invalid_auth"),
        ({"bot_not_in_channels": ["#toilkit"]}, {}, "not_in_channel"),
    ],
)
async def test_permanent_slack_errors_go_to_the_dlq_with_the_reason(
    runtime: Runtime,
    aws: AwsClients,
    names: Names,
    standin_options: dict[str, Any],
    settings_overrides: dict[str, Any],
    error: str,
) -> None:
    async with SlackStandin(**standin_options) as refusing:
        service = await start_notifier(runtime, settings_for(refusing, **settings_overrides))
        event = samples.digest()
        try:
            await deliver(runtime, service, event)
        finally:
            await service.aclose()
        posts = refusing.calls("chat.postMessage")

    dead = await receive_all(aws.sqs, runtime.topology.dlq_urls["notifier"])
    assert [json.loads(m["Body"])["event_id"] for m in dead] == [event.event_id]
    reason = await IdempotencyStore(aws.dynamodb, names.idempotency_table).failure_reason(
        failure_key(names.queue("notifier"), dead[0]["MessageId"])
    )
    assert reason is not None and error in reason
    # once per receive, never retried within one (maxReceiveCount)
    assert len(posts) == MAX_RECEIVE_COUNT
    assert all(call.error == error for call in posts)


async def test_blocks_slack_rejects_are_a_permanent_error(standin: SlackStandin) -> None:
    settings = settings_for(standin)
    too_many = SlackMessage(text="x", blocks=tuple(section(f"{i}") for i in range(51)))
    async with SlackWebApi.open(settings, ChannelPacer(0)) as slack:
        with pytest.raises(PermanentError, match="invalid_blocks"):
            await slack.post("#toilkit", too_many, marker=PostMarker("e", "r"), thread_ts=None)
