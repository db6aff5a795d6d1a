"""User group membership: cached for a while, one fetch at a time, the catalog's groups first."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from shared.catalog import parse_catalog
from shared.errors import TransientError
from shared.slack.groups import CachedGroupDirectory, CatalogFirstDirectory


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Groups:
    """A membership source that counts how often it is asked."""

    def __init__(self, members: dict[str, frozenset[str]]) -> None:
        self.members = members
        self.fetches: list[str] = []
        self.gate: asyncio.Event | None = None
        self.fail = False

    async def fetch(self, group_id: str) -> frozenset[str]:
        self.fetches.append(group_id)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise TransientError("usergroups.users.list failed: ratelimited")
        return self.members.get(group_id, frozenset())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def groups() -> Groups:
    return Groups({"S1": frozenset({"U1", "U2"})})


async def test_answers_are_reused_until_they_are_older_than_the_ttl(
    groups: Groups, clock: Clock
) -> None:
    directory = CachedGroupDirectory(groups.fetch, ttl_seconds=60, clock=clock)

    assert await directory.is_member("U1", "S1")
    assert not await directory.is_member("U3", "S1")
    clock.now += 59
    assert await directory.is_member("U2", "S1")
    assert groups.fetches == ["S1"]

    clock.now += 1
    groups.members["S1"] = frozenset({"U3"})
    assert await directory.is_member("U3", "S1")
    assert groups.fetches == ["S1", "S1"]


async def test_concurrent_questions_share_one_fetch(groups: Groups, clock: Clock) -> None:
    directory = CachedGroupDirectory(groups.fetch, ttl_seconds=60, clock=clock)
    groups.gate = asyncio.Event()

    asked = [asyncio.create_task(directory.is_member(u, "S1")) for u in ("U1", "U2", "U9")]
    await asyncio.sleep(0)
    groups.gate.set()

    assert await asyncio.gather(*asked) == [True, True, False]
    assert groups.fetches == ["S1"]


async def test_a_failed_fetch_is_not_cached_and_is_raised_to_every_waiter(
    groups: Groups, clock: Clock
) -> None:
    directory = CachedGroupDirectory(groups.fetch, ttl_seconds=60, clock=clock)
    groups.fail = True
    groups.gate = asyncio.Event()

    asked = [asyncio.create_task(directory.is_member("U1", "S1")) for _ in range(2)]
    await asyncio.sleep(0)
    groups.gate.set()
    results = await asyncio.gather(*asked, return_exceptions=True)

    assert all(isinstance(r, TransientError) for r in results)
    groups.fail = False
    assert await directory.is_member("U1", "S1")
    assert groups.fetches == ["S1", "S1"]


async def test_a_zero_ttl_asks_every_time(groups: Groups, clock: Clock) -> None:
    directory = CachedGroupDirectory(groups.fetch, ttl_seconds=0, clock=clock)

    await directory.is_member("U1", "S1")
    await directory.is_member("U1", "S1")

    assert groups.fetches == ["S1", "S1"]


async def test_groups_listed_in_the_catalog_never_reach_slack(groups: Groups, clock: Clock) -> None:
    catalog = parse_catalog(
        yaml.safe_load(
            """
            usergroups: {S0STATIC01: [U0ALICE001]}
            commands:
              - name: echo
                description: Echo.
                argv: [echo, hi]
                environments: {staging: {allowed: {usergroups: [S0STATIC01]}}}
            """
        )
    )
    directory = CatalogFirstDirectory(
        catalog, CachedGroupDirectory(groups.fetch, ttl_seconds=60, clock=clock)
    )

    assert await directory.is_member("U0ALICE001", "S0STATIC01")
    assert not await directory.is_member("U1", "S0STATIC01")
    assert await directory.is_member("U1", "S1")
    assert groups.fetches == ["S1"]
