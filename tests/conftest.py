"""Fixtures shared by every test: a real moto server over HTTP and real AWS clients.

The moto server is started once per test session on a free loopback port; each test
gets its own resource-name prefix, so tests never see each other's queues or tables. It is
the server ``toilkit up`` embeds (:class:`toilkit.embedded.EmbeddedAws`): DynamoDB requests
are served one at a time, so conditional writes are atomic as they are in DynamoDB (moto's
own threaded server lets two concurrent ``attribute_not_exists`` puts both succeed).

Set ``TOILKIT_TEST_AWS_ENDPOINT`` (``scripts/localstack-test.sh`` does) to run the same
tests against a running LocalStack instead: ``moto_endpoint`` then answers LocalStack's
URL, and DynamoDB alone stays on the moto server (``AWS_ENDPOINT_URL_DYNAMODB``), because
LocalStack's DynamoDB downloads DynamoDB Local from the internet on first use. Tests marked
``moto_only`` are skipped there; ``MOTO_ONLY_MODULES`` marks whole modules.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shared.aws import AwsClients
from shared.publishing import Publisher
from shared.settings import AwsSettings
from shared.topology import BootstrapReport, Names, bootstrap
from tests.browser import chromium_executable
from toilkit.embedded import EmbeddedAws
from toilkit.standins.slack import SlackStandin

# Credentials the emulator accepts; set before any botocore client exists.
logging.getLogger("werkzeug").setLevel(logging.WARNING)
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

#: A running LocalStack to test against instead of moto (None: moto, the default).
LOCALSTACK_ENDPOINT = os.environ.get("TOILKIT_TEST_AWS_ENDPOINT") or None

#: Modules (relative to tests/) whose AWS tests depend on something only moto does, and why.
MOTO_ONLY_MODULES: dict[str, str] = {
    "integration/test_batch_stepfunctions.py": "runs builds in CodeBuild, which LocalStack's "
    "free edition does not emulate (501), through moto's Step Functions interpreter",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "moto_only(reason): needs a moto-only feature; skipped when TOILKIT_TEST_AWS_ENDPOINT "
        "points the suite at LocalStack",
    )
    if os.environ.get("CI") and chromium_executable() is None:
        # As with the infra validators: skipped on a laptop, a failure in CI.
        raise pytest.UsageError("CI runs the browser tests: no chromium on PATH (make tools)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if LOCALSTACK_ENDPOINT is None:
        return
    tests_root = Path(__file__).parent
    for item in items:
        if "moto_endpoint" not in getattr(item, "fixturenames", ()):
            continue  # touches no AWS endpoint: runs the same either way
        reason = _moto_only_reason(item, tests_root)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=f"moto only under LocalStack: {reason}"))


def _moto_only_reason(item: pytest.Item, tests_root: Path) -> str | None:
    marker = item.get_closest_marker("moto_only")
    if marker is not None:
        return str(marker.kwargs.get("reason") or (marker.args[0] if marker.args else "marked"))
    path = Path(str(item.path))
    module_path = path.relative_to(tests_root).as_posix() if path.is_relative_to(tests_root) else ""
    if module_path in MOTO_ONLY_MODULES:
        return MOTO_ONLY_MODULES[module_path]
    if "moto_endpoint" in vars(getattr(item, "module", None) or object()):
        # The module starts its own emulator, so it would test moto here, not LocalStack.
        return "the module runs its own moto server"
    return None


@pytest.fixture(scope="session")
def embedded_aws() -> Iterator[EmbeddedAws]:
    """The session's moto server on 127.0.0.1 and a free port, with Step Functions
    execution on and DynamoDB requests served one at a time (``moto_endpoint`` is its URL;
    :meth:`EmbeddedAws.route_service` sends a service's calls to a stand-in)."""
    emulator = EmbeddedAws(port=0)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def moto_endpoint(embedded_aws: EmbeddedAws) -> Iterator[str]:
    """The URL of the session's moto server.

    Under ``TOILKIT_TEST_AWS_ENDPOINT`` this answers the LocalStack URL instead, and the
    moto server serves DynamoDB only (for every client in this process and its children).
    """
    if LOCALSTACK_ENDPOINT is None:
        yield embedded_aws.endpoint
        return
    # Both AwsSettings and botocore read this variable, and subprocesses inherit it.
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = embedded_aws.endpoint
    try:
        yield LOCALSTACK_ENDPOINT
    finally:
        del os.environ["AWS_ENDPOINT_URL_DYNAMODB"]


@pytest.fixture
def aws_settings(moto_endpoint: str) -> AwsSettings:
    return AwsSettings(AWS_ENDPOINT_URL=moto_endpoint, AWS_REGION="us-east-1")


@pytest.fixture
async def aws(aws_settings: AwsSettings) -> AsyncIterator[AwsClients]:
    async with AwsClients(aws_settings) as clients:
        yield clients


@pytest.fixture
def names() -> Names:
    """Resource names unique to one test."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    return Names(prefix=prefix, bucket=f"{prefix}-artifacts")


@pytest.fixture
async def topology(aws: AwsClients, names: Names) -> BootstrapReport:
    return await bootstrap(aws, names)


@pytest.fixture
def publisher(aws: AwsClients, names: Names, topology: BootstrapReport) -> Publisher:
    """The runtime's publisher, onto the test's topic."""
    return Publisher(aws.sns, aws.s3, topology.topic_arn, names.bucket)


@pytest.fixture
async def standin() -> AsyncIterator[SlackStandin]:
    """The Slack stand-in, served on a free loopback port for one test."""
    async with SlackStandin() as running:
        yield running
