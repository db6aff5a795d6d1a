"""The gateway's settings (``TOILKIT_GATEWAY_*``, plus Slack's conventional variable names).

Slack's own names are honoured, so a Slack app's credentials work as Slack documents them::

    SLACK_BOT_TOKEN       xoxb-...  the bot token (or TOILKIT_GATEWAY_SLACK_BOT_TOKEN)
    SLACK_SIGNING_SECRET  ...       verifies HTTP requests (or TOILKIT_GATEWAY_SLACK_SIGNING_SECRET)
    SLACK_APP_TOKEN       xapp-...  switches to Socket Mode (or TOILKIT_GATEWAY_SLACK_APP_TOKEN)

Without a signing secret the gateway generates a development one (printed at start-up) only
when it listens on a loopback address, as under ``toilkit up``; nothing on the internet can
reach it there, so a forgotten secret can never open a public endpoint.
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path

from pydantic import AliasChoices, Field, NonNegativeFloat, SecretStr, model_validator

from shared.catalog import DEMO_CATALOG
from shared.env_settings import EnvConfigDict
from shared.options_fetch import DEFAULT_CACHE_DIR, OptionsCacheDir
from shared.slack.settings import SlackSettings, bot_token_field


def _aliases(slack_name: str, field: str) -> AliasChoices:
    return AliasChoices(slack_name, f"TOILKIT_GATEWAY_{field.upper()}")


class GatewaySettings(SlackSettings):
    """Everything the gateway reads from its environment, once, at start-up."""

    model_config = EnvConfigDict(env_prefix="TOILKIT_GATEWAY_")

    slack_bot_token: SecretStr | None = bot_token_field("TOILKIT_GATEWAY_")
    slack_signing_secret: SecretStr | None = Field(
        default=None,
        validation_alias=_aliases("SLACK_SIGNING_SECRET", "slack_signing_secret"),
        description="Verifies that HTTP requests come from Slack (Basic Information page).",
    )
    slack_app_token: SecretStr | None = Field(
        default=None,
        validation_alias=_aliases("SLACK_APP_TOKEN", "slack_app_token"),
        description="An app-level token (xapp-...) with connections:write: use Socket Mode.",
    )
    host: str = Field(default="127.0.0.1", description="Where the HTTP server listens.")
    port: int = Field(default=3000, ge=0, le=65535, description="0 picks a free port.")
    command_name: str = Field(
        default="/toil",
        pattern=r"^/[a-z0-9_-]{1,31}$",
        description="The slash command, as configured in the Slack app.",
    )
    catalog_path: Path = Field(
        default=DEMO_CATALOG,
        validation_alias=AliasChoices("TOILKIT_GATEWAY_CATALOG_PATH", "TOILKIT_CATALOG_PATH"),
        description="The batch command catalog (the same file the batch service reads).",
    )
    max_body_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        le=10 * 1024 * 1024,
        description="Larger request bodies are refused before they are read whole.",
    )
    usergroup_cache_seconds: NonNegativeFloat = Field(
        default=300, description="How long usergroups.users.list answers are reused."
    )
    request_record_seconds: int = Field(
        default=900,
        ge=360,
        description="How long a request is remembered to recognise Slack's retries and "
        "replays (longer than the 5-minute signature window).",
    )
    read_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        le=2.5,
        description="Budget for reading drift and runs before answering a slash command "
        "(Slack waits 3 s for the answer).",
    )
    shared_ledger: bool = Field(
        default=True,
        description="Also record each request in the DynamoDB idempotency table (after the "
        "ack, before publishing), so a copy reaching another gateway instance changes "
        "nothing. One write per interaction; a single instance can do without it (its "
        "in-memory record answers retries and replays, and event ids are derived from "
        "the request, so consumers drop duplicates anyway).",
    )
    after_ack_concurrency: int = Field(
        default=2,
        ge=1,
        le=1000,
        description="Pieces of after-ack work (publishing, replies) running at once; the "
        "rest wait their turn, so a burst never slows the acks down (Slack waits 3 s for "
        "those; nobody waits on the rest). Two is ~30 requests/s on AWS, far above what "
        "people click; opening and updating modals never waits for a turn.",
    )
    recent_runs: int = Field(default=10, ge=1, le=50, description="How many `runs` lists.")
    refresh_options: bool = Field(
        default=True,
        description="Fetch the git and url sources of listed choices (options_from) in the "
        "background when their list is stale. Off on Lambda, whose sandbox freezes after "
        "each answer: there the batch function's housekeeping refreshes every list.",
    )
    options_cache_dir: OptionsCacheDir = DEFAULT_CACHE_DIR

    @model_validator(mode="after")
    def _checks(self) -> GatewaySettings:
        if self.socket_mode and self.slack_bot_token is None:
            raise ValueError("SLACK_APP_TOKEN (Socket Mode) needs SLACK_BOT_TOKEN as well")
        if (
            self.slack_signing_secret is not None
            and not self.slack_signing_secret.get_secret_value()
        ):
            # What `SLACK_SIGNING_SECRET=${UNSET_VARIABLE}` gives: every signature would be
            # checked against an empty key.
            raise ValueError("SLACK_SIGNING_SECRET is set but empty")
        if (
            self.slack_signing_secret is None
            and not self.socket_mode
            and not is_loopback(self.host)
        ):
            raise ValueError(
                f"SLACK_SIGNING_SECRET is required when listening on {self.host} (a "
                "development secret is generated only on a loopback address)"
            )
        return self

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (nothing off this machine reaches them)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def generate_signing_secret() -> str:
    """A development signing secret, formatted like Slack's (32 hex digits)."""
    return secrets.token_hex(16)
