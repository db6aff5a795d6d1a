"""The scanner on real Terraform: bounded concurrency, isolation of failures, cancellation."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from services.detector.config import StateConfig
from services.detector.scan import EXIT_DRIFTED, EXIT_FAILED, Scanner, StateScan
from tests.support import eventually
from tests.terraform.testbed import Testbed, apply, build_testbed, drifted_copies


@pytest.fixture(scope="module")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Testbed:
    return build_testbed(tmp_path_factory.mktemp("scan-testbed"))


class Recorder:
    """Records how many states run at once, through the scanner's progress hooks."""

    def __init__(self) -> None:
        self.running: set[str] = set()
        self.most_at_once = 0
        self.finished: list[StateScan] = []

    def state_started(self, state: StateConfig) -> None:
        self.running.add(state.name)
        self.most_at_once = max(self.most_at_once, len(self.running))

    def state_finished(self, scan: StateScan) -> None:
        self.running.discard(scan.state.name)
        self.finished.append(scan)


@pytest.mark.heavy
async def test_many_states_run_at_most_concurrency_at_once_and_failures_stay_local(
    testbed: Testbed, tmp_path: Path
) -> None:
    count = 12 if os.environ.get("TOILKIT_FULL_SIZE") == "1" else 5
    cloud, states = drifted_copies(testbed, tmp_path, count)
    # One state whose directory is gone and one whose configuration is broken.
    missing = StateConfig(name="missing", path="missing", directory=tmp_path / "missing")
    broken_dir = testbed.copy_module("broken", tmp_path)
    broken = StateConfig(name="broken", path="broken", directory=broken_dir)
    engine = testbed.engine(cloud)
    scanner = Scanner(engine, concurrency=3, work_dir=tmp_path / "work")
    recorder = Recorder()

    report = await scanner.scan([*states, missing, broken], scan_id="many", progress=recorder)

    assert recorder.most_at_once == 3
    assert [s.state.name for s in report.states] == [s.name for s in [*states, missing, broken]]
    assert len(recorder.finished) == count + 2
    assert [s.status for s in report.states[:count]] == ["drifted"] * count
    by_name = {s.state.name: s for s in report.states}
    assert by_name["missing"].failure is not None
    assert by_name["missing"].failure.phase == "discover"
    assert "does not exist" in by_name["missing"].failure.reason
    assert by_name["broken"].failure is not None
    assert by_name["broken"].failure.phase in ("init", "plan")
    assert report.exit_code == EXIT_FAILED
    assert all(s.summary is not None and s.summary.drifted for s in report.states[:count])
    # The saved plans (secrets in clear) are gone with the scan.
    assert not (tmp_path / "work" / "many").exists()


async def test_cancelling_a_scan_stops_every_running_state_and_cleans_up(
    testbed: Testbed, tmp_path: Path
) -> None:
    cloud, states = drifted_copies(testbed, tmp_path, 3)
    # Every read takes ten minutes: the scan is cancelled long before any plan ends.
    engine = testbed.engine(cloud, latency_ms=600_000, timeout=900, kill_grace=1.0)
    scanner = Scanner(engine, concurrency=2, work_dir=tmp_path / "work")
    recorder = Recorder()

    scanning = asyncio.create_task(scanner.scan(states, scan_id="cancelled", progress=recorder))

    async def two_running() -> bool:
        return len(recorder.running) == 2 and (tmp_path / "work" / "cancelled").exists()

    await eventually(two_running)
    scanning.cancel()

    with pytest.raises(asyncio.CancelledError):
        await scanning
    assert recorder.finished == []
    assert not (tmp_path / "work" / "cancelled").exists()


async def test_a_clean_and_a_drifted_state_exit_2(testbed: Testbed, tmp_path: Path) -> None:
    cloud, (drifted,) = drifted_copies(testbed, tmp_path, 1)
    clean_dir = testbed.copy_module("clean", tmp_path)
    apply(clean_dir, testbed.environment(cloud))
    clean = StateConfig(name="clean", path="clean", directory=clean_dir)
    engine = testbed.engine(cloud, timeout=900)

    report = await Scanner(engine, concurrency=2, work_dir=tmp_path / "w").scan(
        [clean, drifted], scan_id="s", mode="refresh_only"
    )

    assert [s.status for s in report.states] == ["clean", "drifted"]
    assert {s.mode for s in report.states} == {"refresh_only"}
    assert report.states[1].summary is not None
    assert {f.kind for f in report.states[1].summary.findings} == {"drift"}
    assert report.exit_code == EXIT_DRIFTED
    assert report.states[0].phase_seconds.keys() >= {"init", "plan", "show"}
