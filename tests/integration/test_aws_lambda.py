"""The Lambda entry points against moto over HTTP and the Slack stand-in.

Messages are really sent and received (moto's SQS), then wrapped in the exact event a
Lambda SQS event source mapping delivers; the gateway gets the exact payload (format 2.0)
a function URL delivers, signed as Slack signs it. The handlers are called the way the
Lambda runtime calls them: synchronously, from a thread with no event loop of its own.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import snapshot_restore_py
from pydantic import SecretStr

from shared.aws import AwsClients
from shared.catalog import DEMO_CATALOG
from shared.errors import ConfigError
from shared.events import DriftScanRequested, parse_event
from shared.publishing import Publisher
from shared.secrets import SsmSecrets
from shared.slack.signing import signed_headers
from shared.ssm_extension import ParameterMissing, ParametersExtension
from shared.topology import BootstrapReport, Names
from shared.worker import failure_key
from tests.notifier_samples import run_started
from tests.support import eventually, queue_depth, receive_all
from toilkit import aws_lambda
from toilkit.standins.parameters_extension import ParametersExtensionStandin
from toilkit.standins.slack import SlackStandin
from toilkit.standins.slack.app_requests import SlackUserRef, slash_command_body

CHANNEL = "C0OPS00001"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ALICE = SlackUserRef("U0ALICE001", "alice")


@pytest.fixture
async def standin() -> AsyncIterator[SlackStandin]:
    async with SlackStandin() as slack:
        yield slack


@pytest.fixture
async def bot_token_parameter(aws: AwsClients, names: Names) -> str:
    """The SSM parameter Terraform creates for the bot token (every function reads it)."""
    name = f"/{names.prefix}/slack/bot-token"
    await put_secret(aws, name, "xoxb-from-ssm")
    return name


@pytest.fixture
def lambda_env(
    monkeypatch: pytest.MonkeyPatch, moto_endpoint: str, names: Names, bot_token_parameter: str
) -> Iterator[pytest.MonkeyPatch]:
    """The environment Terraform gives a function, pointed at moto; the sandbox the test
    opens is closed afterwards."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("TOILKIT_NAME_PREFIX", names.prefix)
    monkeypatch.setenv("TOILKIT_BUCKET", names.bucket)
    monkeypatch.setenv("TOILKIT_SLACK_BOT_TOKEN_PARAMETER", bot_token_parameter)
    yield monkeypatch
    aws_lambda.close_sandbox()


@dataclass(frozen=True)
class LambdaRig:
    """What a test of a Lambda entry point works with: AWS, the topology, the Slack
    stand-in and the function's environment (``parts`` unpacks them in that order)."""

    aws: AwsClients
    names: Names
    topology: BootstrapReport
    standin: SlackStandin
    env: pytest.MonkeyPatch

    @property
    def parts(
        self,
    ) -> tuple[AwsClients, Names, BootstrapReport, SlackStandin, pytest.MonkeyPatch]:
        return self.aws, self.names, self.topology, self.standin, self.env

    async def gateway(self, *, secret: str = SECRET) -> str:
        """The gateway function's environment, talking to the stand-in (``_gateway_env``)."""
        return await _gateway_env(
            self.aws, self.env, self.names, self.standin.api_url, secret=secret
        )


@pytest.fixture
def rig(
    aws: AwsClients,
    names: Names,
    topology: BootstrapReport,
    standin: SlackStandin,
    lambda_env: pytest.MonkeyPatch,
) -> LambdaRig:
    return LambdaRig(aws, names, topology, standin, lambda_env)


async def put_secret(aws: AwsClients, name: str, value: str) -> None:
    ssm = await aws.client("ssm")
    await ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)


async def queue_arn(aws: AwsClients, url: str) -> str:
    attributes = await aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return attributes["Attributes"]["QueueArn"]


