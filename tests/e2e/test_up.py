"""`toilkit up` as a newcomer runs it: one process, an embedded AWS, every service.

GIVEN `toilkit up` on free ports, WHEN an event is published to its SNS topic with a plain
boto3 client (what `aws sns publish` does), THEN the detector consumes it and the notifier
the scan digest it publishes, and Ctrl-C (SIGINT) stops everything cleanly.

And with no detector configuration of one's own, `toilkit up` prepares its demo: the
Slack stand-in's page shows the demo's drift, and `toilkit demo fix` resolves it there.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import requests

from tests.browser import chromium, chromium_executable

REPOSITORY = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check, timeout: float = 90, every: float = 0.5):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"not met within {timeout}s")


#: Variables that would point `toilkit up` at something other than what it starts itself.
FOREIGN_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "SLACK_BOT_TOKEN",
    "TOILKIT_NOTIFIER_SLACK_API_URL",
    "TOILKIT_DETECTOR_CONFIG",
    "TOILKIT_DETECTOR_REPO",
    "TF_CLI_CONFIG_FILE",
)


def up_environment() -> dict[str, str]:
    env = {
        **os.environ,
        "COLUMNS": "200",
        "TOILKIT_GATEWAY_PORT": "0",
        "TOILKIT_NAME_PREFIX": "toilkit",
    }
    for name in FOREIGN_VARIABLES:
        env.pop(name, None)
    return env


def start_up(
    log_file: Path,
    aws_port: int,
    slack_port: int,
    *options: str,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """`toilkit up` in a child process, from the repository root as `make up` runs it."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "toilkit",
            "up",
            "--aws-port",
            str(aws_port),
            "--slack-port",
            str(slack_port),
            *options,
        ],
        env=env or up_environment(),
        stdout=log_file.open("w+"),
        stderr=subprocess.STDOUT,
        cwd=REPOSITORY,
    )


def stop(process: subprocess.Popen[bytes], log_file: Path) -> str:
    """Ctrl-C, as a person would; the log once it has stopped."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(90)
    finally:
        process.kill()
    return log_file.read_text()


def test_up_consumes_a_published_event_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    aws_port, slack_port = free_port(), free_port()
    process = start_up(tmp_path / "up.log", aws_port, slack_port, "--no-demo")
    try:
        wait_for(lambda: "Press Ctrl-C to stop" in (tmp_path / "up.log").read_text())
        output = (tmp_path / "up.log").read_text()
        assert f"embedded AWS (moto) listening on http://127.0.0.1:{aws_port}" in output
        assert f"http://127.0.0.1:{slack_port}/" in output
        for service in ("detector", "batch", "notifier", "gateway"):
            assert service in output

        sns = boto3.client(
            "sns",
            endpoint_url=f"http://127.0.0.1:{aws_port}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        topic = next(
            t["TopicArn"]
            for t in sns.list_topics()["Topics"]
            if t["TopicArn"].endswith(":toilkit-events")
        )
        sns.publish(
            TopicArn=topic,
            Message=json.dumps(
                {"type": "DriftScanRequested", "correlation_id": "manual-1", "source": "aws-cli"}
            ),
            MessageAttributes={"type": {"DataType": "String", "StringValue": "DriftScanRequested"}},
        )

        # The detector consumes the request and publishes its (empty) scan digest.
        wait_for(lambda: "0 state(s), 0 open finding(s)" in (tmp_path / "up.log").read_text())
        # And the notifier takes that digest in before Ctrl-C (on a loaded machine it may
        # still be polling when the detector's line appears).
        wait_for(
            lambda: "notifier: handled DriftScanCompleted" in (tmp_path / "up.log").read_text()
        )
    finally:
        output = stop(process, tmp_path / "up.log")
    assert process.returncode == 0, output[-3000:]
    assert "detector: stopped: WorkerStats(received=1, handled=1" in output
    assert "notifier: stopped: WorkerStats(received=1, handled=1" in output  # the digest
    assert "Traceback" not in output
    assert "demo repo" not in output and "demo ready" not in output


def drift_channel(slack_port: int) -> list[dict[str, Any]]:
    """The demo channel's messages, through the stand-in's HTTP API."""
    response = requests.get(
        f"http://127.0.0.1:{slack_port}/_standin/messages",
        params={"channel": "infra-drift"},
        timeout=10,
    )
    response.raise_for_status()
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


def press(
    slack_port: int,
    message: dict[str, Any],
    action_id: str,
    *,
    channel: str = "infra-drift",
    user: str = "U0ALICE001",
) -> None:
    """Someone (Alice unless told) clicks a button of a message on the stand-in's page."""
    clicked = {"channel": channel, "user": user, "message_ts": message["ts"]}
    response = requests.post(
        f"http://127.0.0.1:{slack_port}/_standin/client/button",
        json={**clicked, "action_id": action_id},
        timeout=10,
    )
    assert response.status_code == 200 and response.json()["ok"], response.text


