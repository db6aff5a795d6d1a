"""The gateway's decisions over its own seams: in-memory records, a static group directory,
and a publish function that records what it is given."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from services.gateway.blocks import ModalContext, Reply, RunForm
from services.gateway.handlers import (
    FormAccepted,
    FormErrors,
    FormRebuild,
    Gateway,
    Requester,
    RunDecision,
    RunNotDecided,
    RunQueued,
    RunRefused,
    derived_id,
    derived_run_id,
)
from shared.catalog import Catalog, StaticGroupDirectory, parse_catalog
from shared.errors import TransientError
from shared.events import (
    Actor,
    BatchApproved,
    BatchCancelRequested,
    BatchRejected,
    BatchRequested,
    BatchRunRefused,
    DriftClaimed,
    DriftScanRequested,
    EventBase,
    RunParameter,
)
from shared.state_table.drift import OpenDrift, StateScan
from shared.state_table.runs import RunRecord

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
ALICE = Requester("U0ALICE001", "alice", "C1")
BOB = Requester("U0BOB00002", "bob", "C1")
CAROL = Requester("U0CAROL003", "carol", "C1")

CATALOG = r"""
commands:
  - name: backfill
    description: Backfill.
    argv: [run, "{since}", "{token}"]
    parameters:
      - {name: since, type: text, pattern: '\d{4}-\d{2}-\d{2}'}
      - {name: token, type: text, required: false, sensitive: true}
    environments:
      staging: {allowed: {usergroups: [S0SRE00001], users: [U0CAROL003]}}
      production:
        allowed: {usergroups: [S0SRE00001]}
        approval: {approvers: {usergroups: [S0SRE00001]}}
"""


class MemoryRecords:
    def __init__(self) -> None:
        self.scans: list[StateScan] = []
        self.drift: dict[str, list[OpenDrift]] = {}
        self.runs: dict[str, RunRecord] = {}

    async def scanned_states(self) -> list[StateScan]:
        return self.scans

    async def open_drift(self, state: str) -> list[OpenDrift]:
        return self.drift.get(state, [])

    async def recent_runs(self, limit: int) -> list[RunRecord]:
        return sorted(self.runs.values(), key=lambda r: r.requested_at, reverse=True)[:limit]

    async def run(self, run_id: str) -> RunRecord | None:
        return self.runs.get(run_id)


class FailingDirectory:
    async def is_member(self, user_id: str, group_id: str) -> bool:
        raise TransientError("usergroups.users.list failed: ratelimited")


def catalog() -> Catalog:
    return parse_catalog(yaml.safe_load(CATALOG))


@pytest.fixture
def published() -> list[EventBase]:
    return []


@pytest.fixture
def records() -> MemoryRecords:
    return MemoryRecords()


@pytest.fixture
def gateway(published: list[EventBase], records: MemoryRecords) -> Gateway:
    async def publish(event: EventBase) -> None:
        published.append(event)

    return Gateway(
        catalog=catalog(),
        records=records,
        directory=StaticGroupDirectory({"S0SRE00001": ["U0ALICE001", "U0BOB00002"]}),
        publish=publish,
        clock=lambda: NOW,
    )


def form(**changes: Any) -> RunForm:
    values: dict[str, Any] = {
        "command": "backfill",
        "environment": "staging",
        "reason": "INC-1",
        "parameters": {"since": "2024-05-01", "token": "t0k3n"},
    }
    return RunForm(**(values | changes))


BACKFILL_MODAL = ModalContext(channel_id="C1", command="backfill")


def accepted(gateway: Gateway, **changes: Any) -> FormAccepted:
    outcome = gateway.check_run_form(form(**changes), BACKFILL_MODAL)
    assert isinstance(outcome, FormAccepted), outcome
    return outcome


# --------------------------------------------------------------------------- the form


def test_a_complete_form_is_accepted_as_typed(gateway: Gateway) -> None:
    outcome = accepted(gateway, reason="  INC-1 ")

    assert outcome.request.values == {"since": "2024-05-01", "token": "t0k3n"}
    assert outcome.reason == "  INC-1 "


@pytest.mark.parametrize(
    ("changes", "errors_on"),
    [
        ({"command": None}, {"command"}),
        ({"command": "gone"}, {"command"}),
        ({"environment": None}, {"environment"}),
        ({"environment": "moon"}, {"environment"}),
        ({"reason": " \n "}, {"reason"}),
        ({"reason": "x" * 501}, {"reason"}),
        ({"parameters": {"since": "May"}}, {"param:since"}),
        ({"parameters": {}}, {"param:since"}),
        ({"parameters": {"since": "2024-05-01", "extra": "1"}}, {"command"}),
        (
            {"environment": None, "parameters": {}, "reason": ""},
            {"environment", "param:since", "reason"},
        ),
    ],
)
def test_invalid_forms_get_errors_under_the_fields(
    gateway: Gateway, changes: dict[str, Any], errors_on: set[str]
) -> None:
    outcome = gateway.check_run_form(form(**changes), BACKFILL_MODAL)

    assert isinstance(outcome, FormErrors)
    assert set(outcome.errors) == errors_on


def test_a_form_built_for_another_command_is_rebuilt_not_validated(gateway: Gateway) -> None:
    outcome = gateway.check_run_form(form(), ModalContext(channel_id="C1", command=None))

    assert isinstance(outcome, FormRebuild)
    assert '"command": "backfill"' in outcome.view["private_metadata"]


# --------------------------------------------------------------------------- run requests


async def test_an_allowed_request_publishes_batch_requested_with_every_value(
    gateway: Gateway, published: list[EventBase]
) -> None:
    decision = await gateway.request_run(
        accepted(gateway).request, reason="INC-1", requester=ALICE, request_key="k1"
    )

    assert isinstance(decision, RunQueued)
    [event] = published
    assert isinstance(event, BatchRequested)
    assert event.run_id == decision.run_id == derived_run_id("k1")
    assert event.event_id == derived_id("k1", "BatchRequested")
    assert event.correlation_id == event.run_id
    assert event.parameters == (
        RunParameter(name="since", value="2024-05-01"),
        # The batch service needs it to run; only outcome events hide sensitive values.
        RunParameter(name="token", value="t0k3n", sensitive=True),
    )
    assert event.requested_by == Actor(slack_user_id=ALICE.user_id, name="alice")
    assert (event.channel_id, event.reason, event.source) == ("C1", "INC-1", "gateway")


async def test_the_same_slack_request_always_gives_the_same_ids(
    gateway: Gateway, published: list[EventBase]
) -> None:
    request = accepted(gateway).request
    for _ in range(2):
        await gateway.request_run(request, reason="r", requester=ALICE, request_key="same")

    assert published[0] == published[1].model_copy(update={"occurred_at": published[0].occurred_at})


async def production_request(gateway: Gateway, requester: Requester, key: str) -> RunDecision:
    """The gateway's decision on the backfill form, for production, by ``requester``."""
    return await gateway.request_run(
        accepted(gateway, environment="production").request,
        reason="r",
        requester=requester,
        request_key=key,
    )


