"""The batch service as an AWS Lambda function: its queue, run completions and housekeeping.

Built by :func:`build_function` from the same :func:`~services.batch.service.build_batch` as
``toilkit serve batch``; ``toilkit.aws_lambda.worker_handler`` hosts it.

A long-running batch service watches each started run in a background task. A sandbox is
frozen between invocations, so here nothing is left running: a run is settled when
EventBridge reports that its Step Functions execution ended (records from the queue named by
``TOILKIT_BATCH_COMPLETION_QUEUE_URL``), and a scheduled ``{"toilkit": "housekeeping"}``
invocation closes expired approvals and settles runs whose end event was lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from services.batch.handlers import expire_overdue_approvals
from services.batch.service import BatchService, build_batch
from services.batch.settings import BatchSettings
from shared.errors import ConfigError
from shared.lambda_function import FunctionContext, batch_response, queue_name_of, sqs_message
from shared.secrets import BOT_TOKEN
from shared.settings import load_settings

log = logging.getLogger(__name__)

#: The input of the batch function's scheduled invocation (EventBridge Scheduler).
HOUSEKEEPING = {"toilkit": "housekeeping"}

#: Seconds one settle may take: read the execution and the build's log tail, publish.
SETTLE_SECONDS = 20.0


class BatchFunction:
    """The batch service in Lambda: its queue, run completions and housekeeping.

    Args:
        service: the batch service, built once.
    """

    def __init__(self, service: BatchService) -> None:
        self.service = service
        self.supervisor = service.supervisor
        url = service.settings.completion_queue_url
        self.completion_queue = url.rstrip("/").rsplit("/", 1)[-1] if url else None

    async def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        try:
            if event.get("toilkit") == HOUSEKEEPING["toilkit"]:
                closed = await expire_overdue_approvals(self.service.context)
                settled = await self.settle_active_runs()
                # Each invocation looks back over the lookback window: an invocation keeps
                # nothing, and the derived ids make a due run that two windows see one run.
                self.service.schedules.last_tick = None
                scheduled = await self.service.schedules.tick(self.service.context.clock())
                if self.service.options is not None:
                    await self.service.options.refresh_due()
                log.info(
                    "housekeeping: %d approval(s) expired, %d run(s) settled, %d scheduled",
                    closed,
                    settled,
                    len(scheduled),
                )
                return batch_response([])
            records = list(event.get("Records") or [])
            commands = [r for r in records if queue_name_of(r) != self.completion_queue]
            ends = [r for r in records if queue_name_of(r) == self.completion_queue]
            failed = await self.service.worker.process_received([sqs_message(r) for r in commands])
            ended = await asyncio.gather(
                *(self.settle_from_status_change(r.get("body", "")) for r in ends),
                return_exceptions=True,
            )
            failed += [r["messageId"] for r, ok in zip(ends, ended, strict=True) if ok is not True]
            return batch_response(failed)
        finally:
            # The watch tasks a start leaves would freeze with the sandbox and wake at
            # random in later invocations; completions and housekeeping do their job.
            await self.supervisor.stop()

    async def settle_from_status_change(self, body: str) -> bool:
        """Finish the run an EventBridge "Execution Status Change" reports as ended.

        Returns False when the run could not be settled now (the record is retried).
        """
        try:
            detail = json.loads(body)["detail"]
            status = str(detail["status"])
            run_id = json.loads(detail.get("input") or "{}").get("run_id")
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("ignoring a message that is no execution status change: %.200s", body)
            return True
        if status == "RUNNING" or not run_id:
            return True
        return await self.settle(str(run_id))

    async def settle_active_runs(self) -> int:
        """Settle every active run whose runner says it has ended; the count settled."""
        run_ids = await self.supervisor.runs.active_run_ids()
        results = await asyncio.gather(
            *(self.settle(r, quiet=True) for r in run_ids), return_exceptions=True
        )
        for run_id, result in zip(run_ids, results, strict=True):
            if isinstance(result, Exception):
                log.warning(
                    "run %s: not settled now (%s); the next housekeeping retries", run_id, result
                )
        return sum(1 for r in results if r is True)

    async def settle(self, run_id: str, *, quiet: bool = False) -> bool:
        """Finish an ended run (see :meth:`RunSupervisor.settle`); False while it goes on."""
        return await self.supervisor.settle(run_id, wait_seconds=SETTLE_SECONDS, quiet=quiet)

    async def aclose(self) -> None:
        await self.supervisor.stop()


async def build_function(context: FunctionContext) -> BatchFunction:
    """The batch service with the bot token from SSM when one is configured.

    Raises:
        ConfigError: the catalog has commands that run locally (a local run would be a
            child of the sandbox, stopped when the invocation returns).
    """
    settings = load_settings(
        BatchSettings, **await context.secret_overrides(slack_bot_token=BOT_TOKEN)
    )
    service = await build_batch(context.runtime, settings)
    local = [
        f"{command.name} in {environment}"
        for command in service.context.catalog.commands
        for environment, options in command.environments.items()
        if options.runner.kind == "local"
    ]
    if local:
        raise ConfigError(
            "the batch function cannot run commands locally: give these a codebuild or "
            f"stepfunctions runner in the catalog: {', '.join(local)}"
        )
    return BatchFunction(service)
