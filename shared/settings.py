"""Settings shared by every service, read from the environment (:mod:`shared.env_settings`).

Each service has its own ``EnvSettings`` with an env prefix (``TOILKIT_NOTIFIER_`` ...)
and nests the models here. :func:`load_settings` turns a validation error into a
:class:`~shared.errors.ConfigError` that names the environment variable to fix.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    ValidationError,
    model_validator,
)

from shared.env_settings import EnvConfigDict, EnvSettings
from shared.errors import ConfigError


def _endpoint(variable: str) -> Any:
    """An endpoint URL field, read from ``variable`` only (unset: None)."""
    return Field(default=None, validation_alias=variable)


class AwsSettings(EnvSettings):
    """Where AWS is: the real one, LocalStack or moto (``AWS_ENDPOINT_URL``).

    Credentials come from botocore's usual chain (env, profile, role); toilkit never
    reads them itself.
    """

    model_config = EnvConfigDict(extra="ignore", populate_by_name=True)

    region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"),
    )
    endpoint_url: str | None = _endpoint("AWS_ENDPOINT_URL")
    endpoint_url_sqs: str | None = _endpoint("AWS_ENDPOINT_URL_SQS")
    endpoint_url_sns: str | None = _endpoint("AWS_ENDPOINT_URL_SNS")
    endpoint_url_s3: str | None = _endpoint("AWS_ENDPOINT_URL_S3")
    endpoint_url_dynamodb: str | None = _endpoint("AWS_ENDPOINT_URL_DYNAMODB")
    endpoint_url_stepfunctions: str | None = _endpoint("AWS_ENDPOINT_URL_SFN")
    endpoint_url_logs: str | None = _endpoint("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS")
    endpoint_url_codebuild: str | None = _endpoint("AWS_ENDPOINT_URL_CODEBUILD")
    endpoint_url_cloudtrail: str | None = _endpoint("AWS_ENDPOINT_URL_CLOUDTRAIL")
    connect_timeout_seconds: float = Field(
        default=5, gt=0, le=60, validation_alias="TOILKIT_AWS_CONNECT_TIMEOUT"
    )
    read_timeout_seconds: float = Field(
        default=30,
        gt=0,
        le=300,
        validation_alias="TOILKIT_AWS_READ_TIMEOUT",
        description="Above SQS's 20 s long poll, or every receive would time out.",
    )

    @model_validator(mode="after")
    def _endpoints_are_urls(self) -> AwsSettings:
        for name, value in self:
            is_endpoint = name.startswith("endpoint_url") and value is not None
            if is_endpoint and not str(value).startswith(("http://", "https://")):
                raise ValueError(f"{name}: {value!r} is not an http(s) URL")
        return self

    def endpoint_for(self, service: str) -> str | None:
        """The endpoint for one service: its own override, else ``AWS_ENDPOINT_URL``."""
        override: str | None = getattr(self, f"endpoint_url_{service}", None)
        return override or self.endpoint_url


class TopologySettings(EnvSettings):
    """The names of the shared AWS resources (``TOILKIT_`` prefix)."""

    model_config = EnvConfigDict(env_prefix="TOILKIT_", extra="ignore")

    name_prefix: str = Field(default="toilkit", pattern=r"^[A-Za-z0-9_-]{1,40}$")
    bucket: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="S3 bucket for payloads, plans and logs (default: <prefix>-artifacts).",
    )


#: SQS's ceiling for a message's visibility timeout (12 hours): the longest lease and the
#: longest retry delay a worker can ask for.
MAX_VISIBILITY_SECONDS = 43200


class WorkerSettings(BaseModel):
    """How a service consumes its queue. Nested in each service's settings as ``worker``
    (e.g. ``TOILKIT_NOTIFIER_WORKER__CONCURRENCY=20``)."""

    model_config = ConfigDict(defer_build=True)  # the gateway never builds one

    concurrency: int = Field(default=16, ge=1, le=1000)
    wait_time_seconds: int = Field(default=20, ge=0, le=20)
    max_messages: int = Field(default=10, ge=1, le=10)
    visibility_timeout: int = Field(
        default=60,
        ge=1,
        le=MAX_VISIBILITY_SECONDS,
        description="Seconds a message stays hidden per extension.",
    )
    handler_timeout: PositiveFloat = Field(default=300, description="Seconds one handler may run.")
    heartbeat_every: PositiveFloat | None = Field(
        default=None,
        description="Seconds between visibility extensions (default: a third of "
        "visibility_timeout).",
    )
    shutdown_grace: NonNegativeFloat = 30
    retry_base_seconds: NonNegativeFloat = 2
    retry_max_seconds: float = Field(default=300, ge=0, le=MAX_VISIBILITY_SECONDS)
    idempotency_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)

    @model_validator(mode="after")
    def _heartbeat_fits(self) -> WorkerSettings:
        if self.heartbeat_interval >= self.visibility_timeout:
            raise ValueError(
                f"heartbeat_every ({self.heartbeat_interval}s) must be below "
                f"visibility_timeout ({self.visibility_timeout}s), or a long handler's "
                "message becomes visible again and runs twice"
            )
        return self

    @property
    def heartbeat_interval(self) -> float:
        return self.heartbeat_every or self.visibility_timeout / 3


SettingsT = TypeVar("SettingsT", bound=EnvSettings)


def load_settings(cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """Build a settings object, turning validation errors into a :class:`ConfigError`
    whose message names each environment variable and what is wrong with it."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        lines = [f"invalid configuration ({cls.__name__}):"]
        for err in exc.errors():
            variable = env_variable_for(cls, err["loc"])
            given = err.get("input")
            shown = "" if isinstance(given, dict) or given is None else f" (got {given!r})"
            lines.append(f"  {variable}: {err['msg']}{shown}")
        raise ConfigError("\n".join(lines)) from exc


def env_variable_for(cls: type[EnvSettings], loc: tuple[int | str, ...]) -> str:
    """The environment variable that sets the field at ``loc`` of a settings class."""
    if not loc:
        return cls.__name__
    first = str(loc[0])
    field = cls.model_fields.get(first)
    if field is not None and isinstance(field.validation_alias, str):
        return field.validation_alias
    if field is not None and isinstance(field.validation_alias, AliasChoices):
        return " or ".join(str(c) for c in field.validation_alias.choices)
    prefix = str(cls.model_config.get("env_prefix", ""))
    delimiter = cls.model_config.get("env_nested_delimiter") or "__"
    return (prefix + delimiter.join(str(p) for p in loc if not isinstance(p, int))).upper()
