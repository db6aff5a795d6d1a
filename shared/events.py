"""The event contracts every toilkit service shares.

One frozen pydantic model per event type, all in one discriminated union on ``type``.
Services talk only through these events (over SNS/SQS), so this module is the whole
interface between them. Parsing an SQS body never raises anything but
:class:`~shared.errors.PoisonMessage`, which the worker runtime leaves for the DLQ.

Commands (gateway, schedules -> batch, detector):
    BatchRequested, BatchCancelRequested, BatchApproved, BatchRejected,
    DriftScanRequested, DriftClaimed, DriftAcceptRequested.
Outcomes (batch, detector -> notifier):
    BatchApprovalRequested, BatchRunStarted, BatchRunProgress, BatchRunFinished, BatchRunRefused,
    DriftDetected, DriftResolved, DriftScanFailed, DriftScanCompleted, DriftAccepted.
Operations (any worker -> notifier, the ops channel):
    MessageDeadLettered.

Compatibility (``schema_version`` . ``schema_minor``):
    * ``schema_version`` is the MAJOR version. A consumer refuses an event of a higher
      major (a :class:`~shared.errors.PoisonMessage` saying to upgrade it; the DLQ keeps the
      message for ``toilkit replay`` once it is upgraded). A major bump is for a change an
      older consumer would get wrong: a field removed, renamed or retyped, a meaning changed,
      or any new field of a command.
    * ``schema_minor`` is the MINOR version: bumped by a producer that adds optional fields
      to an outcome event (or to a part of one). Consumers read outcome events with unknown
      fields ignored (:func:`parse_event`), so an older notifier renders a newer detector's
      ``DriftDetected`` without the new fields instead of dead-lettering it.
    * Commands stay strict: an unknown field on a command is poison whatever its version,
      because a field a consumer drops could change what it does (a ``dry_run`` ignored is a
      real run; a mistyped ``state`` in a hand-written ``DriftScanRequested`` would scan
      every state).
    * The models themselves keep ``extra="forbid"``: a producer that builds an event with a
      field the model lacks fails at once, in its own tests.
"""

# No ``from __future__ import annotations`` here: pydantic would read every field's type
# from its string (typing compiles and evaluates each one), these 40 models: ~5 ms of a gateway cold start.

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, TypeAlias, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    NonNegativeFloat,
    NonNegativeInt,
    TypeAdapter,
    ValidationError,
)

from shared.errors import PoisonMessage
from shared.event_ids import fixed_event_id

log = logging.getLogger(__name__)

#: The MAJOR version of the event contract, the highest ``schema_version`` this code
#: understands. An event of a newer major is poison here (it goes to the DLQ and can be
#: replayed once every consumer is upgraded).
SCHEMA_VERSION = 1
#: The MINOR version this code writes: additive, optional fields of outcome events.
#: 1 (the release that brought this policy; docs/events.md lists what it added):
#: ``DriftScanCompleted.resources_new`` and ``notes``, ``StateSummary.new_resources`` and
#: ``notes``, ``DriftDetected.notes``, and what else that release added to events.
SCHEMA_MINOR = 1

#: Marker that replaces every sensitive value before it leaves the service that saw it.
SENSITIVE = "(sensitive)"


def new_event_id() -> str:
    """A fresh event id: a UUID4 string, also valid as a Step Functions execution name."""
    return str(uuid.uuid4())


#: The namespace of :func:`derived_event_id`'s UUIDs.
_DERIVED_NAMESPACE = uuid.UUID("5b0c1d2e-13a7-4c0e-9d1f-7a1c0de13e13")


