"""``toilkit.yaml``: which Terraform states the detector scans, when, and how.

The file lives in the infrastructure repository (usually at its root)::

    repo: .                         # the repository root, relative to this file
    schedule: "0 7 * * *"           # default for every state (or {cron, timezone})
    timezone: Europe/Paris          # default time zone of string schedules (UTC)
    channel: "#infra-drift"         # default Slack channel
    mode: full                      # full | refresh_only
    concurrency: 4                  # states planned at once
    timeout_seconds: 900            # per state, init + plan + show
    terraform: tofu                 # executable (default: terraform, tofu, or the shim)
    discover: false                 # also scan every root module found in the repo
    states:
      - name: network-prod
        path: stacks/network        # relative to the repository root
        workspace: prod
        backend_config: backends/prod.hcl   # relative to the repository root
        channel: "#net"
        schedule: {cron: "0 6 * * 1-5", timezone: Europe/Paris}
        mode: refresh_only
        assume_role:                # plan with this role's credentials (another account)
          role_arn: arn:aws:iam::210987654321:role/toilkit-drift
          external_id: drift-7f3a   # if the role's trust policy asks for one
          session_name: toilkit-drift
      - name: sandbox
        path: stacks/sandbox
        schedule: false             # never on a schedule, only on demand
    ignore:
      - address: "aws_autoscaling_group.*"
        attribute: desired_capacity
        reason: the autoscaler owns it
        expires: 2026-01-31
    attribution:
      enabled: true
      lookback_hours: 72
      slack_users:
        "arn:aws:iam::123456789012:user/alice": U012ALICE
        "*assumed-role/Admin/bob@example.com": U034BOB

:func:`load_config` reads the file; :func:`config_for_repo` builds the same model from a
repository with no file (every discovered root module, the defaults for the rest). Every
problem becomes a :class:`~shared.errors.ConfigError` naming the file and the entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from croniter import croniter
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from services.detector.credentials import AssumeRole
from services.detector.discovery import Discovery, StateFinder, discover_states
from services.detector.ignore import IgnoreRule, glob_match
from shared.errors import ConfigError
from shared.events import ScanMode, StateRef
from shared.state_names import STATE_NAME_RULE, is_state_name

CONFIG_FILE_NAME = "toilkit.yaml"
DEFAULT_CRON = "0 7 * * *"
DEFAULT_TIMEZONE = "UTC"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Schedule(_Model):
    """When a state is scanned: a cron expression read in a time zone.

    Attributes:
        cron: Five-field cron (``minute hour day-of-month month day-of-week``).
        timezone: An IANA zone name; ``0 7 * * *`` in ``Europe/Paris`` follows daylight
            saving time, as people expect a morning report to.
    """

    cron: str = DEFAULT_CRON
    timezone: str = DEFAULT_TIMEZONE

    @field_validator("cron")
    @classmethod
    def _cron_is_valid(cls, value: str) -> str:
        # Five fields only: croniter also reads a sixth (seconds) field, which a daily
        # report never needs and which would make "0 7 * * * *" a silent surprise.
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a five-field cron expression")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value

    @property
    def zone(self) -> tzinfo:
        return ZoneInfo(self.timezone)


class StateConfig(_Model):
    """One Terraform state to scan, fully resolved (no inherited defaults left).

    Attributes:
        name: Unique name; used in events, DynamoDB keys and ``--state``.
        path: The root module, relative to the repository root (POSIX notation).
        directory: The root module's absolute directory.
        workspace: The Terraform workspace to plan.
        backend_config: Absolute path of a ``-backend-config`` file, if any.
        channel: The Slack channel for this state's findings (``None``: the notifier's default).
        schedule: When it is scanned automatically; ``None`` means only on demand.
        mode: ``full`` (code vs reality) or ``refresh_only`` (only outside changes).
        assume_role: The role whose credentials its plans run with, if any.
        config_error: Why this state's entry is unusable (a malformed ``assume_role``):
            the state then fails alone with this reason instead of being planned.
    """

    name: str
    path: str
    directory: Path
    workspace: str = "default"
    backend_config: Path | None = None
    channel: str | None = None
    schedule: Schedule | None = Schedule()
    mode: ScanMode = "full"
    assume_role: AssumeRole | None = None
    config_error: str | None = None

    @property
    def ref(self) -> StateRef:
        """How events name this state."""
        return StateRef(
            name=self.name, path=self.path, workspace=self.workspace, channel=self.channel
        )


class AttributionConfig(_Model):
    """Who probably changed a drifted resource, from CloudTrail ``LookupEvents``.

    Attributes:
        enabled: Look up CloudTrail at all. Off by default: it needs
            ``cloudtrail:LookupEvents`` and a trail of the account that owns the resources.
        lookback_hours: How far back before the scan to look (CloudTrail's event
            history keeps 90 days).
        identifier_attributes: Resource attributes whose values are looked up as
            CloudTrail resource names, in this order.
        max_suspects: The most suspects attached to one finding (latest first).
        requests_per_second: Pace of ``LookupEvents`` calls; AWS allows 2 per second
            per account and region, and throttles beyond.
        slack_users: IAM principal glob -> Slack user id. Matched against the
            principal's ARN, its user name and, for an assumed role, the session name.
    """

    enabled: bool = False
    lookback_hours: float = Field(default=72, gt=0, le=90 * 24)
    identifier_attributes: tuple[str, ...] = ("arn", "id", "name")
    max_suspects: int = Field(default=3, ge=1, le=20)
    requests_per_second: float = Field(default=2, gt=0, le=50)
    slack_users: dict[str, str] = Field(default_factory=dict)

    def slack_user_for(self, *principal_names: str | None) -> str | None:
        """The Slack user of the first mapping that matches any of the principal's names."""
        names = [n for n in principal_names if n]
        for pattern, slack_user in self.slack_users.items():
            if any(glob_match(pattern, name) for name in names):
                return slack_user
        return None


