"""The notifier as an AWS Lambda function behind its SQS event source mapping.

Built by :func:`build_function` from the same :func:`~services.notifier.service.build_notifier`
as ``toilkit serve notifier``; ``toilkit.aws_lambda.worker_handler`` hosts it. The messages
go through the notifier's worker (handlers, idempotency, poison handling, retry backoff), and
the ones it could not handle are returned as ``batchItemFailures``.
"""

from __future__ import annotations

from services.notifier.service import build_notifier
from services.notifier.settings import NotifierSettings
from shared.lambda_function import FunctionContext, QueueWorkerFunction
from shared.secrets import BOT_TOKEN
from shared.settings import load_settings


async def build_function(context: FunctionContext) -> QueueWorkerFunction:
    """The notifier on its queue, with the bot token from SSM when one is configured."""
    settings = load_settings(
        NotifierSettings, **await context.secret_overrides(slack_bot_token=BOT_TOKEN)
    )
    service = await build_notifier(context.runtime, settings=settings)
    return QueueWorkerFunction(service.worker, close=service.aclose)
