"""The drift report's buttons: **Ignore…** (a modal, then an ignore rule), **Accept into
code** and **Re-scan now**.

Every press is checked against the catalog's ``drift:`` section
(:func:`shared.authz.drift_action_refusal`) and leaves an entry in the drift audit trail
(:class:`~shared.state_table.drift_actions.DriftAudit`), refused or done.

* **Ignore…** opens a modal (reason, required; last day, a date picker defaulting to 14 days
  ahead, at most 90; the attribute, prefilled from the button). A day in the past or too far
  ahead is shown under the date picker and nothing is written. A valid submission writes an
  ignore rule in the state table; the detector applies it from its next scan on, and the
  thread says who ignored what until when.
* **Accept into code** publishes ``DriftAcceptRequested``; the detector writes the change
  and pushes a branch (``docs/accept-into-code.md``), the notifier threads the diff.
* **Re-scan** (refresh-only or full) holds the state's scan slot (one scan in flight per
  state, across gateway instances), then publishes ``DriftScanRequested`` carrying the
  report's thread; the detector releases the slot when done and the notifier answers in
  that thread. A second press while it runs publishes nothing and says who asked first.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from services.gateway.blocks import IGNORE_MODAL_CALLBACK
from services.gateway.handlers import derived_id
from shared.authz import DriftAction, drift_action_refusal
from shared.catalog import Catalog, GroupDirectory
from shared.errors import PermanentError, TransientError
from shared.events import (
    Actor,
    DriftAcceptRequested,
    DriftScanRequested,
    EventBase,
    ScanMode,
    utc_now,
)
from shared.slack.actions import MAX_IGNORE_ATTRIBUTE, ClaimValue, IgnoreValue
from shared.slack.blocks import MAX_PLAIN_INPUT, code, escape, mention
from shared.state_table.drift_actions import (
    DEFAULT_IGNORE_DAYS,
    MAX_IGNORE_DAYS,
    AuditEntry,
    DriftAudit,
    IgnoreRuleStore,
    ScanGuard,
    StoredIgnoreRule,
    expiry_problem,
    new_rule_id,
    today_utc,
)

log = logging.getLogger(__name__)

REASON_BLOCK = "ignore_reason"
EXPIRES_BLOCK = "ignore_expires"
ATTRIBUTE_BLOCK = "ignore_attribute"
#: The action id of each input inside its block (Slack reports values by block, then action).
INPUT_ACTION = "value"
MAX_IGNORE_REASON = 500

Publish = Callable[[EventBase], Awaitable[Any]]


@dataclass(frozen=True)
class IgnoreTarget:
    """What the modal ignores and where its button was (``private_metadata``)."""

    state: str
    address: str
    channel_id: str | None = None
    thread_ts: str | None = None

    def to_metadata(self) -> str:
        return json.dumps(
            {
                "state": self.state,
                "address": self.address,
                "channel_id": self.channel_id,
                "thread_ts": self.thread_ts,
            }
        )

    @classmethod
    def from_metadata(cls, text: str) -> IgnoreTarget | None:
        try:
            data = json.loads(text or "")
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        state, address = data.get("state"), data.get("address")
        channel, thread = data.get("channel_id"), data.get("thread_ts")
        if not (isinstance(state, str) and state and isinstance(address, str) and address):
            return None
        return cls(
            state=state,
            address=address,
            channel_id=channel if isinstance(channel, str) else None,
            thread_ts=thread if isinstance(thread, str) else None,
        )


@dataclass(frozen=True)
class IgnoreForm:
    reason: str
    expires: str | None
    attribute: str | None


@dataclass(frozen=True)
class IgnoreAccepted:
    """A valid submission: the rule to write once the person's permission is checked."""

    target: IgnoreTarget
    reason: str
    expires: date
    attribute: str | None


