"""Accept a drift into code: the edit that makes the Terraform code say what reality says.

:func:`accept_patch` takes a drift finding's changed attributes (``before`` is what the
state recorded, which is what the code says; ``after`` is what the cloud has now), finds
the resource block (through local ``module`` calls from the state's directory, read with
python-hcl2) and edits the literal values in place (:mod:`.hcl`). The result is a
:class:`CodePatch`: the edited files with a unified diff, and every attribute it would not
touch with the reason, so a reader sees exactly what is left to do by hand.

It never guesses. An attribute is left alone (a :class:`Skipped` entry) when

* it is sensitive (toilkit never writes secrets into code), only known after apply, or
  ignored by a rule;
* its value in code is an expression (``var.x``, ``merge(...)``, a template): only a person
  knows whether to change the variable, the default or the call;
* the code no longer says what the state recorded (someone changed it since: that is
  pending code, and overwriting it would lose their change);
* the block makes several instances (``count``, ``for_each``): a literal there is every
  instance's value, the drift is one instance's;
* it sits in a nested block (``ingress { }``): which of several blocks is meant is not
  something a plan path says reliably.

A resource that cannot be found at all (a registry module, generated ``.tf.json`` code,
a file that does not parse) raises :class:`PatchError` with what to do instead.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
from lark import Tree
from lark.exceptions import LarkError

from services.detector.accept import hcl
from services.detector.ignore import json_values_equal
from shared.errors import PermanentError
from shared.events import AttributeChange

Step = str | int

_PATH_TOKEN = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')
_LOCAL_SOURCE = ("./", "../")


class PatchError(PermanentError):
    """The resource's code cannot be patched here; the message says what to do instead."""


@dataclass(frozen=True)
class Skipped:
    """An attribute the patch leaves to a person, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class FileEdit:
    """One file's text before and after the patch."""

    path: Path
    before: str
    after: str

    def diff(self, root: Path) -> str:
        """The unified diff, with paths relative to ``root`` (``a/...``, ``b/...``)."""
        name = self.path.relative_to(root).as_posix()
        lines = difflib.unified_diff(
            self.before.splitlines(keepends=True),
            self.after.splitlines(keepends=True),
            fromfile=f"a/{name}",
            tofile=f"b/{name}",
        )
        return "".join(lines)


@dataclass(frozen=True)
class CodePatch:
    """What accepting a drift changes in code.

    Attributes:
        address: The resource's address.
        block: Where its block is (``modules/app/main.tf:12``).
        edits: The edited files (at most one today: a block lives in one file).
        changed: The attribute paths the patch writes.
        skipped: The attribute paths left to a person, with the reason.
    """

    address: str
    block: str
    edits: tuple[FileEdit, ...] = ()
    changed: tuple[str, ...] = ()
    skipped: tuple[Skipped, ...] = ()

    def diff(self, root: Path) -> str:
        """Every edit as one unified diff."""
        return "".join(edit.diff(root) for edit in self.edits)


@dataclass(frozen=True)
class ResourceAddress:
    """``module.a.module.b.type.name[key]`` taken apart."""

    modules: tuple[str, ...]
    type: str
    name: str
    instance_key: str | None

    @classmethod
    def parse(cls, address: str) -> ResourceAddress:
        """Split an instance address; data sources and malformed addresses are refused."""
        parts, rest = [], address
        while rest:
            match = re.match(
                r'([A-Za-z_][A-Za-z0-9_-]*)((?:\[(?:\d+|"(?:[^"\\]|\\.)*")\])?)\.?', rest
            )
            if not match:
                raise PatchError(f"{address!r} is not a resource address")
            parts.append((match[1], match[2] or None))
            rest = rest[match.end() :]
        modules: list[str] = []
        while len(parts) > 2 and parts[0][0] == "module":
            modules.append(parts[1][0])
            parts = parts[2:]
        if len(parts) != 2 or parts[0][0] == "data" or parts[0][1] is not None:
            raise PatchError(f"{address!r} is not a managed resource's address")
        return cls(tuple(modules), parts[0][0], parts[1][0], parts[1][1])


