"""Preview -> approve, end to end the way people use it (gateway, batch, notifier, the
Slack stand-in as Slack, the demo catalog's ``expire-coupons`` on the local runner).

Alice requests it in production from the modal: the dry run runs first, the approval
request shows its exit code and output, Bob clicks Approve on that message, and the real
command runs with the same values. A preview that fails shows Alice why and offers no
Approve button. The stack and the people are the fixtures of ``tests/e2e/conftest.py``.
"""

from __future__ import annotations

from shared.slack.actions import Action
from tests.e2e.batch_stack import (
    Person,
    Stack,
    buttons_of,
    finished,
    rendered,
    run_message_showing,
    status_of,
    thread_reply,
)


async def test_the_approver_sees_the_dry_run_then_approves_the_real_run(
    stack: Stack, alice: Person, bob: Person
) -> None:
    # GIVEN alice asks for expire-coupons in production (it has a preview and an approval)
    run_id = await alice.request(
        "expire-coupons",
        "production",
        {"campaign": "spring-sale", "max_coupons": "100"},
        "end of the spring sale",
    )
    assert "Its preview runs first" in alice.requested_replies()[-1]

    # THEN the approval request shows the preview's outcome and output
    waiting = await run_message_showing(stack.standin, run_id, "Awaiting approval")
    text = rendered(waiting)
    assert "Preview succeeded" in text and "exit code `0`" in text
    assert "would expire 42 coupons (dry run: nothing changed)" in text
    assert "campaign spring-sale: 42 unused coupons (mode: preview)" in text
    assert Action.BATCH_APPROVE in buttons_of(waiting)

    # WHEN bob approves on that message
    await bob.click(waiting, Action.BATCH_APPROVE)

    # THEN the real command ran with the previewed values, and the preview stays noted
    message = await finished(stack.standin, run_id)
    assert status_of(message) == "Succeeded"
    done = rendered(message)
    assert "`campaign` = `spring-sale`" in done and "`max_coupons` = `100`" in done
    assert "Preview succeeded" in done  # one line now, the tail is in the approval's history
    reply = thread_reply(message, "Succeeded")
    assert "expired 42 coupons" in reply and "would expire" not in reply


async def test_a_failed_preview_shows_the_requester_why_and_asks_nobody(
    stack: Stack, alice: Person
) -> None:
    run_id = await alice.request(
        "expire-coupons", "production", {"campaign": "black-friday"}, "black friday is over"
    )

    message = await run_message_showing(stack.standin, run_id, "Refused")
    text = rendered(message)
    assert "Preview failed" in text and "exit code `4`" in text
    assert "1800 coupons is more than --max 500" in text
    assert "<@U0ALICE001>" in text
    assert Action.BATCH_APPROVE not in buttons_of(message)
    assert "Approvers" not in text
