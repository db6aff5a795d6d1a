"""The HTTP door: what reaches Bolt has been received whole, signed by Slack, recently,
and has the shape of a request the gateway serves.

The gateway is the only toilkit part that faces the internet, so everything else is
answered here, quickly, with a 4xx and never a 5xx:

=========================================  ======  =========================================
request                                    status  why
=========================================  ======  =========================================
body above ``max_body_bytes``              413     refused before it is read whole
body cut short or not sent in time         400     never waits on a slow sender for long
missing/duplicate/malformed signature      401     ``X-Slack-Signature`` is ``v0=<64 hex>``
timestamp not within 5 minutes of now      401     Slack's replay window
signature that does not match              401     HMAC-SHA256 of ``v0:<ts>:<raw body>``
not UTF-8                                  400     checked after the signature: only Slack's
                                                   own requests are looked into
not a request the gateway serves           400     see :mod:`services.gateway.payloads`
=========================================  ======  =========================================

The signature is computed over the raw bytes, exactly as Slack computes it, before any
decoding. The door is the only way into the app over HTTP, so Bolt does not check it again.

A signature that does not match may mean the signing secret was set or rotated since it was
read (the Lambda function reads it from SSM): with a ``refresh_secret`` the door asks for
the secret again (rate-limited by whoever refreshes) and checks the request once more, against
the new secret only. A request is never accepted on a secret the door has replaced.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiohttp import ClientError, web
from aiohttp.http_exceptions import HttpProcessingError
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from services.gateway.payloads import BadPayload, parse_slack_body
from shared.observability import log_context
from shared.slack.signing import (
    SIGNATURE_HEADER,
    SIGNATURE_MISMATCH,
    TIMESTAMP_HEADER,
    signature_problem,
)

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"


class BodyTooLarge(Exception):
    pass


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, refusing more than ``limit`` bytes as soon as that is known."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _refuse(status: int, reason: str) -> web.Response:
    log.info("refused a Slack request with %d: %s", status, reason)
    return web.Response(status=status, text=reason)


def _refusal(status: int, reason: str) -> BoltResponse:
    log.info("refused a Slack request with %d: %s", status, reason)
    return BoltResponse(status=status, body=reason)


class SlackDoor:
    """The aiohttp handlers in front of the Bolt app.

    Args:
        app: the Bolt app requests are dispatched to.
        signing_secret: the app's signing secret.
        max_body_bytes: the largest body accepted.
        body_timeout: seconds a sender has to deliver the whole body.
        clock: epoch seconds (tests pass their own to check the window).
        refresh_secret: asked after a signature mismatch to read the signing secret again;
            it sets :attr:`signing_secret` when the secret changed.
    """

    def __init__(
        self,
        app: AsyncApp,
        *,
        signing_secret: str,
        max_body_bytes: int,
        body_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
        refresh_secret: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.app = app
        self._secret = signing_secret
        self.refresh_secret = refresh_secret
        self._max_body = max_body_bytes
        self._body_timeout = body_timeout
        self._clock = clock

    @property
    def signing_secret(self) -> str:
        """The secret requests must be signed with (for a client that plays Slack)."""
        return self._secret

    @signing_secret.setter
    def signing_secret(self, secret: str) -> None:
        if not secret:
            raise ValueError("an empty signing secret would accept any HMAC key")
        self._secret = secret

    def web_app(self, *, serve_events: bool = True) -> web.Application:
        """The aiohttp application: ``POST /slack/events`` and ``GET /healthz``."""
        application = web.Application(client_max_size=self._max_body)
        if serve_events:
            application.router.add_post(EVENTS_PATH, self.slack_events)
        application.router.add_get(HEALTH_PATH, self.health)
        return application

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def slack_events(self, request: web.Request) -> web.StreamResponse:
        try:
            async with asyncio.timeout(self._body_timeout):
                raw = await read_body(request, self._max_body)
        except BodyTooLarge:
            return _refuse(413, f"the body is larger than {self._max_body} bytes")
        except TimeoutError:
            return _refuse(400, "the body did not arrive in time")
        except (HttpProcessingError, ClientError, ConnectionError, OSError, ValueError) as exc:
            # aiohttp reports a body cut short (fewer bytes than Content-Length, a broken
            # chunked encoding) with its payload errors.
            return _refuse(400, f"the body could not be read: {type(exc).__name__}")
        response = await self.dispatch(
            raw,
            {name: request.headers.getall(name) for name in request.headers},
            request.query_string,
        )
        return await to_aiohttp_response(response)

    async def _signature_problem(self, raw: bytes, by_name: Mapping[str, list[str]]) -> str | None:
        def check(secret: str) -> str | None:
            return signature_problem(
                secret,
                raw,
                by_name.get(TIMESTAMP_HEADER.lower(), []),
                by_name.get(SIGNATURE_HEADER.lower(), []),
                self._clock(),
            )

        used = self._secret
        problem = check(used)
        if problem == SIGNATURE_MISMATCH and self.refresh_secret is not None:
            await self.refresh_secret()
            if self._secret != used:
                problem = check(self._secret)
        return problem

    async def dispatch(
        self, raw: bytes, headers: Mapping[str, Sequence[str]], query: str
    ) -> BoltResponse:
        """Check a whole request (signature, encoding, shape) and hand it to Bolt.

        The one path every way of receiving Slack's HTTP requests takes (this server, a
        Lambda function URL), so each answers a request the same way.

        Args:
            raw: the body, as received.
            headers: each header's values, by name (any case).
            query: the query string.
        """
        # Its lines, and those of the work it leaves for after the ack, say "gateway".
        with log_context(service="gateway"):
            return await self._dispatch(raw, headers, query)

    async def _dispatch(
        self, raw: bytes, headers: Mapping[str, Sequence[str]], query: str
    ) -> BoltResponse:
        by_name = {name.lower(): list(values) for name, values in headers.items()}
        problem = await self._signature_problem(raw, by_name)
        if problem:
            return _refusal(401, problem)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _refusal(400, "the body is not UTF-8")
        content_type = (by_name.get("content-type") or [""])[0].split(";")[0].strip().lower()
        try:
            parsed = parse_slack_body(text, content_type or None)
        except BadPayload as exc:
            return _refusal(400, str(exc))
        # Built empty, then given our parse: Bolt's own would read the body a second time
        # (a millisecond for a modal submission) and can misread it (see ParsedBody).
        bolt_headers: dict[str, str | Sequence[str]] = dict(by_name)
        bolt_request = AsyncBoltRequest(body="", query=query, headers=bolt_headers)
        bolt_request.raw_body = text
        bolt_request.body = parsed.body
        bolt_request.content_type = content_type
        bolt_request.context = build_async_context(AsyncBoltContext(), parsed.body)
        response = await self.app.async_dispatch(bolt_request)
        if response.status >= 500:
            log.error(
                "the Bolt app answered %d to a %s", response.status, type(parsed.request).__name__
            )
        return response
