"""What the worker processes the tests start, signal and kill (worker_process.py,
notifier_process.py) share: the "ready" line the test waits for, and the way they exit."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from shared.worker import Worker, WorkerStats, stop_on_signals


async def serve_until_stopped(worker: Worker) -> WorkerStats:
    """Run ``worker`` until SIGTERM/SIGINT drains it, after telling the test it is ready."""
    stop_on_signals(worker.stop)
    print("ready", flush=True)
    return await worker.run()


def run_child_process(main: Callable[[], Coroutine[Any, Any, int]]) -> NoReturn:
    """Run ``main`` with INFO logs on stderr and exit with what it returns."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    sys.exit(asyncio.run(main()))
