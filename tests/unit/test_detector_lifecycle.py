"""Reconciling a plan's findings with the open records of its state (pure logic)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from services.detector.ignore import IgnoreRule
from services.detector.lifecycle import FindingRecord, reconcile
from services.detector.plan import PlanSummary, parse_plan
from shared.events import Actor, Suspect

DAY_ONE = datetime(2025, 6, 1, 7, 0, tzinfo=UTC)
DAY_TWO = DAY_ONE + timedelta(days=1)


def change(address: str, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {
        "address": address,
        "mode": "managed",
        "type": address.split(".", maxsplit=1)[0],
        "name": address.split(".")[1],
        "change": {"actions": ["update"], "before": before, "after": after},
    }


def plan(
    *, drift: Sequence[dict[str, Any]] = (), pending: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    return {
        "format_version": "1.2",
        "resource_drift": list(drift),
        "resource_changes": list(pending),
    }


BUCKET_DRIFT = change("cloud_bucket.logs", {"tags": {"env": "prod"}}, {"tags": {"env": "dev"}})
BUCKET_REVERT = change("cloud_bucket.logs", {"tags": {"env": "dev"}}, {"tags": {"env": "prod"}})
QUEUE_PENDING = change("cloud_queue.jobs", {"visibility_timeout": 30}, {"visibility_timeout": 60})


def summary(document: dict[str, Any], rules: tuple[IgnoreRule, ...] = ()) -> PlanSummary:
    return parse_plan(document, state="prod", ignore_rules=rules, now=DAY_ONE)


def recorded(document: dict[str, Any]) -> dict[str, FindingRecord]:
    """What scan s1 recorded on :data:`DAY_ONE` for the plan ``document``, by fingerprint."""
    return {
        f.fingerprint: FindingRecord(
            state="prod",
            fingerprint=f.fingerprint,
            address=f.address,
            kind=f.kind,
            resource_type=f.resource_type,
            first_seen=DAY_ONE,
            last_seen=DAY_ONE,
            first_scan_id="s1",
        )
        for f in summary(document).reported_findings
    }


def test_first_sighting_is_new_and_dated_now() -> None:
    result = reconcile(
        {},
        summary(plan(drift=[BUCKET_DRIFT], pending=[BUCKET_REVERT, QUEUE_PENDING])),
        scan_id="s1",
        now=DAY_ONE,
        mode="full",
    )

    # The bucket's revert belongs to its drift: one finding per resource.
    assert [(t.kind, t.status, t.first_seen) for t in result.current] == [
        ("drift", "new", DAY_ONE),
        ("pending", "new", DAY_ONE),
    ]
    assert result.current[0].revert is not None
    assert result.resolved == result.ignored == ()


def test_a_finding_seen_again_is_open_and_keeps_its_first_sighting_claim_and_suspects() -> None:
    previous = recorded(plan(drift=[BUCKET_DRIFT]))
    fingerprint = next(iter(previous))
    suspect = Suspect(
        principal="arn:aws:iam::1:user/alice", event_name="PutBucketTagging", event_time=DAY_ONE
    )
    previous[fingerprint] = FindingRecord(
        **{
            **previous[fingerprint].__dict__,
            "claimed_by": Actor(name="alice", slack_user_id="U1"),
            "suspects": (suspect,),
        }
    )

    result = reconcile(
        previous, summary(plan(drift=[BUCKET_DRIFT])), scan_id="s2", now=DAY_TWO, mode="full"
    )

    (tracked,) = result.current
    assert (tracked.status, tracked.first_seen) == ("open", DAY_ONE)
    assert tracked.claimed_by == Actor(name="alice", slack_user_id="U1")
    assert tracked.suspects == (suspect,)
    assert result.new == () and result.still_open == (tracked,)


def test_a_finding_gone_from_the_plan_is_resolved() -> None:
    previous = recorded(plan(drift=[BUCKET_DRIFT], pending=[QUEUE_PENDING]))

    result = reconcile(
        previous, summary(plan(pending=[QUEUE_PENDING])), scan_id="s2", now=DAY_TWO, mode="full"
    )

    assert [t.address for t in result.still_open] == ["cloud_queue.jobs"]
    assert [(r.address, r.kind) for r in result.resolved] == [("cloud_bucket.logs", "drift")]


def test_a_finding_now_covered_by_an_ignore_rule_is_closed_as_ignored_not_resolved() -> None:
    previous = recorded(plan(drift=[BUCKET_DRIFT]))
    rule = IgnoreRule(address="cloud_bucket.*", reason="tags are managed by the tagging bot")

    result = reconcile(
        previous,
        summary(plan(drift=[BUCKET_DRIFT]), (rule,)),
        scan_id="s2",
        now=DAY_TWO,
        mode="full",
    )

    assert result.current == ()
    assert result.resolved == ()
    assert [r.address for r in result.ignored] == ["cloud_bucket.logs"]


def test_a_refresh_only_plan_never_resolves_pending_changes_it_cannot_see() -> None:
    previous = recorded(plan(drift=[BUCKET_DRIFT], pending=[QUEUE_PENDING]))

    result = reconcile(previous, summary(plan()), scan_id="s2", now=DAY_TWO, mode="refresh_only")

    assert [(r.address, r.kind) for r in result.resolved] == [("cloud_bucket.logs", "drift")]


def test_a_redelivered_scan_reports_what_it_created_as_new_again() -> None:
    # The first delivery recorded the finding, then crashed before publishing.
    previous = recorded(plan(drift=[BUCKET_DRIFT]))

    result = reconcile(
        previous, summary(plan(drift=[BUCKET_DRIFT])), scan_id="s1", now=DAY_ONE, mode="full"
    )

    assert [(t.status, t.first_seen) for t in result.current] == [("new", DAY_ONE)]


def test_a_changed_drift_on_the_same_resource_is_a_new_finding() -> None:
    previous = recorded(plan(drift=[BUCKET_DRIFT]))
    versioning = change("cloud_bucket.logs", {"versioning": True}, {"versioning": False})

    result = reconcile(
        previous, summary(plan(drift=[versioning])), scan_id="s2", now=DAY_TWO, mode="full"
    )

    assert [(t.status, t.first_seen) for t in result.current] == [("new", DAY_TWO)]
    assert [r.address for r in result.resolved] == ["cloud_bucket.logs"]


def test_suspects_found_later_are_attached_by_fingerprint() -> None:
    result = reconcile(
        {}, summary(plan(drift=[BUCKET_DRIFT])), scan_id="s1", now=DAY_ONE, mode="full"
    )
    suspect = Suspect(principal="bob", event_name="PutBucketTagging", event_time=DAY_ONE)

    attributed = result.with_suspects({result.current[0].fingerprint: (suspect,)})

    assert attributed.current[0].suspects == (suspect,)
    assert result.current[0].suspects == ()


def test_a_revert_recorded_as_pending_before_is_closed_quietly_not_as_applied() -> None:
    # What an older detector recorded: the drift and its revert as two findings.
    old = recorded(plan(drift=[BUCKET_DRIFT], pending=[QUEUE_PENDING]))
    [bucket] = [r for r in old.values() if r.address == "cloud_bucket.logs"]
    old_revert = replace(bucket, fingerprint="pending-revert-of-the-bucket", kind="pending")

    result = reconcile(
        {**old, old_revert.fingerprint: old_revert},
        summary(plan(drift=[BUCKET_DRIFT], pending=[BUCKET_REVERT, QUEUE_PENDING])),
        scan_id="s2",
        now=DAY_TWO,
        mode="full",
    )

    assert [r.fingerprint for r in result.ignored] == [old_revert.fingerprint]
    assert result.resolved == ()
