"""A batch service SIGKILLed during a local run: the run dies with it, never half.

``toilkit serve batch`` runs in its own process against moto over HTTP and starts a
``concurrency: 1`` command that prints nothing (so no broken pipe ends it). The service is
SIGKILLed: the command's process group runs on as an orphan, holding the command's slot.
The next batch service must stop that group before it frees the slot, and never start a
second run beside it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.batch.runners.local_orphans import GroupRef, members
from shared.aws import AwsClients
from shared.topology import BootstrapReport, Names
from tests.integration.batch_harness import BatchHarness, make_harness
from tests.support import REPO, eventually, spawn_module

QUIET_SLEEPER: dict[str, Any] = {
    "name": "quiet-sleeper",
    "description": "Sleeps without a word, one run at a time.",
    "argv": ["python3", "-c", "import time; time.sleep(120)"],
    "timeout_seconds": 300,
    "concurrency": 1,
}


def with_quiet_sleeper(data: dict[str, Any]) -> None:
    staging = next(c for c in data["commands"] if c["name"] == "stubborn")["environments"]
    data["commands"].append({**QUIET_SLEEPER, "environments": staging})


@pytest.fixture
async def batch(
    aws: AwsClients, names: Names, topology: BootstrapReport, tmp_path: Path
) -> BatchHarness:
    return await make_harness(aws, names, topology, tmp_path, customize=with_quiet_sleeper)


@pytest.fixture
def serve_batch(
    moto_endpoint: str, names: Names, tmp_path: Path
) -> Iterator[subprocess.Popen[str]]:
    """``toilkit serve batch`` on the test's topology and the harness's catalog."""
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": moto_endpoint,
        "TOILKIT_NAME_PREFIX": names.prefix,
        "TOILKIT_BUCKET": names.bucket,
        "TOILKIT_BATCH_CATALOG_PATH": str(tmp_path / "catalog.yaml"),
        "TOILKIT_BATCH_LOG_DIR": str(tmp_path / "served-logs"),
        "TOILKIT_BATCH_WORKER__WAIT_TIME_SECONDS": "1",
        "TOILKIT_BATCH_WORKER__VISIBILITY_TIMEOUT": "5",
        "TOILKIT_BATCH_WORKER__HANDLER_TIMEOUT": "20",
        "PYTHONPATH": str(REPO),
    }
    process = spawn_module("toilkit", env, "serve", "batch", capture=False)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


async def handled(batch: BatchHarness, run_id: str) -> Any:
    """The run's record once this service handled its request (the killed service's last
    long poll may have taken the message: it comes back after its visibility timeout)."""

    async def record() -> Any:
        await batch.handle_queue()
        return await batch.runs.get(run_id)

    return await eventually(record, timeout=30)


async def test_a_run_of_a_killed_batch_service_is_stopped_before_its_slot_is_freed(
    batch: BatchHarness, serve_batch: subprocess.Popen[str]
) -> None:
    # GIVEN the served batch service runs a quiet concurrency-1 command
    first = await batch.request("quiet-sleeper")

    async def running() -> Any:
        record = await batch.runs.get(first.run_id)
        return record if record is not None and record.status == "running" else None

    record = await eventually(running, timeout=60)
    group = GroupRef.parse(record.runner_ref)
    assert group is not None and group.service_pid == serve_batch.pid
    assert members(group.pgid)

    # WHEN the service is SIGKILLed mid-run, its run goes on as an orphan
    os.kill(serve_batch.pid, signal.SIGKILL)
    serve_batch.wait(timeout=10)
    assert members(group.pgid), "the run should outlive the killed service (that's the fault)"
    try:
        # ... and a second request while it runs is refused: its slot is still held
        second = await batch.request("quiet-sleeper")
        assert (await handled(batch, second.run_id)).status == "refused"

        # THEN the next service stops the orphan, and only then frees the slot
        await batch.service.supervisor.resume()
        assert members(group.pgid) == []
        settled = await batch.runs.get(first.run_id)
        assert settled.status == "failed"
        assert "was still running and was stopped" in (settled.error or "")
        assert first.run_id not in await batch.runs.active_run_ids()

        third = await batch.request("quiet-sleeper")
        assert (await handled(batch, third.run_id)).status == "running"
    finally:
        await batch.service.supervisor.stop()
        for pgid in {group.pgid, *members(group.pgid)}:
            if members(pgid):
                os.killpg(pgid, signal.SIGKILL)
