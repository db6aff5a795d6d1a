"""The drift items' claimer, read once for the gateway's ``/toil drift`` and the detector."""

from __future__ import annotations

from shared.events import Actor
from shared.state_table.drift import claimer_from_item, open_drift_from_item


def test_a_claimer_with_a_slack_id_is_read_as_that_person() -> None:
    item = {"claimed_by_name": {"S": "bob"}, "claimed_by_slack": {"S": "U0BOB00002"}}

    assert claimer_from_item(item) == Actor(name="bob", slack_user_id="U0BOB00002")


def test_a_claimer_from_the_cli_has_only_a_name() -> None:
    assert claimer_from_item({"claimed_by_name": {"S": "ops-cli"}}) == Actor(name="ops-cli")


def test_an_unclaimed_finding_has_no_claimer() -> None:
    assert claimer_from_item({"fingerprint": {"S": "fp1"}}) is None


def test_an_open_finding_carries_its_claimer() -> None:
    item = {
        "fingerprint": {"S": "fp1"},
        "address": {"S": "aws_sg.web"},
        "first_seen": {"S": "2026-12-01T08:00:00.000000+00:00"},
        "claimed_by_name": {"S": "bob"},
        "claimed_by_slack": {"S": "U0BOB00002"},
    }

    drift = open_drift_from_item("net", item)

    assert drift.kind == "drift"
    assert drift.claimed_by == Actor(name="bob", slack_user_id="U0BOB00002")
