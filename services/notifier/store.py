"""The notifier's records in the shared DynamoDB state table (``pk``/``sk``, TTL ``expires_at``).

Three kinds of item, all under the ``notifier#`` prefix (keys in
:mod:`shared.state_table.keys`):

* **Post records**, one per message the notifier posts, keyed by the event id and the
  message's role (``notifier#post#<event_id>`` / ``<role>``). Written *before* posting with
  status ``posting`` (a conditional put: whoever writes it first owns the post) and
  completed with the message's ``ts`` after. A record found still ``posting`` means an
  earlier attempt may have posted: the message is looked up in Slack before posting again.
* **Threads**, one per batch run (``notifier#run#<run_id>`` / ``thread``) and one per drift
  report (``notifier#drift#<state>`` / ``thread#<set id>``): the parent message's channel
  and ``ts``, the event that posts it (``owner``), and the view the parent shows (zlib-
  compressed JSON) with a version number for optimistic concurrency.
* **Fingerprint pointers** (``notifier#drift#<state>`` / ``fp#<fingerprint>``): which drift
  report currently shows a finding, so a resolution or a claim finds its thread.
"""

from __future__ import annotations

import contextlib
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any

from shared.errors import ConditionFailed
from shared.state_table.access import (
    batch_get,
    batch_put,
    delete_item,
    get_item,
    put_item,
    update_item,
)
from shared.state_table.keys import (
    EXPIRES_AT,
    NOTIFIER_POINTER_PREFIX,
    NOTIFIER_THREAD,
    NOTIFIER_THREAD_PREFIX,
    key,
    notifier_drift_partition,
    notifier_post_partition,
    notifier_run_partition,
)

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

POSTING = "posting"
POSTED = "posted"


@dataclass(frozen=True)
class PostKey:
    event_id: str
    role: str

    @property
    def item_key(self) -> dict[str, Any]:
        return key(notifier_post_partition(self.event_id), self.role)


@dataclass(frozen=True)
class PostRecord:
    """A message the notifier posted, or set out to post."""

    status: str
    channel: str
    thread_ts: str | None
    ts: str | None
    claimed_at: float


@dataclass(frozen=True)
class ThreadKey:
    """A thread's item key; build one with :meth:`run` or :meth:`drift`."""

    pk: str
    sk: str

    @classmethod
    def run(cls, run_id: str) -> ThreadKey:
        return cls(notifier_run_partition(run_id), NOTIFIER_THREAD)

    @classmethod
    def drift(cls, state: str, set_id: str) -> ThreadKey:
        return cls(notifier_drift_partition(state), f"{NOTIFIER_THREAD_PREFIX}{set_id}")

    @property
    def item_key(self) -> dict[str, Any]:
        return key(self.pk, self.sk)


@dataclass(frozen=True)
class ThreadRecord:
    """A thread's parent message and the view it shows.

    ``ts`` is None until the owner has posted the parent.
    """

    owner: str
    channel: str
    ts: str | None
    view_json: str
    version: int
    claimed_at: float


@dataclass(frozen=True)
class ThreadClaim:
    """The result of trying to become the event that posts a thread's parent.

    Attributes:
        acquired: this event now owns the parent post.
        record: the thread as stored after the attempt.
        previous: when acquired over an unfinished claim (this event's own earlier attempt,
            or an owner whose lease ran out): that claim, whose post may have happened.
    """

    acquired: bool
    record: ThreadRecord
    previous: ThreadRecord | None = None


