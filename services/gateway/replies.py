"""Ephemeral replies after the ack: only the person who acted sees them.

``chat.postEphemeral`` in the channel where the person acted comes first (the Slack
stand-in and real Slack both record it). It fails where the bot is not a member (a private
channel, someone else's DM); then the interaction's ``response_url`` is used when there is
one, and otherwise a direct message from the app, which always reaches the person.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from services.gateway.blocks import Reply

log = logging.getLogger(__name__)

#: Errors after which another way of reaching the person is tried.
_CHANNEL_UNREACHABLE = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "user_not_in_channel",
        "is_archived",
        "restricted_action",
        "cannot_dm_bot",
        "invalid_arguments",
    }
)
SLACK_HOOKS = "https://hooks.slack.com/"


class EphemeralReplier:
    """Sends :class:`~services.gateway.blocks.Reply` objects to one person.

    Args:
        client: the bot's Web API client.
        trusted_response_hosts: ``scheme://host[:port]`` prefixes a ``response_url`` may
            have besides Slack's own (the stand-in's), so a request can never make the
            gateway post to an arbitrary URL.
    """

    def __init__(self, client: AsyncWebClient, *, trusted_response_hosts: tuple[str, ...] = ()):
        self._client = client
        self._trusted = {origin(SLACK_HOOKS), *(origin(h) for h in trusted_response_hosts)}

    async def send(
        self,
        reply: Reply,
        *,
        user_id: str,
        channel_id: str | None,
        response_url: str | None = None,
    ) -> None:
        """Show ``reply`` to ``user_id``; never raises (a failure is logged)."""
        arguments = reply.as_arguments()
        if channel_id:
            try:
                await self._client.chat_postEphemeral(channel=channel_id, user=user_id, **arguments)
                return
            except SlackApiError as exc:
                error = str(exc.response.get("error", ""))
                if error not in _CHANNEL_UNREACHABLE:
                    log.error("chat.postEphemeral to %s failed: %s", user_id, error)
                    return
                log.info(
                    "chat.postEphemeral in %s failed (%s); trying another way", channel_id, error
                )
            except (TimeoutError, SlackClientError, OSError) as exc:
                log.error("chat.postEphemeral to %s failed: %s", user_id, exc)
                return
        if response_url and self._trusted_url(response_url):
            try:
                response = await AsyncWebhookClient(response_url).send(
                    response_type="ephemeral", replace_original=False, **arguments
                )
                if response.status_code < 300:
                    return
                log.info("response_url answered %s; sending a direct message", response.status_code)
            except (TimeoutError, SlackClientError, OSError) as exc:
                log.info("response_url failed (%s); sending a direct message", exc)
        try:
            await self._client.chat_postMessage(channel=user_id, **arguments)
        except (TimeoutError, SlackClientError, OSError) as exc:
            log.error("could not reach %s with a reply: %s", user_id, exc)

    def _trusted_url(self, url: str) -> bool:
        return origin(url) in self._trusted


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lower case."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