def lambda_sqs_event(messages: list[dict[str, Any]], source_arn: str) -> dict[str, Any]:
    """What a Lambda SQS event source mapping delivers for ``messages``."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    "ApproximateReceiveCount": m["Attributes"]["ApproximateReceiveCount"],
                    "SentTimestamp": str(int(time.time() * 1000)),
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
                },
                "messageAttributes": {
                    name: {
                        "stringValue": value["StringValue"],
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": value["DataType"],
                    }
                    for name, value in m.get("MessageAttributes", {}).items()
                },
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": source_arn,
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def function_url_event(
    body: bytes, headers: dict[str, str], *, path: str = "/slack/events"
) -> dict[str, Any]:
    """A function URL request (payload format 2.0) as Lambda hands it to the function."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        # Function URLs lower-case header names.
        "headers": {k.lower(): v for k, v in headers.items()}
        | {"host": "abc123.lambda-url.us-east-1.on.aws", "user-agent": "Slackbot 1.0"},
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abc123",
            "domainName": "abc123.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abc123",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "54.1.2.3",
                "userAgent": "Slackbot 1.0",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": "12/Mar/2025:07:05:00 +0000",
            "timeEpoch": int(time.time() * 1000),
        },
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


async def test_worker_handler_reports_failed_and_poison_messages_and_handles_the_rest(
    rig: LambdaRig,
) -> None:
    aws, names, topology, standin, lambda_env = rig.parts
    # GIVEN the notifier function's environment: Slack token in SSM, a command routed to a
    # channel Slack does not know (a permanent failure)
    lambda_env.setenv("TOILKIT_SERVICE", "notifier")
    lambda_env.setenv("TOILKIT_NOTIFIER_SLACK_API_URL", standin.api_url)
    lambda_env.setenv(
        "TOILKIT_NOTIFIER_ROUTES",
        json.dumps({"default": CHANNEL, "commands": {"doomed": "C_MISSING"}}),
    )
    lambda_env.setenv("TOILKIT_NOTIFIER_POST_INTERVAL_SECONDS", "0")
    publisher = Publisher(aws.sns, aws.s3, topology.topic_arn, names.bucket)
    good = [run_started(f"run-{uuid.uuid4().hex[:8]}") for _ in range(2)]
    doomed = run_started(f"run-{uuid.uuid4().hex[:8]}", command="doomed")
    for event in (*good, doomed):
        await publisher.publish(event)
    queue_url = topology.queue_urls["notifier"]
    poison = await aws.sqs.send_message(QueueUrl=queue_url, MessageBody="{not an event")

    # WHEN the messages SQS hands out reach the function as a Lambda event
    messages = await eventually(lambda: _received(aws, queue_url, 4), timeout=20)
    event = lambda_sqs_event(messages, await queue_arn(aws, queue_url))
    response = await asyncio.to_thread(aws_lambda.worker_handler, event, None)

    # THEN the failed and the poison message are reported, the others handled and deleted
    by_run = {
        parse_event(m["Body"]).correlation_id: m["MessageId"]
        for m in messages
        if m["Body"].startswith('{"')
    }
    failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    assert failed == {by_run[doomed.correlation_id], poison["MessageId"]}
    posted = standin.messages(CHANNEL)
    assert len(posted) == 2
    assert {m["metadata"]["event_payload"]["event_id"] for m in posted} == {
        e.event_id for e in good
    }
    # Both failures were made visible again at once for the redrive policy, and each was
    # announced for the ops channel (MessageDeadLettered, on this same queue): nothing else.
    assert await eventually(lambda: _depth_is(aws, queue_url, (4, 0)), timeout=10)
    reason = await _failure_reason(aws, names, queue_url, poison["MessageId"])
    assert "not valid JSON" in reason

    # WHEN a handled message is delivered again (SQS is at least once)
    again = lambda_sqs_event(
        [m for m in messages if m["MessageId"] == by_run[good[0].correlation_id]],
        event["Records"][0]["eventSourceARN"],
    )
    response = await asyncio.to_thread(aws_lambda.worker_handler, again, None)

    # THEN it is not a failure and Slack gets no second message (same sandbox, idempotency)
    assert response == {"batchItemFailures": []}
    assert len(standin.messages(CHANNEL)) == 2


