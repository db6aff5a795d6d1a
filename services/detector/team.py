"""How the team handles drift: who resolved what and how fast, what came back, what is noisy.

Pure functions over the lifecycle's occurrences, shared by ``toilkit drift report`` (tables
and chart) and the detector's weekly digest (three lines, :func:`team_lines`).

* **Time to resolve per person**: over resolved occurrences that someone claimed ("I'm on
  it"), per claimer: how many, the median and the 90th percentile (nearest rank: a value
  that really occurred).
* **Came back**: a resolved occurrence followed by a later occurrence of the same finding
  (same fingerprint: same state, address, change and attribute paths).
* **Noisiest attributes**: occurrences per (state, address, attribute path); a finding
  without recorded paths counts under its address.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.detector.lifecycle import Occurrence
from shared.events import TeamLines

#: Lines in each list the digest and the report show.
TOP = 5


def median_duration(durations: Sequence[timedelta]) -> timedelta | None:
    if not durations:
        return None
    return timedelta(seconds=statistics.median(d.total_seconds() for d in durations))


def nearest_rank(durations: Sequence[timedelta], fraction: float) -> timedelta | None:
    """Nearest-rank percentile: a value that really occurred, never an interpolation."""
    if not durations:
        return None
    ordered = sorted(durations)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


@dataclass(frozen=True)
class ResolverFigures:
    """One person's resolved drift (those they claimed)."""

    person: str
    resolved: int
    median: timedelta | None
    p90: timedelta | None


@dataclass(frozen=True)
class CameBack:
    """A finding resolved and then seen again."""

    state: str
    address: str
    times: int


@dataclass(frozen=True)
class NoisyAttribute:
    state: str
    address: str
    attribute: str
    drifts: int


@dataclass(frozen=True)
class TeamFigures:
    resolvers: tuple[ResolverFigures, ...]
    came_back: tuple[CameBack, ...]
    noisiest: tuple[NoisyAttribute, ...]

    @property
    def came_back_total(self) -> int:
        return sum(c.times for c in self.came_back)


def team_figures(
    occurrences: Iterable[Occurrence], *, since: datetime, until: datetime
) -> TeamFigures:
    """The figures over occurrences first seen in ``[since, until]``."""
    everything = list(occurrences)
    window = [o for o in everything if since <= o.first_seen <= until]
    by_person: dict[str, list[timedelta]] = {}
    for o in window:
        ttr = o.time_to_resolve
        if ttr is not None and o.claimed_by:
            by_person.setdefault(o.claimed_by, []).append(ttr)
    resolvers = sorted(
        (
            ResolverFigures(p, len(d), median_duration(d), nearest_rank(d, 0.9))
            for p, d in by_person.items()
        ),
        key=lambda r: (-r.resolved, r.person),
    )
    return TeamFigures(
        resolvers=tuple(resolvers),
        came_back=tuple(_came_back(everything, window)),
        noisiest=tuple(_noisiest(window)),
    )


def _came_back(everything: Sequence[Occurrence], window: Sequence[Occurrence]) -> list[CameBack]:
    resolved_at: dict[tuple[str, str], list[datetime]] = {}
    for o in everything:
        if o.outcome == "resolved" and o.closed_at is not None:
            resolved_at.setdefault((o.state, o.fingerprint), []).append(o.closed_at)
    counts: Counter[tuple[str, str]] = Counter()
    for o in window:
        closes = resolved_at.get((o.state, o.fingerprint), [])
        if any(closed <= o.first_seen for closed in closes):
            counts[(o.state, o.address)] += 1
    return [
        CameBack(state, address, times)
        for (state, address), times in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def _noisiest(window: Sequence[Occurrence]) -> list[NoisyAttribute]:
    counts: Counter[tuple[str, str, str]] = Counter()
    for o in window:
        for path in o.attributes or ("(whole resource)",):
            counts[(o.state, o.address, path)] += 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [NoisyAttribute(s, a, p, n) for (s, a, p), n in ranked if n > 1][:TOP]


def short_duration(duration: timedelta | None) -> str:
    """``3d 4h``, ``5h 12m``, ``42m`` (``-`` for none)."""
    if duration is None:
        return "-"
    minutes = int(duration.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"


def team_lines(figures: TeamFigures) -> TeamLines:
    """The three digest lines (plain text; the notifier formats them)."""
    people = (
        ", ".join(
            f"{r.person} {r.resolved} (median {short_duration(r.median)}, "
            f"p90 {short_duration(r.p90)})"
            for r in figures.resolvers[:TOP]
        )
        or "nobody claimed a resolved drift"
    )
    back = (
        f"{figures.came_back_total} after being resolved: "
        + ", ".join(f"{c.address} in {c.state} ({c.times} times)" for c in figures.came_back[:TOP])
        if figures.came_back
        else "none came back after being resolved"
    )
    noisy = (
        ", ".join(
            f"{n.address}.{n.attribute} in {n.state} ({n.drifts} times)"
            if n.attribute != "(whole resource)"
            else f"{n.address} in {n.state} ({n.drifts} times)"
            for n in figures.noisiest
        )
        or "no attribute drifted twice"
    )
    return TeamLines(time_to_resolve=people, came_back=back, noisiest=noisy)
