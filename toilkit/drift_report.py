"""``toilkit drift report``: how much drift, where, and how long it stays.

:func:`build_report` turns the lifecycle's occurrences (one per drift from first
sighting to close) into counts per day and per state and time-to-resolve figures;
:func:`render_svg` draws drifts per day as a bar chart, like the one in the original
write-up. The SVG is written by hand (a few dozen elements): no plotting library is
worth a dependency for one bar chart, and the output stays a small, diffable text file.

Everything here is pure: the caller passes the occurrences and the current time.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from html import escape
from typing import Any, Literal

from services.detector.lifecycle import CloseOutcome, Occurrence
from services.detector.team import TeamFigures, nearest_rank, short_duration, team_figures

_SPAN = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")
_SPAN_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_span(text: str) -> timedelta:
    """``30d``, ``12h`` or ``2w`` as a duration.

    Raises:
        ValueError: Anything else (the message shows the accepted forms).
    """
    match = _SPAN.match(text)
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a span like 30d, 12h or 2w")
    return int(match.group(1)) * _SPAN_UNITS[match.group(2)]


@dataclass(frozen=True)
class StateFigures:
    """One state's drift in the window."""

    state: str
    drifts: int
    resolved: int
    still_open: int
    median_time_to_resolve: timedelta | None


@dataclass(frozen=True)
class DriftReport:
    """Drift in a window of time.

    Attributes:
        since: Start of the window (occurrences first seen from then on count).
        until: End of the window (the report's time).
        per_day: New drifts per day (UTC), every day of the window, oldest first.
        per_state: Figures per state, most drifts first.
        drifts: Occurrences first seen in the window.
        resolved: Of those, how many were resolved (not merely ignored).
        still_open: Of those, how many are still open.
        median_time_to_resolve: Median over the resolved ones.
        p90_time_to_resolve: 90th percentile over the resolved ones.
        oldest_open: The oldest still-open occurrence (any age), if any.
        team: Who resolved what (per claimer), what came back, the noisiest attributes.
    """

    since: datetime
    until: datetime
    per_day: tuple[tuple[date, int], ...]
    per_state: tuple[StateFigures, ...]
    drifts: int
    resolved: int
    still_open: int
    median_time_to_resolve: timedelta | None
    p90_time_to_resolve: timedelta | None
    oldest_open: Occurrence | None
    team: TeamFigures = field(default_factory=lambda: TeamFigures((), (), ()))

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready document (durations in hours)."""
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "drifts": self.drifts,
            "resolved": self.resolved,
            "still_open": self.still_open,
            "median_hours_to_resolve": _hours(self.median_time_to_resolve),
            "p90_hours_to_resolve": _hours(self.p90_time_to_resolve),
            "per_day": [{"day": d.isoformat(), "drifts": n} for d, n in self.per_day],
            "per_state": [
                {
                    "state": s.state,
                    "drifts": s.drifts,
                    "resolved": s.resolved,
                    "still_open": s.still_open,
                    "median_hours_to_resolve": _hours(s.median_time_to_resolve),
                }
                for s in self.per_state
            ],
            "team": {
                "resolvers": [
                    {
                        "person": r.person,
                        "resolved": r.resolved,
                        "median_hours_to_resolve": _hours(r.median),
                        "p90_hours_to_resolve": _hours(r.p90),
                    }
                    for r in self.team.resolvers
                ],
                "came_back": [
                    {"state": c.state, "address": c.address, "times": c.times}
                    for c in self.team.came_back
                ],
                "noisiest": [
                    {
                        "state": n.state,
                        "address": n.address,
                        "attribute": n.attribute,
                        "drifts": n.drifts,
                    }
                    for n in self.team.noisiest
                ],
            },
            "oldest_open": None
            if self.oldest_open is None
            else {
                "state": self.oldest_open.state,
                "address": self.oldest_open.address,
                "first_seen": self.oldest_open.first_seen.isoformat(),
            },
        }


def build_report(
    occurrences: Iterable[Occurrence], *, since: timedelta, now: datetime
) -> DriftReport:
    """Figures over the occurrences first seen in ``[now - since, now]``.

    Occurrences closed as ``ignored`` count as drifts but not as resolved: an ignore
    rule hides a drift, it does not fix it. A resource counts once per sighting: its
    findings first seen by the same scan are one drift (see :func:`per_resource`).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    start = now - since
    occurrences = list(occurrences)
    everything = per_resource(occurrences)
    window = [o for o in everything if start <= o.first_seen <= now]
    per_day_counts = Counter(o.first_seen.astimezone(UTC).date() for o in window)
    first_day = start.astimezone(UTC).date()
    days = (now.astimezone(UTC).date() - first_day).days + 1
    per_day = tuple(
        (first_day + timedelta(days=i), per_day_counts.get(first_day + timedelta(days=i), 0))
        for i in range(days)
    )
    per_state = []
    for state in sorted({o.state for o in window}):
        mine = [o for o in window if o.state == state]
        per_state.append(
            StateFigures(
                state=state,
                drifts=len(mine),
                resolved=sum(1 for o in mine if o.outcome == "resolved"),
                still_open=sum(1 for o in mine if o.outcome == "open"),
                median_time_to_resolve=_median(_times_to_resolve(mine)),
            )
        )
    per_state.sort(key=lambda s: (-s.drifts, s.state))
    durations = _times_to_resolve(window)
    open_ones = [o for o in everything if o.outcome == "open"]
    return DriftReport(
        since=start,
        until=now,
        per_day=per_day,
        per_state=tuple(per_state),
        drifts=len(window),
        resolved=sum(1 for o in window if o.outcome == "resolved"),
        still_open=sum(1 for o in window if o.outcome == "open"),
        median_time_to_resolve=_median(durations),
        p90_time_to_resolve=_percentile(durations, 0.9),
        oldest_open=min(open_ones, key=lambda o: o.first_seen, default=None),
        team=team_figures(occurrences, since=start, until=now),
    )


