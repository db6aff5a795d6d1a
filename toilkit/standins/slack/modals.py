"""Modals as Slack's client shows them: a person uses, submits or closes the one on top.

:class:`Modals` plays what happens in a modal the app opened (``views.open``/``push``):
an element that dispatches actions sends ``block_actions``, typing in an ``external_select``
sends ``block_suggestion`` (the options the app answers are checked against Slack's limits
and shown), the submit button runs Slack's
own input checks and then sends ``view_submission`` (honouring the app's
``response_action``), the close button sends ``view_closed`` when the view asks for it.
The form logic itself is :mod:`toilkit.standins.slack.forms`.
"""

from __future__ import annotations

import copy
import logging

from aiohttp import web

from toilkit.standins.slack.app_requests import action_ts, interaction_body, interaction_envelope
from toilkit.standins.slack.arguments import JsonDict, SlackApiFailure
from toilkit.standins.slack.block_kit import view_argument, view_content
from toilkit.standins.slack.client import AppOutcome, SlackClient
from toilkit.standins.slack.forms import (
    EXTERNAL_SELECT_TYPES,
    ClientFailure,
    TypedValues,
    element_action,
    find_element,
    slack_input_errors,
    state_values,
    suggested_options,
    with_element_ids,
)
from toilkit.standins.slack.workspace import MAX_VIEW_STACK, Workspace

logger = logging.getLogger(__name__)


