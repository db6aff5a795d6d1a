"""A run's preview: the catalog command's dry run, shown to the approvers before they decide.

For a command with a ``preview`` in an environment that needs approval, the request is
previewed first, on the same runner as the run (its own process, build or execution:
:func:`~services.batch.runners.base.preview_id`):

* :meth:`Previews.start` records the fingerprint of the catalog entry and the values
  (``received`` -> ``previewing``) and starts the preview; the supervisor waits for it.
* :meth:`Previews.ended` acts on its end: a preview that succeeded asks for the approval
  with its exit code and output tail; any other (non-zero exit, timeout, stopped) ends the
  request at stage ``preview`` with its tail, and nobody is asked to approve.
* :meth:`Previews.refusal` is checked on Approve: the run starts only with the catalog
  entry and the values the preview ran with, else the approver is told to request again.
"""

from __future__ import annotations

import contextlib
import functools
import logging

from services.batch import lifecycle, outcomes
from services.batch.runners.base import (
    RunnerError,
    RunOutcome,
    RunSpec,
    StartedRun,
    preview_id,
)
from services.batch.steps import Launched, RunSteps
from shared.catalog import ValidatedRequest
from shared.events import PreviewResult
from shared.state_table.runs import RunRecord

log = logging.getLogger(__name__)

#: The output lines of a preview an approval request carries (Slack shows fewer when they
#: are long: services/notifier/blocks/text.py fits them to a block).
PREVIEW_TAIL_LINES = 20


