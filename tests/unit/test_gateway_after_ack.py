"""Work after the ack (bounded, urgent first, drained on stop) and the in-process request
record that answers Slack's retries and replays."""

from __future__ import annotations

import asyncio
import warnings

from services.gateway.background import AfterAck
from services.gateway.ledger import RecentRequests


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_request_is_recognised_until_it_is_forgotten() -> None:
    clock = Clock()
    recent = RecentRequests(remember_seconds=900, clock=clock)

    assert recent.sight("a")
    assert not recent.sight("a")
    clock.now = 899
    assert not recent.sight("a")
    clock.now = 900
    assert recent.sight("a")


def test_the_record_is_bounded_oldest_first() -> None:
    recent = RecentRequests(remember_seconds=900, max_entries=2, clock=Clock())

    assert recent.sight("a") and recent.sight("b") and recent.sight("c")

    assert recent.sight("a")  # forgotten to make room
    assert not recent.sight("c")


async def test_at_most_n_pieces_run_at_once_and_urgent_work_does_not_wait() -> None:
    after_ack = AfterAck(concurrency=2)
    release = asyncio.Event()
    running: list[str] = []

    async def piece(name: str) -> None:
        running.append(name)
        await release.wait()

    for name in ("a", "b", "c"):
        after_ack.spawn(piece(name), name)
    after_ack.spawn(piece("urgent"), "urgent", urgent=True)
    for _ in range(5):
        await asyncio.sleep(0)

    assert sorted(running) == ["a", "b", "urgent"]
    release.set()
    await after_ack.join()
    assert sorted(running) == ["a", "b", "c", "urgent"]
    assert len(after_ack) == 0


async def test_a_failing_piece_is_logged_and_does_not_stop_the_others(caplog) -> None:  # type: ignore[no-untyped-def]
    after_ack = AfterAck()
    done: list[str] = []

    async def fails() -> None:
        raise RuntimeError("boom")

    async def works() -> None:
        done.append("ok")

    after_ack.spawn(fails(), "publishing X")
    after_ack.spawn(works(), "replying")
    await after_ack.join()

    assert done == ["ok"]
    assert "publishing X failed" in caplog.text


async def test_drain_gives_a_grace_then_cancels_what_is_left_without_warnings() -> None:
    after_ack = AfterAck(concurrency=1)
    finished: list[str] = []

    async def quick() -> None:
        finished.append("quick")

    async def stuck() -> None:
        await asyncio.Event().wait()

    after_ack.spawn(quick(), "quick")
    after_ack.spawn(stuck(), "stuck")
    after_ack.spawn(quick(), "queued behind the stuck one")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine was never awaited" would fail here
        await after_ack.drain(0.05)

    assert finished == ["quick"]
    assert len(after_ack) == 0