def derived_event_id(*parts: str) -> str:
    """An event id that is the same every time for the same ``parts`` (a UUID5).

    For an event a handler publishes on behalf of the event it handles (a scan's outcomes
    carry the scan's id): when the handler runs again after a crash, its events keep their
    ids, so the notifier, deduplicating by event id, announces each one once.
    """
    return fixed_event_id(_DERIVED_NAMESPACE, "/".join(parts))


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Model(BaseModel):
    # defer_build: a model's validator and serializer are built when it is first used, not
    # at import, so a process pays only for the events it handles (a cold Lambda sandbox).
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class EventBase(_Model):
    """The envelope every event carries."""

    event_id: str = Field(default_factory=new_event_id, min_length=1, max_length=80)
    schema_version: int = Field(default=SCHEMA_VERSION, ge=1, description="MAJOR version.")
    schema_minor: int = Field(
        default=SCHEMA_MINOR, ge=0, description="MINOR version: optional fields added."
    )
    occurred_at: AwareDatetime = Field(default_factory=utc_now)
    correlation_id: str = Field(min_length=1, description="The scan id or the run id.")
    source: str = Field(min_length=1, description="The service or tool that emitted it.")
    #: The discriminator: each event narrows it to its own name (``Literal["DriftDetected"]``).
    type: str

    #: True for outcome events (consumed by the notifier), False for commands.
    is_outcome: ClassVar[bool] = False


class _Outcome(EventBase):
    """An outcome event: the notifier consumes it, ignoring fields it does not know."""

    is_outcome: ClassVar[bool] = True


# --------------------------------------------------------------------------- shared parts


class Actor(_Model):
    """A person (or a schedule) behind an action."""

    slack_user_id: str | None = None
    name: str = Field(min_length=1, description="Display name, or e.g. 'schedule'.")


class ObjectRef(_Model):
    """A large payload kept in S3 (a plan, a log) that an event points to."""

    bucket: str
    key: str
    size: int | None = None


class RunParameter(_Model):
    """One batch parameter exactly as the requester typed it.

    Outcome events carry ``value=None`` for sensitive parameters, so a secret never
    reaches Slack or the event archive.
    """

    name: str
    value: str | None
    sensitive: bool = False


# --------------------------------------------------------------------------- batch: commands


class DriftRef(_Model):
    """The drift a run reverts: the report's state and findings (its thread is found by them)."""

    state: str
    fingerprints: tuple[str, ...] = ()


class _RunEvent(EventBase):
    """An event about one run of a catalog command."""

    run_id: str
    command: str
    environment: str


class _RunRequest(_RunEvent):
    """An event that carries a run's request: its values, why, and who asked."""

    parameters: tuple[RunParameter, ...] = ()
    reason: str = ""
    requested_by: Actor


class BatchRequested(_RunRequest):
    """Someone asked to run a catalog command (from the Slack modal, or the CLI)."""

    type: Literal["BatchRequested"] = "BatchRequested"
    channel_id: str | None = Field(default=None, description="Where the request came from.")
    rerun_of: str | None = None
    break_glass: bool = Field(
        default=False, description="Start without approval (an incident); needs a reason."
    )
    scheduled_for: AwareDatetime | None = Field(
        default=None, description="The due time, for a run the catalog's schedule requests."
    )
    reverts: DriftRef | None = Field(
        default=None, description="The drift this run puts back (the Revert button)."
    )


class BatchCancelRequested(EventBase):
    type: Literal["BatchCancelRequested"] = "BatchCancelRequested"
    run_id: str
    requested_by: Actor


class BatchApproved(EventBase):
    type: Literal["BatchApproved"] = "BatchApproved"
    run_id: str
    approved_by: Actor


class BatchRejected(EventBase):
    type: Literal["BatchRejected"] = "BatchRejected"
    run_id: str
    rejected_by: Actor
    reason: str = ""


# --------------------------------------------------------------------------- batch: outcomes

RunStatus: TypeAlias = Literal["succeeded", "failed", "timed_out", "cancelled"]
RerunOf: TypeAlias = Annotated[str | None, Field(description="The run this one runs again.")]


