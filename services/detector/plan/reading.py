"""Reading a plan document: decoding its JSON and checking that it is a plan we read.

Only the parts the detector uses are validated (strictly: a plan never needs coercion);
every error names where the document is wrong, never a value from it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

from services.detector.plan.models import PlanParseError

#: Major plan format versions this parser reads. Terraform declared 1.0 identical to 0.2
#: and only makes compatible additions within a major version.
SUPPORTED_FORMAT_MAJORS = frozenset({0, 1})

_FORMAT_VERSION = re.compile(r"(\d+)\.(\d+)")


class _Raw(BaseModel):
    # Strict: a plan never needs coercion, and "1" for a list of actions is a broken plan.
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)


class _RawChange(_Raw):
    actions: list[str] = Field(min_length=1)
    before: JsonValue = None
    after: JsonValue = None
    after_unknown: JsonValue = None
    before_sensitive: JsonValue = None
    after_sensitive: JsonValue = None


class RawImporting(_Raw):
    # Terraform 1.5+; 1.12 may import by identity, without an id.
    id: str | None = None


class _RawResourceObjectChange(_RawChange):
    # A resource instance is an object, or null when it does not exist on that side.
    before: dict[str, JsonValue] | None = None
    after: dict[str, JsonValue] | None = None
    replace_paths: list[list[str | int]] | None = None
    importing: RawImporting | None = None


class RawResourceChange(_Raw):
    address: str = Field(min_length=1)
    mode: str
    type: str = Field(min_length=1)
    change: _RawResourceObjectChange
    action_reason: str | None = None
    previous_address: str | None = None
    deposed: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _derive_address(cls, data: Any) -> Any:
        # Terraform 0.15.4-1.0.0 wrote resource_drift entries without an address.
        if isinstance(data, dict) and "address" not in data:
            derived = instance_address(data)
            if derived is not None:
                return {**data, "address": derived}
        return data

    @property
    def key(self) -> tuple[str, str | None]:
        """What identifies the instance across ``resource_drift`` and ``resource_changes``."""
        return self.address, self.deposed


def instance_address(entry: Mapping[str, Any]) -> str | None:
    """``module.a["x"].data.aws_ami.b[0]`` from an entry's parts; ``None`` if they are missing."""
    resource_type, name = entry.get("type"), entry.get("name")
    if not isinstance(resource_type, str) or not isinstance(name, str) or not name:
        return None
    address = f"{resource_type}.{name}"
    if entry.get("mode") == "data":
        address = "data." + address
    index = entry.get("index")
    if isinstance(index, int | str) and not isinstance(index, bool):
        address += f"[{json.dumps(index, ensure_ascii=False)}]"
    module = entry.get("module_address")
    if isinstance(module, str) and module:
        address = f"{module}.{address}"
    return address


class RawPlan(_Raw):
    format_version: str
    terraform_version: str | None = None
    errored: bool = False
    resource_drift: list[RawResourceChange] | None = None
    resource_changes: list[RawResourceChange] | None = None
    output_changes: dict[str, _RawChange] | None = None


_PLAN_KEYS = ("planned_values", "resource_changes", "resource_drift", "output_changes")


def decode(plan_json: Mapping[str, Any] | str | bytes) -> Mapping[str, Any]:
    """The one plan document in ``plan_json``.

    Raises:
        PlanParseError: It is not JSON, holds several documents, or is not an object.
    """
    documents = decode_all(plan_json)
    if len(documents) != 1:
        raise PlanParseError(
            f"the input holds {len(documents)} JSON documents one after another (as "
            "`terragrunt run-all show -json` prints them); `toilkit drift parse` reads "
            "each as a plan of its own"
        )
    return documents[0]


def decode_all(plan_json: Mapping[str, Any] | str | bytes) -> list[Mapping[str, Any]]:
    """Every plan document in ``plan_json``, in order (several when concatenated).

    Raises:
        PlanParseError: Not JSON (a human-readable plan, a wrapper's log lines...), or a
            document that is not an object; the message says how to get JSON.
    """
    if isinstance(plan_json, Mapping):
        return [plan_json]
    if not isinstance(plan_json, str | bytes):
        raise PlanParseError(f"plan must be text or a mapping, not {type(plan_json).__name__}")
    text = plan_json if isinstance(plan_json, str) else _text(plan_json)
    documents: list[Mapping[str, Any]] = []
    decoder = json.JSONDecoder(parse_constant=_reject_constant)
    position = _skip_space(text, 0)
    while position < len(text):
        try:
            decoded, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise PlanParseError(
                not_json_reason(text, exc, after_documents=len(documents))
            ) from exc
        if not isinstance(decoded, dict):
            raise PlanParseError(f"plan is a JSON {type(decoded).__name__}, expected an object")
        documents.append(decoded)
        position = _skip_space(text, position)
    if not documents:
        raise PlanParseError("plan is empty: expected `terraform show -json PLANFILE` output")
    return documents


