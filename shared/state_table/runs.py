"""The batch service's run record and the list of runs: written by the batch service, read
by the gateway and the CLI through these models and readers only (:func:`read_run_record`,
:func:`recent_run_ids`, :func:`read_break_glass_runs`; keys in :mod:`shared.state_table.keys`).

A run goes ``received`` -> (``previewing`` ->) (``awaiting_approval``) -> ``starting`` ->
``running`` -> one of :data:`FINAL_RUN_STATES`; :mod:`services.batch.lifecycle` holds the transitions.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeGuard, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.events import (
    Actor,
    DriftRef,
    PreviewResult,
    RefusalStage,
    RunParameter,
    RunStatus,
)
from shared.state_table.access import get_item, query_all
from shared.state_table.keys import (
    EXPIRES_AT,
    RUN_ITEM,
    RUN_LIST,
    break_glass_partition,
    key,
    run_partition,
    sortable_time,
)

if TYPE_CHECKING:
    from tenacity import AsyncRetrying
    from types_aiobotocore_dynamodb import DynamoDBClient

RunState: TypeAlias = Literal[
    "received",
    "previewing",
    "awaiting_approval",
    "starting",
    "running",
    "succeeded",
    "failed",
    "timed_out",
    "cancelled",
    "refused",
]
#: How a run that ran ended (the statuses ``BatchRunFinished`` carries).
RUN_OUTCOMES: frozenset[str] = frozenset(get_args(RunStatus))
#: States after which nothing about the run changes any more.
FINAL_RUN_STATES: frozenset[str] = RUN_OUTCOMES | {"refused"}


def is_run_outcome(status: str) -> TypeGuard[RunStatus]:
    """Whether ``status`` says how a run that ran ended (one of :data:`RUN_OUTCOMES`)."""
    return status in RUN_OUTCOMES


class _Model(BaseModel):
    # Unknown fields are ignored: during a rolling deploy a reader may meet a record that a
    # newer batch service wrote.
    # defer_build: built when a record is first read, not at import (a cold Lambda start).
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)


class ApprovalState(_Model):
    approvers: tuple[str, ...]
    min_approvals: int
    expires_at: AwareDatetime
    approvals: tuple[Actor, ...] = ()


class RunRecord(_Model):
    """Everything known about one run; stored as JSON under its ``version``."""

    run_id: str
    request_event_id: str
    command: str
    environment: str
    parameters: tuple[RunParameter, ...] = Field(
        default=(),
        description="Values as requested; sensitive ones are dropped once the run starts.",
    )
    sensitive_dropped: bool = False
    reason: str = ""
    requested_by: Actor
    channel_id: str | None = None
    rerun_of: str | None = None
    reverts: DriftRef | None = Field(
        default=None, description="The drift this run puts back (the Revert button)."
    )
    break_glass: bool = Field(default=False, description="Requested to start without approval.")
    scheduled_for: AwareDatetime | None = Field(
        default=None, description="The due time of a run the catalog's schedule requested."
    )
    approval_skipped: bool = Field(
        default=False, description="Break-glass: started without the approval it needs."
    )
    break_glass_channel: str | None = Field(
        default=None, description="Where the approvers are told of the break-glass start."
    )
    status: RunState = "received"
    requested_at: AwareDatetime
    approval: ApprovalState | None = None
    preview_by: str | None = Field(
        default=None, description="The event id whose handler runs the preview."
    )
    preview_fingerprint: str | None = Field(
        default=None, description="The digest of what the preview ran with (catalog, values)."
    )
    preview_ref: str | None = Field(
        default=None, description="The preview's runner reference (pid group, execution ARN)."
    )
    preview_started_at: AwareDatetime | None = None
    preview: PreviewResult | None = Field(default=None, description="How the preview ended.")
    refusal_stage: RefusalStage | None = None
    refusal_reason: str | None = None
    decided_by: Actor | None = None
    starting_by: str | None = Field(
        default=None, description="The event id whose handler claimed the start."
    )
    owner: str | None = Field(default=None, description="host:pid running a local run.")
    runner: str | None = None
    runner_ref: str | None = None
    log_url: str | None = None
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    exit_code: int | None = None
    duration_seconds: float | None = None
    log_tail: tuple[str, ...] = ()
    error: str | None = None
    cancel_requested_by: Actor | None = None
    version: int = 0

    @property
    def final(self) -> bool:
        return self.status in FINAL_RUN_STATES

    def without_secrets(self) -> RunRecord:
        """The record with sensitive values dropped (once they are no longer needed)."""
        return self.model_copy(
            update={"parameters": self.shown_parameters(), "sensitive_dropped": True}
        )

    def shown_parameters(self) -> tuple[RunParameter, ...]:
        """The parameters with every sensitive value hidden (for events and the CLI)."""
        return tuple(
            p.model_copy(update={"value": None}) if p.sensitive else p for p in self.parameters
        )


def run_record_item(record: RunRecord, expires_at: str) -> dict[str, Any]:
    """The state-table item of ``record`` (its status and version readable by conditions)."""
    return key(run_partition(record.run_id), RUN_ITEM) | {
        "status": {"S": record.status},
        "version": {"N": str(record.version)},
        "doc": {"S": record.model_dump_json()},
        EXPIRES_AT: {"N": expires_at},
    }


def run_record_from_item(item: dict[str, Any]) -> RunRecord:
    """The run record stored in ``item`` (its version from the item's own attribute)."""
    record = RunRecord.model_validate_json(item["doc"]["S"])
    return record.model_copy(update={"version": int(item["version"]["N"])})


def run_listing_item(record: RunRecord) -> dict[str, Any]:
    """The run's entry in the list of runs (``RUN_LIST``), which sorts by request time."""
    listing = key(RUN_LIST, f"{sortable_time(record.requested_at)}#{record.run_id}")
    return listing | {"run_id": {"S": record.run_id}}


async def recent_run_ids(
    dynamodb: DynamoDBClient, table: str, limit: int, retry: AsyncRetrying | None = None
) -> list[str]:
    """The ids of the latest ``limit`` runs, newest first (from :func:`run_listing_item`)."""
    listing = await query_all(
        dynamodb,
        table,
        RUN_LIST,
        newest_first=True,
        limit=limit,
        retry=retry,
        what="dynamodb.query (run list)",
    )
    return [item["run_id"]["S"] for item in listing if "run_id" in item]


async def read_run_record(
    dynamodb: DynamoDBClient, table: str, run_id: str, retry: AsyncRetrying | None = None
) -> RunRecord | None:
    """One run record, read consistently (None: no such run).

    Args:
        retry: the policy of the read (default: the outbound-call policy; the gateway,
            answering a person, passes its shorter interactive one).

    Raises:
        KeyError, ValueError: the stored item is not a run record this code can read.
    """
    item = await get_item(
        dynamodb, table, key(run_partition(run_id), RUN_ITEM), what="run record", retry=retry
    )
    return None if item is None else run_record_from_item(item)


async def read_break_glass_runs(
    dynamodb: DynamoDBClient, table: str, user_id: str, day: date
) -> frozenset[str]:
    """The runs ``user_id`` started by break-glass on ``day`` (UTC), read consistently from
    their counter item (``break_glass_partition(user_id)``, sort key the day), which the
    batch service writes."""
    item = await get_item(
        dynamodb, table, key(break_glass_partition(user_id), day.isoformat()), what="break-glass"
    )
    return frozenset((item or {}).get("runs", {}).get("SS", []))
