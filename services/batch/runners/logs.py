"""A run's log: streamed to CloudWatch Logs and to a local file, with the last lines kept.

CloudWatch is where a log link points on AWS; the local file is what a developer opens
on the embedded stack. Losing CloudWatch never fails a run: the file and the tail keep
working and the failure is logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from shared.aws import call_aws, error_code

log = logging.getLogger(__name__)

#: CloudWatch takes at most 10,000 events or ~1 MiB per PutLogEvents.
_MAX_BATCH_EVENTS = 1000
_MAX_BATCH_BYTES = 900_000
#: A line longer than this is cut (one runaway line must not make a huge event).
MAX_LINE_CHARS = 8192
#: Lines waiting for CloudWatch beyond this are left to the local file only (a command
#: printing faster than CloudWatch takes it must not fill the service's memory).
MAX_PENDING_EVENTS = 50_000


def console_log_url(region: str, group: str, stream: str) -> str:
    """The CloudWatch console page of one log stream."""

    def encode(part: str) -> str:
        # The console's own double encoding, with '$' for '%'.
        return quote(quote(part, safe=""), safe="").replace("%", "$")

    return (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logsV2:log-groups/log-group/{encode(group)}/log-events/{encode(stream)}"
    )


class RunLog:
    """One run's log. Write lines; :meth:`close` flushes everything.

    Args:
        logs: the CloudWatch Logs client (None: local file only).
        group: the log group; the stream is the run id.
        stream: the log stream name.
        path: the local copy.
        tail_lines: how many last lines :attr:`tail` keeps.
        url: the link shown in Slack.
        flush_every: seconds between CloudWatch writes.
    """

    def __init__(
        self,
        *,
        logs: Any | None,
        group: str,
        stream: str,
        path: Path,
        tail_lines: int,
        url: str | None,
        flush_every: float = 1.0,
    ) -> None:
        self._logs: Any = logs
        self.group = group
        self.stream = stream
        self.path = path
        self.url = url
        self.tail: deque[str] = deque(maxlen=tail_lines)
        self._pending: list[dict[str, Any]] = []
        self._file = path.open("a", encoding="utf-8")
        self._flush_every = flush_every
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._cloudwatch_ok = logs is not None
        self._skipped = 0

    async def open(self) -> None:
        """Create the log stream and start the periodic flush."""
        if self._logs is not None:
            try:
                await ensure_log_stream(self._logs, self.group, self.stream)
            except Exception as exc:
                self._give_up_on_cloudwatch(exc)
        self._flusher = asyncio.create_task(self._flush_periodically())

    def write(self, line: str) -> None:
        """Add one line (without its newline)."""
        if len(line) > MAX_LINE_CHARS:
            line = line[:MAX_LINE_CHARS] + " [line cut]"
        self.tail.append(line)
        self._file.write(line + "\n")
        if not self._cloudwatch_ok:
            return
        if len(self._pending) >= MAX_PENDING_EVENTS:
            self._skipped += 1
            return
        if self._skipped:
            note = f"[{self._skipped} lines skipped here: CloudWatch fell behind; see {self.path}]"
            self._pending.append({"timestamp": int(time.time() * 1000), "message": note})
            self._skipped = 0
        self._pending.append({"timestamp": int(time.time() * 1000), "message": line or " "})
        if len(self._pending) >= _MAX_BATCH_EVENTS:
            self._wake.set()

    async def close(self) -> None:
        """Flush what is left and close the file."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self._flush()
        self._file.close()

    async def _flush_periodically(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_every)
            self._wake.clear()
            await self._flush()

    async def _flush(self) -> None:
        self._file.flush()
        while self._pending and self._cloudwatch_ok:
            batch: list[dict[str, Any]] = []
            size = 0
            while self._pending and len(batch) < _MAX_BATCH_EVENTS:
                event_size = len(self._pending[0]["message"].encode()) + 26
                if batch and size + event_size > _MAX_BATCH_BYTES:
                    break
                batch.append(self._pending.pop(0))
                size += event_size
            put = functools.partial(
                self._logs.put_log_events,
                logGroupName=self.group,
                logStreamName=self.stream,
                logEvents=batch,
            )
            try:
                await call_aws("logs.put_log_events", put)
            except Exception as exc:
                self._give_up_on_cloudwatch(exc)

    def _give_up_on_cloudwatch(self, exc: BaseException) -> None:
        log.warning(
            "run log %s: cannot write to CloudWatch Logs %s (%s); keeping the local copy %s",
            self.stream,
            self.group,
            exc,
            self.path,
        )
        self._cloudwatch_ok = False
        self._pending.clear()


async def ensure_log_stream(logs: Any, group: str, stream: str) -> None:
    """Create the group (once) and the stream; both may exist already."""
    for action, call in (
        ("logs.create_log_group", lambda: logs.create_log_group(logGroupName=group)),
        (
            "logs.create_log_stream",
            lambda: logs.create_log_stream(logGroupName=group, logStreamName=stream),
        ),
    ):
        try:
            await call_aws(action, call)
        except Exception as exc:
            if error_code(exc.__cause__ or exc) != "ResourceAlreadyExistsException":
                raise


async def read_log_tail(logs: Any, group: str, stream: str, lines: int) -> tuple[str, ...]:
    """The last ``lines`` messages of a log stream ('' when it cannot be read)."""
    try:
        response = await call_aws(
            "logs.get_log_events",
            lambda: logs.get_log_events(
                logGroupName=group, logStreamName=stream, limit=lines, startFromHead=False
            ),
        )
    except Exception as exc:
        log.info("cannot read the log tail of %s/%s: %s", group, stream, exc)
        return ()
    return tuple(str(e.get("message", "")).rstrip("\n") for e in response.get("events", []))


def safe_name(run_id: str) -> str:
    """A run id as a file or log stream name (no path separators, no leading dot)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)[:200]
    return cleaned.lstrip(".") or "run"


@dataclass(frozen=True, kw_only=True)
class RunLogs:
    """Opens run logs: a CloudWatch stream named after the run and a file in ``log_dir``.

    Args:
        logs: the CloudWatch Logs client (None: files only).
        group: the log group.
        log_dir: where the local copies go.
        region: for console links.
        console_links: link the CloudWatch console (True) or the local file (False).
        tail_lines: how many last lines a run's outcome carries.
    """

    logs: Any | None
    group: str
    log_dir: Path
    region: str
    console_links: bool
    tail_lines: int

    def path_of(self, run_id: str) -> Path:
        return self.log_dir / f"{safe_name(run_id)}.log"

    async def __call__(self, run_id: str) -> RunLog:
        stream = safe_name(run_id)
        path = self.path_of(run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        url = (
            console_log_url(self.region, self.group, stream)
            if self.console_links
            else path.resolve().as_uri()
        )
        run_log = RunLog(
            logs=self.logs,
            group=self.group,
            stream=stream,
            path=path,
            tail_lines=self.tail_lines,
            url=url,
        )
        await run_log.open()
        return run_log
