"""Exactly-once in effect: how a message is posted once and a thread's parent kept current.

SQS delivers at least once, and a worker can die at any instant. The order of writes is
what keeps a redelivered event from posting a second message:

1. **Claim** (DynamoDB conditional put): "event E is about to post its <role> message to
   channel C". If a record exists already, this is a redelivery: either it holds the
   message's ``ts`` (posted: skip) or it does not (an earlier attempt may have died between
   posting and step 3).
2. **Post**, with the event id and role in the message's Slack ``metadata``. Only when the
   claim was found without a ``ts``, look the message up first in the channel's history (or
   its thread) since the claim time; post only if it is not there.
3. **Complete**: store the ``ts`` with the claim. Only then does the handler return, and
   only then does the worker record the event as handled and delete the SQS message.

A crash before 1 or between 1 and 2 leaves nothing posted and the look-up finds nothing; a
crash between 2 and 3 leaves a message the look-up finds. Either way one message.

A look-up only proves "not posted" once Slack has finished processing every request the
earlier attempt may have sent (see :mod:`services.notifier.slack`): that attempt sent its
last request before its handler timed out (``claimed_at + attempt_window``), and Slack
settles a request within ``settle_seconds``. So a claim found without a ``ts`` is looked up
until ``claimed_at + attempt_window + settle_seconds``; when that is far off, the event is
given back to SQS with that delay (one receive, not five). When the adapter proves that
nothing was posted (:class:`~services.notifier.slack.NotPosted`), the claim is released,
so the retry posts without the wait. (Why not
"write the ts first"? There is no ts before the post; and why not "search without a claim"?
A look-up on every event would cost a history call per message, and Slack rate-limits
history reads hard; the claim makes the look-up the rare path.)

Threads (a run, a drift report) follow the same order with the thread's own record as the
claim: the first event of a thread claims it (conditional put), posts the parent, stores its
``ts``. Two events of one run handled at the same moment cannot both post a parent: the
other one waits for the parent, then updates it. Parent updates are optimistic: read the
view, merge the event, write it back if its version did not move, ``chat.update``, and
update again if another event stored a newer view in the meantime, so the last update Slack
sees always shows the latest view.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, replace
from typing import Generic, TypeVar

from pydantic import BaseModel

from services.notifier.blocks import SlackMessage
from services.notifier.slack import (
    LOOKUP_MARGIN_SECONDS,
    NotPosted,
    Posted,
    PostMarker,
    SlackPort,
)
from services.notifier.store import NotifierStore, PostKey, ThreadKey, ThreadRecord
from shared.errors import PermanentError, TransientError

log = logging.getLogger(__name__)

V = TypeVar("V", bound=BaseModel)

#: Optimistic merges before giving the event back to SQS (many events on one thread at once).
MAX_MERGE_ATTEMPTS = 8
#: The role of a thread's parent message.
PARENT = "parent"
#: Pauses while another event posts a thread's parent: from this, doubling, up to the max.
FOLLOW_FIRST_PAUSE = 0.05
FOLLOW_MAX_PAUSE = 2.0


@dataclass(frozen=True)
class Merged(Generic[V]):
    """A thread after an event was merged into it: the view before and after, the thread."""

    before: V
    after: V
    record: ThreadRecord


@dataclass(eq=False)
class Delivery:
    """Posts messages once and keeps thread parents current.

    Args:
        slack: the Slack adapter.
        store: the notifier's DynamoDB records.
        claim_lease_seconds: how long a thread's first event may take to post the parent
            before another event of the thread may do it instead.
        follow_wait_seconds: how long an event waits for another to post its thread's
            parent before giving its message back to SQS.
        attempt_window_seconds: how long after its claim an attempt may still send a post
            (the worker's handler timeout).
        settle_seconds: how long Slack may take to process a post it received.
        clock: epoch seconds, the store's clock.
    """

    slack: SlackPort
    store: NotifierStore
    _: KW_ONLY
    claim_lease_seconds: float
    follow_wait_seconds: float = 30
    attempt_window_seconds: float = 0
    settle_seconds: float = 0
    clock: Callable[[], float] = time.time

    async def post_once(
        self,
        marker: PostMarker,
        channel: str,
        message: SlackMessage,
        *,
        thread: Posted | None = None,
    ) -> Posted:
        """Post ``message`` unless ``marker``'s message exists already; return where it is.

        Raises:
            TransientError: Slack or DynamoDB failed for now (the event is retried).
            PermanentError: Slack refused the message (the event goes to the DLQ).
        """
        key = PostKey(marker.event_id, marker.role)
        thread_ts = None
        if thread is not None:
            channel, thread_ts = thread.channel, thread.ts
        earlier = await self.store.claim_post(key, channel, thread_ts)
        if earlier is not None and earlier.ts is not None:
            log.info(
                "notifier: %s/%s was posted before (%s)", marker.event_id, marker.role, earlier.ts
            )
            return Posted(earlier.channel, earlier.ts)
        if earlier is not None:
            # An attempt claimed it and did not finish: it may have posted before dying.
            channel, thread_ts = earlier.channel, earlier.thread_ts
            found = await self._find_after_attempt(channel, marker, earlier.claimed_at, thread_ts)
            if found is not None:
                log.info(
                    "notifier: %s/%s was posted by an attempt that died (%s); not posting again",
                    marker.event_id,
                    marker.role,
                    found.ts,
                )
                await self.store.complete_post(key, found.channel, found.ts)
                return found
            await self.store.restamp_post(key)  # the look-up window starts at this attempt
        try:
            posted = await self.slack.post(channel, message, marker=marker, thread_ts=thread_ts)
        except (PermanentError, NotPosted):
            await self.store.release_post(key)
            raise
        await self.store.complete_post(key, posted.channel, posted.ts)
        return posted

    async def open_thread(
        self,
        key: ThreadKey,
        *,
        event_id: str,
        channel: str,
        view: V,
        render: Callable[[V], SlackMessage],
    ) -> tuple[ThreadRecord, bool]:
        """The thread ``key``, with its parent posted by this event if it had none.

        Returns:
            The thread, and whether this call posted its parent (showing ``view``).

        Raises:
            TransientError: another event has been posting the parent for longer than
                ``follow_wait_seconds``.
        """
        deadline = time.monotonic() + self.follow_wait_seconds
        pause = FOLLOW_FIRST_PAUSE
        while True:
            claim = await self.store.claim_thread(
                key,
                owner=event_id,
                channel=channel,
                view_json=view.model_dump_json(),
                lease_seconds=self.claim_lease_seconds,
            )
            if claim.acquired:
                break
            if claim.record.ts is not None:
                return claim.record, False
            # Another event of the thread is posting its parent (maybe waiting out a 429).
            # Waiting here a little keeps this event from burning its SQS receives (and
            # landing in the DLQ) while the other one finishes.
            if time.monotonic() + pause > deadline:
                raise TransientError(
                    f"{key.pk}/{key.sk}: event {claim.record.owner} is posting its first "
                    "message; this event follows once it exists"
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, FOLLOW_MAX_PAUSE)
        # The thread record is also the parent's post claim (no separate post record: two
        # writes fewer per thread). Found without a ts, it was left by an attempt, this
        # event's own or an owner whose lease ran out, that may have posted before dying.
        posted = None
        if claim.previous is not None:
            posted = await self._find_after_attempt(
                claim.previous.channel,
                PostMarker(claim.previous.owner, PARENT),
                claim.previous.claimed_at,
                None,
            )
            if posted is not None:
                log.info(
                    "notifier: the first message of %s/%s was posted by an attempt that "
                    "died (%s); not posting again",
                    key.pk,
                    key.sk,
                    posted.ts,
                )
        if posted is None:
            try:
                posted = await self.slack.post(
                    channel, render(view), marker=PostMarker(event_id, PARENT), thread_ts=None
                )
            except (PermanentError, NotPosted):
                await self.store.release_thread(key, event_id)
                raise
        await self.store.thread_posted(key, channel=posted.channel, ts=posted.ts)
        return replace(claim.record, channel=posted.channel, ts=posted.ts), True

    async def _find_after_attempt(
        self, channel: str, marker: PostMarker, claimed_at: float, thread_ts: str | None
    ) -> Posted | None:
        """The message an attempt that claimed it at ``claimed_at`` and never finished may
        have posted; None only once Slack has settled every request that attempt sent.

        Raises:
            TransientError: not found yet, and Slack may still be processing that attempt's
                last request for longer than one settle period (``retry_after`` says when
                the answer is final).
        """
        since = claimed_at - LOOKUP_MARGIN_SECONDS
        settle_at = claimed_at + self.attempt_window_seconds + self.settle_seconds
        wait = settle_at - self.clock()
        if wait > self.settle_seconds:
            found = await self.slack.find(channel, marker, since=since, thread_ts=thread_ts)
            if found is not None:
                return found
            raise TransientError(
                f"{marker.event_id}/{marker.role}: an attempt that died may still be posting "
                f"it; deciding in {wait:.0f}s, once Slack has settled it",
                retry_after=wait - self.settle_seconds,
            )
        return await self.slack.find(
            channel, marker, since=since, thread_ts=thread_ts, settle_at=settle_at
        )

    async def update_thread(
        self,
        key: ThreadKey,
        model: type[V],
        merge: Callable[[V], V],
        render: Callable[[V], SlackMessage],
    ) -> Merged[V]:
        """Merge an event into a thread's view and show the result in its parent.

        ``chat.update`` runs even when the view did not change: a redelivered event may be
        the retry of one that stored its view and died before updating Slack.

        Returns:
            The views before and after the merge, and the thread.

        Raises:
            TransientError: the thread has no parent yet, or too many events raced.
        """
        for _ in range(MAX_MERGE_ATTEMPTS):
            record = await self.store.get_thread(key)
            if record is None or record.ts is None:
                raise TransientError(f"{key.pk}/{key.sk} has no parent message yet")
            current = model.model_validate_json(record.view_json)
            merged = merge(current)
            version = record.version
            if merged != current:
                saved = await self.store.save_thread_view(
                    key, merged.model_dump_json(), record.version
                )
                if not saved:
                    continue  # another event merged first: merge into theirs
                version += 1
            await self._show_latest(key, model, render, record, merged, version)
            return Merged(current, merged, record)
        raise TransientError(f"{key.pk}/{key.sk}: too many concurrent updates; retrying later")

    async def _show_latest(
        self,
        key: ThreadKey,
        model: type[V],
        render: Callable[[V], SlackMessage],
        record: ThreadRecord,
        view: V,
        version: int,
    ) -> None:
        assert record.ts is not None
        parent = Posted(record.channel, record.ts)
        for _ in range(MAX_MERGE_ATTEMPTS):
            await self.slack.update(parent, render(view))
            latest = await self.store.get_thread(key)
            if latest is None or latest.version <= version:
                return
            # Someone stored a newer view while we updated; their update may have reached
            # Slack before ours, so show the newest one again.
            view, version = model.model_validate_json(latest.view_json), latest.version
        raise TransientError(f"{key.pk}/{key.sk}: parent kept changing; retrying later")
