"""The hashicorp/aws provider's schema, read from the @cdktn/provider-aws npm package.

That package's bindings are generated from the provider schema (`terraform providers schema
-json`): its jsii manifest (``.jsii``) has one class per resource and data source, whose
config struct lists every argument and nested block, each documented with a link to the
registry page of its Terraform name (``...#function_url_auth_type LambdaPermission#...``).
The names are read from those links, not guessed from the camelCase ones, and a nested
block is a property whose type is another struct.

Reading the 150 MB manifest takes seconds, so the index built from it is cached in
node_modules/.cache, keyed by the package's version.

:func:`check` then walks a block parsed by python-hcl2 and says what the provider would
refuse: an unknown resource type, argument or nested block, or a missing required one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from tests.infra.tools import NODE_MODULES, require

PACKAGE = NODE_MODULES / "@cdktn" / "provider-aws"
CACHE = NODE_MODULES / ".cache" / "toilkit-aws-schema.json"

#: "Represents a {@link https://.../docs/resources/lambda_permission aws_lambda_permission}."
TERRAFORM_TYPE = re.compile(r"\{@link \S+/docs/(?:resources|data-sources)/\S+ (\w+)\}")
#: "Docs at Terraform Registry: {@link https://...#function_name LambdaPermission#function_name}."
TERRAFORM_NAME = re.compile(r"#(\w+) [\w.]+#\w+\}")

#: Arguments Terraform itself gives every resource and data block.
META_ARGUMENTS = {"count", "for_each", "depends_on", "provider", "lifecycle"}
RESOURCE_META_ARGUMENTS = META_ARGUMENTS | {"provisioner", "connection"}
#: What a ``dynamic "name"`` block may hold.
DYNAMIC_ARGUMENTS = {"for_each", "iterator", "labels", "content"}

#: {argument: [required, struct fqn of a nested block or None]}
Struct = dict[str, list[Any]]


@dataclass(frozen=True)
class Schema:
    provider_version: str
    #: {"resource" | "data": {terraform type: config struct fqn}}
    blocks: dict[str, dict[str, str]] = field(repr=False)
    structs: dict[str, Struct] = field(repr=False)


def load() -> Schema:
    """The schema of the provider version the installed package was generated from."""
    manifest = require(PACKAGE / ".jsii")
    package = json.loads((PACKAGE / "package.json").read_text())
    provider_version = package["cdktn"]["provider"]["version"]
    if CACHE.exists():
        cached = json.loads(CACHE.read_text())
        if cached["package_version"] == package["version"]:
            return Schema(provider_version, cached["blocks"], cached["structs"])
    blocks, structs = _index(json.loads(manifest.read_text()))
    CACHE.parent.mkdir(exist_ok=True)
    CACHE.write_text(
        json.dumps({"package_version": package["version"], "blocks": blocks, "structs": structs})
    )
    return Schema(provider_version, blocks, structs)


def _index(assembly: dict[str, Any]) -> tuple[dict[str, dict[str, str]], dict[str, Struct]]:
    types: dict[str, dict[str, Any]] = assembly["types"]
    bases = {"cdktn.TerraformResource": "resource", "cdktn.TerraformDataSource": "data"}
    blocks: dict[str, dict[str, str]] = {"resource": {}, "data": {}}
    for spec in types.values():
        kind = bases.get(spec.get("base", ""))
        if kind is None:
            continue
        terraform_type = TERRAFORM_TYPE.search(spec["docs"]["summary"])
        assert terraform_type, spec["fqn"]
        config = spec["initializer"]["parameters"][2]["type"]["fqn"]
        blocks[kind][terraform_type.group(1)] = config

    def nested(type_ref: dict[str, Any]) -> str | None:
        """The struct a property's type is (or is a collection or union of), if any."""
        if "fqn" in type_ref:
            spec = types.get(type_ref["fqn"])
            return type_ref["fqn"] if spec and spec.get("datatype") else None
        if "collection" in type_ref:
            return nested(type_ref["collection"]["elementtype"])
        for member in type_ref.get("union", {}).get("types", []):
            if found := nested(member):
                return found
        return None

    structs: dict[str, Struct] = {}
    for fqn, spec in types.items():
        if not spec.get("datatype") or not fqn.startswith("@cdktn/provider-aws."):
            continue
        struct: Struct = {}
        for prop in spec.get("properties", []):
            docs = prop.get("docs", {})
            name = TERRAFORM_NAME.search(f"{docs.get('summary', '')} {docs.get('remarks', '')}")
            assert name, f"{fqn}.{prop['name']}"
            struct[name.group(1)] = [not prop.get("optional", False), nested(prop["type"])]
        structs[fqn] = struct
    return blocks, structs


def _unquote(label: str) -> str:
    return label[1:-1] if len(label) >= 2 and label[0] == label[-1] == '"' else label


def _is_block(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, dict) and item.get("__is_block__") for item in value
    )


def check(schema: Schema, kind: str, terraform_type: str, body: dict[str, Any]) -> list[str]:
    """What the provider would refuse in one ``resource`` or ``data`` block (empty: nothing)."""
    config = schema.blocks[kind].get(terraform_type)
    if config is None:
        return [f"{kind} type {terraform_type} does not exist"]
    meta = RESOURCE_META_ARGUMENTS if kind == "resource" else META_ARGUMENTS
    return _check_struct(schema, schema.structs[config], body, terraform_type, meta)


def _check_struct(
    schema: Schema, struct: Struct, body: dict[str, Any], where: str, meta: set[str]
) -> list[str]:
    errors: list[str] = []
    present: set[str] = set()
    for key, value in body.items():
        if key.startswith("__") or key in meta:
            continue
        if key == "dynamic":
            for dynamic in value:
                for label, generator in dynamic.items():
                    name = _unquote(label)
                    present.add(name)
                    errors += _check_nested(schema, struct, name, where, generator, dynamic=True)
            continue
        present.add(key)
        if key not in struct:
            errors.append(f"{where}: no argument or block {key!r}")
        elif _is_block(value):
            for block in value:
                errors += _check_nested(schema, struct, key, where, block, dynamic=False)
    for name, (required, _) in struct.items():
        if required and name not in present:
            errors.append(f"{where}: required {name!r} is missing")
    return errors


def _check_nested(
    schema: Schema, struct: Struct, name: str, where: str, block: dict[str, Any], *, dynamic: bool
) -> list[str]:
    path = f"{where}.{name}"
    if name not in struct or struct[name][1] is None:
        return [f"{where}: no nested block {name!r}"]
    child = schema.structs[struct[name][1]]
    if not dynamic:
        return _check_struct(schema, child, block, path, set())
    errors = [
        f"{path}: dynamic has no {k!r}"
        for k in block
        if not k.startswith("__") and k not in DYNAMIC_ARGUMENTS
    ]
    for content in block.get("content", []):
        errors += _check_struct(schema, child, content, path, set())
    return errors