class PreviewResult(_Model):
    """How a run's preview (its catalog command's dry run) ended, for the approvers.

    Only a preview that ``succeeded`` (exit status 0 within its timeout) asks for an
    approval; any other ends the request (``BatchRunRefused`` at stage ``preview``).
    """

    status: RunStatus
    exit_code: int | None = None
    log_tail: tuple[str, ...] = Field(default=(), description="The preview's last lines.")
    log_url: str | None = None
    error: str | None = None
    duration_seconds: NonNegativeFloat = 0.0
    fingerprint: str = Field(
        min_length=1,
        description="Digest of the catalog entry and values previewed; approving runs the "
        "command only while it is unchanged.",
    )


class BatchApprovalRequested(_RunRequest, _Outcome):
    type: Literal["BatchApprovalRequested"] = "BatchApprovalRequested"
    approvers: tuple[str, ...] = Field(default=(), description="Slack user or group ids.")
    expires_at: AwareDatetime
    rerun_of: RerunOf = None
    preview: PreviewResult | None = Field(
        default=None, description="The preview the approvers decide on (None: no preview)."
    )


class BatchRunStarted(_RunRequest, _Outcome):
    type: Literal["BatchRunStarted"] = "BatchRunStarted"
    approved_by: Actor | None = None
    runner: str = Field(description="local, codebuild or stepfunctions")
    log_url: str | None = None
    started_at: AwareDatetime = Field(default_factory=utc_now)
    rerun_of: RerunOf = None
    break_glass: bool = Field(default=False, description="Started without its approval.")
    break_glass_channel: str | None = Field(
        default=None, description="Where the approvers are told of a break-glass run."
    )


class BatchRunFinished(_RunEvent, _Outcome):
    type: Literal["BatchRunFinished"] = "BatchRunFinished"
    status: RunStatus
    exit_code: int | None = None
    duration_seconds: NonNegativeFloat
    log_tail: tuple[str, ...] = ()
    log_url: str | None = None
    log_ref: ObjectRef | None = None
    cancelled_by: Actor | None = None
    error: str | None = None
    reverts: DriftRef | None = Field(default=None, description="The drift the run put back.")


class BatchRunProgress(_RunEvent, _Outcome):
    """A running run's latest log lines and elapsed time (sent every few seconds).

    Only the newest one matters: ``sequence`` grows with each one of a run, so a consumer
    drops any that is older than what it has shown, and any that arrives after the run's
    ``BatchRunFinished``. Sensitive parameter values are masked out of ``tail``.
    """

    type: Literal["BatchRunProgress"] = "BatchRunProgress"
    sequence: int = Field(ge=1, description="1, 2, 3 ... per run; newer is larger.")
    started_at: AwareDatetime
    elapsed_seconds: NonNegativeFloat
    tail: tuple[str, ...] = Field(default=(), description="The last lines of its log.")
    log_url: str | None = None


RefusalStage: TypeAlias = Literal[
    "validation", "authorization", "approval", "concurrency", "runner", "schedule", "preview"
]


class BatchRunRefused(_RunEvent, _Outcome):
    """A request that will not run: validation, authorization, approval or a busy lock."""

    type: Literal["BatchRunRefused"] = "BatchRunRefused"
    requested_by: Actor
    stage: RefusalStage
    reason: str
    decided_by: Actor | None = None
    rerun_of: RerunOf = None
    preview: PreviewResult | None = Field(
        default=None, description="The failed preview, when stage is 'preview'."
    )
    reverts: DriftRef | None = Field(
        default=None, description="The drift the refused run was to put back."
    )


# --------------------------------------------------------------------------- drift: commands

ScanMode: TypeAlias = Literal["full", "refresh_only"]


class DriftScanRequested(EventBase):
    """Scan some states now (schedule, Slack ``/toil drift scan``, CLI, ``aws sns publish``)."""

    type: Literal["DriftScanRequested"] = "DriftScanRequested"
    states: tuple[str, ...] = Field(default=(), description="State names; empty means all.")
    mode: ScanMode | None = Field(default=None, description="None: each state's own mode.")
    requested_by: Actor | None = None
    reply_channel: str | None = None
    reply_thread_ts: str | None = Field(
        default=None, description="A Re-scan button's report: the digest answers in its thread."
    )


