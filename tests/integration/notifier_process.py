"""A real notifier process for the test that kills one between posting and recording.

Configured by environment variables set by the test:
    NP_ENDPOINT (moto), NP_PREFIX and NP_BUCKET (resource names), NP_SLACK_API_URL,
    NP_DIE_AFTER_POST ("1": SIGKILL itself right after chat.postMessage answered, before
    the message's ts is written to DynamoDB and long before the SQS message is deleted).
Prints ``ready`` once consuming; SIGTERM stops it.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from tenacity import wait_none

from services.notifier.delivery import Delivery
from services.notifier.handlers import NotifierHandlers, build_handlers
from services.notifier.pacing import ChannelPacer
from services.notifier.settings import NotifierSettings
from services.notifier.slack import Posted, SlackWebApi
from services.notifier.store import NotifierStore
from shared.runtime import open_runtime
from shared.settings import AwsSettings, TopologySettings
from tests.integration.child_process import run_child_process, serve_until_stopped
from tests.support import FAST_WORKER


class DiesAfterPosting(SlackWebApi):
    """The real adapter, but the process dies the moment Slack has the message."""

    async def post(self, *args: Any, **kwargs: Any) -> Posted:
        posted = await super().post(*args, **kwargs)
        print(f"posted {posted.ts}; dying", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        return posted  # pragma: no cover - never reached


async def main() -> int:
    settings = NotifierSettings(
        slack_api_url=os.environ["NP_SLACK_API_URL"],
        post_interval_seconds=0,
        # A killed worker's claim (INPROGRESS) lapses with its message's visibility
        # (2 s, no longer renewed), and the redelivery takes it over instead of going
        # to the DLQ.
        worker=FAST_WORKER.model_copy(
            update={
                "visibility_timeout": 2,
                "handler_timeout": 5,
                "retry_base_seconds": 1,
                "shutdown_grace": 10,
            }
        ),
    )
    adapter = DiesAfterPosting if os.environ.get("NP_DIE_AFTER_POST") == "1" else SlackWebApi
    aws_settings = AwsSettings(AWS_ENDPOINT_URL=os.environ["NP_ENDPOINT"])
    topology_settings = TopologySettings(
        name_prefix=os.environ["NP_PREFIX"], bucket=os.environ["NP_BUCKET"]
    )
    async with (
        open_runtime(aws_settings, topology_settings) as runtime,
        adapter.open(
            settings,
            ChannelPacer(0),
            backoff=FixedValueRetryIntervalCalculator(0),
            post_wait=wait_none(),
        ) as slack,
    ):
        store = NotifierStore(runtime.aws.dynamodb, runtime.names.state_table)
        delivery = Delivery(slack, store, claim_lease_seconds=settings.thread_claim_lease_seconds)
        handlers = build_handlers(NotifierHandlers(delivery, store, settings.load_routes()))
        worker = runtime.worker("notifier", handlers, settings.worker)
        stats = await serve_until_stopped(worker)
    print(f"stats {stats}", flush=True)
    return 0


if __name__ == "__main__":
    run_child_process(main)
