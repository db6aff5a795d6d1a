"""``DriftAcceptRequested`` -> ``DriftAccepted``: every field of the outcome is accounted for.

The acceptor copies the fields both events hold under the same name
(``model_dump(include=ACCEPTED_FROM_REQUEST)``) and works out the rest. These tests fail
when a field is added to either event without deciding where its value comes from.
"""

from __future__ import annotations

from services.detector.accept.acceptor import ACCEPTED_FROM_REQUEST
from shared.events import DriftAccepted, EventBase

#: Every event's envelope; ``correlation_id`` is the one part of it an outcome copies.
ENVELOPE = set(EventBase.model_fields) | {"type"}
#: What the acceptor works out from the fresh plan, the patch and the push.
WORKED_OUT = {"diff", "changed", "skipped", "gone", "branch", "commit", "compare_url", "problem"}


def test_the_outcome_carries_every_field_of_its_request() -> None:
    # Named here as well: the set is worked out from the request's fields, and a field
    # added to the request must be one the outcome holds too (the next test).
    assert {"correlation_id", "state", "fingerprints", "requested_by"} == ACCEPTED_FROM_REQUEST
    assert set(DriftAccepted.model_fields) >= ACCEPTED_FROM_REQUEST


def test_every_other_field_of_the_outcome_is_worked_out_by_the_acceptor() -> None:
    outcome_fields = set(DriftAccepted.model_fields) - ENVELOPE
    assert outcome_fields == (ACCEPTED_FROM_REQUEST - ENVELOPE) | WORKED_OUT
