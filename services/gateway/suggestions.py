"""Choices from elsewhere in the run modal: Slack's ``block_suggestion``, answered at once.

A ``choice`` parameter with ``options_from`` is an ``external_select``: as the person types,
Slack asks the gateway for options and waits at most 3 seconds. :class:`ListedOptions`
answers from what it holds in memory (read from the state table, where the lists are
kept), and never waits on a source: a list that is missing or older than its TTL is
fetched in the background (stale-while-revalidate) for ``git`` and ``url`` sources, while
the batch service refreshes every kind (``command`` ones only there). A list that cannot
be had is shown as one option saying so (``list unavailable: <reason>``), so the modal
still opens and says why.

On submission the chosen value must be in the current list, or the last good one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from typing import Any

from shared.catalog import Catalog, ChoiceParameter
from shared.errors import PermanentError, TransientError
from shared.events import utc_now
from shared.options import UNAVAILABLE_VALUE, OptionItem, OptionsSource, filter_items
from shared.options_fetch import ListedParameter, OptionsRefresher
from shared.slack.blocks import MAX_OPTION_TEXT, MAX_OPTIONS, option
from shared.state_table.options import OptionsList

log = logging.getLogger(__name__)

ReadList = Callable[[str, str], Awaitable[OptionsList | None]]


@dataclass
class _Held:
    record: OptionsList | None
    loaded_at: float
    #: Why the state table could not be read (None: it was).
    problem: str | None = None

    def newer_than(self, record: OptionsList | None) -> bool:
        """Whether the held list was seen at its source after ``record`` was."""
        if self.record is None or record is None:
            return False
        return self.record.last_seen() > record.last_seen()


def unavailable_option(reason: str) -> dict[str, Any]:
    """The one option shown when there is no list: it says why (and is never accepted)."""
    return option(f"list unavailable: {reason}"[:MAX_OPTION_TEXT], UNAVAILABLE_VALUE)


@dataclass(eq=False)
class ListedOptions:
    """The lists of choices the gateway shows, held in memory over the state table.

    Args:
        catalog: the catalog.
        read: reads one list from the state table (command, parameter).
        refresher: fetches sources into the state table (None: this gateway fetches none).
        read_timeout: the longest a suggestion waits for the state table (the first time a
            list is asked for; later it is answered from memory and re-read behind).
        reload_seconds: how long a list read from the state table is used before it is
            read again (in the background).
        clock: the current time.
    """

    catalog: Catalog
    read: ReadList
    refresher: OptionsRefresher | None
    _: KW_ONLY
    read_timeout: float = 1.0
    reload_seconds: float = 10.0
    clock: Callable[[], datetime] = utc_now
    _held: dict[tuple[str, str], _Held] = field(default_factory=dict, init=False, repr=False)
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict, init=False, repr=False)

    # ------------------------------------------------------------ what Slack asks

    async def suggest(self, command: str, parameter: str, typed: str) -> dict[str, Any]:
        """The ``block_suggestion`` answer: ``{"options": [...]}`` (at most 100)."""
        listed = self.listed(command, parameter)
        if listed is None:
            return {"options": [unavailable_option(f"{command} has no list named {parameter}")]}
        held = await self._hold(listed)
        record = held.record
        fingerprint = listed.source.fingerprint()
        if record is None or not record.usable(fingerprint):
            return {"options": [unavailable_option(self._why_none(held, listed.source))]}
        found = filter_items(record.items, typed[:MAX_OPTION_TEXT], MAX_OPTIONS)
        return {"options": [option(item.text, item.value) for item in found]}

    async def problem(self, command: str, parameter: str, value: str) -> str | None:
        """Why ``value`` is refused for a listed parameter (None: it is in the list)."""
        listed = self.listed(command, parameter)
        if listed is None:
            return None
        if value == UNAVAILABLE_VALUE:
            return "The list of choices is unavailable just now; try again in a minute."
        held = await self._hold(listed)
        record = held.record
        if record is None or not record.usable(listed.source.fingerprint()):
            why = self._why_none(held, listed.source)
            return f"The list of choices cannot be checked ({why}); try again in a minute."
        if value in record.values():
            return None
        return f"{value[:80]!r} is not in the list from {listed.source.describe()[:120]}."

    def listed(self, command: str, parameter: str) -> ListedParameter | None:
        spec = self.catalog.command(command)
        found = spec.parameter(parameter) if spec else None
        if isinstance(found, ChoiceParameter) and found.options_from is not None:
            return ListedParameter(command, parameter, found.options_from)
        return None

    def listed_items(self, command: str, parameter: str) -> tuple[OptionItem, ...]:
        """What is in memory for a list now (for tests and logs)."""
        held = self._held.get((command, parameter))
        return held.record.items if held and held.record else ()

    # ------------------------------------------------------------ memory and refresh

    async def _hold(self, listed: ListedParameter) -> _Held:
        """The list in memory; read from the state table (bounded) the first time, re-read
        behind the answer when old, and fetched from its source behind it when stale."""
        name = (listed.command, listed.parameter)
        held = self._held.get(name)
        if held is None:
            held = await self._load(listed)
        elif time.monotonic() - held.loaded_at > self.reload_seconds:
            self._behind(f"reload {name}", self._reload(listed))
        self._refresh_if_stale(listed, held.record)
        return held

    async def _load(self, listed: ListedParameter) -> _Held:
        name = (listed.command, listed.parameter)
        try:
            async with asyncio.timeout(self.read_timeout):
                record = await self.read(listed.command, listed.parameter)
        except (TimeoutError, TransientError, PermanentError) as exc:
            log.warning("reading the options of %s.%s failed: %s", *name, exc)
            # Not kept: the next suggestion tries the state table again.
            return _Held(None, time.monotonic(), "the list could not be read just now")
        return self._keep(listed, record)

    async def _reload(self, listed: ListedParameter) -> None:
        try:
            record = await self.read(listed.command, listed.parameter)
        except (TransientError, PermanentError) as exc:
            log.warning(
                "re-reading options of %s.%s failed: %s", listed.command, listed.parameter, exc
            )
            return
        self._keep(listed, record)

    def _keep(self, listed: ListedParameter, record: OptionsList | None) -> _Held:
        """Hold ``record`` unless what is held is newer: a re-read of the state table that
        started before a fetch behind it finished must not put the older list back."""
        name = (listed.command, listed.parameter)
        held = self._held.get(name)
        if held is not None and held.newer_than(record):
            return held
        held = _Held(record, time.monotonic())
        self._held[name] = held
        return held

    def _refresh_if_stale(self, listed: ListedParameter, record: OptionsList | None) -> None:
        refresher = self.refresher
        source = listed.source
        if refresher is None or not refresher.fetches(source):
            return
        if record is not None and record.fresh(
            source.fingerprint(), source.ttl_seconds, self.clock()
        ):
            return

        async def refresh() -> None:
            try:
                fetched = await refresher.refresh(listed, record)
            except (TransientError, PermanentError) as exc:
                log.error(
                    "storing options of %s.%s failed: %s", listed.command, listed.parameter, exc
                )
                return
            self._keep(listed, fetched)

        self._behind(f"refresh {listed.command}.{listed.parameter}", refresh())

    def _behind(self, what: str, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` behind the answer, once at a time per ``what``."""
        if what in self._tasks:
            work.close()
            return
        task = asyncio.get_running_loop().create_task(work, name=what)
        self._tasks[what] = task
        task.add_done_callback(lambda _: self._tasks.pop(what, None))

    def _why_none(self, held: _Held, source: OptionsSource) -> str:
        if held.problem:
            return held.problem
        record = held.record
        if record is not None and record.error and record.fingerprint == source.fingerprint():
            return record.error
        if self.refresher is None or not self.refresher.fetches(source):
            return f"the batch service has not listed the {source.kind} source yet"
        return "still loading, try again in a moment"

    async def join(self) -> None:
        """Wait for what runs behind the answers (tests; a stop)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def aclose(self, grace_seconds: float) -> None:
        """Give background refreshes ``grace_seconds``, then cancel them."""
        try:
            async with asyncio.timeout(grace_seconds):
                await self.join()
        except TimeoutError:
            for task in list(self._tasks.values()):
                task.cancel()
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)
