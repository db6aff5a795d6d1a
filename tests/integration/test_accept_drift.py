"""Accept into code on a real plan: the patch makes Terraform agree, and the branch is pushed.

A state in a git repository (with a bare repository as its ``origin``) is applied, then
changed by hand in the JSON cloud: a tag, a queue's timeout, a lifecycle rule added to a
set of nested blocks, and a rotated secret. The drift findings of a real plan are
accepted; with the patched code, Terraform's next plan wants to change nothing that was
accepted (the secret stays, by design, for a person).
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from services.detector.accept import accept_patch
from services.detector.accept.acceptor import DriftAcceptor
from services.detector.accept.git import GitTarget, PushedBranch, PushRefused, push_patch
from services.detector.accept.patch import FileEdit
from services.detector.config import DetectorConfig, StateConfig
from services.detector.engine import TerraformEngine
from services.detector.plan import PlanFinding, to_event_finding
from services.detector.scan import Scanner, StateScan
from shared.events import Actor, DriftAcceptRequested
from tests.terraform.testbed import SHIM_COMMAND, Testbed, apply, build_testbed, edit_cloud

TODAY = date(2026, 12, 5)


def git(*arguments: str, cwd: Path) -> str:
    done = subprocess.run(["git", *arguments], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


@pytest.fixture(scope="module")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Testbed:
    return build_testbed(tmp_path_factory.mktemp("accept-testbed"))


@pytest.fixture
def repo(testbed: Testbed, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A checkout holding the ``drifting`` state, its bare origin, and the cloud file."""
    origin = tmp_path / "origin.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(origin), cwd=tmp_path)
    checkout = tmp_path / "infra"
    checkout.mkdir()
    module = testbed.copy_module("drifting", checkout)
    (checkout / ".gitignore").write_text(".terraform/\n*.tfstate*\n.terraform.lock.hcl\n")
    git("init", "--quiet", "--initial-branch=main", cwd=checkout)
    git("add", ".", cwd=checkout)
    git(
        "-c",
        "user.name=a",
        "-c",
        "user.email=a@x",
        "commit",
        "--quiet",
        "-m",
        "infra",
        cwd=checkout,
    )
    git("remote", "add", "origin", str(origin), cwd=checkout)
    git("push", "--quiet", "origin", "main", cwd=checkout)
    cloud = tmp_path / "cloud.json"
    apply(module, testbed.environment(cloud))
    return checkout, module, cloud


def scanner(testbed: Testbed, cloud: Path, work: Path) -> Scanner:
    engine = TerraformEngine(
        SHIM_COMMAND,
        plugin_cache_dir=testbed.plugin_cache_dir,
        env=testbed.environment(cloud),
        timeout=120,
    )
    return Scanner(engine, concurrency=1, work_dir=work)


def acceptor_for(testbed: Testbed, repo: tuple[Path, Path, Path], work: Path) -> DriftAcceptor:
    """The detector's acceptor for the ``drifting`` state of ``repo``, on 2026-12-05."""
    checkout, module, cloud = repo
    config = DetectorConfig(
        repo=checkout, states=(StateConfig(name="drifting", path=module.name, directory=module),)
    )
    return DriftAcceptor(
        config=config,
        scanner=scanner(testbed, cloud, work),
        terraform=SHIM_COMMAND,
        source="detector",
        clock=lambda: datetime(2026, 12, 5, 9, tzinfo=UTC),
    )


def accept_request(state: str, *fingerprints: str) -> DriftAcceptRequested:
    alice = Actor(name="alice", slack_user_id="U0ALICE")
    return DriftAcceptRequested(
        correlation_id="c",
        source="gateway",
        state=state,
        fingerprints=fingerprints,
        requested_by=alice,
    )


def push(checkout: Path, edits: Sequence[FileEdit], message: str = "accepted") -> PushedBranch:
    author = "toilkit <toilkit@example.invalid>"
    return asyncio.run(
        push_patch(
            GitTarget(checkout), edits, state="drifting", day=TODAY, message=message, author=author
        )
    )


def scan(testbed: Testbed, module: Path, cloud: Path, work: Path) -> StateScan:
    state = StateConfig(name="drifting", path=module.name, directory=module)
    result = asyncio.run(scanner(testbed, cloud, work).scan([state], scan_id=work.name)).states[0]
    assert result.summary is not None, result.failure
    return result


def drifts(result: StateScan) -> dict[str, PlanFinding]:
    assert result.summary is not None
    return {f.address: f for f in result.summary.findings if f.kind == "drift"}


def change_by_hand(cloud: Path) -> None:
    def bucket(obj: dict[str, Any]) -> None:
        obj["tags"]["env"] = "staging"
        obj["lifecycle_rule"].append({"expiration_days": 30, "prefix": "logs/"})

    def queue(obj: dict[str, Any]) -> None:
        obj["visibility_timeout"] = 90
        obj["secret"] = "rotated-by-hand"

    edit_cloud(cloud, "cloud_bucket", "logs", bucket)
    edit_cloud(cloud, "cloud_queue", "jobs", queue)


def drifted_by_hand(
    testbed: Testbed, repo: tuple[Path, Path, Path], work: Path
) -> dict[str, PlanFinding]:
    """The bucket and the queue of ``repo`` changed by hand, then scanned: the drifts."""
    _, module, cloud = repo
    change_by_hand(cloud)
    return drifts(scan(testbed, module, cloud, work))