def parse_path(path: str) -> list[Step]:
    """Steps of an attribute path in the plan notation (``tags.env``, ``a[0]["b.c"]``)."""
    steps: list[Step] = []
    position = 0
    while position < len(path):
        match = _PATH_TOKEN.match(path, position)
        if not match or (match[0].startswith(".") and not steps):
            raise PatchError(f"{path!r} is not an attribute path")
        if match[1] is not None:
            steps.append(match[1])
        elif match[2] is not None:
            steps.append(int(match[2]))
        else:
            steps.append(json.loads(match[3]))
        position = match.end()
    return steps


@dataclass
class _Located:
    file: Path
    text: str
    block: Tree[Any]
    repeated: str | None


@dataclass
class _Edit:
    """At most one replacement in a text."""

    text: str
    replacement: tuple[int, int, str] | None = None

    def replace(self, start: int, end: int, replacement: str) -> None:
        self.replacement = (start, end, replacement)

    def result(self) -> str:
        if self.replacement is None:
            return self.text
        start, end, replacement = self.replacement
        return self.text[:start] + replacement + self.text[end:]


def accept_patch(
    state_dir: Path,
    address: str,
    attributes: Sequence[AttributeChange],
    *,
    root: Path,
    texts: Mapping[Path, str] | None = None,
) -> CodePatch:
    """The code change that makes ``address`` in ``state_dir`` say what the cloud has.

    Args:
        state_dir: The state's root module directory.
        address: The drifted resource's address.
        attributes: The drift finding's changed attributes.
        root: The repository root (for the relative paths in messages and diffs).
        texts: Files already edited by an earlier patch (path -> text), read instead of
            the disk so several findings can be accepted into one change.

    Raises:
        PatchError: the resource block cannot be found in this repository's code.
    """
    parsed = ResourceAddress.parse(address)
    located = _locate(state_dir, parsed, root=root, texts=texts or {})
    where = f"{located.file.relative_to(root).as_posix()}:{located.block.meta.line}"
    text = located.text
    changed: list[str] = []
    skipped: list[Skipped] = []
    for attribute in attributes:
        # One attribute at a time, each on the text the previous one left: edits to the
        # same map or list never have to be reconciled with each other.
        reason = _refusal(attribute, located)
        if reason is None:
            edit = _Edit(text)
            reason = _patch_attribute(edit, hcl.body_of(_block_in(text, parsed)), attribute)
            text = edit.result()
        if reason is None:
            changed.append(attribute.path)
        else:
            skipped.append(Skipped(attribute.path, reason))
    files = (FileEdit(located.file, located.text, text),) if text != located.text else ()
    return CodePatch(address, where, files, tuple(changed), tuple(skipped))


@dataclass(frozen=True)
class AcceptedCode:
    """Several findings of one state accepted into one change.

    Attributes:
        patches: One per finding whose block was found.
        failures: ``(address, why)`` for the findings whose code is not here.
        edits: The edited files, each once, from the text on disk to the final text.
    """

    patches: tuple[CodePatch, ...]
    failures: tuple[tuple[str, str], ...]
    edits: tuple[FileEdit, ...]

    def diff(self, root: Path) -> str:
        return "".join(edit.diff(root) for edit in self.edits)


def accept_findings(
    state_dir: Path, findings: Sequence[tuple[str, Sequence[AttributeChange]]], *, root: Path
) -> AcceptedCode:
    """Accept each ``(address, attributes)`` in turn, every one on the files the earlier
    ones edited, into one change; a finding whose code is not here is a failure, not an
    error, so the others still land."""
    texts: dict[Path, str] = {}
    originals: dict[Path, str] = {}
    patches: list[CodePatch] = []
    failures: list[tuple[str, str]] = []
    for address, attributes in findings:
        try:
            patch = accept_patch(state_dir, address, attributes, root=root, texts=texts)
        except PatchError as exc:
            failures.append((address, str(exc)))
            continue
        patches.append(patch)
        for edit in patch.edits:
            originals.setdefault(edit.path, edit.before)
            texts[edit.path] = edit.after
    edits = tuple(
        FileEdit(path, originals[path], texts[path])
        for path in sorted(texts)
        if texts[path] != originals[path]
    )
    return AcceptedCode(tuple(patches), tuple(failures), edits)


