"""``toilkit demo``: play with the demo infrastructure ``toilkit up`` prepares.

::

    toilkit demo drift [--dir .toilkit/demo] [--no-scan] [--aws-endpoint URL]
    toilkit demo fix   [--dir .toilkit/demo] [--no-scan] [--aws-endpoint URL]

``drift`` changes the demo's cloud outside Terraform (a console click); ``fix`` runs
``terraform apply`` so the cloud matches the code again. Both then publish a
``DriftScanRequested`` to the running ``toilkit up`` (``AWS_ENDPOINT_URL``, by default
the embedded emulator's), so the Slack page shows the drift, or its resolution, seconds
later.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from shared.errors import ConfigError
from shared.runtime import open_runtime
from toilkit.console import cli_settings, configure_logging, console, fail, out, run_async
from toilkit.demo.repo import (
    DEFAULT_DEMO_DIR,
    DEMO_CHANNEL,
    DRIFTING_STATE,
    DemoError,
    DemoRepo,
    apply_demo,
    drift_cloud,
    open_demo,
)
from toilkit.demo.startup import demo_scan_request
from toilkit.embedded import DEFAULT_HOST, DEFAULT_PORT, use_dummy_credentials

demo_app = typer.Typer(
    help="The demo `toilkit up` prepares: drift its cloud, fix it, watch Slack.",
    no_args_is_help=True,
)

DEFAULT_ENDPOINT = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"

DirOption = Annotated[
    Path, typer.Option("--dir", help="The demo's directory (where `toilkit up` wrote it).")
]
ScanOption = Annotated[
    bool,
    typer.Option("--scan/--no-scan", help="Ask the running detector for a scan afterwards."),
]
EndpointOption = Annotated[
    str,
    typer.Option(
        "--aws-endpoint",
        envvar="AWS_ENDPOINT_URL",
        help="The AWS endpoint `toilkit up` uses (its banner shows it).",
    ),
]


def _drift(demo: DemoRepo) -> None:
    """Change the demo cloud outside Terraform, as someone in a console would."""
    try:
        changes = drift_cloud(demo)
    except DemoError as exc:
        raise fail(str(exc), 1) from None
    if not changes:
        out.print("the demo cloud has drifted already; nothing changed", highlight=False)
    for change in changes:
        out.print(f"changed outside Terraform: {change.describe()}", highlight=False)


def _fix(demo: DemoRepo) -> None:
    """Make the demo cloud match its code again (terraform apply)."""
    with console.status(f"terraform apply in {demo.state_dir(DRIFTING_STATE)}") as status:
        run_async(apply_demo(demo, states=(DRIFTING_STATE,), on_step=status.update))
    out.print(f"applied {DRIFTING_STATE}: the demo cloud matches its code again", highlight=False)


def _add_demo_command(name: str, change: Callable[[DemoRepo], None]) -> None:
    """``toilkit demo NAME``: ``change`` the demo, then (unless --no-scan) ask for a scan.

    Its help is ``change``'s docstring.
    """

    def command(
        directory: DirOption = DEFAULT_DEMO_DIR,
        scan: ScanOption = True,
        aws_endpoint: EndpointOption = DEFAULT_ENDPOINT,
    ) -> None:
        configure_logging(False)
        change(_open(directory))
        if scan:
            _request_scan(aws_endpoint, name)

    demo_app.command(name, help=change.__doc__)(command)


_add_demo_command("drift", _drift)
_add_demo_command("fix", _fix)


def _open(directory: Path) -> DemoRepo:
    try:
        return open_demo(directory)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None


def _request_scan(endpoint: str, why: str) -> None:
    """Publish a scan request to the running ``toilkit up``, or exit 1 saying why not."""
    _check_listening(endpoint)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    use_dummy_credentials()
    aws_settings, topology_settings = cli_settings()
    request = demo_scan_request(why)

    async def _publish() -> None:
        async with open_runtime(aws_settings, topology_settings) as runtime:
            await runtime.publisher.publish(request)

    run_async(_publish())
    out.print(
        f"scan {request.correlation_id} requested: watch {DEMO_CHANNEL} on the Slack page",
        highlight=False,
    )


def _check_listening(endpoint: str) -> None:
    """Fail at once, not after the AWS client's retries, when nothing listens there."""
    parts = urlsplit(endpoint)
    host = parts.hostname or DEFAULT_HOST
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=3):
            pass
    except OSError as exc:
        raise fail(
            f"nothing answers at {endpoint} ({exc.strerror or exc}); is `toilkit up` running? "
            "Pass its endpoint with --aws-endpoint, or use --no-scan and wait for the "
            "scheduled scan",
            1,
        ) from None
