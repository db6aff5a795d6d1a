"""Wiring the detector: built once from a Runtime, then run until stopped.

:func:`build_detector` is the detector's entry in ``toilkit/services.py``. The service
consumes its queue (``DriftScanRequested``, ``DriftClaimed``) and, unless switched off,
runs the local scheduler that publishes ``DriftScanRequested`` when a state is due.
:func:`build_scanner` and :func:`build_pipeline` are shared with ``toilkit drift scan``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from services.detector.accept.acceptor import DriftAcceptor
from services.detector.archive import PlanArchive
from services.detector.attribution import CloudTrailAttributor
from services.detector.config import DetectorConfig
from services.detector.credentials import RoleCredentials
from services.detector.engine import TerraformEngine, find_terraform
from services.detector.handlers import DetectorHandlers, build_handlers
from services.detector.lifecycle import LifecycleStore
from services.detector.pipeline import DriftPipeline
from services.detector.scan import Scanner
from services.detector.scheduler import Clock, ScanScheduler
from services.detector.settings import DetectorSettings
from shared.aws import AwsClients
from shared.events import utc_now
from shared.runtime import Runtime
from shared.settings import load_settings
from shared.state_table.drift_actions import IgnoreRuleStore, ScanGuard
from shared.worker import Worker

log = logging.getLogger(__name__)

CONSUMER = "detector"


def build_scanner(
    config: DetectorConfig,
    settings: DetectorSettings,
    *,
    concurrency: int | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> Scanner:
    """The scanner for ``config``: Terraform engine, concurrency, ignore rules.

    Raises:
        ConfigError: The configured Terraform executable does not exist.
    """
    engine = TerraformEngine(
        settings.terraform or config.terraform,
        plugin_cache_dir=settings.plugin_cache_dir,
        timeout=config.timeout_seconds,
    )
    return Scanner(
        engine,
        concurrency=concurrency or config.concurrency,
        work_dir=settings.work_dir,
        ignore_rules=config.ignore,
        clock=clock,
    )


async def build_pipeline(
    runtime: Runtime,
    config: DetectorConfig,
    scanner: Scanner,
    *,
    source: str,
    clock: Callable[[], datetime] = utc_now,
    run_limit_seconds: float | None = None,
) -> DriftPipeline:
    """The scan-and-publish pipeline on the runtime's AWS clients.

    ``run_limit_seconds`` is how long the process may run a scan (the digest warns when a
    scan takes most of it); ``None`` for a person's terminal.

    When a state assumes a role, the scanner (unless it has credentials already) and
    the attribution get the runtime's STS client to assume it with.
    """
    attributor = None
    if config.attribution.enabled:
        attributor = CloudTrailAttributor(
            await runtime.aws.client("cloudtrail"), config.attribution, clock=clock
        )
    credentials = None
    if any(state.assume_role is not None for state in config.states):
        credentials = role_credentials(config, runtime.aws, clock=clock)
        scanner.credentials = scanner.credentials or credentials
    return DriftPipeline(
        config=config,
        scanner=scanner,
        lifecycle=LifecycleStore(runtime.aws.dynamodb, runtime.names.state_table),
        archive=PlanArchive(runtime.aws.s3, runtime.names.bucket),
        publisher=runtime.publisher,
        attributor=attributor,
        credentials=credentials,
        source=source,
        clock=clock,
        run_limit_seconds=run_limit_seconds,
        ignores=IgnoreRuleStore(runtime.aws.dynamodb, runtime.names.state_table),
    )


def wire_handlers(
    config: DetectorConfig,
    settings: DetectorSettings,
    scanner: Scanner,
    pipeline: DriftPipeline,
    *,
    runtime: Runtime,
    clock: Callable[[], datetime] = utc_now,
) -> DetectorHandlers:
    """The queue handlers over the pipeline: scans (one in flight per state), claims, and
    accepting drift into code.

    Raises:
        ConfigError: The configured Terraform executable does not exist.
    """
    acceptor = DriftAcceptor(
        config=config,
        scanner=scanner,
        terraform=find_terraform(settings.terraform or config.terraform),
        source=CONSUMER,
        clock=clock,
    )
    return DetectorHandlers(
        pipeline=pipeline,
        lifecycle=pipeline.lifecycle,
        acceptor=acceptor,
        clock=clock,
        scan_guard=ScanGuard(runtime.aws.dynamodb, runtime.names.state_table),
    )


def role_credentials(
    config: DetectorConfig, aws: AwsClients, *, clock: Callable[[], datetime] = utc_now
) -> RoleCredentials:
    """Assumes states' roles with ``aws``'s STS client; reused while they outlive a state."""
    return RoleCredentials(
        lambda: aws.client("sts"),
        # A plan never runs on credentials that could expire before its time is up.
        min_remaining=timedelta(seconds=config.timeout_seconds + 300),
        settings=aws.settings,
        clock=clock,
    )


class DetectorService:
    """The running detector: its queue worker and, optionally, its scheduler."""

    name = CONSUMER

    def __init__(
        self,
        worker: Worker,
        scheduler: ScanScheduler | None,
        config: DetectorConfig | None,
    ) -> None:
        self.worker = worker
        self.scheduler = scheduler
        self.config = config

    async def run(self) -> None:
        """Consume the queue and run the schedules until :meth:`stop`."""
        tasks: list[asyncio.Task[Any]] = [asyncio.create_task(self.worker.run())]
        if self.scheduler is not None:
            tasks.append(asyncio.create_task(self.scheduler.run()))
        try:
            await asyncio.gather(*tasks)
        finally:
            self.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        self.worker.stop()
        if self.scheduler is not None:
            self.scheduler.stop()

    def describe(self) -> str:
        if self.config is None:
            where = "no states (set TOILKIT_DETECTOR_CONFIG or TOILKIT_DETECTOR_REPO)"
        else:
            where = (
                f"{len(self.config.states)} state(s) from {self.config.source or self.config.repo}"
            )
        schedules = (
            f"{len(self.scheduler.states)} on a local schedule"
            if self.scheduler is not None
            else "local schedules off"
        )
        return f"consumes {self.worker.queue_name} (DriftScanRequested, DriftClaimed, DriftAcceptRequested); {where}; {schedules}"


async def build_detector(
    runtime: Runtime,
    settings: DetectorSettings | None = None,
    *,
    clock: Clock | None = None,
    cwd: Path | None = None,
) -> DetectorService:
    """Build the detector from the runtime and ``TOILKIT_DETECTOR_*`` settings.

    Args:
        runtime: The process's AWS clients, names and publisher.
        settings: The detector settings (default: read from the environment).
        clock: The scheduler's clock (tests drive a fake one).
        cwd: Where to look for a ``toilkit.yaml`` when none is configured.

    Raises:
        ConfigError: A setting, the configuration file or the Terraform executable is wrong.
    """
    settings = settings or load_settings(DetectorSettings)
    config = settings.load_detector_config(cwd)
    if config is None:
        log.warning(
            "detector: no toilkit.yaml here and neither TOILKIT_DETECTOR_CONFIG nor "
            "TOILKIT_DETECTOR_REPO is set; scan requests will find no states"
        )
        config_for_scans = DetectorConfig(repo=(cwd or Path.cwd()).resolve())
    else:
        config_for_scans = config
    now = clock.now if clock is not None else utc_now
    scanner = build_scanner(config_for_scans, settings, clock=now)
    pipeline = await build_pipeline(
        runtime,
        config_for_scans,
        scanner,
        source=CONSUMER,
        clock=now,
        run_limit_seconds=settings.scan_run_limit,
    )
    handlers = wire_handlers(
        config_for_scans, settings, scanner, pipeline, runtime=runtime, clock=now
    )
    worker = runtime.worker(CONSUMER, build_handlers(handlers), settings.worker)
    scheduler = None
    if settings.scheduler and config_for_scans.states:
        scheduler = ScanScheduler(config_for_scans.states, runtime.publisher.publish, clock=clock)
    return DetectorService(worker, scheduler, config)
