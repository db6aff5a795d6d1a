"""The Slack Web API settings every service that talks to Slack shares.

:class:`SlackSettings` is the base of the gateway's and the notifier's settings: the bot
token, where the Web API is (slack.com, or the stand-in's ``.../api/``) and how long a call
may take, with one set of checks. Each service keeps its own env prefix
(``TOILKIT_GATEWAY_SLACK_API_URL``, ``TOILKIT_NOTIFIER_SLACK_API_URL``); the bot token is also
read from Slack's conventional ``SLACK_BOT_TOKEN``, so one token serves the whole app.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, SecretStr, model_validator

from shared.env_settings import EnvConfigDict, EnvSettings

SLACK_API_URL = "https://slack.com/api/"

#: Not a secret: the placeholder token sent when the Web API is not slack.com (the
#: stand-in accepts any xoxb- token).
STANDIN_TOKEN = "xoxb-toilkit-standin"


#: Slack's own name for the bot token's variable (each service also reads it with its prefix).
BOT_TOKEN_VARIABLE = "SLACK_BOT_TOKEN"


def bot_token_variables(env_prefix: str) -> tuple[str, str]:
    """The variables a service with ``env_prefix`` reads its bot token from, first first
    (``toilkit up`` looks at the same ones to decide whether Slack is real)."""
    return f"{env_prefix}{BOT_TOKEN_VARIABLE}", BOT_TOKEN_VARIABLE


def bot_token_field(env_prefix: str) -> Any:
    """The ``slack_bot_token`` field for a service with ``env_prefix``.

    Read from ``<prefix>SLACK_BOT_TOKEN`` or Slack's own ``SLACK_BOT_TOKEN``; a field with an
    alias does not get the prefix by itself, so each service declares it with this.
    """
    return Field(
        default=None,
        validation_alias=AliasChoices(*bot_token_variables(env_prefix)),
        description="The bot token (xoxb-...); optional for the stand-in.",
    )


class SlackSettings(EnvSettings):
    """Where Slack's Web API is and how to call it (a base for a service's settings).

    A service's settings subclass it and name their own ``env_prefix``; the rest of the
    configuration (nested ``__`` variables, unknown ones ignored, fields set by name or by
    alias) is the same for both.
    """

    model_config = EnvConfigDict(env_nested_delimiter="__", extra="ignore", populate_by_name=True)

    slack_bot_token: SecretStr | None = bot_token_field("")
    slack_api_url: str = Field(
        default=SLACK_API_URL, description="The Web API base URL (the stand-in's .../api/)."
    )
    slack_timeout_seconds: int = Field(default=10, ge=1, le=120)

    @model_validator(mode="after")
    def _slack_api_checks(self) -> SlackSettings:
        prefix = str(self.model_config.get("env_prefix", ""))
        if not self.slack_api_url.startswith(("http://", "https://")):
            raise ValueError(f"slack_api_url {self.slack_api_url!r} is not an http(s) URL")
        if not self.slack_api_url.endswith("/"):
            # slack-sdk appends method names to the base URL as is.
            self.slack_api_url += "/"
        if self.slack_bot_token is None and self.slack_api_url.startswith(SLACK_API_URL):
            raise ValueError(
                "SLACK_BOT_TOKEN is required for slack.com; set it, or point "
                f"{prefix}SLACK_API_URL at the Slack stand-in"
            )
        return self

    @property
    def token(self) -> str:
        """The bot token to send: the configured one, or the stand-in's placeholder."""
        if self.slack_bot_token is None:
            return STANDIN_TOKEN
        return self.slack_bot_token.get_secret_value()
