"""Previews through the batch service with the local runner, over SNS/SQS on moto.

The demo's ``expire-coupons`` previews with ``--dry-run`` where a run needs approval
(production): the preview runs first as a real subprocess, the approval request carries
its exit code and last lines, and Approve runs the real command with exactly the values
previewed. A preview that fails or never ends asks nobody to approve; an Approve after the
catalog entry or the values changed starts nothing and says to request again.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.batch.runners.base import preview_id
from services.notifier.blocks.runs import render_run, render_run_refused_reply
from services.notifier.views import run_view_of
from shared.aws import AwsClients
from shared.events import (
    BatchApprovalRequested,
    BatchApproved,
    BatchCancelRequested,
    BatchRunFinished,
    BatchRunRefused,
    BatchRunStarted,
    EventBase,
    RunParameter,
)
from shared.slack.blocks import MAX_SECTION_TEXT
from shared.state_table.runs import RunRecord
from shared.topology import BootstrapReport, Names
from tests.integration.batch_harness import ALICE, BOB, BatchHarness, bootstrap_once, make_harness
from tests.support import texts_of

#: A command whose preview never ends by itself (its time limit is one second).
HANGING = {
    "name": "preview-hangs",
    "description": "Its preview sleeps past its time limit.",
    "argv": ["python3", "-c", "print('the real run')"],
    "preview": {
        "argv": ["python3", "-c", "import time\nprint('planning', flush=True)\ntime.sleep(60)"],
        "timeout_seconds": 1,
    },
}


@pytest.fixture(scope="module")
async def shared_topology(moto_endpoint: str) -> tuple[Names, BootstrapReport]:
    return await bootstrap_once(moto_endpoint)


#: The same with a long time limit: it runs until someone stops it.
SLOW = HANGING | {"name": "preview-slow", "preview": HANGING["preview"] | {"timeout_seconds": 60}}


def with_hanging_preview(data: dict[str, Any]) -> None:
    production = next(c for c in data["commands"] if c["name"] == "expire-coupons")
    for command in (HANGING, SLOW):
        data["commands"].append(command | {"environments": production["environments"]})


@pytest.fixture
async def batch(
    aws: AwsClients, shared_topology: tuple[Names, BootstrapReport], tmp_path: Path
) -> BatchHarness:
    names, topology = shared_topology
    return await make_harness(
        aws, names, topology, tmp_path, kill_grace=0.5, customize=with_hanging_preview
    )


def one(events: list[EventBase], kind: type[EventBase]) -> Any:
    matching = [e for e in events if isinstance(e, kind)]
    assert len(matching) == 1, f"expected one {kind.__name__} in {events}"
    return matching[0]


async def actions(batch: BatchHarness, run_id: str) -> list[str]:
    return [entry.action for entry in await batch.runs.audit_trail(run_id)]


async def approve(batch: BatchHarness, run_id: str) -> None:
    await batch.publish(
        BatchApproved(correlation_id=run_id, source="test", run_id=run_id, approved_by=BOB)
    )
    await batch.drain()


async def test_the_approvers_see_the_preview_and_approve_runs_exactly_what_was_previewed(
    batch: BatchHarness,
) -> None:
    request = await batch.request(
        "expire-coupons", "production", by=ALICE, campaign="spring-sale", max_coupons="100"
    )
    await batch.drain()

    asked = one(await batch.outcomes(request.run_id), BatchApprovalRequested)
    preview = asked.preview
    assert preview is not None
    assert (preview.status, preview.exit_code, preview.error) == ("succeeded", 0, None)
    assert "campaign spring-sale: 42 unused coupons (mode: preview)" in preview.log_tail
    assert "would expire 42 coupons (dry run: nothing changed)" in preview.log_tail
    assert len(preview.log_tail) <= 20
    record = await batch.runs.get(request.run_id)
    assert record is not None and record.status == "awaiting_approval"
    assert record.preview_fingerprint == preview.fingerprint
    # The preview had its own process and log; the run has not run.
    assert not _has_log(batch, request.run_id)
    assert "would expire" in batch.log_of(preview_id(request.run_id))
    # What the approvers read: the tail, in Slack's limits, and the usual buttons.
    message = render_run(run_view_of(asked))
    shown = "\n".join(texts_of(list(message.blocks)))
    assert "Preview succeeded" in shown and "exit code `0`" in shown
    assert "would expire 42 coupons" in shown
    assert all(len(t) <= MAX_SECTION_TEXT for t in texts_of(list(message.blocks)))

    await approve(batch, request.run_id)

    events = await batch.outcomes(request.run_id)
    started = one(events, BatchRunStarted)
    finished = one(events, BatchRunFinished)
    assert started.parameters == (
        RunParameter(name="campaign", value="spring-sale"),
        RunParameter(name="max_coupons", value="100"),
    )
    assert finished.status == "succeeded"
    assert "expired 42 coupons" in finished.log_tail
    assert "campaign spring-sale: 42 unused coupons (mode: run)" in finished.log_tail
    assert not any("would expire" in line for line in finished.log_tail)
    assert await actions(batch, request.run_id) == [
        "requested",
        "authorized",
        "preview_started",
        "previewed",
        "approval_requested",
        "approved",
        "started",
        "finished",
    ]


def _has_log(batch: BatchHarness, run_id: str) -> bool:
    return (batch.log_dir / f"{run_id}.log").exists()


async def test_a_failed_preview_is_shown_to_the_requester_and_asks_nobody(
    batch: BatchHarness,
) -> None:
    request = await batch.request("expire-coupons", "production", by=ALICE, campaign="black-friday")
    await batch.drain()

    events = await batch.outcomes(request.run_id)
    assert not [e for e in events if isinstance(e, BatchApprovalRequested)]
    refused = one(events, BatchRunRefused)
    assert refused.stage == "preview"
    assert "the preview exited with status 4" in refused.reason
    assert refused.preview is not None and refused.preview.exit_code == 4
    assert any("1800 coupons is more than --max 500" in line for line in refused.preview.log_tail)
    reply = "\n".join(texts_of(list(render_run_refused_reply(refused).blocks)))
    assert f"<@{ALICE.slack_user_id}>" in reply and "Preview failed" in reply
    assert "1800 coupons is more than --max 500" in reply
    record = await batch.runs.get(request.run_id)
    assert record is not None and record.status == "refused" and record.approval is None
    assert request.run_id not in await batch.runs.overdue_approvals(
        batch.clock() + timedelta(days=30)
    )

    # An approval that comes anyway starts nothing.
    await approve(batch, request.run_id)
    events = await batch.outcomes(request.run_id)
    assert not [e for e in events if isinstance(e, BatchRunStarted)]


async def test_a_preview_that_never_ends_times_out_and_asks_nobody(batch: BatchHarness) -> None:
    request = await batch.request("preview-hangs", "production", by=ALICE)
    await batch.drain()

    events = await batch.outcomes(request.run_id)
    refused = one(events, BatchRunRefused)
    assert not [e for e in events if isinstance(e, BatchApprovalRequested)]
    assert refused.stage == "preview"
    assert "did not end within its time limit" in refused.reason
    assert refused.preview is not None and refused.preview.status == "timed_out"
    assert "planning" in refused.preview.log_tail
    reply = "\n".join(texts_of(list(render_run_refused_reply(refused).blocks)))
    assert "Preview timed out" in reply


async def test_an_approval_after_the_catalog_entry_changed_starts_nothing(
    batch: BatchHarness,
    aws: AwsClients,
    shared_topology: tuple[Names, BootstrapReport],
    tmp_path: Path,
) -> None:
    request = await batch.request("expire-coupons", "production", by=ALICE, campaign="spring-sale")
    await batch.drain()
    assert one(await batch.outcomes(request.run_id), BatchApprovalRequested).preview is not None

    def preview_differently(data: dict[str, Any]) -> None:
        with_hanging_preview(data)
        command = next(c for c in data["commands"] if c["name"] == "expire-coupons")
        command["preview"] = {"append": ["--dry-run", "--verbose"]}

    # The batch service restarted with an edited catalog before the approval came.
    names, topology = shared_topology
    (tmp_path / "edited").mkdir()
    edited = await make_harness(
        aws, names, topology, tmp_path / "edited", customize=preview_differently
    )
    await approve(edited, request.run_id)

    events = await edited.outcomes(request.run_id)
    assert not [e for e in events if isinstance(e, BatchRunStarted)]
    refused = one(events, BatchRunRefused)
    assert refused.stage == "preview" and refused.decided_by == BOB
    assert "changed since the preview" in refused.reason
    assert "request it again" in refused.reason
    assert "approval_refused" in await actions(edited, request.run_id)


async def test_an_approval_after_the_values_changed_starts_nothing(batch: BatchHarness) -> None:
    request = await batch.request("expire-coupons", "production", by=ALICE, campaign="spring-sale")
    await batch.drain()

    def tamper(record: RunRecord) -> RunRecord:
        changed = tuple(
            p.model_copy(update={"value": "black-friday"}) if p.name == "campaign" else p
            for p in record.parameters
        )
        return record.model_copy(update={"parameters": changed})

    await batch.runs.update(request.run_id, tamper)
    await approve(batch, request.run_id)

    events = await batch.outcomes(request.run_id)
    assert not [e for e in events if isinstance(e, BatchRunStarted)]
    refused = one(events, BatchRunRefused)
    assert "changed since the preview" in refused.reason


async def test_a_request_withdrawn_during_its_preview_stops_it(batch: BatchHarness) -> None:
    request = await batch.request("preview-slow", "production", by=ALICE)
    await batch.handle_queue()  # the preview runs; nothing waits for it yet
    record = await batch.runs.get(request.run_id)
    assert record is not None and record.status == "previewing"

    await batch.publish(
        BatchCancelRequested(
            correlation_id=request.run_id, source="test", run_id=request.run_id, requested_by=ALICE
        )
    )
    await batch.drain()

    events = await batch.outcomes(request.run_id)
    finished = one(events, BatchRunFinished)
    assert finished.status == "cancelled" and "during its preview" in (finished.error or "")
    assert not [e for e in events if isinstance(e, BatchApprovalRequested | BatchRunStarted)]
    assert "cancel requested" in batch.log_of(preview_id(request.run_id))


async def test_without_an_approval_nothing_is_previewed(batch: BatchHarness) -> None:
    request = await batch.request("expire-coupons", "staging", by=ALICE, campaign="spring-sale")
    await batch.drain()

    events = await batch.outcomes(request.run_id)
    assert one(events, BatchRunFinished).status == "succeeded"
    assert not _has_log(batch, preview_id(request.run_id))
    assert "preview_started" not in await actions(batch, request.run_id)


async def test_a_restart_ends_a_local_preview_whose_service_died(batch: BatchHarness) -> None:
    gone = await asyncio.create_subprocess_exec("true")
    await gone.wait()  # its pid now names no process
    now = batch.clock()
    record = RunRecord(
        run_id=f"run-{uuid.uuid4().hex[:8]}",
        request_event_id=str(uuid.uuid4()),
        command="expire-coupons",
        environment="production",
        parameters=(RunParameter(name="campaign", value="spring-sale"),),
        requested_by=ALICE,
        requested_at=now,
        status="previewing",
        preview_by="evt-gone",
        preview_fingerprint="f" * 64,
        preview_ref=f"{socket.gethostname()}:{gone.pid}:{gone.pid}",
        preview_started_at=now,
        owner=f"{socket.gethostname()}:{gone.pid}",
    )
    await batch.runs.create(record)
    await batch.runs.mark_active(record.run_id)

    await batch.service.supervisor.resume()

    settled = await batch.runs.get(record.run_id)
    assert settled is not None
    assert (settled.status, settled.refusal_stage) == ("refused", "preview")
    assert "stopped during the preview" in (settled.refusal_reason or "")
    assert record.run_id not in await batch.runs.active_run_ids()
    refused = one(await batch.outcomes(record.run_id), BatchRunRefused)
    assert refused.preview is not None and refused.preview.status == "failed"