def ignore_modal(value: IgnoreValue, target: IgnoreTarget, *, today: date) -> dict[str, Any]:
    """The Ignore… modal for one finding."""
    default = (today + timedelta(days=DEFAULT_IGNORE_DAYS)).isoformat()
    intro = f"Ignore drift of {code(value.address)} in {code(value.state)} for a while."
    if value.suggested:
        intro += (
            "\n:repeat: Suggested: it was fixed three times in 30 days and drifted back. "
            "Ignoring it hides it until the day below; fixing it in code ends it for good."
        )
    attribute_input: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": INPUT_ACTION,
        "max_length": MAX_IGNORE_ATTRIBUTE,
    }
    if value.attribute:
        attribute_input["initial_value"] = value.attribute
    return {
        "type": "modal",
        "callback_id": IGNORE_MODAL_CALLBACK,
        "private_metadata": target.to_metadata(),
        "title": {"type": "plain_text", "text": "Ignore drift"},
        "submit": {"type": "plain_text", "text": "Ignore"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": intro}},
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Why"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": INPUT_ACTION,
                    "multiline": True,
                    "max_length": MAX_IGNORE_REASON,
                },
            },
            {
                "type": "input",
                "block_id": EXPIRES_BLOCK,
                "label": {"type": "plain_text", "text": "Ignore until (last day, UTC)"},
                "hint": {"type": "plain_text", "text": f"At most {MAX_IGNORE_DAYS} days ahead."},
                "element": {
                    "type": "datepicker",
                    "action_id": INPUT_ACTION,
                    "initial_date": default,
                },
            },
            {
                "type": "input",
                "block_id": ATTRIBUTE_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Only this attribute (empty: all)"},
                "element": attribute_input,
            },
        ],
    }


def read_ignore_form(values: dict[str, dict[str, Any]]) -> IgnoreForm:
    """The modal's answers from ``view.state.values`` (missing ones empty)."""

    def answer(block: str, field: str) -> str | None:
        entry = values.get(block, {}).get(INPUT_ACTION)
        raw = getattr(entry, field, None) if entry is not None else None
        return raw.strip() if isinstance(raw, str) and raw.strip() else None

    return IgnoreForm(
        reason=answer(REASON_BLOCK, "value") or "",
        expires=answer(EXPIRES_BLOCK, "selected_date"),
        attribute=answer(ATTRIBUTE_BLOCK, "value"),
    )


def check_ignore_form(
    form: IgnoreForm, target: IgnoreTarget, *, today: date
) -> dict[str, str] | IgnoreAccepted:
    """Errors by block id (shown under each field), or the accepted rule."""
    errors: dict[str, str] = {}
    if not form.reason:
        errors[REASON_BLOCK] = "Say why this drift may stay (everyone reading it will see)."
    elif len(form.reason) > MAX_IGNORE_REASON:
        errors[REASON_BLOCK] = f"At most {MAX_IGNORE_REASON} characters."
    expires: date | None = None
    try:
        expires = date.fromisoformat(form.expires) if form.expires else None
    except ValueError:
        errors[EXPIRES_BLOCK] = "Pick a day with the date picker."
    if EXPIRES_BLOCK not in errors:
        problem = expiry_problem(expires, today)
        if problem:
            errors[EXPIRES_BLOCK] = problem
    if errors or expires is None:
        return errors
    return IgnoreAccepted(
        target=target,
        reason=form.reason[:MAX_PLAIN_INPUT],
        expires=expires,
        attribute=form.attribute,
    )


