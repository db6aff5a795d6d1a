"""Re-run with edits: the run modal prefilled from a finished run.

The "Edit and run again" button of a finished run opens the run modal with that run's
command, environment and parameter values already in place, so the requester changes what
must change and submits; the new request carries ``rerun_of``, which links the two runs in
Slack and in ``toilkit runs show``. Sensitive values are never kept with a run, so they are
never prefilled. A command removed from the catalog since cannot be run again: the person
is told so, and no modal opens.
"""

from __future__ import annotations

from typing import Any

from services.gateway.blocks import ModalContext, Prefill, Reply, run_modal, text_reply
from shared.catalog import Catalog
from shared.slack.blocks import code, escape
from shared.state_table.runs import RunRecord


def removed_command_reply(record: RunRecord) -> Reply:
    """Why a run whose command left the catalog cannot run again (no run is requested)."""
    return text_reply(
        f":no_entry: Run {code(record.run_id)} cannot run again: its command "
        f"*{escape(record.command)}* is no longer in the catalog. Nothing was started; "
        "pick a current command with the `run` subcommand."
    )


def rerun_with_edits_view(
    catalog: Catalog, record: RunRecord, channel_id: str | None
) -> dict[str, Any] | Reply:
    """The prefilled modal for running ``record`` again, or why it cannot be.

    Args:
        catalog: the catalog as it is now (not as it was when the run was requested).
        record: the earlier run.
        channel_id: where the button was pressed (replies about the new run go there).
    """
    spec = catalog.command(record.command)
    if spec is None:
        return removed_command_reply(record)
    known = {p.name for p in spec.parameters}
    values = {
        p.name: p.value
        for p in record.parameters
        if p.value is not None and not p.sensitive and p.name in known
    }
    environment = record.environment if record.environment in spec.environments else None
    modal = ModalContext(
        channel_id=channel_id or record.channel_id, command=spec.name, rerun_of=record.run_id
    )
    return run_modal(catalog, modal, Prefill(environment=environment, values=values))
