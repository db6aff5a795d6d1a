"""Checks of a run modal submission that need a read: done before the modal closes.

:meth:`Gateway.check_run_form` checks the form against the catalog alone. Two more things
are known only from the state table, and are better said under the field than in a refusal
after the modal closed:

* a choice from a list (``options_from``) must be in the current list, or the last good
  one (:class:`~services.gateway.suggestions.ListedOptions`);
* break-glass must not exceed the person's limit per day (the batch service counts and
  enforces it again when it starts the run; this is the early, friendly answer).

A read that fails or takes too long leaves the check to the batch service (the break-glass
limit) or refuses with a reason (a list that cannot be checked).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from services.gateway.blocks import BREAK_GLASS_BLOCK, parameter_block_id
from services.gateway.suggestions import ListedOptions
from shared.catalog import ValidatedRequest
from shared.errors import PermanentError, TransientError
from shared.events import utc_now
from shared.state_table.runs import read_break_glass_runs

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

BreakGlassUsed = Callable[[str, date], Awaitable[frozenset[str]]]


def break_glass_reader(dynamodb: DynamoDBClient, table: str) -> BreakGlassUsed:
    """Reads the runs a person started by break-glass on a UTC day (the batch service's
    counter, through the shared model)."""

    async def used(user_id: str, day: date) -> frozenset[str]:
        return await read_break_glass_runs(dynamodb, table, user_id, day)

    return used


@dataclass(frozen=True)
class SubmissionChecks:
    """The checks a submission gets before its modal closes.

    Args:
        options: the lists of choices (None: the catalog has none).
        break_glass_used: reads a person's break-glass runs of a day (None: not checked).
        timeout: the longest the checks may take (Slack waits 3 s for the answer).
        clock: the current time.
    """

    options: ListedOptions | None = None
    break_glass_used: BreakGlassUsed | None = None
    timeout: float = 1.5
    clock: Callable[[], datetime] = utc_now

    async def errors(
        self, request: ValidatedRequest, *, user_id: str, break_glass: bool
    ) -> dict[str, str]:
        """Block id -> message, for each field with a problem (empty: accepted)."""
        checks: dict[str, Awaitable[str | None]] = {}
        options = self.options
        if options is not None:
            for name, value in request.values.items():
                if options.listed(request.command.name, name) is not None:
                    checks[parameter_block_id(name)] = options.problem(
                        request.command.name, name, value
                    )
        if break_glass:
            checks[BREAK_GLASS_BLOCK] = self._break_glass_problem(request, user_id)
        # At once, each read bounded on its own: the answer is due within Slack's 3 s.
        found = await asyncio.gather(*checks.values())
        return {block: problem for block, problem in zip(checks, found, strict=True) if problem}

    async def _break_glass_problem(self, request: ValidatedRequest, user_id: str) -> str | None:
        policy = request.policy.break_glass
        if policy is None or self.break_glass_used is None:
            return None
        day = self.clock().astimezone(UTC).date()
        try:
            async with asyncio.timeout(self.timeout):
                used = await self.break_glass_used(user_id, day)
        except (TimeoutError, TransientError, PermanentError) as exc:
            # The batch service counts again before it starts anything.
            log.warning("cannot read the break-glass count of %s: %s", user_id, exc)
            return None
        limit = policy.max_per_person_per_day
        if len(used) < limit:
            return None
        return (
            f"You have used your {limit} break-glass run{'s' if limit != 1 else ''} for today "
            f"(UTC day {day.isoformat()}). Untick it to ask for an approval instead."
        )
