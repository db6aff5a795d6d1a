"""Event contracts: round trips, the discriminated union, and poison classification."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.errors import PoisonMessage
from shared.events import (
    COMMAND_TYPES,
    EVENT_TYPES,
    OUTCOME_TYPES,
    Actor,
    BatchRequested,
    BatchRunFinished,
    DriftScanRequested,
    RunParameter,
    dump_event,
    parse_event,
)


def test_every_design_type_exists_and_is_a_command_or_an_outcome() -> None:
    assert {
        "BatchRequested",
        "BatchCancelRequested",
        "BatchApproved",
        "BatchRejected",
        "DriftScanRequested",
        "DriftClaimed",
        "DriftAcceptRequested",
    } == COMMAND_TYPES
    assert {
        "BatchApprovalRequested",
        "BatchRunStarted",
        "BatchRunFinished",
        "BatchRunProgress",
        "BatchRunRefused",
        "DriftDetected",
        "DriftResolved",
        "DriftScanFailed",
        "DriftScanCompleted",
        "DriftAccepted",
        "MessageDeadLettered",  # operations: for the ops channel
    } == OUTCOME_TYPES
    assert set(EVENT_TYPES) == COMMAND_TYPES | OUTCOME_TYPES


def test_round_trip_keeps_the_envelope_and_the_type() -> None:
    event = BatchRequested(
        correlation_id="run-1",
        source="gateway",
        run_id="run-1",
        command="backfill",
        environment="production",
        parameters=(RunParameter(name="since", value="2026-01-01; rm -rf /"),),
        requested_by=Actor(slack_user_id="U1", name="ana"),
    )
    parsed = parse_event(dump_event(event))
    assert parsed == event
    assert isinstance(parsed, BatchRequested)
    assert parsed.parameters[0].value == "2026-01-01; rm -rf /"
    assert parsed.occurred_at.tzinfo is not None


def test_events_are_frozen_and_reject_unknown_fields() -> None:
    event = DriftScanRequested(correlation_id="s", source="test")
    with pytest.raises(ValidationError):
        event.correlation_id = "other"  # type: ignore[misc]
    body = json.loads(dump_event(event))
    body["surprise"] = 1
    with pytest.raises(PoisonMessage, match="surprise"):
        parse_event(json.dumps(body))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe", "not valid JSON"),
        ("{", "not valid JSON"),
        ("[1, 2]", "expected an object"),
        ('{"type": "Nope"}', "unknown event type 'Nope'"),
        ('{"type": []}', r"unknown event type \[\]"),
        ('{"correlation_id": "x"}', "unknown event type None"),
        ('{"type": "DriftScanRequested", "source": "x"}', "correlation_id: Field required"),
        (
            '{"type": "DriftScanRequested", "source": "x", "correlation_id": "c", '
            '"schema_version": 9}',
            "schema_version 9 is newer",
        ),
        (
            '{"type": "BatchRunFinished", "source": "x", "correlation_id": "c", "run_id": "r", '
            '"command": "c", "environment": "e", "status": "exploded", "duration_seconds": 1}',
            "status",
        ),
    ],
)
def test_bad_bodies_are_poison_with_a_reason(body: str | bytes, reason: str) -> None:
    with pytest.raises(PoisonMessage, match=reason.replace("(", r"\(")):
        parse_event(body)


def test_a_hand_written_event_without_id_takes_the_message_id() -> None:
    body = '{"type": "DriftScanRequested", "source": "aws-cli", "correlation_id": "manual"}'
    assert parse_event(body, default_event_id="msg-1").event_id == "msg-1"


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValidationError):
        BatchRunFinished(
            correlation_id="r",
            source="batch",
            run_id="r",
            command="c",
            environment="e",
            status="succeeded",
            duration_seconds=1,
            occurred_at=datetime(2026, 1, 1),
        )
    ok = DriftScanRequested(
        correlation_id="s", source="t", occurred_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert ok.occurred_at.year == 2026


@given(
    st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(
                    st.sampled_from(["type", "event_id", "source", "correlation_id", "x"]),
                    children,
                    max_size=5,
                )
            ),
            max_leaves=20,
        ).map(json.dumps),
    )
)
def test_parsing_anything_raises_nothing_but_poison(body: str | bytes) -> None:
    with contextlib.suppress(PoisonMessage):
        parse_event(body)
