"""A stand-in for the AWS Parameters and Secrets Lambda Extension, for tests and benchmarks.

In Lambda the extension is a layer that serves Parameter Store's ``GetParameter`` over HTTP
on ``localhost:2773`` to the function beside it. :class:`ParametersExtensionStandin` answers
the same request (``GET /systemsmanager/parameters/get?name=...&withDecryption=true``, the
session token in ``X-Aws-Parameters-Secrets-Token``) from an emulator's SSM (moto's or
LocalStack's, at ``endpoint_url``), with GetParameter's JSON, so
:mod:`shared.ssm_extension` runs against it unchanged. Like the extension it caches each
value for ``ttl`` seconds (0: never), and it can be told to fail. It calls the emulator's
``GetParameter`` with a plain JSON-protocol request (emulators do not check signatures),
not through botocore: the real extension is a native binary whose own cost is small, and a
stand-in that spent milliseconds of Python on each request would weigh on the cold starts
measured with it.

Answers: 200 with ``{"Parameter": {...}}``; 403 for a missing or wrong token; 404 for a
parameter SSM does not have; 400 for a request without ``name``; 500 when SSM cannot be
read; and the status given to :meth:`fail_next` for the next calls.

HTTP endpoints besides the API::

    GET  /_standin/calls    every recorded call: name, status
    POST /_standin/faults   {"status": 503, "count": 1}: fail the next calls so

Run it alone with ``python -m toilkit.standins.parameters_extension --port 2773
--token TOKEN --endpoint-url URL``.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from shared.ssm_extension import PATH, TOKEN_HEADER
from toilkit.standins.server import StandinServer, run_in_foreground, serve_until_cancelled


@dataclass(frozen=True)
class ExtensionCall:
    """One request the stand-in answered."""

    name: str
    status: int


class ParametersExtensionStandin(StandinServer):
    """The extension stand-in (``async with ParametersExtensionStandin(token, ...) as ext:``).

    Args:
        token: the session token requests must carry.
        endpoint_url: the emulator's endpoint (SSM's JSON protocol).
        region: SSM's region (named in the requests' credential scope).
        ttl: seconds a value is served from the cache (the extension's
            ``SSM_PARAMETER_STORE_TTL``; 0 reads SSM every time).
    """

    name = "Parameters and Secrets extension stand-in"

    def __init__(
        self,
        token: str,
        *,
        endpoint_url: str,
        region: str = "us-east-1",
        ttl: float = 0,
    ) -> None:
        super().__init__()
        self.token = token
        self.endpoint_url = endpoint_url
        self.region = region
        self.ttl = ttl
        self.calls: list[ExtensionCall] = []
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._faults: list[int] = []
        self._http: aiohttp.ClientSession | None = None

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get(PATH, self._handle_get)
        router.add_get(PATH + "/", self._handle_get)
        router.add_get("/_standin/calls", self._handle_calls)
        router.add_post("/_standin/faults", self._handle_faults)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Open the HTTP session to SSM, then serve: the extension starts in the function's
        init, beside the runtime, so its own start-up is not on a request's path."""
        self._http = aiohttp.ClientSession()
        return await super().start(host, port)

    async def stop(self) -> None:
        await super().stop()
        if self._http is not None:
            await self._http.close()
            self._http = None

    @property
    def port(self) -> int:
        """The port to give the function as ``PARAMETERS_SECRETS_EXTENSION_HTTP_PORT``."""
        return int(self.url.rsplit(":", 1)[1])

    def fail_next(self, status: int, count: int = 1) -> None:
        """Answer the next ``count`` requests with ``status`` (after the token check)."""
        self._faults.extend([status] * count)

    async def _handle_get(self, request: web.Request) -> web.Response:
        name = request.query.get("name", "")
        status, body = await self._answer(request, name)
        self.calls.append(ExtensionCall(name=name, status=status))
        if isinstance(body, str):
            return web.Response(status=status, text=body)
        return web.json_response(body, status=status)

    async def _answer(self, request: web.Request, name: str) -> tuple[int, dict[str, Any] | str]:
        if request.headers.get(TOKEN_HEADER) != self.token:
            return 403, "missing or invalid X-Aws-Parameters-Secrets-Token"
        if self._faults:
            return self._faults.pop(0), "injected fault"
        if not name:
            return 400, "name is required"
        cached = self._cache.get(name)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return 200, cached[1]
        decrypt = request.query.get("withDecryption", "false").lower() == "true"
        try:
            status, answer = await self._get_parameter(name, decrypt)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return 500, f"cannot read SSM: {exc}"
        if status != 200:
            code = str(answer.get("__type", "")).rsplit("#", 1)[-1]
            if code == "ParameterNotFound":
                return 404, f"ParameterNotFound: {name}"
            return 500, f"{code or status}: {answer.get('message', '')}"
        body = {"Parameter": answer["Parameter"], "ResultMetadata": {}}
        self._cache[name] = (time.monotonic(), body)
        return 200, body

    async def _get_parameter(self, name: str, decrypt: bool) -> tuple[int, dict[str, Any]]:
        """SSM's ``GetParameter`` on the emulator: its status and JSON answer."""
        if self._http is None:
            raise RuntimeError(f"the {self.name} is not started")
        day = time.strftime("%Y%m%d", time.gmtime())
        headers = {
            "X-Amz-Target": "AmazonSSM.GetParameter",
            "Content-Type": "application/x-amz-json-1.1",
            # Unchecked by emulators, which read the account and region from it.
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential=testing/{day}/{self.region}/ssm/aws4_request, "
                "SignedHeaders=host, Signature=0"
            ),
        }
        payload = {"Name": name, "WithDecryption": decrypt}
        async with self._http.post(self.endpoint_url, json=payload, headers=headers) as response:
            answer = await response.json(content_type=None)
            return response.status, answer if isinstance(answer, dict) else {}

    async def _handle_calls(self, request: web.Request) -> web.Response:
        return web.json_response([{"name": c.name, "status": c.status} for c in self.calls])

    async def _handle_faults(self, request: web.Request) -> web.Response:
        raw = await request.json()
        self.fail_next(int(raw["status"]), int(raw.get("count", 1)))
        return web.json_response({"ok": True})


# ------------------------------------------------------------------- standalone


async def serve_forever(host: str, port: int, token: str, endpoint_url: str, ttl: float) -> None:
    """Run an extension stand-in until cancelled (Ctrl-C)."""
    standin = ParametersExtensionStandin(token, endpoint_url=endpoint_url, ttl=ttl)
    await serve_until_cancelled(
        standin,
        host,
        port,
        lambda: (
            f"Parameters and Secrets extension stand-in: "
            f"PARAMETERS_SECRETS_EXTENSION_HTTP_PORT={standin.port}"
        ),
    )


def main(argv: list[str] | None = None) -> None:
    """``python -m toilkit.standins.parameters_extension --token T [--port P] ...``."""
    parser = argparse.ArgumentParser(
        description="Run toilkit's AWS Parameters and Secrets Lambda Extension stand-in."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2773)
    parser.add_argument("--token", required=True, help="the session token requests must carry")
    parser.add_argument("--endpoint-url", required=True, help="the emulator's endpoint")
    parser.add_argument("--ttl", type=float, default=0, help="seconds a value is cached")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    run_in_foreground(
        serve_forever(options.host, options.port, options.token, options.endpoint_url, options.ttl)
    )


if __name__ == "__main__":
    main()
