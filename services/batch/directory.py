"""Slack user group membership, for authorization and approvals.

The catalog's own ``usergroups`` map answers first (reviewed with the catalog, and all a
Slack-less setup has); other groups are asked of Slack (``usergroups.users.list``) and
cached for a short while.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from shared.catalog import StaticGroupDirectory
from shared.errors import TransientError

log = logging.getLogger(__name__)


class SlackGroupDirectory:
    """Group membership from the catalog, then from Slack.

    Args:
        static: the catalog's groups.
        slack: a Web API client with ``usergroups:read`` (None: catalog groups only).
        cache_seconds: how long a group's members are reused.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        static: StaticGroupDirectory,
        slack: AsyncWebClient | None,
        *,
        cache_seconds: float = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._static = static
        self._slack = slack
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = asyncio.Lock()

    async def is_member(self, user_id: str, group_id: str) -> bool:
        if self._static.knows(group_id):
            return await self._static.is_member(user_id, group_id)
        return user_id in await self.members(group_id)

    async def members(self, group_id: str) -> frozenset[str]:
        """The group's members (empty for an unknown group, or without Slack)."""
        if self._slack is None:
            return frozenset()
        async with self._lock:
            cached = self._cache.get(group_id)
            if cached is not None and self._clock() - cached[0] < self.cache_seconds:
                return cached[1]
            try:
                response = await self._slack.usergroups_users_list(usergroup=group_id)
            except SlackApiError as exc:
                error = exc.response.get("error") if exc.response is not None else None
                if error in ("no_such_subteam", "subteam_not_found"):
                    log.warning("Slack user group %s does not exist; it allows nobody", group_id)
                    members: frozenset[str] = frozenset()
                else:
                    raise TransientError(f"Slack usergroups.users.list failed: {error}") from exc
            except (OSError, TimeoutError) as exc:
                raise TransientError(f"cannot reach Slack to read group {group_id}: {exc}") from exc
            else:
                users: list[str] = list(response.get("users", []))
                members = frozenset(users)
            self._cache[group_id] = (self._clock(), members)
            return members
