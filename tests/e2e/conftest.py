"""Fixtures of the batch end-to-end modules (``tests/e2e/test_batch_*``).

``stack`` is the stack of :mod:`tests.e2e.batch_stack` over the demo catalog, one per
module; a module whose flows need another catalog or other settings defines its own
``stack``, and the people below then use that one. (:mod:`tests.e2e.test_drift_flow` has
a ``slack`` of its own: the stand-in, not a signed client.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.e2e.batch_stack import (
    ALICE,
    BOB,
    CAROL,
    OPS_CHANNEL,
    SECRET,
    Person,
    Stack,
    flow_catalog,
    open_stack,
)
from toilkit.standins.slack.app_requests import SignedSlack


@pytest.fixture(scope="module")
async def stack(
    moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> AsyncIterator[Stack]:
    """gateway + batch + notifier on one Runtime, configured as ``toilkit up`` does."""
    folder = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    async with open_stack(moto_endpoint, folder, flow_catalog(folder / "orders.sqlite")) as running:
        yield running


@pytest.fixture
async def slack(stack: Stack) -> AsyncIterator[SignedSlack]:
    """Slack's side towards the gateway: signed slash commands and interactions."""
    side = SignedSlack(stack.gateway.events_url, SECRET, stack.standin, OPS_CHANNEL)
    yield side
    await side.close()


@pytest.fixture
def alice(stack: Stack, slack: SignedSlack) -> Person:
    """In @sre: may run, may approve."""
    return Person(ALICE, stack, slack)


@pytest.fixture
def bob(stack: Stack, slack: SignedSlack) -> Person:
    """In @sre."""
    return Person(BOB, stack, slack)


@pytest.fixture
def carol(stack: Stack, slack: SignedSlack) -> Person:
    """May run, not an approver."""
    return Person(CAROL, stack, slack)
