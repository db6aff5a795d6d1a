"""Secrets held in SSM Parameter Store: read when a process starts, read again when they may
have changed, without waiting for the process to be replaced.

A Lambda sandbox lives for hours, and a secret is set or rotated while it runs (the first
``put-parameter`` after ``terraform apply``, a regenerated Slack signing secret). Whoever
notices that its copy may be out of date (a signature that does not match, a copy older than
its maximum age) calls :meth:`SsmSecrets.refresh`; the refresh is rate-limited, so a flood
of forged requests can never become a flood of SSM calls.

In a cold Lambda sandbox the first read may go through the AWS Parameters and Secrets Lambda
Extension instead (:mod:`shared.ssm_extension`: no SDK on the first request's path); every
later read goes to SSM itself, since the extension may answer from a cache up to five
minutes old.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from pydantic import SecretStr

from shared.aws import call_aws
from shared.errors import ConfigError, ToilkitError
from shared.ssm_extension import ParameterMissing, ParametersExtension

log = logging.getLogger(__name__)

#: The keys of the Slack secrets: ``toilkit.aws_lambda`` maps each to the SSM parameter
#: its function is configured with, and the services read them back under the same key.
BOT_TOKEN = "bot_token"
SIGNING_SECRET = "signing_secret"

#: At most one refresh in this many seconds (``refresh`` calls in between are free).
REFRESH_INTERVAL_SECONDS = 5.0
#: A copy older than this is :meth:`SsmSecrets.stale`: read it again before trusting it.
MAX_AGE_SECONDS = 300.0


@dataclass(eq=False)
class SsmSecrets:
    """Named SSM SecureString parameters, read together (one ``GetParameters`` call).

    Args:
        ssm: an SSM client (aiobotocore), or anything with its ``get_parameters``
            (:class:`shared.aws.ClientOnFirstCall` opens the client on the first read).
        parameters: the parameter name of each secret, by the name the code uses
            (``{"signing_secret": "/toilkit/slack/signing-secret"}``).
        first_read: the Lambda extension to make the first read through (None: SSM).
        min_interval: the least number of seconds between two reads.
        max_age: seconds after which the copy is :meth:`stale`.
        clock: monotonic seconds (tests pass their own).
    """

    ssm: Any
    parameters: Mapping[str, str]
    _: KW_ONLY
    min_interval: float = REFRESH_INTERVAL_SECONDS
    max_age: float = MAX_AGE_SECONDS
    clock: Callable[[], float] = time.monotonic
    first_read: ParametersExtension | None = None
    _values: dict[str, SecretStr] = field(default_factory=dict, init=False)
    _read_at: float | None = field(default=None, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    def __post_init__(self) -> None:
        self.parameters = dict(self.parameters)

    def get(self, key: str) -> SecretStr | None:
        """The value last read for ``key`` (None: not read, or no such parameter configured)."""
        return self._values.get(key)

    def age(self) -> float | None:
        """Seconds since the last read (None before the first)."""
        return None if self._read_at is None else self.clock() - self._read_at

    def stale(self) -> bool:
        """True when secrets are configured and the copy is older than ``max_age`` (or none
        was read yet)."""
        age = self.age()
        return bool(self.parameters) and (age is None or age > self.max_age)

    async def load(self) -> None:
        """Read every parameter now (at start-up, and after a SnapStart restore).

        Raises:
            ConfigError: a parameter is missing or cannot be read (the message names it).
        """
        async with self._lock:
            await self._read()

    async def refresh(self, *, force: bool = False) -> set[str]:
        """Read the parameters again unless that was done less than ``min_interval`` ago
        (``force``: read them anyway, as after a SnapStart restore).

        Concurrent callers share one read. A failed read is logged and changes nothing: the
        caller then answers with what it has (a request whose signature did not match that
        is refused, never let through).

        Returns:
            The keys whose value changed (empty when nothing changed, no read was due, or
            the read failed).
        """
        async with self._lock:
            age = self.age()
            if not force and age is not None and age < self.min_interval:
                return set()
            before = {key: value.get_secret_value() for key, value in self._values.items()}
            try:
                await self._read()
            except ConfigError as exc:
                log.warning("secrets not refreshed: %s", exc)
                return set()
            return {
                key
                for key, value in self._values.items()
                if before.get(key) != value.get_secret_value()
            }

    async def _read(self) -> None:
        if not self.parameters:
            self._read_at = self.clock()
            return
        names = sorted(set(self.parameters.values()))
        # Stamped before the call: a read that fails still counts against the rate limit.
        self._read_at = self.clock()
        extension, self.first_read = self.first_read, None
        if extension is not None:
            try:
                self._use(await extension.get_parameters(names))
                return
            except ParameterMissing:
                raise  # SSM would say the same
            except ConfigError as exc:
                # A missing layer or a failing extension costs a slower first answer, not
                # the function: SSM itself answers.
                log.warning("secrets extension failed, reading SSM instead: %s", exc)
        try:
            response = await call_aws(
                "ssm.get_parameters",
                lambda: self.ssm.get_parameters(Names=names, WithDecryption=True),
            )
        except ToilkitError as exc:
            raise ConfigError(f"cannot read SSM parameters {', '.join(names)}: {exc}") from exc
        missing = response.get("InvalidParameters") or []
        if missing:
            raise ConfigError(f"SSM parameter(s) not found: {', '.join(sorted(missing))}")
        self._use({p["Name"]: str(p["Value"]) for p in response.get("Parameters", [])})

    def _use(self, by_name: Mapping[str, str]) -> None:
        self._values = {
            key: SecretStr(by_name[name])
            for key, name in self.parameters.items()
            if name in by_name
        }
