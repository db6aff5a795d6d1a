"""``toilkit drift report`` figures and chart, and the redaction of archived plans."""

from __future__ import annotations

import itertools
import json
import xml.etree.ElementTree as ElementTree
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from services.detector.archive import plan_key, redact_plan
from services.detector.lifecycle import Occurrence
from services.detector.pipeline import run_limit_notes
from services.detector.settings import DetectorSettings
from shared.events import SENSITIVE
from toilkit.drift_report import (
    build_report,
    format_duration,
    parse_span,
    render_svg,
)

NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "plans"
SVG = "{http://www.w3.org/2000/svg}"


_NUMBERS = itertools.count()


def occurrence(
    state: str,
    first_seen: datetime,
    *,
    closed_after: timedelta | None = None,
    outcome: str = "resolved",
    address: str | None = None,
    kind: str = "drift",
) -> Occurrence:
    """One occurrence; of a resource of its own unless ``address`` is given."""
    address = address or f"aws_s3_bucket.b{next(_NUMBERS)}"
    if closed_after is None:
        return Occurrence(state, "fp", address, kind, first_seen)  # type: ignore[arg-type]
    return Occurrence(
        state,
        "fp",
        address,
        kind,  # type: ignore[arg-type]
        first_seen,
        closed_at=first_seen + closed_after,
        outcome=outcome,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("text", "span"),
    [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), (" 2w ", timedelta(weeks=2))],
)
def test_spans_are_read_in_hours_days_or_weeks(text: str, span: timedelta) -> None:
    assert parse_span(text) == span


@pytest.mark.parametrize("text", ["30", "0d", "1y", "-3d", "thirty days"])
def test_other_spans_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="30d, 12h or 2w"):
        parse_span(text)


def test_the_report_counts_drifts_per_day_and_per_state_and_times_to_resolve() -> None:
    june_28 = datetime(2025, 6, 28, 9, 0, tzinfo=UTC)
    june_29 = datetime(2025, 6, 29, 9, 0, tzinfo=UTC)
    occurrences = [
        occurrence("network", june_28, closed_after=timedelta(hours=2)),
        occurrence("network", june_28, closed_after=timedelta(hours=6)),
        occurrence("network", june_29),
        occurrence("app", june_29, closed_after=timedelta(days=1), outcome="ignored"),
        occurrence("app", june_29, closed_after=timedelta(hours=10)),
        # Before the window: not counted, except as the oldest still open.
        occurrence("app", NOW - timedelta(days=40), address="aws_iam_role.old"),
    ]

    report = build_report(occurrences, since=timedelta(days=7), now=NOW)

    assert report.drifts == 5
    assert (report.resolved, report.still_open) == (3, 1)
    assert len(report.per_day) == 8
    assert report.per_day[0] == (date(2025, 6, 23), 0)
    assert dict(report.per_day)[date(2025, 6, 28)] == 2
    assert dict(report.per_day)[date(2025, 6, 29)] == 3
    assert report.per_day[-1] == (date(2025, 6, 30), 0)
    assert [(s.state, s.drifts, s.resolved, s.still_open) for s in report.per_state] == [
        ("network", 3, 2, 1),
        ("app", 2, 1, 0),
    ]
    assert report.median_time_to_resolve == timedelta(hours=6)
    assert report.p90_time_to_resolve == timedelta(hours=10)
    assert report.per_state[0].median_time_to_resolve == timedelta(hours=4)
    assert report.oldest_open is not None and report.oldest_open.address == "aws_iam_role.old"
    document = report.as_json()
    assert document["median_hours_to_resolve"] == 6.0
    assert document["per_state"][0]["state"] == "network"
    json.dumps(document)


def test_a_resource_counts_once_per_sighting_whatever_its_findings() -> None:
    day = datetime(2025, 6, 28, 9, 0, tzinfo=UTC)
    bucket = "aws_s3_bucket.logs"
    occurrences = [
        # Changed outside Terraform and code not applied, both first seen by one scan.
        occurrence("app", day, address=bucket, closed_after=timedelta(hours=2)),
        occurrence("app", day, address=bucket, kind="pending"),
        # Seen again a day later, after it was resolved: a second drift.
        occurrence("app", day + timedelta(days=1), address=bucket, closed_after=timedelta(hours=3)),
    ]

    report = build_report(occurrences, since=timedelta(days=7), now=NOW)

    assert (report.drifts, report.resolved, report.still_open) == (2, 1, 1)
    assert report.median_time_to_resolve == timedelta(hours=3)


def test_an_empty_history_gives_an_empty_report_and_a_valid_chart() -> None:
    report = build_report([], since=timedelta(days=3), now=NOW)

    assert report.drifts == 0
    assert report.median_time_to_resolve is None
    assert [n for _, n in report.per_day] == [0, 0, 0, 0]
    bars = ElementTree.fromstring(render_svg(report)).findall(f"{SVG}rect[@class='bar']")
    assert len(bars) == 4


