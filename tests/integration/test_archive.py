"""The event archive: every published event kept in S3, a time window republished in order."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.errors import PermanentError
from shared.events import Actor, BatchRequested, BatchRunFinished, DriftScanCompleted, RunParameter
from shared.runtime import open_runtime
from shared.settings import AwsSettings, TopologySettings
from shared.topology import BootstrapReport, Names
from tests.support import batch_requested, receive_all
from toilkit.archive import hour_prefixes, parse_since, replay_archive

T0 = datetime(2026, 11, 20, 6, 30, tzinfo=UTC)


def ana_requests(command: str, **fields: Any) -> BatchRequested:
    """Ana's request (through the gateway, at ``T0``) for run ``r`` of ``command`` in prod."""
    return batch_requested(
        command,
        "prod",
        by=Actor(name="ana"),
        run_id="r",
        source="gateway",
        occurred_at=T0,
        **fields,
    )


def finished(run: str, at: datetime) -> BatchRunFinished:
    return BatchRunFinished(
        correlation_id=run,
        source="batch",
        run_id=run,
        command="backfill",
        environment="prod",
        status="succeeded",
        exit_code=0,
        duration_seconds=3,
        occurred_at=at,
    )


def digest(at: datetime) -> DriftScanCompleted:
    return DriftScanCompleted(
        correlation_id="scan-1",
        source="detector",
        states=(),
        findings_open=0,
        findings_new=0,
        findings_resolved=0,
        duration_seconds=9,
        occurred_at=at,
    )


async def test_a_window_is_republished_in_order_keeping_ids_unless_fresh(
    aws_settings: AwsSettings, topology: BootstrapReport, names: Names
) -> None:
    async with open_runtime(aws_settings, TopologySettings(name_prefix=names.prefix)) as rt:
        late, early, outside = (
            finished("run-2", T0 + timedelta(hours=2)),
            finished("run-1", T0),
            digest(T0 - timedelta(days=2)),
        )
        for event in (late, early, outside, digest(T0 + timedelta(hours=1))):
            await rt.publisher.publish(event)
        queue = topology.queue_urls["notifier"]
        await receive_all(rt.aws.sqs, queue)  # the first delivery, consumed

        report = await replay_archive(
            rt,
            since=T0 - timedelta(minutes=1),
            until=T0 + timedelta(hours=3),
            types=frozenset({"BatchRunFinished"}),
        )
        assert (report.matched, report.published) == (2, 2)
        again = [json.loads(m["Body"]) for m in await receive_all(rt.aws.sqs, queue)]
        assert [e["event_id"] for e in sorted(again, key=lambda e: e["occurred_at"])] == [
            early.event_id,
            late.event_id,
        ]

        fresh = await replay_archive(
            rt, since=T0 - timedelta(minutes=1), until=T0 + timedelta(minutes=1), fresh=True
        )
        assert fresh.published == 1
        (copy,) = [json.loads(m["Body"]) for m in await receive_all(rt.aws.sqs, queue)]
        assert copy["run_id"] == "run-1" and copy["event_id"] != early.event_id


async def test_fresh_ids_are_refused_for_commands_and_unknown_types_named(
    aws_settings: AwsSettings, topology: BootstrapReport, names: Names
) -> None:
    async with open_runtime(aws_settings, TopologySettings(name_prefix=names.prefix)) as rt:
        await rt.publisher.publish(ana_requests("backfill"))
        window = {"since": T0 - timedelta(hours=1), "until": T0 + timedelta(hours=1)}
        with pytest.raises(PermanentError, match="would run these commands again: BatchRequested"):
            await replay_archive(rt, fresh=True, **window)
        with pytest.raises(PermanentError, match="unknown event type"):
            await replay_archive(rt, types=frozenset({"Nope"}), **window)
        dry = await replay_archive(rt, dry_run=True, **window)
        assert (dry.matched, dry.published) == (1, 0)


def test_window_prefixes_and_times() -> None:
    assert hour_prefixes(T0, T0 + timedelta(hours=1, minutes=10)) == [
        "archive/2026/11/20/06/",
        "archive/2026/11/20/07/",
    ]
    assert parse_since("30d", T0) == T0 - timedelta(days=30)
    assert parse_since("2026-11-01T07:00", T0) == datetime(2026, 11, 1, 7, tzinfo=UTC)
    with pytest.raises(PermanentError, match=r"use e\.g\. 30d"):
        parse_since("yesterday", T0)


async def test_sensitive_parameter_values_never_reach_the_archive(
    aws_settings: AwsSettings, topology: BootstrapReport, names: Names
) -> None:
    async with open_runtime(aws_settings, TopologySettings(name_prefix=names.prefix)) as rt:
        request = ana_requests(
            "reindex",
            parameters=(
                RunParameter(name="api_key", value="hunter2-secret", sensitive=True),
                RunParameter(name="steps", value="3"),
            ),
        )
        await rt.publisher.publish(request)

        window = {"since": T0 - timedelta(hours=1), "until": T0 + timedelta(hours=1)}
        listed = await rt.aws.s3.list_objects_v2(Bucket=names.bucket, Prefix="archive/")
        stored = [
            await (await rt.aws.s3.get_object(Bucket=names.bucket, Key=o["Key"]))["Body"].read()
            for o in listed["Contents"]
        ]
        assert b"hunter2-secret" not in b"".join(stored)
        dry = await replay_archive(rt, dry_run=True, **window)
        assert dry.matched == 1
        # The live message still carries the value the runner needs.
        (live,) = await receive_all(rt.aws.sqs, topology.queue_urls["batch"])
        assert "hunter2-secret" in live["Body"]
