"""The notifier's settings (``TOILKIT_NOTIFIER_*``) and its channel routing.

Routing says which Slack channel each outcome goes to::

    default: C0INFRA01            # everything not matched below, and the scan digest
    states:                       # drift events, by state name (glob patterns, first match)
      prod-*: C0PRODOPS1
    commands:                     # batch run events, by catalog command
      db-backfill: C0DATA0001

It comes from ``TOILKIT_NOTIFIER_ROUTES`` (JSON or YAML text) or from the file named by
``TOILKIT_NOTIFIER_ROUTES_FILE``; with neither, everything goes to
``TOILKIT_NOTIFIER_DEFAULT_CHANNEL``. Use channel ids (``C...``) on real Slack: Slack accepts
``#names`` for posting, but ``chat.update`` and ``conversations.history`` want ids.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.env_settings import EnvConfigDict
from shared.errors import ConfigError
from shared.settings import WorkerSettings
from shared.slack.settings import SlackSettings, bot_token_field


class Routes(BaseModel):
    """Which channel each outcome goes to.

    Attributes:
        default: where anything unmatched goes (and the scan digest).
        states: state-name glob pattern -> channel, for drift events; first match wins.
        commands: command-name glob pattern -> channel, for batch run events.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: str = Field(min_length=1)
    states: dict[str, str] = Field(default_factory=dict)
    commands: dict[str, str] = Field(default_factory=dict)

    def for_state(self, state: str) -> str:
        """The channel for drift events of ``state``."""
        return _first_match(self.states, state) or self.default

    def for_command(self, command: str) -> str:
        """The channel for run events of ``command``."""
        return _first_match(self.commands, command) or self.default


def _first_match(patterns: dict[str, str], name: str) -> str | None:
    # Dicts keep their order, so the mapping reads top to bottom like a routing table.
    for pattern, channel in patterns.items():
        if fnmatch.fnmatchcase(name, pattern):
            return channel
    return None


class SlackRetrySettings(BaseModel):
    """How hard one Slack call is retried before the SQS message is retried instead."""

    rate_limited: int = Field(default=5, ge=0, le=20, description="429s honoured per call")
    server_errors: int = Field(default=3, ge=0, le=10, description="5xx retried per call")
    connection_errors: int = Field(default=3, ge=0, le=10)
    post_attempts: int = Field(
        default=4,
        ge=1,
        le=10,
        description="chat.postMessage attempts after an answer that leaves it unknown "
        "whether the message was posted (each re-post is preceded by a look-up)",
    )
    settle_seconds: float = Field(
        default=30,
        ge=0,
        le=600,
        description="Seconds after sending chat.postMessage by which Slack is assumed to "
        "have finished processing it: a maybe-posted message counts as not posted only if "
        "a look-up made after this finds nothing",
    )


class NotifierSettings(SlackSettings):
    """Everything the notifier reads from its environment, once, at start-up."""

    model_config = EnvConfigDict(env_prefix="TOILKIT_NOTIFIER_")

    slack_bot_token: SecretStr | None = bot_token_field("TOILKIT_NOTIFIER_")
    slack_timeout_seconds: int = Field(default=15, ge=1, le=120)
    default_channel: str = Field(default="#toilkit", min_length=1)
    ops_channel: str | None = Field(
        default=None,
        min_length=1,
        description="Where a message a worker gave up on (a DLQ) is announced, with its "
        "replay command; unset: not announced in Slack.",
    )
    drift_revert: bool = Field(
        default=False,
        description="Draw the Revert button on drift reports (set it where the catalog has "
        "drift.revert; `toilkit up` sets it for the demo catalog).",
    )
    routes: str | None = Field(default=None, description="Routing as JSON or YAML text.")
    routes_file: Path | None = Field(default=None, description="A JSON or YAML routing file.")
    post_interval_seconds: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="Minimum seconds between two messages posted to one channel "
        "(Slack allows about one per second per channel).",
    )
    progress_min_interval_seconds: float = Field(
        default=5,
        ge=0,
        le=3600,
        description="Least seconds between two live-progress updates of one run's message "
        "(a guard behind the batch service's progress interval, 10 s by default).",
    )
    record_ttl_days: PositiveInt = Field(
        default=120, description="Days Slack message records and threads are kept."
    )
    thread_claim_lease_seconds: PositiveFloat = Field(
        default=600,
        description="After this long another event may post a run/drift thread's first "
        "message that an earlier event claimed and never finished.",
    )
    retries: SlackRetrySettings = SlackRetrySettings()
    worker: WorkerSettings = WorkerSettings()

    @field_validator("ops_channel", mode="before")
    @classmethod
    def _empty_is_off(cls, value: object) -> object:
        # Terraform sets the variable to "" when no ops channel is configured.
        return None if value == "" else value

    @model_validator(mode="after")
    def _token_for_real_slack(self) -> NotifierSettings:
        settled = self.worker.handler_timeout + self.retries.settle_seconds
        if self.thread_claim_lease_seconds <= settled:
            raise ValueError(
                f"thread_claim_lease_seconds ({self.thread_claim_lease_seconds:g}) must exceed "
                f"worker.handler_timeout + retries.settle_seconds ({settled:g}), or a slow "
                "event could lose its claim while its post may still land"
            )
        return self

    def load_routes(self) -> Routes:
        """The routing table from ``routes`` or ``routes_file`` (default channel otherwise).

        Raises:
            ConfigError: the text is neither JSON nor YAML, the file cannot be read, or the
                mapping has unknown keys; the message names the variable.
        """
        if self.routes and self.routes_file:
            raise ConfigError(
                "set TOILKIT_NOTIFIER_ROUTES or TOILKIT_NOTIFIER_ROUTES_FILE, not both"
            )
        if self.routes_file is not None:
            variable = "TOILKIT_NOTIFIER_ROUTES_FILE"
            try:
                text = self.routes_file.read_text("utf-8")
            except OSError as exc:
                raise ConfigError(f"{variable}: cannot read {self.routes_file}: {exc}") from exc
        elif self.routes:
            variable, text = "TOILKIT_NOTIFIER_ROUTES", self.routes
        else:
            return Routes(default=self.default_channel)
        return parse_routes(text, default_channel=self.default_channel, variable=variable)


def parse_routes(text: str, *, default_channel: str, variable: str) -> Routes:
    """Parse a routing table written as JSON or YAML (YAML is a superset of JSON)."""
    try:
        raw: Any = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{variable}: not valid JSON or YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{variable}: expected a mapping, got {type(raw).__name__}")
    raw.setdefault("default", default_channel)
    try:
        return Routes.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(routes)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{variable}: {problems}") from exc


def describe_routes(routes: Routes) -> str:
    """One line for the start-up banner."""
    return json.dumps(routes.model_dump(), separators=(",", ":"))
