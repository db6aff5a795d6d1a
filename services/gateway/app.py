"""The Bolt app: which Slack request goes to which listener, and what is acked.

Listeners are thin: they read the payload into our typed inputs, ask
:class:`~services.gateway.handlers.Gateway`, ack, and hand the slow part to
:class:`~services.gateway.background.AfterAck`. The app runs with
``process_before_response=True``: the ack is the listener's answer as soon as it returns,
without Bolt's 10 ms polling for it, and nothing runs after the answer that
:class:`AfterAck` does not track.

============================  ===============================================================
request                       answer
============================  ===============================================================
``/toil`` (name configurable)  ``run [COMMAND]``: ack, then views.open with the trigger id at
                              once; ``drift [STATE]``, ``runs``, ``help``: an ephemeral
                              answer in the ack; ``drift scan STATE``: ack, then publish
                              ``DriftScanRequested``; anything else: a friendly ephemeral
command picker (in the modal)  ack, then views.update to that command's form
run modal submitted           invalid (a listed choice not in its list, break-glass over the
                              day's limit included): ``response_action: errors``; valid:
                              ack (closes), then authorize and publish ``BatchRequested`` or
                              refuse (ephemeral + ``BatchRunRefused``)
buttons                       ack, then the event (``batch_cancel``, ``batch_approve``,
                              ``batch_reject``, ``batch_rerun``, ``drift_claim``)
``drift_ignore``              ack, check who may, then views.open: the ignore modal
ignore modal submitted        a day in the past / too far: ``errors``; valid: ack (closes),
                              then the rule is written and the thread told
``drift_rescan_*``            ack, then hold the state's scan slot and publish
                              ``DriftScanRequested`` (a second press: an ephemeral)
``batch_rerun_edit``          ack, read the run, then views.open: the run modal prefilled
                              (or an ephemeral saying why it cannot run again)
``block_suggestion``          the options of a listed choice (``options_from``) in the ack,
                              from memory; never waits on the source
link buttons, closed modals   ack
anything unknown              ack, then a friendly ephemeral
============================  ===============================================================
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from services.gateway.background import AfterAck
from services.gateway.blocks import (
    IGNORE_MODAL_CALLBACK,
    PARAM_BLOCK_PREFIX,
    PICK_COMMAND_ACTION,
    RUN_MODAL_CALLBACK,
    ModalContext,
    Reply,
    read_run_form,
    text_reply,
)
from services.gateway.commands import (
    OpenRunModal,
    ScanDrift,
    ShowDrift,
    ShowHelp,
    ShowRuns,
    UnknownCommand,
    parse_command_text,
)
from services.gateway.handlers import (
    FormAccepted,
    FormErrors,
    FormRebuild,
    Gateway,
    Requester,
    derived_id,
    drift_button_value,
)
from services.gateway.ledger import (
    REQUEST_KEY,
    RecentRequests,
    RequestLedger,
    recent_requests_middleware,
    request_key,
)
from services.gateway.payloads import BlockActions, BlockSuggestion, SlashCommand, ViewSubmission
from services.gateway.replies import EphemeralReplier
from services.gateway.submission import SubmissionChecks
from shared.errors import PermanentError, TransientError
from shared.events import ScanMode
from shared.slack.actions import (
    LINK_ACTIONS,
    Action,
    BadButtonValue,
    decode_ignore_value,
    decode_rescan_value,
    decode_run_value,
)
from shared.slack.blocks import code

if TYPE_CHECKING:
    from services.gateway.drift_actions import DriftActions

log = logging.getLogger(__name__)

#: What answers a button after the ack: from its value, who pressed it and the request key,
#: the reply (None: nothing to say).
ButtonAnswer = Callable[[str, Requester, str], Awaitable[Reply | None]]
#: A Bolt listener of a button (Bolt passes it the arguments it names: ack, body, context).
ButtonListener = Callable[..., Awaitable[None]]

ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class AppParts:
    """What the listeners work with, built once by the service."""

    gateway: Gateway
    client: AsyncWebClient
    replier: EphemeralReplier
    after_ack: AfterAck
    command_name: str
    read_timeout: float
    #: Shared across gateway instances: asked after the ack, before anything is published.
    ledger: RequestLedger | None = None
    #: Builds what the drift report's Ignore…, Accept and Re-scan buttons do (None: they
    #: answer "not set up"), called on the first press: its stores, modal and module are
    #: not loaded at open, where a Lambda cold start (a ``/toil run``) needs none of them.
    drift: Callable[[], DriftActions] | None = None
    #: Checks of a submission that need a read (listed choices, the break-glass limit).
    checks: SubmissionChecks = field(default_factory=SubmissionChecks)


def _parsed(model: type[ModelT], body: dict[str, Any]) -> ModelT | None:
    """The payload as ``model``; None (logged) when it does not fit. Over HTTP the door
    already checked it; Socket Mode payloads are only checked here."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        log.warning("ignoring a malformed %s payload: %s", model.__name__, exc.errors()[:1])
        return None


