"""Block Kit the gateway shows: the batch run modal and the ephemeral replies.

The modal is built from the command catalog. First it shows a command picker only; picking
a command (a ``block_actions`` on the picker) updates it to that command's typed parameters,
its environments and a reason field. Every input has a fixed ``block_id`` (``command``,
``environment``, ``reason``, ``param:<name>``) so validation errors map back onto the field
they concern (``response_action: errors``).

Everything here is pure: dicts in, dicts out, within Slack's documented limits.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.gateway.payloads import StateValue, ViewState
from shared.catalog import (
    MIN_BREAK_GLASS_REASON,
    BooleanParameter,
    Catalog,
    ChoiceParameter,
    CommandSpec,
    FieldError,
    IntegerParameter,
    ParameterSpec,
    RawValue,
    SlackUserParameter,
    TextParameter,
)
from shared.slack.blocks import (
    MAX_BLOCKS,
    MAX_HINT,
    MAX_MODAL_TITLE,
    MAX_OPTIONS,
    MAX_PLACEHOLDER,
    MAX_PLAIN_INPUT,
    MAX_SECTION_TEXT,
    Block,
    ago,
    clip,
    code,
    context,
    escape,
    option,
    plain,
    section,
)
from shared.state_table.drift import OpenDrift

RUN_MODAL_CALLBACK = "toil_run"
#: The drift Ignore… modal's callback id (its modal is built in ``drift_actions``; the app
#: registers its listener at open without importing that module, see ``AppParts.drift``).
IGNORE_MODAL_CALLBACK = "drift_ignore_modal"
PICK_COMMAND_ACTION = "run_pick_command"
COMMAND_BLOCK = "command"
ENVIRONMENT_BLOCK = "environment"
REASON_BLOCK = "reason"
BREAK_GLASS_BLOCK = "break_glass"
#: The value of the break-glass checkbox when ticked.
BREAK_GLASS_VALUE = "break_glass"
PARAM_BLOCK_PREFIX = "param:"
#: Every input's element uses this action id; the block id says which field it is.
VALUE_ACTION = "value"

# What toilkit allows itself within Slack's limits.
MAX_ERROR_TEXT = 300
MAX_REASON = 500


# =========================================================================== the modal


@dataclass(frozen=True)
class ModalContext:
    """What the modal carries in ``private_metadata``: where it was opened, and which
    command its form was built for."""

    channel_id: str | None = None
    command: str | None = None
    #: The run a "re-run with edits" modal runs again (kept while the command stays).
    rerun_of: str | None = None

    def to_metadata(self) -> str:
        data = {"channel_id": self.channel_id, "command": self.command}
        if self.rerun_of:
            data["rerun_of"] = self.rerun_of
        return json.dumps(data)

    @classmethod
    def from_metadata(cls, text: str) -> ModalContext:
        """Read ``private_metadata`` back; anything unreadable gives an empty context."""
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            return cls()
        if not isinstance(data, dict):
            return cls()
        channel, command = data.get("channel_id"), data.get("command")
        rerun_of = data.get("rerun_of")
        return cls(
            channel_id=channel if isinstance(channel, str) else None,
            command=command if isinstance(command, str) else None,
            rerun_of=rerun_of if isinstance(rerun_of, str) else None,
        )


@dataclass(frozen=True)
class Prefill:
    """What a "re-run with edits" modal starts with: an earlier run's environment and
    parameter values (sensitive ones are never kept, so never prefilled)."""

    environment: str | None = None
    values: Mapping[str, str] = field(default_factory=dict)


def run_modal(
    catalog: Catalog, modal: ModalContext, prefill: Prefill | None = None
) -> dict[str, Any]:
    """The batch run modal: the picker, and the form of ``modal.command`` when chosen
    (filled in from ``prefill`` for a re-run with edits)."""
    spec = catalog.command(modal.command) if modal.command else None
    blocks: list[Block] = [_command_picker(catalog, spec)]
    rerun_of = modal.rerun_of if spec is not None else None
    if rerun_of:
        blocks.append(
            context(
                f":repeat: Runs {code(rerun_of)} again with what you change here; "
                "sensitive values are not kept, type them again."
            )
        )
    if spec is None:
        blocks.append(
            context(
                "Pick a command from the reviewed catalog; its parameters appear here. "
                "Every run is recorded with who asked, why and with which parameters."
            )
        )
    else:
        blocks.extend(_command_form(spec, prefill or Prefill()))
    return {
        "type": "modal",
        "callback_id": RUN_MODAL_CALLBACK,
        "title": plain("Run a batch command", MAX_MODAL_TITLE),
        "submit": plain("Request run", MAX_MODAL_TITLE),
        "close": plain("Cancel", MAX_MODAL_TITLE),
        "private_metadata": ModalContext(
            modal.channel_id, spec.name if spec else None, rerun_of
        ).to_metadata(),
        "blocks": blocks,
    }


def _command_picker(catalog: Catalog, chosen: CommandSpec | None) -> Block:
    options = [option(c.name, c.name, c.description) for c in catalog.commands[:MAX_OPTIONS]]
    element: dict[str, Any] = {
        "type": "static_select",
        "action_id": PICK_COMMAND_ACTION,
        "placeholder": plain("Choose a command", MAX_PLACEHOLDER),
        "options": options,
    }
    if chosen is not None:
        element["initial_option"] = next(o for o in options if o["value"] == chosen.name)
    return {
        "type": "input",
        "block_id": COMMAND_BLOCK,
        "dispatch_action": True,
        "label": plain("Command"),
        "element": element,
    }


def _command_form(spec: CommandSpec, prefill: Prefill) -> list[Block]:
    blocks: list[Block] = [context(escape(spec.description))]
    environments = list(spec.environments.items())
    env_options = [
        option(
            name,
            name,
            "needs approval before it runs" if policy.approval is not None else None,
        )
        for name, policy in environments[:MAX_OPTIONS]
    ]
    env_element: dict[str, Any] = {
        "type": "static_select",
        "action_id": VALUE_ACTION,
        "placeholder": plain("Where it runs", MAX_PLACEHOLDER),
        "options": env_options,
    }
    chosen = [o for o in env_options if o["value"] == prefill.environment]
    if chosen or len(env_options) == 1:
        env_element["initial_option"] = (chosen or env_options)[0]
    blocks.append(
        {
            "type": "input",
            "block_id": ENVIRONMENT_BLOCK,
            "label": plain("Environment"),
            "element": env_element,
        }
    )
    blocks.extend(
        parameter_input(p, None if p.sensitive else prefill.values.get(p.name))
        for p in spec.parameters
    )
    glass = [name for name, policy in environments if policy.break_glass is not None]
    if glass:
        blocks.append(_break_glass_input(glass))
    blocks.append(
        {
            "type": "input",
            "block_id": REASON_BLOCK,
            "label": plain("Reason"),
            "hint": plain("Why this run is needed (a ticket, an incident); kept with the run."),
            "element": {
                "type": "plain_text_input",
                "action_id": VALUE_ACTION,
                "multiline": True,
                "max_length": MAX_REASON,
            },
        }
    )
    return blocks


def _break_glass_input(environments: Sequence[str]) -> Block:
    """The break-glass checkbox, for a command with environments that allow it."""
    where = ", ".join(environments)
    return {
        "type": "input",
        "block_id": BREAK_GLASS_BLOCK,
        "optional": True,
        "label": plain("Break glass (incident only)"),
        "hint": plain(
            f"Starts at once without approval in {where}; the approvers are told at once "
            f"with your reason (at least {MIN_BREAK_GLASS_REASON} characters). Limited per "
            "person per day.",
            MAX_HINT,
        ),
        "element": {
            "type": "checkboxes",
            "action_id": VALUE_ACTION,
            "options": [option("Start without waiting for an approval", BREAK_GLASS_VALUE)],
        },
    }


def parameter_block_id(name: str) -> str:
    return PARAM_BLOCK_PREFIX + name


def parameter_input(spec: ParameterSpec, initial: str | None = None) -> Block:
    """The input block for one typed parameter (showing ``initial`` when it fits)."""
    hint_parts = [spec.description] if spec.description else []
    if spec.sensitive:
        hint_parts.append("Sensitive: never shown in Slack messages or the run history.")
    element = _parameter_element(spec, hint_parts)
    if initial is not None:
        _set_initial(element, initial)
    block: Block = {
        "type": "input",
        "block_id": parameter_block_id(spec.name),
        "label": plain(spec.title),
        "element": element,
        # A parameter with a default may be left empty: the default applies.
        "optional": not spec.required or spec.default is not None,
    }
    if hint_parts:
        block["hint"] = plain(" ".join(hint_parts), MAX_HINT)
    return block


def _parameter_element(spec: ParameterSpec, hint_parts: list[str]) -> dict[str, Any]:
    if isinstance(spec, IntegerParameter):
        element: dict[str, Any] = {
            "type": "number_input",
            "action_id": VALUE_ACTION,
            "is_decimal_allowed": False,
        }
        if spec.minimum is not None:
            element["min_value"] = str(spec.minimum)
        if spec.maximum is not None:
            element["max_value"] = str(spec.maximum)
        if spec.default is not None:
            element["initial_value"] = str(spec.default)
        return element
    if isinstance(spec, BooleanParameter):
        options = [option("Yes", "true"), option("No", "false")]
        element = {"type": "radio_buttons", "action_id": VALUE_ACTION, "options": options}
        if spec.default is not None:
            element["initial_option"] = options[0] if spec.default else options[1]
        return element
    if isinstance(spec, ChoiceParameter) and spec.options_from is not None:
        # Slack asks the app for the options as the person types (block_suggestion).
        element = {
            "type": "external_select",
            "action_id": VALUE_ACTION,
            "placeholder": plain("Type to search", MAX_PLACEHOLDER),
            "min_query_length": 0,
        }
        if spec.default is not None:
            element["initial_option"] = option(spec.default, spec.default)
        hint_parts.append(f"From {spec.options_from.describe()}.")
        return element
    if isinstance(spec, ChoiceParameter) and len(spec.choices) <= MAX_OPTIONS:
        options = [option(choice, choice) for choice in spec.choices]
        element = {
            "type": "static_select",
            "action_id": VALUE_ACTION,
            "placeholder": plain("Choose", MAX_PLACEHOLDER),
            "options": options,
        }
        if spec.default in spec.choices:
            element["initial_option"] = options[spec.choices.index(spec.default)]
        return element
    if isinstance(spec, SlackUserParameter):
        element = {"type": "users_select", "action_id": VALUE_ACTION}
        if spec.default is not None:
            element["initial_user"] = spec.default
        return element
    # Text, and a choice with more options than a select can hold (typed, then checked).
    element = {"type": "plain_text_input", "action_id": VALUE_ACTION}
    if isinstance(spec, TextParameter):
        element["max_length"] = min(spec.max_length, MAX_PLAIN_INPUT)
        if spec.default is not None:
            element["initial_value"] = spec.default[:MAX_PLAIN_INPUT]
        if spec.pattern:
            hint_parts.append(f"Must match {spec.pattern}.")
    elif isinstance(spec, ChoiceParameter):
        hint_parts.append("One of: " + ", ".join(spec.choices))
    return element


def _set_initial(element: dict[str, Any], value: str) -> None:
    """Show ``value`` in ``element`` instead of its default (a value no longer among the
    options is left out: the requester picks again)."""
    kind = element["type"]
    if kind in ("static_select", "radio_buttons"):
        match = [o for o in element["options"] if o["value"] == value]
        if match:
            element["initial_option"] = match[0]
        else:
            element.pop("initial_option", None)
    elif kind == "external_select":
        element["initial_option"] = option(value, value)
    elif kind == "users_select":
        element["initial_user"] = value
    elif kind == "number_input":
        element["initial_value"] = value
    else:
        element["initial_value"] = value[: element.get("max_length", MAX_PLAIN_INPUT)]


# =========================================================================== submissions


@dataclass(frozen=True)
class RunForm:
    """What a submitted run modal says, before validation."""

    command: str | None
    environment: str | None
    reason: str
    parameters: dict[str, RawValue]
    break_glass: bool = False


def state_value(value: StateValue) -> str | None:
    """The submitted value of one input, whatever its element type."""
    if value.selected_option is not None:
        return value.selected_option.value
    if value.selected_user is not None:
        return value.selected_user
    if value.selected_options is not None:
        return ",".join(o.value for o in value.selected_options) or None
    return value.value


def read_run_form(state: ViewState) -> RunForm:
    """The command, environment, reason and raw parameter values of a submission."""

    def single(block_id: str) -> str | None:
        inputs = state.values.get(block_id) or {}
        for action_id in (VALUE_ACTION, PICK_COMMAND_ACTION):
            if action_id in inputs:
                return state_value(inputs[action_id])
        return None

    parameters: dict[str, RawValue] = {}
    for block_id in state.values:
        if block_id.startswith(PARAM_BLOCK_PREFIX):
            parameters[block_id.removeprefix(PARAM_BLOCK_PREFIX)] = single(block_id)
    return RunForm(
        command=single(COMMAND_BLOCK),
        environment=single(ENVIRONMENT_BLOCK),
        reason=single(REASON_BLOCK) or "",
        parameters=parameters,
        break_glass=single(BREAK_GLASS_BLOCK) == BREAK_GLASS_VALUE,
    )


def view_errors(errors: Iterable[FieldError], spec: CommandSpec | None) -> dict[str, str]:
    """``response_action: errors`` content: block id -> message, each under its field.

    A problem with no field of its own in the modal goes under the command picker, which
    is always there (Slack refuses errors for block ids the view does not have).
    """
    parameter_names = {p.name for p in spec.parameters} if spec else set()
    by_block: dict[str, list[str]] = {}
    for error in errors:
        if error.field in (COMMAND_BLOCK, ENVIRONMENT_BLOCK, REASON_BLOCK, BREAK_GLASS_BLOCK):
            block_id, text = error.field, error.message
        elif error.field in parameter_names:
            block_id, text = parameter_block_id(error.field), error.message
        else:
            block_id, text = COMMAND_BLOCK, str(error)
        by_block.setdefault(block_id, []).append(text)
    return {block: clip("; ".join(texts), MAX_ERROR_TEXT) for block, texts in by_block.items()}


# =========================================================================== replies


@dataclass(frozen=True)
class Reply:
    """An ephemeral answer: notification text and Block Kit blocks."""

    text: str
    blocks: tuple[Block, ...] = ()

    def as_arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {"text": clip(self.text, MAX_SECTION_TEXT)}
        if self.blocks:
            arguments["blocks"] = list(self.blocks[:MAX_BLOCKS])
        return arguments


def text_reply(text: str) -> Reply:
    return Reply(text=text, blocks=(section(text),))


def help_reply(command_name: str) -> Reply:
    c = command_name
    lines = [
        f"*{c}* turns requests into toilkit events:",
        f"• `{c} run` opens a form to run a reviewed batch command",
        f"• `{c} drift` shows the open drift of every state; `{c} drift STATE` one state's",
        f"• `{c} drift scan STATE` scans a state now",
        f"• `{c} runs` lists the latest batch runs",
        f"• `{c} help` shows this",
    ]
    return Reply(text=f"{c} help", blocks=(section("\n".join(lines)),))


def unknown_command_reply(command_name: str, text: str, problem: str) -> Reply:
    shown = code(clip(text, 100)) if text.strip() else "that"
    return text_reply(
        f":thinking_face: I don't know {shown}: {escape(problem)}. "
        f"Try `{command_name} help` for what I can do."
    )


def drift_reply(
    drift: Mapping[str, Sequence[OpenDrift]],
    *,
    now: datetime,
    scanned: Mapping[str, tuple[datetime, str]],
    max_lines: int = 10,
) -> Reply:
    """Open drift per state, oldest first, with who is on it."""
    total = sum(len(lines) for lines in drift.values())
    if total == 0:
        states = ", ".join(code(s) for s in drift) or "any state"
        return text_reply(f":white_check_mark: No open drift in {states}.")
    blocks: list[Block] = [section(f"*{total} open drift finding{'s' if total != 1 else ''}*")]
    for state, lines in drift.items():
        if not lines:
            continue
        shown = []
        for line in lines[:max_lines]:
            claimer = line.claimed_by
            who = (
                ""
                if claimer is None
                else f" — <@{claimer.slack_user_id}> is on it"
                if claimer.slack_user_id
                else f" — {escape(claimer.name)} is on it"
            )
            kind = "" if line.kind == "drift" else f" ({escape(line.kind)})"
            shown.append(
                f"• {code(line.address)}{kind}, first seen {ago(now - line.first_seen)}{who}"
            )
        if len(lines) > max_lines:
            shown.append(f"• …and {len(lines) - max_lines} more")
        last = scanned.get(state)
        scan_note = f" (last scan {ago(now - last[0])}, {escape(last[1])})" if last else ""
        blocks.append(section(f"*{escape(state)}*{scan_note}\n" + "\n".join(shown)))
        if len(blocks) >= MAX_BLOCKS:
            break
    return Reply(text=f"{total} open drift findings", blocks=tuple(blocks))


@dataclass(frozen=True)
class RunLine:
    run_id: str
    command: str
    environment: str
    status: str
    requested_by: str
    requested_at: datetime


_STATUS_EMOJI = {
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "timed_out": ":hourglass:",
    "cancelled": ":no_entry_sign:",
    "refused": ":no_entry:",
    "running": ":arrow_forward:",
    "awaiting_approval": ":raised_hand:",
    "previewing": ":mag:",
}


def runs_reply(runs: Sequence[RunLine], *, now: datetime) -> Reply:
    if not runs:
        return text_reply("No batch runs yet. Start one with the `run` subcommand.")
    lines = [
        f"{_STATUS_EMOJI.get(r.status, ':small_blue_diamond:')} {code(r.run_id)} "
        f"*{escape(r.command)}* on {escape(r.environment)}: {escape(r.status)}, "
        f"by {r.requested_by} {ago(now - r.requested_at)}"
        for r in runs
    ]
    return Reply(
        text=f"The latest {len(runs)} batch runs",
        blocks=(section("*Latest batch runs*"), section("\n".join(lines))),
    )
