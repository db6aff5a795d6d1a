"""The batch service with the local runner, end to end over SNS/SQS on moto: a request
published to the topic, the real worker, real subprocesses, outcome events on the
notifier's queue, the run record and its audit trail in DynamoDB."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.aws import AwsClients
from shared.events import BatchRunFinished, BatchRunStarted
from shared.topology import BootstrapReport, Names
from tests.integration.batch_harness import BatchHarness, make_harness


@pytest.fixture
async def batch(
    aws: AwsClients, names: Names, topology: BootstrapReport, tmp_path: Path
) -> BatchHarness:
    return await make_harness(aws, names, topology, tmp_path)


async def test_a_backfill_runs_and_reports_started_then_finished(batch: BatchHarness) -> None:
    request = await batch.request("backfill-orders", since="2024-06-01", batch_size="400")
    await batch.drain()

    events = await batch.outcomes(request.run_id)
    assert [e.type for e in events] == ["BatchRunStarted", "BatchRunFinished"]  # type: ignore[attr-defined]
    started, finished = events
    assert isinstance(started, BatchRunStarted) and isinstance(finished, BatchRunFinished)
    assert started.runner == "local"
    assert started.log_url and started.log_url.startswith("file://")
    assert finished.status == "succeeded"
    assert finished.exit_code == 0
    assert finished.duration_seconds > 0
    assert finished.log_url == started.log_url
    assert any(line.startswith("backfilled ") for line in finished.log_tail)
    assert "batch 1: 400 rows" in batch.log_of(request.run_id)
