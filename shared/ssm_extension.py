"""SSM parameters through the AWS Parameters and Secrets Lambda Extension, without an SDK.

The extension is a layer that runs beside the function in its execution environment and
serves Parameter Store's ``GetParameter`` on ``localhost``: ``GET
/systemsmanager/parameters/get?name=<name>&withDecryption=true`` with the function's session
token in the ``X-Aws-Parameters-Secrets-Token`` header, answered with GetParameter's JSON
(``{"Parameter": {"Name": ..., "Value": ...}}``). A cold gateway sandbox reads its secrets
this way so that its first request needs neither botocore nor an SSM client (their imports,
the SSM model, a TLS context: some 100 ms of CPU), only the standard library's
``http.client``.

AWS documents two limits that decide where this is used (``toilkit/aws_lambda.py``):

* the extension answers only in the INVOKE phase, never during the function's init, so an
  on-demand sandbox reads its secrets on the first request (a SnapStart or provisioned
  init, which is off the request path, reads them from SSM with the SDK);
* it caches each parameter for up to ``SSM_PARAMETER_STORE_TTL`` seconds (300 by default)
  and has no way to bypass that cache per request, so a read that must see a value put a
  moment ago (after a signature did not match) goes to SSM itself.

An extension that fails or is not there (no layer) is logged and SSM answers that first read
instead (:class:`shared.secrets.SsmSecrets`): a slower first answer, not a broken function. A
parameter that does not exist is an error either way.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.errors import ConfigError

#: The extension's port unless ``PARAMETERS_SECRETS_EXTENSION_HTTP_PORT`` says another.
DEFAULT_PORT = 2773
#: The header that proves a request comes from inside the execution environment.
TOKEN_HEADER = "X-Aws-Parameters-Secrets-Token"
PATH = "/systemsmanager/parameters/get"


class ParameterMissing(ConfigError):
    """The extension says the parameter does not exist (or the function may not read it)."""


@dataclass(frozen=True)
class ParametersExtension:
    """The extension's HTTP API on ``host:port``.

    Attributes:
        port: ``PARAMETERS_SECRETS_EXTENSION_HTTP_PORT`` (2773 by default).
        token: the function's session token (``AWS_SESSION_TOKEN``).
        host: where the extension listens (``localhost`` in Lambda; tests use 127.0.0.1).
        timeout: seconds for one request.
    """

    port: int
    token: str
    host: str = "localhost"
    timeout: float = 3.0

    async def get_parameters(self, names: Sequence[str]) -> dict[str, str]:
        """The decrypted value of each parameter, by name (one request each, side by side,
        each in a thread: the extension asks SSM for what its cache does not hold).

        Raises:
            ParameterMissing: a parameter does not exist (the message names them).
            ConfigError: the extension refused the token, failed, or cannot be reached.
        """
        loop = asyncio.get_running_loop()
        # Submitted now, not on the loop's next turn: the caller may go on with other work
        # while the threads wait for the extension.
        pending = [loop.run_in_executor(None, self._get_one, name) for name in names]
        got = await asyncio.gather(*pending, return_exceptions=True)
        missing = [
            name
            for name, value in zip(names, got, strict=True)
            if isinstance(value, ParameterMissing)
        ]
        if missing:
            raise ParameterMissing(f"SSM parameter(s) not found: {', '.join(missing)}")
        for value in got:
            if isinstance(value, BaseException):
                raise value
        return {name: str(value) for name, value in zip(names, got, strict=True)}

    def _get_one(self, name: str) -> str:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        connection._create_connection = _connect_by_ascii_name  # type: ignore[attr-defined]
        try:
            return self._get(connection, name)
        except OSError as exc:
            raise ConfigError(
                f"the Parameters and Secrets extension on {self.host}:{self.port} cannot be "
                f"reached ({exc}): is its layer on the function?"
            ) from exc
        finally:
            connection.close()

    def _get(self, connection: http.client.HTTPConnection, name: str) -> str:
        query = urllib.parse.urlencode({"name": name, "withDecryption": "true"})
        connection.request("GET", f"{PATH}?{query}", headers={TOKEN_HEADER: self.token})
        response = connection.getresponse()
        body = response.read().decode("utf-8", errors="replace")
        status = response.status
        if status == 200:
            try:
                return str(json.loads(body)["Parameter"]["Value"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(
                    f"the Parameters and Secrets extension answered {name} with no value"
                ) from exc
        if status == 404 or (status == 400 and "ParameterNotFound" in body):
            raise ParameterMissing(name)
        detail = body.strip()[:200]
        if status in (401, 403):
            raise ConfigError(
                f"the Parameters and Secrets extension refused the session token ({status}) "
                f"reading {name}: {detail}"
            )
        raise ConfigError(
            f"the Parameters and Secrets extension failed ({status}) reading {name}: {detail}"
        )


def _connect_by_ascii_name(
    address: tuple[str, int], timeout: float | None, source_address: Any = None
) -> socket.socket:
    """``socket.create_connection`` with the host name as bytes: given a str, getaddrinfo
    imports the IDNA codec (``encodings.idna``, stringprep, unicodedata: ~3 ms of a cold
    start) to encode ``localhost``."""
    host, port = address
    return socket.create_connection((host.encode("ascii"), port), timeout, source_address)  # type: ignore[arg-type]