def test_accepted_drift_makes_the_next_plan_agree_and_lands_on_a_branch(
    testbed: Testbed, repo: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    checkout, module, cloud = repo
    found = drifted_by_hand(testbed, repo, tmp_path / "scan-1")
    assert set(found) == {"cloud_bucket.logs", "cloud_queue.jobs"}

    # WHEN each drift is accepted and the edits written
    patches = []
    for address, finding in sorted(found.items()):
        event = to_event_finding(finding, first_seen=datetime.now(UTC))
        patch = accept_patch(module, address, event.attributes, root=checkout)
        patches.append(patch)
        for edit in patch.edits:
            edit.path.write_text(edit.after)

    # THEN everything but the secret was written, and Terraform now wants no change to it
    bucket, queue = patches
    assert (bucket.changed, bucket.skipped) == (("lifecycle_rule", "tags.env"), ())
    assert queue.changed == ("visibility_timeout",)
    assert [s.path for s in queue.skipped] == ["secret"]
    after = scan(testbed, module, cloud, tmp_path / "scan-2")
    assert after.summary is not None
    again = drifts(after)
    assert again["cloud_bucket.logs"].revert is None  # apply would put nothing back
    queue_revert = {a.path for a in again["cloud_queue.jobs"].attributes if a.reverted}
    assert queue_revert == {"secret"}  # the only thing left to a person
    # The state still records the old values until the next apply: the drift stays
    # listed, but apply would write nothing accepted (only the secret goes back).
    pending = [a.path for f in after.summary.findings if f.kind == "pending" for a in f.attributes]
    assert pending == []

    # AND the edit is pushed as a branch of origin, off the checkout's HEAD
    pushed = push(checkout, bucket.edits, "Accept drift of cloud_bucket.logs")
    assert pushed.branch == "toilkit/drift/drifting/2026-12-05"
    origin = checkout.parent / "origin.git"
    assert git("rev-parse", pushed.branch, cwd=origin).strip() == pushed.commit
    shown = git("show", "--stat", "--format=%an|%s", pushed.commit, cwd=origin)
    assert shown.startswith("toilkit|Accept drift of cloud_bucket.logs")
    assert f"{module.name}/main.tf" in shown
    assert git("rev-parse", "main", cwd=origin) == git("rev-parse", "HEAD~0", cwd=checkout)
    assert pushed.compare_url is None  # a local remote has no compare page

    # AND a second accept the same day gets its own branch; the first is untouched
    second = push(checkout, queue.edits)
    assert second.branch == "toilkit/drift/drifting/2026-12-05-2"
    assert git("rev-parse", pushed.branch, cwd=origin).strip() == pushed.commit


def test_a_remote_that_refuses_the_push_is_a_clear_error(
    testbed: Testbed, repo: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    checkout, module, _ = repo
    hook = checkout.parent / "origin.git" / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'branches under toilkit/ need a ticket' >&2\nexit 1\n")
    hook.chmod(0o755)
    finding = drifted_by_hand(testbed, repo, tmp_path / "scan")["cloud_bucket.logs"]
    event = to_event_finding(finding, first_seen=datetime.now(UTC))
    patch = accept_patch(module, finding.address, event.attributes, root=checkout)

    with pytest.raises(
        PushRefused, match=r"git push failed: .*branches under toilkit/ need a ticket"
    ):
        push(checkout, patch.edits)
    assert git("branch", "--list", "toilkit/*", cwd=checkout) == ""  # the checkout is untouched


def test_the_detector_accepts_from_a_fresh_plan_formats_and_pushes(
    testbed: Testbed, repo: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    checkout = repo[0]
    found = drifted_by_hand(testbed, repo, tmp_path / "scan")
    acceptor = acceptor_for(testbed, repo, tmp_path / "work")
    request = accept_request("drifting", found["cloud_bucket.logs"].fingerprint, "0000000000000000")

    outcome = asyncio.run(acceptor.accept(request))

    assert outcome.problem is None, outcome.problem
    carried = ("correlation_id", "state", "fingerprints", "requested_by")
    assert [getattr(outcome, f) for f in carried] == [getattr(request, f) for f in carried]
    assert outcome.source == "detector"
    assert outcome.gone == ("0000000000000000",)  # fixed since the report: not patched
    assert [(a.address, a.path) for a in outcome.changed] == [
        ("cloud_bucket.logs", "lifecycle_rule"),
        ("cloud_bucket.logs", "tags.env"),
    ]
    # terraform fmt aligned what the patch wrote
    assert '+    env  = "staging"' in outcome.diff
    assert outcome.branch == "toilkit/drift/drifting/2026-12-05"
    origin = checkout.parent / "origin.git"
    assert git("rev-parse", outcome.branch, cwd=origin).strip() == outcome.commit
    message = git("log", "-1", "--format=%B", outcome.branch, cwd=origin)
    assert "Requested by alice from Slack" in message
    # The same request redelivered has the same outcome event id (the notifier posts once).
    assert outcome.event_id == acceptor._outcome(request).event_id


def test_accepting_a_state_whose_drift_is_gone_patches_nothing(
    testbed: Testbed, repo: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    checkout = repo[0]
    acceptor = acceptor_for(testbed, repo, tmp_path / "w")

    gone = asyncio.run(acceptor.accept(accept_request("drifting", "f" * 16)))
    unknown = asyncio.run(acceptor.accept(accept_request("nope")))

    assert (gone.gone, gone.diff, gone.branch) == (("f" * 16,), "", None)
    assert gone.problem == "the drift is gone: the fresh plan no longer shows it"
    assert unknown.problem == "nope is not in toilkit.yaml any more"
    assert "toilkit/" not in git(
        "ls-remote", "--heads", str(checkout.parent / "origin.git"), cwd=tmp_path
    )
