"""Understanding a Terraform plan: what drifted, and what Terraform would change.

:func:`parse_plan` turns the output of ``terraform show -json <planfile>`` (Terraform or
OpenTofu, plan format versions 0.x and 1.x) into a :class:`PlanSummary`. It is pure: no
I/O, no clock (the caller passes ``now``), no globals.

Two kinds of finding, kept apart in every output:

* ``drift``: an entry of ``resource_drift``. The real resource changed outside Terraform
  since the last apply (a console change, an emergency fix).
* ``pending``: an entry of ``resource_changes`` whose actions are not ``no-op``/``read``.
  Terraform would change the resource: code that was never applied, or a drift that the
  next apply would revert. A drifted resource therefore often has both findings.

Data sources (``mode: data``) are never findings.

Attribute paths
    Each changed leaf gets a path: object attributes and map keys joined with dots, list
    (and set) elements as ``[index]``: ``tags.Env``, ``ingress[0].cidr_blocks[1]``. A map
    key that is not an identifier (letters, digits, ``_``, ``-``, not starting with a
    digit) is written as a JSON string in brackets, so ``metadata["a.b"]`` can never be
    confused with ``metadata.a.b``.

What a finding lists
    * update, replace (both orders) and any other multi-action change: every changed
      leaf, as Terraform's own diff does. A value that Terraform only knows after apply
      has ``after=None, after_unknown=True``. For a replace, leaves under a
      ``replace_paths`` entry have ``forces_replacement=True``.
    * create, delete, forget: no attributes by default. A create lists only what the
      code says (nothing drifted), a delete says the resource goes; exploding every
      attribute would drown the one line a reader needs. ``expand_create_delete=True``
      lists them anyway.

Sensitive values never leave this module. A leaf is sensitive when Terraform's
``before_sensitive``/``after_sensitive`` tree marks it or one of its ancestors; both its
sides are replaced by :data:`shared.events.SENSITIVE` (a sensitive map is masked whole,
keys included). An output is sensitive when its change or its declaration says so. A
sensitivity tree of a shape this module does not understand counts as sensitive.

Fingerprint
    sha256 over ``[state, address, kind, change, deposed key, sorted attribute paths]``,
    first 16 hex digits. Values are left out because they move while the drift stays the
    same (someone keeps resizing the same instance by hand); times are left out so that
    every scan computes the same fingerprint for the same drift. ``change`` (create,
    update, delete, replace...) is included because a create and a delete carry no
    attribute paths and would otherwise collide; both replace orders count as
    ``replace``. Only the paths that are not ignored count (all of them when every one
    is ignored), so provider noise appearing next to a real drift does not make it a new
    finding.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator
from rich.table import Table
from rich.text import Text

from services.detector.ignore import (
    ActiveRules,
    IgnoreRule,
    json_values_equal,
    provider_noise,
    select_rules,
)
from shared.errors import PermanentError
from shared.events import SENSITIVE, AttributeChange, DriftFinding, FindingKind, FindingStatus

#: Major plan format versions this parser reads. Terraform declared 1.0 identical to 0.2
#: and only makes compatible additions within a major version.
SUPPORTED_FORMAT_MAJORS = frozenset({0, 1})

#: How an unknown value is shown to people (Terraform's own words).
KNOWN_AFTER_APPLY = "(known after apply)"

_NOT_FINDINGS = frozenset({("no-op",), ("read",)})
_COMPACT_CHANGES = frozenset({"create", "delete", "forget"})
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_FORMAT_VERSION = re.compile(r"(\d+)\.(\d+)")

PathStep: TypeAlias = str | int


class PlanParseError(PermanentError):
    """The body is not a Terraform plan this parser understands.

    The message says what is wrong and where (``resource_changes.3.change.actions``),
    never a value from the plan, so it is safe to log and to post.
    """


# --------------------------------------------------------------------------- results


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PlanAttribute(_Frozen):
    """One changed leaf of a resource.

    Attributes:
        path: Where it is (see the module doc for the notation).
        before: The value before, or :data:`SENSITIVE`.
        after: The value after, :data:`SENSITIVE`, or ``None`` when unknown.
        sensitive: Terraform marks the value sensitive on either side.
        after_unknown: The value is only known after apply.
        forces_replacement: The path is (under) one of the change's ``replace_paths``.
        ignored: An ignore rule or a provider-noise normalisation hides it.
        ignore_reason: Why it is ignored.
    """

    path: str
    before: JsonValue = None
    after: JsonValue = None
    sensitive: bool = False
    after_unknown: bool = False
    forces_replacement: bool = False
    ignored: bool = False
    ignore_reason: str | None = None


class PlanFinding(_Frozen):
    """One resource that drifted or that Terraform would change.

    Attributes:
        fingerprint: Stable id of this drift (see the module doc).
        state: The state name the plan belongs to.
        address: Full resource instance address, modules and index included.
        resource_type: e.g. ``aws_sqs_queue``.
        kind: ``drift`` (changed outside Terraform) or ``pending`` (Terraform would change it).
        actions: Terraform's actions, in Terraform's order (``("create", "delete")``).
        change: One word for the actions: create, update, delete, replace, forget, or
            the actions joined with ``+`` for a combination this module does not name.
        action_reason: Terraform's ``action_reason`` (``replace_because_tainted``...).
        previous_address: The address before a ``moved`` block, if any.
        deposed: The deposed object key, for the leftover of a create-before-destroy.
        attributes: The changed leaves (empty for a compact create/delete).
        replace_paths: The attribute paths that force a replacement.
        ignored: True when an ignore rule covers the resource or every changed attribute.
        ignore_reason: Why; several attribute reasons are joined with ``"; "``.
    """

    fingerprint: str
    state: str
    address: str
    resource_type: str
    kind: FindingKind
    actions: tuple[str, ...]
    change: str
    action_reason: str | None = None
    previous_address: str | None = None
    deposed: str | None = None
    attributes: tuple[PlanAttribute, ...] = ()
    replace_paths: tuple[str, ...] = ()
    ignored: bool = False
    ignore_reason: str | None = None


class OutputChange(_Frozen):
    """A root module output that the plan would change.

    Attributes:
        name: The output name.
        actions: Terraform's actions for it.
        before: The value before, masked where sensitive.
        after: The value after, masked where sensitive, ``None`` when unknown.
        sensitive: The output is sensitive as a whole.
        after_unknown: Some or all of the value is only known after apply.
    """

    name: str
    actions: tuple[str, ...]
    before: JsonValue = None
    after: JsonValue = None
    sensitive: bool = False
    after_unknown: bool = False


class PlanSummary(_Frozen):
    """Everything the detector needs from one plan of one state.

    Attributes:
        state: The state name the caller gave.
        format_version: The plan's ``format_version``.
        terraform_version: Terraform's version, when the plan says (OpenTofu test
            fixtures do not).
        errored: Terraform says planning failed part-way; the findings may be incomplete.
        findings: Drift findings first, then pending ones, each in the plan's order.
        outputs: Output changes other than no-op.
        noop_resources: Managed resources the plan leaves as they are.
        expired_rules: Ignore rules for this state whose expiry date has passed.
    """

    state: str
    format_version: str
    terraform_version: str | None = None
    errored: bool = False
    findings: tuple[PlanFinding, ...] = ()
    outputs: tuple[OutputChange, ...] = ()
    noop_resources: int = Field(default=0, ge=0)
    expired_rules: tuple[IgnoreRule, ...] = ()

    @property
    def reported_findings(self) -> tuple[PlanFinding, ...]:
        """The findings that are not ignored."""
        return tuple(f for f in self.findings if not f.ignored)

    @property
    def drifted(self) -> bool:
        """True when at least one finding is not ignored."""
        return any(not f.ignored for f in self.findings)


def to_event_finding(
    finding: PlanFinding, *, first_seen: datetime, status: FindingStatus = "new"
) -> DriftFinding:
    """The :class:`~shared.events.DriftFinding` that goes into a ``DriftDetected`` event.

    The parser knows nothing about history, so the lifecycle store passes ``first_seen``
    and ``status`` from its records. Every changed attribute travels, each with its own
    ``ignored`` flag and reason, so Slack can show noise apart from the real change.
    """
    return DriftFinding(
        fingerprint=finding.fingerprint,
        address=finding.address,
        resource_type=finding.resource_type,
        kind=finding.kind,
        actions=finding.actions,
        action_reason=finding.action_reason,
        previous_address=finding.previous_address,
        deposed=finding.deposed,
        attributes=tuple(
            AttributeChange(
                path=a.path,
                before=a.before,
                after=a.after,
                sensitive=a.sensitive,
                after_unknown=a.after_unknown,
                ignored=a.ignored,
                ignore_reason=a.ignore_reason,
            )
            for a in finding.attributes
        ),
        ignored=finding.ignored,
        ignore_reason=finding.ignore_reason,
        status=status,
        first_seen=first_seen,
    )


# --------------------------------------------------------------------------- the raw plan


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


class _RawResourceChange(_Raw):
    address: str = Field(min_length=1)
    mode: str
    type: str = Field(min_length=1)
    change: _RawResourceObjectChange
    action_reason: str | None = None
    previous_address: str | None = None
    deposed: str | None = None


class _RawPlan(_Raw):
    format_version: str
    terraform_version: str | None = None
    errored: bool = False
    resource_drift: list[_RawResourceChange] | None = None
    resource_changes: list[_RawResourceChange] | None = None
    output_changes: dict[str, _RawChange] | None = None


_PLAN_KEYS = ("planned_values", "resource_changes", "resource_drift", "output_changes")


# --------------------------------------------------------------------------- parsing


def parse_plan(
    plan_json: Mapping[str, Any] | str | bytes,
    *,
    state: str,
    ignore_rules: Sequence[IgnoreRule] = (),
    now: datetime,
    expand_create_delete: bool = False,
) -> PlanSummary:
    """Parse ``terraform show -json`` output into findings, outputs and counts.

    Args:
        plan_json: The plan document, as text, UTF-8 bytes or an already decoded mapping.
        state: The state's name; part of every fingerprint and matched by ignore rules.
        ignore_rules: Rules from ``toilkit.yaml``; expired ones are reported, not applied.
        now: The scan time (timezone-aware); decides which rules have expired.
        expand_create_delete: List every attribute of created and deleted resources too.

    Returns:
        The typed summary; sensitive values in it are already masked.

    Raises:
        PlanParseError: The body is not JSON, not a plan (e.g. state JSON), has a
            ``format_version`` major this parser does not read, or has a malformed entry.
        ValueError: ``now`` is naive.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    try:
        raw = _decode(plan_json)
        plan = _validate_shape(raw)
        active = select_rules(ignore_rules, state=state, today=now.astimezone(UTC).date())
        return _summarise(raw, plan, state=state, rules=active, expand=expand_create_delete)
    except RecursionError as exc:
        raise PlanParseError("plan nests too deeply to be a Terraform plan") from exc


