"""Who belongs to which Slack user group, cached: what authorization asks of Slack.

The rules themselves (who may run a command in an environment, who may approve it) live in
:mod:`shared.catalog`. They ask one question, "is this user in that group?", which the
catalog's static ``usergroups`` answer first and Slack's ``usergroups.users.list`` answers
otherwise. Slack's answers are kept for a while: a modal submission should not wait for
Slack on every click, and a membership change showing up a minute late is acceptable. The
gateway (who may *request*) and the batch service (who may *run* and *approve*, checked
again before anything runs) use the same directory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from shared.catalog import Catalog, GroupDirectory, StaticGroupDirectory
from shared.errors import TransientError

log = logging.getLogger(__name__)

#: Fetches the member user ids of one user group.
MembersFetcher = Callable[[str], Awaitable[frozenset[str]]]

#: Slack errors that mean "this group does not exist (any more)": no members, not a failure.
_GONE_GROUP_ERRORS = frozenset({"no_such_subteam", "subteam_not_found"})


def slack_group_members(client: AsyncWebClient) -> MembersFetcher:
    """A :data:`MembersFetcher` over ``usergroups.users.list``.

    Raises (from the fetcher):
        TransientError: Slack could not be asked (rate limit, outage, bad token); the
            caller refuses for now rather than guessing.
    """

    async def fetch(group_id: str) -> frozenset[str]:
        try:
            response = await client.usergroups_users_list(usergroup=group_id)
        except SlackApiError as exc:
            error = str(exc.response.get("error", ""))
            if error in _GONE_GROUP_ERRORS:
                log.warning("user group %s does not exist; it allows nobody", group_id)
                return frozenset()
            raise TransientError(f"usergroups.users.list {group_id} failed: {error}") from exc
        except (TimeoutError, SlackClientError, OSError) as exc:
            raise TransientError(f"usergroups.users.list {group_id} failed: {exc}") from exc
        users = response.get("users") or []
        return frozenset(str(user) for user in users)

    return fetch


@dataclass
class _Entry:
    members: frozenset[str]
    fetched_at: float


@dataclass(eq=False)
class CachedGroupDirectory:
    """A :class:`~shared.catalog.GroupDirectory` that asks a fetcher and keeps the answers.

    Concurrent questions about the same group share one fetch.

    Args:
        fetch_members: where memberships come from (Slack, in production).
        ttl_seconds: how long an answer is reused (0: always ask).
        clock: monotonic seconds; tests pass their own.
    """

    fetch_members: MembersFetcher
    _: KW_ONLY
    ttl_seconds: float
    clock: Callable[[], float] = time.monotonic
    _entries: dict[str, _Entry] = field(default_factory=dict, init=False)
    _inflight: dict[str, asyncio.Future[frozenset[str]]] = field(default_factory=dict, init=False)

    async def is_member(self, user_id: str, group_id: str) -> bool:
        return user_id in await self.members(group_id)

    async def members(self, group_id: str) -> frozenset[str]:
        """The group's members, from the cache while fresh."""
        entry = self._entries.get(group_id)
        if entry is not None and self.clock() - entry.fetched_at < self.ttl_seconds:
            return entry.members
        pending = self._inflight.get(group_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[frozenset[str]] = asyncio.get_running_loop().create_future()
        self._inflight[group_id] = future
        try:
            members = await self.fetch_members(group_id)
        except BaseException as exc:
            future.set_exception(exc)
            # Mark the exception retrieved: nobody else may be waiting on this future.
            future.exception()
            raise
        finally:
            del self._inflight[group_id]
        self._entries[group_id] = _Entry(members, self.clock())
        future.set_result(members)
        return members

    def forget(self) -> None:
        """Drop every cached answer (the next question asks again)."""
        self._entries.clear()


class CatalogFirstDirectory:
    """Groups the catalog lists are answered from the catalog; the rest from ``fallback``."""

    def __init__(self, catalog: Catalog, fallback: GroupDirectory) -> None:
        self._static = StaticGroupDirectory(catalog.usergroups)
        self._fallback = fallback

    async def is_member(self, user_id: str, group_id: str) -> bool:
        if self._static.knows(group_id):
            return await self._static.is_member(user_id, group_id)
        return await self._fallback.is_member(user_id, group_id)


def slack_directory(
    catalog: Catalog,
    client: AsyncWebClient | None,
    *,
    ttl_seconds: float,
    clock: Callable[[], float] = time.monotonic,
) -> GroupDirectory:
    """The catalog's groups, then Slack's (cached ``ttl_seconds``); without a Slack
    client only the catalog's groups have members."""
    if client is None:
        return CatalogFirstDirectory(catalog, StaticGroupDirectory({}))
    fetcher = CachedGroupDirectory(
        slack_group_members(client), ttl_seconds=ttl_seconds, clock=clock
    )
    return CatalogFirstDirectory(catalog, fetcher)
