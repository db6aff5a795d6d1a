"""``toilkit drift``: scan states, parse a plan, report on drift history.

The contract other tools rely on::

    toilkit drift scan [--config toilkit.yaml | --repo DIR] [--state NAME]... [--refresh-only]
                       [--concurrency N] [--format table|json] [--no-publish]
    toilkit drift parse PLAN.json [--format table|json] [--schema SCHEMA.json]
    toilkit drift report [--since 30d] [--state NAME]... [--chart FILE.svg] [--format table|json]
    toilkit drift ignores [--all] | toilkit drift ignores remove RULE_ID

Exit codes of ``scan`` and ``parse``: 0 when every state is clean, 2 when any has drift
or a pending change, 1 when any failed (or the command could not run at all). With
``--format json`` stdout holds only the JSON document; progress and messages go to
stderr. ``scan`` publishes the outcome events (and records the findings' lifecycle)
wherever ``AWS_ENDPOINT_URL``/AWS points unless ``--no-publish`` is given; that makes
``toilkit drift scan`` the whole entry point of a scheduled CodeBuild container.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import sys
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from services.detector.config import (
    CONFIG_FILE_NAME,
    DetectorConfig,
    StateConfig,
    config_for_repo,
    load_config,
)
from services.detector.engine import find_terraform
from services.detector.lifecycle import LifecycleStore
from services.detector.pipeline import ScanRequest
from services.detector.plan import PlanParseError, parse_plan
from services.detector.plan.reading import decode_all
from services.detector.plan.sets import SetPaths, set_paths_from_schema
from services.detector.scan import EXIT_CLEAN, EXIT_DRIFTED, EXIT_FAILED, StateResult, StateScan
from services.detector.service import build_pipeline, build_scanner, role_credentials
from services.detector.settings import DetectorSettings
from shared.aws import AwsClients
from shared.errors import ConfigError, ToilkitError
from shared.events import ScanMode, utc_now
from shared.runtime import open_runtime
from shared.settings import AwsSettings, TopologySettings, load_settings
from toilkit.drift_apply import EXIT_UNUSABLE, ApplyRefused, apply_state
from toilkit.drift_ignores_cli import ignores_app
from toilkit.drift_output import findings_table, team_tables, to_cli_json
from toilkit.drift_report import (
    DriftReport,
    build_report,
    format_duration,
    parse_span,
    render_svg,
)

drift_app = typer.Typer(
    help="Terraform drift: scan states, parse a plan, report on history.",
    no_args_is_help=True,
)

drift_app.add_typer(ignores_app, name="ignores")

#: Messages and progress; stdout is kept for the result (a table or the JSON document).
console = Console(stderr=True)
out = Console()
T = TypeVar("T")


class OutputFormat(enum.StrEnum):
    table = "table"
    json = "json"


class _CommandFailed(Exception):
    """The command cannot run at all (bad configuration, AWS unreachable): exit 1."""


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(name)s: %(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
        force=True,
    )
    for noisy in ("botocore", "aiobotocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; any failure of the command itself is exit 1, never 2 (drift)."""
    try:
        return asyncio.run(coro)
    except (ToilkitError, _CommandFailed) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None


# --------------------------------------------------------------------------- scan


