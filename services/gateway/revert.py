"""Revert: the drift report's button that puts a state back to what its code says.

It requests the catalog's ``drift.revert.command`` like any run, so everything a batch run
has applies: who may request it and who approves (the command's policy in the environment
``drift.revert.environments`` gives the state), the preview the approvers read first (the
plan), the command's lock (``concurrency: 1``: two people pressing Revert at once get one
run and one refusal), and the audit trail. The button only says which report it is on;
the targets are the drift findings of that report that are *still open* in the state
table, and the environment comes from the catalog, never from the button.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.gateway.blocks import Reply, text_reply
from services.gateway.store import Records
from shared.catalog import Catalog, ValidatedRequest, validate_request
from shared.errors import PermanentError, TransientError
from shared.slack.actions import ClaimValue
from shared.slack.blocks import code, escape

#: Addresses named in the run's reason before "and N more".
MAX_ADDRESSES_IN_REASON = 5


@dataclass(frozen=True)
class PlannedRevert:
    """The run a Revert press requests, and its reason (shown to the approvers)."""

    request: ValidatedRequest
    reason: str


async def plan_revert(
    catalog: Catalog, records: Records, claim: ClaimValue
) -> PlannedRevert | Reply:
    """The revert run for the report ``claim`` names, or the reply saying why there is none."""
    policy = catalog.drift.revert
    if policy is None:
        return text_reply(
            ":information_source: Revert is not set up here: the catalog's `drift.revert` "
            "names the command it runs (see docs/drift-actions.md)."
        )
    environment = policy.environment_for(claim.state)
    if environment is None:
        return text_reply(
            f":no_entry: No environment reverts {code(claim.state)}: no glob of the catalog's "
            "`drift.revert.environments` matches it. Nothing was requested."
        )
    try:
        open_findings = await records.open_drift(claim.state)
    except (TransientError, PermanentError):
        return text_reply(
            ":warning: Revert was not requested: I could not read the open drift just now."
        )
    wanted = set(claim.fingerprints)
    addresses = sorted(
        {f.address for f in open_findings if f.kind == "drift" and f.fingerprint in wanted}
    )
    if not addresses:
        return text_reply(
            f":white_check_mark: Nothing to revert in {code(claim.state)}: the drift of this "
            "report is no longer open (fixed since, or resolved by a later scan)."
        )
    checked = validate_request(
        catalog,
        policy.command,
        environment,
        [("state", claim.state), ("targets", " ".join(addresses))],
    )
    if isinstance(checked, list):
        problems = "; ".join(escape(str(e)) for e in checked)
        return text_reply(
            f":no_entry: Revert of {code(claim.state)} cannot be requested: {problems}"
        )
    named = ", ".join(addresses[:MAX_ADDRESSES_IN_REASON])
    more = len(addresses) - MAX_ADDRESSES_IN_REASON
    reason = f"Revert drift of {claim.state}: {named}" + (f" and {more} more" if more > 0 else "")
    return PlannedRevert(checked, reason)
