"""The gateway as an AWS Lambda function behind a function URL (payload format 2.0).

Built by :func:`build_function` from the same :func:`~services.gateway.service.build_gateway`
as ``toilkit serve gateway``; ``toilkit.aws_lambda.gateway_handler`` hosts it. Requests go
through the gateway's own door (:meth:`SlackDoor.dispatch`), so they are answered as its
HTTP server answers them: 413 for a body above ``max_body_bytes``, 401 for a missing, stale
or wrong Slack signature, 400 for a body that is not UTF-8 or not a request the gateway
serves; then Bolt.

Lambda freezes a sandbox once the function returns, so the work the gateway does after its
ack (publishing, opening modals) finishes before the response leaves; docs/deploy.md
explains why Slack's 3 seconds still hold.

Secrets come from SSM (``signing_secret``, ``bot_token``) and are read again, without
waiting for the sandbox to be recycled: at once when a request's signature does not match
(at most once every few seconds, see :class:`~shared.secrets.SsmSecrets`), and before a
request once the copy is stale (older than its maximum age, 5 minutes by default: a new bot
token shows itself in no signature).
"""

from __future__ import annotations

import asyncio
import logging

from services.gateway.service import GatewayService, build_gateway
from services.gateway.settings import GatewaySettings
from services.gateway.transport import EVENTS_PATH, HEALTH_PATH
from shared.catalog import load_catalog
from shared.errors import ConfigError
from shared.lambda_function import FunctionContext, HttpRequest, HttpResponse
from shared.secrets import BOT_TOKEN, SIGNING_SECRET, SsmSecrets
from shared.settings import load_settings

log = logging.getLogger(__name__)

#: The SSM secrets the gateway reads, by the settings field each one fills.
SECRET_FIELDS = {"slack_bot_token": BOT_TOKEN, "slack_signing_secret": SIGNING_SECRET}


class GatewayFunction:
    """The gateway's Bolt app behind a Lambda function URL.

    Args:
        service: the gateway, built once (its HTTP server is never started here).
        secrets: the SSM secrets it was built with, read again when they may have changed.
    """

    def __init__(self, service: GatewayService, secrets: SsmSecrets) -> None:
        self.service = service
        self.secrets = secrets
        if secrets.parameters:
            service.door.refresh_secret = self.refresh_secrets

    async def handle_http(self, request: HttpRequest, *, time_left: float) -> HttpResponse:
        """Answer one function URL request.

        Args:
            request: the request, decoded from the function URL event.
            time_left: seconds the after-ack work may take before the reply goes out
                (what the invocation has left, minus a margin to answer in).
        """
        if request.method == "GET" and request.path == HEALTH_PATH:
            return HttpResponse(200, '{"ok": true}', {"Content-Type": "application/json"})
        if request.method != "POST" or request.path != EVENTS_PATH:
            return HttpResponse(404, f"{request.method} {request.path} is not served here")
        limit = self.service.settings.max_body_bytes
        if len(request.body) > limit:
            return HttpResponse(413, f"the body is larger than {limit} bytes")
        if self.secrets.stale():
            await self.refresh_secrets()
        response = await self.service.door.dispatch(request.body, request.headers, request.query)
        # The sandbox freezes once this returns: what the listeners started after the
        # ack (publishing, views.open, replies) ends first, within the function's time.
        try:
            async with asyncio.timeout(time_left):
                await self.service.after_ack.join()
        except TimeoutError:
            log.warning("after-ack work still running after %.1fs; cancelled", time_left)
            await self.service.after_ack.drain(0)
        headers = {name: ",".join(values) for name, values in response.headers.items()}
        return HttpResponse(response.status, response.body, headers)

    async def refresh_secrets(self) -> None:
        """Read the secrets again (rate-limited) and use what changed."""
        changed = await self.secrets.refresh()
        self._use_secrets(changed)

    async def restored(self) -> None:
        """After a SnapStart restore: secrets read anew, the Slack session reopened."""
        await self.secrets.load()
        self._use_secrets(set(SECRET_FIELDS.values()))
        await self.service.reopen_slack_session()

    def _use_secrets(self, keys: set[str]) -> None:
        signing = self.secrets.get(SIGNING_SECRET)
        if SIGNING_SECRET in keys and signing is not None and signing.get_secret_value():
            self.service.door.signing_secret = signing.get_secret_value()
            log.info("gateway: using the signing secret read from SSM just now")
        token = self.secrets.get(BOT_TOKEN)
        if BOT_TOKEN in keys and token is not None:
            self.service.use_bot_token(token.get_secret_value())
            log.info("gateway: using the bot token read from SSM just now")

    async def aclose(self) -> None:
        await self.service.aclose(grace_seconds=5)


async def build_function(context: FunctionContext) -> GatewayFunction:
    """The gateway with the SSM secrets; the signing secret is required here.

    Raises:
        ConfigError: no signing secret (a function URL is on the internet).
    """
    # The catalog first: it needs no secret, and its validation can run while the first
    # read of the secrets (the Lambda extension's, in threads) waits for its answer. The
    # gateway never runs a schedule, so it leaves checking them to the batch function, which
    # does when it opens (croniter's import stays off the gateway's cold start).
    catalog = load_catalog(load_settings(GatewaySettings).catalog_path, check_schedules=False)
    settings = load_settings(GatewaySettings, **await context.secret_overrides(**SECRET_FIELDS))
    if settings.slack_signing_secret is None:
        raise ConfigError(
            "the gateway function needs a signing secret: set TOILKIT_SLACK_SIGNING_SECRET_PARAMETER "
            "(an SSM SecureString) or SLACK_SIGNING_SECRET"
        )
    service = await build_gateway(context.runtime, settings, catalog=catalog)
    return GatewayFunction(service, context.secrets)
