"""The batch service with the local runner, end to end over SNS/SQS on moto: a request
published to the topic, the real worker, real subprocesses, outcome events on the
notifier's queue, the run record and its audit trail in DynamoDB."""

from __future__ import annotations

import asyncio
import copy
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.batch.handlers import expire_overdue_approvals, on_batch_approved, on_batch_requested
from shared.aws import AwsClients
from shared.errors import TransientError
from shared.events import (
    Actor,
    BatchApprovalRequested,
    BatchApproved,
    BatchCancelRequested,
    BatchRejected,
    BatchRequested,
    BatchRunFinished,
    BatchRunRefused,
    BatchRunStarted,
    EventBase,
    RunParameter,
)
from shared.topology import BootstrapReport, Names
from tests.integration.batch_harness import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    BatchHarness,
    echo_lines,
    make_harness,
    run_record,
)
from tests.support import eventually


@pytest.fixture
async def batch_with_short_timeouts(
    aws: AwsClients, shared_topology: tuple[Names, BootstrapReport], tmp_path: Path
) -> BatchHarness:
    names, topology = shared_topology
    return await make_harness(aws, names, topology, tmp_path, reindex_timeout=1, kill_grace=0.5)


def only(events: list[EventBase], kind: type[EventBase]) -> EventBase:
    matching = [e for e in events if isinstance(e, kind)]
    assert len(matching) == 1, f"expected one {kind.__name__} in {events}"
    return matching[0]


def types(events: list[EventBase]) -> list[str]:
    return [getattr(e, "type") for e in events]  # noqa: B009


def approval(run_id: str, by: Actor) -> BatchApproved:
    return BatchApproved(correlation_id="a", source="test", run_id=run_id, approved_by=by)


def cancellation(run_id: str, by: Actor) -> BatchCancelRequested:
    return BatchCancelRequested(correlation_id="c", source="test", run_id=run_id, requested_by=by)


async def finished_run(
    batch: BatchHarness, command: str, **parameters: str
) -> tuple[str, BatchRunFinished]:
    """Request ``command`` in staging and let it run to its end: its run id, how it finished."""
    request = await batch.request(command, **parameters)
    await batch.drain()
    finished = only(await batch.outcomes(request.run_id), BatchRunFinished)
    assert isinstance(finished, BatchRunFinished)
    return request.run_id, finished


async def waiting_request(batch: BatchHarness) -> BatchRequested:
    """Alice's request to run echo-args in production, handled: it waits for an approval."""
    request = await batch.request("echo-args", "production", by=ALICE, text="x")
    await batch.drain()
    return request


async def actions(batch: BatchHarness, run_id: str) -> list[str]:
    return [entry.action for entry in await batch.runs.audit_trail(run_id)]


# --------------------------------------------------------------------------- running


async def test_a_backfill_runs_and_reports_started_then_finished(
    batch: BatchHarness, aws: AwsClients
) -> None:
    request = await batch.request("backfill-orders", since="2024-06-01", batch_size="400")
    await batch.drain()

    events = await batch.outcomes(request.run_id)
    assert types(events) == ["BatchRunStarted", "BatchRunFinished"]
    started, finished = events
    assert isinstance(started, BatchRunStarted) and isinstance(finished, BatchRunFinished)
    assert started.runner == "local"
    assert started.requested_by == request.requested_by
    assert [(p.name, p.value) for p in started.parameters] == [
        ("since", "2024-06-01"),
        ("batch_size", "400"),
        ("dry_run", "false"),
    ]
    assert started.log_url and started.log_url.startswith("file://")
    assert finished.status == "succeeded"
    assert finished.exit_code == 0
    assert finished.duration_seconds > 0
    assert finished.log_url == started.log_url
    assert any(line.startswith("backfilled ") for line in finished.log_tail)
    assert "batch 1: 400 rows" in batch.log_of(request.run_id)

    # The same output went to CloudWatch Logs, in a stream named after the run.
    logs = await aws.client("logs")
    stream = await logs.get_log_events(
        logGroupName="/toilkit/batch", logStreamName=request.run_id, startFromHead=True
    )
    messages = [e["message"] for e in stream["events"]]
    assert "batch 1: 400 rows" in " ".join(messages)

    record = await batch.runs.get(request.run_id)
    assert record.status == "succeeded" and record.exit_code == 0
    assert await actions(batch, request.run_id) == [
        "requested",
        "authorized",
        "started",
        "finished",
    ]


