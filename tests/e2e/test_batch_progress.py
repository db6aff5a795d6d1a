"""Live progress end to end: a run's message shows its log tail and elapsed time as it runs.

The stack of :mod:`tests.e2e.batch_stack` (gateway, batch and notifier built by the
composition root on moto, the Slack stand-in as Slack, the local runner), with progress
every second instead of every ten (``TOILKIT_BATCH_PROGRESS_INTERVAL_SECONDS=1``) and two
commands of its own: one that prints a line every half second (and its sensitive token
once), one that prints nothing. Every check reads what the stand-in recorded: each version
of the run message (``chat.postMessage`` then every ``chat.update``), in order.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e.batch_stack import (
    Person,
    Stack,
    every_version,
    finished,
    flow_catalog,
    open_stack,
    run_message_where,
    shown,
    status_of,
    thread_reply,
)
from toilkit.standins.slack import FaultSpec

#: Prints ``line 1`` .. ``line N`` every half second; its token once, first.
COUNTING = (
    "import sys, time\n"
    "print('connecting with token ' + sys.argv[2], flush=True)\n"
    "for i in range(1, int(sys.argv[1]) + 1):\n"
    "    print('line %d' % i, flush=True)\n"
    "    time.sleep(0.5)\n"
)
LINES = 20  # ~10 s of output: about ten progress updates at one a second
TOKEN = "tok-3f9a1c77e2"  # the sensitive parameter's value
RUNNING_FOR = re.compile(r"Running for \*(?:(\d+)m )?(\d+)s\*")


def progress_catalog(folder: Any) -> dict[str, Any]:
    catalog = flow_catalog(folder / "orders.sqlite")
    runner = {"kind": "local", "workdir": "."}
    staging = {"allowed": {"usergroups": ["S0SRE00001"]}, "runner": runner}
    catalog["commands"] += [
        {
            "name": "count-slowly",
            "description": "Print numbered lines, one every half second.",
            "argv": ["python3", "-c", COUNTING, "{lines}", "{token}"],
            "parameters": [
                {"name": "lines", "type": "integer", "minimum": 1, "maximum": 100},
                {"name": "token", "type": "text", "sensitive": True, "max_length": 50},
            ],
            "environments": {"staging": staging},
            "timeout_seconds": 60,
        },
        {
            "name": "stay-quiet",
            "description": "Print nothing for a few seconds.",
            "argv": ["python3", "-c", "import sys, time; time.sleep(int(sys.argv[1]))", "{s}"],
            "parameters": [{"name": "s", "type": "integer", "minimum": 1, "maximum": 30}],
            "environments": {"staging": staging},
            "timeout_seconds": 60,
        },
    ]
    return catalog


@pytest.fixture(scope="module")
async def stack(
    moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    folder = tmp_path_factory.mktemp("batch-progress")
    settings = {
        "TOILKIT_BATCH_PROGRESS_INTERVAL_SECONDS": "1",
        "TOILKIT_NOTIFIER_PROGRESS_MIN_INTERVAL_SECONDS": "0.5",
    }
    async with open_stack(moto_endpoint, folder, progress_catalog(folder), settings) as running:
        yield running


def elapsed_of(text: str) -> int | None:
    match = RUNNING_FOR.search(text)
    return None if match is None else int(match.group(1) or 0) * 60 + int(match.group(2))


def last_counted(text: str) -> int:
    return max((int(n) for n in re.findall(r"line (\d+)", text)), default=0)


async def test_a_running_run_shows_its_tail_and_elapsed_time_and_the_end_keeps_the_tail(
    stack: Stack, alice: Person
) -> None:
    # GIVEN alice runs a command that prints a line every half second for ~10 s
    run_id = await alice.request(
        "count-slowly", "staging", {"lines": str(LINES), "token": TOKEN}, f"progress {uuid.uuid4()}"
    )

    # THEN while it runs its message shows the last lines and how long it has run
    message = await finished(stack.standin, run_id)
    versions = [shown(v) for v in every_version(stack.standin, run_id)]
    running = [v for v in versions if elapsed_of(v) is not None]
    assert len(running) >= 3, versions
    elapsed = [elapsed_of(v) for v in running]
    assert elapsed == sorted(elapsed), elapsed  # never an older one after a newer one
    counted = [last_counted(v) for v in running]
    assert counted == sorted(counted) and counted[-1] > counted[0], counted
    assert any("```" in v and "line " in v for v in running)

    # AND the final version is the last one, keeps the tail, and says how it ended
    final = versions[-1]
    assert status_of(message) == "Succeeded"
    assert "Running for" not in final
    assert f"line {LINES}" in final
    assert re.search(r"\*Last \d+ log lines\*", final)
    assert all(elapsed_of(v) is None for v in versions[versions.index(final) :])
    assert "exit code `0`" in thread_reply(message, "Succeeded")

    # AND the sensitive token never reached Slack: masked in the tails
    calls = stack.standin.calls()
    assert not any(TOKEN in str(c.arguments) for c in calls)
    assert any("connecting with token (sensitive)" in v for v in versions)


async def test_no_output_shows_elapsed_only_and_a_429_delays_nothing_that_matters(
    stack: Stack, alice: Person
) -> None:
    # GIVEN a run that prints nothing
    run_id = await alice.request("stay-quiet", "staging", {"s": "6"}, f"quiet {uuid.uuid4()}")
    await run_message_where(stack.standin, run_id, lambda m: "_no output yet_" in shown(m))
    # WHEN Slack rate-limits the next chat.update calls (Retry-After 2 s)
    stack.standin.set_faults(
        FaultSpec(method="chat.update", rate_limited=1.0, retry_after=2, max_injections=2)
    )
    try:
        message = await finished(stack.standin, run_id)
    finally:
        stack.standin.clear_faults()

    # THEN the run still shows its end, with its thread reply
    assert status_of(message) == "Succeeded"
    assert "exit code `0`" in thread_reply(message, "Succeeded")
    versions = [shown(v) for v in every_version(stack.standin, run_id)]
    assert all("```" not in v for v in versions if elapsed_of(v) is not None)
    # AND no progress update was sent before the first 429's Retry-After had passed
    updates = [
        c for c in stack.standin.calls("chat.update") if f"Run `{run_id}`" in str(c.arguments)
    ]
    limited = [c for c in updates if c.fault == "rate_limited"]
    assert limited, "the fault was never hit"
    first_429 = limited[0].time
    too_soon = [
        c
        for c in updates
        if c.ok and first_429 < c.time < first_429 + 2 and "Running for" in str(c.arguments)
    ]
    assert not too_soon