class _FindingsEvent(EventBase):
    """An event about some findings of one state (the ones a drift message shows)."""

    state: str
    fingerprints: tuple[str, ...] = ()


class DriftClaimed(_FindingsEvent):
    """Someone pressed "I'm on it" on a drift message."""

    type: Literal["DriftClaimed"] = "DriftClaimed"
    claimed_by: Actor


class DriftAcceptRequested(_FindingsEvent):
    """Someone pressed "Accept into code" on a drift message: make the code say what the
    cloud has for these findings (a diff in the thread, a branch where a remote is set)."""

    type: Literal["DriftAcceptRequested"] = "DriftAcceptRequested"
    requested_by: Actor


# --------------------------------------------------------------------------- drift: outcomes

FindingKind: TypeAlias = Literal["drift", "pending"]
FindingStatus: TypeAlias = Literal["new", "open"]
#: How an element of a set attribute differs: sets have no positions, only members.
SetChange: TypeAlias = Literal["added", "removed"]


class AttributeChange(_Model):
    """One attribute that differs; ``path`` is dotted with list indexes (``tags.Env``).

    Attributes:
        before: The value before, or :data:`SENSITIVE`.
        after: The value after, :data:`SENSITIVE`, or ``None`` when unknown.
        sensitive: Terraform marks the value sensitive on either side.
        after_unknown: The value is only known after apply.
        ignored: An ignore rule or a provider-noise normalisation hides it.
        ignore_reason: Why it is ignored.
        reverted: Drift only: the next apply puts back ``before`` (the recorded value).
        forces_replacement: Changing it replaces the resource (the path is, or is under,
            one of the change's ``replace_paths``).
        set_change: The attribute is a set and this is one element that was added
            (``after``) or removed (``before``), not a position that was renumbered;
            ``path`` is then the set's own path.
    """

    path: str
    before: JsonValue = None
    after: JsonValue = None
    sensitive: bool = False
    after_unknown: bool = False
    ignored: bool = False
    ignore_reason: str | None = None
    reverted: bool = False
    forces_replacement: bool = False
    set_change: SetChange | None = None


class Revert(_Model):
    """What the next apply does to a drifted resource: it puts the recorded values back.

    A ``resource_changes`` entry that only undoes a drift belongs to that drift finding
    (it is not code waiting to be applied): its actions (``update``, ``delete``+``create``
    for a replacement, ``create`` for a resource deleted outside Terraform) and why.
    """

    actions: tuple[str, ...]
    action_reason: str | None = None


class Suspect(_Model):
    """Who probably made an out-of-band change (from CloudTrail)."""

    principal: str
    event_name: str
    event_time: AwareDatetime
    slack_user_id: str | None = None
    source_ip: str | None = None


class PlannedFinding(_Model):
    """A finding as one plan gives it; :class:`DriftFinding` adds its history.

    Attributes:
        fingerprint: Stable id of this drift (the detector's plan parser says what goes in).
        address: Full resource instance address, modules and index included.
        resource_type: e.g. ``aws_sqs_queue``.
        kind: ``drift`` (changed outside Terraform) or ``pending`` (Terraform would change it).
        actions: Terraform's actions, in Terraform's order (``("create", "delete")``).
        action_reason: Terraform's ``action_reason`` (``replace_because_tainted``...).
        previous_address: The address before a ``moved`` block, if any.
        deposed: The deposed object key, for the leftover of a create-before-destroy.
        import_id: The id an ``import`` block brings under management (pending only).
        attributes: The changed leaves (empty for a compact create/delete).
        revert: Drift only: what the next apply does to put the recorded values back
            (``None`` when it leaves the drift as it is, e.g. ``ignore_changes``).
        ignored: True when an ignore rule covers the resource or every changed attribute.
        ignore_reason: Why; several attribute reasons are joined with ``"; "``.
    """

    fingerprint: str
    address: str
    resource_type: str
    kind: FindingKind
    actions: tuple[str, ...]
    action_reason: str | None = None
    previous_address: str | None = None
    deposed: str | None = None
    import_id: str | None = None
    attributes: tuple[AttributeChange, ...] = ()
    revert: Revert | None = None
    ignored: bool = False
    ignore_reason: str | None = None