async def test_a_failing_command_reports_its_exit_status_and_stderr(batch: BatchHarness) -> None:
    _, finished = await finished_run(batch, "check-invoices", month="2024-05")

    assert finished.status == "failed"
    assert finished.exit_code == 3
    assert finished.error is None  # the exit code says it; Slack shows it once
    tail = "\n".join(finished.log_tail)
    assert "3 invoices of 2024-05 have no matching payment" in tail
    assert "hint: run reconcile-payments" in tail


@pytest.mark.parametrize(
    ("command", "parameters", "exit_code", "error", "logged"),
    [
        # The script honoured SIGTERM: it said so and exited 128 + 15.
        (
            "reindex-search",
            {"steps": "30"},
            143,
            None,
            ("toilkit: timed out after 1s; stopping it", "received SIGTERM, stopping"),
        ),
        # It ignored SIGTERM, so it was killed.
        ("stubborn", {}, None, "killed by SIGKILL", ("sending SIGKILL",)),
    ],
    ids=["gets-sigterm", "ignores-sigterm-and-is-killed"],
)
async def test_a_run_past_its_timeout_is_stopped_and_reports_timed_out(
    batch_with_short_timeouts: BatchHarness,
    command: str,
    parameters: dict[str, str],
    exit_code: int | None,
    error: str | None,
    logged: tuple[str, ...],
) -> None:
    batch = batch_with_short_timeouts
    run_id, finished = await finished_run(batch, command, **parameters)

    assert finished.status == "timed_out"
    assert finished.exit_code == exit_code
    if error is not None:
        assert finished.error == error
    log = batch.log_of(run_id)
    for line in logged:
        assert line in log


async def test_cancel_stops_a_running_command(batch: BatchHarness) -> None:
    request = await batch.request("reindex-search", steps="60")
    await batch.handle_queue()
    assert types(await batch.outcomes(request.run_id)) == ["BatchRunStarted"]
    await eventually(lambda: _contains(batch, request.run_id, "step 1/60 done"))

    # Someone not allowed to run it cannot cancel it either.
    await batch.publish(cancellation(request.run_id, DAVE))
    await batch.handle_queue()
    assert (await batch.runs.get(request.run_id)).status == "running"

    await batch.handle(cancellation(request.run_id, BOB))

    finished = only(await batch.outcomes(request.run_id), BatchRunFinished)
    assert isinstance(finished, BatchRunFinished)
    assert finished.status == "cancelled"
    assert finished.cancelled_by == BOB
    assert finished.exit_code == 143
    assert "received SIGTERM" in "\n".join(finished.log_tail)
    assert await actions(batch, request.run_id) == [
        "requested",
        "authorized",
        "started",
        "cancel_refused",
        "cancel_requested",
        "finished",
    ]


async def _contains(batch: BatchHarness, run_id: str, text: str) -> bool:
    path = batch.log_dir / f"{run_id}.log"
    return path.exists() and text in path.read_text()


# --------------------------------------------------------------------------- approvals


async def test_production_waits_for_an_approval_then_runs(batch: BatchHarness) -> None:
    request = await batch.request("echo-args", "production", by=ALICE, text="approved run")
    await batch.drain()

    asked = only(await batch.outcomes(request.run_id), BatchApprovalRequested)
    assert isinstance(asked, BatchApprovalRequested)
    assert asked.approvers == ("S0SRE00001",)
    assert asked.expires_at > batch.clock() + timedelta(minutes=59)
    assert (await batch.runs.get(request.run_id)).status == "awaiting_approval"
    assert not (batch.log_dir / f"{request.run_id}.log").exists()

    await batch.handle(approval(request.run_id, BOB))

    events = await batch.outcomes(request.run_id)
    assert types(events) == ["BatchApprovalRequested", "BatchRunStarted", "BatchRunFinished"]
    started = only(events, BatchRunStarted)
    assert isinstance(started, BatchRunStarted) and started.approved_by == BOB
    assert only(events, BatchRunFinished).status == "succeeded"  # type: ignore[attr-defined]
    assert await actions(batch, request.run_id) == [
        "requested",
        "authorized",
        "approval_requested",
        "approved",
        "started",
        "finished",
    ]


