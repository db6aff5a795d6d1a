"""Fetching ``options_from`` sources, and keeping their lists fresh in the state table.

:func:`fetch_options` reads one source (git, a URL, a command) within its timeout and
raises :class:`OptionsUnavailable` with a short reason a person can read in Slack.
:class:`OptionsRefresher` refreshes the lists of a catalog into the state table
(:mod:`shared.state_table.options`), one fetch per list at a time, keeping the last good
list when a fetch fails. The gateway refreshes ``git`` and ``url`` sources in the
background; the batch service refreshes every kind (it alone runs commands).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import tempfile
import weakref
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeAlias

from pydantic import Field

from shared.errors import PermanentError, TransientError
from shared.events import utc_now
from shared.options import (
    CommandSource,
    GitGlobSource,
    OptionItem,
    OptionsSource,
    UrlSource,
    clean_items,
    git_items,
)
from shared.state_table.options import (
    OptionsList,
    failed,
    read_options,
    succeeded,
    write_options,
)

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

    from shared.catalog import Catalog

log = logging.getLogger(__name__)

#: The most a source may send (a list, or a command's output).
MAX_SOURCE_BYTES = 1024 * 1024
#: Where git sources are fetched when no folder is configured.
DEFAULT_CACHE_DIR = Path(tempfile.gettempdir()) / "toilkit-options"
#: The settings field that names that folder (the gateway's and the batch service's).
OptionsCacheDir: TypeAlias = Annotated[
    Path, Field(description="Where git sources of listed choices are fetched.")
]


class OptionsUnavailable(Exception):
    """A source could not give its list; the message says why, in a few words."""


# --------------------------------------------------------------------------- one source


async def _run(argv: list[str], *, cwd: Path | None, seconds: float) -> bytes:
    """Run a program (no shell) and return its output; its error tail when it fails."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise OptionsUnavailable(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    try:
        async with asyncio.timeout(seconds):
            out, err = await process.communicate()
    except TimeoutError as exc:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise OptionsUnavailable(f"{argv[0]} did not finish within {seconds:g}s") from exc
    if process.returncode != 0:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        raise OptionsUnavailable(f"{argv[0]} failed (exit {process.returncode}): {tail[0][:200]}")
    if len(out) > MAX_SOURCE_BYTES:
        raise OptionsUnavailable(f"{argv[0]} printed more than {MAX_SOURCE_BYTES} bytes")
    return out


def _repository(source: GitGlobSource, base_dir: Path) -> str:
    """The repository as git should be given it: a URL as is, a path made absolute."""
    if "://" in source.repository or source.repository.startswith("git@"):
        return source.repository
    return str((base_dir / source.repository).resolve())


#: One fetch at a time per cache folder, per event loop (a lock belongs to its loop).
_GIT_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Path, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


async def fetch_git(source: GitGlobSource, *, base_dir: Path, cache_dir: Path) -> list[OptionItem]:
    """The files matching the glob at the ref: ``git fetch --depth 1`` into a bare cache
    repository, then ``git ls-tree`` (nothing is checked out)."""
    repository = _repository(source, base_dir)
    folder = cache_dir / "git" / hashlib.sha256(repository.encode()).hexdigest()[:16]
    locks = _GIT_LOCKS.setdefault(asyncio.get_running_loop(), {})
    lock = locks.setdefault(folder, asyncio.Lock())
    async with lock:
        if not (folder / "HEAD").exists():
            folder.mkdir(parents=True, exist_ok=True)
            await _run(["git", "init", "--bare", "--quiet", str(folder)], cwd=None, seconds=30)
        git = ["git", "-C", str(folder)]
        fetch = ["fetch", "--quiet", "--no-tags", "--depth", "1", "--", repository, source.ref]
        await _run(git + fetch, cwd=None, seconds=source.timeout_seconds)
        commit = (await _run([*git, "rev-parse", "FETCH_HEAD"], cwd=None, seconds=30)).strip()
        listing = await _run(
            [*git, "ls-tree", "-r", "-z", "--name-only", commit.decode()], cwd=None, seconds=30
        )
    paths = [p for p in listing.decode("utf-8", "replace").split("\0") if p]
    return git_items(source, paths)


def _parse_list(body: bytes, content_type: str, source: UrlSource) -> list[OptionItem]:
    text = body.decode("utf-8", "replace")
    as_json = source.format == "json" or (
        source.format == "auto" and ("json" in content_type or text.lstrip().startswith("["))
    )
    if not as_json:
        lines = (line.strip() for line in text.splitlines())
        return [OptionItem(value=line) for line in lines if line and not line.startswith("#")]
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise OptionsUnavailable(f"{source.url} did not send JSON: {exc}") from exc
    if not isinstance(data, list):
        raise OptionsUnavailable(f"{source.url} sent JSON {type(data).__name__}, not a list")
    items = []
    for entry in data:
        if isinstance(entry, str | int):
            items.append(OptionItem(value=str(entry)))
        elif isinstance(entry, dict) and isinstance(entry.get("value"), str | int):
            label = entry.get("label", entry.get("text", ""))
            items.append(OptionItem(value=str(entry["value"]), label=str(label or "")))
    return items


