"""What a parsed plan is made of: findings, their attributes, output changes, the summary.

These are the parser's results (see :mod:`services.detector.plan` for what each field
means in a plan); :func:`to_event_finding` turns a finding into what travels in events.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from services.detector.ignore import IgnoreRule
from shared.errors import PermanentError
from shared.events import (
    Actor,
    AttributeChange,
    DriftFinding,
    FindingStatus,
    PlannedFinding,
    Suspect,
)


class PlanParseError(PermanentError):
    """The body is not a Terraform plan this parser understands.

    The message says what is wrong and where (``resource_changes.3.change.actions``),
    never a value from the plan, so it is safe to log and to post.
    """


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


#: One changed leaf of a resource. The parser builds the event's own model, so a finding's
#: attributes go into :func:`to_event_finding`'s ``DriftFinding`` as they are (the path
#: notation is explained in :mod:`services.detector.plan`).
PlanAttribute = AttributeChange


class PlanFinding(PlannedFinding):
    """One resource that drifted or that Terraform would change: what the event's
    :class:`~shared.events.PlannedFinding` says (fields and their meaning there), and what
    only the parser needs.

    Attributes:
        state: The state name the plan belongs to.
        change: One word for the actions: create, update, delete, replace, forget, or
            the actions joined with ``+`` for a combination the parser does not name.
        replace_paths: The attribute paths that force a replacement.
    """

    state: str
    change: str
    replace_paths: tuple[str, ...] = ()


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
    finding: PlanFinding,
    *,
    first_seen: datetime,
    status: FindingStatus = "new",
    claimed_by: Actor | None = None,
    suspects: tuple[Suspect, ...] = (),
) -> DriftFinding:
    """The :class:`~shared.events.DriftFinding` that goes into a ``DriftDetected`` event.

    The parser knows nothing about history, so the lifecycle's :func:`reconcile` passes
    ``first_seen``, ``status`` and the claimer from its records, and the attribution its
    ``suspects``. Every changed attribute travels, each with its own ``ignored`` flag and
    reason, so Slack can show noise apart from the real change.
    """
    planned = {name: getattr(finding, name) for name in PlannedFinding.model_fields}
    return DriftFinding(
        **planned, status=status, first_seen=first_seen, claimed_by=claimed_by, suspects=suspects
    )
