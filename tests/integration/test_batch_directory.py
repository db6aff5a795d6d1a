"""Slack user group membership for authorization, against the Slack stand-in over HTTP."""

from __future__ import annotations

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from services.batch.directory import SlackGroupDirectory
from shared.catalog import StaticGroupDirectory
from shared.errors import TransientError
from toilkit.standins.slack import FaultSpec, SlackStandin


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_groups_come_from_the_catalog_first_then_from_slack_cached() -> None:
    ticks = Ticks()
    async with SlackStandin() as standin:
        slack = AsyncWebClient(token="xoxb-test", base_url=standin.api_url)
        directory = SlackGroupDirectory(
            StaticGroupDirectory({"S0LOCAL001": ["U0CAROL003"]}),
            slack,
            cache_seconds=60,
            clock=ticks,
        )
        assert await directory.is_member("U0ALICE001", "S0SRE00001")
        assert not await directory.is_member("U0CAROL003", "S0SRE00001")
        assert await directory.is_member("U0CAROL003", "S0LOCAL001")  # the catalog's own
        assert not await directory.is_member("U0ALICE001", "S0NOSUCH01")  # allows nobody
        assert len(standin.calls("usergroups.users.list")) == 2  # @sre once, then cached

        ticks.now += 61
        assert await directory.is_member("U0BOB00002", "S0SRE00001")
        assert len(standin.calls("usergroups.users.list")) == 3


async def test_slack_failing_is_a_transient_error() -> None:
    async with SlackStandin() as standin:
        standin.set_faults(FaultSpec(method="usergroups.users.list", server_error=1.0))
        slack = AsyncWebClient(token="xoxb-test", base_url=standin.api_url)
        directory = SlackGroupDirectory(StaticGroupDirectory({}), slack)
        # An outage must not read as "not a member": the message is retried later.
        with pytest.raises(TransientError, match=r"usergroups\.users\.list"):
            await directory.is_member("U0ALICE001", "S0SRE00001")


async def test_without_slack_only_catalog_groups_count() -> None:
    directory = SlackGroupDirectory(StaticGroupDirectory({"S0LOCAL001": ["U0CAROL003"]}), None)
    assert await directory.is_member("U0CAROL003", "S0LOCAL001")
    assert not await directory.is_member("U0ALICE001", "S0SRE00001")
