"""Building findings: one per resource change, with its attributes, ignore state and fingerprint."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from services.detector.ignore import ActiveRules
from services.detector.plan.models import PlanAttribute, PlanFinding
from services.detector.plan.reading import RawResourceChange
from services.detector.plan.sets import NO_SETS, SetPaths
from services.detector.plan.values import Leaf, PathStep, diff_resource
from shared.events import FindingKind, Revert

_COMPACT_CHANGES = frozenset({"create", "delete", "forget"})
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


def change_name(actions: Sequence[str], *, importing: bool = False, moving: bool = False) -> str:
    """One word for Terraform's actions: replace for both delete/create orders.

    A no-op that imports a resource is ``import``, one that only moves it is ``move``.
    """
    if tuple(actions) == ("no-op",) and (importing or moving):
        return "import" if importing else "move"
    if sorted(actions) == ["create", "delete"]:
        return "replace"
    if len(actions) == 1:
        return actions[0]
    return "+".join(actions)


@dataclass(frozen=True)
class FindingScope:
    """How much of a resource change a finding takes (all of it, by default).

    Attributes:
        sets: The resource type's set attributes (from the provider schema).
        keep: Which changed leaves the finding lists (a pending change that also
            reverts a drift lists only its code).
        revert: Drift only: what apply does to put the drift back.
        reverted: Drift only: whether apply puts the leaf at these steps back.
    """

    sets: SetPaths = NO_SETS
    keep: Callable[[Leaf], bool] | None = None
    revert: Revert | None = None
    reverted: Callable[[tuple[PathStep, ...]], bool] | None = None


def build_finding(
    entry: RawResourceChange,
    *,
    kind: FindingKind,
    state: str,
    rules: ActiveRules,
    expand: bool,
    scope: FindingScope | None = None,
) -> PlanFinding:
    scope = scope or FindingScope()
    change = entry.change
    name = change_name(
        change.actions,
        importing=change.importing is not None,
        moving=entry.previous_address is not None,
    )
    replace_paths = [tuple(p) for p in change.replace_paths or () if p]
    leaves: list[Leaf] = []
    if expand or name not in _COMPACT_CHANGES:
        leaves = [
            leaf
            for leaf in diff_resource(
                change.before,
                change.after,
                before_sensitive=change.before_sensitive,
                after_sensitive=change.after_sensitive,
                after_unknown=change.after_unknown,
                sets=scope.sets,
            )
            if scope.keep is None or scope.keep(leaf)
        ]
    attributes = tuple(
        _attribute(leaf, entry.address, state=state, rules=rules, replace_paths=replace_paths)
        for leaf in leaves
    )
    if scope.reverted is not None:
        reverted = scope.reverted
        attributes = tuple(
            a.model_copy(update={"reverted": True}) if reverted(leaf.steps) else a
            for a, leaf in zip(attributes, leaves, strict=True)
        )
    resource_reason = rules.resource_reason(entry.address, state=state)
    every_attribute_ignored = bool(attributes) and all(a.ignored for a in attributes)
    ignore_reason = resource_reason
    if ignore_reason is None and every_attribute_ignored:
        ignore_reason = "; ".join(dict.fromkeys(a.ignore_reason or "" for a in attributes))
    counted = [a.path for a in attributes if not a.ignored] or [a.path for a in attributes]
    return PlanFinding(
        fingerprint=fingerprint(
            state=state,
            address=entry.address,
            kind=kind,
            change=name,
            deposed=entry.deposed,
            paths=counted,
        ),
        state=state,
        address=entry.address,
        resource_type=entry.type,
        kind=kind,
        actions=tuple(change.actions),
        change=name,
        action_reason=entry.action_reason,
        previous_address=entry.previous_address,
        deposed=entry.deposed,
        import_id=change.importing.id if change.importing is not None else None,
        attributes=attributes,
        revert=scope.revert,
        replace_paths=tuple(render_path(p) for p in replace_paths),
        ignored=ignore_reason is not None,
        ignore_reason=ignore_reason,
    )


def _attribute(
    leaf: Leaf,
    address: str,
    *,
    state: str,
    rules: ActiveRules,
    replace_paths: Sequence[tuple[PathStep, ...]],
) -> PlanAttribute:
    path = render_path(leaf.steps)
    ancestors = [render_path(leaf.steps[:n]) for n in range(len(leaf.steps), 0, -1)]
    reason = rules.attribute_reason(address, ancestors, state=state) or leaf.noise
    return PlanAttribute(
        path=path,
        before=leaf.before,
        after=leaf.after,
        sensitive=leaf.sensitive,
        after_unknown=leaf.after_unknown,
        forces_replacement=any(leaf.steps[: len(p)] == p for p in replace_paths),
        ignored=reason is not None,
        ignore_reason=reason,
        set_change=leaf.set_change,
    )


def fingerprint(
    *,
    state: str,
    address: str,
    kind: FindingKind,
    change: str,
    deposed: str | None,
    paths: Sequence[str],
) -> str:
    """The stable id of a finding; see :mod:`services.detector.plan` for what goes in and why."""
    # A JSON array keeps the parts apart: no separator can appear inside a part.
    material = json.dumps(
        [state, address, kind, change, deposed or "", sorted(set(paths))],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:16]


def render_path(steps: Sequence[PathStep]) -> str:
    """Write attribute path steps in the notation of :mod:`services.detector.plan`."""
    parts: list[str] = []
    for position, step in enumerate(steps):
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif _IDENTIFIER.match(step):
            parts.append(step if position == 0 else f".{step}")
        else:
            parts.append(f"[{json.dumps(step, ensure_ascii=False)}]")
    return "".join(parts)
