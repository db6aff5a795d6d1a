"""The embedded AWS: moto's server in this process, on 127.0.0.1:4566 by default.

4566 is LocalStack's port, so one ``AWS_ENDPOINT_URL=http://127.0.0.1:4566`` serves both.
"""

from __future__ import annotations

import errno
import logging
import os
import socket

import requests
from moto.server import ThreadedMotoServer

from shared.errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4566


class EmbeddedAws:
    """moto's ThreadedMotoServer with Step Functions execution switched on."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        self.host = host
        self.port = port
        self._server: ThreadedMotoServer | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        """Start the emulator and return its endpoint URL.

        Raises:
            ConfigError: the port is taken (another emulator or LocalStack runs there).
        """
        _check_port_free(self.host, self.port)
        # moto's Step Functions interpreter calls back into the server on this port.
        os.environ["MOTO_PORT"] = str(self.port)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()
        self.host, self.port = self._server.get_host_and_port()
        os.environ["MOTO_PORT"] = str(self.port)
        # Without this, Step Functions executions are accepted but never run.
        response = requests.post(
            f"{self.endpoint}/moto-api/config",
            json={"stepfunctions": {"execute_state_machine": True}},
            timeout=10,
        )
        response.raise_for_status()
        return self.endpoint

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


def _check_port_free(host: str, port: int) -> None:
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise ConfigError(
                f"{host}:{port} is already in use (is LocalStack or another `toilkit up` "
                f"running?). Use it with `toilkit up --aws-endpoint http://{host}:{port}`, "
                "or start the emulator elsewhere with `--aws-port 4567`."
            ) from None


def use_dummy_credentials() -> None:
    """Give botocore credentials an emulator accepts when none are configured."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