class DriftFinding(PlannedFinding):
    """One resource that drifted (``kind="drift"``) or whose code was not applied (``pending``).

    ``pending`` always means code that differs from the recorded state (including import
    and moved blocks); what apply would put back after a drift is the drift's ``revert``.
    """

    suspects: tuple[Suspect, ...] = ()
    status: FindingStatus = "new"
    first_seen: AwareDatetime
    claimed_by: Actor | None = None
    ignore_expired: str | None = Field(
        default=None, description="Why it shows again: 'ignore rule by X expired on D'."
    )
    resolved_recently: NonNegativeInt = Field(
        default=0, description="Times this finding was resolved in the last 30 days."
    )


class StateRef(_Model):
    name: str
    path: str
    workspace: str = "default"
    channel: str | None = Field(
        default=None, description="The state's Slack channel from toilkit.yaml, if it has one."
    )


class DriftDetected(_Outcome):
    """One state's open findings after a scan (one event per state per scan)."""

    type: Literal["DriftDetected"] = "DriftDetected"
    state: StateRef
    mode: ScanMode = "full"
    findings: tuple[DriftFinding, ...]
    findings_total: NonNegativeInt = Field(description="Before any cut for size.")
    plan_ref: ObjectRef | None = None
    plan_url: str | None = None
    notes: tuple[str, ...] = Field(
        default=(),
        description="What to know about how this plan was read (since 1.1), e.g. sets shown "
        "by position because a provider's schema could not be read.",
    )


class ResolvedFinding(_Model):
    fingerprint: str
    address: str
    kind: FindingKind
    first_seen: AwareDatetime


class DriftResolved(_Outcome):
    type: Literal["DriftResolved"] = "DriftResolved"
    state: StateRef
    resolved: tuple[ResolvedFinding, ...]


class AcceptedAttribute(_Model):
    """One attribute of an accepted drift: written into code, or left to a person (``reason``)."""

    address: str
    path: str
    reason: str | None = None


class DriftAccepted(_FindingsEvent, _Outcome):
    """The code change for an "Accept into code": its diff, and the branch it was pushed to.

    Attributes:
        diff: The unified diff (clipped to :data:`MAX_ACCEPT_DIFF` characters; the branch
            holds all of it).
        changed: The attributes written into code.
        skipped: The attributes left to a person, each with the reason.
        gone: Requested findings that the fresh plan no longer shows (fixed since).
        branch: The pushed branch, when a remote is configured and the push worked.
        compare_url: A link to compare (open a pull request), when the host is known.
        problem: Why nothing (or no branch) came of it, in words for the thread.
    """

    type: Literal["DriftAccepted"] = "DriftAccepted"
    requested_by: Actor
    diff: str = ""
    changed: tuple[AcceptedAttribute, ...] = ()
    skipped: tuple[AcceptedAttribute, ...] = ()
    gone: tuple[str, ...] = ()
    branch: str | None = None
    commit: str | None = None
    compare_url: str | None = None
    problem: str | None = None


#: The longest diff a ``DriftAccepted`` carries (SNS allows 256 KiB; Slack shows far less).
MAX_ACCEPT_DIFF = 12_000


ScanPhase: TypeAlias = Literal[
    "discover", "credentials", "init", "plan", "show", "parse", "timeout"
]


