"""Named retry policies (tenacity) for one outbound call.

Two retry layers, never nested: these policies wrap one call to AWS or Slack; anything
that still fails goes back to SQS, which redelivers the whole message with backoff.
Validation errors and 4xx are permanent and never retried.

tenacity is imported when the first policy is made, or ``OUTBOUND_WAIT`` first read, not
with this module: a cold Lambda sandbox that answers its first request without a retried
call never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.errors import TransientError

if TYPE_CHECKING:
    from tenacity import AsyncRetrying
    from tenacity.wait import wait_base

    #: The default wait between attempts of one outbound call: full jitter, 0.2 s .. 5 s.
    OUTBOUND_WAIT: wait_base


def outbound_wait() -> wait_base:
    """The default wait between attempts of one outbound call: full jitter, 0.2 s .. 5 s
    (``OUTBOUND_WAIT``)."""
    from tenacity import wait_random_exponential  # noqa: PLC0415 - see the module docstring

    return wait_random_exponential(multiplier=0.2, max=5)


def __getattr__(name: str) -> object:
    # OUTBOUND_WAIT, made on first use (see the module docstring).
    if name == "OUTBOUND_WAIT":
        wait = outbound_wait()
        globals()[name] = wait
        return wait
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def outbound_call_retry(wait: wait_base | None = None) -> AsyncRetrying:
    """Retry one outbound call on :class:`TransientError`: 5 attempts within 30 s.

    Args:
        wait: the wait strategy (default ``OUTBOUND_WAIT``); tests pass
            ``tenacity.wait_none()``.
    """
    from tenacity import (  # noqa: PLC0415 - see the module docstring
        AsyncRetrying,
        retry_if_exception_type,
        stop_after_attempt,
        stop_after_delay,
    )

    return AsyncRetrying(
        stop=stop_after_attempt(5) | stop_after_delay(30),
        wait=wait if wait is not None else outbound_wait(),
        retry=retry_if_exception_type(TransientError),
        reraise=True,
    )