class _ProgressBar:
    """The scan's progress bar: states done out of the total, and what is running."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task
        self._running: list[str] = []

    def state_started(self, state: StateConfig) -> None:
        self._running.append(state.name)
        self._show()

    def state_finished(self, scan: StateScan) -> None:
        self._running.remove(scan.state.name)
        colour = {"clean": "green", "drifted": "yellow", "failed": "red"}[scan.status]
        self._progress.console.print(
            f"[{colour}]{scan.status:>7}[/] {scan.state.name} ({scan.duration_seconds:.1f} s)",
            highlight=False,
        )
        self._progress.advance(self._task)
        self._show()

    def _show(self) -> None:
        shown = ", ".join(self._running[:3]) + (" ..." if len(self._running) > 3 else "")
        self._progress.update(self._task, description=f"planning {shown}" if shown else "done")


def _detector_config(
    config: Path | None, repo: Path | None, concurrency: int | None
) -> DetectorConfig:
    settings = {} if concurrency is None else {"concurrency": concurrency}
    if config is not None and repo is not None:
        raise _CommandFailed("give --config or --repo, not both")
    if config is None and repo is None:
        detector_settings = load_settings(DetectorSettings)
        config, repo = detector_settings.config, detector_settings.repo
        if config is None and repo is None:
            default_file = Path.cwd() / CONFIG_FILE_NAME
            config, repo = (default_file, None) if default_file.is_file() else (None, Path.cwd())
    if config is not None:
        loaded = load_config(config)
        if concurrency is not None:
            loaded = loaded.model_copy(update={"concurrency": concurrency})
        return loaded
    assert repo is not None
    return config_for_repo(repo, settings=settings)


@drift_app.command("scan")
def scan_command(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help=f"The {CONFIG_FILE_NAME} to read.")
    ] = None,
    repo: Annotated[
        Path | None,
        typer.Option("--repo", help="Scan every root module found in this repository."),
    ] = None,
    state: Annotated[
        list[str] | None,
        typer.Option("--state", "-s", help="Scan only this state (repeatable)."),
    ] = None,
    refresh_only: Annotated[
        bool,
        typer.Option("--refresh-only", help="Only changes made outside Terraform."),
    ] = False,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-j", min=1, max=64, help="States at once.")
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="table or json.")
    ] = OutputFormat.table,
    no_publish: Annotated[
        bool,
        typer.Option("--no-publish", help="Print only: no events, no AWS calls at all."),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Plan every state (or those named) and report drift and pending changes.

    Exit code: 0 all clean, 2 drift or pending changes, 1 a state failed.
    """
    _configure_logging(verbose)
    names = tuple(state or ())
    mode: ScanMode | None = "refresh_only" if refresh_only else None
    exit_code = _run(
        _scan(config, repo, names, mode, concurrency, output_format, no_publish, verbose)
    )
    raise typer.Exit(exit_code)


async def _scan(
    config_file: Path | None,
    repo: Path | None,
    names: tuple[str, ...],
    mode: ScanMode | None,
    concurrency: int | None,
    output_format: OutputFormat,
    no_publish: bool,
    verbose: bool,
) -> int:
    settings = load_settings(DetectorSettings)
    config = _detector_config(config_file, repo, concurrency)
    if verbose and config.discovery is not None:
        for skipped in config.discovery.skipped:
            console.print(f"[dim]skipped {skipped.path}: {skipped.reason}[/]", highlight=False)
    if config.discovery is not None:
        for problem in config.discovery.problems:
            console.print(f"[yellow]warning:[/] {problem}", highlight=False)
    if not config.states:
        raise _CommandFailed(
            f"no Terraform states to scan in {config.source or config.repo} (no root module "
            f"with a backend block or a .terraform.lock.hcl; list them in {CONFIG_FILE_NAME})"
        )
    chosen, unknown = config.select(names)
    scanner = build_scanner(config, settings)
    scan_id = str(uuid.uuid4())
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        bar = _ProgressBar(progress, progress.add_task("starting", total=len(chosen)))
        if no_publish:
            async with contextlib.AsyncExitStack() as stack:
                if any(state.assume_role is not None for state in chosen):
                    aws = await stack.enter_async_context(AwsClients(load_settings(AwsSettings)))
                    scanner.credentials = role_credentials(config, aws)
                report = await scanner.scan(chosen, scan_id=scan_id, mode=mode, progress=bar)
        else:
            async with open_runtime(
                load_settings(AwsSettings), load_settings(TopologySettings)
            ) as runtime:
                pipeline = await build_pipeline(runtime, config, scanner, source="cli")
                outcome = await pipeline.run(
                    ScanRequest(scan_id=scan_id, correlation_id=scan_id, states=names, mode=mode),
                    progress=bar,
                )
                report = outcome.report
    results = report.results() + [
        StateResult(name=name, path="", error=f"no state named {name!r}") for name in unknown
    ]
    _print_results(results, output_format)
    if output_format is OutputFormat.table:
        counts = {
            status: sum(1 for r in results if r.status == status)
            for status in ("clean", "drifted", "failed")
        }
        console.print(
            f"{len(results)} state(s) in {report.duration_seconds:.1f} s: "
            f"{counts['clean']} clean, {counts['drifted']} drifted, {counts['failed']} failed"
            + ("" if no_publish else f"; events published (scan {scan_id})"),
            highlight=False,
        )
    return _exit_code(results)


