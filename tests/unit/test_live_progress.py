"""Live progress, the pure parts: masking, the merge into a run's view, the drawing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from services.batch.progress import mask_secrets, masked_outcome
from services.batch.runners.base import RunOutcome
from services.batch.settings import BatchSettings
from services.notifier.blocks import render_run
from services.notifier.blocks.progress import MAX_PARENT_TAIL_LINES
from services.notifier.views import RunView, merge_run, run_view_of, with_progress
from shared.events import BatchRunProgress
from shared.slack.blocks import GRAVE, MAX_SECTION_TEXT, tail_code_block
from tests import notifier_samples as samples


def progress(run: str, sequence: int, *lines: str, elapsed: float = 30) -> BatchRunProgress:
    return samples.run_event(
        BatchRunProgress,
        run,
        "rails-runner",
        timedelta(seconds=elapsed),
        sequence=sequence,
        started_at=samples.NOW,
        elapsed_seconds=elapsed,
        tail=lines,
    )


def running_view(run: str = "run-1") -> RunView:
    return run_view_of(samples.run_started(run))


# --------------------------------------------------------------------------- masking


def test_secrets_are_masked_longest_first() -> None:
    lines = ("token abc123 and abc", "nothing here")
    assert mask_secrets(lines, ["abc", "abc123", ""]) == (
        "token (sensitive) and (sensitive)",
        "nothing here",
    )


def test_the_finish_tail_is_masked_too() -> None:
    outcome = RunOutcome(status="succeeded", log_tail=("pw=s3cret!",))
    assert masked_outcome(outcome, ["s3cret!"]).log_tail == ("pw=(sensitive)",)
    assert masked_outcome(outcome, []) is outcome


# --------------------------------------------------------------------------- the view


def test_progress_only_moves_forward_and_only_while_running() -> None:
    view = with_progress(running_view(), progress("run-1", 5, "five"))
    assert view.tail == ("five",) and view.tail_sequence == 5
    assert with_progress(view, progress("run-1", 4, "four")) is view  # older: dropped
    assert with_progress(view, progress("run-1", 5, "again")) is view  # same: dropped
    finished = merge_run(view, samples.run_finished("run-1"))
    assert with_progress(finished, progress("run-1", 9, "late")) is finished
    waiting = run_view_of(samples.approval_requested("run-2"))
    assert with_progress(waiting, progress("run-2", 1, "early")) is waiting


def test_the_finish_keeps_a_tail_its_own_else_the_last_progress() -> None:
    view = with_progress(running_view(), progress("run-1", 1, "last progress line"))
    ended = merge_run(view, samples.run_finished("run-1"))
    assert ended.tail[-1].endswith("done: 24211 sessions expired")
    without_tail = samples.run_finished("run-1").model_copy(update={"log_tail": ()})
    assert merge_run(view, without_tail).tail == ("last progress line",)


# --------------------------------------------------------------------------- drawing


def test_the_tail_block_stays_within_limits_and_keeps_the_newest_lines() -> None:
    lines = [f"line {i} " + "x" * 100 for i in range(40)]
    block, cut = tail_code_block(lines, max_lines=10, limit=500)
    assert len(block) <= 500
    assert block.startswith("```") and block.endswith("```")
    assert "line 39" in block and "line 29" not in block
    assert cut == 40 - block.count("line ")


def test_the_tail_block_defuses_fences_and_escapes() -> None:
    block, _ = tail_code_block(
        ["a ``` b", "<@U1> & <!channel>", "ends with `"], max_lines=5, limit=900
    )
    assert block.count("```") == 2
    assert "&lt;@U1&gt; &amp; &lt;!channel&gt;" in block
    assert block.endswith(f"ends with {GRAVE}```")


def test_one_huge_line_keeps_its_end() -> None:
    block, cut = tail_code_block(["x" * 5000 + "END"], max_lines=5, limit=1000)
    assert len(block) <= 1000 and block.endswith("END```") and cut == 0


def test_a_running_run_message_shows_elapsed_and_tail_within_slack_limits() -> None:
    lines = tuple(f"<b>{i}</b> " + "y" * 400 for i in range(30))
    view = with_progress(running_view(), progress("run-1", 1, *lines, elapsed=3725))
    message = render_run(view)
    texts = [b["text"]["text"] for b in message.blocks if b["type"] == "section" and "text" in b]
    [progress_text] = [t for t in texts if "Running for" in t]
    assert "Running for *1h 02m*" in progress_text
    assert len(progress_text) <= MAX_SECTION_TEXT
    assert "<b>" not in progress_text and "&lt;b&gt;29" in progress_text
    assert progress_text.count("&lt;b&gt;") <= MAX_PARENT_TAIL_LINES


def test_no_output_yet() -> None:
    view = with_progress(running_view(), progress("run-1", 1, elapsed=4))
    texts = str(render_run(view).blocks)
    assert "Running for *4s* · _no output yet_" in texts


# --------------------------------------------------------------------------- settings


def test_the_progress_interval_has_a_floor_and_a_10_s_default() -> None:
    assert BatchSettings().progress_interval_seconds == 10
    with pytest.raises(ValidationError):
        BatchSettings(progress_interval_seconds=0.5)


def test_sequence_must_be_positive() -> None:
    with pytest.raises(ValidationError):
        progress("run-1", 0)
    assert progress("run-1", 1).started_at + timedelta(seconds=30) > samples.NOW
