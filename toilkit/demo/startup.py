"""The demo under ``toilkit up``: written before the services start, made to drift while
they run.

``toilkit up`` with no detector configuration of its own (no ``TOILKIT_DETECTOR_CONFIG``,
no ``TOILKIT_DETECTOR_REPO``, no ``toilkit.yaml`` where it runs) and no ``--no-demo``:

1. :meth:`UpDemo.write` lays the demo repository out (milliseconds) and points the
   detector at it through its usual settings, before the services are built;
2. :meth:`UpDemo.prepare` runs in the background while the services start: ``init`` and
   ``apply`` of both states (a few seconds), a change to the cloud outside Terraform, and
   a ``DriftScanRequested`` on the events topic, so the drift reaches the Slack stand-in
   the way any scan's does.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path

from rich.console import Console

from services.detector.config import CONFIG_FILE_NAME
from services.detector.settings import DetectorSettings
from shared.errors import ConfigError
from shared.events import Actor, DriftScanRequested
from shared.publishing import EventPublisher
from shared.settings import load_settings
from toilkit.demo.repo import (
    CLEAN_STATE,
    DEMO_CHANNEL,
    DRIFTING_STATE,
    DemoRepo,
    apply_demo,
    drift_cloud,
    write_demo,
)

log = logging.getLogger(__name__)

DEMO_SOURCE = "toilkit-demo"
DEMO_ACTOR = Actor(name="toilkit demo")


def demo_scan_request(why: str) -> DriftScanRequested:
    """A scan of every demo state, asked for by the demo (``why``: "up", "drift", "fix")."""
    return DriftScanRequested(
        correlation_id=f"demo-{why}-{uuid.uuid4().hex[:8]}",
        source=DEMO_SOURCE,
        requested_by=DEMO_ACTOR,
    )


def has_own_detector_config(cwd: Path) -> bool:
    """Whether the detector is configured already: then ``toilkit up`` runs no demo."""
    try:
        settings = load_settings(DetectorSettings)
    except ConfigError:
        return True  # a wrong setting is the person's own; the detector's build names it
    return (
        settings.config is not None
        or settings.repo is not None
        or (cwd / CONFIG_FILE_NAME).is_file()
    )


class UpDemo:
    """The demo of one ``toilkit up``.

    Args:
        demo: The demo repository, written already.
        console: Where progress goes (``toilkit up``'s console).
    """

    def __init__(self, demo: DemoRepo, console: Console) -> None:
        self.demo = demo
        self.console = console
        self.scan_request: DriftScanRequested | None = None

    @classmethod
    def write(cls, root: Path, console: Console) -> UpDemo:
        """Lay out the demo under ``root`` and point the detector about to be built at it.

        Raises:
            DemoError: ``root`` cannot be written.
        """
        demo = write_demo(root)
        # The detector reads its settings from the environment when it is built; its
        # Terraform (this process's environment) needs the demo's provider mirror.
        os.environ["TOILKIT_DETECTOR_CONFIG"] = str(demo.config_file)
        os.environ["TOILKIT_DETECTOR_PLUGIN_CACHE_DIR"] = str(demo.mirror.plugin_cache_dir)
        os.environ["TF_CLI_CONFIG_FILE"] = str(demo.mirror.cli_config)
        # The demo catalog's drift.revert runs `toilkit drift apply`: offer its button.
        os.environ.setdefault("TOILKIT_NOTIFIER_DRIFT_REVERT", "true")
        return cls(demo, console)

    async def prepare(self, publisher: EventPublisher) -> bool:
        """Apply the demo, drift its cloud and request a scan; False if that failed.

        A failure is logged, never raised: ``toilkit up`` runs on without its demo.
        """
        started = time.monotonic()
        try:
            with self.console.status("demo: preparing the infrastructure") as status:

                def show(step: str) -> None:
                    status.update(f"demo: {step} (in {self.demo.infra})")

                await apply_demo(self.demo, on_step=show)
                changes = drift_cloud(self.demo)
                show("requesting a drift scan")
                request = demo_scan_request("up")
                await publisher.publish(request)
        except Exception:
            # The demo is a courtesy: whatever broke it must not stop the services.
            log.exception("demo: could not be prepared; toilkit runs on without it")
            return False
        self.scan_request = request
        elapsed = time.monotonic() - started
        self.console.print(
            f"[green]demo ready in {elapsed:.1f} s:[/] changed outside Terraform: "
            + "; ".join(change.describe() for change in changes),
            highlight=False,
        )
        self.console.print(
            f"demo: scan {request.correlation_id} requested; the drift of "
            f"{DRIFTING_STATE} shows in {DEMO_CHANNEL} on the Slack page in a few seconds",
            highlight=False,
        )
        return True

    def banner_rows(self, options: str = "") -> list[tuple[str, str]]:
        """Rows for ``toilkit up``'s banner: where the demo is and how to play with it.

        Args:
            options: What ``toilkit demo drift``/``fix`` need to reach this process
                (``--dir``, ``--aws-endpoint``), with a leading space; empty by default.
        """
        command = ".venv/bin/toilkit demo"
        return [
            (
                "demo repo",
                f"{self.demo.infra} (Terraform states {DRIFTING_STATE} and {CLEAN_STATE}; "
                "written afresh at each start)",
            ),
            ("demo drift", f"{command} drift{options}   <- change its cloud outside Terraform"),
            ("demo fix", f"{command} fix{options}   <- terraform apply, then a scan: resolved"),
        ]
