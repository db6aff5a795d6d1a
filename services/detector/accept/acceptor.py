"""``DriftAcceptRequested`` -> ``DriftAccepted``: plan afresh, patch, format, push.

The drift message may be hours old, so the acceptor plans the state again (refresh-only:
only what changed outside Terraform matters here) and accepts the requested findings as
they are *now*. A finding the fresh plan no longer shows is reported as ``gone`` (fixed
since the report), never patched from stale values. The patched files are run through
``terraform fmt`` (the alignment Terraform's own style wants), then pushed as a branch
when the configuration names a remote; the diff goes to the thread in every case.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from services.detector.accept.git import GitTarget, PushRefused, push_patch
from services.detector.accept.patch import AcceptedCode, FileEdit, accept_findings
from services.detector.config import DetectorConfig
from services.detector.plan import PlanFinding, to_event_finding
from services.detector.scan import Scanner
from shared.event_ids import fixed_event_id
from shared.events import (
    MAX_ACCEPT_DIFF,
    AcceptedAttribute,
    AttributeChange,
    DriftAccepted,
    DriftAcceptRequested,
    EventBase,
    utc_now,
)

log = logging.getLogger(__name__)

#: How long ``terraform fmt`` may take on one file before the unformatted text is kept.
FMT_TIMEOUT_SECONDS = 30

#: The fields a ``DriftAccepted`` takes from its ``DriftAcceptRequested`` as they are (same
#: name, same meaning): the thread's correlation and everything the request holds beyond
#: its envelope (which findings of which state, who asked). The rest is the outcome's own
#: (``tests/unit/test_detector_accept_outcome.py`` pins both).
ACCEPTED_FROM_REQUEST: set[str] = (
    set(DriftAcceptRequested.model_fields) - set(EventBase.model_fields) - {"type"}
) | {"correlation_id"}


@dataclass
class DriftAcceptor:
    """Turns an "Accept into code" into a diff and a branch.

    Attributes:
        config: The repository and its states (``accept:`` says where to push).
        scanner: Plans the state afresh.
        terraform: The command that runs Terraform (for ``fmt``).
        source: The ``source`` of the outcome event.
        clock: The current time (the branch is named after its day).
    """

    config: DetectorConfig
    scanner: Scanner
    terraform: Sequence[str]
    source: str
    clock: Callable[[], datetime] = utc_now

    async def accept(self, event: DriftAcceptRequested) -> DriftAccepted:
        """The outcome of ``event``; every problem is in its ``problem`` field, in words."""
        state = self.config.state(event.state)
        if state is None:
            return self._outcome(event, problem=f"{event.state} is not in toilkit.yaml any more")
        report = await self.scanner.scan(
            [state], scan_id=f"accept-{event.event_id}", mode="refresh_only"
        )
        scan = report.states[0]
        if scan.summary is None:
            return self._outcome(event, problem=f"the plan failed: {scan.failure}")
        drifts = {f.fingerprint: f for f in scan.summary.findings if f.kind == "drift"}
        wanted = list(dict.fromkeys(event.fingerprints)) or list(drifts)
        gone = tuple(fp for fp in wanted if fp not in drifts)
        chosen = [drifts[fp] for fp in wanted if fp in drifts]
        if not chosen:
            return self._outcome(
                event, gone=gone, problem="the drift is gone: the fresh plan no longer shows it"
            )
        code = accept_findings(
            state.directory, [self._attributes(f) for f in chosen], root=self.config.repo
        )
        edits = tuple([await self._formatted(edit) for edit in code.edits])
        code = AcceptedCode(code.patches, code.failures, edits)
        outcome = self._outcome(event, code=code, gone=gone)
        if not edits:
            return outcome.model_copy(
                update={"problem": "nothing could be written into code (see why below)"}
            )
        return await self._pushed(event, code, outcome)

    async def _pushed(
        self, event: DriftAcceptRequested, code: AcceptedCode, outcome: DriftAccepted
    ) -> DriftAccepted:
        accept = self.config.accept
        if accept.remote is None:
            return outcome
        target = GitTarget(self.config.repo, accept.remote, accept.base, accept.compare_url)
        addresses = ", ".join(p.address for p in code.patches)
        message = (
            f"Accept drift of {event.state} into code\n\n{addresses}\n\n"
            f"Requested by {event.requested_by.name} from Slack (toilkit)."
        )
        try:
            pushed = await push_patch(
                target,
                code.edits,
                state=event.state,
                day=self.clock().date(),
                message=message,
                author=accept.author,
            )
        except PushRefused as exc:
            log.warning("accept %s: no branch pushed: %s", event.state, exc)
            return outcome.model_copy(update={"problem": f"no branch was pushed: {exc}"})
        return outcome.model_copy(
            update={
                "branch": pushed.branch,
                "commit": pushed.commit,
                "compare_url": pushed.compare_url,
            }
        )

    def _attributes(self, finding: PlanFinding) -> tuple[str, Sequence[AttributeChange]]:
        event_finding = to_event_finding(finding, first_seen=self.clock())
        return finding.address, event_finding.attributes

    async def _formatted(self, edit: FileEdit) -> FileEdit:
        """The edit with ``terraform fmt`` applied, or as it is when fmt cannot run."""
        try:
            process = await asyncio.create_subprocess_exec(
                *self.terraform,
                "fmt",
                "-no-color",
                "-",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            async with asyncio.timeout(FMT_TIMEOUT_SECONDS):
                out, err = await process.communicate(edit.after.encode("utf-8"))
        except (OSError, TimeoutError) as exc:
            log.warning("terraform fmt did not run on %s: %s", edit.path.name, exc)
            return edit
        if process.returncode != 0 or not out.strip():
            log.warning("terraform fmt refused %s: %s", edit.path.name, err.decode()[-300:])
            return edit
        return FileEdit(edit.path, edit.before, out.decode("utf-8"))

    def _outcome(
        self,
        event: DriftAcceptRequested,
        *,
        code: AcceptedCode | None = None,
        gone: tuple[str, ...] = (),
        problem: str | None = None,
    ) -> DriftAccepted:
        changed: list[AcceptedAttribute] = []
        skipped: list[AcceptedAttribute] = []
        diff = ""
        if code is not None:
            for patch in code.patches:
                changed += [AcceptedAttribute(address=patch.address, path=p) for p in patch.changed]
                skipped += [
                    AcceptedAttribute(address=patch.address, path=s.path, reason=s.reason)
                    for s in patch.skipped
                ]
            skipped += [
                AcceptedAttribute(address=address, path="*", reason=why)
                for address, why in code.failures
            ]
            diff = code.diff(self.config.repo)
            if len(diff) > MAX_ACCEPT_DIFF:
                diff = diff[: MAX_ACCEPT_DIFF - 40] + "\n... (clipped; the branch has all of it)\n"
        return DriftAccepted(
            # Fixed by the request: a redelivered request's outcome is the same event,
            # which the notifier posts once.
            event_id=fixed_event_id(uuid.NAMESPACE_URL, f"toilkit:accepted:{event.event_id}"),
            **event.model_dump(include=ACCEPTED_FROM_REQUEST),
            source=self.source,
            diff=diff,
            changed=tuple(changed),
            skipped=tuple(skipped),
            gone=gone,
            problem=problem,
        )