async def fetch_url(source: UrlSource) -> list[OptionItem]:
    """The list a URL serves (JSON or one choice a line)."""
    import aiohttp  # noqa: PLC0415 - only where a URL source is refreshed

    try:
        timeout = aiohttp.ClientTimeout(total=source.timeout_seconds)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.get(source.url, allow_redirects=True) as response,
        ):
            if response.status != 200:
                raise OptionsUnavailable(f"{source.url} answered HTTP {response.status}")
            body = await response.content.read(MAX_SOURCE_BYTES + 1)
            content_type = response.content_type
    except TimeoutError as exc:
        raise OptionsUnavailable(
            f"{source.url} did not answer within {source.timeout_seconds:g}s"
        ) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise OptionsUnavailable(f"{source.url} cannot be reached ({type(exc).__name__})") from exc
    if len(body) > MAX_SOURCE_BYTES:
        raise OptionsUnavailable(f"{source.url} sent more than {MAX_SOURCE_BYTES} bytes")
    return _parse_list(body, content_type, source)


async def fetch_command(source: CommandSource, *, base_dir: Path) -> list[OptionItem]:
    """The non-empty output lines of a command (run without a shell)."""
    workdir = (base_dir / source.workdir).resolve()
    out = await _run(list(source.argv), cwd=workdir, seconds=source.timeout_seconds)
    lines = (line.strip() for line in out.decode("utf-8", "replace").splitlines())
    return [OptionItem(value=line) for line in lines if line]


async def fetch_options(
    source: OptionsSource, *, base_dir: Path, cache_dir: Path = DEFAULT_CACHE_DIR
) -> list[OptionItem]:
    """One source's usable choices.

    Raises:
        OptionsUnavailable: the source could not be read; the message says why.
    """
    match source:
        case GitGlobSource():
            items = await fetch_git(source, base_dir=base_dir, cache_dir=cache_dir)
        case UrlSource():
            items = await fetch_url(source)
        case CommandSource():
            items = await fetch_command(source, base_dir=base_dir)
    kept, dropped = clean_items(items)
    if dropped:
        log.info("options from %s: %d unusable or extra choice(s) left out", source.kind, dropped)
    return kept


# --------------------------------------------------------------------------- the lists


@dataclass(frozen=True)
class ListedParameter:
    """A catalog parameter whose choices come from a source."""

    command: str
    parameter: str
    source: OptionsSource


def listed_parameters(catalog: Catalog) -> list[ListedParameter]:
    """Every parameter of the catalog with an ``options_from``."""
    found = []
    for command in catalog.commands:
        for parameter in command.parameters:
            source = getattr(parameter, "options_from", None)
            if source is not None:
                found.append(ListedParameter(command.name, parameter.name, source))
    return found


@dataclass(eq=False)
class OptionsRefresher:
    """Fetches sources and stores their lists in the state table.

    Args:
        catalog: the catalog (its folder is where relative paths start).
        dynamodb: the DynamoDB client.
        table: the state table.
        kinds: the source kinds this process fetches (the gateway: git and url).
        cache_dir: where git sources are fetched.
        clock: the current time.
    """

    catalog: Catalog
    dynamodb: DynamoDBClient
    table: str
    _: KW_ONLY
    kinds: frozenset[str] = frozenset({"git", "url", "command"})
    cache_dir: Path = DEFAULT_CACHE_DIR
    clock: Callable[[], datetime] = utc_now
    _in_flight: dict[tuple[str, str], asyncio.Future[OptionsList]] = field(
        default_factory=dict, init=False
    )

    def fetches(self, source: OptionsSource) -> bool:
        return source.kind in self.kinds

    async def refresh(self, listed: ListedParameter, previous: OptionsList | None) -> OptionsList:
        """Fetch one list and store it; a refresh already under way is joined, not repeated."""
        name = (listed.command, listed.parameter)
        running = self._in_flight.get(name)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[OptionsList] = asyncio.get_running_loop().create_future()
        self._in_flight[name] = future
        try:
            record = await self._fetch_and_store(listed, previous)
            future.set_result(record)
            return record
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            del self._in_flight[name]

    async def _fetch_and_store(
        self, listed: ListedParameter, previous: OptionsList | None
    ) -> OptionsList:
        fingerprint = listed.source.fingerprint()
        try:
            items = await fetch_options(
                listed.source, base_dir=self.catalog.base_dir(), cache_dir=self.cache_dir
            )
        except OptionsUnavailable as exc:
            log.warning("options of %s.%s unavailable: %s", listed.command, listed.parameter, exc)
            record = failed(
                previous, listed.command, listed.parameter, fingerprint, str(exc), self.clock()
            )
        else:
            record = succeeded(
                previous, listed.command, listed.parameter, fingerprint, items, self.clock()
            )
        await write_options(self.dynamodb, self.table, record)
        return record

    async def read(self, listed: ListedParameter) -> OptionsList | None:
        return await read_options(self.dynamodb, self.table, listed.command, listed.parameter)

    async def refresh_due(self) -> int:
        """Refresh every list this process fetches that is missing or older than its TTL;
        how many were refreshed. A list that cannot be read or written is skipped (logged)."""
        refreshed = 0
        for listed in listed_parameters(self.catalog):
            if not self.fetches(listed.source):
                continue
            try:
                previous = await self.read(listed)
                source = listed.source
                if previous is not None and previous.fresh(
                    source.fingerprint(), source.ttl_seconds, self.clock()
                ):
                    continue
                await self.refresh(listed, previous)
                refreshed += 1
            except (TransientError, PermanentError) as exc:
                log.error(
                    "refreshing the options of %s.%s failed: %s",
                    listed.command,
                    listed.parameter,
                    exc,
                )
        return refreshed
