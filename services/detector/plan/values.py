"""The changed values of a resource: which leaves differ, and what of them is sensitive.

Walks ``before``/``after`` together with Terraform's ``*_sensitive`` and ``after_unknown``
trees; every leaf that leaves this module is already masked.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from pydantic import JsonValue

from services.detector.ignore import json_values_equal, provider_noise
from services.detector.plan.sets import NO_SETS, PathStep, SetPaths, canonical
from shared.events import SENSITIVE, SetChange

__all__ = ["Leaf", "PathStep", "any_true", "diff_resource", "is_sensitive", "mask"]


@dataclass(frozen=True)
class Leaf:
    """A changed leaf, already masked; ``noise`` was judged on the raw values."""

    steps: tuple[PathStep, ...]
    before: JsonValue
    after: JsonValue
    sensitive: bool
    after_unknown: bool
    noise: str | None
    set_change: SetChange | None = None


#: One child of an object or a list: its key or index, its value before, its value after.
_Child: TypeAlias = tuple[PathStep, JsonValue, JsonValue]


@dataclass(frozen=True, slots=True)
class _Marks:
    """Terraform's trees over a value: what is sensitive before and after, what is unknown."""

    before_sensitive: JsonValue
    after_sensitive: JsonValue
    after_unknown: JsonValue

    def child(self, step: PathStep) -> _Marks:
        """The trees over one child of the value."""
        return _Marks(
            before_sensitive=_sensitivity_child(self.before_sensitive, step),
            after_sensitive=_sensitivity_child(self.after_sensitive, step),
            after_unknown=_unknown_child(self.after_unknown, step),
        )


def diff_resource(
    before: JsonValue,
    after: JsonValue,
    *,
    before_sensitive: JsonValue,
    after_sensitive: JsonValue,
    after_unknown: JsonValue,
    sets: SetPaths = NO_SETS,
) -> Iterator[Leaf]:
    """Changed leaves of a resource; top-level attributes are always listed one by one.

    Attribute names come from the provider schema, so they are shown even when the
    whole object is marked sensitive; their values are not. The attributes ``sets``
    names are compared as sets: one leaf per element added or removed.
    """
    yield from _diff_children(
        _object_children(before, after, after_unknown),
        _Marks(before_sensitive, after_sensitive, after_unknown),
        steps=(),
        sets=sets,
    )


def _diff(
    before: JsonValue,
    after: JsonValue,
    marks: _Marks,
    *,
    steps: tuple[PathStep, ...],
    sets: SetPaths,
) -> Iterator[Leaf]:
    unknown = marks.after_unknown is True
    if not any_true(marks.after_unknown) and json_values_equal(before, after):
        # Most of a plan is unchanged; skip such subtrees without walking them.
        return
    if _masks_whole(before, marks.before_sensitive) or _masks_whole(after, marks.after_sensitive):
        # Compared, never shown: masked whole (map keys can be secret too).
        yield Leaf(
            steps,
            before=mask(before, True),
            after=None if unknown else mask(after, True),
            sensitive=True,
            after_unknown=unknown,
            noise=None if unknown else provider_noise(before, after),
        )
        return
    if unknown:
        yield Leaf(
            steps,
            before=mask(before, marks.before_sensitive),
            after=None,
            sensitive=False,
            after_unknown=True,
            noise=None,
        )
        return
    children: list[_Child] = []
    if _both_are(dict, before, after, marks.after_unknown):
        children = _object_children(before, after, marks.after_unknown)
    elif _both_are(list, before, after, marks.after_unknown):
        if sets.is_set(steps):
            elements = list(_set_leaves(before, after, marks, steps))
            yield from elements
            if elements or (isinstance(before, list) and isinstance(after, list)):
                return  # the same elements in another order are the same set
        else:
            children = _list_children(before, after, marks.after_unknown)
    if children:
        yield from _diff_children(children, marks, steps=steps, sets=sets)
        return
    # A leaf, a type change, or null against an empty collection.
    if not json_values_equal(before, after):
        yield Leaf(
            steps,
            before=mask(before, marks.before_sensitive),
            after=mask(after, marks.after_sensitive),
            sensitive=False,
            after_unknown=False,
            noise=provider_noise(before, after),
        )


def _diff_children(
    children: Sequence[_Child],
    marks: _Marks,
    *,
    steps: tuple[PathStep, ...],
    sets: SetPaths,
) -> Iterator[Leaf]:
    """Diff each child, with its own part of the sensitivity and unknown trees."""
    for step, before, after in children:
        yield from _diff(before, after, marks.child(step), steps=(*steps, step), sets=sets)


