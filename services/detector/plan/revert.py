"""Telling the revert of a drift from code that was never applied.

After a drift, Terraform's ``resource_changes`` entry for the resource goes from the
actual values back to what the code says. Where the code still says what the state
recorded, that change only *puts back* the drift: it belongs to the drift finding (what
apply would put back), not to the pending code. Only the leaves where the code differs
from the *recorded* state (``resource_drift``'s ``before``) are code not applied yet.

A replacement or a re-creation counts as a revert too when the recorded object and the
planned one agree on every value known before apply (an id the cloud assigns afresh is
not code).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import JsonValue

from services.detector.ignore import json_values_equal
from services.detector.plan.reading import RawResourceChange
from services.detector.plan.sets import SetPaths, same_set
from services.detector.plan.values import Leaf, PathStep, diff_resource
from shared.events import Revert

Steps = tuple[PathStep, ...]


@dataclass(frozen=True)
class RevertSplit:
    """A change of a drifted resource, split into what reverts the drift and what is code.

    Attributes:
        revert: What apply does to put the drift back, or ``None`` when it does nothing
            (``ignore_changes``, a no-op).
        is_code: Whether any part of the change differs from the recorded state (or it
            imports or moves the resource): then it is also a ``pending`` finding.
        keep: Which leaves of the change the pending finding lists.
        reverted: Whether apply puts a drifted leaf (by its steps) back to its recorded value.
    """

    revert: Revert | None
    is_code: bool
    keep: Callable[[Leaf], bool]
    reverted: Callable[[Steps], bool]


def split_change(
    drift: RawResourceChange, change: RawResourceChange, *, sets: SetPaths
) -> RevertSplit:
    """Split ``change`` (``resource_changes``) against the ``drift`` of the same instance."""
    recorded = drift.change.before
    planned = change.change.after
    unknown = change.change.after_unknown
    acts = tuple(change.change.actions)

    def differs(steps: Steps) -> bool:
        return differs_from_recorded(recorded, planned, unknown, steps, sets=sets)

    code_leaves = [
        leaf
        for leaf in diff_resource(
            recorded,
            planned,
            before_sensitive=drift.change.before_sensitive,
            after_sensitive=change.change.after_sensitive,
            after_unknown=unknown,
            sets=sets,
        )
        if not leaf.after_unknown
    ]
    moves = change.previous_address is not None or change.change.importing is not None
    applies = acts not in (("no-op",), ("read",))
    revert = Revert(actions=acts, action_reason=change.action_reason) if applies else None
    return RevertSplit(
        revert=revert,
        is_code=bool(code_leaves) or moves,
        keep=lambda leaf: differs(leaf.steps),
        reverted=lambda steps: revert is not None and not differs(steps),
    )


def differs_from_recorded(
    recorded: JsonValue,
    planned: JsonValue,
    after_unknown: JsonValue,
    steps: Steps,
    *,
    sets: SetPaths,
) -> bool:
    """Whether the plan sets the value at ``steps`` to something other than the record."""
    if _unknown_at(after_unknown, steps):
        return True
    before, after = value_at(recorded, steps), value_at(planned, steps)
    if sets.is_set(steps) and isinstance(before, list) and isinstance(after, list):
        return not same_set(before, after)
    return not json_values_equal(before, after)


def value_at(value: JsonValue, steps: Steps) -> JsonValue:
    """The value under ``steps``, or ``None`` where the path does not exist."""
    for step in steps:
        if isinstance(value, dict) and isinstance(step, str):
            value = value.get(step)
        elif isinstance(value, list) and isinstance(step, int) and step < len(value):
            value = value[step]
        else:
            return None
    return value


def _unknown_at(tree: JsonValue, steps: Steps) -> bool:
    for step in steps:
        if tree is True:
            return True
        tree = value_at(tree, (step,))
    return tree is True
