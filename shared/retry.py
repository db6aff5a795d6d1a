"""Named retry policies (tenacity) for one outbound call.

Two retry layers, never nested: these policies wrap one call to AWS or Slack; anything
that still fails goes back to SQS, which redelivers the whole message with backoff.
Validation errors and 4xx are permanent and never retried.
"""

from __future__ import annotations

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)
from tenacity.wait import wait_base

from shared.errors import TransientError

#: The default wait between attempts of one outbound call: full jitter, 0.2 s .. 5 s.
OUTBOUND_WAIT: wait_base = wait_random_exponential(multiplier=0.2, max=5)


def outbound_call_retry(wait: wait_base = OUTBOUND_WAIT) -> AsyncRetrying:
    """Retry one outbound call on :class:`TransientError`: 5 attempts within 30 s.

    Args:
        wait: the wait strategy; tests pass ``tenacity.wait_none()``.
    """
    return AsyncRetrying(
        stop=stop_after_attempt(5) | stop_after_delay(30),
        wait=wait,
        retry=retry_if_exception_type(TransientError),
        reraise=True,
    )
