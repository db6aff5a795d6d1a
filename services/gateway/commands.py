"""What the text after the slash command (``/toil ...``) asks for.

:func:`parse_command_text` is pure: :mod:`services.gateway.app` matches on the
subcommand it returns and asks :class:`services.gateway.handlers.Gateway` for the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from shared.state_names import STATE_NAME_RULE, is_state_name


@dataclass(frozen=True)
class ShowHelp:
    pass


@dataclass(frozen=True)
class OpenRunModal:
    command: str | None = None


@dataclass(frozen=True)
class ShowDrift:
    state: str | None = None


@dataclass(frozen=True)
class ScanDrift:
    state: str


@dataclass(frozen=True)
class ShowRuns:
    pass


@dataclass(frozen=True)
class UnknownCommand:
    text: str
    problem: str


Subcommand: TypeAlias = ShowHelp | OpenRunModal | ShowDrift | ScanDrift | ShowRuns | UnknownCommand


def parse_command_text(text: str) -> Subcommand:
    """What the text after the slash command asks for.

    ``""``/``help``, ``run [COMMAND]``, ``drift [STATE]``, ``drift scan STATE``, ``runs``.
    """
    words = text.split()
    if not words or (words[0].lower() == "help" and len(words) == 1):
        return ShowHelp()
    verb, arguments = words[0].lower(), words[1:]
    if verb == "run" and len(arguments) <= 1:
        return OpenRunModal(arguments[0] if arguments else None)
    if verb == "runs" and not arguments:
        return ShowRuns()
    if verb == "drift":
        if not arguments:
            return ShowDrift()
        if arguments[0].lower() == "scan":
            if len(arguments) != 2:
                return UnknownCommand(text, "scanning takes one state: `drift scan STATE`")
            return _state_or_problem(text, arguments[1], ScanDrift)
        if len(arguments) == 1:
            return _state_or_problem(text, arguments[0], ShowDrift)
        return UnknownCommand(text, "`drift` takes at most one state name")
    if verb in ("help", "run", "runs"):
        return UnknownCommand(text, f"`{verb}` takes no such arguments")
    return UnknownCommand(text, "that is not a subcommand")


def _state_or_problem(
    text: str, state: str, build: Callable[[str], ShowDrift | ScanDrift]
) -> Subcommand:
    if is_state_name(state):
        return build(state)
    return UnknownCommand(text, f"a state name must {STATE_NAME_RULE}")
