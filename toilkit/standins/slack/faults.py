"""Fault injection: the failures Slack has in real life, on a share of Web API calls.

A :class:`FaultSpec` says which share of the calls to a method (or to every method) is
answered 429 with ``Retry-After``, 500/503, late, or by closing the connection; the shares
are drawn from a seeded random sequence, so a seed gives the same pattern every run.

Most faulted calls never reach the method: a 429, a 5xx or a ``drop`` means the message was
not posted. Two kinds are the ambiguous ones real Slack has, where the caller cannot tell:

* ``slow``: the call is processed ``slow_seconds`` late, as Slack does under load, and only
  then answered. A message it posts is invisible to ``conversations.history`` until then,
  and it is posted even if the caller gave up waiting (closed the connection) before.
* ``lost_answer``: the call is processed (the message posted) after ``slow_seconds``, then
  the connection is closed instead of answering, as when a proxy drops the reply.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any, Literal, Self

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

logger = logging.getLogger(__name__)

FaultKind = Literal["rate_limited", "server_error", "slow", "drop", "lost_answer"]


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
    lost_answer: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="share processed (after slow_seconds) whose answer is lost: the "
        "connection is closed instead",
    )
    seed: int | None = None
    max_injections: int | None = Field(
        default=None, ge=1, description="after this many injected faults the rule stays quiet"
    )

    @model_validator(mode="after")
    def _shares_fit_in_one(self) -> Self:
        if self.rate_limited + self.server_error + self.slow + self.drop + self.lost_answer > 1:
            raise ValueError(
                "rate_limited + server_error + slow + drop + lost_answer must not exceed 1"
            )
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
            ("lost_answer", self.spec.lost_answer),
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
    """The answer to a call ``fault`` was drawn for; None for a slow or lost answer (it is
    handled after ``rule.spec.slow_seconds``; :func:`lose_answer` then closes a lost one)."""
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


def lose_answer(request: web.Request) -> web.StreamResponse:
    """Close the connection of a call that was processed, so its answer never arrives."""
    if request.transport is not None:
        request.transport.close()
    return web.Response()


def describe_fault(spec: FaultSpec) -> str:
    """The rule's shares, as the page's sidebar shows them."""
    shares = (
        ("429", spec.rate_limited),
        ("5xx", spec.server_error),
        ("slow", spec.slow),
        ("drop", spec.drop),
        ("lost answer", spec.lost_answer),
    )
    return ", ".join(f"{label} {share:.0%}" for label, share in shares if share) or "none"
