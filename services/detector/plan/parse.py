"""``parse_plan``: from ``terraform show -json`` output to a :class:`PlanSummary`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from services.detector.ignore import ActiveRules, IgnoreRule, select_rules
from services.detector.plan.findings import build_finding
from services.detector.plan.models import PlanFinding, PlanParseError, PlanSummary
from services.detector.plan.outputs import output_changes
from services.detector.plan.reading import RawPlan, decode, validate_shape
from shared.events import FindingKind

_NOT_FINDINGS = frozenset({("no-op",), ("read",)})


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
        raw = decode(plan_json)
        plan = validate_shape(raw)
        active = select_rules(ignore_rules, state=state, today=now.astimezone(UTC).date())
        return _summarise(raw, plan, state=state, rules=active, expand=expand_create_delete)
    except RecursionError as exc:
        raise PlanParseError("plan nests too deeply to be a Terraform plan") from exc


def _summarise(
    raw: Mapping[str, Any], plan: RawPlan, *, state: str, rules: ActiveRules, expand: bool
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
                build_finding(entry, kind=finding_kind, state=state, rules=rules, expand=expand)
            )
    return PlanSummary(
        state=state,
        format_version=plan.format_version,
        terraform_version=plan.terraform_version,
        errored=plan.errored,
        findings=tuple(findings),
        outputs=output_changes(raw, plan),
        noop_resources=noop_resources,
        expired_rules=rules.expired,
    )
