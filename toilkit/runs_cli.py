"""``toilkit runs``: who ran what, with which parameters, and how it ended.

``toilkit runs list`` and ``toilkit runs show RUN_ID`` read the batch service's run
records and audit trail from DynamoDB; ``toilkit runs request`` asks for a run the way the
Slack modal does (a ``BatchRequested`` event), for scripts and for trying toilkit without
Slack.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from services.batch.settings import BatchSettings
from services.batch.store import RunStore, record_summary
from shared.aws import AwsClients
from shared.catalog import load_catalog, validate_request
from shared.errors import ConfigError, ToilkitError
from shared.events import SENSITIVE, Actor, BatchRequested, RunParameter, new_event_id
from shared.runtime import open_runtime
from shared.settings import AwsSettings, TopologySettings, load_settings
from shared.state_table.runs import FINAL_RUN_STATES, RunRecord
from shared.topology import Names
from toilkit.console import cli_settings, console, out, run_async

runs_app = typer.Typer(
    help="Batch runs: list them, show one with its audit trail, request one.",
    no_args_is_help=True,
)


STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "timed_out": "red",
    "cancelled": "yellow",
    "refused": "magenta",
    "awaiting_approval": "cyan",
    "previewing": "cyan",
    "running": "blue",
    "starting": "blue",
}


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:04.1f}s" if minutes else f"{rest:.1f}s"


def _status(record: RunRecord) -> str:
    style = STATUS_STYLE.get(record.status, "white")
    return f"[{style}]{record.status}[/]"


def _who(actor: Actor | None) -> str:
    if actor is None:
        return "-"
    return f"{actor.name} ({actor.slack_user_id})" if actor.slack_user_id else actor.name


async def _read(settings: AwsSettings, topology: TopologySettings, work: Any) -> Any:
    names = Names.from_settings(topology)
    async with AwsClients(settings) as aws:
        return await work(RunStore(aws.dynamodb, names.state_table))


#: Characters of a run id that `runs list` shows and `runs show` accepts.
SHORT_ID = 8


@runs_app.command("list")
def list_runs(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 20,
    status: Annotated[
        str | None, typer.Option(help="Only runs in this state (e.g. failed, refused).")
    ] = None,
    break_glass: Annotated[
        bool, typer.Option("--break-glass", help="Only runs started without approval.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """The latest runs, newest first."""
    aws_settings, topology = cli_settings()
    filtered = status is not None or break_glass
    # A filter looks further back than the limit, then keeps the limit's worth.
    records: list[RunRecord] = run_async(
        _read(aws_settings, topology, lambda store: store.recent(1000 if filtered else limit))
    )
    if status is not None:
        records = [r for r in records if r.status == status]
    if break_glass:
        records = [r for r in records if r.break_glass]
    records = records[:limit]
    if as_json:
        for record in records:  # one compact object a line, for jq and scripts
            print(json.dumps(record_summary(record), default=str))
        return
    if not records:
        out.print("no runs yet (request one with `toilkit runs request`)")
        return
    # No vertical rules and a short time, so the table fits an 80-column terminal.
    table = Table(title="batch runs", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("run", "requested", "command", "env", "by", "status", "exit", "took"):
        table.add_column(column, no_wrap=True)
    for record in records:
        table.add_row(
            record.run_id[:SHORT_ID],
            record.requested_at.strftime("%m-%d %H:%M") if record.requested_at else "-",
            record.command,
            record.environment,
            record.requested_by.name,
            _status(record) + (" [bold red]break-glass[/]" if record.break_glass else ""),
            "-" if record.exit_code is None else str(record.exit_code),
            _duration(record.duration_seconds if record.status in FINAL_RUN_STATES else None),
        )
    out.print(table)


@runs_app.command("show")
def show_run(
    run_id: Annotated[str, typer.Argument(help="The run id (from `toilkit runs list`).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One run: request, decisions, outcome, log tail and the audit trail."""
    aws_settings, topology = cli_settings()

    async def load(store: RunStore) -> tuple[RunRecord | None, list[Any]]:
        record = await store.get(run_id)
        if record is None and len(run_id) >= SHORT_ID:
            # `runs list` shows the first characters of an id, as git shows commits.
            matches = [r for r in await store.recent(1000) if r.run_id.startswith(run_id)]
            if len(matches) > 1:
                raise ToilkitError(f"{run_id!r} matches {len(matches)} runs; give more of the id")
            record = matches[0] if matches else None
        if record is None:
            return None, []
        return record, await store.audit_trail(record.run_id)

    record, trail = run_async(_read(aws_settings, topology, load))
    if record is None:
        console.print(f"[bold red]error:[/] no run {run_id!r} (see `toilkit runs list`)")
        raise typer.Exit(1)
    if as_json:
        data = record_summary(record)
        data["audit"] = [json.loads(entry.model_dump_json()) for entry in trail]
        out.print_json(json.dumps(data))
        return
    out.print(_facts(record))
    if record.log_tail:
        out.print("[bold]last lines of the log[/]")
        for line in record.log_tail:
            out.print(f"  {line}", markup=False, highlight=False)
    audit = Table(title="audit trail", title_justify="left")
    for column in ("when", "what", "who", "detail"):
        audit.add_column(column, no_wrap=column in ("when", "what"))
    for entry in trail:
        audit.add_row(_when(entry.at), entry.action, _who(entry.actor), entry.detail)
    out.print(audit)