async def _received(aws: AwsClients, url: str, count: int) -> list[dict[str, Any]] | None:
    seen = await receive_all(aws.sqs, url)
    if len(seen) < count:
        for m in seen:  # give them back for the next look
            await aws.sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
            )
        return None
    return seen


async def _depth_is(aws: AwsClients, url: str, expected: tuple[int, int]) -> bool:
    return await queue_depth(aws.sqs, url) == expected


async def _failure_reason(aws: AwsClients, names: Names, queue_url: str, message_id: str) -> str:
    queue_name = queue_url.rsplit("/", 1)[-1]
    item = await aws.dynamodb.get_item(
        TableName=names.idempotency_table,
        Key={"id": {"S": failure_key(queue_name, message_id)}},
    )
    return json.dumps(item.get("Item", {}))


async def test_gateway_handler_acks_a_signed_request_and_publishes_before_returning(
    rig: LambdaRig,
) -> None:
    aws, _, topology, standin, _ = rig.parts
    # GIVEN the gateway function with its secrets in SSM
    await rig.gateway()

    # WHEN Slack posts a signed slash command to the function URL
    response = await _command(
        SECRET, "drift scan prod-network", trigger_id=standin.issue_trigger(ALICE.id)
    )

    # THEN it is acked with 200, and the scan request is on the bus by the time the
    # function returned (a frozen sandbox would never publish it later)
    assert response["statusCode"] == 200
    assert "prod-network" in response["body"]
    messages = await receive_all(aws.sqs, topology.queue_urls["detector"], rounds=1)
    events = [parse_event(m["Body"]) for m in messages]
    assert [type(e) for e in events] == [DriftScanRequested]
    assert isinstance(events[0], DriftScanRequested)
    assert events[0].states == ("prod-network",)
    assert events[0].requested_by is not None and events[0].requested_by.slack_user_id == ALICE.id

    # WHEN the same kind of request arrives with a signature made with another secret
    response = await _scan_request("another-secret")

    # THEN it is refused with 401 and nothing more is published
    assert response["statusCode"] == 401
    assert await receive_all(aws.sqs, topology.queue_urls["detector"], rounds=1) == []


async def test_the_batch_function_refuses_a_catalog_that_runs_commands_locally(
    topology: BootstrapReport, lambda_env: pytest.MonkeyPatch
) -> None:
    """A local run would be a child of the sandbox, stopped when the invocation returns."""
    lambda_env.setenv("TOILKIT_SERVICE", "batch")
    lambda_env.setenv("TOILKIT_BATCH_CATALOG_PATH", str(DEMO_CATALOG))

    with pytest.raises(ConfigError, match=r"cannot run commands locally: .*backfill-orders in"):
        await asyncio.to_thread(aws_lambda.worker_handler, {"Records": []}, None)


# --------------------------------------------------------------------------- secrets in SSM


async def _gateway_env(
    aws: AwsClients,
    lambda_env: pytest.MonkeyPatch,
    names: Names,
    api_url: str,
    *,
    secret: str = SECRET,
) -> str:
    """The gateway function's environment, its signing secret put in SSM; the parameter."""
    parameter = f"/{names.prefix}/slack/signing-secret"
    await put_secret(aws, parameter, secret)
    lambda_env.setenv("TOILKIT_SERVICE", "gateway")
    lambda_env.setenv("TOILKIT_SLACK_SIGNING_SECRET_PARAMETER", parameter)
    lambda_env.setenv("TOILKIT_GATEWAY_SLACK_API_URL", api_url)
    return parameter


async def _command(secret: str, text: str, *, trigger_id: str = "unused") -> dict[str, Any]:
    """The gateway function's answer to ``/toil text`` from Alice, signed with ``secret``."""
    body = slash_command_body(text, user=ALICE, channel_id=CHANNEL, trigger_id=trigger_id)
    return await asyncio.to_thread(
        aws_lambda.gateway_handler, function_url_event(body, signed_headers(secret, body)), None
    )


async def _slash(standin: SlackStandin, secret: str) -> dict[str, Any]:
    return await _command(secret, "run", trigger_id=standin.issue_trigger(ALICE.id))


