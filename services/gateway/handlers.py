"""The gateway's logic, free of HTTP and Bolt: what a slash command, a modal submission or
a button press means, who may do it, and which event it becomes.

:mod:`services.gateway.app` turns Slack payloads into the typed inputs here and the results
back into acks, modal updates and ephemeral replies. Publishing an event is always the
last step of a decision, after validation and authorization; nothing is published for a
refused or invalid request except the audit event of a refusal.

Event and run ids are derived from the Slack request (its body's hash), so the same
request handled twice (a Slack retry that got past the request ledger, a replay) publishes
events with the same ids, which every consumer already deduplicates.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

from services.gateway.blocks import (
    BREAK_GLASS_BLOCK,
    COMMAND_BLOCK,
    ENVIRONMENT_BLOCK,
    MAX_REASON,
    REASON_BLOCK,
    ModalContext,
    Reply,
    RunForm,
    RunLine,
    drift_reply,
    help_reply,
    run_modal,
    runs_reply,
    text_reply,
    unknown_command_reply,
    view_errors,
)
from services.gateway.commands import UnknownCommand
from services.gateway.reruns import removed_command_reply, rerun_with_edits_view
from services.gateway.revert import plan_revert
from services.gateway.store import Records
from shared.authz import (
    approval_refusal,
    authorization_refusal,
    break_glass_refusal,
    may_cancel,
    rejection_refusal,
)
from shared.catalog import (
    MIN_BREAK_GLASS_REASON,
    ApprovalPolicy,
    Catalog,
    CommandSpec,
    FieldError,
    GroupDirectory,
    ValidatedRequest,
    validate_recorded,
    validate_request,
)
from shared.catalog_principals import Principals
from shared.errors import PermanentError, TransientError
from shared.event_ids import RunEventStart, fixed_event_id, run_event_start
from shared.events import (
    Actor,
    BatchApproved,
    BatchCancelRequested,
    BatchRejected,
    BatchRequested,
    BatchRunRefused,
    DriftClaimed,
    DriftRef,
    DriftScanRequested,
    EventBase,
    utc_now,
)
from shared.slack.actions import Action, BadButtonValue, ClaimValue, decode_claim_value
from shared.slack.blocks import code, escape
from shared.state_table.drift import OpenDrift
from shared.state_table.runs import RunRecord

log = logging.getLogger(__name__)

SOURCE = "gateway"
_ID_NAMESPACE = uuid.UUID("5b0f5d0e-6a59-4a43-9d4c-0c8f3f8a1e2b")
#: States whose open drift is read at once for ``drift``.
_DRIFT_READ_CONCURRENCY = 8

Publish: TypeAlias = Callable[[EventBase], Awaitable[Any]]


def drift_button_value(value: str, action: Action) -> ClaimValue | Reply:
    """The state and findings a drift button is about, or the reply for a forged one."""
    try:
        return decode_claim_value(value)
    except BadButtonValue:
        log.warning("%s button with an unreadable value: %.200r", action.value, value)
        return text_reply(
            ":warning: This button does not say which drift it is about; use a newer drift message."
        )


def derived_id(request_key: str, purpose: str) -> str:
    """An event id fixed by the Slack request it comes from (a UUID, as events use)."""
    return fixed_event_id(_ID_NAMESPACE, f"{request_key}:{purpose}")


def _about_run(request_key: str, event_type: str, run_id: str) -> RunEventStart:
    """The start of the ``event_type`` event about run ``run_id`` that the Slack request
    ``request_key`` publishes: its id fixed by the request (:func:`derived_id`: a retried
    request publishes the same event), and the run as its correlation id."""
    return run_event_start(derived_id(request_key, event_type), source=SOURCE, run_id=run_id)


def derived_run_id(request_key: str) -> str:
    """A short run id fixed by the Slack request (12 hex digits: readable in Slack)."""
    return uuid.uuid5(_ID_NAMESPACE, f"{request_key}:run").hex[:12]


def mention(actor: Actor) -> str:
    return f"<@{actor.slack_user_id}>" if actor.slack_user_id else escape(actor.name)


# =========================================================================== inputs


@dataclass(frozen=True)
class Requester:
    """The person behind an interaction, and where it happened."""

    user_id: str
    name: str
    channel_id: str | None = None

    @property
    def actor(self) -> Actor:
        return Actor(slack_user_id=self.user_id, name=self.name or self.user_id)


# =========================================================================== form outcomes


@dataclass(frozen=True)
class FormErrors:
    """Show these messages under their fields (``response_action: errors``)."""

    errors: dict[str, str]


@dataclass(frozen=True)
class FormRebuild:
    """The form on screen belongs to another command than the one picked: show this."""

    view: dict[str, Any]


@dataclass(frozen=True)
class FormAccepted:
    """Valid; close the modal and decide about it after the ack."""

    request: ValidatedRequest
    reason: str
    break_glass: bool = False


FormOutcome: TypeAlias = FormErrors | FormRebuild | FormAccepted


@dataclass(frozen=True)
class RunQueued:
    run_id: str
    reply: Reply


@dataclass(frozen=True)
class RunRefused:
    reason: str
    reply: Reply


@dataclass(frozen=True)
class RunNotDecided:
    """Nothing happened (authorization could not be checked, or publishing failed)."""

    reply: Reply


RunDecision: TypeAlias = RunQueued | RunRefused | RunNotDecided


# =========================================================================== the gateway


@dataclass(kw_only=True, eq=False)
class Gateway:
    """Everything the gateway decides, over our own seams.

    Args:
        catalog: the command catalog.
        records: open drift and run records (read-only).
        directory: user group membership (cached Slack, or the catalog's groups).
        publish: publishes one event to the topic.
        command_name: the slash command, for help texts.
        recent_runs: how many runs ``runs`` shows.
        clock: the current time.
    """

    catalog: Catalog
    records: Records
    directory: GroupDirectory
    publish: Publish
    command_name: str = "/toil"
    recent_runs: int = 10
    clock: Callable[[], datetime] = utc_now

    # ------------------------------------------------------------ slash command

    def help(self) -> Reply:
        return help_reply(self.command_name)

    def unknown(self, command: UnknownCommand) -> Reply:
        return unknown_command_reply(self.command_name, command.text, command.problem)

    def run_modal(self, channel_id: str | None, command: str | None = None) -> dict[str, Any]:
        """The modal ``run`` opens (with ``command``'s form when it names one)."""
        known = command if command and self.catalog.command(command) else None
        return run_modal(self.catalog, ModalContext(channel_id=channel_id, command=known))

    async def drift_overview(self, state: str | None) -> Reply:
        """Open drift of one state, or of every scanned state."""
        scans = await self.records.scanned_states()
        scanned = {s.state: (s.scanned_at, s.status) for s in scans}
        if state is not None:
            states = [state]
        elif scans:
            states = sorted(scanned)
        else:
            return text_reply(
                "No drift data yet: the detector has not scanned any state. "
                f"Ask for one with `{self.command_name} drift scan STATE`."
            )
        if state is not None and state not in scanned:
            return text_reply(
                f"No drift data for {code(state)} yet: the detector has not scanned it. "
                f"Ask for a scan with `{self.command_name} drift scan {escape(state)}`."
            )
        gate = asyncio.Semaphore(_DRIFT_READ_CONCURRENCY)

        async def read(name: str) -> list[OpenDrift]:
            async with gate:
                return await self.records.open_drift(name)

        found = await asyncio.gather(*(read(s) for s in states))
        drift = dict(zip(states, found, strict=True))
        return drift_reply(drift, now=self.clock(), scanned=scanned)

    async def runs_overview(self) -> Reply:
        runs = await self.records.recent_runs(self.recent_runs)
        lines = [
            RunLine(
                run_id=r.run_id,
                command=r.command,
                environment=r.environment,
                status=r.status,
                requested_by=mention(r.requested_by),
                requested_at=r.requested_at,
            )
            for r in runs
        ]
        return runs_reply(lines, now=self.clock())

    def scan_request(
        self, state: str, requester: Requester, request_key: str
    ) -> DriftScanRequested:
        """The on-demand scan a ``drift scan STATE`` asks for."""
        event_id = derived_id(request_key, "DriftScanRequested")
        return DriftScanRequested(
            event_id=event_id,
            correlation_id=event_id,
            source=SOURCE,
            states=(state,),
            requested_by=requester.actor,
            reply_channel=requester.channel_id,
        )

    async def request_scan(
        self, state: str, requester: Requester, request_key: str
    ) -> Reply | None:
        """Publish the scan request; a reply only when it could not be queued."""
        event = self.scan_request(state, requester, request_key)
        failure = await self._try_publish(event)
        if failure:
            return text_reply(f":warning: The scan of {code(state)} was not requested: {failure}")
        return None

    # ------------------------------------------------------------ the run modal

    def check_run_form(self, form: RunForm, modal: ModalContext) -> FormOutcome:
        """Validate a submitted run modal with the catalog's own validator."""
        if not form.command:
            return FormErrors({COMMAND_BLOCK: "Pick a command."})
        spec = self.catalog.command(form.command)
        if spec is None:
            return FormErrors(
                {COMMAND_BLOCK: "This command is no longer in the catalog; pick another."}
            )
        if modal.command != form.command:
            # The picker changed and the form on screen is another command's: show the
            # right one instead of validating the wrong fields.
            return FormRebuild(self.run_modal(modal.channel_id, form.command))
        errors: list[FieldError] = []
        reason = form.reason.strip()
        if not reason:
            errors.append(FieldError(field=REASON_BLOCK, message="Say why this run is needed."))
        elif len(form.reason) > MAX_REASON:
            errors.append(
                FieldError(field=REASON_BLOCK, message=f"At most {MAX_REASON} characters.")
            )
        if not form.environment:
            errors.append(FieldError(field=ENVIRONMENT_BLOCK, message="Pick an environment."))
        checked = validate_request(
            self.catalog, form.command, form.environment or "", form.parameters
        )
        if isinstance(checked, list):
            errors.extend(e for e in checked if form.environment or e.field != ENVIRONMENT_BLOCK)
        if form.break_glass and form.environment:
            errors.extend(_break_glass_form_errors(spec, form.environment, reason))
        if errors or isinstance(checked, list):
            return FormErrors(view_errors(errors, spec))
        return FormAccepted(request=checked, reason=form.reason, break_glass=form.break_glass)

    async def request_run(
        self,
        request: ValidatedRequest,
        *,
        reason: str,
        requester: Requester,
        request_key: str,
        rerun_of: str | None = None,
        break_glass: bool = False,
        reverts: DriftRef | None = None,
    ) -> RunDecision:
        """Authorize a valid request, then publish it (or its refusal, for the audit)."""
        run_id = derived_run_id(request_key)
        command, environment = request.command.name, request.environment
        try:
            refusal = await authorization_refusal(request, requester.user_id, self.directory)
            if refusal is None and break_glass:
                refusal = await break_glass_refusal(
                    request, requester.user_id, reason, self.directory
                )
                if refusal is not None:
                    return await self._refuse(
                        request, requester, request_key, refusal, "You may not break glass"
                    )
        except TransientError as exc:
            log.warning("cannot check who may run %s: %s", command, exc)
            return RunNotDecided(
                text_reply(
                    f":warning: {escape(command)} was not requested: I could not check who "
                    "may run it just now (Slack did not answer). Please try again."
                )
            )
        if refusal is not None:
            return await self._refuse(request, requester, request_key, refusal, "You may not run")
        event = BatchRequested(
            **_about_run(request_key, "BatchRequested", run_id),
            command=command,
            environment=environment,
            # The batch service needs every value to run it, sensitive ones included; only
            # outcome events hide them.
            parameters=request.run_parameters(reveal_sensitive=True),
            reason=reason,
            requested_by=requester.actor,
            channel_id=requester.channel_id,
            rerun_of=rerun_of,
            break_glass=break_glass,
            reverts=reverts,
        )
        failure = await self._try_publish(event)
        if failure:
            return RunNotDecided(
                text_reply(f":warning: *{escape(command)}* was not requested: {failure}")
            )
        approval = request.policy.approval
        waits = " It waits for an approval before it starts." if approval else ""
        if approval and request.command.preview is not None:
            waits = (
                " Its preview runs first; if it succeeds, it waits for an approval (the "
                "approvers see the preview's output)."
            )
        if break_glass and approval:
            waits = (
                " :rotating_light: Break-glass: it starts without approval, and its approvers "
                "are told now, with your reason."
            )
        again = f" It runs {code(rerun_of)} again." if rerun_of else ""
        return RunQueued(
            run_id=run_id,
            reply=text_reply(
                f":inbox_tray: Requested *{escape(command)}* in *{escape(environment)}* "
                f"(run {code(run_id)}).{again}{waits}"
            ),
        )

    async def _refuse(
        self,
        request: ValidatedRequest,
        requester: Requester,
        request_key: str,
        refusal: str,
        opening: str,
    ) -> RunRefused:
        """Record the refusal (``BatchRunRefused``) and tell the requester why."""
        run_id = derived_run_id(request_key)
        command, environment = request.command.name, request.environment
        refused = BatchRunRefused(
            **_about_run(request_key, "BatchRunRefused", run_id),
            command=command,
            environment=environment,
            requested_by=requester.actor,
            stage="authorization",
            reason=refusal,
        )
        failure = await self._try_publish(refused)
        if failure:
            log.error("refusal of run %s not recorded: %s", run_id, failure)
        return RunRefused(
            reason=refusal,
            reply=text_reply(
                f":no_entry: {opening} *{escape(command)}* in *{escape(environment)}*, "
                "so nothing was queued. Ask someone allowed to run it, or a catalog owner "
                f"to add you.\n>{escape(refusal)}"
            ),
        )

    # ------------------------------------------------------------ buttons

    async def cancel(self, run_id: str, requester: Requester, request_key: str) -> Reply:
        """``batch_cancel``: the requester, whoever may run it there, or its approvers."""
        record = await self.records.run(run_id)
        if record is None:
            return _no_such_run(run_id)
        if record.final:
            return text_reply(f"Run {code(run_id)} already ended ({escape(record.status)}).")
        try:
            allowed = await may_cancel(self.catalog, record, requester.user_id, self.directory)
        except TransientError:
            return _cannot_check_now("cancel", run_id)
        if not allowed:
            return text_reply(
                f":no_entry: Only {mention(record.requested_by)}, people allowed to run "
                f"*{escape(record.command)}* in *{escape(record.environment)}*, or its "
                f"approvers can cancel run {code(run_id)}."
            )
        event = BatchCancelRequested(
            **_about_run(request_key, "BatchCancelRequested", run_id),
            requested_by=requester.actor,
        )
        failure = await self._try_publish(event)
        if failure:
            return text_reply(f":warning: Run {code(run_id)} was not cancelled: {failure}")
        return text_reply(f":octagonal_sign: Cancelling run {code(run_id)}…")

    async def decide_approval(
        self, run_id: str, requester: Requester, request_key: str, *, approve: bool
    ) -> Reply:
        """``batch_approve`` / ``batch_reject``, checked as the batch service checks them.

        Approving takes an approver of the catalog's current policy other than the
        requester (the batch service refuses the whole run on a self-approval, so one is
        never sent). Rejecting takes an approver, or the requester withdrawing it.
        """
        verb = "approve" if approve else "reject"
        record = await self.records.run(run_id)
        if record is None:
            return _no_such_run(run_id)
        if record.status != "awaiting_approval":
            return text_reply(
                f"Run {code(run_id)} is not waiting for an approval "
                f"(it is {escape(record.status)})."
            )
        spec = self.catalog.command(record.command)
        environment = spec.environments.get(record.environment) if spec else None
        policy = environment.approval if environment is not None else None
        if policy is None:
            return text_reply(
                f":no_entry: Nobody can {verb} run {code(run_id)}: the catalog names no "
                f"approvers for *{escape(record.command)}* in *{escape(record.environment)}*."
            )
        try:
            refusal = await self._decision_refusal(policy, record, requester, approve=approve)
        except TransientError:
            return _cannot_check_now(verb, run_id)
        if refusal is not None:
            log.info("refused to %s run %s for %s: %s", verb, run_id, requester.user_id, refusal)
            return text_reply(
                f":no_entry: You cannot {verb} run {code(run_id)}.\n>"
                + _decision_refusal_words(policy, record, requester, approve=approve)
            )
        event: EventBase
        if approve:
            event = BatchApproved(
                **_about_run(request_key, "BatchApproved", run_id),
                approved_by=requester.actor,
            )
        else:
            event = BatchRejected(
                **_about_run(request_key, "BatchRejected", run_id),
                rejected_by=requester.actor,
                reason=f"rejected in Slack by {requester.name or requester.user_id}",
            )
        failure = await self._try_publish(event)
        if failure:
            return text_reply(
                f":warning: Your decision on run {code(run_id)} was not sent: {failure}"
            )
        done = "Approved" if approve else "Rejected"
        return text_reply(f"{done} run {code(run_id)}.")

    async def _decision_refusal(
        self, policy: ApprovalPolicy, record: RunRecord, requester: Requester, *, approve: bool
    ) -> str | None:
        requested_by = record.requested_by.slack_user_id
        if approve:
            return await approval_refusal(policy, requested_by, requester.user_id, self.directory)
        return await rejection_refusal(policy, requested_by, requester.user_id, self.directory)

    async def rerun(self, run_id: str, requester: Requester, request_key: str) -> Reply:
        """``batch_rerun``: the same command, environment and parameters, as a new request
        by the person who pressed the button (validated and authorized as theirs)."""
        record = await self.records.run(run_id)
        if record is None:
            return _no_such_run(run_id)
        if self.catalog.command(record.command) is None:
            return removed_command_reply(record)
        hidden = [p.name for p in record.parameters if p.sensitive and p.value is None]
        if hidden:
            return text_reply(
                f"Run {code(run_id)} had sensitive parameters ({escape(', '.join(hidden))}), "
                f"which are not kept; start it again with `{self.command_name} run "
                f"{escape(record.command)}`."
            )
        checked = validate_recorded(self.catalog, record)
        if isinstance(checked, list):
            problems = "\n".join(f"• {escape(str(e))}" for e in checked)
            return text_reply(
                f"Run {code(run_id)} cannot run again as it was; the catalog changed:\n{problems}"
            )
        reason = f"Rerun of {run_id}" + (f": {record.reason}" if record.reason else "")
        decision = await self.request_run(
            checked,
            reason=reason[:MAX_REASON],
            requester=Requester(
                requester.user_id, requester.name, requester.channel_id or record.channel_id
            ),
            request_key=request_key,
            rerun_of=run_id,
        )
        return decision.reply

    async def rerun_with_edits(self, run_id: str, channel_id: str | None) -> dict[str, Any] | Reply:
        """``batch_rerun_edit``: the run modal prefilled from run ``run_id`` (or why not)."""
        record = await self.records.run(run_id)
        if record is None:
            return _no_such_run(run_id)
        return rerun_with_edits_view(self.catalog, record, channel_id)

    async def claim_drift(self, value: str, requester: Requester, request_key: str) -> Reply | None:
        """``drift_claim``: "I'm on it" (the drift message then shows who)."""
        claim = drift_button_value(value, Action.DRIFT_CLAIM)
        if isinstance(claim, Reply):
            return claim
        event = DriftClaimed(
            event_id=derived_id(request_key, "DriftClaimed"),
            correlation_id=derived_id(request_key, "claim"),
            source=SOURCE,
            state=claim.state,
            fingerprints=claim.fingerprints,
            claimed_by=requester.actor,
        )
        failure = await self._try_publish(event)
        if failure:
            return text_reply(f":warning: Your claim was not recorded: {failure}")
        return None

    async def revert_drift(self, value: str, requester: Requester, request_key: str) -> Reply:
        """``drift_revert``: request the catalog's revert command for the report's open
        drift (:mod:`services.gateway.revert`)."""
        claim = drift_button_value(value, Action.DRIFT_REVERT)
        if isinstance(claim, Reply):
            return claim
        planned = await plan_revert(self.catalog, self.records, claim)
        if isinstance(planned, Reply):
            return planned
        decision = await self.request_run(
            planned.request,
            reason=planned.reason[:MAX_REASON],
            requester=requester,
            request_key=request_key,
            reverts=DriftRef(state=claim.state, fingerprints=claim.fingerprints),
        )
        return decision.reply

    def unknown_action(self, action_id: str) -> Reply:
        return text_reply(
            f":thinking_face: I don't know what to do with {code(action_id)} (an older "
            f"message, or a newer app?). Try `{self.command_name} help`."
        )

    # ------------------------------------------------------------ plumbing

    async def _try_publish(self, event: EventBase) -> str | None:
        """Publish; None when done, else what to tell the person."""
        try:
            await self.publish(event)
        except (TransientError, PermanentError) as exc:
            log.error("publishing %s failed: %s", type(event).__name__, exc)
            return "toilkit could not queue it just now. Please try again in a minute."
        return None


def _decision_refusal_words(
    policy: ApprovalPolicy, record: RunRecord, requester: Requester, *, approve: bool
) -> str:
    """Why a decision was refused, said to the person who clicked (the logged reason names
    user ids, which Slack would show them raw)."""
    approvers = principal_mentions(policy.approvers)
    if approve and requester.user_id == record.requested_by.slack_user_id:
        return (
            f"You requested this run, so another approver must approve it (no "
            f"self-approval): {approvers}."
        )
    if approve:
        return f"You are not an approver here; its approvers are {approvers}."
    return (
        f"You are neither the requester nor an approver: its approvers ({approvers}) or "
        f"{mention(record.requested_by)}, who requested it, can reject it."
    )


def _break_glass_form_errors(spec: CommandSpec, environment: str, reason: str) -> list[FieldError]:
    """What is wrong with ticking break-glass here, under the fields concerned."""
    policy = spec.environments.get(environment)
    if policy is None:
        return []
    if policy.break_glass is None:
        allowing = [n for n, p in spec.environments.items() if p.break_glass is not None]
        return [
            FieldError(
                field=BREAK_GLASS_BLOCK,
                message=f"{environment} does not allow break-glass (only "
                f"{', '.join(allowing) or 'no environment'}); untick it to ask for approval.",
            )
        ]
    if len(reason) < MIN_BREAK_GLASS_REASON:
        return [
            FieldError(
                field=REASON_BLOCK,
                message=f"Break-glass needs a reason of at least {MIN_BREAK_GLASS_REASON} "
                "characters: the incident and what is broken.",
            )
        ]
    return []


def principal_mentions(principals: Principals) -> str:
    """Users as ``<@U...>`` and user groups as ``<!subteam^S...>``, which Slack shows by name."""
    users = [f"<@{user}>" for user in principals.users]
    groups = [f"<!subteam^{group}>" for group in principals.usergroups]
    return ", ".join(users + groups)


def _no_such_run(run_id: str) -> Reply:
    return text_reply(f"I cannot find run {code(run_id)} (it may have expired from the history).")


def _cannot_check_now(verb: str, run_id: str) -> Reply:
    return text_reply(
        f":warning: I could not check whether you may {verb} run {code(run_id)} just now "
        "(Slack did not answer). Please try again."
    )
