"""What the benchmarks share: a free loopback port, and fake AWS credentials for moto.

Imported after the benchmark put the repository root on ``sys.path`` (each script is run
as ``python bench/<name>.py``).
"""

from __future__ import annotations

import os
import socket


def use_fake_aws_credentials() -> None:
    """moto accepts any credentials; boto3 only needs some to sign with."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