async def _scan_request(secret: str) -> dict[str, Any]:
    return await _command(secret, "drift scan prod-network")


async def test_a_signing_secret_set_after_the_sandbox_opened_is_used_and_the_old_one_refused(
    rig: LambdaRig,
) -> None:
    aws, _, _, standin, lambda_env = rig.parts
    # GIVEN a gateway sandbox opened while SSM held Terraform's placeholder (the documented
    # order: apply, then put-parameter), reads of SSM not rate-limited for the test
    parameter = await rig.gateway(secret="placeholder-set-by-terraform")
    lambda_env.setenv("TOILKIT_SECRET_REFRESH_SECONDS", "0")
    assert (await _slash(standin, "placeholder-set-by-terraform"))["statusCode"] == 200

    # WHEN the real secret is put into SSM and Slack signs with it
    await put_secret(aws, parameter, SECRET)
    response = await _slash(standin, SECRET)

    # THEN the same sandbox reads it on the mismatch and acks (the modal is opened)
    assert response["statusCode"] == 200
    assert len(standin.calls("views.open")) == 2

    # WHEN a request still signed with the replaced secret arrives
    response = await _slash(standin, "placeholder-set-by-terraform")

    # THEN it is refused: the old secret is never accepted again
    assert response["statusCode"] == 401
    assert len(standin.calls("views.open")) == 2


async def test_a_rotated_bot_token_is_used_once_the_copy_is_stale(
    aws: AwsClients, names: Names, topology: BootstrapReport, lambda_env: pytest.MonkeyPatch
) -> None:
    # GIVEN a Slack that accepts only the new token, and a sandbox whose copy of the
    # secrets goes stale at once
    async with SlackStandin(valid_tokens=["xoxb-rotated"]) as slack:
        await _gateway_env(aws, lambda_env, names, slack.api_url)
        lambda_env.setenv("TOILKIT_SECRET_MAX_AGE_SECONDS", "0")
        lambda_env.setenv("TOILKIT_SECRET_REFRESH_SECONDS", "0")

        # WHEN the token is rotated in SSM after the sandbox opened with the old one
        assert (await _slash(slack, SECRET))["statusCode"] == 200
        assert slack.calls("views.open")[-1].error == "invalid_auth"
        await put_secret(aws, f"/{names.prefix}/slack/bot-token", "xoxb-rotated")
        response = await _slash(slack, SECRET)

        # THEN the next request is served with the new token
        assert response["statusCode"] == 200
        assert slack.calls("views.open")[-1].ok


async def test_secrets_are_read_again_at_most_once_per_interval(
    aws: AwsClients, names: Names
) -> None:
    # GIVEN secrets read from SSM at t=0, refreshed at most every 5 s
    parameter = f"/{names.prefix}/slack/signing-secret"
    await put_secret(aws, parameter, "first")
    now = [0.0]
    secrets = SsmSecrets(
        await aws.client("ssm"), {"signing_secret": parameter}, clock=lambda: now[0]
    )
    await secrets.load()
    await put_secret(aws, parameter, "second")

    # WHEN a refresh is asked for within the interval, THEN SSM is not read again
    now[0] = 4.9
    assert await secrets.refresh() == set()
    assert secrets.get("signing_secret") == SecretStr("first")

    # WHEN the interval has passed, THEN the new value is read and reported as changed
    now[0] = 5.1
    assert await secrets.refresh() == {"signing_secret"}
    assert secrets.get("signing_secret") == SecretStr("second")
    assert not secrets.stale()
    now[0] = 5.1 + secrets.max_age + 1
    assert secrets.stale()


async def test_a_missing_parameter_is_a_config_error_naming_it(
    aws: AwsClients, names: Names
) -> None:
    secrets = SsmSecrets(await aws.client("ssm"), {"bot_token": f"/{names.prefix}/nope"})
    with pytest.raises(ConfigError, match=f"/{names.prefix}/nope"):
        await secrets.load()


# --------------------------------------------------------------------------- a cold start