def per_resource(occurrences: Iterable[Occurrence]) -> list[Occurrence]:
    """One occurrence per resource and first sighting.

    A resource that drifted *and* has code not applied yet is two findings first seen
    by the same scan; people count one drifted resource. The merged occurrence is open
    while any part is, resolved when every part was closed and one resolved, at the
    last close; it is a ``drift`` when any part is.
    """
    groups: dict[tuple[str, str, datetime], list[Occurrence]] = {}
    for occurrence in occurrences:
        key = (occurrence.state, occurrence.address, occurrence.first_seen)
        groups.setdefault(key, []).append(occurrence)
    merged = []
    for parts in groups.values():
        if len(parts) == 1:
            merged.append(parts[0])
            continue
        outcomes = {p.outcome for p in parts}
        closed = [p.closed_at for p in parts if p.closed_at is not None]
        outcome: CloseOutcome | Literal["open"] = (
            "open" if "open" in outcomes else "resolved" if "resolved" in outcomes else "ignored"
        )
        merged.append(
            replace(
                parts[0],
                kind="drift" if any(p.kind == "drift" for p in parts) else parts[0].kind,
                outcome=outcome,
                closed_at=None if outcome == "open" else max(closed, default=None),
            )
        )
    return merged


def _times_to_resolve(occurrences: Iterable[Occurrence]) -> list[timedelta]:
    return sorted(t for o in occurrences if (t := o.time_to_resolve) is not None)


def _median(durations: Sequence[timedelta]) -> timedelta | None:
    if not durations:
        return None
    return timedelta(seconds=statistics.median(d.total_seconds() for d in durations))


def _percentile(durations: Sequence[timedelta], fraction: float) -> timedelta | None:
    """Nearest-rank percentile: a value that really occurred, never an interpolation."""
    return nearest_rank(durations, fraction)


def _hours(duration: timedelta | None) -> float | None:
    return None if duration is None else round(duration.total_seconds() / 3600, 2)


#: ``3d 4h``, ``5h 12m``, ``42m`` (``-`` for none): the detector's team lines write durations
#: the same way.
format_duration = short_duration


# --------------------------------------------------------------------------- the chart

_WIDTH = 800
_HEIGHT = 320
_MARGIN_LEFT = 48
_MARGIN_RIGHT = 16
_MARGIN_TOP = 40
_MARGIN_BOTTOM = 56
_BAR_COLOUR = "#d9534f"
_AXIS_COLOUR = "#555555"
_GRID_COLOUR = "#e5e5e5"


