"""The detector as an AWS Lambda function behind its SQS event source mapping, and the scan
a drift-scan CodeBuild build runs.

:func:`build_function` wires the detector's handlers as
:func:`~services.detector.service.build_detector` does (``toilkit serve detector``), without
the local schedule: EventBridge Scheduler starts the daily scans in AWS.
``toilkit.aws_lambda.worker_handler`` hosts it.

A scan plans for minutes, longer than a worker function may run (its timeout must stay within
the queue's 60 s visibility timeout), so with ``TOILKIT_DRIFT_SCAN_PROJECT`` set the function
hands each ``DriftScanRequested`` and ``DriftAcceptRequested`` (both plan; an accept also
needs the repository checkout to patch and push) to that CodeBuild project, which runs
``python -m services.detector.function scan-request``: the detector's own handler on the
request as it arrived (same event id, correlation id and requester).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import Field

from services.detector.config import DetectorConfig
from services.detector.handlers import DetectorHandlers, build_handlers
from services.detector.service import CONSUMER, build_pipeline, build_scanner, wire_handlers
from services.detector.settings import DetectorSettings
from shared.aws import call_aws
from shared.env_settings import EnvConfigDict, EnvSettings
from shared.errors import ConfigError
from shared.events import (
    DriftAcceptRequested,
    DriftScanRequested,
    dump_event,
    event_type_name,
    parse_event,
)
from shared.lambda_function import FunctionContext, QueueWorkerFunction
from shared.runtime import Runtime, open_runtime
from shared.settings import AwsSettings, TopologySettings, load_settings

log = logging.getLogger(__name__)

#: The variable that hands a build its request: the function sets it when it starts the
#: build, and ``scan-request`` reads it inside the build.
SCAN_REQUEST_VARIABLE = "TOILKIT_SCAN_REQUEST"


class ScanProjectSettings(EnvSettings):
    """``TOILKIT_DRIFT_SCAN_PROJECT``: the CodeBuild project that runs scans (the function
    has no Terraform and 55 seconds, so in AWS scans always run there)."""

    model_config = EnvConfigDict(env_prefix="TOILKIT_", extra="ignore")

    drift_scan_project: str | None = Field(default=None, min_length=2)


class ScanBuilds:
    """Hands a scan request to the drift-scan CodeBuild project.

    Args:
        codebuild: the CodeBuild client.
        project: the drift-scan project's name.
    """

    def __init__(self, codebuild: Any, project: str) -> None:
        self._codebuild = codebuild
        self.project = project

    async def start(self, event: DriftScanRequested | DriftAcceptRequested) -> None:
        response = await call_aws(
            "codebuild.start_build",
            lambda: self._codebuild.start_build(
                projectName=self.project,
                # A redelivery within CodeBuild's 5-minute token window starts no second build.
                idempotencyToken=event.event_id[:64],
                environmentVariablesOverride=[
                    {
                        "name": SCAN_REQUEST_VARIABLE,
                        "value": dump_event(event),
                        "type": "PLAINTEXT",
                    }
                ],
            ),
        )
        build_id = response.get("build", {}).get("id")
        log.info("scan %s: started build %s of %s", event.event_id, build_id, self.project)


async def detector_handlers(runtime: Runtime, settings: DetectorSettings) -> DetectorHandlers:
    """The detector's handlers, wired as ``build_detector`` wires them."""
    config = settings.load_detector_config() or DetectorConfig(repo=Path.cwd().resolve())
    scanner = build_scanner(config, settings)
    pipeline = await build_pipeline(
        runtime, config, scanner, source=CONSUMER, run_limit_seconds=settings.scan_run_limit
    )
    return wire_handlers(config, settings, scanner, pipeline, runtime=runtime)


async def build_function(context: FunctionContext) -> QueueWorkerFunction:
    """The detector's handlers on its queue; scans go to CodeBuild when a project is set."""
    runtime = context.runtime
    # EventBridge Scheduler starts the daily scans in AWS; no local schedule here.
    settings = load_settings(DetectorSettings, scheduler=False)
    mapping = dict(build_handlers(await detector_handlers(runtime, settings)))
    project = load_settings(ScanProjectSettings).drift_scan_project
    if project is not None:
        scans = ScanBuilds(await runtime.aws.client("codebuild"), project)
        mapping[DriftScanRequested] = scans.start
        mapping[DriftAcceptRequested] = scans.start
    return QueueWorkerFunction(runtime.worker(CONSUMER, mapping, settings.worker))


async def run_scan_request(event: DriftScanRequested | DriftAcceptRequested) -> None:
    """Do what ``event`` asks (scan, or accept into code) and publish the outcome, as the
    detector's worker would."""
    async with open_runtime(load_settings(AwsSettings), load_settings(TopologySettings)) as runtime:
        handlers = await detector_handlers(
            runtime, load_settings(DetectorSettings, scheduler=False)
        )
        if isinstance(event, DriftAcceptRequested):
            await handlers.on_drift_accept_requested(event)
        else:
            await handlers.on_drift_scan_requested(event)


def main(argv: list[str]) -> int:
    """``python -m services.detector.function scan-request``: run the detector's handler on
    ``TOILKIT_SCAN_REQUEST`` (a DriftScanRequested or DriftAcceptRequested as JSON). A failed
    state is published (DriftScanFailed, a DriftAccepted with its problem), so the exit code
    is 0 unless the request could not run at all."""
    if argv != ["scan-request"]:
        print("usage: python -m services.detector.function scan-request", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    event = parse_event(os.environ.get(SCAN_REQUEST_VARIABLE, ""))
    if not isinstance(event, DriftScanRequested | DriftAcceptRequested):
        raise ConfigError(
            f"{SCAN_REQUEST_VARIABLE} holds a {event_type_name(event)}, not a DriftScanRequested "
            "or DriftAcceptRequested"
        )
    asyncio.run(run_scan_request(event))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