def _facts(record: RunRecord) -> Table:
    """The run's request, decisions and outcome, one row each."""
    facts = Table(show_header=False, box=None, title=f"run {record.run_id}", title_justify="left")
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("command", f"{record.command} in {record.environment}")
    facts.add_row("status", _status(record))
    facts.add_row("requested by", f"{_who(record.requested_by)} at {_when(record.requested_at)}")
    if record.reason:
        facts.add_row("reason", record.reason)
    if record.rerun_of:
        facts.add_row("run again from", record.rerun_of)
    if record.break_glass:
        skipped = "started without approval" if record.approval_skipped else "requested"
        facts.add_row("break-glass", skipped)
    for parameter in record.shown_parameters():
        shown = SENSITIVE if parameter.sensitive else repr(parameter.value)
        facts.add_row(f"  {parameter.name}", shown)
    if record.approval is not None:
        approvals = ", ".join(_who(a) for a in record.approval.approvals) or "none yet"
        facts.add_row(
            "approval",
            f"{len(record.approval.approvals)}/{record.approval.min_approvals} from "
            f"{', '.join(record.approval.approvers)} until {_when(record.approval.expires_at)} "
            f"({approvals})",
        )
    if record.preview is not None:
        preview = record.preview
        exit_status = f", exit status {preview.exit_code}" if preview.exit_code is not None else ""
        facts.add_row(
            "preview",
            f"{preview.status}{exit_status} after {_duration(preview.duration_seconds)} "
            f"(fingerprint {preview.fingerprint[:12]})",
        )
    elif record.status == "previewing":
        facts.add_row("preview", f"running since {_when(record.preview_started_at)}")
    if record.refusal_reason:
        facts.add_row("refused", f"{record.refusal_stage}: {record.refusal_reason}")
    if record.runner:
        facts.add_row("runner", f"{record.runner} {record.runner_ref or ''}".strip())
    if record.started_at:
        facts.add_row("started", _when(record.started_at))
    if record.finished_at:
        facts.add_row("ended", _when(record.finished_at))
    if record.exit_code is not None:
        facts.add_row("exit status", str(record.exit_code))
    if record.duration_seconds is not None and record.started_at:
        facts.add_row("took", _duration(record.duration_seconds))
    if record.cancel_requested_by is not None:
        facts.add_row("cancelled by", _who(record.cancel_requested_by))
    if record.error:
        facts.add_row("error", record.error)
    if record.log_url:
        facts.add_row("log", record.log_url)
    return facts


@runs_app.command("request")
def request_run(
    command: Annotated[str, typer.Argument(help="A command from the catalog.")],
    environment: Annotated[str, typer.Argument(help="Where to run it (e.g. staging).")],
    as_user: Annotated[
        str, typer.Option("--as", help="The requester's Slack user id (it is authorized).")
    ],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="NAME=VALUE, once per parameter."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="The requester's name.")] = None,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit trail).")] = "",
    check: Annotated[
        bool, typer.Option(help="Check against the local catalog before sending.")
    ] = True,
) -> None:
    """Ask for a run, as the Slack modal does (the batch service checks it again)."""
    pairs: list[tuple[str, str]] = []
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            console.print(f"[bold red]error:[/] --param {item!r} is not NAME=VALUE")
            raise typer.Exit(2)
        pairs.append((key, value))
    if check:
        try:
            catalog = load_catalog(load_settings(BatchSettings).catalog_path)
        except ConfigError as exc:
            console.print(f"[bold red]error:[/] {exc}\n(use --no-check to send it anyway)")
            raise typer.Exit(2) from None
        result = validate_request(catalog, command, environment, pairs)
        if isinstance(result, list):
            for error in result:
                console.print(f"[bold red]error:[/] {error}")
            raise typer.Exit(2)
    aws_settings, topology = cli_settings()
    run_id = new_event_id()
    event = BatchRequested(
        correlation_id=run_id,
        source="toilkit-cli",
        run_id=run_id,
        command=command,
        environment=environment,
        parameters=tuple(RunParameter(name=k, value=v) for k, v in pairs),
        reason=reason,
        requested_by=Actor(slack_user_id=as_user, name=name or as_user),
    )

    async def send() -> None:
        async with open_runtime(aws_settings, topology) as runtime:
            await runtime.publisher.publish(event)

    run_async(send())
    out.print(f"requested run {run_id}")
    out.print(f"follow it with: toilkit runs show {run_id}")