def _exit_code(results: list[StateResult]) -> int:
    statuses = {r.status for r in results}
    if "failed" in statuses:
        return EXIT_FAILED
    if "drifted" in statuses:
        return EXIT_DRIFTED
    return EXIT_CLEAN


def _print_results(results: list[StateResult], output_format: OutputFormat) -> None:
    if output_format is OutputFormat.json:
        sys.stdout.write(json.dumps(to_cli_json(results), indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    else:
        out.print(findings_table(results))


# --------------------------------------------------------------------------- parse


@drift_app.command("parse")
def parse_command(
    plan_file: Annotated[
        Path, typer.Argument(help="`terraform show -json PLANFILE` output ('-' for stdin).")
    ],
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="table or json.")
    ] = OutputFormat.table,
    state: Annotated[
        str | None, typer.Option("--state", "-s", help="The state name (default: file name).")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help=f"Apply the ignore rules of this {CONFIG_FILE_NAME}."),
    ] = None,
    schema: Annotated[
        Path | None,
        typer.Option(
            "--schema",
            help="`terraform providers schema -json` output: diff set attributes as sets.",
        ),
    ] = None,
) -> None:
    """Read a plan you made yourself and report its drift and pending changes.

    Several plans one after another (``terragrunt run-all show -json``) are read as one
    state each (``NAME#1``, ``NAME#2``...). Exit code: 0 clean, 2 drift or pending
    changes, 1 the plan cannot be read.
    """
    _configure_logging(False)
    name = state or (plan_file.name.split(".")[0] if str(plan_file) != "-" else "plan")
    results = _parse_results(plan_file, name, config, schema)
    if output_format is OutputFormat.table:
        for result in results:
            if result.error is not None:
                console.print(f"[bold red]error:[/] {result.error}", highlight=False)
        if any(r.summary is not None for r in results):
            _print_results([r for r in results if r.summary is not None], output_format)
    else:
        _print_results(results, output_format)
    for result in results:
        for rule in result.summary.expired_rules if result.summary else ():
            console.print(
                f"[yellow]warning:[/] ignore rule for {rule.address} expired on {rule.expires}",
                highlight=False,
            )
    raise typer.Exit(_exit_code(results))


def _parse_results(
    plan_file: Path, name: str, config: Path | None, schema: Path | None
) -> list[StateResult]:
    """One result per plan document in the file (or one error for the file)."""
    path = str(plan_file)
    try:
        rules = load_config(config).ignore if config is not None else ()
        set_paths = _read_schema(schema) if schema is not None else None
        body = sys.stdin.buffer.read() if path == "-" else plan_file.read_bytes()
        documents = decode_all(body)
    except (PlanParseError, ConfigError) as exc:
        return [StateResult(name=name, path=path, error=str(exc))]
    except OSError as exc:
        return [
            StateResult(name=name, path=path, error=f"cannot read {exc.filename}: {exc.strerror}")
        ]
    results = []
    for number, document in enumerate(documents, start=1):
        label = name if len(documents) == 1 else f"{name}#{number}"
        try:
            summary = parse_plan(
                document, state=label, ignore_rules=rules, now=utc_now(), set_paths=set_paths
            )
            results.append(StateResult(name=label, path=path, summary=summary))
        except PlanParseError as exc:
            results.append(StateResult(name=label, path=path, error=str(exc)))
    return results


def _read_schema(schema: Path) -> dict[str, SetPaths]:
    try:
        document = json.loads(schema.read_bytes())
    except ValueError as exc:
        raise ConfigError(
            f"{schema} is not `terraform providers schema -json` output: {exc}"
        ) from exc
    if not isinstance(document, dict) or "provider_schemas" not in document:
        raise ConfigError(
            f"{schema} is not `terraform providers schema -json` output (no provider_schemas)"
        )
    return set_paths_from_schema(document)


# --------------------------------------------------------------------------- report