def _decode(plan_json: Mapping[str, Any] | str | bytes) -> Mapping[str, Any]:
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


def _validate_shape(raw: Mapping[str, Any]) -> _RawPlan:
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
        return _RawPlan.model_validate(dict(raw))
    except ValidationError as exc:
        # Locations and messages only: the input values may be secrets.
        problems = "; ".join(
            f"{'.'.join(str(step) for step in err['loc']) or '(plan)'}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)[:5]
        )
        raise PlanParseError(f"malformed Terraform plan: {problems}") from exc


def _summarise(
    raw: Mapping[str, Any], plan: _RawPlan, *, state: str, rules: ActiveRules, expand: bool
) -> PlanSummary:
    findings: list[PlanFinding] = []
    noop_resources = 0
    for kind, entries in (("drift", plan.resource_drift), ("pending", plan.resource_changes)):
        for entry in entries or ():
            if entry.mode != "managed":
                continue
            if tuple(entry.change.actions) in _NOT_FINDINGS:
                if kind == "pending" and entry.change.actions == ["no-op"]:
                    noop_resources += 1
                continue
            finding_kind: FindingKind = "drift" if kind == "drift" else "pending"
            findings.append(
                _finding(entry, kind=finding_kind, state=state, rules=rules, expand=expand)
            )
    return PlanSummary(
        state=state,
        format_version=plan.format_version,
        terraform_version=plan.terraform_version,
        errored=plan.errored,
        findings=tuple(findings),
        outputs=_output_changes(raw, plan),
        noop_resources=noop_resources,
        expired_rules=rules.expired,
    )


