"""``toilkit drift report``'s team figures and ``toilkit drift ignores``, on a seeded history.

The history is written by the detector's own store into moto over HTTP; the CLI runs as
a subprocess against it, as people run it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from services.detector.lifecycle import FindingRecord, LifecycleStore, Reconciliation
from services.detector.team import team_figures, team_lines
from shared.aws import AwsClients
from shared.events import Actor
from shared.state_table.drift_actions import DriftAudit, IgnoreRuleStore, StoredIgnoreRule
from shared.topology import BootstrapReport, Names

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC).replace(microsecond=0)
ALICE = Actor(name="alice", slack_user_id="U0ALICE001")
BOB = Actor(name="bob", slack_user_id="U0BOB00002")


def toilkit(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "toilkit", *args],
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def occurrence(
    fingerprint: str,
    address: str,
    *,
    days_ago: float,
    hours_to_resolve: float,
    claimed_by: Actor | None,
    attributes: tuple[str, ...] = ("tags.env",),
) -> tuple[FindingRecord, datetime]:
    first_seen = NOW - timedelta(days=days_ago)
    record = FindingRecord(
        state="network",
        fingerprint=fingerprint,
        address=address,
        kind="drift",
        resource_type=address.split(".", maxsplit=1)[0],
        first_seen=first_seen,
        last_seen=first_seen,
        first_scan_id=f"scan-{fingerprint}-{days_ago}",
        claimed_by=claimed_by,
        attributes=attributes,
    )
    return record, first_seen + timedelta(hours=hours_to_resolve)


#: alice resolved drifts in 1, 2, 3 and 10 hours; bob in 4 and 6; one nobody claimed.
HISTORY = [
    occurrence("fp-logs", "aws_s3_bucket.logs", days_ago=9, hours_to_resolve=1, claimed_by=ALICE),
    occurrence("fp-logs", "aws_s3_bucket.logs", days_ago=6, hours_to_resolve=2, claimed_by=ALICE),
    occurrence("fp-logs", "aws_s3_bucket.logs", days_ago=3, hours_to_resolve=3, claimed_by=ALICE),
    occurrence("fp-sg", "aws_security_group.web", days_ago=8, hours_to_resolve=10,
               claimed_by=ALICE, attributes=("ingress",)),
    occurrence("fp-db", "aws_db_instance.main", days_ago=7, hours_to_resolve=4, claimed_by=BOB,
               attributes=("instance_class",)),
    occurrence("fp-q", "aws_sqs_queue.jobs", days_ago=5, hours_to_resolve=6, claimed_by=BOB,
               attributes=("visibility_timeout_seconds",)),
    occurrence("fp-iam", "aws_iam_role.ci", days_ago=4, hours_to_resolve=8, claimed_by=None,
               attributes=("max_session_duration",)),
]  # fmt: skip


@pytest.fixture
async def seeded(aws: AwsClients, names: Names, topology: BootstrapReport) -> LifecycleStore:
    store = LifecycleStore(aws.dynamodb, names.state_table)
    await store.record_scan("network", status="clean", scan_id="seed", now=NOW)
    for record, closed_at in HISTORY:
        await store.record(
            Reconciliation("network", resolved=(record,)), scan_id="seed", now=closed_at
        )
    return store


async def test_team_figures_on_a_seeded_history(seeded: LifecycleStore) -> None:
    occurrences = await seeded.occurrences()

    figures = team_figures(occurrences, since=NOW - timedelta(days=30), until=NOW)

    people = {r.person: (r.resolved, r.median, r.p90) for r in figures.resolvers}
    assert people == {
        # median of 1, 2, 3, 10 h is 2.5 h; nearest-rank p90 of four values is the 4th
        "alice": (4, timedelta(hours=2.5), timedelta(hours=10)),
        "bob": (2, timedelta(hours=5), timedelta(hours=6)),
    }
    # the logs bucket was resolved, then came back twice
    assert [(c.address, c.times) for c in figures.came_back] == [("aws_s3_bucket.logs", 2)]
    assert [(n.address, n.attribute, n.drifts) for n in figures.noisiest] == [
        ("aws_s3_bucket.logs", "tags.env", 3)
    ]
    lines = team_lines(figures)
    assert lines.time_to_resolve == (
        "alice 4 (median 2h 30m, p90 10h 0m), bob 2 (median 5h 0m, p90 6h 0m)"
    )


async def test_the_report_shows_the_team_tables_json_and_chart(
    seeded: LifecycleStore, names: Names, moto_endpoint: str, tmp_path: Path
) -> None:
    env = {"AWS_ENDPOINT_URL": moto_endpoint, "TOILKIT_NAME_PREFIX": names.prefix}
    chart = tmp_path / "drift.svg"

    as_json = await asyncio.to_thread(
        toilkit, "drift", "report", "--since", "30d", "--format", "json", "--chart", str(chart),
        env=env,
    )  # fmt: skip
    table = await asyncio.to_thread(toilkit, "drift", "report", "--since", "30d", env=env)

    assert as_json.returncode == 0, as_json.stderr
    team = json.loads(as_json.stdout)["team"]
    assert team["resolvers"][0] == {
        "person": "alice",
        "resolved": 4,
        "median_hours_to_resolve": 2.5,
        "p90_hours_to_resolve": 10.0,
    }
    assert team["came_back"] == [{"state": "network", "address": "aws_s3_bucket.logs", "times": 2}]
    assert team["noisiest"][0]["attribute"] == "tags.env"
    svg = chart.read_text()
    assert "alice: 4 resolved, median 2h 30m, p90 10h 0m" in svg
    assert "came back after being resolved: 2" in svg
    assert table.returncode == 0, table.stderr
    for title in ("per person who claimed", "Came back after being resolved", "Noisiest"):
        assert title in table.stdout


async def test_ignores_are_listed_and_removed_with_who_and_when(
    aws: AwsClients, names: Names, topology: BootstrapReport, moto_endpoint: str
) -> None:
    env = {"AWS_ENDPOINT_URL": moto_endpoint, "TOILKIT_NAME_PREFIX": names.prefix}
    store = IgnoreRuleStore(aws.dynamodb, names.state_table)
    await store.add(
        StoredIgnoreRule(
            rule_id="abc123",
            state="network",
            address="aws_s3_bucket.logs",
            attribute="tags.env",
            reason="tagging job owns it",
            expires=date.today() + timedelta(days=10),
            created_by=ALICE,
            created_at=NOW,
        )
    )

    listed = await asyncio.to_thread(toilkit, "drift", "ignores", "--format", "json", env=env)
    removed = await asyncio.to_thread(
        toilkit, "drift", "ignores", "remove", "abc123", "--as", "bob", env=env
    )
    again = await asyncio.to_thread(toilkit, "drift", "ignores", "remove", "abc123", env=env)
    shown = await asyncio.to_thread(
        toilkit, "drift", "ignores", "--all", env={**env, "COLUMNS": "250"}
    )

    assert listed.returncode == 0, listed.stderr
    [rule] = json.loads(listed.stdout)
    assert (rule["id"], rule["status"], rule["created_by"]) == (
        "abc123",
        "active",
        "alice (U0ALICE001)",
    )
    assert removed.returncode == 0, removed.stderr
    assert "Removed rule abc123" in removed.stdout
    assert again.returncode == 1 and "no ignore rule 'abc123' in force" in again.stderr
    assert "removed by bob" in shown.stdout
    [rule_now] = await store.all()
    assert rule_now.removed_by is not None and rule_now.removed_by.name == "bob"
    [entry] = await DriftAudit(aws.dynamodb, names.state_table).entries()
    assert (entry.action, entry.actor.name) == ("ignore-remove", "bob")
