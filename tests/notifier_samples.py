"""Realistic outcome events for the notifier's tests, benchmark and screenshot.

Times are relative to ``NOW`` (a fixed instant) so rendered ages are deterministic.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from shared.events import (
    SENSITIVE,
    Actor,
    AttributeChange,
    BatchApprovalRequested,
    BatchRunFinished,
    BatchRunProgress,
    BatchRunRefused,
    BatchRunStarted,
    DriftClaimed,
    DriftDetected,
    DriftFinding,
    DriftResolved,
    DriftScanCompleted,
    DriftScanFailed,
    OldestDrift,
    ResolvedFinding,
    RunParameter,
    StateRef,
    StateSummary,
    Suspect,
)

RunEventT = TypeVar(
    "RunEventT",
    BatchApprovalRequested,
    BatchRunStarted,
    BatchRunProgress,
    BatchRunFinished,
    BatchRunRefused,
)

NOW = datetime(2025, 3, 12, 7, 5, tzinfo=UTC)
ALICE = Actor(slack_user_id="U0ALICE001", name="alice")
BOB = Actor(slack_user_id="U0BOB00002", name="bob")
CAROL = Actor(slack_user_id="U0CAROL003", name="carol")
PLAN_URL = "https://toilkit.example.com/plans/scan-0312/prod-network.txt"
LOG_URL = "https://console.aws.amazon.com/cloudwatch/home#logsV2:log-groups/log-group/toilkit-runs"


def state_ref(name: str = "prod-network") -> StateRef:
    return StateRef(name=name, path=f"infra/{name.replace('-', '/')}")


def finding(
    address: str,
    fingerprint: str,
    kind: Literal["drift", "pending"],
    actions: tuple[str, ...],
    *,
    status: Literal["new", "open"],
    age: timedelta,
    **details: Any,
) -> DriftFinding:
    """A finding of ``address`` (of the resource type the address names), first seen ``age``
    before :data:`NOW`, with more of its fields in ``details``."""
    return DriftFinding(
        fingerprint=fingerprint,
        address=address,
        resource_type=address.partition("[")[0].split(".")[-2],
        kind=kind,
        actions=actions,
        status=status,
        first_seen=NOW - age,
        **details,
    )


def security_group_drift(fingerprint: str = "a1b2c3d4e5f60718") -> DriftFinding:
    return finding(
        "aws_security_group.web",
        fingerprint,
        "drift",
        ("update",),
        status="new",
        age=timedelta(minutes=4),
        attributes=(
            AttributeChange(
                path="ingress[0].cidr_blocks[0]", before="10.0.0.0/8", after="0.0.0.0/0"
            ),
            AttributeChange(path="tags.Owner", before="platform", after=None),
            AttributeChange(
                path="tags.LastScanned",
                before="2025-03-11",
                after="2025-03-12",
                ignored=True,
                ignore_reason="noise",
            ),
        ),
        suspects=(
            Suspect(
                principal="arn:aws:sts::123456789012:assumed-role/SRE/alice",
                event_name="AuthorizeSecurityGroupIngress",
                event_time=NOW - timedelta(hours=9),
                slack_user_id="U0ALICE001",
                source_ip="203.0.113.24",
            ),
        ),
    )


def database_drift(fingerprint: str = "b2c3d4e5f6071829") -> DriftFinding:
    return finding(
        "aws_db_instance.main",
        fingerprint,
        "drift",
        ("update",),
        status="open",
        age=timedelta(days=4),
        claimed_by=None,
        attributes=(
            AttributeChange(path="instance_class", before="db.t3.medium", after="db.r6g.large"),
            AttributeChange(path="password", before=SENSITIVE, after=SENSITIVE, sensitive=True),
            AttributeChange(path="backup_retention_period", before=7, after=1),
        ),
        suspects=(
            Suspect(
                principal="arn:aws:sts::123456789012:assumed-role/AdminRole/bob",
                event_name="ModifyDBInstance",
                event_time=NOW - timedelta(days=4, hours=2),
            ),
        ),
    )


def bucket_policy_deleted(fingerprint: str = "c3d4e5f607182930") -> DriftFinding:
    return finding(
        "aws_s3_bucket_policy.logs",
        fingerprint,
        "drift",
        ("delete",),
        status="open",
        age=timedelta(days=2, hours=3),
    )


def lambda_pending(fingerprint: str = "d4e5f60718293041") -> DriftFinding:
    return finding(
        "aws_lambda_function.worker",
        fingerprint,
        "pending",
        ("update",),
        status="new",
        age=timedelta(minutes=4),
        attributes=(
            AttributeChange(path="memory_size", before=512, after=1024),
            AttributeChange(
                path="environment[0].variables.API_KEY",
                before=SENSITIVE,
                after=SENSITIVE,
                sensitive=True,
            ),
            AttributeChange(path="source_code_hash", before="q1w2e3r4", after_unknown=True),
        ),
    )


def dns_replace(fingerprint: str = "e5f6071829304152") -> DriftFinding:
    return finding(
        'module.dns.aws_route53_record.api["public"]',
        fingerprint,
        "pending",
        ("delete", "create"),
        status="open",
        age=timedelta(days=1, hours=1),
        action_reason="replace_because_cannot_update",
        attributes=(
            AttributeChange(path="name", before="api.old.example.com", after="api.example.com"),
        ),
    )


def ignored_autoscaling(fingerprint: str = "f607182930415263") -> DriftFinding:
    return finding(
        "aws_autoscaling_group.app",
        fingerprint,
        "drift",
        ("update",),
        status="open",
        age=timedelta(days=30),
        attributes=(AttributeChange(path="desired_capacity", before=3, after=5, ignored=True),),
        ignored=True,
        ignore_reason="autoscaling changes capacity",
    )


def drift_detected(
    state: str = "prod-network",
    findings: tuple[DriftFinding, ...] | None = None,
    *,
    scan_id: str = "scan-0312",
    occurred_at: datetime = NOW,
) -> DriftDetected:
    if findings is None:
        findings = (
            security_group_drift(),
            database_drift(),
            bucket_policy_deleted(),
            lambda_pending(),
            dns_replace(),
            ignored_autoscaling(),
        )
    return DriftDetected(
        correlation_id=scan_id,
        source="detector",
        occurred_at=occurred_at,
        state=state_ref(state),
        findings=findings,
        findings_total=len(findings),
        plan_url=PLAN_URL,
    )


def drift_resolved(
    state: str = "prod-network",
    findings: tuple[DriftFinding, ...] | None = None,
    *,
    scan_id: str = "scan-0313",
    occurred_at: datetime = NOW + timedelta(days=1),
) -> DriftResolved:
    findings = findings if findings is not None else (security_group_drift(),)
    return DriftResolved(
        correlation_id=scan_id,
        source="detector",
        occurred_at=occurred_at,
        state=state_ref(state),
        resolved=tuple(
            ResolvedFinding(
                fingerprint=f.fingerprint, address=f.address, kind=f.kind, first_seen=f.first_seen
            )
            for f in findings
        ),
    )


def drift_claimed(
    state: str = "prod-network", fingerprints: tuple[str, ...] = (), actor: Actor = BOB
) -> DriftClaimed:
    return DriftClaimed(
        correlation_id="claim-1",
        source="gateway",
        occurred_at=NOW + timedelta(minutes=20),
        state=state,
        fingerprints=fingerprints,
        claimed_by=actor,
    )


def scan_failed(state: str = "prod-dns") -> DriftScanFailed:
    return DriftScanFailed(
        correlation_id="scan-0312",
        source="detector",
        occurred_at=NOW,
        state=state_ref(state),
        phase="init",
        reason="terraform init could not reach the state backend",
        exit_code=1,
        stderr_excerpt=(
            "Initializing the backend...\n"
            "╷\n"
            "│ Error: Error acquiring the state lock\n"
            "│\n"
            "│ Error message: ConditionalCheckFailedException: The conditional request failed\n"
            "│ Lock Info:\n"
            "│   ID:        6f1c2a9e-7a55-4c1d-9d3e-2b0c11f0aa10\n"
            "│   Path:      tf-state-prod/dns/terraform.tfstate\n"
            "│   Operation: OperationTypeApply\n"
            "│   Who:       carol@laptop\n"
            "╵"
        ),
    )


def digest() -> DriftScanCompleted:
    return DriftScanCompleted(
        correlation_id="scan-0312",
        source="detector",
        occurred_at=NOW + timedelta(minutes=6),
        states=(
            # One of prod-network's resources drifted and has code not applied: 2 findings,
            # and they are new: 1 new resource.
            StateSummary(
                name="prod-network",
                status="drifted",
                open_findings=5,
                new_findings=2,
                open_resources=4,
                new_resources=1,
            ),
            StateSummary(name="prod-dns", status="failed"),
            StateSummary(name="staging-app", status="drifted", open_findings=1, open_resources=1),
            *(StateSummary(name=f"clean-{i:02d}", status="clean") for i in range(14)),
        ),
        findings_open=6,
        findings_new=2,
        findings_resolved=1,
        resources_open=5,
        resources_new=1,
        oldest_open=OldestDrift(
            state="prod-network",
            address="aws_db_instance.main",
            first_seen=NOW - timedelta(days=4),
        ),
        duration_seconds=371.4,
    )


def run_id() -> str:
    return f"run-{uuid.uuid4().hex[:8]}"


BACKFILL_PARAMETERS = (
    RunParameter(name="batch_size", value="500"),
    RunParameter(name="since", value="2025-03-01"),
    RunParameter(name="db_password", value=None, sensitive=True),
)


def run_event(
    kind: type[RunEventT], run: str, command: str, after: timedelta, **fields: Any
) -> RunEventT:
    """A ``kind`` event of run ``run`` of ``command`` in production, from the batch service,
    ``after`` :data:`NOW`, with the event's own ``fields``."""
    return kind(
        correlation_id=run,
        source="batch",
        occurred_at=NOW + after,
        run_id=run,
        command=command,
        environment="production",
        **fields,
    )


