"""The scenarios of ``make chaos``, each at a full and a reduced size.

Each scenario gets a fresh :class:`~toilkit.chaos.system.ChaosSystem`, injects its fault
while events flow, waits until the system is quiet and counts lost and duplicated Slack
messages against what was published.
"""

from __future__ import annotations

import asyncio
import functools
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from services.batch.runners.local_orphans import groups_of_run
from shared.events import EventBase
from toilkit import dlq
from toilkit.chaos.fuzz import fuzz_request
from toilkit.chaos.processes import GateMode
from toilkit.chaos.system import SIGNING_SECRET, ChaosSystem, poison_body, until
from toilkit.chaos.workloads import (
    QUIET_COMMAND,
    batch_request,
    run_tally,
    scan_announcements,
    scan_request,
    write_batch_catalog,
    write_detector_repo,
)


@dataclass(frozen=True)
class Size:
    """How big a run is: ``full`` for ``make chaos``, reduced for ``make test``."""

    full: bool

    def pick(self, full: int, reduced: int) -> int:
        return full if self.full else reduced


@dataclass
class Result:
    scenario: str
    events: int
    lost: int
    duplicated: int
    seconds: float
    note: str = ""
    groups: tuple[int, ...] = ()  # the process groups it started last (all stopped)


Scenario = Callable[[ChaosSystem, Size], Awaitable[tuple[int, int, int, str]]]


async def _restart_after_kill(system: ChaosSystem, service: str) -> None:
    process = system.processes[service]
    await asyncio.to_thread(process.kill)
    if not process.running:  # the supervisor may have restarted it already
        process.start()


async def _start_batch(system: ChaosSystem, *, run_seconds: float) -> Path:
    """Start the batch service on the chaos catalog (:func:`write_batch_catalog`, local
    runner) and wait until it is ready; returns the folder where each run's command leaves
    a marker named after its run id."""
    markers = system.log_dir / "run-markers"
    catalog = write_batch_catalog(system.log_dir / "batch", markers, run_seconds=run_seconds)
    system.service_env.update(
        {
            "TOILKIT_BATCH_CATALOG_PATH": str(catalog),
            "TOILKIT_BATCH_LOG_DIR": str(system.log_dir / "batch-logs"),
        }
    )
    system.add_service("batch")
    await system.wait_ready("batch")
    return markers


async def _kill_repeatedly(
    system: ChaosSystem, service: str, kills: int, gap: tuple[float, float]
) -> None:
    rng = random.Random(13)
    for _ in range(kills):
        await asyncio.sleep(rng.uniform(*gap))
        await _restart_after_kill(system, service)


async def kill_notifier(system: ChaosSystem, size: Size) -> tuple[int, int, int, str]:
    """SIGKILL the notifier repeatedly while events flow; it is restarted each time."""
    events, kills = size.pick(1000, 30), size.pick(20, 2)
    rate = size.pick(10, 10)
    publishing = asyncio.create_task(system.publish_outcomes(events, per_second=rate))
    await _kill_repeatedly(system, "notifier", kills, (1.0, 2 * events / rate / kills))
    await publishing
    await system.wait_quiet(size.pick(900, 120))
    lost, duplicated = await system.tally()
    return events, lost, duplicated, f"{kills} SIGKILLs; {await system.dlq_depth()} in the DLQ"


async def crash_loop(system: ChaosSystem, size: Size) -> tuple[int, int, int, str]:
    """Kill the notifier again and again 0.5-3 s apart, then let it run."""
    events, kills = size.pick(200, 20), size.pick(25, 4)
    await system.publish_outcomes(events)
    await _kill_repeatedly(system, "notifier", kills, (0.5, 3.0))
    await system.wait_quiet(size.pick(900, 120))
    lost, duplicated = await system.tally()
    dead = await system.dlq_depth()
    return events, lost, duplicated, f"{kills} kills 0.5-3 s apart; {dead} in the DLQ"


async def slack_faults(system: ChaosSystem, size: Size) -> tuple[int, int, int, str]:
    """429 with Retry-After, 5xx, answers 3 s late (client timeout 2 s), dropped
    connections and lost answers on chat.postMessage."""
    events = size.pick(300, 30)
    await system.set_slack_faults(
        {
            "method": "chat.postMessage",
            "rate_limited": 0.15,
            "retry_after": 1,
            "server_error": 0.10,
            "slow": 0.10,
            "slow_seconds": 3,
            "drop": 0.05,
            "lost_answer": 0.05,
            "seed": 13,
        }
    )
    await system.publish_outcomes(events)
    await system.wait_quiet(size.pick(900, 180))
    lost, duplicated = await system.tally()
    return events, lost, duplicated, "15% 429, 10% 5xx, 10% slow, 5% drop, 5% lost answer"