def _key(context: AsyncBoltContext, body: dict[str, Any]) -> str:
    key = context.get(REQUEST_KEY)
    return key if isinstance(key, str) else request_key("", body)


def _bot_token_of(client: AsyncWebClient) -> Callable[..., Awaitable[AuthorizeResult]]:
    """Bolt's ``authorize``: the one workspace's bot token, without asking Slack who it is.

    The listeners need no bot or team id from Slack (they talk through ``parts.client``);
    Bolt's default single-team authorization would spend an ``auth.test`` on it."""

    async def authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=client.token)

    return authorize


def _ephemeral(reply: Reply) -> dict[str, Any]:
    return {"response_type": "ephemeral", **reply.as_arguments()}


def build_bolt_app(parts: AppParts, *, recent: RecentRequests | None) -> AsyncApp:
    """The Bolt app with every listener registered.

    Slack's signature is checked by the door in front of the app
    (:class:`~services.gateway.transport.SlackDoor`), the only way in over HTTP; Socket
    Mode has none. The bot token is the client's, read at each request (the Lambda function
    replaces it when SSM holds a new one), and Bolt never calls ``auth.test`` for it: that
    call would sit on the first request's path, in front of Slack's 3 seconds.

    Args:
        parts: the gateway logic and its Slack plumbing.
        recent: remembers requests to answer Slack's retries and replays at once.
    """
    # Bolt warns that a client's token is ignored when ``authorize`` is given; the token is
    # not ignored here (authorize returns it), so the client is handed over without it.
    token, parts.client.token = parts.client.token, None
    app = AsyncApp(
        name="toilkit-gateway",
        client=parts.client,
        authorize=_bot_token_of(parts.client),
        request_verification_enabled=False,
        process_before_response=True,
        # The gateway never subscribes to message events; nothing to ignore.
        ignoring_self_events_enabled=False,
    )
    parts.client.token = token
    app.middleware(recent_requests_middleware(recent))
    listeners = _Listeners(parts)
    app.command(parts.command_name)(listeners.slash_command)
    app.command(re.compile(".*"))(listeners.other_slash_command)
    app.action(PICK_COMMAND_ACTION)(listeners.pick_command)
    for action, listener in listeners.buttons().items():
        app.action(action)(listener)
    for link_action in LINK_ACTIONS:
        app.action(link_action)(listeners.just_ack)
    app.action(re.compile(".*"))(listeners.unknown_action)
    app.options(re.compile(".*"))(listeners.suggest)
    app.view_submission(RUN_MODAL_CALLBACK)(listeners.run_submitted)
    app.view_submission(IGNORE_MODAL_CALLBACK)(listeners.ignore_submitted)
    app.view_submission(re.compile(".*"))(listeners.just_ack)
    app.view_closed(re.compile(".*"))(listeners.just_ack)
    return app


