"""An AWS endpoint that accepts connections and never answers: the call times out, and the
wait is logged with the endpoint, attempt by attempt (not 33 silent seconds)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from tenacity import AsyncRetrying, stop_after_attempt

from shared.aws import AwsClients, call_aws
from shared.errors import TransientError
from shared.settings import AwsSettings


@pytest.fixture
async def black_hole() -> AsyncIterator[str]:
    """A TCP server on a free loopback port that accepts and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_black_holed_call_times_out_and_logs_endpoint_and_wait(
    black_hole: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = AwsSettings(
        AWS_ENDPOINT_URL=black_hole, TOILKIT_AWS_READ_TIMEOUT=0.5, TOILKIT_AWS_CONNECT_TIMEOUT=1
    )
    caplog.set_level(logging.WARNING, logger="shared.aws")
    async with AwsClients(settings) as aws:
        with pytest.raises(TransientError, match="cannot reach the endpoint"):
            await call_aws(
                "sqs.list_queues",
                aws.sqs.list_queues,
                retry=AsyncRetrying(stop=stop_after_attempt(1), reraise=True),
            )

    stalls = [r.getMessage() for r in caplog.records if "failed after waiting" in r.getMessage()]
    assert stalls, "no stalled attempt was logged"
    assert all(black_hole in line and "ReadTimeoutError" in line for line in stalls)
    assert "ListQueues" in stalls[0]
