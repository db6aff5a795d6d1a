"""The run record <-> batch event mappings: every event field is accounted for.

A run record is built from its ``BatchRequested``, and each outcome event from the run
record, by copying the fields both hold under the same name (``model_dump(include=...)``)
and working out the rest. These tests fail when a field is added to an event without
deciding where its value comes from.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from pydantic import BaseModel

from services.batch import outcomes
from services.batch.handlers import REQUEST_FIELDS_KEPT
from shared.events import (
    BatchApprovalRequested,
    BatchRequested,
    BatchRunFinished,
    BatchRunRefused,
    BatchRunStarted,
    DriftRef,
    EventBase,
    PreviewResult,
)
from shared.state_table.runs import RunRecord, RunState
from tests.batch_records import BOB, NOW, approval, run

#: Every event's envelope, plus the run's identity that every outcome header carries.
ENVELOPE = set(EventBase.model_fields) | {"type"}
OUTCOME_HEADER = ENVELOPE | {"run_id", "command", "environment"}


def own_fields(model: type[BaseModel], inherited: set[str]) -> set[str]:
    return set(model.model_fields) - inherited


def test_a_request_keeps_every_field_but_those_the_handler_works_out() -> None:
    worked_out = {"parameters"}  # marked sensitive as the catalog says
    assert own_fields(BatchRequested, ENVELOPE) == REQUEST_FIELDS_KEPT | worked_out
    assert REQUEST_FIELDS_KEPT.issubset(RunRecord.model_fields)


@pytest.mark.parametrize(
    ("event", "copied", "worked_out"),
    [
        (
            BatchApprovalRequested,
            outcomes.APPROVAL_REQUESTED_FROM_RECORD,
            {"parameters", "approvers", "expires_at"},
        ),
        (BatchRunRefused, outcomes.REFUSED_FROM_RECORD, {"stage", "reason", "preview"}),
        (
            BatchRunStarted,
            outcomes.STARTED_FROM_RECORD,
            {"parameters", "approved_by", "break_glass"},
        ),
        (
            BatchRunFinished,
            outcomes.FINISHED_FROM_RECORD,
            # log_ref: the batch service keeps logs with its runner, never in S3.
            {"status", "duration_seconds", "cancelled_by", "log_ref"},
        ),
    ],
)
def test_an_outcome_takes_every_field_from_the_record_or_works_it_out(
    event: type[EventBase], copied: set[str], worked_out: set[str]
) -> None:
    assert own_fields(event, OUTCOME_HEADER) == copied | worked_out
    assert not copied & worked_out
    assert copied.issubset(RunRecord.model_fields)


def full_record(status: RunState, **fields: object) -> RunRecord:
    """A run record with every field an outcome copies set to something not its default."""
    return run(
        status,
        reason="INC-42",
        rerun_of="run-0",
        reverts=DriftRef(state="network", fingerprints=("fp-1",)),
        break_glass_channel="C_OPS",
        decided_by=BOB,
        runner="local",
        log_url="file:///tmp/run-1.log",
        started_at=NOW - timedelta(minutes=1),
        exit_code=3,
        log_tail=("last line",),
        error="exit status 3",
        preview=PreviewResult(status="succeeded", exit_code=0, fingerprint="f" * 64),
        **fields,
    )


@pytest.mark.parametrize(
    ("build", "copied", "status", "fields"),
    [
        (
            outcomes.approval_requested,
            outcomes.APPROVAL_REQUESTED_FROM_RECORD,
            "awaiting_approval",
            {"approval": approval()},
        ),
        (
            outcomes.refused,
            outcomes.REFUSED_FROM_RECORD,
            "refused",
            {"refusal_stage": "approval", "refusal_reason": "no"},
        ),
        (outcomes.started, outcomes.STARTED_FROM_RECORD, "running", {}),
        (outcomes.finished, outcomes.FINISHED_FROM_RECORD, "failed", {}),
    ],
)
def test_an_outcome_carries_the_record_s_own_values(
    build: Callable[[RunRecord], EventBase],
    copied: set[str],
    status: RunState,
    fields: dict[str, object],
) -> None:
    record = full_record(status, **fields)
    event = build(record)
    for name in copied:
        assert getattr(event, name) == getattr(record, name), name