class DriftScanFailed(_Outcome):
    type: Literal["DriftScanFailed"] = "DriftScanFailed"
    state: StateRef
    phase: ScanPhase
    reason: str
    exit_code: int | None = None
    stderr_excerpt: str = ""


class StateSummary(_Model):
    name: str
    status: Literal["clean", "drifted", "failed"]
    open_findings: int = 0
    new_findings: int = 0
    open_resources: int = Field(default=0, description="Resources the open findings touch.")
    new_resources: NonNegativeInt = Field(
        default=0, description="Resources with a new finding, each counted once (1.1)."
    )
    notes: tuple[str, ...] = Field(
        default=(),
        description="Warnings about the state's scan (1.1): a plan close to its timeout, "
        "sets shown by position.",
    )


class OldestDrift(_Model):
    state: str
    address: str
    first_seen: AwareDatetime


class TeamLines(_Model):
    """The three team figures of ``toilkit drift report``, as one line each for the digest."""

    time_to_resolve: str
    came_back: str
    noisiest: str


class DriftScanCompleted(_Outcome):
    """The digest of one scan across all its states."""

    type: Literal["DriftScanCompleted"] = "DriftScanCompleted"
    states: tuple[StateSummary, ...]
    findings_open: NonNegativeInt
    findings_new: NonNegativeInt
    findings_resolved: NonNegativeInt
    resources_open: NonNegativeInt = Field(
        default=0, description="Resources the open findings touch, each counted once."
    )
    resources_new: NonNegativeInt = Field(
        default=0,
        description="Resources with a new finding, each counted once (1.1; findings_new "
        "counts a drift and its pending change on one resource twice).",
    )
    oldest_open: OldestDrift | None = None
    duration_seconds: NonNegativeFloat
    reply_channel: str | None = Field(default=None, description="Answer in this thread...")
    reply_thread_ts: str | None = Field(default=None, description="...instead of the digest.")
    requested_by: Actor | None = None
    team: TeamLines | None = Field(default=None, description="The scheduled digest's figures.")
    notes: tuple[str, ...] = Field(
        default=(),
        description="Warnings about the scan as a whole (1.1): it took most of the time its "
        "runner allows (the CodeBuild build timeout, the worker's handler timeout).",
    )


# --------------------------------------------------------------------------- operations


class MessageDeadLettered(_Outcome):
    """A worker gave up on a message: it lands (or has landed) in its queue's DLQ.

    Published by the worker runtime (:mod:`shared.ops`) once per message; its ``event_id``
    is derived from the queue and the message id, so a second announcement of the same
    message is a duplicate the notifier skips. ``correlation_id`` is the failed event's
    (or the message id when the body could not be read).
    """

    type: Literal["MessageDeadLettered"] = "MessageDeadLettered"
    consumer: str = Field(description="The service that gave up on it.")
    queue: str
    dlq: str
    message_id: str
    reason: str = Field(description="Why, as the worker recorded it.")
    receive_count: int = Field(ge=1)
    failed_type: str | None = Field(default=None, description="The failed event's type.")
    failed_event_id: str | None = None
    run_id: str | None = None
    replay_command: str = Field(description="The `toilkit replay` command that moves it back.")


# --------------------------------------------------------------------------- the union

Event: TypeAlias = Annotated[
    BatchRequested
    | BatchCancelRequested
    | BatchApproved
    | BatchRejected
    | BatchApprovalRequested
    | BatchRunStarted
    | BatchRunFinished
    | BatchRunProgress
    | BatchRunRefused
    | DriftScanRequested
    | DriftClaimed
    | DriftAcceptRequested
    | DriftAccepted
    | DriftDetected
    | DriftResolved
    | DriftScanFailed
    | DriftScanCompleted
    | MessageDeadLettered,
    Field(discriminator="type"),
]

_EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event, config=ConfigDict(defer_build=True))

