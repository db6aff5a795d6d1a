"""The detector with ignore rules written from Slack, and with a drift that keeps coming back.

Real Terraform plans (the file-backed provider), moto over HTTP for the state table, SNS
and SQS; the rules are written through the same store the gateway uses.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from services.detector.lifecycle import FindingRecord, Reconciliation
from shared.aws import AwsClients
from shared.events import Actor, DriftDetected, DriftScanCompleted, DriftScanRequested
from shared.state_table.drift_actions import IgnoreRuleStore, StoredIgnoreRule
from shared.topology import BootstrapReport, Names
from tests.integration.test_detector_pipeline import (  # noqa: F401 - a fixture
    DAY_ONE,
    DetectorFor,
    detector_for,
    of_type,
    outcomes,
)
from tests.terraform.repos import drift_the_cloud
from tests.terraform.testbed import Testbed, build_testbed

ALICE = Actor(name="alice", slack_user_id="U0ALICE001")
BUCKET = "cloud_bucket.logs"


@pytest.fixture(scope="module")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Testbed:
    return build_testbed(tmp_path_factory.mktemp("ignores-testbed"))


def scan(correlation_id: str) -> DriftScanRequested:
    return DriftScanRequested(correlation_id=correlation_id, source="test", states=("drifting",))


async def test_an_ignore_rule_hides_the_drift_until_it_expires_then_it_comes_back_with_a_note(
    detector_for: DetectorFor,  # noqa: F811
    aws: AwsClients,
    names: Names,
    topology: BootstrapReport,
) -> None:
    repo, detector = detector_for("drifting")
    store = IgnoreRuleStore(aws.dynamodb, names.state_table)
    detector.pipeline.ignores = store
    drift_the_cloud(repo.cloud)
    last_day = date(2025, 6, 5)
    await store.add(
        StoredIgnoreRule(
            rule_id="r1",
            state="drifting",
            address=BUCKET,
            attribute="tags",
            reason="the tagging job owns env",
            expires=last_day,
            created_by=ALICE,
            created_at=DAY_ONE,
        )
    )

    # WHEN the morning scan runs while the rule applies
    await detector.request(scan("day-1"))
    (detected,) = of_type(await outcomes(aws, topology), DriftDetected)

    # THEN the bucket is reported as ignored, with the reason and who wrote it
    findings = {f.address: f for f in detected.findings}
    bucket = findings[BUCKET]
    assert bucket.ignored
    assert bucket.ignore_reason is not None
    assert "the tagging job owns env" in bucket.ignore_reason
    assert "ignored by alice until 2025-06-05" in bucket.ignore_reason
    assert not findings["cloud_queue.jobs"].ignored
    assert findings["cloud_queue.jobs"].ignore_expired is None

    # WHEN the rule has expired (the day after its last day)
    detector.clock.current = DAY_ONE + timedelta(days=4)
    await detector.request(scan("day-5"))
    (detected,) = of_type(await outcomes(aws, topology), DriftDetected)

    # THEN the drift is back, as new, with a note saying whose rule expired when
    bucket = next(f for f in detected.findings if f.address == BUCKET)
    assert not bucket.ignored and bucket.status == "new"
    assert bucket.ignore_expired == (
        "ignore rule by alice expired on 2025-06-05 (the tagging job owns env)"
    )

    # WHEN the rule is removed (instead of expiring) no note is given any more
    assert await store.remove("r1", ALICE, now=DAY_ONE + timedelta(days=5)) is not None
    detector.clock.current = DAY_ONE + timedelta(days=6)
    await detector.request(scan("day-7"))
    (detected,) = of_type(await outcomes(aws, topology), DriftDetected)
    assert all(f.ignore_expired is None for f in detected.findings)


async def test_a_drift_resolved_three_times_in_30_days_carries_its_repeats(
    detector_for: DetectorFor,  # noqa: F811
    aws: AwsClients,
    topology: BootstrapReport,
) -> None:
    repo, detector = detector_for("drifting")
    drift_the_cloud(repo.cloud)
    await detector.request(scan("first"))
    (detected,) = of_type(await outcomes(aws, topology), DriftDetected)
    bucket = next(f for f in detected.findings if f.address == BUCKET)
    assert bucket.resolved_recently == 0

    # GIVEN the same finding was resolved three times in the last 30 days (and once long ago)
    def closed(days_ago: int) -> FindingRecord:
        seen = DAY_ONE - timedelta(days=days_ago, hours=5)
        return FindingRecord(
            state="drifting",
            fingerprint=bucket.fingerprint,
            address=BUCKET,
            kind="drift",
            resource_type="cloud_bucket",
            first_seen=seen,
            last_seen=seen,
            first_scan_id=f"old-{days_ago}",
        )

    for days_ago, closed_at in ((3, 2), (10, 9), (20, 19), (50, 49)):
        await detector.lifecycle.record(
            Reconciliation("drifting", resolved=(closed(days_ago),)),
            scan_id=f"close-{days_ago}",
            now=DAY_ONE - timedelta(days=closed_at),
        )

    # WHEN the next scan sees it again
    detector.clock.current = DAY_ONE + timedelta(hours=1)
    await detector.request(scan("again"))
    events = await outcomes(aws, topology)

    # THEN it says it was resolved three times in 30 days (the notifier suggests ignoring it)
    (detected,) = of_type(events, DriftDetected)
    counts = {f.address: f.resolved_recently for f in detected.findings}
    assert counts == {BUCKET: 3, "cloud_queue.jobs": 0}
    # AND the scheduled digest of a Monday (DAY_ONE is one) carries the team lines: the open
    # drift and the one first seen 3 days ago both came back after being resolved
    (digest,) = of_type(events, DriftScanCompleted)
    assert digest.team is not None
    assert (
        digest.team.came_back == "2 after being resolved: cloud_bucket.logs in drifting (2 times)"
    )

    # WHEN someone asks for a scan from Slack, its digest has no team lines
    asked = scan("asked").model_copy(update={"requested_by": ALICE})
    await detector.request(asked)
    (digest,) = of_type(await outcomes(aws, topology), DriftScanCompleted)
    assert digest.team is None
