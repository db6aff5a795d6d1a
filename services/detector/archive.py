"""The full plan of each scanned state, kept in S3 with its secrets masked.

``terraform show -json`` writes sensitive values in clear (the ``*_sensitive`` trees only
say which ones they are). :func:`redact_plan` masks them before the plan leaves the
detector, failing closed:

* resource changes and drift: ``before``/``after`` masked by their sensitivity trees;
  ``generated_config`` (HCL text with values in it) dropped;
* planned values and prior state: each resource's ``values`` masked by its
  ``sensitive_values``, sensitive outputs masked whole;
* output changes: masked by their trees, or whole when the output is declared sensitive;
* input variables declared sensitive: masked;
* the configuration: every literal (``constant_value``, sensitive variable defaults)
  masked; the code is in the repository anyway, and a literal can be a password;
* any top-level key this module does not know: dropped, and listed under
  ``toilkit.dropped_keys``, because it might carry values in a shape not masked here.

:class:`PlanArchive` stores the redacted document under
``plans/<state>/<yyyy>/<mm>/<dd>/<scan id>.json``; events carry the reference.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.aws import call_aws
from shared.events import SENSITIVE, ObjectRef

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

_KEPT_AS_IS = frozenset(
    {
        "format_version",
        "terraform_version",
        "applyable",
        "complete",
        "errored",
        "timestamp",
        "relevant_attributes",
        "checks",
    }
)
_CHANGE_LISTS = ("resource_changes", "resource_drift")
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_.@:+/-]+")


def redact_plan(plan: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a ``show -json`` plan with every sensitive value replaced by the marker."""
    declared = _sensitive_outputs(plan)
    redacted: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in plan.items():
        if key in _KEPT_AS_IS:
            redacted[key] = value
        elif key in _CHANGE_LISTS:
            redacted[key] = [_redact_resource_change(c) for c in _list(value)]
        elif key == "deferred_changes":
            redacted[key] = [
                {**d, "resource_change": _redact_resource_change(d.get("resource_change"))}
                for d in _list(value)
                if isinstance(d, dict)
            ]
        elif key == "output_changes":
            redacted[key] = {
                name: _redact_change(change, whole=name in declared)
                for name, change in _dict(value).items()
            }
        elif key == "planned_values":
            redacted[key] = _redact_values(value)
        elif key == "prior_state":
            state = dict(_dict(value))
            state["values"] = _redact_values(state.get("values"))
            redacted[key] = state
        elif key == "variables":
            sensitive = _sensitive_variables(plan)
            redacted[key] = {
                name: {**_dict(v), "value": SENSITIVE} if name in sensitive else v
                for name, v in _dict(value).items()
            }
        elif key == "configuration":
            redacted[key] = _mask_literals(value)
        else:
            dropped.append(key)
    redacted["toilkit"] = {"redacted": True, "dropped_keys": sorted(dropped)}
    return redacted


def mask(value: Any, tree: Any) -> Any:
    """``value`` with every part its sensitivity tree marks replaced by the marker.

    A tree is ``true``/``false`` or an object/array of subtrees; anything else counts as
    sensitive (a false alarm costs a masked value, a miss a leaked secret).
    """
    if value is None:
        return None
    if tree is None or tree is False:
        return value
    if isinstance(tree, dict) and isinstance(value, dict):
        return {k: mask(v, tree.get(k, False)) for k, v in value.items()}
    if isinstance(tree, list) and isinstance(value, list):
        return [mask(v, tree[i] if i < len(tree) else False) for i, v in enumerate(value)]
    return SENSITIVE


def _redact_change(change: Any, *, whole: bool = False) -> Any:
    if not isinstance(change, dict):
        return change
    redacted = dict(change)
    redacted["before"] = mask(
        change.get("before"), True if whole else change.get("before_sensitive")
    )
    redacted["after"] = mask(change.get("after"), True if whole else change.get("after_sensitive"))
    redacted.pop("generated_config", None)
    return redacted


def _redact_resource_change(entry: Any) -> Any:
    if not isinstance(entry, dict):
        return entry
    return {**entry, "change": _redact_change(entry.get("change"))}


def _redact_values(values: Any) -> Any:
    """Mask ``planned_values`` or ``prior_state.values``: outputs and a module tree."""
    if not isinstance(values, dict):
        return values
    redacted = dict(values)
    if "outputs" in values:
        redacted["outputs"] = {
            name: {**output, "value": SENSITIVE}
            if _dict(output).get("sensitive") not in (None, False)
            else output
            for name, output in _dict(values["outputs"]).items()
        }
    if "root_module" in values:
        redacted["root_module"] = _redact_module(values["root_module"])
    return redacted


def _redact_module(module: Any) -> Any:
    if not isinstance(module, dict):
        return module
    redacted = dict(module)
    redacted["resources"] = [
        {**r, "values": mask(r.get("values"), r.get("sensitive_values"))}
        if isinstance(r, dict)
        else r
        for r in _list(module.get("resources"))
    ]
    if "child_modules" in module:
        redacted["child_modules"] = [_redact_module(m) for m in _list(module["child_modules"])]
    return redacted


def _mask_literals(node: Any) -> Any:
    if isinstance(node, list):
        return [_mask_literals(item) for item in node]
    if not isinstance(node, dict):
        return node
    masked: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("constant_value", "default"):
            masked[key] = SENSITIVE if value is not None else None
        else:
            masked[key] = _mask_literals(value)
    return masked


def _sensitive_outputs(plan: Mapping[str, Any]) -> set[str]:
    names: set[str] = set()
    for outputs in (
        _dict(_dict(plan.get("planned_values")).get("outputs")),
        _dict(_dict(_dict(plan.get("prior_state")).get("values")).get("outputs")),
        _dict(_dict(_dict(plan.get("configuration")).get("root_module")).get("outputs")),
    ):
        for name, declaration in outputs.items():
            if _dict(declaration).get("sensitive") not in (None, False):
                names.add(name)
    return names


def _sensitive_variables(plan: Mapping[str, Any]) -> set[str]:
    declared = _dict(_dict(_dict(plan.get("configuration")).get("root_module")).get("variables"))
    return {name for name, d in declared.items() if _dict(d).get("sensitive") not in (None, False)}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def plan_key(state: str, scan_id: str, scanned_at: datetime) -> str:
    """Where a state's plan of one scan is kept."""
    safe_state = _KEY_UNSAFE.sub("_", state)
    return f"plans/{safe_state}/{scanned_at:%Y/%m/%d}/{scan_id}.json"


class PlanArchive:
    """Stores redacted plans in the artifacts bucket.

    Args:
        s3: The process's S3 client.
        bucket: The artifacts bucket (``names.bucket``).
    """

    def __init__(self, s3: S3Client, bucket: str) -> None:
        self._s3 = s3
        self.bucket = bucket

    async def store(
        self, plan: Mapping[str, Any], *, state: str, scan_id: str, scanned_at: datetime
    ) -> ObjectRef:
        """Redact and upload one plan; returns the reference events carry.

        Raises:
            TransientError: S3 stayed unreachable through the retries.
            PermanentError: S3 refused the upload (no such bucket, access denied).
        """
        body = json.dumps(redact_plan(plan), separators=(",", ":")).encode()
        key = plan_key(state, scan_id, scanned_at)
        await call_aws(
            "s3.put_object",
            lambda: self._s3.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType="application/json"
            ),
        )
        return ObjectRef(bucket=self.bucket, key=key, size=len(body))
