"""Local runs a batch service left behind when it died, found and stopped.

A local run is a process group of the batch service (``start_new_session``). If the
service is killed (SIGKILL, OOM, a crash), the group keeps running as an orphan: nobody
reads its output (a command that prints dies of SIGPIPE, one that does not runs on), nobody
enforces its timeout, and no process can read its exit status any more (only a parent
can). Re-attaching to it would be watching half a run, so the restarted service stops it
instead, and only then frees the run's concurrency slot: a ``concurrency: 1`` command never
has two runs at once.

The run's ``runner_ref`` records the group and who started it:
``<host>:<service pid>:<pgid>:<start>``, where ``<start>`` is the group leader's start
time (clock ticks since boot, ``/proc/<pid>/stat``), so a pid the kernel reused for an
unrelated process is never signalled. A run that died while starting has no ref yet; its
processes are found by the ``TOILKIT_RUN_ID`` the runner puts in their environment.

Linux only (``/proc``); elsewhere the group is signalled by its id alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

from services.batch.runners.base import RUN_ID_VARIABLE

PROC = Path("/proc")
#: How often a group is checked while it stops.
POLL_SECONDS = 0.1
#: How long a group may take to disappear after SIGKILL.
KILL_WAIT_SECONDS = 5.0


def this_process() -> str:
    """``<host>:<pid>`` of this process: the owner a run record names, and the start of the
    ``runner_ref`` of the groups it starts."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class GroupRef:
    """A local run's process group, as recorded in its ``runner_ref``."""

    host: str
    service_pid: int
    pgid: int
    start: int | None = None

    def __str__(self) -> str:
        base = f"{self.host}:{self.service_pid}:{self.pgid}"
        return base if self.start is None else f"{base}:{self.start}"

    @classmethod
    def parse(cls, ref: str | None) -> GroupRef | None:
        """The group of a ``runner_ref`` (older refs have no start time); None if it is
        not a local ref."""
        parts = (ref or "").split(":")
        if len(parts) not in (3, 4):
            return None
        try:
            numbers = [int(p) for p in parts[1:]]
        except ValueError:
            return None
        return cls(parts[0], numbers[0], numbers[1], numbers[2] if len(numbers) == 3 else None)

    @classmethod
    def of_leader(cls, service_pid: int, pgid: int) -> GroupRef:
        return cls(socket.gethostname(), service_pid, pgid, start_time(pgid))


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), None if unknown or gone."""
    fields = _stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def members(pgid: int) -> list[int]:
    """The live (not zombie) processes of group ``pgid``."""
    if not PROC.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields and fields[0] != "Z" and fields[2] == str(pgid):
            found.append(int(entry.name))
    return found


def is_still_ours(ref: GroupRef) -> bool:
    """Whether the recorded group still runs (and is the one recorded, not a reused id)."""
    if not members(ref.pgid):
        return False
    leader_start = start_time(ref.pgid)
    if leader_start is None or ref.start is None:
        # The leader exited but members remain: a group id is not reused while the group
        # exists. Or an older ref without a start time: its group id is all there is.
        return True
    return leader_start == ref.start


def groups_of_run(run_id: str) -> set[int]:
    """The process groups whose processes carry ``TOILKIT_RUN_ID=<run_id>``."""
    wanted = f"{RUN_ID_VARIABLE}={run_id}".encode()
    groups: set[int] = set()
    if not PROC.is_dir():
        return groups
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if wanted in environ.split(b"\0"):
            fields = _stat(int(entry.name))
            if fields and fields[0] != "Z":
                groups.add(int(fields[2]))
    return groups


async def stop_group(pgid: int, grace: float) -> bool:
    """SIGTERM the group, SIGKILL it after ``grace`` seconds; True once none of it runs."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, KILL_WAIT_SECONDS)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        deadline = asyncio.get_running_loop().time() + wait
        while members(pgid):
            if asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(POLL_SECONDS)
        else:
            return True
    return not members(pgid)
