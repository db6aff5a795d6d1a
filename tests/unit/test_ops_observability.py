"""The pure parts of operating toilkit: log context, EMF lines, dead-letter notices, the
ops channel's Block Kit."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

from services.notifier.blocks import render_dead_letter
from shared.events import EventBase, parse_event
from shared.metrics import EmfMetrics
from shared.observability import LogContextFilter, json_formatter, log_context
from shared.ops import DeadLetter, DeadLetterAnnouncer, dead_letter_notice, replay_command
from shared.slack.blocks import MAX_BLOCKS, MAX_HEADER_TEXT, MAX_SECTION_TEXT


def message(body: str, **attributes: str) -> Any:
    return {
        "MessageId": "m-1",
        "Body": body,
        "Attributes": {"ApproximateReceiveCount": "5"},
        "MessageAttributes": {
            k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
        },
    }


def test_each_task_keeps_its_own_context_and_lines_carry_it() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    handler.addFilter(LogContextFilter())
    logger = logging.getLogger("tests.context")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    async def one(event_id: str) -> None:
        with log_context(event_id=event_id, run_id=None):
            await asyncio.sleep(0)
            logger.info("in %s", event_id)

    async def both() -> None:
        with log_context(service="batch"):
            await asyncio.gather(one("e-1"), one("e-2"))
            logger.info("after")

    try:
        asyncio.run(both())
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["message"], line["service"], line["event_id"]) for line in lines] == [
        ("in e-1", "batch", "e-1"),
        ("in e-2", "batch", "e-2"),
        ("after", "batch", None),
    ]
    assert all(line["run_id"] is None and line["level"] == "INFO" for line in lines)


def test_an_emf_line_declares_each_metric_it_carries() -> None:
    lines: list[str] = []
    metrics = EmfMetrics("toilkit", write=lines.append, properties=lambda: {"event_id": "e-1"})

    metrics.handled("notifier", "DriftDetected", 0.25)
    metrics.failed("notifier", "DriftDetected", None)

    handled, failed = (json.loads(line) for line in lines)
    (directive,) = handled["_aws"]["CloudWatchMetrics"]
    assert directive["Metrics"] == [
        {"Name": "EventsHandled", "Unit": "Count"},
        {"Name": "HandlerDuration", "Unit": "Milliseconds"},
    ]
    assert (handled["EventsHandled"], handled["HandlerDuration"]) == (1, 250.0)
    assert (handled["Service"], handled["EventType"], handled["event_id"]) == (
        "notifier",
        "DriftDetected",
        "e-1",
    )
    assert [m["Name"] for m in failed["_aws"]["CloudWatchMetrics"][0]["Metrics"]] == [
        "EventsFailed"
    ]


def test_the_replay_command_filters_on_what_replay_reads_from_the_message() -> None:
    body = json.dumps({"type": "DriftDetected", "correlation_id": "scan 1;rm", "event_id": "e"})
    assert replay_command("p-notifier-dlq", message(body)) == (
        "toilkit replay p-notifier-dlq --type DriftDetected --correlation-id 'scan 1;rm'"
    )
    # An offloaded body names neither: the type comes from the attribute, no correlation
    offloaded = message('{"s3": "x"}', type="DriftDetected", correlation_id="scan-1")
    assert replay_command("d", offloaded) == "toilkit replay d --type DriftDetected"
    assert replay_command("d", message("{oops")) == "toilkit replay d"


def test_a_notice_has_one_id_per_message_and_says_what_it_knows() -> None:
    body = json.dumps({"type": "BatchRequested", "correlation_id": "run-1", "run_id": "run-1"})
    dead = DeadLetter("batch", "p-batch", message(body, event_id="e-9"), "boom")
    first = dead_letter_notice(dead, dlq="p-batch-dlq", source="batch")
    again = dead_letter_notice(
        DeadLetter("batch", "p-batch", dead.message, "other"), dlq="p-batch-dlq", source="batch"
    )
    assert first.event_id == again.event_id
    assert (first.failed_type, first.failed_event_id, first.run_id) == (
        "BatchRequested",
        "e-9",
        "run-1",
    )
    assert (first.correlation_id, first.receive_count) == ("run-1", 5)
    assert parse_event(first.model_dump_json()) == first


def test_the_ops_message_stays_inside_slacks_limits() -> None:
    dead = DeadLetter("notifier", "p-notifier", message("x" * 10_000), "why " * 2000)
    notice = dead_letter_notice(dead, dlq="p-notifier-dlq", source="notifier")
    rendered = render_dead_letter(notice)
    assert len(rendered.blocks) <= MAX_BLOCKS
    assert len(rendered.blocks[0]["text"]["text"]) <= MAX_HEADER_TEXT
    assert all(len(b.get("text", {}).get("text", "")) <= MAX_SECTION_TEXT for b in rendered.blocks)
    assert "toilkit replay p-notifier-dlq" in json.dumps(rendered.as_arguments())


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.published: list[EventBase] = []
        self.fail = fail

    async def publish(self, event: EventBase) -> None:
        if self.fail:
            raise ConnectionError("SNS is down")
        self.published.append(event)


def test_an_announcement_that_failed_itself_is_not_announced_again() -> None:
    recorder = Recorder()
    announce = DeadLetterAnnouncer(recorder, lambda consumer: f"p-{consumer}-dlq")
    looping = message(json.dumps({"type": "MessageDeadLettered", "correlation_id": "c"}))
    asyncio.run(announce(DeadLetter("notifier", "p-notifier", looping, "Slack refused")))
    assert recorder.published == []


def test_an_announcement_sns_refuses_is_logged_not_raised() -> None:
    plain = message(json.dumps({"type": "BatchRequested", "correlation_id": "c"}))
    announce = DeadLetterAnnouncer(Recorder(fail=True), lambda consumer: f"p-{consumer}-dlq")
    asyncio.run(announce(DeadLetter("batch", "p-batch", plain, "boom")))  # returns
