"""A real worker process for the tests that signal or kill it (SIGTERM drain, crash).

Configured by environment variables set by the test:
    WP_ENDPOINT, WP_QUEUE_URL, WP_TABLE, WP_MARKERS (a folder), WP_HANDLER_SECONDS,
    WP_CRASH_AFTER_HANDLED ("1": SIGKILL itself after the event is marked handled and
    before the SQS message is deleted), WP_HANDLER_TIMEOUT (seconds), WP_MAX_RECEIVE_COUNT.
The handler writes ``<event_id>.started`` and ``<event_id>.done`` into WP_MARKERS.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from shared.aws import AwsClients
from shared.events import DriftScanRequested, EventBase
from shared.idempotency import IdempotencyStore
from shared.settings import AwsSettings, WorkerSettings
from shared.topology import MAX_RECEIVE_COUNT
from shared.worker import Outcome, Worker
from tests.integration.child_process import run_child_process, serve_until_stopped


async def main() -> int:
    markers = Path(os.environ["WP_MARKERS"])
    handler_seconds = float(os.environ.get("WP_HANDLER_SECONDS", "0"))
    crash = os.environ.get("WP_CRASH_AFTER_HANDLED") == "1"

    async def on_scan(event: DriftScanRequested) -> None:
        (markers / f"{event.event_id}.started").write_text("")
        await asyncio.sleep(handler_seconds)
        with (markers / f"{event.event_id}.done").open("a") as f:
            f.write("x")

    def on_outcome(event: EventBase | None, outcome: Outcome) -> None:
        if crash and outcome is Outcome.HANDLED:
            os.kill(os.getpid(), signal.SIGKILL)

    settings = AwsSettings(AWS_ENDPOINT_URL=os.environ["WP_ENDPOINT"])
    async with AwsClients(settings) as aws:
        worker = Worker(
            consumer="detector",
            queue_url=os.environ["WP_QUEUE_URL"],
            handlers={DriftScanRequested: on_scan},
            sqs=aws.sqs,
            s3=aws.s3,
            idempotency=IdempotencyStore(aws.dynamodb, os.environ["WP_TABLE"]),
            settings=WorkerSettings(
                wait_time_seconds=1,
                visibility_timeout=2,
                shutdown_grace=10,
                retry_base_seconds=0,
                handler_timeout=float(os.environ.get("WP_HANDLER_TIMEOUT", "300")),
            ),
            on_outcome=on_outcome,
            max_receive_count=int(os.environ.get("WP_MAX_RECEIVE_COUNT", str(MAX_RECEIVE_COUNT))),
        )
        stats = await serve_until_stopped(worker)
    print(f"stats {stats}", flush=True)
    return 0


if __name__ == "__main__":
    run_child_process(main)
