"""What every toilkit command shares: the consoles, logging, settings and error exits.

Exit codes: 0 success, 1 a failure toilkit explains, 2 bad configuration (the message names
the variable). ``toilkit drift`` keeps 2 for "drift found" and so has its own runner.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Coroutine
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler

from shared.errors import ConfigError, ToilkitError
from shared.observability import ObservabilitySettings, add_context_filter, configure_json_logging
from shared.settings import AwsSettings, TopologySettings, load_settings

#: Messages and logs (stderr); results go to ``out`` (stdout) so they can be piped. Off a
#: terminal (pipes, CI) tables get 100 columns rather than rich's 80, so they stay readable.
_WIDTH = shutil.get_terminal_size(fallback=(100, 24)).columns
console = Console(stderr=True, width=_WIDTH)
out = Console(width=_WIDTH)
T = TypeVar("T")

NOISY_LOGGERS = ("botocore", "aiobotocore", "urllib3", "werkzeug", "moto")


def configure_logging(verbose: bool, level: int = logging.INFO) -> None:
    """Readable lines on the console; JSON lines (with each line's service and event ids)
    when ``TOILKIT_LOG_FORMAT=json`` (containers) or in Lambda."""
    level = logging.DEBUG if verbose else level
    try:
        settings = load_settings(ObservabilitySettings)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    if settings.json_logs:
        logging.getLogger().handlers.clear()
        configure_json_logging(level)
    else:
        handler = RichHandler(console=console, show_path=False, rich_tracebacks=True)
        logging.basicConfig(
            level=level,
            format="%(name)s: %(message)s",
            handlers=[add_context_filter(handler)],
            force=True,
        )
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fail(message: str, code: int) -> typer.Exit:
    """Print an error and return the exit to raise."""
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; turn toilkit's own errors into a clear message and exit 2 or 1."""
    try:
        return asyncio.run(coro)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    except ToilkitError as exc:
        raise fail(str(exc), 1) from None


def cli_settings() -> tuple[AwsSettings, TopologySettings]:
    """Where AWS is and what the resources are called, or exit 2 naming the variable."""
    try:
        return load_settings(AwsSettings), load_settings(TopologySettings)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
