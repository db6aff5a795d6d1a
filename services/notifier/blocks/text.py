"""Text pieces the notifier's messages share: values, suspects, plan symbols, lists.

Pure string functions; the ``render_*`` modules put what they return into blocks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from shared.events import SENSITIVE, AttributeChange, DriftFinding, RunParameter, StateRef, Suspect
from shared.slack.blocks import ARROW, clip, clip_mrkdwn, code_text, escape, slack_date

MAX_VALUE_CHARS = 90
#: A code block of stderr or a log tail: room left for its label in one section.
MAX_CODE_CHARS = 2600


def state_label(state: StateRef) -> str:
    """The state as inline code, with its workspace when it is not ``default``."""
    label = f"`{code_text(state.name)}`"
    if state.workspace != "default":
        label += f" (workspace `{code_text(state.workspace)}`)"
    return label


def code_list(names: Sequence[str], limit: int) -> str:
    """The first ``limit`` names as inline code, then "and N more" for the rest."""
    shown = ", ".join(f"`{code_text(name)}`" for name in names[:limit])
    more = len(names) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def attribute_line(change: AttributeChange) -> str:
    """``path: before → after`` with sensitive values masked; a set element as ``+``/``-``.

    A drifted value that apply puts back says so on its own line: the revert is part of
    the drift, not code waiting to be applied.
    """
    before = format_value(change.before)
    after = "(known after apply)" if change.after_unknown else format_value(change.after)
    if change.set_change == "added":
        line = f"{change.path}: + {after}"
    elif change.set_change == "removed":
        line = f"{change.path}: - {before}"
    elif change.sensitive:
        line = f"{change.path}: {SENSITIVE}"
    else:
        line = f"{change.path}: {before} {ARROW} {after}"
    if change.reverted:
        line += " · " + _put_back(change, before)
    return line


def _put_back(change: AttributeChange, before: str) -> str:
    """What apply does to a drifted value: the recorded one comes back."""
    if change.set_change == "added":
        return "apply removes it"
    if change.set_change == "removed":
        return "apply adds it back"
    return "apply puts it back" if change.sensitive else f"apply puts back {before}"


def format_value(value: Any) -> str:
    """A JSON value as a reader wants it: strings quoted, absent as ``(none)``, clipped."""
    if value is None:
        return "(none)"
    if value == SENSITIVE:
        return SENSITIVE
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return clip(text, MAX_VALUE_CHARS)


def suspect_line(suspect: Suspect) -> str:
    who = (
        f"<@{suspect.slack_user_id}> (`{code_text(short_principal(suspect.principal))}`)"
        if suspect.slack_user_id
        else f"`{code_text(short_principal(suspect.principal))}`"
    )
    source = f" from `{code_text(suspect.source_ip)}`" if suspect.source_ip else ""
    return (
        f":mag: Likely changed by {who} · `{code_text(suspect.event_name)}` "
        f"{slack_date(suspect.event_time)}{source}"
    )


def short_principal(principal: str) -> str:
    """``arn:aws:sts::1:assumed-role/Admin/alice`` -> ``Admin/alice`` (the readable part)."""
    if principal.startswith("arn:"):
        resource = principal.split(":", 5)[-1]
        return resource.split("/", 1)[1] if "/" in resource else resource
    return principal


def change_symbol(actions: Sequence[str]) -> str:
    """Terraform's plan symbol for a list of actions."""
    acts = tuple(actions)
    if acts == ("delete", "create"):
        return "-/+"
    if acts == ("create", "delete"):
        return "+/-"
    return {"create": "+", "update": "~", "delete": "-", "read": "<=", "no-op": " "}.get(
        acts[0] if acts else "update", "~"
    )


#: Terraform's ``action_reason`` values in words.
ACTION_REASONS = {
    "replace_because_tainted": "it is tainted",
    "replace_because_cannot_update": "it cannot be updated in place",
    "replace_by_request": "replacement was requested",
    "replace_by_triggers": "a replace_triggered_by reference changed",
    "delete_because_no_resource_config": "it was removed from the code",
    "delete_because_no_module": "its module was removed from the code",
    "delete_because_wrong_repetition": "count/for_each changed",
    "delete_because_count_index": "its count index is gone",
    "delete_because_each_key": "its for_each key is gone",
    "delete_because_no_move_target": "its moved target does not exist",
    "read_because_config_unknown": "its configuration is known only after apply",
    "read_because_dependency_pending": "a dependency has changes pending",
}


def change_note(finding: DriftFinding) -> str | None:
    """What the plan symbol and the group heading do not already say, if anything.

    An in-place update says it all with ``~`` under its heading; a deletion, a creation
    or a replacement (and why), a move or a deposed object deserve a line.
    """
    acts = tuple(finding.actions)
    replace = len(acts) == 2 and set(acts) == {"create", "delete"}
    what = None
    if finding.kind == "drift":
        if "delete" in acts and not replace:
            what = "*Deleted outside Terraform*"
        elif "create" in acts and not replace:
            what = "*Created outside Terraform*"
    elif finding.import_id is not None:
        what = f"*Will be imported* (id `{code_text(finding.import_id)}`)"
    elif replace:
        what = "*Will be replaced*"
    elif acts and acts[0] in ("create", "delete", "read"):
        what = {"create": "*Will be created*", "delete": "*Will be destroyed*"}.get(
            acts[0], "*Will be read*"
        )
    parts = [what] if what else []
    revert = _revert_words(finding.revert.actions) if finding.revert is not None else None
    if revert:
        parts.append(revert)
    action_reason = finding.action_reason or (finding.revert and finding.revert.action_reason)
    if action_reason:
        reason = ACTION_REASONS.get(action_reason, action_reason.replace("_", " "))
        parts.append(f"because {escape(reason)}")
    if finding.previous_address:
        parts.append(f"moved from `{code_text(finding.previous_address)}`")
    if finding.deposed:
        parts.append(f"deposed object `{code_text(finding.deposed)}`")
    return " · ".join(parts) if parts else None


def _revert_words(actions: Sequence[str]) -> str | None:
    """How apply puts a drifted resource back (an update says so on each attribute line)."""
    if sorted(actions) == ["create", "delete"]:
        return "apply puts it back by replacing it"
    if tuple(actions) == ("create",):
        return "apply creates it again"
    if tuple(actions) == ("delete",):
        return "apply deletes it"
    return None


def parameters_text(parameters: Iterable[RunParameter]) -> str:
    """``name = value`` lines; sensitive values never shown."""
    lines = []
    for parameter in parameters:
        value = SENSITIVE if parameter.sensitive or parameter.value is None else parameter.value
        lines.append(f"`{code_text(parameter.name)}` = `{code_text(clip(value, 200))}`")
    return clip_mrkdwn("\n".join(lines), 1800)


def approver_mention(approver: str) -> str:
    """A user id as ``<@U...>``, a user group id as ``<!subteam^S...>``."""
    if approver.startswith("S"):
        return f"<!subteam^{approver}>"
    if approver[:1] in ("U", "W"):
        return f"<@{approver}>"
    return escape(approver)


def tail_lines(lines: Sequence[str], limit: int) -> tuple[list[str], int]:
    """The last lines that fit ``limit`` characters, and how many earlier ones were cut."""
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        size += len(line) + 1
        if size > limit and kept:
            break
        kept.append(line[-limit:])
    kept.reverse()
    return kept, len(lines) - len(kept)