def _set_leaves(
    before: JsonValue,
    after: JsonValue,
    marks: _Marks,
    steps: tuple[PathStep, ...],
) -> Iterator[Leaf]:
    """One leaf per element removed from or added to a set, at the set's own path.

    Elements are matched by value (as many times as they occur); the sensitivity and
    unknown trees of a set are positional, so each element is masked by its own entry.
    """
    before_list = before if isinstance(before, list) else []
    after_list = after if isinstance(after, list) else []
    unmatched = [canonical(item) for item in after_list]
    kept_after: set[int] = set()
    for index, item in enumerate(before_list):
        key = canonical(item)
        match = next((j for j, k in enumerate(unmatched) if k == key and j not in kept_after), None)
        if match is not None:
            kept_after.add(match)
            continue
        tree = _sensitivity_child(marks.before_sensitive, index)
        yield Leaf(
            steps,
            before=mask(item, tree),
            after=None,
            sensitive=_masks_whole(item, tree),
            after_unknown=False,
            noise=None,
            set_change="removed",
        )
    for index, item in enumerate(after_list):
        if index in kept_after:
            continue
        tree = _sensitivity_child(marks.after_sensitive, index)
        unknown = _unknown_child(marks.after_unknown, index)
        yield Leaf(
            steps,
            before=None,
            after=None if unknown is True else mask(item, tree),
            sensitive=_masks_whole(item, tree),
            after_unknown=any_true(unknown),
            noise=None,
            set_change="added",
        )


def _object_children(before: JsonValue, after: JsonValue, after_unknown: JsonValue) -> list[_Child]:
    """Every key of either side or of the unknown tree, sorted; a side without it has None."""
    before_map = before if isinstance(before, dict) else {}
    after_map = after if isinstance(after, dict) else {}
    unknown_map = after_unknown if isinstance(after_unknown, dict) else {}
    keys = sorted({*before_map, *after_map, *unknown_map})
    return [(key, before_map.get(key), after_map.get(key)) for key in keys]


def _list_children(before: JsonValue, after: JsonValue, after_unknown: JsonValue) -> list[_Child]:
    """Every index of either side or of the unknown tree; a side without it has None."""
    before_list = before if isinstance(before, list) else []
    after_list = after if isinstance(after, list) else []
    unknown_list = after_unknown if isinstance(after_unknown, list) else []
    length = max(len(before_list), len(after_list), len(unknown_list))
    return [
        (
            index,
            before_list[index] if index < len(before_list) else None,
            after_list[index] if index < len(after_list) else None,
        )
        for index in range(length)
    ]


def _both_are(kind: type, before: JsonValue, after: JsonValue, after_unknown: JsonValue) -> bool:
    """Whether the sides that exist are ``kind`` (with neither, whether the unknown tree is)."""
    sides = [v for v in (before, after) if v is not None]
    if not sides:
        return isinstance(after_unknown, kind)
    return all(isinstance(v, kind) for v in sides)


def is_sensitive(tree: JsonValue) -> bool:
    """Whether a sensitivity tree marks its whole value sensitive.

    Terraform writes ``true``, ``false``, or an object/array of subtrees. Anything else
    is not understood and counts as sensitive: a false alarm costs a masked value, a
    miss costs a leaked secret.
    """
    if tree is None or tree is False:
        return False
    return not isinstance(tree, dict | list)


def _masks_whole(value: JsonValue, tree: JsonValue) -> bool:
    """Whether ``tree`` masks ``value`` whole: it says so, or its shape does not fit.

    A marking with structure (``{"value": true}``) over a plain value is a shape this
    parser does not understand; when it marks anything at all, the value is masked.
    """
    if is_sensitive(tree):
        return True
    return not isinstance(value, dict | list) and value is not None and _marks_any(tree)


def _marks_any(tree: JsonValue) -> bool:
    """Whether a sensitivity tree marks anything (a leaf other than false counts)."""
    if isinstance(tree, dict):
        return any(_marks_any(v) for v in tree.values())
    if isinstance(tree, list):
        return any(_marks_any(v) for v in tree)
    return is_sensitive(tree)


def _sensitivity_child(tree: JsonValue, step: PathStep) -> JsonValue:
    if is_sensitive(tree):
        return True
    if tree is None or tree is False:
        return False
    if isinstance(tree, dict):
        return tree.get(step, False) if isinstance(step, str) else True
    if isinstance(tree, list):
        if isinstance(step, int):
            return tree[step] if step < len(tree) else False
        return True
    return True


def _unknown_child(tree: JsonValue, step: PathStep) -> JsonValue:
    if isinstance(tree, dict) and isinstance(step, str):
        return tree.get(step, False)
    if isinstance(tree, list) and isinstance(step, int) and step < len(tree):
        return tree[step]
    return False


def mask(value: JsonValue, tree: JsonValue) -> JsonValue:
    """``value`` with every part its sensitivity tree marks replaced by the marker."""
    if value is None:
        return None
    if _masks_whole(value, tree):
        return SENSITIVE
    if isinstance(value, dict):
        return {key: mask(item, _sensitivity_child(tree, key)) for key, item in value.items()}
    if isinstance(value, list):
        return [mask(item, _sensitivity_child(tree, index)) for index, item in enumerate(value)]
    return value


def any_true(tree: JsonValue) -> bool:
    if tree is True:
        return True
    if isinstance(tree, dict):
        return any(any_true(v) for v in tree.values())
    if isinstance(tree, list):
        return any(any_true(v) for v in tree)
    return False
