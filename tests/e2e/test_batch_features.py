"""Re-run with edits, break-glass and schedules, end to end, the way people use them.

The same stack as :mod:`tests.e2e.batch_stack` (gateway, batch and notifier built by
the composition root on moto, the Slack stand-in as Slack), over the demo catalog with the
changes these flows need: a command removed from the catalog is simulated by a second
gateway-side check, the break-glass limit is low enough to reach, and the scheduled
command's cron is driven by the test's own ticks of the batch scheduler (no waiting).
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from typer.testing import CliRunner

from services.batch.schedules import DueRun, scheduled_request
from shared.events import Actor, BatchRequested, RunParameter
from shared.slack.actions import Action
from tests.e2e.batch_stack import (
    ALICE,
    DEADLINE_SECONDS,
    OPS_CHANNEL,
    RUN_ID_IN_REPLY,
    Person,
    Stack,
    buttons_of,
    every_version,
    finished,
    flow_catalog,
    open_stack,
    run_message_showing,
    run_message_where,
    runs_channel_id,
    shown,
    status_of,
    unique_reason,
    until,
)
from tests.support import eventually
from toilkit.cli import app
from toilkit.standins.slack.app_requests import (
    block_suggestion_payload,
    view_submission_payload,
)

T = TypeVar("T")


@pytest.fixture(scope="module")
async def stack(
    moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    folder = tmp_path_factory.mktemp("batch-features")
    catalog = flow_catalog(folder / "orders.sqlite")
    [reindex] = [c for c in catalog["commands"] if c["name"] == "reindex-search"]
    reindex["environments"]["staging"]["schedule"] = {
        "cron": "*/5 * * * *",
        "timezone": "Europe/Paris",
        "parameters": {"steps": 30},
        "reason": "keep the index fresh",
    }
    # The test ticks the schedules itself (open_stack turns the ticking task off).
    async with open_stack(moto_endpoint, folder, catalog) as running:
        yield running


# --------------------------------------------------------------------------- re-run with edits


async def test_edit_and_run_again_opens_the_modal_prefilled_and_links_both_runs(
    stack: Stack, alice: Person, bob: Person
) -> None:
    # GIVEN a finished reindex with a sensitive key
    first = await alice.request(
        "reindex-search",
        "staging",
        {"steps": "1", "api_key": "sk-never-prefilled"},
        unique_reason("reindex before the re-run"),
    )
    done = await finished(stack.standin, first)
    assert Action.BATCH_RERUN_EDIT in buttons_of(done)

    # WHEN bob clicks "Edit and run again"
    views_before = bob.view_ids()
    await bob.click(done, Action.BATCH_RERUN_EDIT)
    modal = await bob.view_opened(views_before)

    # THEN the modal shows the run's command, environment and values, never the secret
    inputs = {b["block_id"]: b["element"] for b in modal["blocks"] if b["type"] == "input"}
    assert inputs["command"]["initial_option"]["value"] == "reindex-search"
    assert inputs["environment"]["initial_option"]["value"] == "staging"
    assert inputs["param:steps"]["initial_value"] == "1"
    assert "initial_value" not in inputs["param:api_key"]
    assert f"Runs `{first}` again" in shown(modal)
    assert "sk-never-prefilled" not in str(modal)

    # WHEN he changes one value and submits
    second = await bob.submit(
        modal,
        {"param:steps": "2", "reason": "again with two steps"},
        reply_in=runs_channel_id(bob.standin),
    )

    # THEN the new run ran with the edit, and each thread links to the other
    rerun = await finished(stack.standin, second)
    assert status_of(rerun) == "Succeeded"
    assert "`steps` = `2`" in shown(rerun)
    assert f"run again from `{first}`" in shown(rerun)

    async def linked() -> dict[str, Any] | None:
        message = await run_message_where(stack.standin, first, lambda m: True)
        replies = [r for r in message["replies"] if f"as run `{second}`" in shown(r)]
        return message if replies else None

    old = await until(linked)
    [link] = [r for r in old["replies"] if second in shown(r)]
    assert "Run again by <@U0BOB00002>" in shown(link)


# --------------------------------------------------------------------------- break-glass

APPROVERS_CHANNEL = "#sre-approvals"  # the demo catalog's break_glass.notify_channel
INCIDENT = "INC-21: checkout down, orders stuck in pending since 09:12"


async def break_glass(person: Person, text: str, reason: str = INCIDENT) -> tuple[int, str]:
    """Ask for echo-args in production with break-glass ticked; Slack's answer to it."""
    form = await person.pick(await person.open_run_modal(), "echo-args")
    answers = {
        "environment": "production",
        "param:text": text,
        "reason": reason,
        "break_glass": "break_glass",
    }
    return await person.slack.interact(view_submission_payload(form, answers, user=person.user))


