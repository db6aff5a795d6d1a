"""The detector's handlers: scan and tell (``DriftScanRequested``, through
:class:`services.detector.pipeline.DriftPipeline`), record claims (``DriftClaimed``), and
accept drift into code (``DriftAcceptRequested``, :mod:`services.detector.accept`).

Handlers are plain async functions over typed events; they see no SQS message, boto
dict or environment variable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from services.detector.accept.acceptor import DriftAcceptor
from services.detector.lifecycle import LifecycleStore
from services.detector.pipeline import DriftPipeline, ScanRequest
from shared.events import DriftAcceptRequested, DriftClaimed, DriftScanRequested, EventBase, utc_now
from shared.state_table.drift_actions import ScanGuard
from shared.worker import Handler

log = logging.getLogger(__name__)


@dataclass
class DetectorHandlers:
    """The queue handlers, built once with their dependencies.

    Attributes:
        pipeline: Scans and publishes.
        lifecycle: Records claims.
        acceptor: Turns "Accept into code" into a diff and a branch.
        clock: The current time.
    """

    pipeline: DriftPipeline
    lifecycle: LifecycleStore
    acceptor: DriftAcceptor
    clock: Callable[[], datetime] = utc_now
    scan_guard: ScanGuard | None = None

    async def on_drift_scan_requested(self, event: DriftScanRequested) -> None:
        """Scan the requested states (all when none is named) and publish the outcome."""
        outcome = await self.pipeline.run(ScanRequest.asked_by(event))
        if self.scan_guard is not None:
            # A Re-scan press holds its state until this scan is done (see the gateway).
            for state in event.states:
                await self.scan_guard.release(state, event.event_id)
        log.info(
            "scan %s: %d state(s), %d open finding(s), %d new, %d resolved",
            event.event_id,
            len(outcome.digest.states),
            outcome.digest.findings_open,
            outcome.digest.findings_new,
            outcome.digest.findings_resolved,
        )

    async def on_drift_claimed(self, event: DriftClaimed) -> None:
        """Record who took the findings ("I'm on it"); resolved ones are skipped."""
        claimed = await self.lifecycle.claim(
            event.state, event.fingerprints, event.claimed_by, now=self.clock()
        )
        skipped = len(set(event.fingerprints)) - len(claimed)
        if skipped:
            log.info(
                "%s claimed %d finding(s) of %s; %d were no longer open",
                event.claimed_by.name,
                len(claimed),
                event.state,
                skipped,
            )

    async def on_drift_accept_requested(self, event: DriftAcceptRequested) -> None:
        """Patch the code to say what the cloud has; the diff and branch go to the thread."""
        outcome = await self.acceptor.accept(event)
        log.info(
            "accept %s for %s: %d attribute(s) written, %d left, branch %s%s",
            event.state,
            event.requested_by.name,
            len(outcome.changed),
            len(outcome.skipped),
            outcome.branch or "none",
            f" ({outcome.problem})" if outcome.problem else "",
        )
        await self.pipeline.publisher.publish(outcome)


def build_handlers(deps: DetectorHandlers) -> Mapping[type[EventBase], Handler]:
    """Event class -> handler, for :meth:`shared.runtime.Runtime.worker`."""
    return {
        DriftScanRequested: deps.on_drift_scan_requested,
        DriftClaimed: deps.on_drift_claimed,
        DriftAcceptRequested: deps.on_drift_accept_requested,
    }
