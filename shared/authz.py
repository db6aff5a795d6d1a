"""Who may request, approve, reject and cancel a batch run, and press the drift buttons
(Ignore…, Re-scan): the rules, once.

The gateway checks them before it publishes a command (to answer the person at once); the
batch service checks them again when the command arrives (it is the authority: a command
can reach the topic by other ways). Both call these functions with the catalog's current
policy, so the two can never disagree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from shared.catalog import (
    MIN_BREAK_GLASS_REASON,
    ApprovalPolicy,
    Catalog,
    GroupDirectory,
    ValidatedRequest,
)
from shared.catalog_principals import Principals

if TYPE_CHECKING:
    from shared.state_table.runs import RunRecord


async def principals_allow(
    principals: Principals, user_id: str | None, directory: GroupDirectory
) -> bool:
    """True when the user is named, or is a member of a named group."""
    if not user_id:
        return False
    if user_id in principals.users:
        return True
    for group in principals.usergroups:
        if await directory.is_member(user_id, group):
            return True
    return False


async def authorization_refusal(
    request: ValidatedRequest, requester_id: str | None, directory: GroupDirectory
) -> str | None:
    """Why the requester may not run this request (None: allowed)."""
    if not requester_id:
        return "the request names no Slack user, and only named users may run commands"
    if await principals_allow(request.policy.allowed, requester_id, directory):
        return None
    return (
        f"{requester_id} may not run {request.command.name} in {request.environment} "
        f"(allowed: {', '.join(request.policy.allowed.ids())})"
    )


async def break_glass_refusal(
    request: ValidatedRequest,
    requester_id: str | None,
    reason: str,
    directory: GroupDirectory,
    *,
    used_today: int = 0,
) -> str | None:
    """Why the requester may not start this run without approval (None: they may).

    Checked after :func:`authorization_refusal` (break-glass skips the approval, never the
    permission to run the command).

    Args:
        request: the valid request.
        requester_id: who asks.
        reason: the request's reason (everyone reads it; it must say something).
        directory: user group membership.
        used_today: the requester's break-glass runs so far this UTC day (not this one).
    """
    policy = request.policy.break_glass
    where = f"{request.command.name} in {request.environment}"
    if policy is None:
        return f"{where} does not allow break-glass; it waits for an approval"
    if len(reason.strip()) < MIN_BREAK_GLASS_REASON:
        return (
            f"a break-glass run needs a reason of at least {MIN_BREAK_GLASS_REASON} "
            "characters (the incident, what is broken)"
        )
    if not await principals_allow(policy.allowed, requester_id, directory):
        return (
            f"{requester_id or 'someone unnamed'} may not break glass for {where} "
            f"(allowed: {', '.join(policy.allowed.ids())})"
        )
    if used_today >= policy.max_per_person_per_day:
        return (
            f"{requester_id} already started {used_today} break-glass run(s) today, the "
            f"limit for {where} is {policy.max_per_person_per_day} per person per day (UTC); "
            "ask an approver instead"
        )
    return None


async def approval_refusal(
    policy: ApprovalPolicy,
    requester_id: str | None,
    approver_id: str | None,
    directory: GroupDirectory,
) -> str | None:
    """Why this person's approval does not count (None: it counts)."""
    if not approver_id:
        return "the approval names no Slack user"
    if approver_id == requester_id:
        return f"{approver_id} requested this run and cannot approve it (self-approval)"
    if not await principals_allow(policy.approvers, approver_id, directory):
        return (
            f"{approver_id} is not an approver here (approvers: "
            f"{', '.join(policy.approvers.ids())})"
        )
    return None


async def rejection_refusal(
    policy: ApprovalPolicy | None,
    requester_id: str | None,
    rejector_id: str | None,
    directory: GroupDirectory,
) -> str | None:
    """Why this person may not reject the request (None: they may).

    The requester may withdraw their own request; otherwise it takes an approver.
    """
    if rejector_id and rejector_id == requester_id:
        return None
    if policy is not None and await principals_allow(policy.approvers, rejector_id, directory):
        return None
    approvers = ", ".join(policy.approvers.ids()) if policy is not None else "none"
    return (
        f"{rejector_id or 'someone unnamed'} is neither the requester nor an approver "
        f"(approvers: {approvers})"
    )


async def may_cancel(
    catalog: Catalog, run: RunRecord, user_id: str | None, directory: GroupDirectory
) -> bool:
    """Whether ``user_id`` may cancel ``run``: its requester, anyone the catalog (as it is
    now) allows to run its command in its environment, or that command's approvers there."""
    if user_id and user_id == run.requested_by.slack_user_id:
        return True
    spec = catalog.command(run.command)
    policy = spec.environments.get(run.environment) if spec else None
    if policy is None:
        return False
    if await principals_allow(policy.allowed, user_id, directory):
        return True
    return policy.approval is not None and await principals_allow(
        policy.approval.approvers, user_id, directory
    )


DriftAction = Literal["ignore", "rescan", "accept"]


async def drift_action_refusal(
    catalog: Catalog, action: DriftAction, user_id: str | None, directory: GroupDirectory
) -> str | None:
    """Why this person may not press a drift button (None: they may).

    The catalog's ``drift:`` section names who may; an action it leaves out is open to
    every named Slack user.
    """
    if not user_id:
        return "the request names no Slack user"
    allowed = getattr(catalog.drift, action)
    if allowed is None or await principals_allow(allowed, user_id, directory):
        return None
    return f"{user_id} may not {action} drift (allowed: {', '.join(allowed.ids())})"
