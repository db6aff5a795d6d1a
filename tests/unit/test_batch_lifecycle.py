"""Every transition of a batch run, from every state: the legal ones and the illegal ones."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import get_args

import pytest

from services.batch import lifecycle
from services.batch.runners.base import RunOutcome, StartedRun
from shared.events import PreviewResult, RunParameter
from shared.state_table.runs import FINAL_RUN_STATES, RunRecord, RunState
from tests.batch_records import BOB, CAROL, NOW, PLAIN, SECRET, approval, run

ALL_STATES: tuple[RunState, ...] = get_args(RunState)


def started(**fields: object) -> StartedRun:
    values: dict[str, object] = {
        "runner": "local",
        "ref": "host:4242",
        "started_at": NOW,
        "log_url": "file:///tmp/run-1.log",
    }
    values.update(fields)
    return StartedRun(**values)  # type: ignore[arg-type]


def legal_from(transition: Callable[[RunRecord], RunRecord | None]) -> set[RunState]:
    """The states from which ``transition`` applies."""
    return {state for state in ALL_STATES if transition(run(state)) is not None}


# --------------------------------------------------------------------------- approval


def test_a_received_request_waits_for_approval_and_nothing_else_does() -> None:
    window = approval()
    waiting = lifecycle.await_approval(run("received"), window)

    assert waiting is not None
    assert waiting.status == "awaiting_approval"
    assert waiting.approval == window
    assert legal_from(lambda r: lifecycle.await_approval(r, window)) == {"received"}


def test_an_approval_counts_once_per_person_and_sets_who_decided() -> None:
    first = lifecycle.count_approval(run("awaiting_approval", approval=approval()), BOB)

    assert first is not None and first.approval is not None
    assert first.approval.approvals == (BOB,)
    assert first.decided_by == BOB
    assert not lifecycle.approvals_complete(first)
    assert lifecycle.count_approval(first, BOB) is None  # the same person twice

    second = lifecycle.count_approval(first, CAROL)
    assert second is not None and second.approval is not None
    assert second.approval.approvals == (BOB, CAROL)
    assert lifecycle.approvals_complete(second)


def test_an_approval_counts_only_while_the_run_waits_for_one() -> None:
    def count(record: RunRecord) -> RunRecord | None:
        return lifecycle.count_approval(record.model_copy(update={"approval": approval()}), BOB)

    assert legal_from(count) == {"awaiting_approval"}
    # Waiting without an approval window (a corrupt record) counts nothing either.
    assert lifecycle.count_approval(run("awaiting_approval"), BOB) is None


def test_a_run_without_an_approval_window_is_never_complete() -> None:
    assert not lifecycle.approvals_complete(run("received"))
    assert lifecycle.approvals_complete(run("awaiting_approval", approval=approval(need=0)))


# --------------------------------------------------------------------------- preview

FINGERPRINT = "f" * 64


def preview(status: str = "succeeded", **fields: object) -> PreviewResult:
    values: dict[str, object] = {
        "status": status,
        "exit_code": 0 if status == "succeeded" else 3,
        "log_tail": ("would update 12 rows",),
        "fingerprint": FINGERPRINT,
    }
    values.update(fields)
    return PreviewResult(**values)  # type: ignore[arg-type]


def previewing(**fields: object) -> RunRecord:
    return run("previewing", preview_by="evt-request", preview_fingerprint=FINGERPRINT, **fields)


def test_a_preview_begins_only_from_a_received_request_and_records_its_fingerprint() -> None:
    def begin(record: RunRecord) -> RunRecord | None:
        return lifecycle.begin_preview(
            record, event_id="evt-request", fingerprint=FINGERPRINT, owner="h:1"
        )

    assert legal_from(begin) == {"received"}
    begun = begin(run("received"))
    assert begun is not None
    assert (begun.status, begun.preview_by, begun.preview_fingerprint, begun.owner) == (
        "previewing",
        "evt-request",
        FINGERPRINT,
        "h:1",
    )
    assert begun.parameters == (PLAIN, SECRET)  # the real run still needs the values


def test_a_started_preview_records_where_it_runs_once() -> None:
    running = lifecycle.preview_started(previewing(), started())

    assert running is not None
    assert (running.status, running.preview_ref, running.preview_started_at) == (
        "previewing",
        "host:4242",
        NOW,
    )
    assert running.runner is None and running.runner_ref is None  # the run has not started
    assert lifecycle.preview_started(running, started(ref="host:1")) is None
    assert legal_from(lambda r: lifecycle.preview_started(r, started())) == {"previewing"}


def test_a_successful_preview_asks_for_approval_with_its_result() -> None:
    window = approval()
    waiting = lifecycle.await_approval(previewing(), window, preview())

    assert waiting is not None
    assert (waiting.status, waiting.approval, waiting.preview) == (
        "awaiting_approval",
        window,
        preview(),
    )
    assert legal_from(lambda r: lifecycle.await_approval(r, window, preview())) == set()
    assert lifecycle.await_approval(previewing(), window, preview()) is not None


@pytest.mark.parametrize(
    ("record", "result"),
    [
        pytest.param(run("received"), preview(), id="received-with-a-preview"),
        pytest.param(previewing(), None, id="previewing-without-a-result"),
        pytest.param(previewing(), preview("failed"), id="failed-preview"),
        pytest.param(previewing(), preview("timed_out"), id="timed-out-preview"),
        pytest.param(
            previewing(), preview(fingerprint="0" * 64), id="result-of-another-catalog-or-values"
        ),
    ],
)
def test_no_approval_is_asked_without_a_matching_successful_preview(
    record: RunRecord, result: PreviewResult | None
) -> None:
    assert lifecycle.await_approval(record, approval(), result) is None


@pytest.mark.parametrize(
    ("result", "words"),
    [
        (preview("failed"), "exited with status 3"),
        (preview("timed_out", exit_code=None), "did not end within its time limit"),
        (preview("cancelled", exit_code=None, error="stopped"), "did not run to its end (stopped)"),
    ],
)
def test_a_failed_preview_refuses_the_request_and_keeps_no_secret(
    result: PreviewResult, words: str
) -> None:
    refused = lifecycle.fail_preview(previewing(), result, NOW)

    assert refused is not None
    assert (refused.status, refused.refusal_stage, refused.preview) == (
        "refused",
        "preview",
        result,
    )
    assert refused.refusal_reason is not None and words in refused.refusal_reason
    assert "approvers" in refused.refusal_reason
    assert refused.finished_at == NOW
    assert [p.value for p in refused.parameters] == ["acme", None]
    assert legal_from(lambda r: lifecycle.fail_preview(r, result, NOW)) == {"previewing"}


def test_a_successful_preview_is_never_recorded_as_failed() -> None:
    assert lifecycle.fail_preview(previewing(), preview(), NOW) is None


def test_an_abandoned_preview_is_received_again_without_its_fingerprint() -> None:
    back = lifecycle.abandon_preview(previewing(preview_ref="host:1", preview_started_at=NOW))

    assert back is not None
    assert (back.status, back.preview_by, back.preview_fingerprint, back.preview_ref) == (
        "received",
        None,
        None,
        None,
    )
    assert legal_from(lifecycle.abandon_preview) == {"previewing"}


def test_a_previewing_run_can_be_refused_cancelled_or_finished_but_not_started() -> None:
    record = previewing()
    assert lifecycle.claim_start(record, event_id="e", owner="o", runner="local") is None
    assert lifecycle.refuse(record, stage="validation", reason="r", decided_by=None, now=NOW)
    assert lifecycle.note_cancel(record, CAROL) is not None
    assert lifecycle.finish(record, RunOutcome(status="cancelled"), NOW) is not None


# --------------------------------------------------------------------------- starting


def test_a_start_is_claimed_only_from_a_waiting_state() -> None:
    def claim(record: RunRecord) -> RunRecord | None:
        return lifecycle.claim_start(record, event_id="evt-approve", owner="h:1", runner="local")

    assert legal_from(claim) == {"received", "awaiting_approval"}
    claimed = claim(run("awaiting_approval", approval=approval(BOB, CAROL)))
    assert claimed is not None
    assert (claimed.status, claimed.starting_by, claimed.owner, claimed.runner) == (
        "starting",
        "evt-approve",
        "h:1",
        "local",
    )
    assert claimed.approval is not None  # kept for the audit trail and the messages


def test_an_unclaimed_start_goes_back_to_where_it_waited() -> None:
    claimed = run("starting", starting_by="evt-approve")

    back = lifecycle.unclaim(claimed, "awaiting_approval")
    assert back is not None
    assert (back.status, back.starting_by) == ("awaiting_approval", None)
    # Never "back" to a state that does not wait, and never from one that is not starting.
    assert lifecycle.unclaim(claimed, "running") is None
    assert lifecycle.unclaim(claimed, "succeeded") is None
    assert legal_from(lambda r: lifecycle.unclaim(r, "received")) == {"starting"}


def test_marking_running_records_where_and_drops_the_secret_values() -> None:
    shown = (PLAIN, RunParameter(name="token", value=None, sensitive=True))
    running = lifecycle.mark_running(run("starting"), started(), shown)

    assert running is not None
    assert running.status == "running"
    assert (running.runner, running.runner_ref, running.log_url, running.started_at) == (
        "local",
        "host:4242",
        "file:///tmp/run-1.log",
        NOW,
    )
    assert running.parameters == shown
    assert running.sensitive_dropped
    assert "s3cret" not in running.model_dump_json()


def test_only_a_starting_run_can_be_marked_running() -> None:
    assert legal_from(lambda r: lifecycle.mark_running(r, started(), ())) == {"starting"}


# --------------------------------------------------------------------------- ending


def test_refusing_ends_any_run_that_has_not_ended_and_keeps_no_secret() -> None:
    def refuse(record: RunRecord) -> RunRecord | None:
        return lifecycle.refuse(
            record, stage="approval", reason="rejected by bob", decided_by=BOB, now=NOW
        )

    assert legal_from(refuse) == set(ALL_STATES) - FINAL_RUN_STATES
    refused = refuse(run("awaiting_approval", approval=approval()))
    assert refused is not None
    assert (refused.status, refused.refusal_stage, refused.refusal_reason) == (
        "refused",
        "approval",
        "rejected by bob",
    )
    assert (refused.decided_by, refused.finished_at) == (BOB, NOW)
    assert refused.final
    assert "s3cret" not in refused.model_dump_json()


@pytest.mark.parametrize("status", ["succeeded", "failed", "timed_out", "cancelled"])
def test_finishing_records_the_outcome_once(status: str) -> None:
    outcome = RunOutcome(
        status=status,  # type: ignore[arg-type]
        exit_code=3,
        log_tail=("last line",),
        error="boom" if status != "succeeded" else None,
    )
    running = run("running", started_at=NOW - timedelta(seconds=90), log_url="file:///a.log")

    finished = lifecycle.finish(running, outcome, NOW)

    assert finished is not None
    assert finished.status == status
    assert finished.final
    assert (finished.exit_code, finished.log_tail, finished.finished_at) == (
        3,
        ("last line",),
        NOW,
    )
    assert finished.duration_seconds == 90.0  # measured from the start when not reported
    assert finished.log_url == "file:///a.log"  # kept when the outcome has none
    assert "s3cret" not in finished.model_dump_json()
    assert lifecycle.finish(finished, outcome, NOW) is None


def test_a_finished_run_takes_the_runners_duration_and_log_link() -> None:
    outcome = RunOutcome(status="failed", duration_seconds=12.5, log_url="https://logs/b")
    finished = lifecycle.finish(run("running", started_at=NOW - timedelta(hours=1)), outcome, NOW)

    assert finished is not None
    assert (finished.duration_seconds, finished.log_url) == (12.5, "https://logs/b")


def test_a_run_that_never_started_finishes_with_no_duration() -> None:
    withdrawn = lifecycle.finish(run("awaiting_approval"), RunOutcome(status="cancelled"), NOW)

    assert withdrawn is not None
    assert withdrawn.duration_seconds == 0.0
    # A clock that went backwards never gives a negative duration.
    early = run("running", started_at=NOW + timedelta(seconds=5))
    ended = lifecycle.finish(early, RunOutcome(status="succeeded"), NOW)
    assert ended is not None and ended.duration_seconds == 0.0


def test_nothing_finishes_twice() -> None:
    assert legal_from(lambda r: lifecycle.finish(r, RunOutcome(status="failed"), NOW)) == (
        set(ALL_STATES) - FINAL_RUN_STATES
    )


# --------------------------------------------------------------------------- cancel


def test_a_cancel_is_noted_on_any_run_that_has_not_ended() -> None:
    assert legal_from(lambda r: lifecycle.note_cancel(r, CAROL)) == (
        set(ALL_STATES) - FINAL_RUN_STATES
    )
    noted = lifecycle.note_cancel(run("running"), CAROL)
    assert noted is not None
    assert (noted.status, noted.cancel_requested_by) == ("running", CAROL)


def test_no_transition_changes_the_record_it_was_given() -> None:
    record = run("awaiting_approval", approval=approval(BOB))
    before = record.model_dump()
    lifecycle.count_approval(record, CAROL)
    lifecycle.claim_start(record, event_id="e", owner="o", runner="local")
    lifecycle.refuse(record, stage="approval", reason="r", decided_by=None, now=NOW)
    lifecycle.finish(record, RunOutcome(status="cancelled"), NOW)
    assert record.model_dump() == before
    record = previewing()
    before = record.model_dump()
    lifecycle.await_approval(record, approval(), preview())
    lifecycle.fail_preview(record, preview("failed"), NOW)
    lifecycle.abandon_preview(record)
    lifecycle.preview_started(record, started())
    assert record.model_dump() == before
