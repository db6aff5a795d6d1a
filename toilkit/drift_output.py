"""What ``toilkit drift scan`` and ``toilkit drift parse`` print: the JSON document and the table.

Presentation for people (and the ``--json`` contract for tools) over the detector's
:class:`~services.detector.scan.StateResult`; the detector itself never formats for a
terminal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import JsonValue
from rich.table import Table
from rich.text import Text

from services.detector.plan import PlanFinding
from services.detector.scan import StateResult
from services.detector.team import TeamFigures, short_duration
from shared.events import SENSITIVE

#: How an unknown value is shown to people (Terraform's own words).
KNOWN_AFTER_APPLY = "(known after apply)"


def to_cli_json(results: Sequence[StateResult]) -> dict[str, Any]:
    """The ``--json`` document of the CLI, ready for :func:`json.dumps`.

    The contract other tools rely on: ``{"states": [{"name", "path", "status", "error",
    "findings": [{"address", "kind", "actions", "attributes": [{"path", "before",
    "after"}], "ignored"}]}]}``. Extra keys (``fingerprint``, ``ignore_reason``,
    ``sensitive``, ``after_unknown``...) are additions a consumer may ignore. ``notes``
    lists warnings about how a state was scanned (a provider whose schema could not be read,
    so its sets are shown by position; a plan close to its timeout).

    ``kind: "pending"`` always means code that was not applied. A drift finding's
    ``revert`` says what apply would do to put the recorded values back (``null`` when
    it would not), and each attribute's ``reverted`` whether that one goes back.
    ``deposed``, ``action_reason``, ``previous_address``, ``importing`` and each
    attribute's ``forces_replacement`` tell a replacement, a move or an import from
    two changes; ``set_change`` marks an element ``added`` to or ``removed`` from a set.
    """
    return {
        "states": [
            {
                "name": result.name,
                "path": result.path,
                "status": result.status,
                "error": result.status_error,
                "notes": list(result.notes),
                "findings": [
                    _finding_json(f) for f in (result.summary.findings if result.summary else ())
                ],
            }
            for result in results
        ]
    }


def _finding_json(finding: PlanFinding) -> dict[str, Any]:
    return {
        "address": finding.address,
        "kind": finding.kind,
        "actions": list(finding.actions),
        "attributes": [
            {
                "path": a.path,
                "before": a.before,
                "after": a.after,
                "sensitive": a.sensitive,
                "after_unknown": a.after_unknown,
                "ignored": a.ignored,
                "forces_replacement": a.forces_replacement,
                "reverted": a.reverted,
                "set_change": a.set_change,
            }
            for a in finding.attributes
        ],
        "ignored": finding.ignored,
        "ignore_reason": finding.ignore_reason,
        "fingerprint": finding.fingerprint,
        "resource_type": finding.resource_type,
        "change": finding.change,
        "action_reason": finding.action_reason,
        "previous_address": finding.previous_address,
        "deposed": finding.deposed,
        "importing": None if finding.import_id is None else {"id": finding.import_id},
        "revert": None
        if finding.revert is None
        else {
            "actions": list(finding.revert.actions),
            "action_reason": finding.revert.action_reason,
        },
    }


_KIND_LABELS = {"drift": ("drift", "bold red"), "pending": ("pending", "yellow")}


def findings_table(
    results: Sequence[StateResult], *, show_ignored: bool = True, value_width: int = 60
) -> Table:
    """A rich table of every state's findings, one row per finding (or failed state).

    Plan text is added as :class:`rich.text.Text`, never as markup, so a value like
    ``[bold]`` prints as itself.
    """
    table = Table(title="Terraform drift", show_lines=True)
    for column in ("State", "Address", "Kind", "Change", "Attributes", "Note"):
        table.add_column(column, overflow="fold")
    for result in results:
        error = result.status_error
        if error is not None:
            table.add_row(
                Text(result.name),
                Text(""),
                Text("failed", style="bold magenta"),
                Text(""),
                Text(""),
                Text(error),
            )
        for note in result.notes:
            table.add_row(
                Text(result.name),
                Text(""),
                Text("note", style="cyan"),
                Text(""),
                Text(""),
                Text(note),
            )
        for finding in result.summary.findings if result.summary else ():
            if finding.ignored and not show_ignored:
                continue
            label, style = _KIND_LABELS[finding.kind]
            table.add_row(
                Text(result.name),
                Text(finding.address),
                Text(label, style=style),
                Text(finding.change),
                _attributes_text(finding, value_width),
                Text("; ".join(_notes(finding))),
                style="dim" if finding.ignored else None,
            )
    return table


def _attributes_text(finding: PlanFinding, value_width: int) -> Text:
    lines = Text()
    for attribute in finding.attributes:
        if lines:
            lines.append("\n")
        after = (
            KNOWN_AFTER_APPLY
            if attribute.after_unknown
            else _format_value(attribute.after, value_width)
        )
        before = _format_value(attribute.before, value_width)
        if attribute.set_change == "added":
            line = f"{attribute.path}: + {after}"
        elif attribute.set_change == "removed":
            line = f"{attribute.path}: - {before}"
        else:
            line = f"{attribute.path}: {before} -> {after}"
        if attribute.reverted:
            line += {"added": " (apply removes it)", "removed": " (apply adds it back)"}.get(
                attribute.set_change or "", f" (apply puts back {before})"
            )
        if attribute.forces_replacement:
            line += " (forces replacement)"
        if attribute.ignored:
            line += f" [ignored: {attribute.ignore_reason}]"
        lines.append(line, style="dim" if attribute.ignored else "")
    return lines


def _notes(finding: PlanFinding) -> list[str]:
    notes = []
    if finding.ignored:
        notes.append(f"ignored: {finding.ignore_reason}")
    if finding.action_reason:
        notes.append(finding.action_reason)
    if finding.revert is not None:
        notes.append("apply puts it back" + _revert_how(finding.revert.actions))
    if finding.previous_address:
        notes.append(f"moved from {finding.previous_address}")
    if finding.import_id is not None:
        notes.append(f"imports {finding.import_id}")
    if finding.deposed:
        notes.append(f"deposed object {finding.deposed}")
    return notes


def _revert_how(actions: Sequence[str]) -> str:
    if sorted(actions) == ["create", "delete"]:
        return " by replacing it"
    if tuple(actions) == ("create",):
        return " by creating it again"
    return ""


def _format_value(value: JsonValue, width: int) -> str:
    # The marker prints as itself; every real value as JSON, so "" and null stay visible.
    text = SENSITIVE if value == SENSITIVE else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def team_tables(team: TeamFigures) -> list[Table]:
    """``toilkit drift report``'s team tables: who resolved what, what came back, what is noisy."""
    people = Table(title="Time to resolve, per person who claimed", title_justify="left")
    for column in ("person", "resolved", "median", "p90"):
        people.add_column(column, justify="left" if column == "person" else "right")
    for r in team.resolvers:
        people.add_row(r.person, str(r.resolved), short_duration(r.median), short_duration(r.p90))
    back = Table(title="Came back after being resolved", title_justify="left")
    for column in ("state", "address", "times"):
        back.add_column(column, justify="right" if column == "times" else "left")
    for c in team.came_back:
        back.add_row(c.state, c.address, str(c.times))
    noisy = Table(title="Noisiest attributes", title_justify="left")
    for column in ("state", "address", "attribute", "drifts"):
        noisy.add_column(column, justify="right" if column == "drifts" else "left")
    for n in team.noisiest:
        noisy.add_row(n.state, n.address, n.attribute, str(n.drifts))
    return [people, back, noisy]
