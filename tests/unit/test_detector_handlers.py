"""What the detector's queue handlers make of the events they take (pure logic)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from services.detector.pipeline import ScanRequest
from shared.events import Actor, DriftScanRequested


def test_a_scan_request_carries_every_field_of_the_event_that_asked_for_it() -> None:
    carried: dict[str, Any] = {
        "correlation_id": "corr-1",
        "states": ("prod", "staging"),
        "mode": "refresh_only",
        "requested_by": Actor(slack_user_id="U1", name="alice"),
        "reply_channel": "C1",
        "reply_thread_ts": "1700000000.000100",
    }
    event = DriftScanRequested(event_id="ev-1", source="gateway", **carried)

    request = ScanRequest.asked_by(event)

    assert request == ScanRequest(scan_id="ev-1", **carried)
    # No field is left at its default, so one added later must be pinned here too.
    defaults = ScanRequest(scan_id="", correlation_id="")
    assert all(getattr(request, f.name) != getattr(defaults, f.name) for f in fields(ScanRequest))
