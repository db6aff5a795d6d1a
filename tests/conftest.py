"""Fixtures shared by every test: a real moto server over HTTP and real AWS clients.

The moto server is started once per test session on a free loopback port; each test
gets its own resource-name prefix, so tests never see each other's queues or tables.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import requests
from moto.server import ThreadedMotoServer

from shared.aws import AwsClients
from shared.settings import AwsSettings
from shared.topology import BootstrapReport, Names, bootstrap

# Credentials the emulator accepts; set before any botocore client exists.
logging.getLogger("werkzeug").setLevel(logging.WARNING)
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server on 127.0.0.1 and a free port, with Step Functions execution on."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ["MOTO_PORT"] = str(port)
    requests.post(
        f"{endpoint}/moto-api/config",
        json={"stepfunctions": {"execute_state_machine": True}},
        timeout=10,
    ).raise_for_status()
    yield endpoint
    server.stop()


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