async def test_production_requests_say_they_wait_for_an_approval(gateway: Gateway) -> None:
    decision = await production_request(gateway, BOB, "k")

    assert isinstance(decision, RunQueued)
    assert "approval" in decision.reply.text


async def test_a_refused_request_publishes_only_the_audit_event(
    gateway: Gateway, published: list[EventBase]
) -> None:
    decision = await production_request(gateway, CAROL, "k2")

    assert isinstance(decision, RunRefused)
    [event] = published
    assert isinstance(event, BatchRunRefused)
    assert (event.stage, event.source, event.environment) == (
        "authorization",
        "gateway",
        "production",
    )
    assert event.run_id == derived_run_id("k2")
    assert "U0CAROL003 may not run backfill in production" in event.reason
    assert "nothing was queued" in decision.reply.text


async def test_when_slack_cannot_say_who_is_in_a_group_nothing_is_decided(
    published: list[EventBase], records: MemoryRecords
) -> None:
    async def publish(event: EventBase) -> None:
        published.append(event)

    gateway = Gateway(
        catalog=catalog(), records=records, directory=FailingDirectory(), publish=publish
    )
    request = gateway.check_run_form(form(), BACKFILL_MODAL)
    assert isinstance(request, FormAccepted)

    decision = await gateway.request_run(
        request.request, reason="r", requester=ALICE, request_key="k"
    )

    assert isinstance(decision, RunNotDecided)
    assert published == []


async def test_a_failed_publish_is_told_not_hidden(records: MemoryRecords) -> None:
    async def publish(event: EventBase) -> None:
        raise TransientError("sns.publish failed: cannot reach the endpoint")

    gateway = Gateway(
        catalog=catalog(),
        records=records,
        directory=StaticGroupDirectory({"S0SRE00001": ["U0ALICE001"]}),
        publish=publish,
    )
    request = gateway.check_run_form(form(), BACKFILL_MODAL)
    assert isinstance(request, FormAccepted)

    decision = await gateway.request_run(
        request.request, reason="r", requester=ALICE, request_key="k"
    )

    assert isinstance(decision, RunNotDecided)
    assert "could not queue" in decision.reply.text


# --------------------------------------------------------------------------- buttons


#: A button pressed on run r1 by a person: the gateway's reply.
Press = Callable[[Gateway, Requester], Awaitable[Reply]]