def approval_requested(run: str, command: str = "db-backfill") -> BatchApprovalRequested:
    return run_event(
        BatchApprovalRequested,
        run,
        command,
        timedelta(0),
        parameters=BACKFILL_PARAMETERS,
        reason="Backfill invoices missing their tax ids (INC-2291)",
        requested_by=ALICE,
        approvers=("S0SRE00001", "U0CAROL003"),
        expires_at=NOW + timedelta(hours=1),
    )


def run_started(
    run: str, command: str = "rails-runner", *, approved: bool = False
) -> BatchRunStarted:
    return run_event(
        BatchRunStarted,
        run,
        command,
        timedelta(minutes=2),
        parameters=(
            RunParameter(name="script", value="scripts/expire_sessions.rb"),
            RunParameter(name="dry_run", value="false"),
        ),
        reason="Expire sessions older than 30 days",
        requested_by=BOB,
        approved_by=CAROL if approved else None,
        runner="codebuild",
        log_url=LOG_URL,
        started_at=NOW + timedelta(minutes=2),
    )


def run_finished(
    run: str, command: str = "rails-runner", status: str = "succeeded"
) -> BatchRunFinished:
    return run_event(
        BatchRunFinished,
        run,
        command,
        timedelta(minutes=6),
        status=status,
        exit_code={"succeeded": 0, "failed": 1, "timed_out": None, "cancelled": 143}[status],
        duration_seconds=252.0,
        log_tail=(
            "I, [2025-03-12T07:09:58] INFO -- : Expiring sessions older than 2025-02-10",
            "I, [2025-03-12T07:10:31] INFO -- : batch 1/3: 10000 sessions expired",
            "I, [2025-03-12T07:11:02] INFO -- : batch 2/3: 10000 sessions expired",
            "I, [2025-03-12T07:11:20] INFO -- : batch 3/3: 4211 sessions expired",
            "I, [2025-03-12T07:11:21] INFO -- : done: 24211 sessions expired",
        ),
        log_url=LOG_URL,
        cancelled_by=ALICE if status == "cancelled" else None,
        error="Process exited with status 1" if status == "failed" else None,
    )


def run_refused(run: str, command: str = "db-backfill") -> BatchRunRefused:
    return run_event(
        BatchRunRefused,
        run,
        command,
        timedelta(minutes=10),
        requested_by=ALICE,
        stage="approval",
        reason="Run it after the 09:00 deploy freeze ends",
        decided_by=CAROL,
    )
