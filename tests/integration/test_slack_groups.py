"""Slack user group membership for authorization (gateway and batch), against the Slack
stand-in over HTTP."""

from __future__ import annotations

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from shared.catalog import DEMO_CATALOG, Catalog, load_catalog
from shared.errors import TransientError
from shared.slack.groups import slack_directory
from toilkit.standins.slack import FaultSpec, SlackStandin


def catalog_with_groups(groups: dict[str, list[str]]) -> Catalog:
    """The demo catalog with these groups of its own (and none of the demo's)."""
    return load_catalog(DEMO_CATALOG).model_copy(update={"usergroups": groups})


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_groups_come_from_the_catalog_first_then_from_slack_cached() -> None:
    ticks = Ticks()
    async with SlackStandin() as standin:
        slack = AsyncWebClient(token="xoxb-test", base_url=standin.api_url)
        directory = slack_directory(
            catalog_with_groups({"S0LOCAL001": ["U0CAROL003"]}), slack, ttl_seconds=60, clock=ticks
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
        directory = slack_directory(catalog_with_groups({}), slack, ttl_seconds=60)
        # An outage must not read as "not a member": the message is retried later.
        with pytest.raises(TransientError, match=r"usergroups\.users\.list"):
            await directory.is_member("U0ALICE001", "S0SRE00001")


async def test_without_slack_only_catalog_groups_count() -> None:
    directory = slack_directory(
        catalog_with_groups({"S0LOCAL001": ["U0CAROL003"]}), None, ttl_seconds=60
    )
    assert await directory.is_member("U0CAROL003", "S0LOCAL001")
    assert not await directory.is_member("U0ALICE001", "S0SRE00001")