async def poison_and_replay(system: ChaosSystem, size: Size) -> tuple[int, int, int, str]:
    """Poison among good events that Slack refuses until they are dead-lettered; after the
    fix, ``replay`` brings the good ones back, and the poison stays in the DLQ."""
    good, poison = size.pick(200, 10), size.pick(50, 3)
    await system.set_slack_faults({"method": "chat.postMessage", "rate_limited": 1.0})
    for n in range(poison):
        await system.aws.sns.publish(
            TopicArn=system.topology.topic_arn,
            Message=poison_body(n),
            MessageAttributes={"type": {"DataType": "String", "StringValue": "DriftScanFailed"}},
        )
    await system.publish_outcomes(good)

    async def all_dead() -> bool:
        return await system.dlq_depth() >= good + poison

    await until(all_dead, size.pick(900, 180))
    await system.set_slack_faults(None)
    report = await dlq.replay(system.aws, system.names, "notifier")
    await system.wait_quiet(size.pick(600, 120))
    lost, duplicated = await system.tally()
    poison_left = await system.dlq_depth()
    lost += max(0, poison - poison_left)  # a poison message must stay in the DLQ
    note = f"{report.moved} replayed, {report.poison} poison kept, {poison_left} left in DLQ"
    return good + poison, lost, duplicated, note


async def aws_outage(system: ChaosSystem, size: Size) -> tuple[int, int, int, str]:
    """The services' AWS endpoint refuses connections, then accepts and never answers."""
    events, outage = size.pick(200, 20), size.pick(15, 4)
    publishing = asyncio.create_task(
        system.publish_outcomes(events, per_second=events / (3 * outage))
    )
    await asyncio.sleep(outage / 2)
    modes: tuple[GateMode, ...] = ("refuse", "blackhole")
    for mode in modes:
        await system.gate.set_mode(mode)
        await asyncio.sleep(outage)
        await system.gate.set_mode("open")
        await asyncio.sleep(outage / 2)
    await publishing
    await system.wait_quiet(size.pick(900, 180))
    lost, duplicated = await system.tally()
    exits = system.exits.get("notifier", 0)
    note = f"{outage} s refused, then {outage} s black-holed; notifier exited {exits}x"
    return events, lost, duplicated, note


async def gateway_fuzz(system: ChaosSystem, size: Size) -> tuple[int, int, int, str]:
    """Fuzzed, mostly hostile requests to ``toilkit serve gateway``: every one answered,
    none with a 5xx ("lost" counts requests answered 5xx or not at all)."""
    requests = size.pick(10_000, 300)
    gateway = system.add_service("gateway")
    await system.wait_ready("gateway")
    url = f"http://127.0.0.1:{system.gateway_port}/slack/events"
    rng = random.Random(13)
    work = [fuzz_request(rng, SIGNING_SECRET) for _ in range(requests)]
    statuses: Counter[str] = Counter()

    async def send(http: aiohttp.ClientSession, body: bytes, headers: dict[str, str]) -> None:
        try:
            async with http.post(url, data=body, headers=headers) as response:
                statuses["5xx" if response.status >= 500 else str(response.status)] += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            statuses[type(exc).__name__] += 1

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for start in range(0, requests, 16):
            await asyncio.gather(*(send(http, b, h) for b, h in work[start : start + 16]))
    failed = sum(n for key, n in statuses.items() if not key.isdigit())
    alive = "gateway alive" if gateway.running else "gateway DIED"
    top = ", ".join(f"{k}: {n}" for k, n in statuses.most_common(4))
    return requests, failed, 0, f"{alive}; {top}"


async def kill_detector(system: ChaosSystem, size: Size) -> tuple[int, int, int, str]:
    """SIGKILL the detector while scan requests flow (one Terraform state each, planned
    for real): each state's finding and each scan's digest is announced exactly once."""
    scans, kills = size.pick(60, 6), size.pick(10, 2)
    config = write_detector_repo(system.log_dir / "infra", scans)
    system.service_env.update(
        {
            "TOILKIT_DETECTOR_CONFIG": str(config),
            "TOILKIT_DETECTOR_WORK_DIR": str(system.log_dir / "detector-work"),
        }
    )
    system.add_service("detector")
    await system.wait_ready("detector")
    requests = [scan_request(n) for n in range(scans)]
    expected = [event_id for r in requests for event_id in scan_announcements(r)]
    per_second = 0.5
    publishing = asyncio.create_task(_publish_paced(system, requests, per_second))
    await _kill_repeatedly(system, "detector", kills, (2.0, 2 * scans / per_second / kills))
    await publishing
    await system.wait_quiet(size.pick(900, 240), expected=expected, upstream=("detector",))
    lost, duplicated = await system.tally(expected)
    note = f"{kills} SIGKILLs; {scans} scans, a finding and a digest each"
    return len(expected), lost, duplicated, note


