"""`toilkit up` as a newcomer runs it: one process, an embedded AWS, every service.

GIVEN `toilkit up` on free ports, WHEN an event is published to its SNS topic with a plain
boto3 client (what `aws sns publish` does), THEN the detector consumes it and the notifier
the scan digest it publishes, and Ctrl-C (SIGINT) stops everything cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3


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


def test_up_consumes_a_published_event_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    aws_port, slack_port = free_port(), free_port()
    env = {
        **os.environ,
        "COLUMNS": "200",
        "TOILKIT_GATEWAY_PORT": "0",
        "TOILKIT_NAME_PREFIX": "toilkit",
    }
    for name in ("AWS_ENDPOINT_URL", "SLACK_BOT_TOKEN", "TOILKIT_NOTIFIER_SLACK_API_URL"):
        env.pop(name, None)
    log = (tmp_path / "up.log").open("w+")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "toilkit",
            "up",
            "--aws-port",
            str(aws_port),
            "--slack-port",
            str(slack_port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).parents[2],  # as `make up` runs it
    )
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
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(90)
        finally:
            process.kill()
    output = (tmp_path / "up.log").read_text()
    assert process.returncode == 0, output[-3000:]
    assert "detector: stopped: WorkerStats(received=1, handled=1" in output
    assert "notifier: stopped: WorkerStats(received=1, handled=1" in output  # the digest
    assert "Traceback" not in output