class AcceptConfig(_Model):
    """Where "Accept into code" pushes its branch (the diff is posted in Slack either way).

    Attributes:
        remote: The remote of the repository checkout (a name such as ``origin``, or a
            URL); ``None`` posts the diff only.
        base: The branch the change is meant for; compare links point at it.
        compare_url: A compare link with ``{base}`` and ``{branch}``, for hosts other
            than GitHub and GitLab (whose links toilkit builds itself).
        author: The commit's author, ``Name <email>``; the person who pressed the
            button is named in the commit message.
    """

    remote: str | None = "origin"
    base: str = "main"
    compare_url: str | None = None
    author: str = Field(
        default="toilkit <toilkit@users.noreply.invalid>", pattern=r"^[^<>]+ <[^<>]+>$"
    )


def _schedule_value(value: Any) -> Any:
    """``"0 7 * * *"`` is short for ``{cron: "0 7 * * *"}``; ``false`` means no schedule."""
    if isinstance(value, str):
        return {"cron": value}
    return value


ScheduleSetting = Annotated[Schedule | Literal[False] | None, BeforeValidator(_schedule_value)]


class _StateEntry(_Model):
    """A ``states:`` entry as written; unset fields inherit the file's defaults."""

    name: str | None = None
    path: str = Field(min_length=1)
    workspace: str = Field(default="default", min_length=1)
    backend_config: str | None = None
    channel: str | None = None
    schedule: ScheduleSetting = None
    mode: ScanMode | None = None
    # Checked per state when resolved: a malformed role fails its state, not the file.
    assume_role: dict[str, Any] | None = None

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError(f"{value!r} must be relative to the repository root, inside it")
        return path.as_posix()


class _ConfigFile(_Model):
    repo: str = "."
    schedule: ScheduleSetting = None
    timezone: str | None = None
    channel: str | None = None
    mode: ScanMode = "full"
    concurrency: int = Field(default=4, ge=1, le=64)
    timeout_seconds: float = Field(default=900, gt=0, le=24 * 3600)
    terraform: str | None = None
    discover: bool = False
    states: list[_StateEntry] = Field(default_factory=list)
    ignore: list[IgnoreRule] = Field(default_factory=list)
    attribution: AttributionConfig = AttributionConfig()
    accept: AcceptConfig = AcceptConfig()
    max_findings_per_event: int = Field(default=50, ge=1, le=500)

    @model_validator(mode="after")
    def _zone_is_valid(self) -> _ConfigFile:
        if self.timezone is not None:
            Schedule(timezone=self.timezone)
        return self


