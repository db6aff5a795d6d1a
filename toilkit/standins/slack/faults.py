"""Fault injection: the failures Slack has in real life, on a share of Web API calls.

A :class:`FaultSpec` says which share of the calls to a method (or to every method) is
answered 429 with ``Retry-After``, 500/503, late, or by closing the connection; the shares
are drawn from a seeded random sequence, so a seed gives the same pattern every run. A
faulted call never reaches the method: a 429 means the message was not posted.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any, Literal, Self

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

logger = logging.getLogger(__name__)

FaultKind = Literal["rate_limited", "server_error", "slow", "drop"]


class FaultSpec(BaseModel):
    """One fault rule: the share of calls to ``method`` (or every method, ``"*"``) that fail.

    The shares are drawn from one seeded random sequence per rule, so a given seed gives the
    same pattern of faults call after call. A method's own rule takes precedence over ``"*"``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str = Field(default="*", min_length=1)
    rate_limited: float = Field(default=0.0, ge=0, le=1, description="share answered 429")
    retry_after: int = Field(default=1, ge=0, description="Retry-After seconds of a 429")
    server_error: float = Field(default=0.0, ge=0, le=1, description="share answered 500/503")
    slow: float = Field(default=0.0, ge=0, le=1, description="share answered late (but handled)")
    slow_seconds: float = Field(default=2.0, ge=0, le=300)
    drop: float = Field(default=0.0, ge=0, le=1, description="share whose connection is closed")
    seed: int | None = None
    max_injections: int | None = Field(
        default=None, ge=1, description="after this many injected faults the rule stays quiet"
    )

    @model_validator(mode="after")
    def _shares_fit_in_one(self) -> Self:
        if self.rate_limited + self.server_error + self.slow + self.drop > 1:
            raise ValueError("rate_limited + server_error + slow + drop must not exceed 1")
        return self


class FaultRule:
    """A :class:`FaultSpec` in force: its random sequence and how many faults it injected."""

    def __init__(self, spec: FaultSpec) -> None:
        self.spec = spec
        self.random = random.Random(spec.seed)
        self.injected = 0

    def draw(self) -> FaultKind | None:
        """The fault for the next call, if any (one draw per call keeps the seed's pattern)."""
        roll = self.random.random()
        if self.spec.max_injections is not None and self.injected >= self.spec.max_injections:
            return None
        shares: tuple[tuple[FaultKind, float], ...] = (
            ("rate_limited", self.spec.rate_limited),
            ("server_error", self.spec.server_error),
            ("slow", self.spec.slow),
            ("drop", self.spec.drop),
        )
        for kind, share in shares:
            if roll < share:
                self.injected += 1
                return kind
            roll -= share
        return None


@dataclass(frozen=True)
class InjectedFault:
    """The answer to a faulted call, and what of it to record."""

    response: web.StreamResponse
    #: The Slack JSON sent, None when there was none (a 5xx page, a dropped connection).
    body: dict[str, Any] | None
    http_status: int | None


def inject(
    request: web.Request, method: str, rule: FaultRule, fault: FaultKind
) -> InjectedFault | None:
    """The answer to a call ``fault`` was drawn for; None for a slow one (it is handled,
    after ``rule.spec.slow_seconds``)."""
    logger.debug("Slack stand-in injects %s into %s", fault, method)
    if fault == "rate_limited":
        body = {"ok": False, "error": "ratelimited"}
        response = web.json_response(
            body, status=429, headers={"Retry-After": str(rule.spec.retry_after)}
        )
        return InjectedFault(response, body, 429)
    if fault == "server_error":
        status = rule.random.choice((500, 503))
        reason = "Internal Server Error" if status == 500 else "Service Unavailable"
        page = web.Response(
            status=status,
            content_type="text/html",
            text=f"<html><head><title>{status} {reason}</title></head>"
            f"<body><h1>{status} {reason}</h1><p>Slack stand-in fault.</p></body></html>",
        )
        return InjectedFault(page, None, status)
    if fault == "drop":
        if request.transport is not None:
            request.transport.close()
        return InjectedFault(web.Response(), None, None)
    return None


def describe_fault(spec: FaultSpec) -> str:
    """The rule's shares, as the page's sidebar shows them."""
    shares = (
        ("429", spec.rate_limited),
        ("5xx", spec.server_error),
        ("slow", spec.slow),
        ("drop", spec.drop),
    )
    return ", ".join(f"{label} {share:.0%}" for label, share in shares if share) or "none"