def reject(gateway: Gateway, who: Requester) -> Awaitable[Reply]:
    return gateway.decide_approval("r1", who, "k", approve=False)


def cancel(gateway: Gateway, who: Requester) -> Awaitable[Reply]:
    return gateway.cancel("r1", who, "k")


def rerun(gateway: Gateway, who: Requester) -> Awaitable[Reply]:
    return gateway.rerun("r1", who, "k")


def record(run_id: str, status: str, requester: Requester = ALICE, **extra: Any) -> RunRecord:
    return RunRecord.model_validate(
        {
            "run_id": run_id,
            "request_event_id": f"e-{run_id}",
            "command": "backfill",
            "environment": "production",
            "parameters": [{"name": "since", "value": "2024-05-01"}],
            "reason": "INC-7",
            "requested_by": {"slack_user_id": requester.user_id, "name": requester.name},
            "channel_id": "C9",
            "status": status,
            "requested_at": NOW - timedelta(minutes=5),
            "future_field": "ignored",
            **extra,
        }
    )


@pytest.mark.parametrize(
    ("approve", "decision", "decided_by", "says"),
    [
        (True, BatchApproved, "approved_by", "Approved"),
        (False, BatchRejected, "rejected_by", "Rejected"),
    ],
)
async def test_approval_or_rejection_by_another_approver_is_published(
    gateway: Gateway,
    records: MemoryRecords,
    published: list[EventBase],
    approve: bool,
    decision: type[BatchApproved | BatchRejected],
    decided_by: str,
    says: str,
) -> None:
    records.runs["r1"] = record("r1", "awaiting_approval")

    reply = await gateway.decide_approval("r1", BOB, "k", approve=approve)

    [event] = published
    assert isinstance(event, decision)
    assert (event.run_id, getattr(event, decided_by).slack_user_id) == ("r1", BOB.user_id)
    assert says in reply.text


@pytest.mark.parametrize(
    ("who", "status", "says"),
    [
        (ALICE, "awaiting_approval", "self-approval"),
        (CAROL, "awaiting_approval", "not an approver"),
        (BOB, "running", "not waiting for an approval"),
    ],
)
async def test_approvals_that_do_not_count_publish_nothing(
    gateway: Gateway,
    records: MemoryRecords,
    published: list[EventBase],
    who: Requester,
    status: str,
    says: str,
) -> None:
    records.runs["r1"] = record("r1", status)

    reply = await gateway.decide_approval("r1", who, "k", approve=True)

    assert published == []
    assert says in reply.text


async def test_the_catalogs_approvers_are_asked_as_the_batch_service_asks_them(
    gateway: Gateway, records: MemoryRecords, published: list[EventBase]
) -> None:
    # The record names other approvers; the batch service decides with the catalog's.
    records.runs["r1"] = record(
        "r1",
        "awaiting_approval",
        approval={
            "approvers": ["U0CAROL003"],
            "min_approvals": 1,
            "expires_at": NOW + timedelta(hours=1),
        },
    )

    await gateway.decide_approval("r1", CAROL, "k1", approve=True)
    await gateway.decide_approval("r1", BOB, "k2", approve=True)

    assert [e.approved_by.slack_user_id for e in published if isinstance(e, BatchApproved)] == [
        BOB.user_id
    ]


@pytest.mark.parametrize(("who", "allowed"), [(ALICE, True), (BOB, True), (CAROL, False)])
@pytest.mark.parametrize(
    ("status", "press", "publishes", "refusal"),
    [
        # Rejection is for approvers and the requester withdrawing.
        ("awaiting_approval", reject, BatchRejected, "neither the requester nor an approver"),
        # Cancel is for the requester, whoever may run it there, and approvers.
        ("running", cancel, BatchCancelRequested, "or its approvers can cancel run"),
    ],
)
async def test_reject_and_cancel_are_for_the_requester_and_the_people_the_catalog_names(
    gateway: Gateway,
    records: MemoryRecords,
    published: list[EventBase],
    who: Requester,
    allowed: bool,
    status: str,
    press: Press,
    publishes: type[EventBase],
    refusal: str,
) -> None:
    records.runs["r1"] = record("r1", status, requester=ALICE)

    reply = await press(gateway, who)

    assert [type(e) for e in published] == ([publishes] if allowed else [])
    if not allowed:
        assert refusal in reply.text