@dataclass(eq=False)
class NotifierStore:
    """The notifier's records.

    Args:
        dynamodb: the process's DynamoDB client.
        table: the shared state table.
        ttl_seconds: how long records live (longer than a drift stays open, in practice).
        clock: epoch seconds; tests inject their own.
    """

    dynamodb: DynamoDBClient
    table: str
    _: KW_ONLY
    ttl_seconds: int = 120 * 86400
    clock: Callable[[], float] = time.time

    def _expires_at(self) -> dict[str, str]:
        return {"N": str(int(self.clock() + self.ttl_seconds))}

    # ------------------------------------------------------------------ posts

    async def claim_post(
        self, key: PostKey, channel: str, thread_ts: str | None
    ) -> PostRecord | None:
        """Record that ``key``'s message is about to be posted.

        Returns:
            None when this call wrote the record (go ahead and post); otherwise the record
            an earlier attempt left (posted, or possibly posted).
        """
        item: dict[str, Any] = {
            **key.item_key,
            "status": {"S": POSTING},
            "channel": {"S": channel},
            "claimed_at": {"N": repr(self.clock())},
            EXPIRES_AT: self._expires_at(),
        }
        if thread_ts:
            item["thread_ts"] = {"S": thread_ts}
        try:
            await put_item(
                self.dynamodb,
                self.table,
                item,
                what="notifier post claim",
                condition="attribute_not_exists(pk)",
            )
        except ConditionFailed:
            existing = await self._get(key.item_key)
            if existing is None:  # expired between the two calls: claim again
                return await self.claim_post(key, channel, thread_ts)
            return _post_record(existing)
        return None

    async def restamp_post(self, key: PostKey) -> None:
        """Move a claim's ``claimed_at`` to now, before an attempt that found it without a
        ``ts`` (and settled it as not posted) posts again: a later attempt then waits for
        Slack to settle *this* attempt's requests, not only the first one's."""
        await update_item(
            self.dynamodb,
            self.table,
            key.item_key,
            "SET claimed_at = :now",
            what="notifier post",
            values={":now": {"N": repr(self.clock())}},
        )

    async def complete_post(self, key: PostKey, channel: str, ts: str) -> None:
        """Remember the posted message's channel and ``ts``."""
        await update_item(
            self.dynamodb,
            self.table,
            key.item_key,
            "SET #status = :posted, channel = :channel, ts = :ts",
            what="notifier post",
            values={":posted": {"S": POSTED}, ":channel": {"S": channel}, ":ts": {"S": ts}},
            names={"#status": "status"},
        )

    async def release_post(self, key: PostKey) -> None:
        """Forget a claim whose post Slack refused for good (nothing was posted)."""
        await self._delete_if(
            "notifier post",
            key.item_key,
            "#status = :posting",
            {"#status": "status"},
            {":posting": {"S": POSTING}},
        )

    # ------------------------------------------------------------------ threads

    async def claim_thread(
        self,
        key: ThreadKey,
        *,
        owner: str,
        channel: str,
        view_json: str,
        lease_seconds: float,
    ) -> ThreadClaim:
        """Become the event that posts a thread's parent, unless it exists or is being posted.

        The claim succeeds when there is no thread yet, when this event owned it already
        (a redelivery), or when its owner claimed it more than ``lease_seconds`` ago and
        never posted (it died, or its message went to the DLQ).
        """
        now = self.clock()
        item: dict[str, Any] = {
            **key.item_key,
            "owner": {"S": owner},
            "channel": {"S": channel},
            "view": {"B": _pack(view_json)},
            "version": {"N": "1"},
            "claimed_at": {"N": repr(now)},
            EXPIRES_AT: self._expires_at(),
        }
        try:
            old = await put_item(
                self.dynamodb,
                self.table,
                item,
                what="notifier thread claim",
                condition=(
                    "attribute_not_exists(pk) OR (attribute_not_exists(ts) AND "
                    "(#owner = :owner OR claimed_at < :stale))"
                ),
                names={"#owner": "owner"},
                values={":owner": {"S": owner}, ":stale": {"N": repr(now - lease_seconds)}},
                return_old=True,
            )
        except ConditionFailed:
            existing = await self.get_thread(key)
            if existing is None:  # expired between the two calls
                return await self.claim_thread(
                    key,
                    owner=owner,
                    channel=channel,
                    view_json=view_json,
                    lease_seconds=lease_seconds,
                )
            return ThreadClaim(acquired=False, record=existing)
        return ThreadClaim(
            acquired=True,
            record=_thread_record(item),
            previous=_thread_record(old) if old else None,
        )

    async def thread_posted(self, key: ThreadKey, *, channel: str, ts: str) -> None:
        """Remember the parent message of a thread."""
        await update_item(
            self.dynamodb,
            self.table,
            key.item_key,
            "SET channel = :channel, ts = :ts",
            what="notifier thread",
            values={":channel": {"S": channel}, ":ts": {"S": ts}},
        )

    async def release_thread(self, key: ThreadKey, owner: str) -> None:
        """Give up a thread claim whose parent Slack refused for good."""
        await self._delete_if(
            "notifier thread",
            key.item_key,
            "#owner = :owner AND attribute_not_exists(ts)",
            {"#owner": "owner"},
            {":owner": {"S": owner}},
        )

    async def get_thread(self, key: ThreadKey) -> ThreadRecord | None:
        item = await self._get(key.item_key)
        return None if item is None else _thread_record(item)

    async def save_thread_view(self, key: ThreadKey, view_json: str, expected_version: int) -> bool:
        """Store a new view if nobody else stored one since ``expected_version``.

        Returns:
            False when another event got there first (read again and merge again).
        """
        try:
            await update_item(
                self.dynamodb,
                self.table,
                key.item_key,
                "SET #view = :view, version = :next",
                what="notifier thread view",
                values={
                    ":view": {"B": _pack(view_json)},
                    ":next": {"N": str(expected_version + 1)},
                    ":expected": {"N": str(expected_version)},
                },
                names={"#view": "view"},
                condition="version = :expected",
            )
        except ConditionFailed:
            return False
        return True

    # ------------------------------------------------------------------ fingerprints

    async def drift_pointers(self, state: str, fingerprints: Iterable[str]) -> dict[str, str]:
        """fingerprint -> the set id of the drift report that shows it (known ones only)."""
        partition = notifier_drift_partition(state)
        keys = [
            key(partition, f"{NOTIFIER_POINTER_PREFIX}{fp}") for fp in dict.fromkeys(fingerprints)
        ]
        items = await batch_get(self.dynamodb, self.table, keys, what="notifier pointers")
        return {
            item["sk"]["S"].removeprefix(NOTIFIER_POINTER_PREFIX): item["set_id"]["S"]
            for item in items
        }

    async def point_drift(self, state: str, fingerprints: Iterable[str], set_id: str) -> None:
        """Make ``set_id`` the report that shows each of ``fingerprints``."""
        expires_at = self._expires_at()
        partition = notifier_drift_partition(state)
        items = [
            key(partition, f"{NOTIFIER_POINTER_PREFIX}{fp}")
            | {"set_id": {"S": set_id}, EXPIRES_AT: expires_at}
            for fp in dict.fromkeys(fingerprints)
        ]
        await batch_put(self.dynamodb, self.table, items, what="notifier pointers")

    # ------------------------------------------------------------------ helpers

    async def _delete_if(
        self,
        what: str,
        key: dict[str, Any],
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
    ) -> None:
        """Delete ``key`` if ``condition`` holds; when it does not, someone else owns the
        item now and it is left alone."""
        with contextlib.suppress(ConditionFailed):
            await delete_item(
                self.dynamodb,
                self.table,
                key,
                what=what,
                condition=condition,
                names=names,
                values=values,
            )

    async def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        return await get_item(self.dynamodb, self.table, key, what="notifier")


def _pack(text: str) -> bytes:
    return zlib.compress(text.encode("utf-8"), 6)


def _unpack(data: bytes) -> str:
    return zlib.decompress(data).decode("utf-8")


def _post_record(item: dict[str, Any]) -> PostRecord:
    return PostRecord(
        status=item["status"]["S"],
        channel=item["channel"]["S"],
        thread_ts=item.get("thread_ts", {}).get("S"),
        ts=item.get("ts", {}).get("S"),
        claimed_at=float(item["claimed_at"]["N"]),
    )


def _thread_record(item: dict[str, Any]) -> ThreadRecord:
    return ThreadRecord(
        owner=item["owner"]["S"],
        channel=item["channel"]["S"],
        ts=item.get("ts", {}).get("S"),
        view_json=_unpack(item["view"]["B"]),
        version=int(item["version"]["N"]),
        claimed_at=float(item["claimed_at"]["N"]),
    )