class _Listeners:
    """The Bolt listeners, closed over the parts they use."""

    def __init__(self, parts: AppParts) -> None:
        self.parts = parts
        self._drift_actions: DriftActions | None = None
        self.gateway = parts.gateway

    # ------------------------------------------------------------ slash command

    async def slash_command(
        self, ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        command = _parsed(SlashCommand, body)
        if command is None:
            await ack()
            return
        requester = Requester(command.user_id, command.user_name, command.channel_id)
        subcommand = parse_command_text(command.text)
        match subcommand:
            case OpenRunModal(name):
                await ack()
                if command.trigger_id:
                    view = self.gateway.run_modal(command.channel_id, name)
                    # The trigger id is valid for 3 s from the interaction: used at once,
                    # without asking the ledger (a trigger id can be exchanged only once, so
                    # a copy of this request cannot open a second modal anyway).
                    self.parts.after_ack.spawn(
                        self._open_modal(command.trigger_id, view, requester, command.response_url),
                        "views.open (run modal)",
                        urgent=True,
                    )
            case ShowDrift(state):
                await ack(
                    **_ephemeral(await self._bounded(self.gateway.drift_overview(state), "drift"))
                )
            case ShowRuns():
                await ack(**_ephemeral(await self._bounded(self.gateway.runs_overview(), "runs")))
            case ScanDrift(state):
                await ack(
                    **_ephemeral(text_reply(f":mag: Asking the detector to scan {code(state)}…"))
                )
                key = _key(context, body)
                self._later(
                    key,
                    lambda: self._reply_after(
                        self.gateway.request_scan(state, requester, key),
                        requester,
                        command.response_url,
                    ),
                    "drift scan request",
                )
            case ShowHelp():
                await ack(**_ephemeral(self.gateway.help()))
            case UnknownCommand():
                await ack(**_ephemeral(self.gateway.unknown(subcommand)))

    async def other_slash_command(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        name = str(body.get("command", ""))[:40]
        await ack(
            **_ephemeral(
                text_reply(
                    f"This app answers `{self.parts.command_name}`, not `{name}`. If the slash "
                    "command was renamed, set TOILKIT_GATEWAY_COMMAND_NAME to match."
                )
            )
        )

    async def _bounded(self, work: Awaitable[Reply], what: str) -> Reply:
        """The answer of a read, or an apology if it takes too long to answer in the ack."""
        try:
            async with asyncio.timeout(self.parts.read_timeout):
                return await work
        except TimeoutError:
            log.warning("reading %s took longer than %.1fs", what, self.parts.read_timeout)
        except (TransientError, PermanentError) as exc:
            log.error("reading %s failed: %s", what, exc)
        return text_reply(
            f":warning: I could not read {what} just now. Please try again in a moment."
        )

    async def _open_modal(
        self,
        trigger_id: str,
        view: dict[str, Any],
        requester: Requester,
        response_url: str | None,
    ) -> None:
        try:
            await self.parts.client.views_open(trigger_id=trigger_id, view=view)
        except SlackApiError as exc:
            error = exc.response.get("error")
            log.warning("views.open failed: %s", error)
            await self._reply(
                text_reply(
                    f":warning: Slack would not open the form ({error}). "
                    f"Please run `{self.parts.command_name} run` again."
                ),
                requester,
                response_url,
            )
        except (TimeoutError, SlackClientError, OSError) as exc:
            log.warning("views.open failed: %s", exc)

    # ------------------------------------------------------------ the run modal

    async def pick_command(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        payload = _parsed(BlockActions, body)
        if payload is None or payload.view is None:
            return
        selected = payload.action.selected_option
        modal = ModalContext.from_metadata(payload.view.private_metadata)
        view = self.gateway.run_modal(modal.channel_id, selected.value if selected else None)
        # Only the modal changes: a copy of this request would show the same form again.
        self.parts.after_ack.spawn(
            self._update_modal(payload.view.id, payload.view.hash, view),
            "views.update (run modal)",
            urgent=True,
        )

    async def _update_modal(
        self, view_id: str, view_hash: str | None, view: dict[str, Any]
    ) -> None:
        try:
            await self.parts.client.views_update(view_id=view_id, hash=view_hash, view=view)
        except SlackApiError as exc:
            # hash_conflict: a newer pick already updated the modal, which is what counts.
            log.info("views.update of %s not applied: %s", view_id, exc.response.get("error"))
        except (TimeoutError, SlackClientError, OSError) as exc:
            log.warning("views.update of %s failed: %s", view_id, exc)

    async def run_submitted(
        self, ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        payload = _parsed(ViewSubmission, body)
        if payload is None:
            await ack()
            return
        modal = ModalContext.from_metadata(payload.view.private_metadata)
        outcome = self.gateway.check_run_form(read_run_form(payload.view.state), modal)
        match outcome:
            case FormErrors(errors):
                await ack(response_action="errors", errors=errors)
            case FormRebuild(view):
                await ack(response_action="update", view=view)
            case FormAccepted(request, reason, break_glass):
                errors = await self.parts.checks.errors(
                    request, user_id=payload.user.id, break_glass=break_glass
                )
                if errors:
                    await ack(response_action="errors", errors=errors)
                    return
                await ack()
                requester = Requester(payload.user.id, payload.user.display_name, modal.channel_id)
                key = _key(context, body)

                async def decide() -> None:
                    decision = await self.gateway.request_run(
                        request,
                        reason=reason,
                        requester=requester,
                        request_key=key,
                        rerun_of=modal.rerun_of,
                        break_glass=break_glass,
                    )
                    await self._reply(decision.reply, requester, None)

                self._later(key, decide, f"run request ({request.command.name})")

    async def suggest(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """An ``external_select`` asks for options: answered from memory, at once."""
        payload = _parsed(BlockSuggestion, body)
        listed = self.parts.checks.options
        if payload is None or payload.view is None or listed is None:
            await ack(options=[])
            return
        command = ModalContext.from_metadata(payload.view.private_metadata).command or ""
        parameter = payload.block_id.removeprefix(PARAM_BLOCK_PREFIX)
        await ack(**await listed.suggest(command, parameter, payload.value))

    # ------------------------------------------------------------ buttons

    def _button(self, body: dict[str, Any]) -> tuple[BlockActions, Requester] | None:
        payload = _parsed(BlockActions, body)
        if payload is None:
            return None
        channel = payload.channel.id if payload.channel else None
        return payload, Requester(payload.user.id, payload.user.display_name, channel)

    def buttons(self) -> dict[str, ButtonListener]:
        """The buttons that open a modal, and those answered after the ack, by action id."""
        decide = self.gateway.decide_approval
        return {
            Action.BATCH_RERUN_EDIT: self._modal_button(self._open_rerun_modal, "re-run"),
            Action.DRIFT_IGNORE: self._modal_button(self._open_ignore_modal, "ignore"),
            Action.DRIFT_CLAIM: self._answered_button(self.gateway.claim_drift, "drift claim"),
            Action.DRIFT_ACCEPT: self._answered_button(self._accept_drift, "drift accept"),
            Action.DRIFT_REVERT: self._answered_button(self.gateway.revert_drift, "drift revert"),
            Action.DRIFT_RESCAN_REFRESH: self._rescan_button("refresh_only"),
            Action.DRIFT_RESCAN_FULL: self._rescan_button("full"),
            Action.BATCH_CANCEL: self._run_button(self.gateway.cancel, "cancel"),
            Action.BATCH_APPROVE: self._run_button(partial(decide, approve=True), "approve"),
            Action.BATCH_REJECT: self._run_button(partial(decide, approve=False), "reject"),
            Action.BATCH_RERUN: self._run_button(self.gateway.rerun, "rerun"),
        }

    def _run_button(self, decide: ButtonAnswer, what: str) -> ButtonListener:
        """A button whose value is a run id: ``decide`` answers it once the value reads as
        one (logged as ``what`` and the run id)."""

        async def answer(run_id: str, requester: Requester, key: str) -> Reply | None:
            try:
                decode_run_value(run_id)
            except BadButtonValue as exc:
                return text_reply(f":warning: {exc}")
            return await decide(run_id, requester, key)

        return self._answered_button(answer, lambda run_id: f"{what} {run_id[:100]}")

    def _modal_button(
        self, open_modal: Callable[[BlockActions, Requester], Coroutine[Any, Any, None]], what: str
    ) -> ButtonListener:
        """A button that opens a modal (``views.open (<what>)`` in the logs)."""

        async def listener(ack: AsyncAck, body: dict[str, Any]) -> None:
            await ack()
            button = self._button(body)
            if button is None:
                return
            payload, requester = button
            # The trigger id lives 3 s: the modal opens at once, without the ledger (a
            # trigger id opens one modal only, so a copy of this request cannot open a
            # second).
            self.parts.after_ack.spawn(
                open_modal(payload, requester), f"views.open ({what})", urgent=True
            )

        return listener

    async def _open_rerun_modal(self, payload: BlockActions, requester: Requester) -> None:
        try:
            run_id = decode_run_value(payload.action.value)
        except BadButtonValue as exc:
            await self._reply(text_reply(f":warning: {exc}"), requester, payload.response_url)
            return
        try:
            async with asyncio.timeout(self.parts.read_timeout):
                view = await self.gateway.rerun_with_edits(run_id, requester.channel_id)
        except (TimeoutError, TransientError, PermanentError) as exc:
            log.warning("reading run %s for a re-run failed: %s", run_id, exc)
            view = text_reply(
                f":warning: I could not read run {code(run_id)} just now. Please try again."
            )
        if isinstance(view, Reply):
            await self._reply(view, requester, payload.response_url)
        elif payload.trigger_id:
            await self._open_modal(payload.trigger_id, view, requester, payload.response_url)

    def _drift(self) -> DriftActions | None:
        """What the drift buttons do, built on the first press (``AppParts.drift``)."""
        if self._drift_actions is None and self.parts.drift is not None:
            self._drift_actions = self.parts.drift()
        return self._drift_actions

    async def _accept_drift(self, value: str, requester: Requester, key: str) -> Reply | None:
        drift = self._drift()
        if drift is None:
            return None
        claim = drift_button_value(value, Action.DRIFT_ACCEPT)
        if isinstance(claim, Reply):
            return claim
        return text_reply(await drift.accept(claim, requester.actor, request_key=key))

    def _answered_button(
        self, answer: ButtonAnswer, what: str | Callable[[str], str]
    ) -> ButtonListener:
        """The listener of a button that is acked at once, then answered (once per request)
        with what ``answer`` says about its value; ``what`` names it in the logs (or makes
        that name from the value)."""

        async def listener(ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext) -> None:
            await ack()
            button = self._button(body)
            if button is None:
                return
            payload, requester = button
            value, key = payload.action.value or "", _key(context, body)
            self._later(
                key,
                lambda: self._reply_after(
                    answer(value, requester, key), requester, payload.response_url
                ),
                what if isinstance(what, str) else what(value),
            )

        return listener

    # ------------------------------------------------------------ drift: ignore, re-scan

    async def _open_ignore_modal(self, payload: BlockActions, requester: Requester) -> None:
        from services.gateway.drift_actions import IgnoreTarget, ignore_modal  # noqa: PLC0415 - see AppParts.drift

        drift = self._drift()
        try:
            value = decode_ignore_value(payload.action.value)
        except BadButtonValue as exc:
            await self._reply(text_reply(f":warning: {exc}"), requester, payload.response_url)
            return
        if drift is None or not payload.trigger_id:
            return
        try:
            async with asyncio.timeout(self.parts.read_timeout):
                refused = await drift.refusal("ignore", value.state, requester.actor)
        except (TimeoutError, TransientError, PermanentError) as exc:
            log.warning("checking who may ignore drift failed: %s", exc)
            refused = ":warning: I could not check who may ignore drift just now. Try again."
        if refused is not None:
            await self._reply(text_reply(refused), requester, payload.response_url)
            return
        target = IgnoreTarget(
            state=value.state,
            address=value.address,
            channel_id=requester.channel_id,
            thread_ts=_thread_of(payload),
        )
        view = ignore_modal(value, target, today=drift.today())
        await self._open_modal(payload.trigger_id, view, requester, payload.response_url)

    async def ignore_submitted(
        self, ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        from services.gateway.drift_actions import (  # noqa: PLC0415 - see AppParts.drift
            IgnoreAccepted,
            IgnoreTarget,
            check_ignore_form,
            read_ignore_form,
        )

        payload = _parsed(ViewSubmission, body)
        drift = self._drift()
        target = IgnoreTarget.from_metadata(payload.view.private_metadata) if payload else None
        if payload is None or drift is None or target is None:
            await ack()
            return
        form = read_ignore_form(payload.view.state.values)
        outcome = check_ignore_form(form, target, today=drift.today())
        if not isinstance(outcome, IgnoreAccepted):
            await ack(response_action="errors", errors=outcome)
            return
        await ack()
        requester = Requester(payload.user.id, payload.user.display_name, target.channel_id)
        key = _key(context, body)

        async def save() -> None:
            said = await drift.save_ignore(outcome, requester.actor)
            await self._tell_thread(said, requester, target.channel_id, target.thread_ts)

        self._later(key, save, f"ignore rule ({target.address[:100]})")

    def _rescan_button(self, mode: ScanMode) -> ButtonListener:
        """A Re-scan button: acked at once, then the state's scan in ``mode`` is asked for
        (once per request)."""

        async def listener(ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext) -> None:
            await ack()
            self._rescan(body, context, mode)

        return listener

    def _rescan(self, body: dict[str, Any], context: AsyncBoltContext, mode: ScanMode) -> None:
        button = self._button(body)
        drift = self._drift()
        if button is None or drift is None:
            return
        payload, requester = button
        key = _key(context, body)

        async def answer() -> Reply:
            try:
                state = decode_rescan_value(payload.action.value)
            except BadButtonValue as exc:
                return text_reply(f":warning: {exc}")
            said = await drift.rescan(
                state,
                mode,
                requester.actor,
                event_id=derived_id(key, "DriftScanRequested"),
                channel_id=requester.channel_id,
                thread_ts=_thread_of(payload),
            )
            return text_reply(said)

        self._later(
            key,
            lambda: self._reply_after(answer(), requester, payload.response_url),
            "drift re-scan",
        )

    async def _tell_thread(
        self, text: str, requester: Requester, channel: str | None, thread_ts: str | None
    ) -> None:
        """In the report's thread for everyone; to the person alone when there is none."""
        if channel and thread_ts:
            try:
                await self.parts.client.chat_postMessage(
                    channel=channel, thread_ts=thread_ts, text=text
                )
                return
            except (SlackApiError, SlackClientError, TimeoutError, OSError) as exc:
                log.warning("telling the drift thread failed: %s", exc)
        await self._reply(text_reply(text), requester, None)

    async def unknown_action(
        self, ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        await ack()
        button = self._button(body)
        if button is None:
            return
        payload, requester = button
        log.info("unknown action %r from %s", payload.action.action_id, requester.user_id)
        reply = self.gateway.unknown_action(payload.action.action_id)
        self._later(
            _key(context, body),
            lambda: self._reply(reply, requester, payload.response_url),
            "unknown action reply",
        )

    async def just_ack(self, ack: AsyncAck) -> None:
        await ack()

    # ------------------------------------------------------------ after the ack

    def _later(self, key: str, start: Callable[[], Awaitable[None]], what: str) -> None:
        """Run ``start()`` after the ack, once per request across gateway instances."""
        ledger = self.parts.ledger
        self.parts.after_ack.spawn(ledger.once(key, start) if ledger else _run(start), what)

    async def _reply_after(
        self, work: Awaitable[Reply | None], requester: Requester, response_url: str | None
    ) -> None:
        reply = await work
        if reply is not None:
            await self._reply(reply, requester, response_url)

    async def _reply(self, reply: Reply, requester: Requester, response_url: str | None) -> None:
        await self.parts.replier.send(
            reply,
            user_id=requester.user_id,
            channel_id=requester.channel_id,
            response_url=response_url,
        )


async def _run(start: Callable[[], Awaitable[None]]) -> None:
    await start()


def _thread_of(payload: BlockActions) -> str | None:
    """The thread a message button sits in: the message's thread, or the message itself."""
    message = payload.message or {}
    container = payload.container or {}
    thread = message.get("thread_ts") or message.get("ts") or container.get("message_ts")
    return thread if isinstance(thread, str) else None
