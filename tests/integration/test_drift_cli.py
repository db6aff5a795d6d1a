"""The ``toilkit drift`` contract other tools rely on: options, JSON shape, exit codes.

``scan`` runs as a real process (real exit codes, stdout holding nothing but the JSON
document) over a repository applied once per module with the Python provider; ``parse``
runs in-process through typer's CliRunner.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from shared.aws import AwsClients
from shared.events import DriftDetected, DriftScanCompleted, parse_event
from shared.topology import BootstrapReport, Names
from tests.support import receive_all
from tests.terraform.testbed import Testbed, apply, build_testbed, edit_cloud
from toilkit.drift_cli import drift_app

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "plans"
FINDING_KEYS = {"address", "kind", "actions", "attributes", "ignored"}


@dataclass(frozen=True)
class Repo:
    root: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """clean (applied, unchanged), drifting (applied, then edited), broken (never inits)."""
    base = tmp_path_factory.mktemp("drift-cli")
    testbed: Testbed = build_testbed(base / "testbed")
    root = base / "infra"
    root.mkdir()
    cloud = base / "cloud.json"
    env = testbed.environment(cloud)
    for module in ("clean", "drifting", "broken"):
        path = testbed.copy_module(module, root).rename(root / module)
        if module == "clean":
            # No provider, so no lock file: discovery knows it by its backend block.
            (path / "backend.tf").write_text('terraform {\n  backend "local" {}\n}\n')
        if module != "broken":
            apply(path, env)

    def retag(bucket: dict[str, Any]) -> None:
        bucket["tags"]["env"] = "staging"

    edit_cloud(cloud, "cloud_bucket", "logs", retag)
    (root / "toilkit.yaml").write_text(
        "states:\n"
        "  - {name: clean, path: clean}\n"
        "  - {name: drifting, path: drifting}\n"
        "  - {name: broken, path: broken}\n"
    )
    env.update(
        COLUMNS="200",
        TOILKIT_DETECTOR_PLUGIN_CACHE_DIR=str(testbed.plugin_cache_dir),
        TOILKIT_DETECTOR_WORK_DIR=str(base / "work"),
    )
    return Repo(root=root, env=env)


def drift(*args: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "toilkit", "drift", *args],
        check=False,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {state["name"]: state for state in document["states"]}


# --------------------------------------------------------------------------- scan


def test_drift_exits_2_and_prints_the_json_contract(repo: Repo) -> None:
    config = str(repo.root / "toilkit.yaml")

    result = drift(
        "scan", "--config", config, "--state", "clean", "--state", "drifting",
        "--format", "json", "--no-publish", env=repo.env,
    )  # fmt: skip

    assert result.returncode == 2, result.stderr
    document = json.loads(result.stdout)  # stdout holds the document and nothing else
    assert set(document) == {"states"}
    states = by_name(document)
    assert set(states) == {"clean", "drifting"}
    assert {k: states["clean"][k] for k in ("path", "status", "error", "findings")} == {
        "path": "clean",
        "status": "clean",
        "error": None,
        "findings": [],
    }
    drifting = states["drifting"]
    assert (drifting["path"], drifting["status"], drifting["error"]) == (
        "drifting",
        "drifted",
        None,
    )
    findings = {(f["address"], f["kind"]): f for f in drifting["findings"]}
    # The plan's revert of the drift is part of the drift, not code to apply.
    assert set(findings) == {("cloud_bucket.logs", "drift")}
    for finding in drifting["findings"]:
        assert set(finding) >= FINDING_KEYS
        assert finding["actions"] == ["update"]
        assert finding["ignored"] is False
    drift_finding = findings[("cloud_bucket.logs", "drift")]
    assert drift_finding["revert"] == {"actions": ["update"], "action_reason": None}
    assert {k: drift_finding[k] for k in ("deposed", "previous_address", "importing")} == {
        "deposed": None,
        "previous_address": None,
        "importing": None,
    }
    assert [
        {k: a[k] for k in ("path", "before", "after", "reverted", "forces_replacement")}
        for a in drift_finding["attributes"]
    ] == [
        {
            "path": "tags.env",
            "before": "prod",
            "after": "staging",
            "reverted": True,
            "forces_replacement": False,
        }
    ]
    assert "drifted drifting" in result.stderr


def test_all_clean_exits_0_with_a_table(repo: Repo) -> None:
    result = drift(
        "scan", "--config", str(repo.root / "toilkit.yaml"), "--state", "clean", "--no-publish",
        env=repo.env,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "Terraform drift" in result.stdout
    assert "1 state(s)" in result.stderr and "1 clean, 0 drifted, 0 failed" in result.stderr


def test_a_failed_state_exits_1_even_next_to_drift(repo: Repo) -> None:
    result = drift(
        "scan", "--config", str(repo.root / "toilkit.yaml"), "--state", "broken",
        "--state", "drifting", "--state", "no-such-state", "--format", "json", "--no-publish",
        env=repo.env,
    )  # fmt: skip

    assert result.returncode == 1, result.stderr
    states = by_name(json.loads(result.stdout))
    assert states["drifting"]["status"] == "drifted"
    assert states["broken"]["status"] == "failed"
    assert states["broken"]["error"].startswith("terraform ")
    assert states["broken"]["findings"] == []
    assert states["no-such-state"]["status"] == "failed"
    assert states["no-such-state"]["error"] == "no state named 'no-such-state'"


def test_a_repository_is_scanned_by_discovery_and_refresh_only_sees_only_drift(
    repo: Repo,
) -> None:
    result = drift(
        "scan", "--repo", str(repo.root), "--refresh-only", "--concurrency", "2",
        "--format", "json", "--no-publish", "--verbose", env=repo.env,
    )  # fmt: skip

    assert result.returncode == 2, result.stderr
    states = by_name(json.loads(result.stdout))
    # clean by its backend block, drifting by its lock file; broken never initialised:
    # no lock file, no backend block it could parse, so not a root module
    assert set(states) == {"clean", "drifting"}
    assert "skipped broken" in result.stderr
    assert {f["kind"] for f in states["drifting"]["findings"]} == {"drift"}


def test_a_repository_without_states_is_an_error_not_a_clean_bill(tmp_path: Path) -> None:
    result = drift("scan", "--repo", str(tmp_path), "--no-publish", env={})

    assert result.returncode == 1
    assert "no Terraform states to scan" in result.stderr


def test_a_bad_config_file_exits_1_naming_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "toilkit.yaml"
    bad.write_text("states:\n  - path: a\n    schedule: 'every morning'\n")

    result = drift("scan", "--config", str(bad), "--no-publish", env={})

    assert result.returncode == 1
    assert "states.0.schedule" in result.stderr
    assert "Traceback" not in result.stderr


async def test_a_published_scan_reaches_the_notifier_and_the_report_counts_it(
    repo: Repo,
    aws: AwsClients,
    names: Names,
    topology: BootstrapReport,
    moto_endpoint: str,
    tmp_path: Path,
) -> None:
    env = {**repo.env, "AWS_ENDPOINT_URL": moto_endpoint, "TOILKIT_NAME_PREFIX": names.prefix}

    scanned = await asyncio.to_thread(
        drift, "scan", "--config", str(repo.root / "toilkit.yaml"), "--state", "drifting",
        "--state", "clean", env=env,
    )  # fmt: skip

    assert scanned.returncode == 2, scanned.stderr
    assert "events published" in scanned.stderr
    messages = await receive_all(aws.sqs, topology.queue_urls["notifier"], rounds=10)
    events = [parse_event(m["Body"]) for m in messages]
    assert sorted(type(e).__name__ for e in events) == ["DriftDetected", "DriftScanCompleted"]
    detected = next(e for e in events if isinstance(e, DriftDetected))
    digest = next(e for e in events if isinstance(e, DriftScanCompleted))
    assert detected.source == digest.source == "cli"
    assert detected.correlation_id == digest.correlation_id
    assert detected.findings_total == 1  # the bucket's drift, its revert included

    chart = tmp_path / "drift.svg"
    reported = await asyncio.to_thread(
        drift, "report", "--since", "30d", "--chart", str(chart), "--format", "json", env=env
    )

    assert reported.returncode == 0, reported.stderr
    document = json.loads(reported.stdout)
    assert (document["drifts"], document["still_open"], document["resolved"]) == (1, 1, 0)
    assert [s["state"] for s in document["per_state"]] == ["drifting"]
    assert sum(day["drifts"] for day in document["per_day"]) == 1
    assert chart.read_text().startswith("<svg")

    table = await asyncio.to_thread(drift, "report", "--since", "1w", env=env)
    assert table.returncode == 0, table.stderr
    assert "1 drift(s)" in table.stdout
    assert "drifting" in table.stdout


def test_a_bad_report_span_exits_1() -> None:
    result = CliRunner().invoke(drift_app, ["report", "--since", "a month"])

    assert result.exit_code == 1
    assert "30d, 12h or 2w" in result.output


# --------------------------------------------------------------------------- parse


def test_parse_reports_a_plan_brought_by_the_user() -> None:
    result = CliRunner().invoke(
        drift_app, ["parse", str(FIXTURES / "opentofu-show-json-drift.json"), "--format", "json"]
    )

    assert result.exit_code == 2, result.output
    (state,) = json.loads(result.stdout)["states"]
    assert (state["name"], state["status"], state["error"]) == (
        "opentofu-show-json-drift",
        "drifted",
        None,
    )
    assert {(f["address"], f["kind"]) for f in state["findings"]} == {
        ("test_instance.should_refresh", "drift"),
        ("test_instance.no_refresh", "pending"),
        ("test_instance.should_refresh", "pending"),
    }


def test_parse_applies_the_ignore_rules_of_a_config(tmp_path: Path) -> None:
    config = tmp_path / "toilkit.yaml"
    config.write_text(
        "ignore:\n  - {state: '*', address: 'test_instance.*', reason: 'test fixtures'}\n"
    )

    result = CliRunner().invoke(
        drift_app,
        [
            "parse",
            str(FIXTURES / "opentofu-show-json-drift.json"),
            "--config",
            str(config),
            "--state",
            "prod",
            "--format",
            "json",
        ],
    )

    assert result.exit_code == 0, result.output  # everything ignored: clean
    (state,) = json.loads(result.stdout)["states"]
    assert state["name"] == "prod"
    assert state["findings"] and all(f["ignored"] for f in state["findings"])


def test_parse_of_a_plan_without_changes_exits_0(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "format_version": "1.2",
                "resource_changes": [
                    {
                        "address": "terraform_data.x",
                        "mode": "managed",
                        "type": "terraform_data",
                        "name": "x",
                        "change": {"actions": ["no-op"], "before": {}, "after": {}},
                    }
                ],
            }
        )
    )

    result = CliRunner().invoke(drift_app, ["parse", str(plan)])

    assert result.exit_code == 0, result.output
    assert "Terraform drift" in result.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [("not json", "plan is not valid JSON"), ('{"values": {}}', "state JSON")],
)
def test_parse_of_something_that_is_no_plan_exits_1(
    tmp_path: Path, content: str, message: str
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(content)

    as_table = CliRunner().invoke(drift_app, ["parse", str(plan)])
    as_json = CliRunner().invoke(drift_app, ["parse", str(plan), "--format", "json"])

    assert as_table.exit_code == as_json.exit_code == 1
    assert message in as_table.output
    (state,) = json.loads(as_json.stdout)["states"]
    assert state["status"] == "failed" and message in state["error"]


def test_parse_of_a_missing_file_exits_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(drift_app, ["parse", str(tmp_path / "nope.json")])

    assert result.exit_code == 1
    assert "cannot read" in result.output
