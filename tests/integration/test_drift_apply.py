"""``toilkit drift apply``: the Revert button's command, on real Terraform and a JSON cloud.

The state is applied, then changed by hand; the command previews (``--plan-only``), puts
the targeted resource back, finds nothing to do the second time, refuses what it must,
and two applies at once never apply twice (Terraform's state lock, then a stale plan).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.terraform.repos import Repo, drift_the_cloud, make_repo
from tests.terraform.testbed import Testbed, build_testbed


@pytest.fixture(scope="module")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Testbed:
    return build_testbed(tmp_path_factory.mktemp("apply-testbed"))


@pytest.fixture
def repo(testbed: Testbed, tmp_path: Path) -> Repo:
    made = make_repo(testbed, tmp_path / "infra", ("drifting",))
    drift_the_cloud(made.cloud)
    return made


def drift_apply(testbed: Testbed, repo: Repo, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "toilkit",
            "drift",
            "apply",
            "--config",
            str(repo.root / "toilkit.yaml"),
            *arguments,
        ],
        env={**testbed.environment(repo.cloud), "TOILKIT_DETECTOR_TERRAFORM": ""},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def cloud_object(repo: Repo, kind: str, name: str) -> dict[str, object]:
    document = json.loads(repo.cloud.read_text())
    (found,) = [obj for obj in document[kind].values() if obj.get("name") == name]
    return dict(found)


def test_preview_prints_the_plan_and_the_run_puts_back_only_the_targets(
    testbed: Testbed, repo: Repo
) -> None:
    preview = drift_apply(
        testbed, repo, "--state", "drifting", "--targets", "cloud_bucket.logs", "--plan-only"
    )

    assert preview.returncode == 0, preview.stdout + preview.stderr
    assert '~ "env"  = "staging" -> "prod"' in preview.stdout
    assert "plan only: nothing applied" in preview.stdout
    assert cloud_object(repo, "cloud_bucket", "logs")["tags"] == {"env": "staging", "team": "sre"}

    applied = drift_apply(testbed, repo, "--state", "drifting", "--target", "cloud_bucket.logs")

    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "applied: drifting is back to what its code says" in applied.stdout
    assert cloud_object(repo, "cloud_bucket", "logs")["tags"] == {"env": "prod", "team": "sre"}
    assert cloud_object(repo, "cloud_queue", "jobs")["secret"] == "rotated-by-hand"  # not a target

    again = drift_apply(testbed, repo, "--state", "drifting", "--target", "cloud_bucket.logs")

    assert again.returncode == 0
    assert "nothing to change: drifting matches its code" in again.stdout


def test_two_applies_at_once_apply_once(testbed: Testbed, repo: Repo) -> None:
    results: list[subprocess.CompletedProcess[str]] = []

    def run() -> None:
        results.append(drift_apply(testbed, repo, "--state", "drifting"))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    applied = [r for r in results if "== applied:" in r.stdout]
    assert len(applied) == 1, [r.stdout[-600:] + r.stderr[-600:] for r in results]
    (other,) = [r for r in results if r is not applied[0]]
    # The other one waited for the lock and found nothing to do, or its plan went stale.
    assert (
        "nothing to change" in other.stdout or "Saved plan is stale" in other.stdout + other.stderr
    )
    assert cloud_object(repo, "cloud_queue", "jobs")["secret"] == "initial-secret"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--state", "nope"), "no state 'nope' (known: drifting)"),
    ],
)
def test_what_cannot_be_applied_is_exit_2_with_the_reason(
    testbed: Testbed, repo: Repo, arguments: tuple[str, ...], message: str
) -> None:
    result = drift_apply(testbed, repo, *arguments)

    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())


def test_a_state_that_assumes_a_role_is_never_applied_with_other_credentials(
    testbed: Testbed, repo: Repo
) -> None:
    config = repo.root / "toilkit.yaml"
    config.write_text(
        config.read_text().replace(
            "    path: drifting\n",
            "    path: drifting\n    assume_role:\n      role_arn: arn:aws:iam::123456789012:role/infra\n",
        )
    )

    result = drift_apply(testbed, repo, "--state", "drifting")

    assert result.returncode == 2
    assert "does not assume roles" in " ".join(result.stderr.split())
    assert cloud_object(repo, "cloud_bucket", "logs")["tags"] == {"env": "staging", "team": "sre"}
