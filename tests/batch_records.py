"""Run records for the batch service's unit tests: a few people, a fixed time, a factory.

Times are relative to ``NOW`` (a fixed instant).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.events import Actor, RunParameter
from shared.state_table.runs import ApprovalState, RunRecord, RunState

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
ALICE = Actor(slack_user_id="U_ALICE", name="alice")
BOB = Actor(slack_user_id="U_BOB", name="bob")
CAROL = Actor(slack_user_id="U_CAROL", name="carol")
SECRET = RunParameter(name="token", value="s3cret", sensitive=True)
PLAIN = RunParameter(name="tenant", value="acme")


def approval(*approvals: Actor, need: int = 2) -> ApprovalState:
    return ApprovalState(
        approvers=("U_BOB", "U_CAROL"),
        min_approvals=need,
        expires_at=NOW + timedelta(hours=1),
        approvals=approvals,
    )


def run(status: RunState = "received", **fields: object) -> RunRecord:
    return RunRecord(
        run_id="run-1",
        request_event_id="evt-request",
        command="reindex",
        environment="production",
        parameters=(PLAIN, SECRET),
        requested_by=ALICE,
        requested_at=NOW - timedelta(minutes=5),
        status=status,
        **fields,  # type: ignore[arg-type]
    )