def _refusal(attribute: AttributeChange, located: _Located) -> str | None:
    if attribute.sensitive:
        return "sensitive: toilkit never writes secret values into code"
    if attribute.after_unknown:
        return "the real value is only known after apply"
    if attribute.ignored:
        return f"ignored ({attribute.ignore_reason or 'a rule'})"
    if located.repeated:
        return (
            f"the block has `{located.repeated}`: a value written there changes every "
            "instance, the drift is one instance's; change it by hand"
        )
    return None


# --------------------------------------------------------------------------- locating


def _locate(
    state_dir: Path, address: ResourceAddress, *, root: Path, texts: Mapping[Path, str]
) -> _Located:
    directory = state_dir
    trail = "the root module"
    for module in address.modules:
        directory = _module_directory(directory, module, root=root, texts=texts)
        trail = f"module.{module} ({directory.relative_to(root).as_posix()})"
    for file, text, tree in _parsed_files(directory, root=root, texts=texts):
        block = _resource_block(tree, address)
        if block is not None:
            return _Located(file, text, block, _repetition(block))
    generated = sorted(p.name for p in directory.glob("*.tf.json"))
    hint = f"; {', '.join(generated)} is generated JSON code, not patched" if generated else ""
    raise PatchError(
        f'resource "{address.type}" "{address.name}" is not in the code of {trail}{hint}: '
        "it may come from generated code; change it where it is generated"
    )


def _block_in(text: str, address: ResourceAddress) -> Tree[Any]:
    """The resource's block in ``text`` (a file :func:`_locate` found it in, maybe edited)."""
    block = _resource_block(hcl2.parses_to_tree(text), address)
    assert block is not None, "the patch lost the block it edits"
    return block


def _resource_block(tree: Tree[Any], address: ResourceAddress) -> Tree[Any] | None:
    for block in hcl.subtrees(tree.children[0], "block"):
        labels = hcl.block_labels(block)
        if hcl.block_name(block) == "resource" and labels == [address.type, address.name]:
            return block
    return None


def _module_directory(directory: Path, name: str, *, root: Path, texts: Mapping[Path, str]) -> Path:
    for file, _text, tree in _parsed_files(directory, root=root, texts=texts):
        for block in hcl.subtrees(tree.children[0], "block"):
            if hcl.block_name(block) != "module" or hcl.block_labels(block) != [name]:
                continue
            source = _attribute_literal(hcl.body_of(block), "source")
            if not isinstance(source, str):
                raise PatchError(f"module.{name} in {file.name} has no literal `source`")
            if not source.startswith(_LOCAL_SOURCE):
                raise PatchError(
                    f"module.{name} comes from {source!r}, whose code is not in this "
                    "repository: pass the value in through the module's inputs instead"
                )
            target = (directory / source).resolve()
            if not target.is_relative_to(root.resolve()):
                raise PatchError(f"module.{name} points outside the repository ({source})")
            return target
    raise PatchError(f"module.{name} is not called from {directory.relative_to(root)}")


def _parsed_files(
    directory: Path, *, root: Path, texts: Mapping[Path, str]
) -> list[tuple[Path, str, Tree[Any]]]:
    parsed = []
    for file in sorted(directory.glob("*.tf")):
        text = texts[file] if file in texts else file.read_text(encoding="utf-8")
        try:
            tree = hcl2.parses_to_tree(text)
        except (LarkError, ValueError) as exc:
            where = file.relative_to(root).as_posix()
            raise PatchError(f"{where} does not parse as HCL ({exc.__class__.__name__})") from exc
        parsed.append((file, text, tree))
    return parsed


def _repetition(block: Tree[Any]) -> str | None:
    names = {hcl.attribute_name(a) for a in hcl.subtrees(hcl.body_of(block), "attribute")}
    return next((name for name in ("count", "for_each") if name in names), None)


def _attribute_literal(body: Tree[Any], name: str) -> Any:
    for attribute in hcl.subtrees(body, "attribute"):
        if hcl.attribute_name(attribute) == name:
            return hcl.literal_value(hcl.attribute_value(attribute))
    return None


# --------------------------------------------------------------------------- patching