async def test_a_rejection_ends_the_request_and_nothing_runs(batch: BatchHarness) -> None:
    request = await waiting_request(batch)
    await batch.handle(
        BatchRejected(
            correlation_id="r",
            source="test",
            run_id=request.run_id,
            rejected_by=BOB,
            reason="not during the sale",
        )
    )

    events = await batch.outcomes(request.run_id)
    assert types(events) == ["BatchApprovalRequested", "BatchRunRefused"]
    refused = events[1]
    assert isinstance(refused, BatchRunRefused)
    assert refused.stage == "approval"
    assert refused.reason == "rejected by bob (U0BOB00002): not during the sale"
    assert refused.decided_by == BOB
    assert (await batch.runs.get(request.run_id)).status == "refused"
    assert not (batch.log_dir / f"{request.run_id}.log").exists()

    # An approval arriving afterwards starts nothing; the approver is told why.
    await batch.handle(approval(request.run_id, BOB))
    late = await batch.last_outcome(request.run_id)
    assert isinstance(late, BatchRunRefused)
    assert "came after the request was closed" in late.reason
    assert not (batch.log_dir / f"{request.run_id}.log").exists()


@pytest.mark.parametrize(
    ("approver", "reason"),
    [
        (ALICE, "U0ALICE001 requested this run and cannot approve it (self-approval)"),
        (CAROL, "U0CAROL003 is not an approver here (approvers: S0SRE00001)"),
    ],
    ids=["self-approval", "not-an-approver"],
)
async def test_an_approval_that_does_not_count_refuses_the_request(
    batch: BatchHarness, approver, reason: str
) -> None:
    request = await waiting_request(batch)
    await batch.handle(approval(request.run_id, approver))

    refused = await batch.last_outcome(request.run_id)
    assert isinstance(refused, BatchRunRefused)
    assert refused.stage == "approval"
    assert refused.reason == reason
    assert refused.decided_by == approver
    assert "approval_refused" in await actions(batch, request.run_id)
    assert not (batch.log_dir / f"{request.run_id}.log").exists()


async def test_an_approval_after_the_expiry_is_refused(batch: BatchHarness) -> None:
    request = await waiting_request(batch)
    batch.clock.advance(timedelta(hours=1, seconds=1))
    await batch.handle(approval(request.run_id, BOB))

    events = await batch.outcomes(request.run_id)
    assert types(events) == ["BatchApprovalRequested", "BatchRunRefused", "BatchRunRefused"]
    expired, late = events[1], events[2]
    assert isinstance(expired, BatchRunRefused) and isinstance(late, BatchRunRefused)
    assert expired.reason.startswith("nobody approved it before ")
    assert late.reason.startswith(
        "the approval by bob (U0BOB00002) came after the request was closed"
    )
    assert late.decided_by == BOB
    assert await actions(batch, request.run_id) == [
        "requested",
        "authorized",
        "approval_requested",
        "expired",
        "refused",
        "approval_refused",
    ]
    assert not (batch.log_dir / f"{request.run_id}.log").exists()


async def test_an_unanswered_request_expires_on_its_own(batch: BatchHarness) -> None:
    request = await waiting_request(batch)
    assert await expire_overdue_approvals(batch.service.context) == 0
    batch.clock.advance(timedelta(hours=2))
    assert await expire_overdue_approvals(batch.service.context) == 1
    assert await expire_overdue_approvals(batch.service.context) == 0

    refused = await batch.last_outcome(request.run_id)
    assert isinstance(refused, BatchRunRefused)
    assert refused.stage == "approval" and "nobody approved it" in refused.reason


async def test_the_requester_can_withdraw_a_waiting_request(batch: BatchHarness) -> None:
    request = await waiting_request(batch)
    await batch.handle(cancellation(request.run_id, ALICE))

    finished = await batch.last_outcome(request.run_id)
    assert isinstance(finished, BatchRunFinished)
    assert finished.status == "cancelled" and finished.cancelled_by == ALICE
    assert finished.duration_seconds == 0
    # Approving it now changes nothing.
    await batch.handle(approval(request.run_id, BOB))
    assert (await batch.runs.get(request.run_id)).status == "cancelled"
    assert not (batch.log_dir / f"{request.run_id}.log").exists()


# --------------------------------------------------------------------------- at most once


