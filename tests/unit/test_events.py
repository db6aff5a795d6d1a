"""Event contracts: round trips, the discriminated union, and poison classification."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.errors import PoisonMessage
from shared.events import (
    COMMAND_TYPES,
    EVENT_TYPES,
    OUTCOME_TYPES,
    SCHEMA_MINOR,
    SCHEMA_VERSION,
    Actor,
    BatchRequested,
    BatchRunFinished,
    DriftDetected,
    DriftScanRequested,
    RunParameter,
    dump_event,
    parse_event,
)
from tests import notifier_samples as samples


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


# --------------------------------------------------------------------------- compatibility


def _detected_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(dump_event(samples.drift_detected()))
    body.update(changes)
    return body


def test_an_outcome_of_a_newer_minor_with_unknown_fields_is_read_without_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = _detected_body(schema_minor=SCHEMA_MINOR + 1, owner_team="platform")
    body["findings"][0]["risk_score"] = 7  # nested parts ignore additions too
    body["state"]["account_id"] = "210987654321"

    with caplog.at_level("INFO", logger="shared.events"):
        event = parse_event(json.dumps(body))

    assert isinstance(event, DriftDetected)
    assert event == samples.drift_detected().model_copy(
        update={
            "event_id": body["event_id"],
            "occurred_at": event.occurred_at,
            "schema_minor": SCHEMA_MINOR + 1,
        }
    )
    assert "owner_team" not in event.model_dump()
    assert "ignoring fields this worker does not know (owner_team)" in caplog.text


def test_an_event_of_a_newer_major_is_poison_that_says_to_upgrade() -> None:
    body = _detected_body(schema_version=SCHEMA_VERSION + 1)
    with pytest.raises(PoisonMessage) as refused:
        parse_event(json.dumps(body))
    reason = str(refused.value)
    assert f"DriftDetected schema_version {SCHEMA_VERSION + 1} is newer" in reason
    assert "upgrade this worker" in reason and "replay the DLQ" in reason


def test_a_command_never_drops_a_field_it_does_not_know() -> None:
    # A hand-written scan request with "state" for "states" would otherwise scan everything.
    body = {
        "type": "DriftScanRequested",
        "source": "aws-cli",
        "correlation_id": "c",
        "state": ["prod"],
    }
    with pytest.raises(PoisonMessage, match=r"state: Extra inputs .*fix the sender"):
        parse_event(json.dumps(body))
    newer = {**body, "schema_minor": SCHEMA_MINOR + 1}
    with pytest.raises(PoisonMessage, match="upgrade this worker, then replay the DLQ"):
        parse_event(json.dumps(newer))


def test_events_carry_both_versions_and_old_bodies_read_as_minor_zero() -> None:
    event = DriftScanRequested(correlation_id="s", source="test")
    body = json.loads(dump_event(event))
    assert (body["schema_version"], body["schema_minor"]) == (SCHEMA_VERSION, SCHEMA_MINOR)
    del body["schema_minor"]  # written by a detector before minors existed
    assert parse_event(json.dumps(body)).schema_minor == 0
