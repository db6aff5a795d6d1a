"""Operable in production: a dead-lettered message told to the ops channel, metrics, JSON logs.

Everything real over HTTP: moto's SNS/SQS/DynamoDB, the notifier's real slack-sdk client
against the Slack stand-in, the `toilkit replay` command a person would copy from Slack
run as a process, and the Lambda entry point called as the Lambda runtime calls it.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import shlex
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pythonjsonlogger.json import JsonFormatter
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from tenacity import wait_none

from services.notifier.service import NotifierService, build_notifier
from services.notifier.settings import NotifierSettings
from shared.aws import AwsClients
from shared.errors import PermanentError
from shared.events import BatchRequested, EventBase
from shared.metrics import EmfMetrics
from shared.observability import CONTEXT_FIELDS, LogContextFilter, json_formatter
from shared.publishing import Publisher
from shared.runtime import Runtime
from shared.topology import MAX_RECEIVE_COUNT, BootstrapReport, Names
from tests.integration.test_aws_lambda import _received, lambda_sqs_event, queue_arn
from tests.integration.test_cli import run_cli
from tests.notifier_samples import ALICE, run_started
from tests.support import FAST_WORKER, batch_requested, eventually, queue_depth, receive_all
from toilkit import aws_lambda
from toilkit.standins.slack import SlackStandin

OPS = "#toilkit-ops"


@pytest.fixture
def metric_lines() -> list[str]:
    return []


@pytest.fixture
def runtime(
    aws: AwsClients,
    names: Names,
    topology: BootstrapReport,
    publisher: Publisher,
    metric_lines: list[str],
) -> Runtime:
    return Runtime(
        aws=aws,
        names=names,
        topology=topology,
        publisher=publisher,
        metrics=EmfMetrics(names.prefix, write=metric_lines.append),
    )


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Every log line of the test, as the JSON handler of `toilkit serve` writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    handler.addFilter(LogContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    level, root.level = root.level, logging.INFO
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def ops_notifier(runtime: Runtime, standin: SlackStandin) -> NotifierService:
    settings = NotifierSettings(
        slack_api_url=standin.api_url,
        post_interval_seconds=0,
        ops_channel=OPS,
        worker=FAST_WORKER,
    )
    return await build_notifier(
        runtime,
        settings=settings,
        slack_backoff=FixedValueRetryIntervalCalculator(0),
        post_wait=wait_none(),
    )


def batch_request(note: str) -> BatchRequested:
    return batch_requested("rails-runner", by=ALICE, reason=note)


async def peek(aws: AwsClients, url: str) -> list[dict[str, Any]]:
    """What a queue holds, left visible for the next reader."""
    messages = await receive_all(aws.sqs, url)
    for m in messages:
        await aws.sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
        )
    return messages


def blocks_text(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks", []), ensure_ascii=False)


def posted_command(message: dict[str, Any]) -> str:
    """The replay command as a person copies it from the message's code block."""
    found = re.search(r"```(toilkit replay [^`]*)```", blocks_text(message))
    assert found, blocks_text(message)
    return found.group(1)


