"""The detector's drift items, as other services read them (the gateway's ``/toil drift``).

Written by :mod:`services.detector.lifecycle`; keys in :mod:`shared.state_table.keys`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.events import Actor
from shared.state_table.keys import DRIFT_STATES, key, parse_time, sortable_time

#: A finding's attributes, in its open item and its history: the detector writes them and
#: reads them back; :func:`open_drift_from_item` reads them for the gateway.
FINGERPRINT = "fingerprint"
ADDRESS = "address"
KIND = "kind"
FIRST_SEEN = "first_seen"
#: Who is on a finding, in its open item and its history: the detector writes them when
#: someone presses "I'm on it" (and into the history when the finding closes).
CLAIMED_BY_NAME = "claimed_by_name"
CLAIMED_BY_SLACK = "claimed_by_slack"


@dataclass(frozen=True)
class StateScan:
    """A state's last scan as the detector recorded it (``drift#states`` / ``<state>``)."""

    state: str
    scanned_at: datetime
    status: str
    scan_id: str = ""


@dataclass(frozen=True)
class OpenDrift:
    """One open finding of a state (``drift#<state>`` / ``finding#<fingerprint>``)."""

    state: str
    fingerprint: str
    address: str
    kind: str
    first_seen: datetime
    claimed_by: Actor | None = None


def state_scan_item(scan: StateScan) -> dict[str, Any]:
    """The item the detector writes for a state's last scan (read by
    :func:`state_scan_from_item`)."""
    return {
        **key(DRIFT_STATES, scan.state),
        "scanned_at": {"S": sortable_time(scan.scanned_at)},
        "scan_id": {"S": scan.scan_id},
        "status": {"S": scan.status},
    }


def state_scan_from_item(item: dict[str, Any]) -> StateScan:
    """Raises ``KeyError``/``ValueError`` for an item that is not a state scan."""
    return StateScan(
        state=item["sk"]["S"],
        scanned_at=parse_time(item["scanned_at"]["S"]),
        scan_id=item.get("scan_id", {}).get("S", ""),
        status=item["status"]["S"],
    )


def open_drift_from_item(state: str, item: dict[str, Any]) -> OpenDrift:
    """Raises ``KeyError``/``ValueError`` for an item that is not an open finding."""
    return OpenDrift(
        state=state,
        fingerprint=item[FINGERPRINT]["S"],
        address=item[ADDRESS]["S"],
        kind=item.get(KIND, {}).get("S", "drift"),
        first_seen=parse_time(item[FIRST_SEEN]["S"]),
        claimed_by=claimer_from_item(item),
    )


def claimer_from_item(item: Mapping[str, Any]) -> Actor | None:
    """Who is on a finding (``claimed_by_name``, ``claimed_by_slack`` of its item, open or
    in its history); ``None`` when nobody claimed it."""
    if CLAIMED_BY_NAME not in item:
        return None
    return Actor(
        name=item[CLAIMED_BY_NAME]["S"],
        slack_user_id=item.get(CLAIMED_BY_SLACK, {}).get("S"),
    )