async def toilkit_runs(moto_endpoint: str, *args: str) -> str:
    env = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "TOILKIT_NAME_PREFIX": os.environ["TOILKIT_NAME_PREFIX"],
        "COLUMNS": "250",
        "NO_COLOR": "1",
    }
    result = await asyncio.to_thread(CliRunner().invoke, app, ["runs", *args], env=env)
    assert result.exit_code == 0, result.output
    # stdout alone: a warning logged on stderr (by anything in this process) is no JSON.
    return result.stdout


async def test_break_glass_starts_without_approval_and_tells_the_approvers_at_once(
    stack: Stack, alice: Person, moto_endpoint: str
) -> None:
    # GIVEN alice, in @sre, breaks glass on production with a stated reason
    before = len(alice.requested_replies())
    assert await break_glass(alice, "unstick the orders") == (200, "")
    [reply] = await eventually(
        lambda: _async(alice.requested_replies()[before:]), timeout=DEADLINE_SECONDS
    )
    assert "Break-glass: it starts without approval" in reply
    run_id = RUN_ID_IN_REPLY.search(reply).group(1)  # type: ignore[union-attr]

    # THEN it runs at once (never awaited approval), marked break-glass
    message = await finished(stack.standin, run_id)
    assert status_of(message) == "Succeeded"
    assert ":rotating_light: break-glass" in shown(message)
    assert "skipped: break-glass" in shown(message)
    versions = [status_of(v) for v in every_version(stack.standin, run_id)]
    assert "Awaiting approval" not in versions

    # AND the approvers' channel got its own message, with the reason
    async def notice() -> dict[str, Any] | None:
        return next(
            (m for m in stack.standin.messages(APPROVERS_CHANNEL) if run_id in shown(m)), None
        )

    told = await until(notice)
    assert "*Break-glass:* <@U0ALICE001> started `echo-args` on *production* without approval" in (
        shown(told)
    )
    assert INCIDENT in html.unescape(shown(told))

    # AND the audit trail marks it, and the CLI lists it among break-glass runs
    listed = await toilkit_runs(moto_endpoint, "list", "--break-glass", "--json")
    assert run_id in listed
    assert all(json.loads(line)["break_glass"] for line in listed.splitlines())
    trail = json.loads(await toilkit_runs(moto_endpoint, "show", run_id, "--json"))["audit"]
    [marked] = [e for e in trail if e["action"] == "break_glass"]
    assert "started without approval" in marked["detail"] and INCIDENT in marked["detail"]


async def test_break_glass_is_refused_over_the_daily_limit_without_a_reason_or_group(
    stack: Stack, bob: Person, carol: Person
) -> None:
    # Two a day (the demo catalog's limit) start at once ...
    for text in ("first", "second"):
        assert await break_glass(bob, text) == (200, "")

    async def two() -> list[str] | None:
        said = [r for r in bob.requested_replies() if "Break-glass" in r]
        return said if len(said) == 2 else None

    run_ids = [RUN_ID_IN_REPLY.search(r).group(1) for r in await until(two)]  # type: ignore[union-attr]
    for run_id in run_ids:
        assert status_of(await finished(stack.standin, run_id)) == "Succeeded"
    # ... the third is refused in the modal, before it closes: nothing is queued.
    status, text = await break_glass(bob, "third")
    assert status == 200
    said = json.loads(text)["errors"]["break_glass"]
    assert "You have used your 2 break-glass runs for today" in said
    assert "Untick it to ask for an approval instead" in said
    assert len([r for r in bob.requested_replies() if "Break-glass" in r]) == 2

    # A short reason is refused under the field, before anything is sent.
    status, text = await break_glass(bob, "no reason", reason="it is urgent")
    assert status == 200
    assert "at least 20 characters" in json.loads(text)["errors"]["reason"]

    # Carol may run echo-args in production, but not break glass: told so, nothing queued.
    requested = len(carol.requested_replies())
    assert await break_glass(carol, "carol's try") == (200, "")

    async def refusal() -> list[str]:
        return [t for t in carol.ephemeral_texts(OPS_CHANNEL) if "may not break glass" in t]

    [said] = await eventually(refusal, timeout=DEADLINE_SECONDS)
    assert "You may not break glass *echo-args* in *production*" in said
    assert len(carol.requested_replies()) == requested


async def _async(value: T) -> T:
    return value


# --------------------------------------------------------------------------- schedules