async def kill_batch(system: ChaosSystem, size: Size) -> tuple[int, int, int, str]:
    """SIGKILL the batch service while runs are requested and running (local runner): each
    run announced once with a final status, its command started at most once, and no
    process of a run left over."""
    runs, kills = size.pick(100, 8), size.pick(15, 2)
    markers = await _start_batch(system, run_seconds=2)
    run_ids = [f"chaos-{uuid.uuid4().hex[:8]}-{n}" for n in range(runs)]
    per_second = 1.0
    requests = [batch_request(run_id) for run_id in run_ids]
    publishing = asyncio.create_task(_publish_paced(system, requests, per_second))
    await _kill_repeatedly(system, "batch", kills, (2.0, 2 * runs / per_second / kills))
    await publishing

    async def settled() -> bool:
        lost, _, _ = run_tally(await system.slack_messages(), run_ids, markers)
        busy = await asyncio.gather(*(system.queue_busy(q) for q in ("batch", "notifier")))
        return lost == 0 and not any(busy)

    await until(settled, size.pick(900, 240))
    await asyncio.sleep(3)
    lost, duplicated, statuses = run_tally(await system.slack_messages(), run_ids, markers)
    orphans = sum(bool(groups_of_run(run_id)) for run_id in run_ids)
    shown = ", ".join(f"{k}: {n}" for k, n in statuses.most_common())
    note = f"{kills} SIGKILLs; {shown}; runs left running: {orphans}"
    return runs, lost, duplicated + orphans, note


async def batch_crash_local(system: ChaosSystem, size: Size) -> tuple[int, int, int, str]:
    """SIGKILL the batch service during a local run of a quiet one-at-a-time command, again
    and again: the restarted service stops the orphaned run before it frees the command's
    slot, the next request runs, and two runs of the command never run at once."""
    rounds = size.pick(5, 1)
    markers = await _start_batch(system, run_seconds=1)
    run_ids: list[str] = []
    most_at_once = 0

    async def watch_concurrency() -> None:
        nonlocal most_at_once
        while True:
            live = await asyncio.to_thread(lambda: sum(bool(groups_of_run(r)) for r in run_ids))
            most_at_once = max(most_at_once, live)
            await asyncio.sleep(0.25)

    async def final(run_id: str) -> bool:
        lost, _, _ = run_tally(await system.slack_messages(), [run_id], markers)
        return lost == 0

    watcher = asyncio.create_task(watch_concurrency())
    try:
        for n in range(rounds):
            tag = uuid.uuid4().hex[:6]
            killed, after = f"chaos-killed-{n}-{tag}", f"chaos-after-{n}-{tag}"
            run_ids.append(killed)
            await system.publisher.publish(batch_request(killed, QUIET_COMMAND))
            await until((markers / killed).exists, 120, every=0.2)
            await _restart_after_kill(system, "batch")  # mid-run; the next one starts
            await until(functools.partial(final, killed), 180)
            run_ids.append(after)
            await system.publisher.publish(batch_request(after, QUIET_COMMAND))
            await until(functools.partial(final, after), 180)
        await system.wait_quiet(60, expected=[], upstream=("batch",))
    finally:
        watcher.cancel()
    lost, duplicated, statuses = run_tally(await system.slack_messages(), run_ids, markers)
    orphans = sum(bool(groups_of_run(run_id)) for run_id in run_ids)
    shown = ", ".join(f"{k}: {n}" for k, n in statuses.most_common())
    note = f"{rounds} kills mid-run; {shown}; most runs at once: {most_at_once}; left: {orphans}"
    return len(run_ids), lost, duplicated + orphans + max(0, most_at_once - 1), note


async def _publish_paced(
    system: ChaosSystem, events: Sequence[EventBase], per_second: float
) -> None:
    for event in events:
        await system.publisher.publish(event)
        await asyncio.sleep(1 / per_second)


SCENARIOS: dict[str, Scenario] = {
    "SIGKILL notifier under load": kill_notifier,
    "SIGKILL detector under load": kill_detector,
    "SIGKILL batch under load": kill_batch,
    "batch crash during a local run": batch_crash_local,
    "crash loop (notifier)": crash_loop,
    "Slack faults": slack_faults,
    "poison + replay": poison_and_replay,
    "AWS outage (refused, black-holed)": aws_outage,
    "gateway fuzz": gateway_fuzz,
}


async def run_scenario(name: str, size: Size, log_root: Path) -> Result:
    """Run one scenario on a system of its own, stopped afterwards whatever happens."""
    slug = "-".join(re.findall(r"[a-z0-9]+", name.lower())[:3])
    system = ChaosSystem(log_root / slug)
    started = time.monotonic()
    try:
        await system.start()
        events, lost, duplicated, note = await SCENARIOS[name](system, size)
    except Exception as exc:
        note = f"error: {type(exc).__name__}: {exc}"
        events, lost, duplicated = len(system.published), -1, -1
    finally:
        await system.stop()
    groups = tuple(p.popen.pid for p in system.processes.values() if p.popen is not None)
    return Result(name, events, lost, duplicated, time.monotonic() - started, note, groups)