def _patch_attribute(edits: _Edit, body: Tree[Any], attribute: AttributeChange) -> str | None:
    """Edit one attribute; ``None`` when done, else why it was left alone."""
    return _patch_in_body(edits, body, parse_path(attribute.path), attribute)


def _patch_in_body(
    edits: _Edit, body: Tree[Any], steps: list[Step], attribute: AttributeChange
) -> str | None:
    head, rest = steps[0], steps[1:]
    assert isinstance(head, str)
    found = [a for a in hcl.subtrees(body, "attribute") if hcl.attribute_name(a) == head]
    if found:
        return _patch_value(edits, hcl.attribute_value(found[0]), rest, attribute)
    blocks = [b for b in hcl.subtrees(body, "block") if hcl.block_name(b) == head]
    if blocks:
        # A nested block is the plan's list element [0] only when it is the only one of
        # its kind; with several, the plan's order need not be the code's.
        if len(blocks) == 1 and len(rest) > 1 and rest[0] == 0 and isinstance(rest[1], str):
            return _patch_in_body(edits, hcl.body_of(blocks[0]), rest[1:], attribute)
        if attribute.set_change is not None and not rest:
            return _patch_block_set(edits, blocks, head, attribute)
        return f"`{head}` is one of several nested blocks; change it by hand"
    if rest or attribute.set_change is not None:
        return f"the code does not set `{head}`; add it by hand"
    return _insert_attribute(edits, body, head, attribute.after)


def _patch_value(
    edits: _Edit, node: Tree[Any], steps: list[Step], attribute: AttributeChange
) -> str | None:
    value = hcl.unwrap(node)
    for position, step in enumerate(steps):
        if value.data == "object" and isinstance(step, str):
            element = _object_element(value, step)
            if element is None:
                if position < len(steps) - 1 or attribute.set_change is not None:
                    return f"the code has no `{step}` in {_where(attribute.path, step)}"
                return _insert_element(edits, value, step, attribute.after)
            if position == len(steps) - 1 and attribute.after is None:
                return _remove_element(edits, element)
            value = hcl.unwrap(hcl.object_value(element))
        elif value.data == "tuple" and isinstance(step, int) and attribute.set_change is None:
            items = hcl.tuple_items(value)
            if step >= len(items):
                return f"the code's list is shorter than {attribute.path}"
            value = hcl.unwrap(items[step])
        else:
            return _not_literal(edits.text, value, attribute.path)
    if attribute.set_change is not None:
        return _patch_set(edits, value, attribute)
    return _replace_literal(edits, value, attribute)


def _replace_literal(edits: _Edit, value: Tree[Any], attribute: AttributeChange) -> str | None:
    current = hcl.literal_value(value)
    if current is hcl.NOT_LITERAL:
        return _not_literal(edits.text, value, attribute.path)
    if not json_values_equal(current, attribute.before):
        return (
            f"the code says {json.dumps(current)}, not the recorded "
            f"{json.dumps(attribute.before)}: it changed since the last apply; merge by hand"
        )
    at = hcl.span(value)
    rendered = hcl.render(attribute.after, hcl.line_indent(edits.text, at.start))
    edits.replace(at.start, at.end, rendered)
    return None


def _patch_set(edits: _Edit, value: Tree[Any], attribute: AttributeChange) -> str | None:
    current = hcl.literal_value(value)
    if value.data != "tuple" or current is hcl.NOT_LITERAL:
        return _not_literal(edits.text, value, attribute.path)
    if attribute.set_change == "removed":
        matches = [i for i, item in enumerate(current) if json_values_equal(item, attribute.before)]
        if not matches:
            return f"the code's set has no {json.dumps(attribute.before)} to remove"
        kept = [item for i, item in enumerate(current) if i != matches[0]]
    else:
        kept = [*current, attribute.after]
    at = hcl.span(value)
    rendered = hcl.render(kept, hcl.line_indent(edits.text, at.start))
    edits.replace(at.start, at.end, rendered)
    return None


