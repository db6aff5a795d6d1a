"""Every key of the shared state table, and who writes it.

===============================  ==============================  ==========================
partition (``pk``)               sort key (``sk``)               written by
===============================  ==============================  ==========================
``drift#states``                 ``<state>``                     detector (last scan)
``drift#<state>``                ``finding#<fingerprint>``       detector (open finding)
``drift#<state>``                ``history#<closed_at>#<fp>``    detector (closed finding)
``drift#ignores``                ``rule#<id>``                   gateway, CLI (ignore rule)
``drift#scans``                  ``inflight#<state>``            gateway (scan in flight),
                                                                 detector (releases it)
``drift#audit``                  ``<time>#<id>``                 gateway, CLI (drift actions)
``run#<id>``                     ``run``                         batch (the run record)
``run#<id>``                     ``audit#<time>#<n>``            batch (audit trail)
``runs``                         ``<requested_at>#<id>``         batch (listing index)
``runs#active``                  ``<id>``                        batch (started, not ended)
``approvals#pending``            ``<expires_at>#<id>``           batch (awaiting approval)
``lock#<command>#<environment>`` ``slot#<n>``                    batch (concurrency slots)
``breakglass#<user>``            ``<yyyy-mm-dd>``                batch (break-glass runs)
``schedule#<command>#<env>``     ``last``                        batch (latest scheduled run)
``notifier#post#<event_id>``     ``<role>``                      notifier (one post each)
``notifier#run#<id>``            ``thread``                      notifier (run thread)
``notifier#drift#<state>``       ``thread#<set_id>``             notifier (drift thread)
``notifier#drift#<state>``       ``fp#<fingerprint>``            notifier (finding's report)
``gateway#request#<key>``        (item keyed by ``id``)          gateway (request ledger)
===============================  ==============================  ==========================
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Key = dict[str, Any]

# ------------------------------------------------------------------ drift (detector)
DRIFT_STATES = "drift#states"
FINDING_PREFIX = "finding#"
HISTORY_PREFIX = "history#"
DRIFT_IGNORES = "drift#ignores"
DRIFT_SCANS = "drift#scans"
DRIFT_AUDIT = "drift#audit"

# ------------------------------------------------------------------ runs (batch)
RUN_LIST = "runs"
ACTIVE_RUNS = "runs#active"
PENDING_APPROVALS = "approvals#pending"
RUN_ITEM = "run"
AUDIT_PREFIX = "audit#"
SLOT_PREFIX = "slot#"

# ------------------------------------------------------------------ notifier
NOTIFIER_THREAD = "thread"
NOTIFIER_THREAD_PREFIX = "thread#"
NOTIFIER_POINTER_PREFIX = "fp#"

# ------------------------------------------------------------------ gateway
GATEWAY_REQUEST_PREFIX = "gateway#request#"

# ------------------------------------------------------------------ every item
#: The table's TTL attribute (epoch seconds): the table is created with it, and every item
#: that should expire carries it under this name.
EXPIRES_AT = "expires_at"


def drift_partition(state: str) -> str:
    """The partition of one state's findings."""
    return f"drift#{state}"


def ignore_rule_sort_key(rule_id: str) -> str:
    """The sort key of one stored ignore rule (partition :data:`DRIFT_IGNORES`)."""
    return f"rule#{rule_id}"


def scan_in_flight_sort_key(state: str) -> str:
    """The sort key of a state's scan in flight (partition :data:`DRIFT_SCANS`)."""
    return f"inflight#{state}"


def drift_audit_sort_key(moment: datetime, entry_id: str) -> str:
    """The sort key of one drift action in the audit trail (partition :data:`DRIFT_AUDIT`)."""
    return f"{sortable_time(moment)}#{entry_id}"


def run_partition(run_id: str) -> str:
    """The partition of one run: its record and its audit trail."""
    return f"run#{run_id}"


def lock_partition(command: str, environment: str) -> str:
    """The partition of a command's concurrency slots in one environment."""
    return f"lock#{command}#{environment}"


def break_glass_partition(user_id: str) -> str:
    """The partition of one person's break-glass runs (one item per UTC day)."""
    return f"breakglass#{user_id}"


def schedule_partition(command: str, environment: str) -> str:
    """The partition of one catalog schedule's latest run."""
    return f"schedule#{command}#{environment}"


def notifier_post_partition(event_id: str) -> str:
    return f"notifier#post#{event_id}"


def notifier_run_partition(run_id: str) -> str:
    return f"notifier#run#{run_id}"


def notifier_drift_partition(state: str) -> str:
    return f"notifier#drift#{state}"


def key(pk: str, sk: str) -> Key:
    """The DynamoDB key of one item."""
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def sortable_time(moment: datetime) -> str:
    """A fixed-width UTC timestamp (microseconds, ``Z``) that sorts as text in time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """A timestamp written by :func:`sortable_time` (or any ISO 8601 text) as aware UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


#: Lists of choices from ``options_from`` sources (one item per command parameter).
OPTIONS_LISTS = "options"


def options_sort_key(command: str, parameter: str) -> str:
    return f"{command}#{parameter}"