def no_browser() -> bool:
    """No Chromium here (or TOILKIT_TEST_NO_BROWSER set): the page's endpoints instead."""
    return chromium_executable() is None or bool(os.environ.get("TOILKIT_TEST_NO_BROWSER"))


def click_on_page(slack_port: int, channel: str, user: str, action_id: str, tmp: Path) -> None:
    """``user`` opens the stand-in's page on ``channel`` in headless Chromium and clicks the
    first button ``action_id`` there, as a person would (the page does the rest). Without a
    Chromium on the machine, the page's own endpoint is called as its script would."""
    if no_browser():
        (message, *_) = with_button(channel_messages(slack_port, channel.lstrip("#")), action_id)
        press(slack_port, message, action_id, channel=channel.lstrip("#"), user=user)
        return

    async def click() -> None:
        async with chromium(tmp / f"chromium-{action_id}") as browser:
            await browser.open(
                f"http://127.0.0.1:{slack_port}/?channel={quote(channel)}&user={user}"
            )
            button = f"[data-action-id={action_id}]"
            await browser.wait_for(f"!!document.querySelector({json.dumps(button)})")
            await browser.click(button)
            await browser.wait_for("!document.getElementById('app').classList.contains('busy')")
            images = os.environ.get("TOILKIT_SCREENSHOT_DIR")
            if images:
                await browser.screenshot(Path(images) / f"up-{action_id}.png")

    asyncio.run(click())


def ignore_on_page(slack_port: int, reason: str, tmp: Path) -> None:
    """Alice clicks the latest report's first Ignore…, types the reason, keeps the default
    expiry and submits the modal, in headless Chromium (the page's endpoints without it)."""
    if no_browser():
        return _ignore_through_endpoints(slack_port, reason)

    async def ignore() -> None:
        async with chromium(tmp / "chromium-ignore") as browser:
            await browser.open(
                f"http://127.0.0.1:{slack_port}/?channel=%23infra-drift&user=U0ALICE001"
            )
            button = "[data-action-id=drift_ignore]"
            # Only the open report has buttons; its first Ignore… is the bucket's.
            await browser.wait_for(f"document.querySelectorAll({json.dumps(button)}).length >= 2")
            await browser.click(button)
            modal = "form.live-modal"
            field = ".el[data-block-id=ignore_reason] textarea"
            await browser.wait_for(f"!!document.querySelector({json.dumps(field)})")
            await browser.type_into(field, reason)
            images = os.environ.get("TOILKIT_SCREENSHOT_DIR")
            if images:
                await browser.screenshot(Path(images) / "up-drift_ignore.png")
            await browser.click(f"{modal} button[type=submit]")
            await browser.wait_for(f"!document.querySelector({json.dumps(modal)})")

    asyncio.run(ignore())