class Previews:
    """Starts previews, acts on their end, and guards Approve against a stale preview.

    Args:
        steps: the run steps (store, runners, publisher, clock).
    """

    def __init__(self, steps: RunSteps) -> None:
        self.steps = steps
        self.runs = steps.runs

    def spec(self, record: RunRecord, request: ValidatedRequest) -> RunSpec | None:
        """The preview of ``request``: its argv, the command's env, its own timeout."""
        preview = request.command.preview
        argv = request.preview_argv()
        if preview is None or argv is None:
            return None
        run = self.steps.spec_for(record, request)
        return RunSpec(
            run_id=preview_id(record.run_id),
            request_event_id=preview_id(record.request_event_id),
            command=run.command,
            environment=run.environment,
            argv=tuple(argv),
            env=run.env,
            timeout_seconds=preview.timeout_seconds,
            settings=run.settings,
            workdir=run.workdir,
            mode="preview",
        )

    def spec_without_values(self, record: RunRecord) -> RunSpec | None:
        """A spec good enough to wait for a started preview (after a restart)."""
        run = self.steps.spec_without_values(record)
        command = self.steps.catalog.command(record.command)
        if run is None or command is None or command.preview is None:
            return None
        return RunSpec(
            run_id=preview_id(record.run_id),
            request_event_id=preview_id(record.request_event_id),
            command=run.command,
            environment=run.environment,
            argv=command.preview.template(command.argv),
            env={},
            timeout_seconds=command.preview.timeout_seconds,
            settings=run.settings,
            mode="preview",
        )

    @staticmethod
    def started_of(record: RunRecord) -> StartedRun | None:
        if record.preview_ref is None or record.preview_started_at is None:
            return None
        return StartedRun(
            runner=record.runner or "", ref=record.preview_ref, started_at=record.preview_started_at
        )

    # ------------------------------------------------------------------ starting

    async def start(
        self, record: RunRecord, request: ValidatedRequest, event_id: str
    ) -> Launched | None:
        """Start the preview of a received request (at most once per request).

        Returns:
            The started preview, for the supervisor to wait for; None when it was refused,
            failed to start (the request ends, with why) or is someone else's.

        Raises:
            TransientError: could not start it now; the event is retried.
        """
        spec = self.spec(record, request)
        assert spec is not None
        runner = self.steps.runners.get(spec.settings.kind)
        if runner is None:
            await self.steps.refuse(
                record,
                "runner",
                f"the {spec.settings.kind} runner is not configured in this batch service",
                event_id=event_id,
            )
            return None
        fingerprint = request.fingerprint()
        begun, changed = await self.runs.update(
            record.run_id,
            functools.partial(
                lifecycle.begin_preview,
                event_id=event_id,
                fingerprint=fingerprint,
                owner=self.steps.owner,
            ),
        )
        if begun is None or not changed:
            return None
        await self.runs.mark_active(record.run_id)
        try:
            started = await runner.start(spec)
        except RunnerError as exc:
            await self.ended(record.run_id, RunOutcome(status="failed", error=str(exc)))
            return None
        except BaseException:
            # Nothing started: the retried event previews it again.
            with contextlib.suppress(Exception):
                await self.runs.update(record.run_id, lifecycle.abandon_preview)
                await self.runs.mark_inactive(record.run_id)
            raise
        await self.runs.update(
            record.run_id, functools.partial(lifecycle.preview_started, started=started)
        )
        await self.runs.audit(
            record.run_id,
            "preview_started",
            f"{' '.join(spec.argv[:1])} on {started.runner} {started.ref} "
            f"(fingerprint {fingerprint[:12]}, time limit {spec.timeout_seconds:g}s)",
            event_id=event_id,
        )
        return Launched(record=begun, spec=spec, runner=runner, started=started)

    # ------------------------------------------------------------------ the end

    async def ended(self, run_id: str, outcome: RunOutcome) -> RunRecord | None:
        """Act on the end of a run's preview: ask for the approval, or end the request.

        Returns:
            The run as it is now (None when unknown).
        """
        record = await self.runs.get(run_id)
        if record is None or record.status != "previewing":
            return record  # cancelled or refused meanwhile, or acted on already
        result = _result(record, outcome)
        detail = f"{result.status}" + (
            f", exit status {result.exit_code}" if result.exit_code is not None else ""
        )
        await self.runs.audit(run_id, "previewed", detail, event_id=record.preview_by)
        after = await self._decide(record, result)
        # Only once decided: a run left active is settled again (restart, housekeeping).
        await self.runs.mark_inactive(run_id)
        return after

    async def _decide(self, record: RunRecord, result: PreviewResult) -> RunRecord | None:
        if record.cancel_requested_by is not None:
            return await self.steps.finish(
                record.run_id, RunOutcome(status="cancelled", error="withdrawn during its preview")
            )
        if result.status != "succeeded":
            return await self._fail(record, result)
        request = self.steps.revalidate(record)
        if isinstance(request, str):
            return await self.steps.refuse(
                record, "validation", request, event_id=record.preview_by
            )
        stale = self.refusal(record, request)
        if stale is not None:
            return await self.steps.refuse(record, "preview", stale, event_id=record.preview_by)
        return await self.steps.ask_approval(record, request, record.preview_by, result)

    async def _fail(self, record: RunRecord, result: PreviewResult) -> RunRecord | None:
        refused, changed = await self.runs.update(
            record.run_id,
            functools.partial(lifecycle.fail_preview, preview=result, now=self.steps.clock()),
        )
        if refused is None or not changed:
            return refused
        await self.runs.audit(
            record.run_id,
            "refused",
            f"preview: {refused.refusal_reason}",
            event_id=record.preview_by,
        )
        await self.steps.publisher.publish(outcomes.refused(refused))
        return refused

    # ------------------------------------------------------------------ approve

    def refusal(self, record: RunRecord, request: ValidatedRequest) -> str | None:
        """Why the run may not start on the strength of its preview (None: it may).

        The preview ran with one catalog entry and one set of values (its fingerprint);
        the run starts only with exactly those, and only if the command had a preview
        when one was due.
        """
        name = f"{record.command} in {record.environment}"
        if record.preview_fingerprint is None:
            if request.command.preview is None:
                return None
            return (
                f"the catalog now previews {name}, and this request was never previewed; "
                "nothing runs — request it again to see its preview"
            )
        if request.fingerprint() != record.preview_fingerprint:
            return (
                f"the catalog entry of {name} or the parameters changed since the preview "
                f"(fingerprint {record.preview_fingerprint[:12]}, now "
                f"{request.fingerprint()[:12]}); nothing runs — request it again to see a "
                "new preview"
            )
        return None


def _result(record: RunRecord, outcome: RunOutcome) -> PreviewResult:
    assert record.preview_fingerprint is not None
    error = outcome.error
    if outcome.status == "timed_out" and error is None:
        error = "stopped when its time limit was up"
    return PreviewResult(
        status=outcome.status,
        exit_code=outcome.exit_code,
        log_tail=outcome.log_tail[-PREVIEW_TAIL_LINES:],
        log_url=outcome.log_url,
        error=error,
        duration_seconds=max(outcome.duration_seconds or 0.0, 0.0),
        fingerprint=record.preview_fingerprint,
    )
