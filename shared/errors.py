"""One small error tree for every service.

* :class:`TransientError`: try again later (SQS redelivery with backoff).
* :class:`PermanentError`: will never succeed as it is; left for the DLQ, logged once.
* :class:`ConditionFailed`: a conditional write found its condition false; expected, not a fault.
* :class:`PoisonMessage`: a message that cannot even be parsed; a permanent error.
* :class:`ConfigError`: bad settings; raised at start-up, naming the variable.
"""


class ToilkitError(Exception):
    """Base of every error toilkit raises on purpose."""


class TransientError(ToilkitError):
    """A failure that may go away by itself (throttling, a 5xx, a timeout, a lost connection).

    Args:
        retry_after: seconds before a retry can succeed, when the raiser knows (the worker
            then keeps the message hidden at least that long instead of spending receives).
    """

    def __init__(self, *args: object, retry_after: float = 0.0) -> None:
        super().__init__(*args)
        self.retry_after = retry_after


class PermanentError(ToilkitError):
    """A failure that retrying cannot fix (a 4xx, a missing resource, a rejected input)."""


class ConditionFailed(PermanentError):
    """A conditional write whose condition did not hold: nothing was written.

    Raised by :func:`shared.aws.call_aws` for DynamoDB's ``ConditionalCheckFailedException``,
    so stores catch this instead of re-reading error codes.
    """


class PoisonMessage(PermanentError):
    """A message whose body cannot be turned into an event."""


class ConfigError(ToilkitError):
    """Settings that cannot work; the message names the variable to fix."""