async def test_an_on_demand_gateway_sandbox_looks_nothing_up_and_opens_clients_when_used(
    rig: LambdaRig,
) -> None:
    aws, _, topology, standin, lambda_env = rig.parts
    # GIVEN the gateway's environment as Terraform writes it, the topic ARN and queue URLs
    # included, in an on-demand init (on the first request's path)
    await rig.gateway()
    lambda_env.setenv("TOILKIT_TOPIC_ARN", topology.topic_arn)
    lambda_env.setenv("TOILKIT_QUEUE_URLS", json.dumps(topology.queue_urls))
    lambda_env.setenv(aws_lambda.INIT_TYPE_VARIABLE, "on-demand")

    # WHEN the first request is a /toil run
    assert (await _slash(standin, SECRET))["statusCode"] == 200

    # THEN it was served on SSM's client alone: no lookup of the topology, no client the
    # request did not call
    sandbox = aws_lambda._sandbox
    assert sandbox is not None and sandbox.context is not None
    clients = sandbox.context.runtime.aws
    assert clients.opened("ssm") is not None
    assert [s for s in AwsClients.CORE if clients.opened(s) is not None] == []
    assert sandbox.context.runtime.topology.topic_arn == topology.topic_arn
    assert len(standin.calls("views.open")) == 1

    # WHEN a request publishes, THEN SNS opens then and the event reaches its queue
    assert (await _scan_request(SECRET))["statusCode"] == 200
    messages = await receive_all(aws.sqs, topology.queue_urls["detector"], rounds=1)
    assert [type(parse_event(m["Body"])) for m in messages] == [DriftScanRequested]


async def test_after_a_snapstart_restore_the_gateway_serves_with_new_connections(
    rig: LambdaRig,
) -> None:
    aws, _, topology, standin, lambda_env = rig.parts
    # GIVEN a gateway sandbox opened in a SnapStart init (every core client opened)
    parameter = await rig.gateway(secret="before-the-snapshot")
    lambda_env.setenv("TOILKIT_TOPIC_ARN", topology.topic_arn)
    lambda_env.setenv(aws_lambda.INIT_TYPE_VARIABLE, "snap-start")
    assert (await _slash(standin, "before-the-snapshot"))["statusCode"] == 200
    sandbox = aws_lambda._sandbox
    assert sandbox is not None and sandbox.context is not None
    assert all(sandbox.context.runtime.aws.opened(s) is not None for s in AwsClients.CORE)

    # WHEN the secret changed while the snapshot waited, and the runtime runs the hooks
    # registered with its snapshot_restore_py (the real library), as it does on restore
    await put_secret(aws, parameter, SECRET)
    snapshot_restore_py.get_after_restore().clear()
    aws_lambda._register_snapstart_hooks()
    hooks = snapshot_restore_py.get_after_restore()
    assert [func for func, _, _ in hooks] == [aws_lambda._after_restore]
    for func, args, kwargs in hooks:
        await asyncio.to_thread(func, *args, **kwargs)

    # THEN the restored sandbox serves with the new secret only, and still publishes
    assert (await _slash(standin, "before-the-snapshot"))["statusCode"] == 401
    assert (await _scan_request(SECRET))["statusCode"] == 200
    messages = await receive_all(aws.sqs, topology.queue_urls["detector"], rounds=1)
    assert [type(parse_event(m["Body"])) for m in messages] == [DriftScanRequested]


# ------------------------------------------------- the Parameters and Secrets extension

TOKEN = "session-token-of-the-sandbox"


@pytest.fixture
async def extension(moto_endpoint: str) -> AsyncIterator[ParametersExtensionStandin]:
    """The extension (stand-in) on moto's SSM, caching each value for five minutes, as the
    real one does by default."""
    async with ParametersExtensionStandin(TOKEN, endpoint_url=moto_endpoint, ttl=300) as ext:
        yield ext


def _client_of(ext: ParametersExtensionStandin, token: str = TOKEN) -> ParametersExtension:
    return ParametersExtension(port=ext.port, token=token, host="127.0.0.1")