def change_name(actions: Sequence[str]) -> str:
    """One word for Terraform's actions: replace for both delete/create orders."""
    if sorted(actions) == ["create", "delete"]:
        return "replace"
    if len(actions) == 1:
        return actions[0]
    return "+".join(actions)


def _finding(
    entry: _RawResourceChange,
    *,
    kind: FindingKind,
    state: str,
    rules: ActiveRules,
    expand: bool,
) -> PlanFinding:
    change = entry.change
    name = change_name(change.actions)
    replace_paths = [tuple(p) for p in change.replace_paths or () if p]
    leaves: list[_Leaf] = []
    if expand or name not in _COMPACT_CHANGES:
        leaves = list(
            _diff_resource(
                change.before,
                change.after,
                before_sensitive=change.before_sensitive,
                after_sensitive=change.after_sensitive,
                after_unknown=change.after_unknown,
            )
        )
    attributes = tuple(
        _attribute(leaf, entry.address, state=state, rules=rules, replace_paths=replace_paths)
        for leaf in leaves
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
        attributes=attributes,
        replace_paths=tuple(render_path(p) for p in replace_paths),
        ignored=ignore_reason is not None,
        ignore_reason=ignore_reason,
    )


def _attribute(
    leaf: _Leaf,
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
    """The stable id of a finding; see the module doc for what goes in and why."""
    # A JSON array keeps the parts apart: no separator can appear inside a part.
    material = json.dumps(
        [state, address, kind, change, deposed or "", sorted(set(paths))],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:16]


def render_path(steps: Sequence[PathStep]) -> str:
    """Write attribute path steps in the notation of the module doc."""
    parts: list[str] = []
    for position, step in enumerate(steps):
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif _IDENTIFIER.match(step):
            parts.append(step if position == 0 else f".{step}")
        else:
            parts.append(f"[{json.dumps(step, ensure_ascii=False)}]")
    return "".join(parts)


# --------------------------------------------------------------------------- the diff


@dataclass(frozen=True)
class _Leaf:
    """A changed leaf, already masked; ``noise`` was judged on the raw values."""

    steps: tuple[PathStep, ...]
    before: JsonValue
    after: JsonValue
    sensitive: bool
    after_unknown: bool
    noise: str | None


def _diff_resource(
    before: JsonValue,
    after: JsonValue,
    *,
    before_sensitive: JsonValue,
    after_sensitive: JsonValue,
    after_unknown: JsonValue,
) -> Iterator[_Leaf]:
    """Changed leaves of a resource; top-level attributes are always listed one by one.

    Attribute names come from the provider schema, so they are shown even when the
    whole object is marked sensitive; their values are not.
    """
    before_map = before if isinstance(before, dict) else {}
    after_map = after if isinstance(after, dict) else {}
    unknown_map = after_unknown if isinstance(after_unknown, dict) else {}
    for key in _ordered_keys(before_map, after_map, unknown_map):
        yield from _diff(
            before_map.get(key),
            after_map.get(key),
            before_sensitive=_sensitivity_child(before_sensitive, key),
            after_sensitive=_sensitivity_child(after_sensitive, key),
            after_unknown=_unknown_child(after_unknown, key),
            steps=(key,),
        )


def _diff(
    before: JsonValue,
    after: JsonValue,
    *,
    before_sensitive: JsonValue,
    after_sensitive: JsonValue,
    after_unknown: JsonValue,
    steps: tuple[PathStep, ...],
) -> Iterator[_Leaf]:
    unknown = after_unknown is True
    if not _any_true(after_unknown) and json_values_equal(before, after):
        # Most of a plan is unchanged; skip such subtrees without walking them.
        return
    if _is_sensitive(before_sensitive) or _is_sensitive(after_sensitive):
        # Compared, never shown: masked whole (map keys can be secret too).
        yield _Leaf(
            steps,
            before=_mask(before, True),
            after=None if unknown else _mask(after, True),
            sensitive=True,
            after_unknown=unknown,
            noise=None if unknown else provider_noise(before, after),
        )
        return
    if unknown:
        yield _Leaf(
            steps,
            before=_mask(before, before_sensitive),
            after=None,
            sensitive=False,
            after_unknown=True,
            noise=None,
        )
        return
    if _is_object_pair(before, after, after_unknown):
        before_map = before if isinstance(before, dict) else {}
        after_map = after if isinstance(after, dict) else {}
        unknown_map = after_unknown if isinstance(after_unknown, dict) else {}
        keys = _ordered_keys(before_map, after_map, unknown_map)
        if keys:
            for key in keys:
                yield from _diff(
                    before_map.get(key),
                    after_map.get(key),
                    before_sensitive=_sensitivity_child(before_sensitive, key),
                    after_sensitive=_sensitivity_child(after_sensitive, key),
                    after_unknown=_unknown_child(after_unknown, key),
                    steps=(*steps, key),
                )
            return
    elif _is_list_pair(before, after, after_unknown):
        before_list = before if isinstance(before, list) else []
        after_list = after if isinstance(after, list) else []
        unknown_list = after_unknown if isinstance(after_unknown, list) else []
        length = max(len(before_list), len(after_list), len(unknown_list))
        if length:
            for index in range(length):
                yield from _diff(
                    before_list[index] if index < len(before_list) else None,
                    after_list[index] if index < len(after_list) else None,
                    before_sensitive=_sensitivity_child(before_sensitive, index),
                    after_sensitive=_sensitivity_child(after_sensitive, index),
                    after_unknown=_unknown_child(after_unknown, index),
                    steps=(*steps, index),
                )
            return
    # A leaf, a type change, or null against an empty collection.
    if not json_values_equal(before, after):
        yield _Leaf(
            steps,
            before=_mask(before, before_sensitive),
            after=_mask(after, after_sensitive),
            sensitive=False,
            after_unknown=False,
            noise=provider_noise(before, after),
        )


def _ordered_keys(*maps: Mapping[str, Any]) -> list[str]:
    return sorted({key for mapping in maps for key in mapping})


def _is_object_pair(before: JsonValue, after: JsonValue, after_unknown: JsonValue) -> bool:
    sides = [v for v in (before, after) if v is not None]
    if not sides:
        return isinstance(after_unknown, dict)
    return all(isinstance(v, dict) for v in sides)


def _is_list_pair(before: JsonValue, after: JsonValue, after_unknown: JsonValue) -> bool:
    sides = [v for v in (before, after) if v is not None]
    if not sides:
        return isinstance(after_unknown, list)
    return all(isinstance(v, list) for v in sides)


def _is_sensitive(tree: JsonValue) -> bool:
    """Whether a sensitivity tree marks its whole value sensitive.

    Terraform writes ``true``, ``false``, or an object/array of subtrees. Anything else
    is not understood and counts as sensitive: a false alarm costs a masked value, a
    miss costs a leaked secret.
    """
    if tree is None or tree is False:
        return False
    return not isinstance(tree, dict | list)


def _sensitivity_child(tree: JsonValue, step: PathStep) -> JsonValue:
    if _is_sensitive(tree):
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


def _mask(value: JsonValue, tree: JsonValue) -> JsonValue:
    """``value`` with every part its sensitivity tree marks replaced by the marker."""
    if value is None:
        return None
    if _is_sensitive(tree):
        return SENSITIVE
    if isinstance(value, dict):
        return {key: _mask(item, _sensitivity_child(tree, key)) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask(item, _sensitivity_child(tree, index)) for index, item in enumerate(value)]
    return value


def _any_true(tree: JsonValue) -> bool:
    if tree is True:
        return True
    if isinstance(tree, dict):
        return any(_any_true(v) for v in tree.values())
    if isinstance(tree, list):
        return any(_any_true(v) for v in tree)
    return False


# --------------------------------------------------------------------------- outputs


def _output_changes(raw: Mapping[str, Any], plan: _RawPlan) -> tuple[OutputChange, ...]:
    declared_sensitive = _outputs_declared_sensitive(raw)
    changes: list[OutputChange] = []
    for name, change in (plan.output_changes or {}).items():
        if change.actions == ["no-op"]:
            continue
        whole = (
            name in declared_sensitive
            or _is_sensitive(change.before_sensitive)
            or _is_sensitive(change.after_sensitive)
        )
        unknown = _any_true(change.after_unknown)
        changes.append(
            OutputChange(
                name=name,
                actions=tuple(change.actions),
                before=_mask(change.before, True if whole else change.before_sensitive),
                after=None
                if change.after_unknown is True
                else _mask(change.after, True if whole else change.after_sensitive),
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


# --------------------------------------------------------------------------- CLI rendering

StateStatus: TypeAlias = Literal["clean", "drifted", "failed"]


class StateResult(_Frozen):
    """One state's outcome in a CLI run: a parsed plan, or the error that stopped it.

    Attributes:
        name: The state name.
        path: Its directory in the infrastructure repo.
        summary: The parsed plan, when there is one.
        error: Why the state failed (init, plan, parse...), when it did.
    """

    name: str
    path: str
    summary: PlanSummary | None = None
    error: str | None = None

    @model_validator(mode="after")
    def _summary_or_error(self) -> StateResult:
        if self.summary is None and self.error is None:
            raise ValueError("a state result needs a summary or an error")
        return self

    @property
    def status(self) -> StateStatus:
        """failed (error, no plan, or an errored plan), drifted, or clean."""
        if self.error is not None or self.summary is None or self.summary.errored:
            return "failed"
        return "drifted" if self.summary.drifted else "clean"

    @property
    def status_error(self) -> str | None:
        """The error to report: the given one, or a note that the plan errored."""
        if self.error is not None:
            return self.error
        if self.summary is not None and self.summary.errored:
            return "terraform reported errors while planning; findings may be incomplete"
        return None


def to_cli_json(results: Sequence[StateResult]) -> dict[str, Any]:
    """The ``--json`` document of the CLI, ready for :func:`json.dumps`.

    The contract other tools rely on: ``{"states": [{"name", "path", "status", "error",
    "findings": [{"address", "kind", "actions", "attributes": [{"path", "before",
    "after"}], "ignored"}]}]}``. Extra keys (``fingerprint``, ``ignore_reason``,
    ``sensitive``, ``after_unknown``...) are additions a consumer may ignore.
    """
    return {
        "states": [
            {
                "name": result.name,
                "path": result.path,
                "status": result.status,
                "error": result.status_error,
                "findings": [
                    _finding_json(f) for f in (result.summary.findings if result.summary else ())
                ],
            }
            for result in results
        ]
    }


def _finding_json(finding: PlanFinding) -> dict[str, Any]:
    return {
        "address": finding.address,
        "kind": finding.kind,
        "actions": list(finding.actions),
        "attributes": [
            {
                "path": a.path,
                "before": a.before,
                "after": a.after,
                "sensitive": a.sensitive,
                "after_unknown": a.after_unknown,
                "ignored": a.ignored,
            }
            for a in finding.attributes
        ],
        "ignored": finding.ignored,
        "ignore_reason": finding.ignore_reason,
        "fingerprint": finding.fingerprint,
        "resource_type": finding.resource_type,
        "change": finding.change,
        "action_reason": finding.action_reason,
        "previous_address": finding.previous_address,
    }


_KIND_LABELS = {"drift": ("drift", "bold red"), "pending": ("pending", "yellow")}


def findings_table(
    results: Sequence[StateResult], *, show_ignored: bool = True, value_width: int = 60
) -> Table:
    """A rich table of every state's findings, one row per finding (or failed state).

    Plan text is added as :class:`rich.text.Text`, never as markup, so a value like
    ``[bold]`` prints as itself.
    """
    table = Table(title="Terraform drift", show_lines=True)
    for column in ("State", "Address", "Kind", "Change", "Attributes", "Note"):
        table.add_column(column, overflow="fold")
    for result in results:
        error = result.status_error
        if error is not None:
            table.add_row(
                Text(result.name),
                Text(""),
                Text("failed", style="bold magenta"),
                Text(""),
                Text(""),
                Text(error),
            )
        for finding in result.summary.findings if result.summary else ():
            if finding.ignored and not show_ignored:
                continue
            label, style = _KIND_LABELS[finding.kind]
            table.add_row(
                Text(result.name),
                Text(finding.address),
                Text(label, style=style),
                Text(finding.change),
                _attributes_text(finding, value_width),
                Text("; ".join(_notes(finding))),
                style="dim" if finding.ignored else None,
            )
    return table


def _attributes_text(finding: PlanFinding, value_width: int) -> Text:
    lines = Text()
    for attribute in finding.attributes:
        if lines:
            lines.append("\n")
        after = (
            KNOWN_AFTER_APPLY
            if attribute.after_unknown
            else _format_value(attribute.after, value_width)
        )
        line = f"{attribute.path}: {_format_value(attribute.before, value_width)} -> {after}"
        if attribute.forces_replacement:
            line += " (forces replacement)"
        if attribute.ignored:
            line += f" [ignored: {attribute.ignore_reason}]"
        lines.append(line, style="dim" if attribute.ignored else "")
    return lines


def _notes(finding: PlanFinding) -> list[str]:
    notes = []
    if finding.ignored:
        notes.append(f"ignored: {finding.ignore_reason}")
    if finding.action_reason:
        notes.append(finding.action_reason)
    if finding.previous_address:
        notes.append(f"moved from {finding.previous_address}")
    if finding.deposed:
        notes.append(f"deposed object {finding.deposed}")
    return notes


def _format_value(value: JsonValue, width: int) -> str:
    # The marker prints as itself; every real value as JSON, so "" and null stay visible.
    text = SENSITIVE if value == SENSITIVE else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"
