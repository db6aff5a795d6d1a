"""The batch service: wires the catalog, the run store, the runners and the worker once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta

from slack_sdk.web.async_client import AsyncWebClient

from services.batch.handlers import BatchContext, build_handlers, expire_overdue_approvals
from services.batch.progress import ProgressReporter
from services.batch.runners.base import Runner
from services.batch.runners.codebuild import BuildReader, CodeBuildRunner, PollPolicy
from services.batch.runners.local import LocalRunner, inherited_env
from services.batch.runners.logs import RunLogs
from services.batch.runners.stepfunctions import ExecutionEvents, StepFunctionsRunner
from services.batch.schedules import ScheduleTicker
from services.batch.settings import BatchSettings
from services.batch.steps import RunSteps
from services.batch.store import LockStore, RunStore
from services.batch.supervisor import RunSupervisor
from shared.catalog import load_catalog
from shared.clock import Clock, utc_now
from shared.options_fetch import OptionsRefresher, listed_parameters
from shared.runtime import Runtime
from shared.settings import load_settings
from shared.slack.groups import slack_directory
from shared.worker import Worker

log = logging.getLogger(__name__)


@dataclass(eq=False, kw_only=True)
class BatchService:
    """Consumes batch commands; runs, watches and reports batch runs."""

    name = "batch"

    worker: Worker
    context: BatchContext
    settings: BatchSettings
    events: ExecutionEvents | None
    schedules: ScheduleTicker
    _stopping: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    @property
    def supervisor(self) -> RunSupervisor:
        return self.context.supervisor

    @property
    def options(self) -> OptionsRefresher | None:
        """Keeps the lists of listed choices fresh (None: the catalog has none)."""
        return self.context.options

    async def run(self) -> None:
        """Resume the runs a previous process left, then consume until :meth:`stop`."""
        self._stopping.clear()
        await self.supervisor.resume()
        background = [asyncio.create_task(self._sweep_expired_approvals())]
        if self.settings.schedules_enabled and self.context.catalog.schedules():
            background.append(asyncio.create_task(self._tick_schedules()))
        if self.events is not None:
            background.append(asyncio.create_task(self.events.run()))
        if self.options is not None:
            background.append(asyncio.create_task(self._refresh_options(self.options)))
        try:
            await self.worker.run()
        finally:
            self._stopping.set()
            if self.events is not None:
                self.events.stop()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self.supervisor.stop()

    def stop(self) -> None:
        self.worker.stop()

    def describe(self) -> str:
        catalog = self.context.catalog
        runners = ", ".join(sorted(self.supervisor.runners))
        return (
            f"consumes {self.worker.queue_name}; catalog {self.settings.catalog_path} "
            f"({len(catalog.commands)} commands); runners: {runners}"
        )

    async def _sweep_expired_approvals(self) -> None:
        while not self._stopping.is_set():
            try:
                await expire_overdue_approvals(self.context)
            except Exception:
                log.exception("closing expired approval requests failed; trying again later")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.settings.approval_sweep_seconds)

    async def _tick_schedules(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.schedules.tick(self.context.clock())
            except Exception:
                log.exception("requesting scheduled runs failed; trying again later")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.settings.schedule_tick_seconds)

    async def _refresh_options(self, options: OptionsRefresher) -> None:
        while not self._stopping.is_set():
            try:
                await options.refresh_due()
            except Exception:
                log.exception("refreshing the lists of choices failed; trying again later")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.settings.options_refresh_seconds)


async def _runners(
    runtime: Runtime, settings: BatchSettings, events: ExecutionEvents | None, clock: Clock
) -> dict[str, Runner]:
    """Every runner a catalog command may name, on the runtime's clients."""
    aws = runtime.aws
    region = aws.settings.region
    logs_client = await aws.client("logs")
    console_links = settings.console_log_links
    if console_links is None:
        # A console link is useless on an emulator; the local file is what one opens.
        console_links = aws.settings.endpoint_for("logs") is None
    run_logs = RunLogs(
        logs=logs_client,
        group=settings.log_group,
        log_dir=settings.log_dir,
        region=region,
        console_links=console_links,
        tail_lines=settings.log_tail_lines,
    )
    poll = PollPolicy(initial=settings.poll_initial_seconds, maximum=settings.poll_max_seconds)
    codebuild = await aws.client("codebuild")
    reader = BuildReader(codebuild, logs_client, region=region, tail_lines=settings.log_tail_lines)
    return {
        "local": LocalRunner(
            open_log=run_logs,
            base_env=inherited_env(os.environ),
            kill_grace=settings.kill_grace_seconds,
            clock=clock,
        ),
        "codebuild": CodeBuildRunner(codebuild, reader, poll=poll, clock=clock),
        "stepfunctions": StepFunctionsRunner(
            await aws.client("stepfunctions"),
            codebuild,
            reader,
            region=region,
            poll=poll,
            events=events,
            clock=clock,
        ),
    }


def _progress(runtime: Runtime, settings: BatchSettings, clock: Clock) -> ProgressReporter | None:
    """Live progress of watched runs, unless turned off."""
    if not settings.progress_enabled:
        return None
    return ProgressReporter(
        runtime.publisher,
        interval=settings.progress_interval_seconds,
        tail_lines=settings.progress_tail_lines,
        clock=clock,
    )


async def build_batch(
    runtime: Runtime, settings: BatchSettings | None = None, *, clock: Clock = utc_now
) -> BatchService:
    """Build the batch service from the runtime and ``TOILKIT_BATCH_*`` settings.

    Raises:
        ConfigError: invalid settings or catalog (the message names the problem).
    """
    settings = settings or load_settings(BatchSettings)
    catalog = load_catalog(settings.catalog_path)
    runs = RunStore(
        runtime.aws.dynamodb,
        runtime.names.state_table,
        retention=timedelta(days=settings.record_retention_days),
        clock=clock,
    )
    events = (
        ExecutionEvents(runtime.aws.sqs, settings.completion_queue_url)
        if settings.completion_queue_url
        else None
    )
    steps = RunSteps(
        catalog=catalog,
        runs=runs,
        locks=LockStore(runtime.aws.dynamodb, runtime.names.state_table, clock=clock),
        runners=await _runners(runtime, settings, events, clock),
        publisher=runtime.publisher,
        clock=clock,
    )
    slack = None
    if settings.slack_bot_token is not None:
        slack = AsyncWebClient(
            token=settings.slack_bot_token.get_secret_value(),
            base_url=settings.slack_api_url or AsyncWebClient.BASE_URL,
        )
    directory = slack_directory(catalog, slack, ttl_seconds=settings.group_cache_seconds)
    options = (
        OptionsRefresher(
            catalog,
            runtime.aws.dynamodb,
            runtime.names.state_table,
            cache_dir=settings.options_cache_dir,
        )
        if listed_parameters(catalog)
        else None
    )
    context = BatchContext(
        catalog=catalog,
        runs=runs,
        steps=steps,
        supervisor=RunSupervisor(steps, progress=_progress(runtime, settings, clock)),
        publisher=runtime.publisher,
        directory=directory,
        clock=clock,
        options=options,
    )
    worker = runtime.worker("batch", build_handlers(context), settings.worker)
    schedules = ScheduleTicker(
        catalog,
        runtime.publisher.publish,
        lookback=timedelta(seconds=settings.schedule_lookback_seconds),
    )
    return BatchService(
        worker=worker,
        context=context,
        settings=settings,
        events=events,
        schedules=schedules,
    )