async def test_the_extension_client_reads_parameters_and_names_each_failure(
    aws: AwsClients, names: Names, extension: ParametersExtensionStandin
) -> None:
    # GIVEN two SecureStrings in SSM
    first, second = f"/{names.prefix}/a/first", f"/{names.prefix}/b/second"
    await put_secret(aws, first, "one")
    await put_secret(aws, second, "two")

    # WHEN both are read through the extension, THEN both come back decrypted
    got = await _client_of(extension).get_parameters([first, second])
    assert got == {first: "one", second: "two"}
    assert sorted(c.name for c in extension.calls) == [first, second]

    # A parameter SSM does not have is named
    with pytest.raises(ParameterMissing, match=f"/{names.prefix}/nope"):
        await _client_of(extension).get_parameters([first, f"/{names.prefix}/nope"])
    # A wrong session token is refused (403)
    with pytest.raises(ConfigError, match=r"refused the session token \(403\)"):
        await _client_of(extension, token="another").get_parameters([first])
    # A failing extension (5xx) is an error, not an empty secret
    extension.fail_next(503)
    with pytest.raises(ConfigError, match=r"failed \(503\) reading"):
        await _client_of(extension).get_parameters([first])
    # No extension listening: the layer is missing
    await extension.stop()
    with pytest.raises(ConfigError, match=r"cannot be reached.*layer"):
        await _client_of(extension).get_parameters([first])


async def test_only_the_first_read_goes_through_the_extension_and_refreshes_read_ssm(
    aws: AwsClients, names: Names, extension: ParametersExtensionStandin
) -> None:
    # GIVEN secrets read first through the extension, which caches for five minutes
    parameter = f"/{names.prefix}/slack/signing-secret"
    await put_secret(aws, parameter, "first")
    secrets = SsmSecrets(
        await aws.client("ssm"),
        {"signing_secret": parameter},
        min_interval=0,
        first_read=_client_of(extension),
    )
    await secrets.load()
    assert secrets.get("signing_secret") == SecretStr("first")
    assert [c.name for c in extension.calls] == [parameter]

    # WHEN the secret changes and a refresh is asked for (a signature did not match)
    await put_secret(aws, parameter, "second")

    # THEN the refresh reads SSM itself: the new value, though the extension's cache
    # still holds the old one
    assert await secrets.refresh() == {"signing_secret"}
    assert secrets.get("signing_secret") == SecretStr("second")
    assert len(extension.calls) == 1
    assert await _client_of(extension).get_parameters([parameter]) == {parameter: "first"}


async def test_a_failing_extension_costs_the_first_read_a_trip_to_ssm_not_the_function(
    aws: AwsClients, names: Names, extension: ParametersExtensionStandin
) -> None:
    parameter = f"/{names.prefix}/slack/signing-secret"
    await put_secret(aws, parameter, "from-ssm")

    def secrets_of(name: str, ssm: Any) -> SsmSecrets:
        first = _client_of(extension)
        return SsmSecrets(ssm, {"signing_secret": name}, min_interval=0, first_read=first)

    ssm = await aws.client("ssm")
    # GIVEN a parameter that does not exist: the extension's 404 is the error, naming it
    with pytest.raises(ParameterMissing, match="nope"):
        await secrets_of(f"/{names.prefix}/nope", ssm).load()
    # WHEN the extension fails (5xx, a refused token) or is not there at all
    for failure in (503, 403, None):
        if failure is None:
            await extension.stop()  # no layer on the function
        else:
            extension.fail_next(failure)
        secrets = secrets_of(parameter, ssm)
        await secrets.load()
        # THEN SSM itself gives the secret
        assert secrets.get("signing_secret") == SecretStr("from-ssm"), failure


