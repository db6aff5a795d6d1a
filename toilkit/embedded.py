"""The embedded AWS: moto's server in this process, on 127.0.0.1:4566 by default.

4566 is LocalStack's port, so one ``AWS_ENDPOINT_URL=http://127.0.0.1:4566`` serves both.

moto serves each request on its own thread, and its DynamoDB is not safe for that: it
checks a write's condition and then writes without a lock (two concurrent
``attribute_not_exists`` puts can both succeed, which breaks the idempotency every
handler relies on), and ``TransactWriteItems`` copies a table while other threads
change it (``RuntimeError: dictionary keys changed during iteration``, answered as a
500). Real DynamoDB makes each request atomic; :class:`OneDynamoDBRequestAtATime` gives
the emulator that property back, as four services in one process need.

:meth:`EmbeddedAws.route_service` sends one service's requests elsewhere (a stand-in for a
service moto does not really run, such as CodeBuild). It works for every caller: clients
built with the emulator's endpoint, and moto's own Step Functions interpreter, which calls
back into the emulator (``MOTO_PORT``) and cannot be given another endpoint per service.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

import requests
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.middleware.http_proxy import ProxyMiddleware
from werkzeug.serving import make_server

from shared.errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4566


WsgiApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


class OneDynamoDBRequestAtATime:
    """WSGI middleware that lets one DynamoDB request through at a time (others run freely).

    Args:
        app: moto's WSGI application.
    """

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with self._lock:
                # Consumed under the lock: the response is built while it is held.
                return list(self._app(environ, start_response))
        return self._app(environ, start_response)


#: The service a SigV4 request was signed for: ``Credential=AKID/date/region/<service>/...``.
_SIGNED_SERVICE = re.compile(r"Credential=[^/,]+/[^/,]+/[^/,]+/([^/,]+)/")


class ServiceRoutes:
    """WSGI middleware that forwards the requests signed for a routed service to another
    endpoint (werkzeug's proxy does the forwarding); everything else goes to ``app``.

    Args:
        app: moto's WSGI application.
    """

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self._proxy = ProxyMiddleware(app, {})
        self.routes: dict[str, str] = {}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        match = _SIGNED_SERVICE.search(environ.get("HTTP_AUTHORIZATION", ""))
        target = self.routes.get(match.group(1)) if match else None
        if target is None:
            return self._app(environ, start_response)
        options = {"target": target, "remove_prefix": False, "host": "<auto>", "headers": {}}
        forward = self._proxy.proxy_to({**options, "ssl_context": None}, environ["PATH_INFO"], "")
        return forward(environ, start_response)


class AtomicDynamoDBMotoServer(ThreadedMotoServer):
    """moto's threaded server with :class:`OneDynamoDBRequestAtATime` in front, and
    :class:`ServiceRoutes` in front of that."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.routes: dict[str, str] = {}

    def _server_entry(self) -> None:
        app = ServiceRoutes(
            OneDynamoDBRequestAtATime(DomainDispatcherApplication(create_backend_app))
        )
        app.routes = self.routes
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


class EmbeddedAws:
    """moto's threaded server, DynamoDB made atomic, Step Functions execution switched on."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        self.host = host
        self.port = port
        self._server: AtomicDynamoDBMotoServer | None = None

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
        self._server = AtomicDynamoDBMotoServer(ip_address=self.host, port=self.port, verbose=False)
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

    def route_service(self, service: str, endpoint: str | None) -> None:
        """Send the requests signed for ``service`` (e.g. ``codebuild``) to ``endpoint``
        instead of moto, from every caller; None sends them to moto again."""
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        if endpoint is None:
            self._server.routes.pop(service, None)
        else:
            self._server.routes[service] = endpoint

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