#: Every event class by its ``type`` name.
EVENT_TYPES: dict[str, type[EventBase]] = {
    cls.model_fields["type"].default: cls for cls in get_args(get_args(Event)[0])
}
COMMAND_TYPES: frozenset[str] = frozenset(n for n, c in EVENT_TYPES.items() if not c.is_outcome)
OUTCOME_TYPES: frozenset[str] = frozenset(n for n, c in EVENT_TYPES.items() if c.is_outcome)


def event_type_name(event: EventBase) -> str:
    """The ``type`` discriminator of an event instance."""
    return event.type


def parse_event(body: str | bytes, *, default_event_id: str | None = None) -> EventBase:
    """Parse an SQS/SNS body into its event model, by the compatibility rules above.

    Args:
        body: the message body.
        default_event_id: the id to use when the body has none (a hand-written
            ``aws sns publish``); the worker passes the SQS message id, which stays the
            same across redeliveries, so idempotency still holds.

    Raises:
        PoisonMessage: the body is not UTF-8 JSON, has no known ``type``, has a newer
            major ``schema_version`` than this code, or does not match its model (for a
            command, that includes a field the model does not have). The message says
            which, so the DLQ entry explains itself.
    """
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PoisonMessage(f"body is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise PoisonMessage(f"body is JSON {type(raw).__name__}, expected an object")
    if default_event_id is not None and "event_id" not in raw:
        raw["event_id"] = default_event_id
    event_type = raw.get("type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        raise PoisonMessage(f"unknown event type {event_type!r}")
    version = raw.get("schema_version", SCHEMA_VERSION)
    minor = raw.setdefault("schema_minor", 0)  # older producers wrote no minor
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise PoisonMessage(
            f"{event_type} schema_version {version} is newer than this worker "
            f"understands ({SCHEMA_VERSION}): a major version changes the contract; upgrade "
            "this worker to a release that reads it, then replay the DLQ "
            "(toilkit replay QUEUE --include-poison)"
        )
    model = EVENT_TYPES[event_type]
    # Outcomes may carry optional fields a newer producer added (a minor bump): they are
    # ignored. Commands keep refusing them (see the module's compatibility rules).
    lenient = model.is_outcome
    if lenient:
        unknown = sorted(set(raw) - set(model.model_fields))
        if unknown:
            log.info(
                "%s %s: ignoring fields this worker does not know (%s); it was written as "
                "schema %s.%s, this worker reads %s.%s",
                event_type,
                raw.get("event_id"),
                ", ".join(unknown),
                version,
                minor,
                SCHEMA_VERSION,
                SCHEMA_MINOR,
            )
    try:
        event: EventBase = _EVENT_ADAPTER.validate_python(raw, extra="ignore" if lenient else None)
    except ValidationError as exc:
        raise PoisonMessage(_invalid(event_type, exc, version, minor)) from exc
    return event


def _invalid(event_type: str, exc: ValidationError, version: Any, minor: Any) -> str:
    """The DLQ reason of an event that does not match its model."""
    errors = exc.errors()
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc'][1:]) or '(body)'}: {err['msg']}"
        for err in errors[:5]
    )
    reason = f"invalid {event_type}: {problems}"
    if any(err["type"] == "extra_forbidden" for err in errors):
        newer = isinstance(minor, int) and minor > SCHEMA_MINOR and version == SCHEMA_VERSION
        reason += (
            f" (written as schema {version}.{minor}, this worker reads "
            f"{SCHEMA_VERSION}.{SCHEMA_MINOR}: a command never drops a field it does not "
            "know; "
            + (
                "upgrade this worker, then replay the DLQ with --include-poison)"
                if newer
                else "fix the sender)"
            )
        )
    return reason


def dump_event(event: EventBase) -> str:
    """Serialize an event to the JSON body that goes on the wire."""
    return event.model_dump_json()


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema of the union (for docs and for other tools that emit events)."""
    return _EVENT_ADAPTER.json_schema()