async def test_a_dead_lettered_message_is_told_to_the_ops_channel_once_with_its_replay_command(
    runtime: Runtime, aws: AwsClients, names: Names, standin: SlackStandin, moto_endpoint: str
) -> None:
    # GIVEN a batch worker whose handler refuses one request for good, and a poison body
    doomed, fine = batch_request("doomed"), batch_request("fine")

    async def on_batch_requested(event: BatchRequested) -> None:
        if event.reason == "doomed":
            raise PermanentError("the catalog has no command rails-runner")

    worker = runtime.worker("batch", {BatchRequested: on_batch_requested}, FAST_WORKER)
    for event in (doomed, fine):
        await runtime.publisher.publish(event)
    await aws.sqs.send_message(QueueUrl=runtime.topology.queue_urls["batch"], MessageBody="{oops")

    # WHEN the worker drains its queue (each failure is received five times) and the
    # notifier draws what it announced
    await worker.run(burst=True)
    notifier = await ops_notifier(runtime, standin)
    try:
        await notifier.drain()
        # ...and a second announcement of the same message arrives (another worker, a retry)
        dead = await peek(aws, runtime.topology.dlq_urls["batch"])
        again = [m for m in dead if "doomed" in m["Body"]]
        await runtime.worker("batch", {}, FAST_WORKER)._dead_lettered(again[0], "again")
        await notifier.drain()
    finally:
        await notifier.aclose()

    # THEN both are in the DLQ, and the ops channel has one message for each
    assert len(dead) == 2
    posted = standin.messages(OPS)
    assert len(posted) == 2
    by_text = {("doomed" if "BatchRequested" in p["text"] else "poison"): p for p in posted}
    doomed_post = blocks_text(by_text["doomed"])
    for what in (
        "BatchRequested",
        doomed.event_id,
        doomed.run_id,
        names.dlq("batch"),
        "the catalog has no command rails-runner",
    ):
        assert what in doomed_post
    assert "not valid JSON" in blocks_text(by_text["poison"])
    command = posted_command(by_text["doomed"])
    assert command == (
        f"toilkit replay {names.dlq('batch')} --type BatchRequested "
        f"--correlation-id {doomed.correlation_id}"
    )
    assert posted_command(by_text["poison"]) == f"toilkit replay {names.dlq('batch')}"

    # WHEN the person runs the command from Slack
    env = {"AWS_ENDPOINT_URL": moto_endpoint, "TOILKIT_NAME_PREFIX": names.prefix}
    replayed = await asyncio.to_thread(run_cli, *shlex.split(command)[1:], env=env)

    # THEN exactly that message is back on the batch queue; the poison one stays
    assert replayed.returncode == 0, replayed.stderr
    assert "moved 1, skipped 1" in replayed.stdout
    back = await receive_all(aws.sqs, runtime.topology.queue_urls["batch"])
    assert [json.loads(m["Body"])["event_id"] for m in back] == [doomed.event_id]


