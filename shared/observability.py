"""What an operator reads: log lines that say which event they belong to, and the settings
for logs and metrics.

Every log line carries ``service``, ``event_id``, ``event_type``, ``correlation_id``,
``run_id`` and ``message_id`` (null where the line belongs to none). The values live in a
:class:`~contextvars.ContextVar`: the worker runtime sets them around each message, the
gateway around each request, and asyncio copies them into every task started from there,
so a handler's own lines (and a background task it starts) carry them without passing
anything around. :class:`LogContextFilter` copies them onto each record; the JSON formatter
(python-json-logger) writes them out.

Formats (``TOILKIT_LOG_FORMAT``): ``json``, one JSON object a line, what CloudWatch Logs
Insights queries; ``text``, the readable console of ``toilkit up`` and the CLI. Unset, it is
``json`` in Lambda and ``text`` elsewhere. Metrics (``TOILKIT_METRICS``, see
:mod:`shared.metrics`) are ``emf`` in Lambda and ``off`` elsewhere unless set.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal, TextIO

from pydantic import Field
from pythonjsonlogger.json import JsonFormatter

from shared.env_settings import EnvConfigDict, EnvSettings

#: The context fields every line carries, in the order they are written.
CONTEXT_FIELDS = ("service", "event_id", "event_type", "correlation_id", "run_id", "message_id")

_context: ContextVar[Mapping[str, str]] = ContextVar("toilkit_log_context", default={})  # noqa: B039 - never mutated, replaced


def running_in_lambda() -> bool:
    """True inside an AWS Lambda execution environment (its runtime sets this variable)."""
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


class ObservabilitySettings(EnvSettings):
    """How a process writes its logs and metrics (``TOILKIT_`` prefix).

    Attributes:
        log_format: ``json`` or ``text``; unset: ``json`` in Lambda, ``text`` elsewhere.
        metrics: ``emf`` (CloudWatch Embedded Metric Format lines on stdout) or ``off``;
            unset: ``emf`` in Lambda, ``off`` elsewhere.
        metrics_namespace: the CloudWatch namespace; unset: the resource-name prefix
            (``TOILKIT_NAME_PREFIX``), so two deployments in one account stay apart.
    """

    model_config = EnvConfigDict(env_prefix="TOILKIT_", extra="ignore")

    log_format: Literal["json", "text"] | None = None
    metrics: Literal["emf", "off"] | None = None
    metrics_namespace: str | None = Field(default=None, min_length=1, max_length=255)

    @property
    def json_logs(self) -> bool:
        if self.log_format is None:
            return running_in_lambda()
        return self.log_format == "json"

    @property
    def emf_metrics(self) -> bool:
        if self.metrics is None:
            return running_in_lambda()
        return self.metrics == "emf"


# --------------------------------------------------------------------------- context


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Add ``fields`` (None values are skipped) to every line logged inside the block,
    and to every task started inside it."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def current_log_context() -> Mapping[str, str]:
    """The fields in force here (tests, and code that hands them to another process)."""
    return _context.get()


def event_log_fields(event: Any) -> dict[str, str | None]:
    """The context fields an event fills in (``run_id`` for batch events)."""
    run_id = getattr(event, "run_id", None)
    return {
        "event_id": getattr(event, "event_id", None),
        "event_type": getattr(event, "type", None),
        "correlation_id": getattr(event, "correlation_id", None),
        "run_id": run_id if isinstance(run_id, str) else None,
    }


class LogContextFilter(logging.Filter):
    """Copies the context fields onto every record that passes (None where unset)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        for name in CONTEXT_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, context.get(name))
        return True


# --------------------------------------------------------------------------- formats


def json_formatter() -> logging.Formatter:
    """One JSON object a line: time, level, logger, message, the context fields, any
    ``extra=`` fields, and the traceback as one string (Lambda's request id when present)."""
    return JsonFormatter(
        ["asctime", "levelname", "name", "message", *CONTEXT_FIELDS],
        rename_fields={
            "asctime": "time",
            "levelname": "level",
            "name": "logger",
            "aws_request_id": "request_id",
        },
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )


def configure_json_logging(level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """JSON lines on every handler of the root logger.

    Where a handler exists already (Lambda's runtime installs one that frames each record
    as one CloudWatch event and adds the request id), it is kept and given the JSON
    formatter; otherwise one handler on ``stream`` (default stderr) is added.
    """
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(stream or sys.stderr))
    for handler in root.handlers:
        handler.setFormatter(json_formatter())
        if not any(isinstance(f, LogContextFilter) for f in handler.filters):
            handler.addFilter(LogContextFilter())
    root.setLevel(level)


def add_context_filter(handler: logging.Handler) -> logging.Handler:
    """Give a handler the context fields (text handlers ignore them unless they format
    them; a JSON handler writes them)."""
    handler.addFilter(LogContextFilter())
    return handler


def configure_function_logging(service: str | None = None) -> None:
    """Logging for a Lambda function (or any process that takes its format from the
    environment): JSON unless ``TOILKIT_LOG_FORMAT=text``; the level is INFO.

    Args:
        service: the process's one service, on every line (also those outside a message).
    """
    if service is not None:
        _context.set({**_context.get(), "service": service})
    if ObservabilitySettings().json_logs:
        configure_json_logging(logging.INFO)
    else:
        logging.getLogger().setLevel(logging.INFO)
