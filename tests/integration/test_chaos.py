"""``make chaos`` at its reduced size: every service in its own process, nothing lost or twice.

Four small scenarios of :mod:`toilkit.chaos`: the notifier, the detector (real Terraform
plans) and the batch service (local runs) SIGKILLed under load, and Slack's faults (429
with Retry-After, 5xx, late answers beyond the client timeout, dropped connections).
``make chaos`` runs them all at full size. For batch, "duplicated" also counts a command
started twice for one run and a run's process left running after the scenario.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from toilkit.chaos.scenarios import Size, run_scenario

pytestmark = pytest.mark.heavy


@pytest.mark.parametrize(
    "scenario",
    [
        "SIGKILL notifier under load",
        "SIGKILL detector under load",
        "SIGKILL batch under load",
        "Slack faults",
    ],
)
async def test_reduced_chaos_scenario_loses_nothing_and_posts_nothing_twice(
    scenario: str, tmp_path: Path
) -> None:
    result = await run_scenario(scenario, Size(full=False), tmp_path)

    assert (result.lost, result.duplicated) == (0, 0), result.note
    assert result.events > 0
    for group in result.groups:  # every process group it started is gone
        with pytest.raises(ProcessLookupError):
            os.killpg(group, 0)
