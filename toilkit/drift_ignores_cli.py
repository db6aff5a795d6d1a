"""``toilkit drift ignores``: the ignore rules written from Slack's **Ignore…** button.

::

    toilkit drift ignores [--all] [--format table|json]   list rules (removed ones with --all)
    toilkit drift ignores remove RULE_ID [--as NAME]     end a rule now (who and when are kept)

The rules live in the state table (:mod:`shared.state_table.drift_actions`); the detector
applies them from its next scan on. Rules in ``toilkit.yaml`` are not listed here: they
are in the file.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from shared.errors import ToilkitError
from shared.events import Actor, utc_now
from shared.runtime import Runtime, open_runtime
from shared.settings import AwsSettings, TopologySettings, load_settings
from shared.state_table.drift_actions import (
    AuditEntry,
    DriftAudit,
    IgnoreRuleStore,
    StoredIgnoreRule,
    today_utc,
)

T = TypeVar("T")

ignores_app = typer.Typer(
    help="Ignore rules written from Slack: list them, remove one.",
    invoke_without_command=True,
    no_args_is_help=False,
)
console = Console(stderr=True)
out = Console()


def _with_runtime(work: Callable[[Runtime], Awaitable[T]]) -> T:
    async def run() -> T:
        async with open_runtime(
            load_settings(AwsSettings), load_settings(TopologySettings)
        ) as runtime:
            return await work(runtime)

    try:
        return asyncio.run(run())
    except ToilkitError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None


def _who(actor: Actor | None) -> str:
    if actor is None:
        return "-"
    return f"{actor.name} ({actor.slack_user_id})" if actor.slack_user_id else actor.name


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "-"


def rule_json(rule: StoredIgnoreRule, *, status: str) -> dict[str, Any]:
    return {
        "id": rule.rule_id,
        "state": rule.state,
        "address": rule.address,
        "attribute": rule.attribute,
        "reason": rule.reason,
        "expires": rule.expires.isoformat(),
        "status": status,
        "created_by": _who(rule.created_by),
        "created_at": rule.created_at.isoformat(),
        "removed_by": _who(rule.removed_by) if rule.removed_by else None,
        "removed_at": rule.removed_at.isoformat() if rule.removed_at else None,
    }


@ignores_app.callback()
def list_command(
    context: typer.Context,
    show_all: Annotated[bool, typer.Option("--all", help="Removed rules too.")] = False,
    output_format: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
) -> None:
    """List the ignore rules (active and expired; removed ones with --all)."""
    if context.invoked_subcommand is not None:
        return
    if output_format not in ("table", "json"):
        console.print("[bold red]error:[/] --format: table or json", highlight=False)
        raise typer.Exit(1)

    async def read(runtime: Runtime) -> list[StoredIgnoreRule]:
        return await IgnoreRuleStore(runtime.aws.dynamodb, runtime.names.state_table).all()

    rules = _with_runtime(read)
    today = today_utc(utc_now())
    shown = [r for r in rules if show_all or r.removed_at is None]
    if output_format == "json":
        document = [rule_json(r, status=r.status(today)) for r in shown]
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    if not shown:
        out.print("No ignore rules written from Slack.", highlight=False)
        return
    table = Table(title="Ignore rules", title_justify="left")
    for column in ("id", "state", "address", "attribute", "until", "status", "reason", "by"):
        table.add_column(column, overflow="fold")
    for rule in shown:
        status = rule.status(today)
        if status == "removed":
            status = f"removed by {_who(rule.removed_by)} {_when(rule.removed_at)}"
        table.add_row(
            rule.rule_id,
            rule.state,
            rule.address,
            rule.attribute or "(all)",
            rule.expires.isoformat(),
            status,
            rule.reason,
            f"{_who(rule.created_by)} {_when(rule.created_at)}",
        )
    out.print(table)


@ignores_app.command("remove")
def remove_command(
    rule_id: Annotated[str, typer.Argument(help="The rule's id (first column of the list).")],
    as_name: Annotated[
        str | None, typer.Option("--as", help="Who removes it (default: your login).")
    ] = None,
) -> None:
    """End an ignore rule now: the drift it hid is reported again from the next scan."""
    who = Actor(name=as_name or getpass.getuser() or "cli")
    now = utc_now()

    async def remove(runtime: Runtime) -> StoredIgnoreRule | None:
        table = runtime.names.state_table
        removed = await IgnoreRuleStore(runtime.aws.dynamodb, table).remove(rule_id, who, now=now)
        if removed is not None:
            await DriftAudit(runtime.aws.dynamodb, table).record(
                AuditEntry(
                    at=now,
                    action="ignore-remove",
                    state=removed.state,
                    actor=who,
                    outcome="done",
                    detail=f"rule {rule_id}: {removed.address}",
                )
            )
        return removed

    removed = _with_runtime(remove)
    if removed is None:
        console.print(
            f"[bold red]error:[/] no ignore rule {rule_id!r} in force "
            "(see `toilkit drift ignores --all`)",
            highlight=False,
        )
        raise typer.Exit(1)
    out.print(
        f"Removed rule {rule_id} ({removed.address} in {removed.state}); the next scan reports "
        "its drift again.",
        highlight=False,
    )