async def test_a_transient_failure_on_the_last_receive_is_announced_and_counted(
    runtime: Runtime,
    aws: AwsClients,
    names: Names,
    standin: SlackStandin,
    metric_lines: list[str],
    json_log: io.StringIO,
) -> None:
    # GIVEN a handler that always fails for now, and one event it handles
    failing, fine = batch_request("flaky"), batch_request("fine")

    async def on_batch_requested(event: BatchRequested) -> None:
        if event.reason == "flaky":
            raise ConnectionError("the runner is unreachable")
        logging.getLogger("tests.handler").info("handling it")

    worker = runtime.worker("batch", {BatchRequested: on_batch_requested}, FAST_WORKER)
    for event in (failing, fine):
        await runtime.publisher.publish(event)

    # WHEN the worker drains the queue (maxReceiveCount receives, then SQS moves it to the DLQ)
    await worker.run(burst=True)
    notifier = await ops_notifier(runtime, standin)
    try:
        await notifier.drain()
    finally:
        await notifier.aclose()

    # THEN it is in the DLQ, announced once with its reason
    assert len(await receive_all(aws.sqs, runtime.topology.dlq_urls["batch"])) == 1
    (post,) = standin.messages(OPS)
    assert "ConnectionError: the runner is unreachable" in blocks_text(post)
    assert failing.event_id in blocks_text(post)

    # THEN the metrics say it: five failed attempts, one dead letter, one handled event
    metrics = [json.loads(line) for line in metric_lines]
    batch = [m for m in metrics if m["Service"] == "batch"]
    assert sum(m.get("EventsFailed", 0) for m in batch) == MAX_RECEIVE_COUNT
    assert sum(m.get("EventsDeadLettered", 0) for m in batch) == 1
    handled = [m for m in batch if "EventsHandled" in m]
    assert [m["event_id"] for m in handled] == [fine.event_id]
    for m in metrics:
        (directive,) = m["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == names.prefix
        assert directive["Dimensions"] == [["Service", "EventType"], ["Service"]]
        assert {d["Name"] for d in directive["Metrics"]} <= set(m)
        assert m["EventType"] in ("BatchRequested", "MessageDeadLettered")
    notified = [m for m in metrics if m["Service"] == "notifier"]
    assert [m["EventType"] for m in notified] == ["MessageDeadLettered"]

    # THEN every log line is JSON and says its service; the handler's own line its event
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert lines and all(set(CONTEXT_FIELDS) <= set(line) for line in lines)
    (handler_line,) = [line for line in lines if line["logger"] == "tests.handler"]
    assert handler_line["service"] == "batch"
    assert handler_line["event_id"] == fine.event_id
    assert handler_line["run_id"] == fine.run_id
    assert handler_line["correlation_id"] == fine.correlation_id
    assert handler_line["event_type"] == "BatchRequested"
    assert {line["service"] for line in lines if line["logger"] == "shared.worker"} <= {
        "batch",
        "notifier",
    }


async def test_an_announcement_that_cannot_be_published_never_stops_the_worker(
    aws: AwsClients,
    names: Names,
    topology: BootstrapReport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a runtime whose topic is gone (every publish is refused)
    missing = topology.topic_arn.rsplit(":", 1)[0] + ":gone"
    runtime = Runtime(
        aws=aws,
        names=names,
        topology=topology,
        publisher=Publisher(aws.sns, aws.s3, missing, names.bucket),
    )
    worker = runtime.worker("batch", {BatchRequested: _never_called}, FAST_WORKER)
    await aws.sqs.send_message(QueueUrl=topology.queue_urls["batch"], MessageBody="[]")

    # WHEN it drains a poison message
    with caplog.at_level(logging.WARNING, logger="shared.ops"):
        stats = await worker.run(burst=True)

    # THEN the message still reaches the DLQ and the failed announcement is only logged
    assert stats.dead_lettered == MAX_RECEIVE_COUNT
    assert len(await receive_all(aws.sqs, topology.dlq_urls["batch"])) == 1
    assert "cannot announce" in caplog.text


async def _never_called(event: EventBase) -> None:
    raise AssertionError("poison never reaches a handler")


async def test_in_lambda_logs_are_json_and_metrics_are_emf_lines_on_stdout(
    aws: AwsClients,
    names: Names,
    topology: BootstrapReport,
    standin: SlackStandin,
    lambda_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the notifier function, in Lambda (its runtime sets AWS_LAMBDA_FUNCTION_NAME)
    lambda_env.setenv("AWS_LAMBDA_FUNCTION_NAME", f"{names.prefix}-notifier")
    lambda_env.setenv("TOILKIT_SERVICE", "notifier")
    lambda_env.setenv("TOILKIT_NOTIFIER_SLACK_API_URL", standin.api_url)
    lambda_env.setenv("TOILKIT_NOTIFIER_DEFAULT_CHANNEL", "C0RUNS0001")
    lambda_env.setenv("TOILKIT_NOTIFIER_POST_INTERVAL_SECONDS", "0")
    event = run_started(f"run-{uuid.uuid4().hex[:8]}")
    publisher = Publisher(aws.sns, aws.s3, topology.topic_arn, names.bucket)
    await publisher.publish(event)
    url = topology.queue_urls["notifier"]
    messages = await eventually(lambda: _received(aws, url, 1), timeout=20)
    root = logging.getLogger()
    formatters = [(h, h.formatter) for h in root.handlers]
    capsys.readouterr()

    # WHEN the function handles it
    try:
        response = await asyncio.to_thread(
            aws_lambda.worker_handler, lambda_sqs_event(messages, await queue_arn(aws, url)), None
        )
        # THEN the log handlers (Lambda's own, in Lambda) write JSON lines with the context
        assert root.handlers
        assert all(isinstance(h.formatter, JsonFormatter) for h in root.handlers)
    finally:
        for handler, formatter in formatters:
            handler.setFormatter(formatter)
            handler.filters = [f for f in handler.filters if not isinstance(f, LogContextFilter)]

    # THEN stdout holds its EMF line, with the event's ids
    assert response == {"batchItemFailures": []}
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    (metric,) = [m for m in out if "_aws" in m]
    assert metric["Service"] == "notifier"
    assert metric["EventType"] == "BatchRunStarted"
    assert metric["EventsHandled"] == 1
    assert metric["event_id"] == event.event_id
    assert metric["_aws"]["CloudWatchMetrics"][0]["Namespace"] == names.prefix
    assert await queue_depth(aws.sqs, url) == (0, 0)


@pytest.fixture
def lambda_env(
    monkeypatch: pytest.MonkeyPatch, moto_endpoint: str, names: Names
) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("TOILKIT_NAME_PREFIX", names.prefix)
    monkeypatch.setenv("TOILKIT_BUCKET", names.bucket)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    yield monkeypatch
    aws_lambda.close_sandbox()