async def test_a_redelivered_request_never_starts_a_second_run(
    batch: BatchHarness, aws: AwsClients, shared_topology: tuple[Names, BootstrapReport]
) -> None:
    names, _ = shared_topology
    request = await batch.request("echo-args", text="once")
    await batch.drain()
    # The worker's idempotency record is gone (expired, or lost in a crash before it
    # was written), so the same request reaches the handler again.
    await aws.dynamodb.delete_item(
        TableName=names.idempotency_table, Key={"id": {"S": f"batch#{request.event_id}"}}
    )
    await batch.handle(request)

    assert batch.log_of(request.run_id).count('argv[1] = "once"') == 1
    assert (await actions(batch, request.run_id)).count("started") == 1
    started = [e for e in await batch.outcomes(request.run_id) if isinstance(e, BatchRunStarted)]
    # Announced again with the same event id: the notifier drops the copy.
    assert len({e.event_id for e in started}) == 1


async def test_another_request_with_the_same_run_id_is_ignored(batch: BatchHarness) -> None:
    first = await batch.request("echo-args", text="first")
    await batch.drain()
    await batch.request("echo-args", run_id=first.run_id, text="second")
    await batch.drain()

    log = batch.log_of(first.run_id)
    assert '"first"' in log and '"second"' not in log
    assert (await actions(batch, first.run_id))[-1] == "duplicate"


async def test_concurrent_deliveries_of_one_request_start_one_run(batch: BatchHarness) -> None:
    request = await batch.request("echo-args", text="raced")
    # Both deliveries run the handler at the same moment (no worker idempotency between).
    await asyncio.gather(
        on_batch_requested(batch.service.context, request),
        on_batch_requested(batch.service.context, request),
    )
    await batch.service.supervisor.wait_idle()

    assert batch.log_of(request.run_id).count('argv[1] = "raced"') == 1
    assert (await actions(batch, request.run_id)).count("started") == 1


async def test_a_second_run_of_a_busy_command_is_refused_until_the_first_ends(
    batch: BatchHarness,
) -> None:
    first = await batch.request("reindex-search", steps="60")
    await batch.handle_queue()
    second = await batch.request("reindex-search", by=BOB, steps="5")
    await batch.handle_queue()

    refused = only(await batch.outcomes(second.run_id), BatchRunRefused)
    assert isinstance(refused, BatchRunRefused)
    assert refused.stage == "concurrency"
    assert refused.reason == (
        f"reindex-search in staging runs 1 at a time and {first.run_id} is running; "
        "request it again when that ends"
    )
    assert not (batch.log_dir / f"{second.run_id}.log").exists()
    # A different environment has its own slot.
    other = await batch.request("reindex-search", "production", by=BOB, steps="1")
    await batch.handle_queue()
    assert types(await batch.outcomes(other.run_id)) == ["BatchApprovalRequested"]

    await batch.handle(cancellation(first.run_id, ALICE))
    third = await batch.request("reindex-search", by=BOB, steps="1")
    await batch.drain()
    assert only(await batch.outcomes(third.run_id), BatchRunFinished).status == "succeeded"  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- bad input

INJECTION_CORPUS = [
    "; rm -rf /",
    "$(touch {marker})",
    "`touch {marker}`",
    "first line\nsecond line",
    "it's \"quoted\" and 'single'",
    "ünïcödé ✓ 日本語 🚀",
    "$HOME ${PATH} %PATH%",
    "a && b || c | d > /tmp/x < /etc/passwd &",
    "\ttabs and  spaces  ",
    "* ? [a-z] ~",
    "{text}",
    "back\\slash \\n not a newline",
]


