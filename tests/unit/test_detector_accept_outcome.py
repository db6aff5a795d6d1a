"""``DriftAcceptRequested`` -> ``DriftAccepted``: every field of the outcome is accounted for.

The acceptor copies the fields both events hold under the same name
(``model_dump(include=ACCEPTED_FROM_REQUEST)``) and works out the rest. These tests fail
when a field is added to either event without deciding where its value comes from.
"""

from __future__ import annotations

from services.detector.accept.acceptor import ACCEPTED_FROM_REQUEST
from shared.events import DriftAccepted, DriftAcceptRequested, EventBase

#: Every event's envelope; ``correlation_id`` is the one part of it an outcome copies.
ENVELOPE = set(EventBase.model_fields) | {"type"}
#: What the acceptor works out from the fresh plan, the patch and the push.
WORKED_OUT = {"diff", "changed", "skipped", "gone", "branch", "commit", "compare_url", "problem"}


def test_the_outcome_carries_every_field_of_its_request() -> None:
    request_fields = set(DriftAcceptRequested.model_fields) - ENVELOPE
    assert request_fields | {"correlation_id"} == ACCEPTED_FROM_REQUEST


def test_every_other_field_of_the_outcome_is_worked_out_by_the_acceptor() -> None:
    outcome_fields = set(DriftAccepted.model_fields) - ENVELOPE
    assert outcome_fields == (ACCEPTED_FROM_REQUEST - ENVELOPE) | WORKED_OUT
