"""Per-state AWS credentials: one detector, many accounts.

A state whose ``toilkit.yaml`` entry has ``assume_role`` is planned with the temporary
credentials of that role (STS ``AssumeRole``), handed to Terraform's process as the
standard ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN`` variables,
which every AWS provider reads first. Credentials are assumed when the state's turn
comes and reused only while they outlive the state's whole time budget, so a long scan
never hands a plan credentials that expire under it.

A role that cannot be assumed fails that state alone (:class:`CredentialsError`, with
STS's own reason); the others are scanned.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiobotocore.session import get_session
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.aws import call_aws, client_config
from shared.errors import PermanentError, ToilkitError
from shared.events import utc_now
from shared.settings import AwsSettings

#: The session name CloudTrail shows for the detector's calls in every account.
DEFAULT_SESSION_NAME = "toilkit-drift"

_ROLE_ARN = re.compile(r"arn:aws(-[a-z]+)*:iam::\d{12}:role/[\w+=,.@/-]{1,512}\Z")
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}\Z")
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}\Z")


class AssumeRole(BaseModel):
    """``assume_role`` of a state in ``toilkit.yaml``.

    Attributes:
        role_arn: ``arn:aws:iam::<account>:role/<name>``.
        external_id: The external id the role's trust policy asks for, if any.
        session_name: Shown in the account's CloudTrail as who made the calls.
        duration_seconds: How long the credentials last (STS allows 900-43200; the
            role's maximum session duration may allow less).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    role_arn: str
    external_id: str | None = None
    session_name: str = DEFAULT_SESSION_NAME
    duration_seconds: int = Field(default=3600, ge=900, le=43200)

    @field_validator("role_arn")
    @classmethod
    def _arn(cls, value: str) -> str:
        if not _ROLE_ARN.match(value):
            raise ValueError(
                f"{value!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"
            )
        return value

    @field_validator("external_id")
    @classmethod
    def _external_id(cls, value: str | None) -> str | None:
        if value is not None and not _EXTERNAL_ID.match(value):
            raise ValueError(
                "external_id must be 2-1224 characters of letters, digits and _+=,.@:/-"
            )
        return value

    @field_validator("session_name")
    @classmethod
    def _session_name(cls, value: str) -> str:
        if not _SESSION_NAME.match(value):
            raise ValueError("session_name must be 2-64 characters of letters, digits and _+=,.@-")
        return value


class CredentialsError(PermanentError):
    """A state's role could not be assumed; the message says which and why."""


@dataclass(frozen=True)
class _Assumed:
    environment: Mapping[str, str]
    expires_at: datetime


@dataclass(eq=False)
class RoleCredentials:
    """Assumes the roles of states through STS and keeps them while they last.

    Attributes:
        sts: Returns the process's STS client (created once, by the caller's runtime).
        min_remaining: Credentials are reused only while they stay valid this long: at
            least one state's time budget, so none expires during a plan.
        settings: Region and endpoints for the clients :meth:`client` opens as a role.
        clock: The current time (timezone-aware).
    """

    sts: Callable[[], Awaitable[Any]]
    _: KW_ONLY
    min_remaining: timedelta
    settings: AwsSettings
    clock: Callable[[], datetime] = utc_now
    _assumed: dict[AssumeRole, _Assumed] = field(default_factory=dict, init=False, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    async def environment(self, role: AssumeRole) -> Mapping[str, str]:
        """The variables that give Terraform the role's credentials.

        Raises:
            CredentialsError: STS refused (no trust, wrong external id...) or stayed
                unreachable.
        """
        async with self._lock:
            cached = self._assumed.get(role)
            if cached is not None and cached.expires_at - self.clock() > self.min_remaining:
                return cached.environment
            assumed = await self._assume(role)
            self._assumed[role] = assumed
            return assumed.environment

    @contextlib.asynccontextmanager
    async def client(self, service: str, role: AssumeRole) -> AsyncIterator[Any]:
        """An aiobotocore client for ``service`` in the role's account, closed on exit.

        Raises:
            CredentialsError: The role could not be assumed.
        """
        environment = await self.environment(role)
        async with get_session().create_client(  # type: ignore[call-overload]
            service,
            region_name=self.settings.region,
            endpoint_url=self.settings.endpoint_for(service),
            config=client_config(),
            aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=environment["AWS_SESSION_TOKEN"],
        ) as client:
            yield client

    async def _assume(self, role: AssumeRole) -> _Assumed:
        arguments: dict[str, Any] = {
            "RoleArn": role.role_arn,
            "RoleSessionName": role.session_name,
            "DurationSeconds": role.duration_seconds,
        }
        if role.external_id is not None:
            arguments["ExternalId"] = role.external_id
        try:
            client = await self.sts()
            response = await call_aws("sts.assume_role", lambda: client.assume_role(**arguments))
        except ToilkitError as exc:
            raise CredentialsError(f"could not assume {role.role_arn}: {exc}") from exc
        credentials = response["Credentials"]
        return _Assumed(
            environment={
                "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
                "AWS_SESSION_TOKEN": credentials["SessionToken"],
            },
            expires_at=credentials["Expiration"],
        )