def _patch_block_set(
    edits: _Edit, blocks: list[Tree[Any]], name: str, attribute: AttributeChange
) -> str | None:
    """Add or remove one nested block of a set of blocks (``lifecycle_rule { }``)."""
    if attribute.set_change == "added":
        values = _flat_block_values(attribute.after)
        if values is None:
            return f"the added `{name}` block has nested values; write it by hand"
        at = hcl.span(blocks[-1])
        indent = hcl.line_indent(edits.text, at.start)
        lines = [
            f"{indent}  {key} = {hcl.render(value, indent + '  ')}" for key, value in values.items()
        ]
        edits.replace(
            at.end, at.end, f"\n\n{indent}{name} {{\n" + "\n".join(lines) + f"\n{indent}}}"
        )
        return None
    wanted = _flat_block_values(attribute.before)
    same = [b for b in blocks if _block_literals(b) == wanted]
    if wanted is None or len(same) != 1:
        return f"no single `{name}` block in code matches the removed one; remove it by hand"
    return _remove_element(edits, same[0])


def _flat_block_values(value: Any) -> dict[str, Any] | None:
    """A set element's attributes worth writing (unset ones left out), if all are flat."""
    if not isinstance(value, dict):
        return None
    written = {k: v for k, v in sorted(value.items()) if v not in (None, [], {})}
    if any(
        isinstance(v, dict) or (isinstance(v, list) and any(isinstance(i, dict | list) for i in v))
        for v in written.values()
    ):
        return None
    return written


def _block_literals(block: Tree[Any]) -> dict[str, Any] | None:
    body = hcl.body_of(block)
    if any(True for _ in hcl.subtrees(body, "block")):
        return None
    values = {}
    for attribute in hcl.subtrees(body, "attribute"):
        value = hcl.literal_value(hcl.attribute_value(attribute))
        name = hcl.attribute_name(attribute)
        if value is hcl.NOT_LITERAL or name is None:
            return None
        values[name] = value
    return dict(sorted(values.items()))


def _object_element(node: Tree[Any], key: str) -> Tree[Any] | None:
    return next((e for e in hcl.subtrees(node, "object_elem") if hcl.object_key(e) == key), None)


def _insert_attribute(edits: _Edit, body: Tree[Any], name: str, value: Any) -> str | None:
    if value is None:
        return None  # the code does not set it and the cloud has nothing: nothing to write
    last = list(hcl.subtrees(body, "attribute"))
    if not last:
        return f"the block sets no attribute to place `{name}` beside; add it by hand"
    end = hcl.span(last[-1]).end
    indent = hcl.line_indent(edits.text, hcl.span(last[-1]).start)
    line = f"\n{indent}{name} = {hcl.render(value, indent)}"
    edits.replace(end, end, line)
    return None


def _insert_element(edits: _Edit, node: Tree[Any], key: str, value: Any) -> str | None:
    if value is None:
        return None
    elements = list(hcl.subtrees(node, "object_elem"))
    if not elements or "\n" not in edits.text[hcl.span(node).start : hcl.span(node).end]:
        current = hcl.literal_value(node)
        if current is hcl.NOT_LITERAL:
            return _not_literal(edits.text, node, key)
        at = hcl.span(node)
        rendered = hcl.render({**current, key: value}, hcl.line_indent(edits.text, at.start))
        edits.replace(at.start, at.end, rendered)
        return None
    end = hcl.span(elements[-1]).end
    indent = hcl.line_indent(edits.text, hcl.span(elements[-1]).start)
    line = f"\n{indent}{hcl.render_key(key)} = {hcl.render(value, indent)}"
    edits.replace(end, end, line)
    return None


def _remove_element(edits: _Edit, element: Tree[Any]) -> str | None:
    at = hcl.span(element)
    text = edits.text
    line_start = text.rfind("\n", 0, at.start) + 1
    line_end = text.find("\n", at.end)
    line_end = len(text) if line_end < 0 else line_end
    if text[line_start : at.start].strip() or text[at.end : line_end].strip(" \t,"):
        return "the key shares its line with others; remove it by hand"
    edits.replace(line_start, line_end + 1, "")
    return None


def _not_literal(text: str, node: Tree[Any], path: str) -> str:
    at = hcl.span(node)
    expression = " ".join(text[at.start : at.end].split())
    if len(expression) > 60:
        expression = expression[:57] + "..."
    return f"`{path}` comes from the expression `{expression}`; change it by hand"


def _where(path: str, step: str) -> str:
    return path[: max(path.rfind("." + step), 0)] or path
