"""Which attributes are sets: the provider schema says so, the plan JSON does not.

A plan writes a set as a JSON array in an order of Terraform's choosing, so diffing it
by position reports renumbered elements (``ingress[2]`` -> ``ingress[3]``) when one rule
was added. Read from ``terraform providers schema -json`` (:func:`set_paths_from_schema`),
a :class:`SetPaths` per resource type tells the differ which paths to compare as sets:
elements added and removed, whatever their positions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from pydantic import JsonValue

PathStep: TypeAlias = str | int


@dataclass(frozen=True)
class SetPaths:
    """A tree of a resource type's attribute paths that leads to its sets.

    Attributes:
        is_set_here: The path that leads here is a set.
        attributes: Object attributes and nested blocks, by name.
        elements: The element of a list or set (any position).
        values: The value of a map (any key).
    """

    is_set_here: bool = False
    attributes: dict[str, SetPaths] = field(default_factory=dict)
    elements: SetPaths | None = None
    values: SetPaths | None = None

    def is_set(self, steps: Iterable[PathStep]) -> bool:
        """Whether the attribute at ``steps`` (from the resource's root) is a set."""
        node: SetPaths | None = self
        for step in steps:
            if node is None:
                return False
            if isinstance(step, int):
                node = node.elements
            else:
                node = node.attributes.get(step, node.values)
        return node is not None and node.is_set_here

    @property
    def empty(self) -> bool:
        return not (self.is_set_here or self.attributes or self.elements or self.values)

    def to_json(self) -> dict[str, Any]:
        """A compact JSON form (what a cache keeps); :meth:`from_json` reads it back."""
        out: dict[str, Any] = {}
        if self.is_set_here:
            out["set"] = True
        if self.attributes:
            out["attributes"] = {k: v.to_json() for k, v in self.attributes.items()}
        if self.elements is not None:
            out["elements"] = self.elements.to_json()
        if self.values is not None:
            out["values"] = self.values.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SetPaths:
        return cls(
            is_set_here=bool(data.get("set")),
            attributes={k: cls.from_json(v) for k, v in data.get("attributes", {}).items()},
            elements=cls.from_json(data["elements"]) if "elements" in data else None,
            values=cls.from_json(data["values"]) if "values" in data else None,
        )


#: No schema: every array is a list, compared by position (the parser's fallback).
NO_SETS = SetPaths()


def same_set(left: list[JsonValue], right: list[JsonValue]) -> bool:
    """Whether two arrays hold the same elements, in any order."""
    return sorted(map(canonical, left)) == sorted(map(canonical, right))


def canonical(value: JsonValue) -> str:
    """One text per JSON value (``true`` and ``1`` stay apart), to compare set elements."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def set_paths_from_schema(document: Mapping[str, Any]) -> dict[str, SetPaths]:
    """The sets of every resource type in ``terraform providers schema -json`` output.

    Types without any set are left out. A part of the schema of a shape this function
    does not know is skipped (its attributes are then diffed by position).
    """
    found: dict[str, SetPaths] = {}
    for provider in _mapping(document.get("provider_schemas")).values():
        for resource_type, resource in _mapping(_mapping(provider).get("resource_schemas")).items():
            paths = _block(_mapping(_mapping(resource).get("block")))
            if not paths.empty:
                found[str(resource_type)] = paths
    return found


def _block(block: Mapping[str, Any]) -> SetPaths:
    node = SetPaths()
    for name, raw_attribute in _mapping(block.get("attributes")).items():
        attribute = _mapping(raw_attribute)
        if "nested_type" in attribute:
            child = _nested(_mapping(attribute["nested_type"]))
        else:
            child = _type(attribute.get("type"))
        if not child.empty:
            node.attributes[str(name)] = child
    for name, raw_block_type in _mapping(block.get("block_types")).items():
        block_type = _mapping(raw_block_type)
        child = _collection(
            str(block_type.get("nesting_mode")), _block(_mapping(block_type.get("block")))
        )
        if not child.empty:
            node.attributes[str(name)] = child
    return node


def _nested(nested: Mapping[str, Any]) -> SetPaths:
    element = _block({"attributes": nested.get("attributes")})
    return _collection(str(nested.get("nesting_mode")), element)


def _collection(nesting_mode: str, element: SetPaths) -> SetPaths:
    """A block or nested attribute by its nesting mode: the element goes where it belongs."""
    if nesting_mode in ("list", "set"):
        return SetPaths(is_set_here=nesting_mode == "set", elements=_or_none(element))
    if nesting_mode == "map":
        return SetPaths(values=_or_none(element))
    return element  # single, group: the block's attributes sit right under its name


def _type(cty: Any) -> SetPaths:
    """A cty type in its JSON form: ``"string"``, ``["set", T]``, ``["object", {...}]``..."""
    if not isinstance(cty, list) or len(cty) != 2:
        return SetPaths()
    kind, inner = cty
    if kind in ("list", "set"):
        return SetPaths(is_set_here=kind == "set", elements=_or_none(_type(inner)))
    if kind == "map":
        return SetPaths(values=_or_none(_type(inner)))
    if kind == "object" and isinstance(inner, dict):
        node = SetPaths()
        for name, attribute_type in inner.items():
            child = _type(attribute_type)
            if not child.empty:
                node.attributes[str(name)] = child
        return node
    return SetPaths()


def _or_none(node: SetPaths) -> SetPaths | None:
    return None if node.empty else node


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
