"""A production batch run from Slack, end to end, driven only the way a person drives it.

The stack is :mod:`tests.e2e.batch_stack`'s (gateway, batch and notifier built through the
composition root on moto, as ``toilkit up`` builds them, the Slack stand-in as Slack, the
demo catalog), one per module (``tests/e2e/conftest.py``).

Everything a test does is what a person does in Slack: ``/toil run`` (a signed slash
command), picking a command in the modal, submitting it with parameters, and clicking the
buttons the run message shows (their values are read from the message as posted). Every
check reads what the stand-in shows: the ephemeral replies, the run message (its first
version as posted and its latest one), and the replies in its thread. Nothing sleeps:
each wait polls the stand-in with a deadline.
"""

from __future__ import annotations

import json
import re

from shared.slack.actions import Action
from shared.slack.blocks import GRAVE
from tests.e2e.batch_stack import (
    DEADLINE_SECONDS,
    RUNS_CHANNEL,
    Person,
    Stack,
    buttons_of,
    every_version,
    finished,
    first_version,
    log_file,
    rendered,
    run_message,
    run_message_showing,
    run_message_where,
    shown,
    status_of,
    thread_reply,
    unique_reason,
)
from tests.support import eventually

# --------------------------------------------------------------------------- staging runs


async def test_a_run_shows_started_then_finished_with_its_exit_code_and_log_tail(
    stack: Stack, alice: Person
) -> None:
    # GIVEN alice fills in the backfill form for staging
    run_id = await alice.request(
        "backfill-orders",
        "staging",
        {"since": "2024-06-01", "batch_size": "250"},
        unique_reason("INC-7: totals missing since June"),
    )

    # THEN the runs channel shows the run started: who, what, with what, where the log is
    await run_message_where(stack.standin, run_id, lambda m: True)
    started = first_version(stack.standin, run_id)
    assert status_of(started) == "Running"
    text = shown(started)
    assert "`backfill-orders` on *staging*" in text
    assert "<@U0ALICE001>" in text
    assert "`since` = `2024-06-01`" in text
    assert "`batch_size` = `250`" in text
    assert "`dry_run` = `false`" in text
    assert "INC-7: totals missing since June" in text
    assert buttons_of(started)["batch_open_logs"]["url"].startswith("file://")
    assert Action.BATCH_CANCEL in buttons_of(started)

    # AND once it ends, the message says so and its thread has the exit code and the log tail
    message = await finished(stack.standin, run_id)
    assert status_of(message) == "Succeeded"
    assert Action.BATCH_CANCEL not in buttons_of(message)
    reply = thread_reply(message, "Succeeded")
    assert "exit code `0`" in reply
    assert re.search(r"backfilled \d+ orders in \d+ batches", reply), reply
    # The log the link opens is the script's whole output.
    assert "created demo database with 2000 orders" in log_file(message)


async def test_a_failing_command_shows_its_exit_code_and_stderr(
    stack: Stack, carol: Person
) -> None:
    run_id = await carol.request(
        "check-invoices", "staging", {"month": "2024-05"}, unique_reason("closing May")
    )

    message = await finished(stack.standin, run_id)

    assert status_of(message) == "Failed"
    assert "exit code `3`" in shown(message)
    reply = thread_reply(message, "Failed")
    assert "exit code `3`" in reply
    assert "refusing to close the month" in reply
    assert "hint: run reconcile-payments for these invoices, then retry" in reply


async def test_a_run_past_its_timeout_is_stopped_and_shows_timed_out(
    stack: Stack, alice: Person, carol: Person
) -> None:
    # GIVEN a reindex longer than its timeout, with a sensitive API key
    run_id = await alice.request(
        "reindex-search",
        "staging",
        {"steps": "30", "api_key": "sk-live-e2e-not-for-slack"},
        unique_reason("reindex after the upgrade"),
    )
    await run_message_showing(stack.standin, run_id, "Running")

    # WHILE it runs, a second reindex is refused: the command runs once at a time
    second = await carol.request(
        "reindex-search", "staging", {"steps": "1"}, unique_reason("a second reindex")
    )
    busy = await run_message_showing(stack.standin, second, "Refused")
    assert "another run holds the lock" in shown(busy)
    assert not (stack.log_dir / f"{second}.log").exists()

    # THEN the first is stopped at its timeout and says so, with the log's last lines
    message = await finished(stack.standin, run_id)
    assert status_of(message) == "Timed out"
    reply = thread_reply(message, "Timed out")
    assert "exit code `143`" in reply  # the script's own exit after SIGTERM
    assert "received SIGTERM, stopping" in reply
    assert "step 30/30" not in log_file(message)
    # AND the key reached the process only: Slack never saw it, the message says it was set.
    assert "`api_key` = `(sensitive)`" in shown(message)
    assert not any(
        "sk-live-e2e-not-for-slack" in json.dumps(c.arguments) for c in stack.standin.calls()
    )


async def test_cancel_on_the_run_message_stops_the_run(stack: Stack, alice: Person) -> None:
    run_id = await alice.request(
        "reindex-search", "staging", {"steps": "30"}, unique_reason("reindex, then cancel")
    )
    running = await run_message_where(
        stack.standin, run_id, lambda m: Action.BATCH_CANCEL in buttons_of(m)
    )

    # Alice watches its log until the reindex is under way, then clicks Cancel (and
    # confirms); the script stops cleanly on the SIGTERM that follows.
    async def under_way() -> bool:
        return "reindexing in 30 steps" in log_file(running)

    await eventually(under_way, timeout=DEADLINE_SECONDS)
    await alice.click(running, Action.BATCH_CANCEL)

    message = await finished(stack.standin, run_id)
    assert status_of(message) == "Cancelled"
    assert "by <@U0ALICE001>" in shown(message)
    reply = thread_reply(message, "Cancelled")
    assert "cancelled by <@U0ALICE001>" in reply
    assert "received SIGTERM, stopping" in reply
    assert any("Cancelling run" in text for text in alice.ephemeral_texts(RUNS_CHANNEL))