def _text(body: bytes) -> str:
    """Decode as Terraform (UTF-8) or a Windows shell (UTF-16, a BOM) wrote it."""
    # json.detect_encoding reads the BOM or the pattern of zero bytes of "{" in UTF-16/32.
    encoding = json.detect_encoding(body)
    if encoding == "utf-8" and body.startswith(b"\xef\xbb\xbf"):
        encoding = "utf-8-sig"
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as exc:
        raise PlanParseError(f"plan is not {encoding.upper()} text: {exc.reason}") from exc


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n\ufeff":
        position += 1
    return position


#: Lines by which a human-readable plan gives itself away.
_HUMAN_PLAN = re.compile(
    r"^(Terraform (used the selected providers|will perform the following actions)|"
    r"OpenTofu (used|will perform)|No changes\.|Plan: \d+ to add|\s*# \S+ (will|must) be|"
    r"Note: Objects have changed outside of)",
    re.MULTILINE,
)
_GET_JSON = (
    "save the plan and print it as JSON: `terraform plan -out=plan.tfplan` then "
    "`terraform show -json plan.tfplan > plan.json`"
)


_WRAPPER_HINT = (
    "(with hashicorp/setup-terraform set `terraform_wrapper: false`; with terragrunt "
    "keep its log lines out of stdout, e.g. `--terragrunt-log-level error`)"
)


def not_json_reason(text: str, error: json.JSONDecodeError, *, after_documents: int = 0) -> str:
    """Why ``text`` is not a plan document, in words that say how to get one."""
    if _HUMAN_PLAN.search(text):
        return f"this is Terraform's human-readable plan output, not JSON; {_GET_JSON}"
    if after_documents:
        return (
            "this looks like a wrapper's captured output: after the JSON comes text that is "
            f"not JSON (line {error.lineno}) {_WRAPPER_HINT}; {_GET_JSON}"
        )
    brace = text.find("\n{")
    if not text.lstrip().startswith("{") and brace >= 0:
        line = text.count("\n", 0, brace) + 2
        return (
            "this looks like a wrapper's captured output: the JSON starts on line "
            f"{line}, after lines that are not JSON {_WRAPPER_HINT}; {_GET_JSON}"
        )
    return (
        f"plan is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno}); "
        + _GET_JSON
    )


def _reject_constant(name: str) -> Any:
    # Terraform never writes NaN or Infinity; a body that does is not one of its plans.
    raise PlanParseError(f"plan is not valid JSON: {name} is not a JSON number")


def validate_shape(raw: Mapping[str, Any]) -> RawPlan:
    if not any(key in raw for key in _PLAN_KEYS):
        if "values" in raw:
            raise PlanParseError(
                "this is state JSON (`terraform show -json` without a plan file), not a plan"
            )
        raise PlanParseError(
            "not a Terraform plan: none of " + ", ".join(_PLAN_KEYS) + " is present"
        )
    version = raw.get("format_version")
    if not isinstance(version, str):
        raise PlanParseError("not a Terraform plan: format_version is missing or not a string")
    match = _FORMAT_VERSION.match(version)
    if match is None or int(match.group(1)) not in SUPPORTED_FORMAT_MAJORS:
        majors = ", ".join(str(m) for m in sorted(SUPPORTED_FORMAT_MAJORS))
        raise PlanParseError(
            f"unsupported plan format_version {version!r}; this parser reads major "
            f"versions {majors}"
        )
    try:
        return RawPlan.model_validate(dict(raw))
    except ValidationError as exc:
        # Locations and messages only: the input values may be secrets.
        problems = "; ".join(
            f"{'.'.join(str(step) for step in err['loc']) or '(plan)'}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)[:5]
        )
        raise PlanParseError(f"malformed Terraform plan: {problems}") from exc
