"""How a run's preview shows in Slack: on the approval request, on a refusal, afterwards."""

from __future__ import annotations

from services.notifier.blocks.runs import render_run, render_run_refused_reply
from services.notifier.views import merge_run, run_view_of
from shared.events import PreviewResult
from shared.slack.actions import Action
from tests import notifier_samples as samples
from tests.unit.test_notifier_render import all_text, assert_within_slack_limits, buttons

RUN = "run-0001"
FINGERPRINT = "0123456789abcdef" * 4


def preview(status: str = "succeeded", **fields: object) -> PreviewResult:
    values: dict[str, object] = {
        "status": status,
        "exit_code": 0 if status == "succeeded" else 4,
        "log_tail": tuple(f"would expire COUPON-{n:05d}" for n in range(20)),
        "duration_seconds": 3.5,
        "fingerprint": FINGERPRINT,
    }
    values.update(fields)
    return PreviewResult(**values)  # type: ignore[arg-type]


def test_the_approval_request_shows_the_preview_outcome_and_tail_with_the_buttons() -> None:
    asked = samples.approval_requested(RUN).model_copy(update={"preview": preview()})
    message = render_run(run_view_of(asked))

    text = all_text(message)
    assert "*Preview succeeded* after" in text and "exit code `0`" in text
    assert "fingerprint `0123456789ab`" in text
    assert "Preview output, last 20 lines" in text
    assert "would expire COUPON-00000" in text and "would expire COUPON-00019" in text
    assert {Action.BATCH_APPROVE, Action.BATCH_REJECT} <= set(buttons(message))
    assert_within_slack_limits(message)


def test_a_huge_preview_output_is_cut_to_fit_slack_and_says_how_many_lines_are_hidden() -> None:
    long_lines = tuple(f"{n:02d} " + "x" * 900 for n in range(20))
    asked = samples.approval_requested(RUN).model_copy(
        update={"preview": preview(log_tail=long_lines)}
    )
    message = render_run(run_view_of(asked))

    text = all_text(message)
    assert "earlier not shown" in text
    assert "19 xxx" in text  # the last line is always kept
    assert_within_slack_limits(message)


def test_a_failed_preview_is_shown_with_its_error_and_no_approve_button() -> None:
    failed = preview("failed", error="the build image could not be pulled")
    refused = samples.run_refused(RUN).model_copy(
        update={"stage": "preview", "decided_by": None, "preview": failed, "reason": "r"}
    )

    parent = render_run(run_view_of(refused))
    reply = render_run_refused_reply(refused)

    for message in (parent, reply):
        text = all_text(message)
        assert "*Preview failed*" in text and "exit code `4`" in text
        assert "the build image could not be pulled" in text
        assert Action.BATCH_APPROVE not in buttons(message)
        assert_within_slack_limits(message)
    assert all_text(reply).startswith("<@U0ALICE001>")  # the requester is told


def test_a_preview_that_printed_nothing_says_so() -> None:
    asked = samples.approval_requested(RUN).model_copy(
        update={"preview": preview(log_tail=(), log_url="https://logs.example/p")}
    )
    text = all_text(render_run(run_view_of(asked)))
    assert "The preview printed nothing." in text
    assert "<https://logs.example/p|preview log>" in text


def test_once_the_run_starts_the_preview_shrinks_to_one_line() -> None:
    asked = samples.approval_requested(RUN).model_copy(update={"preview": preview()})
    view = merge_run(run_view_of(asked), samples.run_started(RUN, "db-backfill", approved=True))

    text = all_text(render_run(view))
    assert "*Preview succeeded*" in text
    assert "COUPON-00000" not in text