class DetectorConfig(_Model):
    """Everything the detector needs to know about one infrastructure repository.

    Attributes:
        repo: The repository root (absolute).
        source: The file it came from, or ``None`` when built from discovery alone.
        states: Every state, in scan order; names are unique.
        concurrency: How many states are planned at once.
        timeout_seconds: The time budget of one state (init, plan and show together).
        terraform: The Terraform executable, ``None`` for the default search.
        ignore: Ignore rules for findings.
        attribution: CloudTrail attribution settings.
        accept: Where "Accept into code" pushes.
        max_findings_per_event: Findings carried by one ``DriftDetected`` (the total is
            always given); a Slack message cannot show hundreds anyway.
        discovery: What discovery found and skipped, when it ran.
    """

    repo: Path
    source: Path | None = None
    states: tuple[StateConfig, ...] = ()
    concurrency: int = Field(default=4, ge=1, le=64)
    timeout_seconds: float = Field(default=900, gt=0)
    terraform: str | None = None
    ignore: tuple[IgnoreRule, ...] = ()
    attribution: AttributionConfig = AttributionConfig()
    accept: AcceptConfig = AcceptConfig()
    max_findings_per_event: int = Field(default=50, ge=1)
    discovery: Discovery | None = None

    @model_validator(mode="after")
    def _names_are_unique(self) -> DetectorConfig:
        seen: set[str] = set()
        for state in self.states:
            if state.name in seen:
                raise ValueError(f"two states are named {state.name!r}; names must be unique")
            seen.add(state.name)
        return self

    def state(self, name: str) -> StateConfig | None:
        return next((s for s in self.states if s.name == name), None)

    def select(self, names: tuple[str, ...] | list[str]) -> tuple[list[StateConfig], list[str]]:
        """The states named (all when ``names`` is empty) and the names that are unknown."""
        if not names:
            return list(self.states), []
        chosen = [s for s in self.states if s.name in names]
        unknown = [n for n in dict.fromkeys(names) if self.state(n) is None]
        return chosen, unknown


def load_config(file: Path, *, finders: tuple[StateFinder, ...] | None = None) -> DetectorConfig:
    """Read ``toilkit.yaml``.

    Args:
        file: The configuration file.
        finders: How root modules are discovered when the file says ``discover: true``.

    Raises:
        ConfigError: The file is missing, not YAML, or has entries that cannot work;
            the message names the file and each entry.
    """
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {file}: {exc.strerror or exc}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        raise ConfigError(f"{file} is not valid YAML{where}: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: expected a mapping at the top, found {type(raw).__name__}")
    return _validated(
        raw,
        file,
        f"in {file}",
        base=file.resolve().parent,
        source=file.resolve(),
        finders=finders,
    )