@dataclass(kw_only=True, eq=False)
class DriftActions:
    """What the drift buttons do, over our own seams.

    Args:
        catalog: its ``drift:`` section says who may press what.
        directory: user group membership.
        publish: publishes one event.
        ignores: the stored ignore rules.
        guard: one scan in flight per state.
        audit: the drift audit trail.
        clock: the current time.
    """

    catalog: Catalog
    directory: GroupDirectory
    publish: Publish
    ignores: IgnoreRuleStore
    guard: ScanGuard
    audit: DriftAudit
    clock: Callable[[], datetime] = utc_now

    async def refusal(self, action: DriftAction, state: str, actor: Actor) -> str | None:
        """Why ``actor`` may not press this (audited when refused), or None."""
        refused = await drift_action_refusal(
            self.catalog, action, actor.slack_user_id, self.directory
        )
        if refused is not None:
            await self._audit(action, state, actor, "refused", refused)
            who = getattr(self.catalog.drift, action)
            allowed = ", ".join(_mention_id(i) for i in who.ids()) if who else "nobody"
            return f":no_entry: You may not {action} drift here. Allowed: {allowed}."
        return None

    async def save_ignore(self, accepted: IgnoreAccepted, actor: Actor) -> str:
        """Write the rule (once the person is allowed); the sentence to tell the thread."""
        target = accepted.target
        refused = await self.refusal("ignore", target.state, actor)
        if refused is not None:
            return refused
        rule = StoredIgnoreRule(
            rule_id=new_rule_id(),
            state=target.state,
            address=target.address,
            attribute=accepted.attribute,
            reason=accepted.reason,
            expires=accepted.expires,
            created_by=actor,
            created_at=self.clock(),
        )
        try:
            await self.ignores.add(rule)
        except (TransientError, PermanentError) as exc:
            log.error("writing ignore rule for %s failed: %s", target.address, exc)
            return (
                ":warning: The ignore rule was not saved (toilkit could not write it). Try again."
            )
        what = code(target.address) + (
            f" ({code(accepted.attribute)})" if accepted.attribute else ""
        )
        await self._audit(
            "ignore", target.state, actor, "done", f"rule {rule.rule_id}: {target.address}"
        )
        return (
            f":see_no_evil: {mention(actor)} ignored {what} until {accepted.expires.isoformat()}: "
            f"_{escape(accepted.reason)}_ (rule `{rule.rule_id}`; the next scan applies it, "
            "`toilkit drift ignores remove` ends it early)"
        )

    async def rescan(
        self,
        state: str,
        mode: ScanMode,
        actor: Actor,
        *,
        event_id: str,
        channel_id: str | None,
        thread_ts: str | None,
    ) -> str:
        """Hold the state's scan slot and ask for the scan; what to tell the presser."""
        refused = await self.refusal("rescan", state, actor)
        if refused is not None:
            return refused
        words = "refresh-only" if mode == "refresh_only" else "full"
        try:
            holder = await self.guard.hold(state, event_id, actor, now=self.clock())
        except (TransientError, PermanentError) as exc:
            log.error("holding the scan slot of %s failed: %s", state, exc)
            return (
                ":warning: The scan was not requested (toilkit could not check for one in flight)."
            )
        if holder is not None:
            await self._audit("rescan", state, actor, "duplicate", f"held by {holder.name}")
            return (
                f":hourglass_flowing_sand: A scan of {code(state)} is already running "
                f"(asked by {mention(holder)}); its answer will come in the thread."
            )
        event = DriftScanRequested(
            event_id=event_id,
            correlation_id=event_id,
            source="gateway",
            states=(state,),
            mode=mode,
            requested_by=actor,
            reply_channel=channel_id,
            reply_thread_ts=thread_ts,
        )
        try:
            await self.publish(event)
        except (TransientError, PermanentError) as exc:
            log.error("publishing the re-scan of %s failed: %s", state, exc)
            await self.guard.release(state, event_id)
            return ":warning: The scan was not requested (toilkit could not queue it). Try again."
        await self._audit("rescan", state, actor, "done", f"{words} scan {event_id}")
        return f":mag: Re-scanning {code(state)} ({words}); the answer will come in the thread."

    async def accept(self, claim: ClaimValue, actor: Actor, *, request_key: str) -> str:
        """Ask the detector to write the drift into code; what to tell the presser."""
        refused = await self.refusal("accept", claim.state, actor)
        if refused is not None:
            return refused
        event = DriftAcceptRequested(
            event_id=derived_id(request_key, "DriftAcceptRequested"),
            correlation_id=derived_id(request_key, "accept"),
            source="gateway",
            state=claim.state,
            fingerprints=claim.fingerprints,
            requested_by=actor,
        )
        try:
            await self.publish(event)
        except (TransientError, PermanentError) as exc:
            log.error("publishing accept-into-code for %s failed: %s", claim.state, exc)
            return ":warning: Accept into code was not requested (toilkit could not queue it)."
        await self._audit("accept", claim.state, actor, "done", f"request {event.event_id}")
        return (
            f":hourglass_flowing_sand: Planning {code(claim.state)} afresh to write the change "
            "into code; the diff (and the branch) will come to the drift message's thread."
        )

    def today(self) -> date:
        return today_utc(self.clock())

    async def _audit(
        self, action: str, state: str, actor: Actor, outcome: str, detail: str
    ) -> None:
        try:
            await self.audit.record(
                AuditEntry(
                    at=self.clock(),
                    action=action,
                    state=state,
                    actor=actor,
                    outcome=outcome,
                    detail=detail,
                )
            )
        except (TransientError, PermanentError) as exc:
            # The action's own record (the rule, the event) still says who did it.
            log.error(
                "drift audit entry (%s %s by %s) not written: %s", action, state, actor.name, exc
            )


def _mention_id(principal: str) -> str:
    return f"<!subteam^{principal}>" if principal.startswith("S") else f"<@{principal}>"