# --------------------------------------------------------------------------- approvals


async def test_production_waits_for_an_approval_by_someone_else_then_runs(
    stack: Stack, alice: Person, bob: Person
) -> None:
    run_id = await alice.request(
        "backfill-orders",
        "production",
        {"since": "2024-01-01", "batch_size": "500", "dry_run": "true"},
        unique_reason("INC-9: count what is left"),
    )
    waiting = await run_message_showing(stack.standin, run_id, "Awaiting approval")
    assert "<!subteam^S0SRE00001>" in shown(waiting)
    assert "It waits for an approval" in alice.requested_replies()[-1]

    await bob.click(waiting, Action.BATCH_APPROVE)

    message = await finished(stack.standin, run_id)
    assert status_of(message) == "Succeeded"
    text = shown(message)
    assert "*Approved by*\n<@U0BOB00002>" in text
    assert "*Requested by*\n<@U0ALICE001>" in text
    started = [r for r in message["replies"] if status_of(r) == "Started"]
    assert len(started) == 1 and "Approved by <@U0BOB00002>" in shown(started[0])
    assert "exit code `0`" in thread_reply(message, "Succeeded")


async def test_a_rejected_request_never_runs(stack: Stack, alice: Person, bob: Person) -> None:
    run_id = await alice.request(
        "echo-args", "production", {"text": "not today"}, unique_reason("try production")
    )
    waiting = await run_message_showing(stack.standin, run_id, "Awaiting approval")

    await bob.click(waiting, Action.BATCH_REJECT)

    message = await finished(stack.standin, run_id)
    assert status_of(message) == "Refused"
    assert "approval was refused" in shown(message)
    assert "Refused by <@U0BOB00002>" in thread_reply(message, "Refused")
    assert [status_of(v) for v in every_version(stack.standin, run_id)] == [
        "Awaiting approval",
        "Refused",
    ]
    assert not (stack.log_dir / f"{run_id}.log").exists()


async def test_the_requester_cannot_approve_their_own_request(
    stack: Stack, alice: Person, bob: Person
) -> None:
    run_id = await alice.request(
        "echo-args", "production", {"text": "self-approved?"}, unique_reason("approve myself")
    )
    waiting = await run_message_showing(stack.standin, run_id, "Awaiting approval")

    await alice.click(waiting, Action.BATCH_APPROVE)

    async def refusal() -> list[str]:
        return [t for t in alice.ephemeral_texts(RUNS_CHANNEL) if run_id in t]

    [said] = await eventually(refusal, timeout=DEADLINE_SECONDS)
    assert said.startswith(":no_entry: You cannot approve run")
    assert "You requested this run, so another approver must approve it" in said
    assert "<!subteam^S0SRE00001>" in said  # Slack shows the @sre group by name
    # Nothing ran: the message still waits, and only ever waited.
    assert status_of(run_message(stack.standin, run_id) or {}) == "Awaiting approval"
    assert not (stack.log_dir / f"{run_id}.log").exists()

    # Bob rejects it, so the request ends; it never ran.
    await bob.click(waiting, Action.BATCH_REJECT)
    message = await finished(stack.standin, run_id)
    assert status_of(message) == "Refused"
    assert "Running" not in [status_of(v) for v in every_version(stack.standin, run_id)]


# --------------------------------------------------------------------------- duplicates


async def test_a_submission_slack_delivers_twice_starts_one_run(
    stack: Stack, alice: Person
) -> None:
    reason = unique_reason("delivered twice")
    run_id = await alice.request("echo-args", "staging", {"text": "once"}, reason, retries=1)

    message = await finished(stack.standin, run_id)

    assert status_of(message) == "Succeeded"
    runs_with_this_reason = [m for m in stack.standin.messages(RUNS_CHANNEL) if reason in shown(m)]
    assert runs_with_this_reason == [message]
    assert len(first_version(stack.standin, run_id)["blocks"]) > 0
    assert log_file(message).count('argv[1] = "once"') == 1


# --------------------------------------------------------------------------- injection


INJECTION_CORPUS = (
    "; rm -rf /",
    "$(id)",
    "`id`",
    "first line\nsecond line",
    "it's \"quoted\" and 'single'",
    "&& echo pwned #",
)


async def test_shell_metacharacters_reach_the_demo_command_as_the_literal_strings(
    stack: Stack, alice: Person
) -> None:
    run_ids = [
        await alice.request("echo-args", "staging", {"text": text}, unique_reason("injection"))
        for text in INJECTION_CORPUS
    ]

    for text, run_id in zip(INJECTION_CORPUS, run_ids, strict=True):
        message = await finished(stack.standin, run_id)
        assert status_of(message) == "Succeeded", text
        # The script prints what it received as JSON strings: exactly what was typed.
        log = log_file(message)
        assert f"argv[1] = {json.dumps(text)}" in log.splitlines(), log
        assert f"env ECHO_VALUE = {json.dumps(text)}" in log.splitlines(), log
        # Slack shows it as typed, within what inline code can show (one line, no backticks)
        as_code = text.replace("`", GRAVE).replace("\n", " ")
        assert f"`text` = `{as_code}`" in rendered(first_version(stack.standin, run_id)), text
        # and the thread's log tail shows the script's lines exactly.
        assert f"argv[1] = {json.dumps(text)}" in rendered(message["replies"][-1]), text
