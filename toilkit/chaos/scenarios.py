"""The scenarios of ``make chaos``, each at a full and a reduced size.

Each scenario gets a fresh :class:`~toilkit.chaos.system.ChaosSystem`, injects its fault
while events flow, waits until the system is quiet and counts lost and duplicated Slack
messages against what was published.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from toilkit import dlq
from toilkit.chaos.fuzz import fuzz_request
from toilkit.chaos.processes import GateMode
from toilkit.chaos.system import SIGNING_SECRET, ChaosSystem, poison_body, until


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
    return events, lost, duplicated, f"{kills} SIGKILLs"


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


SCENARIOS: dict[str, Scenario] = {
    "SIGKILL notifier under load": kill_notifier,
    "crash loop (notifier)": crash_loop,
    "Slack faults": slack_faults,
    "poison + replay": poison_and_replay,
    "AWS outage (refused, black-holed)": aws_outage,
    "gateway fuzz": gateway_fuzz,
}


async def run_scenario(name: str, size: Size, log_root: Path) -> Result:
    """Run one scenario on a system of its own, stopped afterwards whatever happens."""
    system = ChaosSystem(log_root / name.split(" ", maxsplit=1)[0].lower().replace("/", "-"))
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