async def test_every_injection_reaches_the_process_verbatim(
    batch: BatchHarness, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    corpus = [text.replace("{marker}", str(marker)) for text in INJECTION_CORPUS]
    requests = [await batch.request("echo-args", text=text) for text in corpus]
    await batch.drain()

    for text, request in zip(corpus, requests, strict=True):
        finished = only(await batch.outcomes(request.run_id), BatchRunFinished)
        assert finished.status == "succeeded", text  # type: ignore[attr-defined]
        printed = echo_lines(batch.log_of(request.run_id))
        # Exactly one argument, exactly the string, and the same in the variable.
        assert printed == {"argv[1]": text, "env ECHO_VALUE": text}, text
    assert not marker.exists()


@pytest.mark.parametrize(
    ("command", "environment", "parameters", "by", "stage", "reason"),
    [
        (
            "drop-database",
            "staging",
            {},
            ALICE,
            "validation",
            "command: unknown command 'drop-database' (known: backfill-orders, check-invoices, "
            "reindex-search, echo-args, nightly-invoice-check, run-patch, expire-coupons, "
            "drift-revert, stubborn, no-such-program)",
        ),
        (
            "echo-args",
            "prod",
            {"text": "x"},
            ALICE,
            "validation",
            "environment: echo-args cannot run in 'prod' (it runs in: staging, production)",
        ),
        (
            "backfill-orders",
            "staging",
            {"since": "2024-01-01", "batch_size": "lots"},
            ALICE,
            "validation",
            "batch_size: expected an integer, got 'lots'",
        ),
        (
            "backfill-orders",
            "staging",
            {"since": "2024-01-01", "batch_size": "0"},
            ALICE,
            "validation",
            "batch_size: must be at least 1 (got 0)",
        ),
        (
            "backfill-orders",
            "staging",
            {"since": "2024-01-01; rm -rf /"},
            ALICE,
            "validation",
            "since: is longer than 10 characters (20)",
        ),
        (
            "backfill-orders",
            "staging",
            {"since": "$(reboot)"},
            ALICE,
            "validation",
            "since: does not match the pattern \\d{4}-\\d{2}-\\d{2}",
        ),
        ("backfill-orders", "staging", {}, ALICE, "validation", "since: is required"),
        (
            "echo-args",
            "staging",
            {"text": "--help"},
            ALICE,
            "validation",
            "text: starts with '-', which the program would read as an option, not a value",
        ),
        (
            "echo-args",
            "staging",
            {"text": "x", "shell": "sh"},
            ALICE,
            "validation",
            "shell: echo-args has no parameter 'shell'",
        ),
        (
            "echo-args",
            "staging",
            {"text": "x"},
            DAVE,
            "authorization",
            "U0DAVE0004 may not run echo-args in staging (allowed: U0CAROL003, S0SRE00001)",
        ),
        (
            "no-such-program",
            "staging",
            {},
            ALICE,
            "runner",
            "cannot start 'toilkit-test-no-such-program'",
        ),
    ],
    ids=[
        "unknown-command",
        "unknown-environment",
        "not-an-integer",
        "below-minimum",
        "shell-metacharacters-too-long",
        "command-substitution",
        "missing",
        "leading-dash",
        "unknown-parameter",
        "unauthorized",
        "program-missing",
    ],
)
async def test_bad_requests_are_refused_with_a_reason_and_nothing_runs(
    batch: BatchHarness,
    command: str,
    environment: str,
    parameters: dict[str, str],
    by,
    stage: str,
    reason: str,
) -> None:
    request = await batch.request(command, environment, by=by, **parameters)
    await batch.drain()

    events = await batch.outcomes(request.run_id)
    assert types(events) == ["BatchRunRefused"]
    refused = events[0]
    assert isinstance(refused, BatchRunRefused)
    assert refused.stage == stage
    assert refused.reason.startswith(reason)
    record = await batch.runs.get(request.run_id)
    assert record.status == "refused" and record.refusal_reason == refused.reason
    trail = await batch.runs.audit_trail(request.run_id)
    assert trail[-1].action == "refused" and trail[-1].detail == f"{stage}: {refused.reason}"
    assert "started" not in [e.action for e in trail]
    if stage != "runner":
        assert not (batch.log_dir / f"{request.run_id}.log").exists()


async def test_a_request_without_a_slack_user_is_refused(batch: BatchHarness) -> None:
    request = await batch.request("echo-args", by=Actor(name="cron"), text="x")
    await batch.drain()
    refused = only(await batch.outcomes(request.run_id), BatchRunRefused)
    assert refused.stage == "authorization"  # type: ignore[attr-defined]
    assert "names no Slack user" in refused.reason  # type: ignore[attr-defined]


async def test_sensitive_values_reach_the_process_but_never_the_events_or_the_record(
    batch: BatchHarness,
) -> None:
    request = await batch.request("reindex-search", steps="1", api_key="s3cr3t-value")
    await batch.drain()

    for event in await batch.outcomes(request.run_id):
        assert "s3cr3t-value" not in event.model_dump_json()
    started = only(await batch.outcomes(request.run_id), BatchRunStarted)
    assert RunParameter(name="api_key", value=None, sensitive=True) in started.parameters  # type: ignore[attr-defined]
    record = await batch.runs.get(request.run_id)
    assert "s3cr3t-value" not in record.model_dump_json()
    assert record.sensitive_dropped
    trail = await batch.runs.audit_trail(request.run_id)
    assert all("s3cr3t-value" not in entry.detail for entry in trail)


async def test_two_approvals_are_two_different_people(
    aws: AwsClients, shared_topology: tuple[Names, BootstrapReport], tmp_path: Path
) -> None:
    """A policy asking for two approvals counts each approver once."""

    def two_approvals(data: dict[str, Any]) -> None:
        for command in data["commands"]:
            if command["name"] == "echo-args":
                production = copy.deepcopy(command["environments"]["production"])
                production["approval"]["min_approvals"] = 2
                command["environments"]["production"] = production

    names, topology = shared_topology
    batch = await make_harness(aws, names, topology, tmp_path, customize=two_approvals)
    request = await batch.request("echo-args", "production", by=CAROL, text="two")
    await batch.drain()
    for approver in (ALICE, ALICE, BOB):
        await batch.handle(approval(request.run_id, approver))
        if approver is ALICE:
            assert (await batch.runs.get(request.run_id)).status == "awaiting_approval"

    trail = await batch.runs.audit_trail(request.run_id)
    assert [e.detail for e in trail if e.action == "approved"] == [
        "approval 1 of 2",
        "approval 2 of 2",
    ]
    assert only(await batch.outcomes(request.run_id), BatchRunFinished).status == "succeeded"  # type: ignore[attr-defined]


async def test_an_approval_before_its_request_is_retried_later(batch: BatchHarness) -> None:
    early = approval("run-not-yet", BOB)
    with pytest.raises(TransientError, match="not known"):
        await on_batch_approved(batch.service.context, early)


async def test_a_restart_settles_local_runs_whose_process_is_gone(batch: BatchHarness) -> None:
    gone = await asyncio.create_subprocess_exec("true")
    await gone.wait()  # its pid now names no process
    now = batch.clock()
    record = run_record(
        "staging",
        requested_at=now,
        status="running",
        runner="local",
        runner_ref=f"{socket.gethostname()}:{gone.pid}:{gone.pid}",
        owner=f"{socket.gethostname()}:{gone.pid}",
        started_at=now,
    )
    await batch.runs.create(record)
    await batch.runs.mark_active(record.run_id)

    await batch.service.supervisor.resume()

    settled = await batch.runs.get(record.run_id)
    assert settled.status == "failed"
    assert settled.error.startswith("the batch service that ran it stopped during the run")
    assert record.run_id not in await batch.runs.active_run_ids()
    finished = only(await batch.outcomes(record.run_id), BatchRunFinished)
    assert finished.status == "failed"  # type: ignore[attr-defined]


async def test_the_service_runs_until_stopped_and_stops_its_runs(batch: BatchHarness) -> None:
    service = batch.service
    running = asyncio.create_task(service.run())
    quick = await batch.request("echo-args", text="served")
    slow = await batch.request("reindex-search", steps="60")

    async def settled(run_id: str, status: str) -> bool:
        record = await batch.runs.get(run_id)
        return record is not None and record.status == status

    await eventually(lambda: settled(quick.run_id, "succeeded"))
    await eventually(lambda: settled(slow.run_id, "running"))
    service.stop()
    await asyncio.wait_for(running, 60)

    # A local run cannot outlive the service: it is stopped and says so.
    stopped = await batch.runs.get(slow.run_id)
    assert stopped.status == "cancelled"
    assert "the batch service is stopping" in batch.log_of(slow.run_id)
    assert "consumes" in service.describe() and "local" in service.describe()


async def test_a_refused_request_keeps_no_secret_at_rest(batch: BatchHarness) -> None:
    request = await batch.request("reindex-search", steps="0", api_key="s3cr3t-refused")
    await batch.drain()

    refused = only(await batch.outcomes(request.run_id), BatchRunRefused)
    assert refused.reason == "steps: must be at least 1 (got 0)"  # type: ignore[attr-defined]
    record = await batch.runs.get(request.run_id)
    assert record.sensitive_dropped and "s3cr3t-refused" not in record.model_dump_json()
