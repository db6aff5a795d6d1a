"""Reading and writing HCL literals on python-hcl2's syntax tree, keeping the file's text.

python-hcl2 parses a file into a lark tree whose nodes know where they start and end in
the text (``meta.start_pos``/``end_pos``). Accepting a drift edits the text only at those
spans, so comments, alignment and everything the patch does not touch stay as written
(re-serialising the tree would re-format the whole file).

Only *literals* are ever edited: strings without interpolation, numbers, ``true``,
``false``, ``null``, and tuples and objects of literals. A value that comes from an
expression (``var.x``, ``merge(...)``, ``"${local.env}-x"``) says nothing about what to
write instead; :func:`literal_value` returns :data:`NOT_LITERAL` for it and the patch
leaves it to a person.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lark import Token, Tree

#: What :func:`literal_value` returns for a node that is not a literal.
NOT_LITERAL: Any = object()

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_UNESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


@dataclass(frozen=True)
class Span:
    """Where a node is in the text: ``text[start:end]``."""

    start: int
    end: int


def span(node: Tree[Any] | Token) -> Span:
    """The text span of a tree node or token."""
    if isinstance(node, Token):
        return Span(int(node.start_pos or 0), int(node.end_pos or 0))
    return Span(node.meta.start_pos, node.meta.end_pos)


def subtrees(node: Tree[Any], data: str) -> Iterator[Tree[Any]]:
    """The direct children of ``node`` that are trees of kind ``data``."""
    for child in node.children:
        if isinstance(child, Tree) and child.data == data:
            yield child


def unwrap(node: Tree[Any]) -> Tree[Any]:
    """The expression inside ``expr_term`` wrappers (parentheses included)."""
    while node.data == "expr_term":
        inner = [c for c in node.children if isinstance(c, Tree)]
        if len(inner) != 1:
            return node
        node = inner[0]
    return node


def identifier(node: Tree[Any]) -> str | None:
    """The name of an ``identifier`` node (a block type, an attribute name)."""
    if node.data != "identifier":
        return None
    return str(node.children[0])


def block_labels(block: Tree[Any]) -> list[str]:
    """A block's quoted labels: ``resource "aws_s3_bucket" "logs"`` -> both names."""
    labels = []
    for child in block.children:
        if isinstance(child, Tree) and child.data == "string":
            value = literal_value(child)
            labels.append(value if isinstance(value, str) else "")
    return labels


def block_name(block: Tree[Any]) -> str | None:
    """A block's type (``resource``, ``module``, ``lifecycle_rule``)."""
    first = block.children[0]
    return identifier(first) if isinstance(first, Tree) else None


def body_of(block: Tree[Any]) -> Tree[Any]:
    """The body of a block."""
    return next(subtrees(block, "body"))


def attribute_name(attribute: Tree[Any]) -> str | None:
    """The name of an ``attribute`` node (``name = value``)."""
    first = attribute.children[0]
    return identifier(first) if isinstance(first, Tree) else None


def attribute_value(attribute: Tree[Any]) -> Tree[Any]:
    """The value expression of an ``attribute`` node."""
    return [c for c in attribute.children if isinstance(c, Tree)][-1]


def object_key(element: Tree[Any]) -> str | None:
    """The key of an ``object_elem`` (``env = "prod"``, ``"a.b" = 1``), if it is literal."""
    key = next(subtrees(element, "object_elem_key"))
    inner = [c for c in key.children if isinstance(c, Tree)]
    if len(inner) != 1:
        return None
    node = unwrap(inner[0])
    if node.data == "identifier":
        return identifier(node)
    value = literal_value(node)
    return value if isinstance(value, str) else None


def object_value(element: Tree[Any]) -> Tree[Any]:
    """The value expression of an ``object_elem``."""
    return [c for c in element.children if isinstance(c, Tree)][-1]


def tuple_items(node: Tree[Any]) -> list[Tree[Any]]:
    """The element expressions of a ``tuple`` node."""
    return [c for c in node.children if isinstance(c, Tree)]


def literal_value(node: Tree[Any]) -> Any:
    """The Python value of a literal node, or :data:`NOT_LITERAL`."""
    node = unwrap(node)
    kind = node.data
    if kind in ("int_lit", "float_lit"):
        return json.loads(str(node.children[0]))
    if kind == "literal_value":
        return {"true": True, "false": False, "null": None}.get(str(node.children[0]), NOT_LITERAL)
    if kind == "unary_op" and str(node.children[0]) == "-":
        inner = literal_value(node.children[1])
        return (
            -inner
            if isinstance(inner, int | float) and not isinstance(inner, bool)
            else NOT_LITERAL
        )
    if kind == "string":
        return _string_value(node)
    if kind == "tuple":
        items = [literal_value(item) for item in tuple_items(node)]
        return NOT_LITERAL if any(item is NOT_LITERAL for item in items) else items
    if kind == "object":
        return _object_value(node)
    return NOT_LITERAL


def _string_value(node: Tree[Any]) -> Any:
    parts = []
    for part in subtrees(node, "string_part"):
        if any(isinstance(child, Tree) for child in part.children):
            return NOT_LITERAL  # ${...} or %{...}: a template, not a literal
        parts.append("".join(str(child) for child in part.children))
    return _unescape("".join(parts))


def _object_value(node: Tree[Any]) -> Any:
    result = {}
    for element in subtrees(node, "object_elem"):
        key = object_key(element)
        value = literal_value(object_value(element))
        if key is None or value is NOT_LITERAL:
            return NOT_LITERAL
        result[key] = value
    return result


def _unescape(text: str) -> str:
    text = re.sub(r"\\(.)", lambda m: _UNESCAPES.get(m[1], m[0]), text)
    return text.replace("$${", "${").replace("%%{", "%{")


# --------------------------------------------------------------------------- writing


def render(value: Any, indent: str) -> str:
    """Write a JSON value as an HCL literal; ``indent`` is the indentation of its line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return render_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(render(item, indent) for item in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = indent + "  "
        width = max(len(render_key(key)) for key in value)
        lines = [
            f"{inner}{render_key(key).ljust(width)} = {render(item, inner)}"
            for key, item in value.items()
        ]
        return "{\n" + "\n".join(lines) + f"\n{indent}}}"
    raise TypeError(f"not a JSON value: {value!r}")


def render_string(value: str) -> str:
    """A quoted HCL string whose value is exactly ``value`` (no template sequences)."""
    escaped = json.dumps(value, ensure_ascii=False)
    return escaped.replace("${", "$${").replace("%{", "%%{")


def render_key(key: str) -> str:
    """An object key: bare when it is an identifier, quoted otherwise."""
    return key if _IDENTIFIER.match(key) else render_string(key)


def line_indent(text: str, position: int) -> str:
    """The leading whitespace of the line that holds ``position``."""
    start = text.rfind("\n", 0, position) + 1
    line = text[start:position]
    return line[: len(line) - len(line.lstrip(" \t"))]