def render_svg(report: DriftReport, *, title: str = "Drifts per day") -> str:
    """A bar chart of new drifts per day as a standalone SVG document."""
    plot_width = _WIDTH - _MARGIN_LEFT - _MARGIN_RIGHT
    plot_height = _HEIGHT - _MARGIN_TOP - _MARGIN_BOTTOM
    counts = [n for _, n in report.per_day]
    top = _nice_ceiling(max(counts, default=0))
    slot = plot_width / max(1, len(counts))
    bar_width = max(1.0, slot * 0.7)
    baseline = _MARGIN_TOP + plot_height
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{_WIDTH}" height="{_HEIGHT}" fill="white"/>',
        f'<text x="{_MARGIN_LEFT}" y="22" font-size="14" font-weight="bold">{escape(title)}: '
        f"{report.drifts} from {report.since:%Y-%m-%d} to {report.until:%Y-%m-%d}</text>",
    ]
    step = max(1, top // 5)
    for value in range(0, top + 1, step):
        y = baseline - plot_height * value / top
        parts.append(
            f'<line x1="{_MARGIN_LEFT}" y1="{y:.1f}" x2="{_WIDTH - _MARGIN_RIGHT}" '
            f'y2="{y:.1f}" stroke="{_GRID_COLOUR}"/>'
        )
        parts.append(
            f'<text x="{_MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'fill="{_AXIS_COLOUR}">{value}</text>'
        )
    label_every = max(1, math.ceil(len(counts) / 15))
    for index, (day, count) in enumerate(report.per_day):
        x = _MARGIN_LEFT + index * slot + (slot - bar_width) / 2
        height = plot_height * count / top
        parts.append(
            f'<rect class="bar" data-day="{day.isoformat()}" data-count="{count}" '
            f'x="{x:.1f}" y="{baseline - height:.1f}" width="{bar_width:.1f}" '
            f'height="{height:.1f}" fill="{_BAR_COLOUR}"><title>{day.isoformat()}: '
            f"{count}</title></rect>"
        )
        if index % label_every == 0:
            centre = x + bar_width / 2
            parts.append(
                f'<text x="{centre:.1f}" y="{baseline + 14}" text-anchor="end" '
                f'transform="rotate(-45 {centre:.1f} {baseline + 14})" '
                f'fill="{_AXIS_COLOUR}">{day:%m-%d}</text>'
            )
    parts.append(
        f'<line x1="{_MARGIN_LEFT}" y1="{baseline}" x2="{_WIDTH - _MARGIN_RIGHT}" '
        f'y2="{baseline}" stroke="{_AXIS_COLOUR}"/>'
    )
    lines = _team_chart_lines(report)
    for index, line in enumerate(lines):
        parts.append(
            f'<text class="team" x="{_MARGIN_LEFT}" y="{_HEIGHT + 18 * (index + 1)}" '
            f'fill="{_AXIS_COLOUR}">{escape(line)}</text>'
        )
    if lines:
        height = _HEIGHT + 18 * (len(lines) + 1)
        parts[0] = (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
            f'viewBox="0 0 {_WIDTH} {height}" font-family="sans-serif" font-size="11">'
        )
        parts[2] = f'<rect width="{_WIDTH}" height="{height}" fill="white"/>'
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _team_chart_lines(report: DriftReport) -> list[str]:
    """The team figures under the chart: one line per person, then what came back, what is noisy."""
    team = report.team
    lines = [
        f"{r.person}: {r.resolved} resolved, median {format_duration(r.median)}, "
        f"p90 {format_duration(r.p90)}"
        for r in team.resolvers
    ]
    if team.came_back:
        lines.append(
            f"came back after being resolved: {team.came_back_total} ("
            + ", ".join(f"{c.address} x{c.times}" for c in team.came_back[:5])
            + ")"
        )
    if team.noisiest:
        lines.append(
            "noisiest: "
            + ", ".join(f"{n.address} {n.attribute} x{n.drifts}" for n in team.noisiest)
        )
    return lines


def _nice_ceiling(value: int) -> int:
    """The axis top: at least 1, rounded up to 1, 2 or 5 times a power of ten."""
    if value <= 1:
        return 1
    magnitude = 10 ** (len(str(value)) - 1)
    for factor in (1, 2, 5, 10):
        if value <= factor * magnitude:
            return int(factor * magnitude)
    return int(10 * magnitude)