async def test_a_scheduled_run_is_requested_by_schedule_and_skipped_while_the_last_one_runs(
    stack: Stack, alice: Person, moto_endpoint: str
) -> None:
    [batch] = [s for s in stack.services if s.name == "batch"]
    ticker = batch.schedules  # type: ignore[attr-defined]
    due = datetime(2031, 1, 1, 0, 5, tzinfo=UTC)

    # WHEN the schedule is due (the test's clock), the run goes through the same pipeline
    [first] = await ticker.tick(due + timedelta(seconds=10))
    running = await run_message_showing(stack.standin, first, "Running")
    assert "*Requested by*\n*schedule*" in shown(running)
    assert "keep the index fresh (schedule */5 * * * *, Europe/Paris)" in shown(running)
    # A tick within the same period requests nothing more.
    assert await ticker.tick(due + timedelta(seconds=40)) == []

    # WHEN it is due again while the first still runs, the new one is skipped, with a note
    [second] = await ticker.tick(due + timedelta(minutes=5, seconds=1))
    skipped = await run_message_showing(stack.standin, second, "Refused")
    assert "skipped, the previous scheduled run still runs" in shown(skipped)
    assert f"previous scheduled run {first} is still running" in html.unescape(shown(skipped))
    assert not (stack.log_dir / f"{second}.log").exists()

    # AND the audit trail says who asked and why
    shown_json = json.loads(await toilkit_runs(moto_endpoint, "show", first, "--json"))
    assert shown_json["requested_by"]["name"] == "schedule"
    [scheduled] = [e for e in shown_json["audit"] if e["action"] == "scheduled"]
    assert "by the catalog's schedule */5 * * * * (Europe/Paris)" in scheduled["detail"]
    await alice.click(running, Action.BATCH_CANCEL)
    assert status_of(await finished(stack.standin, first)) == "Cancelled"


async def test_a_scheduled_request_at_a_time_its_cron_does_not_fire_is_refused(
    stack: Stack, moto_endpoint: str
) -> None:
    [batch] = [s for s in stack.services if s.name == "batch"]
    catalog = batch.context.catalog  # type: ignore[attr-defined]
    schedule = catalog.schedule("reindex-search", "staging")
    # GIVEN a request by "schedule" with the schedule's own values, for 00:07 (the cron
    # fires every 5 minutes: 00:05, 00:10)
    off_cron = datetime(2031, 2, 1, 0, 7, tzinfo=UTC)
    event = scheduled_request(catalog, DueRun("reindex-search", "staging", schedule, off_cron))
    assert event is not None

    # WHEN the batch service gets it
    await batch.context.publisher.publish(event)  # type: ignore[attr-defined]

    # THEN it is refused with the reason, and nothing runs
    refused = await run_message_showing(stack.standin, event.run_id, "Refused")
    assert "is not a time the catalog's schedule */5 * * * * (Europe/Paris) fires at" in (
        html.unescape(shown(refused))
    )
    assert not (stack.log_dir / f"{event.run_id}.log").exists()
    shown_json = json.loads(await toilkit_runs(moto_endpoint, "show", event.run_id, "--json"))
    assert shown_json["status"] == "refused"


# --------------------------------------------------------------------------- options from git


async def test_a_patch_script_is_picked_from_the_list_git_gives_and_runs(
    stack: Stack, alice: Person
) -> None:
    form = await alice.pick(await alice.open_run_modal(), "run-patch")

    async def suggested(typed: str) -> list[str]:
        payload = block_suggestion_payload(form, "param:script", typed, user=alice.user)
        status, text = await alice.slack.interact(payload)
        assert status == 200, text
        return [o["text"]["text"] for o in json.loads(text)["options"]]

    # GIVEN the list of patch scripts, read from this repository's git at HEAD (in the
    # background: until then the field says it is loading)
    async def listed() -> list[str] | None:
        shown = await suggested("")
        return shown if "fix_order_totals" in shown else None

    assert await eventually(listed, timeout=DEADLINE_SECONDS) == [
        "fix_order_totals",
        "reset_stuck_exports",
    ]
    assert await suggested("reset") == ["reset_stuck_exports"]

    # WHEN alice picks one and types its arguments, it runs with them
    answers = {
        "environment": "staging",
        "param:script": "catalog/patches/fix_order_totals.py",
        "param:ticket": "INC-42",
        "param:arguments": "1234",
        "reason": "INC-42: order 1234 shows a wrong total",
    }
    run_id = await alice.submit(form, answers)
    assert status_of(await finished(stack.standin, run_id)) == "Succeeded"
    log = (stack.log_dir / f"{run_id}.log").read_text()
    assert "fix_order_totals for INC-42: 1 order(s)" in log


async def test_the_batch_service_refuses_a_script_that_is_not_in_the_list(stack: Stack) -> None:
    # GIVEN a request that never went through the modal (forged, or from an old message)
    [batch] = [s for s in stack.services if s.name == "batch"]
    run_id = uuid.uuid4().hex[:12]
    event = BatchRequested(
        event_id=str(uuid.uuid4()),
        correlation_id=run_id,
        source="gateway",
        run_id=run_id,
        command="run-patch",
        environment="staging",
        parameters=(
            RunParameter(name="script", value="catalog/scripts/echo_args.py"),
            RunParameter(name="ticket", value="INC-1"),
        ),
        reason="not a patch script",
        requested_by=Actor(slack_user_id=ALICE.id, name=ALICE.name),
    )
    # WHEN the batch service gets it
    await batch.context.publisher.publish(event)  # type: ignore[attr-defined]
    # THEN it checks the list itself: refused, nothing runs
    refused = await run_message_showing(stack.standin, run_id, "Refused")
    assert "'catalog/scripts/echo_args.py' is not in the list from catalog/patches/*.py" in (
        html.unescape(shown(refused))
    )
    assert not (stack.log_dir / f"{run_id}.log").exists()
