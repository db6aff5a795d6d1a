"""Slack's side of the conversation with a running gateway, for the tests that need it.

:class:`SignedSlack` sends what Slack sends (a slash command form, an interaction
payload) over real HTTP to the gateway's events URL, signed exactly as Slack signs it
(:func:`services.gateway.simulate.signed_headers`), and can mark a request as one of
Slack's retries (``X-Slack-Retry-Num``). Trigger ids come from the Slack stand-in, as they
would from Slack. The gateway integration tests and the end-to-end flows both drive the
gateway through it.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from services.gateway.simulate import (
    SlackUserRef,
    interaction_body,
    slash_command_body,
)
from shared.slack.signing import signed_headers
from toilkit.standins.slack import SlackStandin


class SignedSlack:
    """Signed requests to one gateway, as Slack sends them.

    Args:
        events_url: the gateway's ``POST /slack/events`` URL.
        secret: the signing secret the gateway was given.
        standin: the Slack stand-in that hands out trigger ids.
        channel_id: the channel slash commands are typed in.
    """

    def __init__(
        self, events_url: str, secret: str, standin: SlackStandin, channel_id: str
    ) -> None:
        self.url = events_url
        self.secret = secret
        self.standin = standin
        self.channel_id = channel_id
        self.http = aiohttp.ClientSession()

    async def close(self) -> None:
        await self.http.close()

    def headers(self, body: bytes, *, retry_num: int | None = None) -> dict[str, str]:
        """Slack's headers for ``body``; a retry is signed afresh and says which one it is."""
        if retry_num is None:
            return signed_headers(self.secret, body)
        # Slack signs each attempt with the time it is sent, so a retry's signature differs
        # from the first attempt's (an identical copy would be a replay).
        stamp = int(time.time()) + retry_num
        return signed_headers(self.secret, body, timestamp=stamp) | {
            "X-Slack-Retry-Num": str(retry_num),
            "X-Slack-Retry-Reason": "http_timeout",
        }

    async def post(self, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
        """POST ``body`` (signed now unless ``headers`` are given); status and text."""
        async with self.http.post(
            self.url,
            data=body,
            headers=headers if headers is not None else self.headers(body),
        ) as response:
            return response.status, await response.text()

    async def slash(
        self, text: str, user: SlackUserRef, *, channel_id: str | None = None
    ) -> tuple[int, str]:
        """``/toil <text>`` typed by ``user``."""
        body = slash_command_body(
            text,
            user=user,
            channel_id=channel_id or self.channel_id,
            trigger_id=self.standin.issue_trigger(user.id),
        )
        return await self.post(body)

    async def interact(
        self, payload: dict[str, Any], *, retry_num: int | None = None
    ) -> tuple[int, str]:
        """An interaction (``block_actions``, ``view_submission``) as Slack posts it."""
        body = interaction_body(payload)
        return await self.post(body, self.headers(body, retry_num=retry_num))