async def test_an_on_demand_gateway_with_the_extension_answers_without_an_aws_client(
    rig: LambdaRig, extension: ParametersExtensionStandin
) -> None:
    aws, _, topology, standin, lambda_env = rig.parts
    # GIVEN the gateway's environment as Terraform writes it with the extension's layer,
    # in an on-demand init, with Lambda's session token
    parameter = await rig.gateway(secret="placeholder-set-by-terraform")
    lambda_env.setenv("TOILKIT_TOPIC_ARN", topology.topic_arn)
    lambda_env.setenv(aws_lambda.INIT_TYPE_VARIABLE, "on-demand")
    lambda_env.setenv("TOILKIT_SECRETS_EXTENSION", "true")
    lambda_env.setenv("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", str(extension.port))
    lambda_env.setenv("AWS_SESSION_TOKEN", TOKEN)
    lambda_env.setenv("TOILKIT_SECRET_REFRESH_SECONDS", "0")

    # WHEN the first request is a /toil run
    assert (await _slash(standin, "placeholder-set-by-terraform"))["statusCode"] == 200

    # THEN its secrets came through the extension and no AWS client was opened
    sandbox = aws_lambda._sandbox
    assert sandbox is not None and sandbox.context is not None
    clients = sandbox.context.runtime.aws
    assert [s for s in ("ssm", *AwsClients.CORE) if clients.opened(s) is not None] == []
    assert sorted(c.name for c in extension.calls) == sorted(
        [parameter, f"/{rig.names.prefix}/slack/bot-token"]
    )
    assert len(standin.calls("views.open")) == 1

    # WHEN the secret is rotated while the extension still caches the old one
    await put_secret(aws, parameter, SECRET)

    # THEN a request signed with the new one is served (read from SSM on the mismatch),
    # and the old one is refused from then on
    assert (await _slash(standin, SECRET))["statusCode"] == 200
    assert clients.opened("ssm") is not None
    assert (await _slash(standin, "placeholder-set-by-terraform"))["statusCode"] == 401
    assert len(extension.calls) == 2


def test_the_extension_is_used_only_in_an_on_demand_init_with_a_session_token() -> None:
    env = {
        "service": "gateway",
        "slack_signing_secret_parameter": "/toilkit/slack/signing-secret",
        "secrets_extension": True,
        "AWS_SESSION_TOKEN": TOKEN,
        "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": 2999,
    }
    on_demand = aws_lambda.LambdaSettings(**env, AWS_LAMBDA_INITIALIZATION_TYPE="on-demand")
    assert on_demand.secrets_extension_at_start() == ParametersExtension(port=2999, token=TOKEN)
    # A SnapStart or provisioned init is off the request path and may not call it.
    for init in ("snap-start", "provisioned-concurrency"):
        settings = aws_lambda.LambdaSettings(**env, AWS_LAMBDA_INITIALIZATION_TYPE=init)
        assert settings.secrets_extension_at_start() is None
    # Without the token (Lambda does not always set it), or without the layer: the SDK.
    no_token = {k: v for k, v in env.items() if k != "AWS_SESSION_TOKEN"}
    assert (
        aws_lambda.LambdaSettings(
            **no_token, AWS_LAMBDA_INITIALIZATION_TYPE="on-demand"
        ).secrets_extension_at_start()
        is None
    )
    no_layer = env | {"secrets_extension": False}
    assert (
        aws_lambda.LambdaSettings(
            **no_layer, AWS_LAMBDA_INITIALIZATION_TYPE="on-demand"
        ).secrets_extension_at_start()
        is None
    )


def test_the_topology_from_the_environment_is_used_only_with_the_functions_queue() -> None:
    arn = "arn:aws:sns:eu-west-3:111111111111:toilkit-events"
    urls = {"notifier": "https://sqs.eu-west-3.amazonaws.com/111111111111/toilkit-notifier"}
    gateway = aws_lambda.LambdaSettings(service="gateway", topic_arn=arn)
    assert gateway.known_topology() == BootstrapReport(topic_arn=arn)
    notifier = aws_lambda.LambdaSettings(service="notifier", topic_arn=arn, queue_urls=urls)
    assert notifier.known_topology() == BootstrapReport(topic_arn=arn, queue_urls=urls)
    # The batch function's own queue is not named, so it looks the topology up.
    assert aws_lambda.LambdaSettings(service="batch", topic_arn=arn).known_topology() is None
    assert aws_lambda.LambdaSettings(service="gateway").known_topology() is None