class Modals:
    """The modals people have open, driven from the page.

    Args:
        workspace: the views and modal stacks.
        client: the connection to the app the interactions go to.
    """

    def __init__(self, workspace: Workspace, client: SlackClient) -> None:
        self._workspace = workspace
        self._client = client

    def modal_for(self, user_id: str) -> JsonDict | None:
        """The modal ``user_id`` has open (the top view of their latest one), if any.

        Returns:
            ``{"view": ..., "errors": {block_id: text}, "notice": text or None, "depth": n,
            "suggestions": {"block_id|action_id": {"typed": ..., "options": [...]}}}``.
        """
        stack = self._workspace.latest_stack(user_id)
        if stack is None:
            return None
        view_id = stack.view_ids[-1]
        return {
            "view": copy.deepcopy(self._workspace.views[view_id]),
            "errors": dict(self._workspace.view_errors.get(view_id, {})),
            "notice": self._workspace.view_notices.get(view_id),
            "depth": len(stack.view_ids),
            "suggestions": copy.deepcopy(self._workspace.view_suggestions.get(view_id, {})),
        }

    async def change_view_element(
        self,
        view_id: str,
        user_id: str,
        block_id: str,
        action_id: str,
        values: TypedValues,
    ) -> JsonDict:
        """``user_id`` uses an element of their modal that dispatches actions (a select in
        an ``actions`` block or in an input with ``dispatch_action``, a button): the app gets
        a ``block_actions`` with the view, its state and the action.

        Args:
            view_id: the modal's view (the top one of the person's stack).
            user_id: who acts.
            block_id: the element's block.
            action_id: the element.
            values: what every element of the form holds now (see :func:`state_values`).

        Raises:
            ClientFailure: no app, or no such view or element.
        """
        app = self._client.require_app()
        record = self._open_view(view_id, user_id)
        blocks = with_element_ids(record["blocks"], record["id"])
        target = find_element(blocks, action_id, block_id)
        if target is None:
            raise ClientFailure("action_not_found", f"no element {block_id}/{action_id}")
        _, element = target
        state = state_values(blocks, values)
        record["state"] = {"values": copy.deepcopy(state)}
        entry = state.get(block_id, {}).get(action_id)
        payload: JsonDict = {
            **self._envelope(
                "block_actions",
                user_id,
                self._workspace.issue_trigger(user_id, view_id=record["id"]),
            ),
            "container": {"type": "view", "view_id": record["id"]},
            "view": {**copy.deepcopy(record), "blocks": blocks, "state": {"values": state}},
            "actions": [
                element_action(element, block_id, entry, action_ts(self._workspace.clock()))
            ],
        }
        answer = await self._client.send(app, interaction_body(payload))
        if answer.failure is not None:
            return self._view_failure(record["id"], answer)
        self._workspace.view_notices.pop(record["id"], None)
        self._workspace.changed()
        return {"ok": True}

    async def suggest(
        self, view_id: str, user_id: str, block_id: str, action_id: str, typed: str
    ) -> JsonDict:
        """``user_id`` types ``typed`` in an ``external_select`` of their modal: the app gets
        a ``block_suggestion`` and its options show under the select.

        Returns:
            ``{"ok": true, "options": [...]}`` (option groups flattened, each option with
            its group's label under ``group``), or ``{"ok": false, ...}`` when the app did
            not answer, or answered with options Slack would not show.

        Raises:
            ClientFailure: no app, no such view, or no such external select.
        """
        app = self._client.require_app()
        record = self._open_view(view_id, user_id)
        blocks = with_element_ids(record["blocks"], record["id"])
        target = find_element(blocks, action_id, block_id)
        if target is None or target[1].get("type") not in EXTERNAL_SELECT_TYPES:
            raise ClientFailure("action_not_found", f"no external select {block_id}/{action_id}")
        payload: JsonDict = {
            **self._envelope("block_suggestion", user_id, None),
            "container": {"type": "view", "view_id": record["id"]},
            "view": {**copy.deepcopy(record), "blocks": blocks},
            "action_id": action_id,
            "block_id": block_id,
            "value": typed,
        }
        answer = await self._client.send(app, interaction_body(payload))
        if answer.failure is not None:
            return self._view_failure(record["id"], answer)
        try:
            options = suggested_options(answer.json_object() or {})
        except ValueError as problem:
            text = f"This app answered the search with options Slack cannot show: {problem}"
            self._workspace.view_notices[record["id"]] = text
            self._workspace.changed()
            return {"ok": False, "error": "invalid_options", "message": text}
        self._workspace.view_notices.pop(record["id"], None)
        shown = self._workspace.view_suggestions.setdefault(record["id"], {})
        shown[f"{block_id}|{action_id}"] = {"typed": typed, "options": options}
        self._workspace.changed()
        return {"ok": True, "options": options}

    async def submit_view(self, view_id: str, user_id: str, values: TypedValues) -> JsonDict:
        """``user_id`` presses the modal's submit button.

        Slack's own checks come first (required inputs, number ranges, lengths): what fails
        them is shown under its input and nothing is sent. Otherwise the app gets a
        ``view_submission`` and its answer is honoured: nothing (the view closes),
        ``errors`` (shown under the blocks), ``update``, ``push`` or ``clear``.

        Returns:
            ``{"ok": true, "outcome": "closed" | "errors" | "updated" | "pushed" |
            "cleared", "errors": {...}, "checked_by": "slack" | "app"}``, or ``{"ok":
            false, ...}`` when the app did not answer.

        Raises:
            ClientFailure: no app, or no such view.
        """
        app = self._client.require_app()
        record = self._open_view(view_id, user_id)
        blocks = with_element_ids(record["blocks"], record["id"])
        state = state_values(blocks, values)
        record["state"] = {"values": copy.deepcopy(state)}
        problems = slack_input_errors(blocks, state)
        if problems:
            self._workspace.view_errors[record["id"]] = problems
            self._workspace.changed()
            return {"ok": True, "outcome": "errors", "errors": problems, "checked_by": "slack"}
        payload: JsonDict = {
            **self._envelope(
                "view_submission",
                user_id,
                self._workspace.issue_trigger(user_id, view_id=record["id"]),
            ),
            "view": {**copy.deepcopy(record), "blocks": blocks, "state": {"values": state}},
            "response_urls": [],
        }
        answer = await self._client.send(app, interaction_body(payload))
        if answer.failure is not None:
            return self._view_failure(record["id"], answer)
        outcome = self._apply_submission_answer(record, answer)
        self._workspace.changed()
        return outcome

    async def close_view(self, view_id: str, user_id: str) -> JsonDict:
        """``user_id`` presses the modal's close button: the top view goes away (the one
        under it shows again). The app hears of it only if the view asked
        (``notify_on_close``), with a ``view_closed``.

        Raises:
            ClientFailure: no app, or no such view.
        """
        app = self._client.require_app()
        record = self._open_view(view_id, user_id)
        self._workspace.close_views(record["id"], count=1)
        self._workspace.changed()
        if not record.get("notify_on_close"):
            return {"ok": True}
        payload = {
            **self._envelope("view_closed", user_id, None),
            "view": {
                **copy.deepcopy(record),
                "blocks": with_element_ids(record["blocks"], record["id"]),
            },
            "is_cleared": False,
        }
        answer = await self._client.send(app, interaction_body(payload))
        # The modal is gone whatever the app answers, as on Slack.
        return {"ok": answer.failure is None, "error": answer.failure}

    # Client-side plumbing -----------------------------------------------------

    def _open_view(self, view_id: str, user_id: str) -> JsonDict:
        """The view ``user_id`` sees on top of one of their modals."""
        self._client.user(user_id)
        key = self._workspace.stack_key_of(view_id)
        stack = None if key is None else self._workspace.view_stacks[key]
        if stack is None or stack.user_id != user_id or stack.view_ids[-1] != view_id:
            raise ClientFailure("view_not_found", f"{user_id} has no modal showing {view_id}")
        return self._workspace.views[view_id]

    def _view_failure(self, view_id: str, answer: AppOutcome) -> JsonDict:
        text = answer.failure_text()
        self._workspace.view_notices[view_id] = text
        self._workspace.changed()
        return {"ok": False, "error": answer.failure, "message": text}

    def _apply_submission_answer(self, record: JsonDict, answer: AppOutcome) -> JsonDict:
        """Honour the app's answer to a submission (Slack's ``response_action``)."""
        view_id = record["id"]
        self._workspace.view_errors.pop(view_id, None)
        self._workspace.view_notices.pop(view_id, None)
        try:
            response = answer.json_object() or {}
        except ValueError:
            response = {"response_action": "<not JSON>"}
        action = response.get("response_action")
        if action is None:
            self._workspace.close_views(view_id, count=1)
            return {"ok": True, "outcome": "closed", "checked_by": "app"}
        if action == "errors":
            errors = response.get("errors")
            if isinstance(errors, dict) and errors:
                shown = {str(block): str(text) for block, text in errors.items()}
                self._workspace.view_errors[view_id] = shown
                return {"ok": True, "outcome": "errors", "errors": shown, "checked_by": "app"}
        elif action == "clear":
            self._workspace.close_views(view_id, count=None)
            return {"ok": True, "outcome": "cleared", "checked_by": "app"}
        elif action in ("update", "push"):
            try:
                view = view_argument({"view": response.get("view")})
            except SlackApiFailure as failure:
                logger.info(
                    "the app answered a submission with an invalid view: %s", failure.body()
                )
            else:
                if action == "update":
                    record.update(view_content(view), hash=self._workspace.new_hash())
                    record["state"] = {"values": {}}
                    return {"ok": True, "outcome": "updated", "checked_by": "app"}
                return self._push_from_submission(record, view)
        self._workspace.view_notices[view_id] = (
            f"This app answered the submission with something Slack cannot use ({action})."
        )
        return {
            "ok": False,
            "error": "invalid_response",
            "message": self._workspace.view_notices[view_id],
        }

    def _push_from_submission(self, record: JsonDict, view: JsonDict) -> JsonDict:
        key = self._workspace.stack_key_of(record["id"])
        stack = self._workspace.view_stacks[key] if key is not None else None
        if stack is None or len(stack.view_ids) >= MAX_VIEW_STACK:
            self._workspace.view_notices[record["id"]] = "This app tried to push a view too many."
            return {"ok": False, "error": "push_limit_reached", "message": "push_limit_reached"}
        pushed = self._workspace.new_view(
            view, root_view_id=stack.view_ids[0], previous_view_id=record["id"]
        )
        stack.view_ids.append(pushed["id"])
        return {"ok": True, "outcome": "pushed", "checked_by": "app", "view_id": pushed["id"]}

    def _envelope(self, kind: str, user_id: str, trigger_id: str | None) -> JsonDict:
        return interaction_envelope(
            kind, user=self._workspace.users[user_id], trigger_id=trigger_id
        )

    # HTTP: the page's endpoints ---------------------------------------------------

    async def handle_modal(self, request: web.Request) -> web.Response:
        user_id = request.query.get("user", "")
        if user_id not in self._workspace.users:
            return web.json_response(
                ClientFailure("user_not_found", f"no user {user_id!r}").body(), status=400
            )
        return web.json_response({"ok": True, "modal": self.modal_for(user_id)})
