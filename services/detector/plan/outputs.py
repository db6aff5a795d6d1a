"""Root module outputs the plan would change, masked where any part of the plan says so."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.detector.plan.models import OutputChange
from services.detector.plan.reading import RawPlan
from services.detector.plan.values import any_true, is_sensitive, mask


def output_changes(raw: Mapping[str, Any], plan: RawPlan) -> tuple[OutputChange, ...]:
    declared_sensitive = _outputs_declared_sensitive(raw)
    changes: list[OutputChange] = []
    for name, change in (plan.output_changes or {}).items():
        if change.actions == ["no-op"]:
            continue
        whole = (
            name in declared_sensitive
            or is_sensitive(change.before_sensitive)
            or is_sensitive(change.after_sensitive)
        )
        unknown = any_true(change.after_unknown)
        changes.append(
            OutputChange(
                name=name,
                actions=tuple(change.actions),
                before=mask(change.before, True if whole else change.before_sensitive),
                after=None
                if change.after_unknown is True
                else mask(change.after, True if whole else change.after_sensitive),
                sensitive=whole,
                after_unknown=unknown,
            )
        )
    return tuple(changes)


def _outputs_declared_sensitive(raw: Mapping[str, Any]) -> frozenset[str]:
    """Outputs that any part of the plan declares sensitive.

    Older plan formats have no ``*_sensitive`` on output changes, but the planned values,
    the prior state and the configuration still say ``"sensitive": true``.
    """
    places = (
        _dig(raw, "planned_values", "outputs"),
        _dig(raw, "prior_state", "values", "outputs"),
        _dig(raw, "configuration", "root_module", "outputs"),
    )
    names: set[str] = set()
    for outputs in places:
        if not isinstance(outputs, Mapping):
            continue
        for name, declaration in outputs.items():
            marker = declaration.get("sensitive") if isinstance(declaration, Mapping) else None
            # Anything but an explicit false/absent counts: fail closed on odd shapes.
            if marker not in (None, False):
                names.add(str(name))
    return frozenset(names)


def _dig(raw: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(raw, Mapping):
            return None
        raw = raw.get(key)
    return raw