def config_for_repo(
    repo: Path,
    *,
    finders: tuple[StateFinder, ...] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> DetectorConfig:
    """A configuration for a repository without ``toilkit.yaml``: every root module in it.

    Args:
        repo: The repository root.
        finders: How root modules are discovered.
        settings: Top-level ``toilkit.yaml`` settings to apply (``concurrency=8``...).

    Raises:
        ConfigError: ``repo`` is not a directory, or a setting is invalid.
    """
    if not repo.is_dir():
        raise ConfigError(f"{repo} is not a directory")
    return _validated(
        {"discover": True, **(settings or {})},
        repo,
        f"for {repo}",
        base=repo.resolve(),
        source=None,
        finders=finders,
    )


def _validated(
    raw: Mapping[str, Any],
    where: Path,
    named: str,
    *,
    base: Path,
    source: Path | None,
    finders: tuple[StateFinder, ...] | None,
) -> DetectorConfig:
    """The configuration ``raw`` describes, its paths relative to ``base``.

    Raises:
        ConfigError: an entry is invalid; the message names ``where`` (the file, or the
            repository without one) and each entry, or says the configuration ``named``
            (``in <file>``, ``for <repository>``) cannot work.
    """
    try:
        parsed = _ConfigFile.model_validate(raw)
        return _resolve(parsed, base=base, source=source, finders=finders)
    except ValidationError as exc:
        raise ConfigError(_describe(where, exc)) from exc
    except ValueError as exc:
        raise ConfigError(f"invalid detector configuration {named}: {exc}") from exc


def _resolve(
    parsed: _ConfigFile,
    *,
    base: Path,
    source: Path | None,
    finders: tuple[StateFinder, ...] | None,
) -> DetectorConfig:
    repo = (base / parsed.repo).resolve() if source is not None else base
    default_zone = parsed.timezone or DEFAULT_TIMEZONE

    def schedule_of(setting: Schedule | Literal[False] | None) -> Schedule | None:
        if setting is False:
            return None
        if setting is None:
            inherited = parsed.schedule
            if inherited is False:
                return None
            setting = inherited or Schedule(cron=DEFAULT_CRON)
        if "timezone" not in setting.model_fields_set:
            return setting.model_copy(update={"timezone": default_zone})
        return setting

    states: list[StateConfig] = []
    for index, entry in enumerate(parsed.states):
        name = entry.name or _name_for(entry.path, repo)
        role, role_error = _assume_role(entry.assume_role, where=f"states[{index}].assume_role")
        states.append(
            StateConfig(
                name=_checked_name(name),
                path=entry.path,
                directory=(repo / entry.path).resolve(),
                workspace=entry.workspace,
                backend_config=(repo / entry.backend_config).resolve()
                if entry.backend_config
                else None,
                channel=entry.channel or parsed.channel,
                schedule=schedule_of(entry.schedule),
                mode=entry.mode or parsed.mode,
                assume_role=role,
                config_error=role_error,
            )
        )
    discovery = None
    if parsed.discover:
        discovery = discover_states(repo, finders)
        configured = {(s.directory, s.workspace) for s in states}
        taken = {s.name for s in states}
        for found in discovery.states:
            if (found.directory, "default") in configured:
                continue  # an explicit entry says how to scan it
            name = _name_for(found.path, repo)
            if name in taken:
                name = f"{name}@{len(taken)}"
            taken.add(name)
            states.append(
                StateConfig(
                    name=_checked_name(name),
                    path=found.path,
                    directory=found.directory,
                    channel=parsed.channel,
                    schedule=schedule_of(None),
                    mode=parsed.mode,
                )
            )
    return DetectorConfig(
        repo=repo,
        source=source,
        states=tuple(states),
        concurrency=parsed.concurrency,
        timeout_seconds=parsed.timeout_seconds,
        terraform=parsed.terraform,
        ignore=tuple(parsed.ignore),
        attribution=parsed.attribution,
        accept=parsed.accept,
        max_findings_per_event=parsed.max_findings_per_event,
        discovery=discovery,
    )


def _assume_role(raw: dict[str, Any] | None, *, where: str) -> tuple[AssumeRole | None, str | None]:
    """The state's role, or why its entry is malformed (named without secret values)."""
    if raw is None:
        return None, None
    try:
        return AssumeRole.model_validate(raw), None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'assume_role'}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)
        )
        return None, f"{CONFIG_FILE_NAME} {where} is invalid: {problems}"


def _name_for(path: str, repo: Path) -> str:
    """A discovered state is named after its path; the root module after the repository."""
    return repo.name if path in ("", ".") else path


def _checked_name(name: str) -> str:
    if not is_state_name(name):
        raise ValueError(f"state name {name!r} must {STATE_NAME_RULE}")
    return name


def _describe(where: Path, exc: ValidationError) -> str:
    lines = [f"invalid detector configuration in {where}:"]
    for err in exc.errors(include_url=False):
        location = ".".join(str(step) for step in err["loc"]) or "(top)"
        lines.append(f"  {location}: {err['msg']}")
    return "\n".join(lines)
