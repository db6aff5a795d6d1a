"""Live progress: a running run's parent message updated with its log tail and elapsed time.

:class:`ProgressUpdates` handles :class:`~shared.events.BatchRunProgress`. Unlike the run's
lifecycle events, a progress event is worth showing only while it is the newest, so it is
dropped rather than waited for or retried:

* **No parent yet** (the start has not been posted): dropped; it never posts a thread.
* **Not newer** than what the parent shows (its ``sequence``), or the run is no longer
  running: dropped. A progress event can therefore never overwrite the final message.
* **Too soon**: within ``min_interval`` seconds of the last progress update of that run
  (a second guard behind the batch service's interval).
* **Rate-limited**: a 429 from ``chat.update`` is not waited out (the update would be stale
  by then): every progress update is skipped until its ``Retry-After`` has passed. The
  start and finish updates use the adapter's normal client, which waits it out and lands.

The view is merged into the thread's record with the same optimistic versioning as every
other run event (:mod:`services.notifier.delivery`), so a finish and a progress handled at
the same moment cannot both win. After its ``chat.update``, the handler reads the record
again: if a newer view (a finish) was stored meanwhile, it shows that one, so the last
update Slack sees is always the newest view.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Protocol

from services.notifier.blocks import SlackMessage, render_run
from services.notifier.slack import Posted, RateLimited
from services.notifier.store import NotifierStore, ThreadKey, ThreadRecord
from services.notifier.views import RunView, with_progress
from shared.errors import ToilkitError
from shared.events import BatchRunProgress

log = logging.getLogger(__name__)

#: Optimistic merges before giving up on one progress event (the next one follows).
MAX_PROGRESS_MERGES = 3


class ProgressSlack(Protocol):
    """What progress needs from the Slack adapter."""

    async def update(self, posted: Posted, message: SlackMessage) -> None: ...

    async def update_unless_limited(self, posted: Posted, message: SlackMessage) -> None: ...


@dataclass(eq=False)
class ProgressUpdates:
    """Shows live progress in run messages, newest only, within Slack's rate limits.

    Args:
        slack: the Slack adapter.
        store: the notifier's records (the run's thread and its view).
        min_interval: the least seconds between two progress updates of one run.
        clock: monotonic seconds (tests pass their own).
    """

    slack: ProgressSlack
    store: NotifierStore
    _: KW_ONLY
    min_interval: float
    clock: Callable[[], float] = time.monotonic
    _limited_until: float = field(default=0.0, init=False)
    _last_update: dict[str, float] = field(default_factory=dict, init=False)

    async def on_run_progress(self, event: BatchRunProgress) -> None:
        """Show the run's newest log tail and elapsed time in its parent, if it is due."""
        now = self.clock()
        if now < self._limited_until:
            log.debug("notifier: progress of %s skipped (rate-limited)", event.run_id)
            return
        last = self._last_update.get(event.run_id)
        if last is not None and now - last < self.min_interval:
            return
        key = ThreadKey.run(event.run_id)
        stored = await self._merge(key, event)
        if stored is None:
            return
        record, view = stored
        assert record.ts is not None
        parent = Posted(record.channel, record.ts)
        self._last_update[event.run_id] = now
        try:
            await self.slack.update_unless_limited(parent, render_run(view))
        except RateLimited as exc:
            # Not applied, so nothing to correct; the stored view shows with the next one.
            self._limited_until = self.clock() + exc.retry_after
            log.info("notifier: %s; skipping progress updates until then", exc)
            return
        except ToilkitError as exc:
            # Not retried: a newer progress (or the finish) follows and shows the view.
            log.warning("notifier: progress of %s not shown: %s", event.run_id, exc)
        await self._show_newer(key, parent, record.version + 1)

    async def _merge(
        self, key: ThreadKey, event: BatchRunProgress
    ) -> tuple[ThreadRecord, RunView] | None:
        """The thread with the progress stored in its view; None when there is nothing to
        show (no parent yet, the run is not running, or the progress is not newer)."""
        for _ in range(MAX_PROGRESS_MERGES):
            record = await self.store.get_thread(key)
            if record is None or record.ts is None:
                log.info("notifier: progress of %s before its message; skipped", event.run_id)
                return None
            current = RunView.model_validate_json(record.view_json)
            merged = with_progress(current, event)
            if merged == current:
                if current.is_terminal:
                    self._last_update.pop(event.run_id, None)
                return None
            if await self.store.save_thread_view(key, merged.model_dump_json(), record.version):
                return record, merged
        log.info(
            "notifier: progress of %s lost %d races; skipped", event.run_id, MAX_PROGRESS_MERGES
        )
        return None

    async def _show_newer(self, key: ThreadKey, parent: Posted, version: int) -> None:
        """Show the thread's view again if an event stored a newer one while this progress
        was on its way to Slack (its update may have landed after theirs)."""
        latest = await self.store.get_thread(key)
        if latest is None or latest.version <= version:
            return
        view = RunView.model_validate_json(latest.view_json)
        await self.slack.update(parent, render_run(view))