@drift_app.command("apply")
def apply_command(
    state: Annotated[str, typer.Option("--state", "-s", help="The state to put back.")],
    target: Annotated[
        list[str] | None,
        typer.Option("--target", "-t", help="Only this resource address (repeatable)."),
    ] = None,
    targets: Annotated[
        str, typer.Option("--targets", help="Resource addresses separated by spaces.")
    ] = "",
    plan_only: Annotated[
        bool, typer.Option("--plan-only", help="Plan and print; apply nothing (a preview).")
    ] = False,
    config: Annotated[Path | None, typer.Option("--config", help="The toilkit.yaml.")] = None,
) -> None:
    """Put a drifted state back to what its code says: plan, print, apply that plan.

    What the Revert button's catalog command runs (docs/drift-actions.md). Exit 0 applied
    or nothing to change (or planned, with --plan-only), 1 Terraform failed, 2 unusable.
    """
    _configure_logging(False)
    try:
        detector_config = _detector_config(config, None, None)
    except (ToilkitError, _CommandFailed) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_UNUSABLE) from None
    chosen = detector_config.state(state)
    if chosen is None:
        known = ", ".join(s.name for s in detector_config.states) or "none"
        console.print(f"[bold red]error:[/] no state {state!r} (known: {known})", highlight=False)
        raise typer.Exit(EXIT_UNUSABLE)
    addresses = [*(target or []), *targets.split()]
    try:
        code = apply_state(
            chosen, targets=addresses, plan_only=plan_only, terraform=_terraform_of(detector_config)
        )
    except ApplyRefused as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_UNUSABLE) from None
    raise typer.Exit(code)


def _terraform_of(config: DetectorConfig) -> tuple[str, ...]:
    configured = load_settings(DetectorSettings).terraform or config.terraform
    return find_terraform(configured)


@drift_app.command("report")
def report_command(
    since: Annotated[str, typer.Option("--since", help="The window: 30d, 12h, 2w.")] = "30d",
    state: Annotated[
        list[str] | None, typer.Option("--state", "-s", help="Only this state (repeatable).")
    ] = None,
    chart: Annotated[
        Path | None, typer.Option("--chart", help="Write an SVG bar chart of drifts per day.")
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="table or json.")
    ] = OutputFormat.table,
) -> None:
    """Drifts per day and per state, and how long they took to resolve."""
    _configure_logging(False)
    try:
        window = parse_span(since)
    except ValueError as exc:
        console.print(f"[bold red]error:[/] --since: {exc}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None

    async def read() -> DriftReport:
        async with open_runtime(
            load_settings(AwsSettings), load_settings(TopologySettings)
        ) as runtime:
            store = LifecycleStore(runtime.aws.dynamodb, runtime.names.state_table)
            occurrences = await store.occurrences(state or None)
        return build_report(occurrences, since=window, now=utc_now())

    report = _run(read())
    if chart is not None:
        chart.write_text(render_svg(report), encoding="utf-8")
        console.print(f"chart written to {chart}", highlight=False)
    if output_format is OutputFormat.json:
        sys.stdout.write(json.dumps(report.as_json(), indent=2) + "\n")
        return
    _print_report(report)


def _print_report(report: DriftReport) -> None:
    out.print(
        f"[bold]{report.drifts}[/] drift(s) first seen from {report.since:%Y-%m-%d %H:%M} to "
        f"{report.until:%Y-%m-%d %H:%M} UTC: {report.resolved} resolved, "
        f"{report.still_open} still open; time to resolve: median "
        f"{format_duration(report.median_time_to_resolve)}, p90 "
        f"{format_duration(report.p90_time_to_resolve)}",
        highlight=False,
    )
    if report.oldest_open is not None:
        oldest = report.oldest_open
        out.print(
            f"oldest open: {oldest.address} in {oldest.state}, since {oldest.first_seen:%Y-%m-%d}",
            highlight=False,
        )
    states = Table(title="Per state", title_justify="left")
    for column in ("state", "drifts", "resolved", "open", "median to resolve"):
        states.add_column(column, justify="left" if column == "state" else "right")
    for figures in report.per_state:
        states.add_row(
            figures.state,
            str(figures.drifts),
            str(figures.resolved),
            str(figures.still_open),
            format_duration(figures.median_time_to_resolve),
        )
    out.print(states)
    days = Table(title="Per day (UTC)", title_justify="left")
    days.add_column("day")
    days.add_column("drifts", justify="right")
    days.add_column("")
    peak = max((n for _, n in report.per_day), default=0) or 1
    for day, count in report.per_day:
        days.add_row(day.isoformat(), str(count), "█" * round(30 * count / peak))
    out.print(days)
    for table in team_tables(report.team):
        out.print(table)
