"""Reading a plan document: decoding its JSON and checking that it is a plan we read.

Only the parts the detector uses are validated (strictly: a plan never needs coercion);
every error names where the document is wrong, never a value from it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

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


class _RawResourceObjectChange(_RawChange):
    # A resource instance is an object, or null when it does not exist on that side.
    before: dict[str, JsonValue] | None = None
    after: dict[str, JsonValue] | None = None
    replace_paths: list[list[str | int]] | None = None


class RawResourceChange(_Raw):
    address: str = Field(min_length=1)
    mode: str
    type: str = Field(min_length=1)
    change: _RawResourceObjectChange
    action_reason: str | None = None
    previous_address: str | None = None
    deposed: str | None = None


class RawPlan(_Raw):
    format_version: str
    terraform_version: str | None = None
    errored: bool = False
    resource_drift: list[RawResourceChange] | None = None
    resource_changes: list[RawResourceChange] | None = None
    output_changes: dict[str, _RawChange] | None = None


_PLAN_KEYS = ("planned_values", "resource_changes", "resource_drift", "output_changes")


def decode(plan_json: Mapping[str, Any] | str | bytes) -> Mapping[str, Any]:
    if isinstance(plan_json, Mapping):
        return plan_json
    if not isinstance(plan_json, str | bytes):
        raise PlanParseError(f"plan must be text or a mapping, not {type(plan_json).__name__}")
    if isinstance(plan_json, bytes):
        # Terraform writes UTF-8; json.loads would also guess UTF-16/32 from the first bytes.
        # utf-8-sig accepts a BOM that a Windows shell redirect may have added.
        try:
            plan_json = plan_json.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise PlanParseError(f"plan is not UTF-8 text: {exc.reason}") from exc
    try:
        decoded = json.loads(plan_json, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise PlanParseError(
            f"plan is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc
    if not isinstance(decoded, dict):
        raise PlanParseError(f"plan is a JSON {type(decoded).__name__}, expected an object")
    return decoded


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
