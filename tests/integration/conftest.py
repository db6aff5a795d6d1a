"""Fixtures several integration modules share (tests/conftest.py has AWS and the topology)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.aws import AwsClients
from shared.runtime import Runtime
from shared.topology import BootstrapReport, Names
from tests.integration.batch_harness import BatchHarness, bootstrap_once, make_harness
from tests.support import runtime_over


@pytest.fixture(scope="module")
async def shared_topology(moto_endpoint: str) -> tuple[Names, BootstrapReport]:
    """One topology for the module: bootstrapping takes seconds, and every test using it
    has its own run ids, so they do not see each other's runs."""
    return await bootstrap_once(moto_endpoint)


@pytest.fixture
async def batch(
    aws: AwsClients, shared_topology: tuple[Names, BootstrapReport], tmp_path: Path
) -> BatchHarness:
    """The batch service over the module's topology, with a catalog in ``tmp_path``."""
    names, topology = shared_topology
    return await make_harness(aws, names, topology, tmp_path)


@pytest.fixture
def catalog_path(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """The test module's ``CATALOG`` (a catalog's YAML), written to ``tmp_path``."""
    path = tmp_path / "catalog.yaml"
    path.write_text(request.module.CATALOG)
    return path


@pytest.fixture
def runtime(aws: AwsClients, names: Names, topology: BootstrapReport) -> Runtime:
    """What a service runs on (AWS clients, names, topology, publisher) over the test's topology."""
    return runtime_over(aws, names, topology)