def _ignore_through_endpoints(slack_port: int, reason: str) -> None:
    latest = drift_channel(slack_port)[-1]
    press(slack_port, latest, "drift_ignore")  # the first: the bucket's
    base = f"http://127.0.0.1:{slack_port}/_standin/client"
    modal = requests.get(f"{base}/modal", params={"user": "U0ALICE001"}, timeout=10).json()
    until = (datetime.now(UTC).date() + timedelta(days=14)).isoformat()
    answer = {"ignore_reason": {"value": reason}, "ignore_expires": {"value": until}}
    response = requests.post(
        f"{base}/view_submit",
        json={"user": "U0ALICE001", "view_id": modal["modal"]["view"]["id"], "values": answer},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def channel_messages(slack_port: int, channel: str) -> list[dict[str, Any]]:
    response = requests.get(
        f"http://127.0.0.1:{slack_port}/_standin/messages", params={"channel": channel}, timeout=10
    )
    response.raise_for_status()
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


def with_button(messages: list[dict[str, Any]], action_id: str) -> list[dict[str, Any]]:
    return [m for m in messages if f'"action_id": "{action_id}"' in json.dumps(m)]


def replies_to(slack_port: int, ts: str) -> list[dict[str, Any]]:
    """The thread replies of the demo channel's message ``ts``."""
    (message,) = [m for m in drift_channel(slack_port) if m["ts"] == ts]
    replies: list[dict[str, Any]] = message.get("replies") or []
    return replies


def headers(messages: list[dict[str, Any]]) -> list[str]:
    return [m["blocks"][0]["text"]["text"] for m in messages]


def run_demo(command: str, demo_dir: Path, aws_port: int) -> subprocess.CompletedProcess[str]:
    """`toilkit demo COMMAND` as the banner shows it, from another terminal."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "toilkit",
            "demo",
            command,
            "--dir",
            str(demo_dir),
            "--aws-endpoint",
            f"http://127.0.0.1:{aws_port}",
        ],
        env=up_environment(),
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_up_prepares_a_demo_whose_drift_shows_in_the_slack_standin(tmp_path: Path) -> None:
    aws_port, slack_port = free_port(), free_port()
    demo_dir = tmp_path / "demo"
    env = up_environment()
    # Ctrl-C waits for each worker's SQS long poll to return: a short one keeps this bounded.
    for service in ("DETECTOR", "BATCH", "NOTIFIER"):
        env[f"TOILKIT_{service}_WORKER__WAIT_TIME_SECONDS"] = "2"
    process = start_up(
        tmp_path / "up.log", aws_port, slack_port, "--demo-dir", str(demo_dir), env=env
    )
    try:
        # GIVEN `toilkit up` with no detector configuration: it prepares the demo
        wait_for(lambda: "Press Ctrl-C to stop" in (tmp_path / "up.log").read_text())
        banner = (tmp_path / "up.log").read_text()
        assert f"{demo_dir.resolve()}/infra" in banner
        assert "toilkit demo drift" in banner and "toilkit demo fix" in banner
        assert "2 state(s) from" in banner

        # THEN the stand-in's demo channel shows the drift, changed outside Terraform
        (report,) = wait_for(lambda: drift_channel(slack_port), timeout=120)
        assert headers([report]) == [":warning: Drift detected in storage"]
        texts = [b["text"]["text"] for b in report["blocks"] if b["type"] == "section"]
        assert any('tags.env: "prod" → "staging" · apply puts back "prod"' in t for t in texts)
        # One line per drifted resource: the plan's revert is no code waiting to be applied.
        assert any("*2* resources in `storage` differ" in t for t in texts), texts
        assert not any("not applied" in t for t in texts), texts
        assert "demo ready in" in (tmp_path / "up.log").read_text()

        # WHEN Alice clicks "Accept into code" on the report, in a browser
        click_on_page(slack_port, "#infra-drift", "U0ALICE001", "drift_accept", tmp_path)

        # THEN its thread shows the diff and the branch pushed to the demo's origin
        (reply,) = wait_for(lambda: replies_to(slack_port, report["ts"]), timeout=120)
        body = json.dumps(reply["blocks"], ensure_ascii=False)
        assert "accepted the drift into code" in body and "toilkit/drift/storage/" in body
        assert '+    env  = \\"staging\\"' in body
        branches = subprocess.run(
            ["git", "ls-remote", "--heads", str(demo_dir / "origin.git")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "refs/heads/toilkit/drift/storage/" in branches

        # WHEN Alice clicks Revert: the plan is previewed, then Bob (@sre) is asked
        click_on_page(slack_port, "#infra-drift", "U0ALICE001", "drift_revert", tmp_path)
        (approval,) = wait_for(
            lambda: with_button(channel_messages(slack_port, "toilkit"), "batch_approve"),
            timeout=180,
        )
        shown = json.dumps(approval, ensure_ascii=False)
        assert "drift-revert" in shown and "Plan: 0 to add, 2 to change, 0 to destroy" in shown
        click_on_page(slack_port, "#toilkit", "U0BOB00002", "batch_approve", tmp_path)

        # THEN the run applies the plan, and the drift thread says so
        def revert_said() -> list[str]:
            texts = [json.dumps(r["blocks"]) for r in replies_to(slack_port, report["ts"])]
            return [t for t in texts if "Revert run" in t]

        (said,) = wait_for(revert_said, timeout=240)
        assert "succeeded" in said, said
        cloud = json.loads((demo_dir / "cloud.json").read_text())
        buckets = [b for b in cloud["cloud_bucket"].values() if b["name"] == "logs"]
        assert buckets[0]["tags"]["env"] == "prod"

        # WHEN the newcomer runs the fix the banner shows
        fixed = run_demo("fix", demo_dir, aws_port)
        assert "applied storage" in fixed.stdout and "scan demo-fix-" in fixed.stdout

        # THEN the same message turns resolved
        wait_for(
            lambda: (
                headers(drift_channel(slack_port))
                == [":white_check_mark: Drift resolved in storage"]
            ),
            timeout=120,
        )

        # WHEN the cloud is changed by hand again, THEN that is news: a new message
        drifted = run_demo("drift", demo_dir, aws_port)
        assert 'cloud_bucket.logs: tags.env "prod" -> "staging"' in drifted.stdout
        wait_for(
            lambda: (
                headers(drift_channel(slack_port))
                == [
                    ":white_check_mark: Drift resolved in storage",
                    ":warning: Drift detected in storage",
                ]
            ),
            timeout=120,
        )

        # WHEN Alice clicks Ignore… on the new report's bucket and gives a reason
        ignore_on_page(slack_port, "Vendor retags it during the migration", tmp_path)

        # THEN the thread says who ignored what, until when
        latest = drift_channel(slack_port)[-1]

        def ignored() -> list[str]:
            texts = [
                json.dumps(r, ensure_ascii=False) for r in replies_to(slack_port, latest["ts"])
            ]
            return [t for t in texts if "ignored" in t]

        (said,) = wait_for(ignored, timeout=60)
        assert "cloud_bucket.logs" in said and "Vendor retags it during the migration" in said
    finally:
        output = stop(process, tmp_path / "up.log")
    assert process.returncode == 0, output[-3000:]
    assert "Traceback" not in output