@pytest.mark.parametrize(
    ("stored", "press", "says"),
    [
        (record("r1", "succeeded"), cancel, "already ended"),
        (None, cancel, "cannot find run"),
        (
            record(
                "r1",
                "failed",
                parameters=[
                    {"name": "since", "value": "2024-05-01"},
                    {"name": "token", "value": None, "sensitive": True},
                ],
            ),
            rerun,
            "sensitive",
        ),
        (
            record("r1", "failed", parameters=[{"name": "since", "value": "May"}]),
            rerun,
            "catalog changed",
        ),
    ],
    ids=["cancel-finished", "cancel-unknown", "rerun-secrets-not-kept", "rerun-catalog-changed"],
)
async def test_a_run_that_cannot_be_cancelled_or_rerun_says_why_and_publishes_nothing(
    gateway: Gateway,
    records: MemoryRecords,
    published: list[EventBase],
    stored: RunRecord | None,
    press: Press,
    says: str,
) -> None:
    if stored is not None:
        records.runs["r1"] = stored

    reply = await press(gateway, BOB)

    assert says in reply.text
    assert published == []


async def test_rerun_is_a_new_request_by_the_presser(
    gateway: Gateway, records: MemoryRecords, published: list[EventBase]
) -> None:
    records.runs["r1"] = record("r1", "failed")

    await gateway.rerun("r1", BOB, "k")

    [event] = published
    assert isinstance(event, BatchRequested)
    assert (event.rerun_of, event.requested_by.slack_user_id) == ("r1", BOB.user_id)
    assert event.reason == "Rerun of r1: INC-7"
    assert event.run_id == derived_run_id("k") != "r1"


async def test_rerun_by_someone_not_allowed_is_refused_with_an_audit_event(
    gateway: Gateway, records: MemoryRecords, published: list[EventBase]
) -> None:
    records.runs["r1"] = record("r1", "failed")

    reply = await gateway.rerun("r1", CAROL, "k")

    assert [type(e) for e in published] == [BatchRunRefused]
    assert "may not run" in reply.text


async def test_a_drift_claim_names_the_state_the_findings_and_who(
    gateway: Gateway, published: list[EventBase]
) -> None:
    reply = await gateway.claim_drift('{"state":"net","fingerprints":["a","b"]}', BOB, "k")

    assert reply is None
    [event] = published
    assert isinstance(event, DriftClaimed)
    assert (event.state, event.fingerprints, event.claimed_by.name) == ("net", ("a", "b"), "bob")


@pytest.mark.parametrize("value", ["", "not json", "[]", '{"fingerprints": []}', '{"state": ""}'])
async def test_an_unreadable_claim_button_publishes_nothing(
    gateway: Gateway, published: list[EventBase], value: str
) -> None:
    reply = await gateway.claim_drift(value, BOB, "k")

    assert reply is not None and "does not say" in reply.text
    assert published == []


# --------------------------------------------------------------------------- reads


async def test_drift_overview_says_when_the_detector_has_not_scanned_yet(gateway: Gateway) -> None:
    assert "No drift data yet" in (await gateway.drift_overview(None)).text
    assert "No drift data for" in (await gateway.drift_overview("net")).text


async def test_drift_overview_lists_open_findings_per_state(
    gateway: Gateway, records: MemoryRecords
) -> None:
    records.scans = [
        StateScan("net", NOW - timedelta(hours=1), "drifted"),
        StateScan("dns", NOW, "clean"),
    ]
    records.drift["net"] = [
        OpenDrift("net", "fp1", "aws_sg.web", "drift", NOW - timedelta(days=3)),
        OpenDrift(
            "net",
            "fp2",
            "aws_sg.db",
            "pending",
            NOW - timedelta(hours=2),
            Actor(name="bob", slack_user_id="U0BOB00002"),
        ),
    ]

    reply = await gateway.drift_overview(None)

    shown = str(reply.blocks)
    assert reply.text == "2 open drift findings"
    assert "aws_sg.web" in shown and "first seen 3d ago" in shown
    assert "(pending)" in shown and "<@U0BOB00002> is on it" in shown
    assert "dns" not in shown


async def test_a_clean_state_says_so(gateway: Gateway, records: MemoryRecords) -> None:
    records.scans = [StateScan("dns", NOW, "clean")]

    assert "No open drift" in (await gateway.drift_overview("dns")).text


async def test_runs_lists_the_latest_first(gateway: Gateway, records: MemoryRecords) -> None:
    assert "No batch runs yet" in (await gateway.runs_overview()).text
    records.runs["old"] = record("old", "succeeded", requested_at=NOW - timedelta(days=1))
    records.runs["new"] = record("new", "running")

    reply = await gateway.runs_overview()

    listing = reply.blocks[1]["text"]["text"]
    assert listing.index("new") < listing.index("old")
    assert "<@U0ALICE001>" in listing


def test_scan_requests_carry_the_state_who_and_where(gateway: Gateway) -> None:
    event = gateway.scan_request("net", ALICE, "k")

    assert isinstance(event, DriftScanRequested)
    assert (event.states, event.reply_channel, event.event_id) == (
        ("net",),
        "C1",
        derived_id("k", "DriftScanRequested"),
    )