def test_the_chart_has_one_bar_per_day_with_heights_in_proportion() -> None:
    day = datetime(2025, 6, 27, 9, 0, tzinfo=UTC)
    occurrences = [occurrence("a", day) for _ in range(4)] + [
        occurrence("a", day + timedelta(days=2)) for _ in range(2)
    ]
    report = build_report(occurrences, since=timedelta(days=30), now=NOW)

    root = ElementTree.fromstring(render_svg(report, title="Drifts <per> day"))

    bars = root.findall(f"{SVG}rect[@class='bar']")
    assert len(bars) == 31
    by_day = {b.get("data-day"): b for b in bars}
    assert by_day["2025-06-27"].get("data-count") == "4"
    assert float(by_day["2025-06-27"].get("height", "0")) == pytest.approx(
        2 * float(by_day["2025-06-29"].get("height", "0"))
    )
    assert float(by_day["2025-06-28"].get("height", "1")) == 0
    assert root.find(f"{SVG}title") is not None
    assert root.findtext(f"{SVG}title") == "Drifts <per> day"


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (None, "-"),
        (timedelta(minutes=42), "42m"),
        (timedelta(hours=5, minutes=12), "5h 12m"),
        (timedelta(days=3, hours=4, minutes=59), "3d 4h"),
    ],
)
def test_durations_read_like_people_write_them(duration: timedelta | None, text: str) -> None:
    assert format_duration(duration) == text


# --------------------------------------------------------------------------- archive


def test_an_archived_plan_keeps_no_sensitive_value() -> None:
    plan = json.loads((FIXTURES / "opentofu-show-json-sensitive-values.json").read_text())
    assert "boop" in json.dumps(plan)

    redacted = redact_plan(plan)

    assert "boop" not in json.dumps(redacted)
    assert redacted["resource_changes"][0]["change"]["after"] == {"ami": SENSITIVE}
    assert redacted["output_changes"]["test"]["after"] == SENSITIVE
    assert redacted["variables"]["test_var"]["value"] == SENSITIVE
    assert redacted["planned_values"]["root_module"]["resources"][0]["values"] == {"ami": SENSITIVE}
    assert redacted["toilkit"] == {"redacted": True, "dropped_keys": []}


def test_redaction_keeps_what_is_not_sensitive_and_drops_what_it_does_not_know() -> None:
    plan = {
        "format_version": "1.2",
        "resource_drift": [
            {
                "address": "cloud_queue.jobs",
                "mode": "managed",
                "type": "cloud_queue",
                "change": {
                    "actions": ["update"],
                    "before": {"name": "jobs", "secret": "hunter2", "tags": {"k": ["a", "b"]}},
                    "after": {"name": "jobs", "secret": "hunter3", "tags": {"k": ["a", "c"]}},
                    "before_sensitive": {"secret": True, "tags": {"k": [False, True]}},
                    "after_sensitive": {"secret": True, "tags": {"k": [False, True]}},
                },
            }
        ],
        "configuration": {
            "provider_config": {"aws": {"expressions": {"secret_key": {"constant_value": "AKIA"}}}}
        },
        "future_thing": {"value": "hunter4"},
    }

    redacted = redact_plan(plan)

    change = redacted["resource_drift"][0]["change"]
    assert change["before"] == {
        "name": "jobs",
        "secret": SENSITIVE,
        "tags": {"k": ["a", SENSITIVE]},
    }
    assert change["after"] == {"name": "jobs", "secret": SENSITIVE, "tags": {"k": ["a", SENSITIVE]}}
    text = json.dumps(redacted)
    for secret in ("hunter2", "hunter3", "hunter4", "AKIA", '"b"', '"c"'):
        assert secret not in text
    assert redacted["toilkit"]["dropped_keys"] == ["future_thing"]


def test_plan_keys_are_per_state_and_day() -> None:
    key = plan_key("stacks/net work", "scan-1", datetime(2025, 6, 3, 7, tzinfo=UTC))

    assert key == "plans/stacks/net_work/2025/06/03/scan-1.json"


def test_a_scan_close_to_its_runners_limit_is_warned_about_in_the_digest() -> None:
    assert run_limit_notes(5000, 7200) == ()
    assert run_limit_notes(7000, None) == ()  # a person's terminal has no limit
    (note,) = run_limit_notes(6000, 7200)
    assert note.startswith("The scan took 6000 s of the 7200 s its runner allows (83%): ")


def test_the_run_limit_is_the_build_timeout_or_the_workers_handler_timeout() -> None:
    assert DetectorSettings().scan_run_limit == 3600
    assert DetectorSettings(run_limit_seconds=7200).scan_run_limit == 7200
