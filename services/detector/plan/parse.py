"""``parse_plan``: from ``terraform show -json`` output to a :class:`PlanSummary`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from services.detector.ignore import ActiveRules, IgnoreRule, json_values_equal, select_rules
from services.detector.plan.findings import FindingScope, build_finding
from services.detector.plan.models import PlanFinding, PlanParseError, PlanSummary
from services.detector.plan.outputs import output_changes
from services.detector.plan.reading import RawPlan, RawResourceChange, decode, validate_shape
from services.detector.plan.revert import RevertSplit, split_change
from services.detector.plan.sets import NO_SETS, SetPaths
from shared.events import FindingKind

_NOT_FINDINGS = frozenset({("no-op",), ("read",)})


def parse_plan(
    plan_json: Mapping[str, Any] | str | bytes,
    *,
    state: str,
    ignore_rules: Sequence[IgnoreRule] = (),
    now: datetime,
    expand_create_delete: bool = False,
    set_paths: Mapping[str, SetPaths] | None = None,
) -> PlanSummary:
    """Parse ``terraform show -json`` output into findings, outputs and counts.

    Args:
        plan_json: The plan document, as text, UTF-8 bytes or an already decoded mapping.
        state: The state's name; part of every fingerprint and matched by ignore rules.
        ignore_rules: Rules from ``toilkit.yaml``; expired ones are reported, not applied.
        now: The scan time (timezone-aware); decides which rules have expired.
        expand_create_delete: List every attribute of created and deleted resources too.
        set_paths: The set attributes of each resource type, from the provider schema
            (:func:`~services.detector.plan.sets.set_paths_from_schema`); without it
            every array is compared by position.

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
        raw = decode(plan_json)
        plan = validate_shape(raw)
        active = select_rules(ignore_rules, state=state, today=now.astimezone(UTC).date())
        return _summarise(
            raw,
            plan,
            state=state,
            rules=active,
            expand=expand_create_delete,
            sets=set_paths or {},
        )
    except RecursionError as exc:
        raise PlanParseError("plan nests too deeply to be a Terraform plan") from exc


def _summarise(
    raw: Mapping[str, Any],
    plan: RawPlan,
    *,
    state: str,
    rules: ActiveRules,
    expand: bool,
    sets: Mapping[str, SetPaths],
) -> PlanSummary:
    def build(entry: RawResourceChange, kind: FindingKind, scope: FindingScope) -> PlanFinding:
        return build_finding(entry, kind=kind, state=state, rules=rules, expand=expand, scope=scope)

    drifts = {entry.key: entry for entry in _drift_entries(plan)}
    splits: dict[tuple[str, str | None], RevertSplit] = {}
    pending: list[PlanFinding] = []
    noop_resources = 0
    for entry in plan.resource_changes or ():
        if entry.mode != "managed":
            continue
        type_sets = sets.get(entry.type, NO_SETS)
        drift = drifts.get(entry.key)
        split = split_change(drift, entry, sets=type_sets) if drift is not None else None
        if split is not None:
            splits[entry.key] = split
        moves = entry.change.importing is not None or entry.previous_address is not None
        if tuple(entry.change.actions) in _NOT_FINDINGS and not moves:
            noop_resources += entry.change.actions == ["no-op"]
            continue
        if split is None:
            pending.append(build(entry, "pending", FindingScope(sets=type_sets)))
        elif split.is_code:
            pending.append(build(entry, "pending", FindingScope(sets=type_sets, keep=split.keep)))
    drifted = []
    for key, entry in drifts.items():
        split = splits.get(key)
        scope = FindingScope(sets=sets.get(entry.type, NO_SETS))
        if split is not None:
            scope = replace(scope, revert=split.revert, reverted=split.reverted)
        drifted.append(build(entry, "drift", scope))
    return PlanSummary(
        state=state,
        format_version=plan.format_version,
        terraform_version=plan.terraform_version,
        errored=plan.errored,
        findings=(*drifted, *pending),
        outputs=output_changes(raw, plan),
        noop_resources=noop_resources,
        expired_rules=rules.expired,
    )


def _drift_entries(plan: RawPlan) -> list[RawResourceChange]:
    """The managed resources that changed outside Terraform.

    Terraform 0.15.4-1.0.0 also listed resources whose refresh changed nothing: an
    entry whose values are the same on both sides is no drift.
    """
    found = []
    for entry in plan.resource_drift or ():
        if entry.mode != "managed" or tuple(entry.change.actions) in _NOT_FINDINGS:
            continue
        change = entry.change
        if change.actions == ["update"] and json_values_equal(change.before, change.after):
            continue
        found.append(entry)
    return found
