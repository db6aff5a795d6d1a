"""Who may cancel a run: the rule the gateway and the batch service both apply."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from shared.authz import may_cancel
from shared.catalog import Catalog, StaticGroupDirectory, parse_catalog
from shared.events import Actor
from shared.state_table.runs import RunRecord

ALICE = Actor(slack_user_id="U0ALICE001", name="alice")
SRE = StaticGroupDirectory({"S0SRE00001": ["U0SRE00001"]})


@pytest.fixture
def catalog() -> Catalog:
    return parse_catalog(
        yaml.safe_load(
            """
            commands:
              - name: reindex
                description: Reindex.
                argv: [echo, reindex]
                environments:
                  staging: {allowed: {users: [U0DEV00001]}}
                  production:
                    allowed: {users: [U0DEV00001]}
                    approval: {approvers: {usergroups: [S0SRE00001]}}
            """
        )
    )


def run_of(environment: str, command: str = "reindex") -> RunRecord:
    return RunRecord(
        run_id="run-1",
        request_event_id="evt-1",
        command=command,
        environment=environment,
        requested_by=ALICE,
        requested_at=datetime(2026, 12, 5, 9, 0, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("user_id", "environment", "allowed"),
    [
        ("U0ALICE001", "production", True),  # the requester
        ("U0DEV00001", "staging", True),  # allowed to run it there
        ("U0SRE00001", "production", True),  # an approver there (through a group)
        ("U0SRE00001", "staging", False),  # no approvers in staging
        ("U0OTHER001", "production", False),
        (None, "production", False),
    ],
)
async def test_the_requester_whoever_may_run_it_there_or_its_approvers_may_cancel(
    catalog: Catalog, user_id: str | None, environment: str, allowed: bool
) -> None:
    assert await may_cancel(catalog, run_of(environment), user_id, SRE) is allowed


async def test_only_the_requester_may_cancel_a_run_the_catalog_no_longer_has(
    catalog: Catalog,
) -> None:
    gone = run_of("production", command="removed")

    assert await may_cancel(catalog, gone, "U0ALICE001", SRE)
    assert not await may_cancel(catalog, gone, "U0DEV00001", SRE)
