"""The batch command catalog: the reviewed list of commands that may run in production.

A YAML file (or the same data as JSON, as a Lambda package holds it), validated here, shared by the gateway (which builds the Slack modal from it
and checks input early) and the batch service (which checks everything again and never
trusts the gateway). Per command: an argv template (a list, never a shell string) whose
``{param}`` placeholders fill *whole* argv items or environment variable values, typed
parameters, and per environment who may run it, who must approve it, and where it runs.

Everything a request carries is checked by :func:`validate_request`; a parameter value
that passes reaches the process as exactly the string the requester typed, as one argv
item or one environment variable (:func:`build_argv`, :func:`build_env`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from shared.catalog_drift import REVERT_PARAMETERS, DriftActionsPolicy
from shared.catalog_principals import NAME_PATTERN, SLACK_GROUP_ID, SLACK_USER_ID, Principals
from shared.errors import ConfigError
from shared.events import SENSITIVE, RunParameter
from shared.options import OptionsSource
from shared.options import value_problem as listed_value_problem
from shared.preview import PreviewSpec, fingerprint_of

if TYPE_CHECKING:
    from shared.state_table.runs import RunRecord

#: A placeholder fills a whole argv item or a whole environment value: ``{since}``.
#: The demo catalog shipped with the project: its commands run on any machine with Python.
#: Found from the source tree, so `toilkit up` works from any folder.
DEMO_CATALOG = Path(__file__).resolve().parents[1] / "catalog" / "demo.yaml"

PLACEHOLDER = re.compile(r"^\{([a-z][a-z0-9_]{0,39})\}$")
#: Anything that looks like a placeholder inside a longer string (a template error).
_EMBEDDED_PLACEHOLDER = re.compile(r"\{[a-z][a-z0-9_]{0,39}\}")
_NAME = NAME_PATTERN
_PARAMETER_NAME = r"^[a-z][a-z0-9_]{0,39}$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"

#: Environment variables a catalog may not set: they would change how the program is
#: found or loaded rather than what it does.
RESERVED_ENV = frozenset({"PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHOME"})


class _Model(BaseModel):
    # defer_build (also in the catalog's other modules): validators are built on first
    # use, not at import; loading a catalog builds Catalog's, which holds the rest.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


# --------------------------------------------------------------------------- parameters

RawValue: TypeAlias = str | int | bool | None


class InvalidValue(Exception):
    """A parameter value that does not fit its parameter; the message says why."""


class _ParameterBase(_Model):
    name: str = Field(pattern=_PARAMETER_NAME)
    label: str = Field(default="", description="What the Slack modal shows (default: name).")
    description: str = ""
    required: bool = True
    sensitive: bool = Field(
        default=False,
        description="Never shown in Slack, events or `toilkit runs show` (only the process sees it).",
    )

    @property
    def title(self) -> str:
        return self.label or self.name


class TextParameter(_ParameterBase):
    """Free text, kept exactly as typed (no trimming); ``pattern`` must match all of it."""

    type: Literal["text"] = "text"
    pattern: str | None = None
    min_length: int = Field(default=0, ge=0)
    max_length: int = Field(default=256, ge=1, le=4096)
    allow_leading_dash: bool = Field(
        default=False,
        description="Accept values starting with '-' (refused by default: most programs "
        "would read such an argv item as an option, which is argument injection).",
    )
    default: str | None = None

    @model_validator(mode="after")
    def _pattern_compiles(self) -> TextParameter:
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(
                    f"pattern {self.pattern!r} is not a regular expression: {exc}"
                ) from exc
        return self

    def check(self, raw: RawValue) -> str:
        if not isinstance(raw, str):
            raise InvalidValue(f"expected text, got {_kind(raw)}")
        if "\x00" in raw:
            raise InvalidValue("contains a NUL character, which no process argument can carry")
        if len(raw) < self.min_length:
            raise InvalidValue(f"is shorter than {self.min_length} characters")
        if len(raw) > self.max_length:
            raise InvalidValue(f"is longer than {self.max_length} characters ({len(raw)})")
        if raw.startswith("-") and not self.allow_leading_dash:
            raise InvalidValue(
                "starts with '-', which the program would read as an option, not a value"
            )
        if self.pattern is not None and re.fullmatch(self.pattern, raw) is None:
            raise InvalidValue(f"does not match the pattern {self.pattern}")
        return raw


class IntegerParameter(_ParameterBase):
    type: Literal["integer"] = "integer"
    minimum: int | None = None
    maximum: int | None = None
    default: int | None = None

    def check(self, raw: RawValue) -> str:
        if isinstance(raw, bool):
            raise InvalidValue("expected an integer, got a boolean")
        if isinstance(raw, str):
            if re.fullmatch(r"-?[0-9]{1,18}", raw) is None:
                raise InvalidValue(f"expected an integer, got {raw!r}")
            value = int(raw)
        elif isinstance(raw, int):
            value = raw
        else:
            raise InvalidValue(f"expected an integer, got {_kind(raw)}")
        if self.minimum is not None and value < self.minimum:
            raise InvalidValue(f"must be at least {self.minimum} (got {value})")
        if self.maximum is not None and value > self.maximum:
            raise InvalidValue(f"must be at most {self.maximum} (got {value})")
        return str(value)


class BooleanParameter(_ParameterBase):
    """Reaches the process as ``true`` or ``false``."""

    type: Literal["boolean"] = "boolean"
    default: bool | None = None

    def check(self, raw: RawValue) -> str:
        if isinstance(raw, bool):
            return "true" if raw else "false"
        if isinstance(raw, str) and raw in ("true", "false"):
            return raw
        raise InvalidValue(f"expected true or false, got {raw!r}")


class ChoiceParameter(_ParameterBase):
    """One of ``choices``, or of a list from elsewhere (``options_from``, see
    :mod:`shared.options`): the value must then be in that list, which the gateway checks
    against the list it showed; here only its form is checked."""

    type: Literal["choice"] = "choice"
    choices: tuple[str, ...] = ()
    options_from: OptionsSource | None = None
    default: str | None = None

    @model_validator(mode="after")
    def _one_kind_of_choices(self) -> ChoiceParameter:
        if bool(self.choices) == (self.options_from is not None):
            raise ValueError("give either choices (a list) or options_from (a source), not both")
        return self

    def check(self, raw: RawValue) -> str:
        if self.options_from is not None:
            if not isinstance(raw, str):
                raise InvalidValue(f"expected a choice, got {_kind(raw)}")
            problem = listed_value_problem(raw)
            if problem:
                raise InvalidValue(problem)
            return raw
        if isinstance(raw, str) and raw in self.choices:
            return raw
        raise InvalidValue(f"must be one of {', '.join(self.choices)} (got {raw!r})")


class SlackUserParameter(_ParameterBase):
    """A Slack user id (the modal's user picker)."""

    type: Literal["slack_user"] = "slack_user"
    default: str | None = None

    def check(self, raw: RawValue) -> str:
        if isinstance(raw, str) and SLACK_USER_ID.fullmatch(raw):
            return raw
        raise InvalidValue(f"expected a Slack user id like U0123ABCD, got {raw!r}")


ParameterSpec: TypeAlias = Annotated[
    TextParameter | IntegerParameter | BooleanParameter | ChoiceParameter | SlackUserParameter,
    Field(discriminator="type"),
]


def _kind(raw: RawValue) -> str:
    return "nothing" if raw is None else type(raw).__name__


# --------------------------------------------------------------------------- who and where


def _require_someone(principals: Principals, field: str) -> None:
    """Refuse a policy whose ``field`` names nobody: an empty list would allow no one.

    Raises:
        ValueError: ``principals`` is empty (the message starts with ``field``).
    """
    if principals.empty:
        raise ValueError(f"{field}: name at least one user or user group")


def _refuse_repeats(names: list[str], field: str) -> None:
    """Refuse a list of ``field`` that declares a name more than once.

    Raises:
        ValueError: ``field`` and the repeated names, sorted (``commands declared twice: a, b``).
    """
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{field} declared twice: {', '.join(repeated)}")


class ApprovalPolicy(_Model):
    """Who must approve a run before it starts, and for how long a request waits."""

    approvers: Principals
    min_approvals: int = Field(
        default=1, ge=1, le=5, description="Distinct approvers, never counting the requester."
    )
    expires_after_seconds: int = Field(default=3600, ge=1, le=7 * 24 * 3600)

    @model_validator(mode="after")
    def _someone_can_approve(self) -> ApprovalPolicy:
        _require_someone(self.approvers, "approvers")
        return self


class LocalRunnerSettings(_Model):
    """Run the argv as a subprocess of the batch service (the embedded default)."""

    kind: Literal["local"] = "local"
    workdir: str = Field(
        default=".", description="Working directory, relative to the catalog file's folder."
    )
    env: dict[str, str] = Field(default_factory=dict)


class CodeBuildRunnerSettings(_Model):
    """Start a CodeBuild build directly (no Step Functions)."""

    kind: Literal["codebuild"] = "codebuild"
    project: str = Field(min_length=2, max_length=255)
    image: str = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)


class StepFunctionsRunnerSettings(_Model):
    """Start the ``infra/stepfunctions/batch_run.asl.json`` state machine, which runs the
    command as a CodeBuild build and enforces the timeout."""

    kind: Literal["stepfunctions"] = "stepfunctions"
    state_machine_arn: str = Field(
        pattern=r"^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:"
    )
    project: str = Field(min_length=2, max_length=255)
    image: str = Field(min_length=1)
    poll_seconds: int = Field(
        default=15,
        ge=0,
        le=3600,
        description="The state machine's first waits between polls of the build; later "
        "waits grow with the run's age, to 2 min (0: no waiting, for emulators).",
    )
    env: dict[str, str] = Field(default_factory=dict)


RunnerSettings: TypeAlias = Annotated[
    LocalRunnerSettings | CodeBuildRunnerSettings | StepFunctionsRunnerSettings,
    Field(discriminator="kind"),
]


#: The shortest reason a break-glass run may give (it is what everyone reads).
MIN_BREAK_GLASS_REASON = 20


class BreakGlassPolicy(_Model):
    """Who may start a run here without waiting for an approval (an incident), and how often.

    The run still needs the requester to be allowed to run the command; the approvers are
    told at once, with the reason, and the audit trail marks the run as break-glass.
    """

    allowed: Principals = Field(description="Who may break glass (users, user groups).")
    max_per_person_per_day: int = Field(
        default=2, ge=1, le=100, description="Break-glass runs per person per UTC day."
    )
    notify_channel: str | None = Field(
        default=None,
        min_length=1,
        max_length=80,
        description="Where the approvers are told (default: the channel of the run's messages).",
    )

    @model_validator(mode="after")
    def _someone_may_break_glass(self) -> BreakGlassPolicy:
        _require_someone(self.allowed, "allowed")
        return self


class Schedule(_Model):
    """Run the command here on a cron schedule, requested by "schedule" (same pipeline:
    validation, approval if the environment needs one, locks, Slack, audit)."""

    cron: str = Field(min_length=1, description="Five-field cron, e.g. '30 2 * * *'.")
    timezone: str = Field(default="UTC", description="IANA zone the cron reads in.")
    parameters: dict[str, RawValue] = Field(
        default_factory=dict, description="The run's parameter values (checked on load)."
    )
    reason: str = Field(default="scheduled run", min_length=1, max_length=500)

    def problem(self) -> str | None:
        """What is wrong with the cron or the time zone (None: both are fine)."""
        # Only a catalog with schedules pays for the import (the gateway's cold start).
        from croniter import croniter  # noqa: PLC0415

        if not croniter.is_valid(self.cron) or len(self.cron.split()) != 5:
            return f"{self.cron!r} is not a valid five-field cron expression"
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return f"{self.timezone!r} is not a known time zone (e.g. Europe/Paris, UTC)"
        return None


class EnvironmentPolicy(_Model):
    """One environment of one command: who may run it, who approves, where it runs."""

    allowed: Principals
    approval: ApprovalPolicy | None = None
    break_glass: BreakGlassPolicy | None = None
    schedule: Schedule | None = None
    runner: RunnerSettings = Field(default_factory=LocalRunnerSettings)

    @model_validator(mode="after")
    def _someone_may_run_it(self) -> EnvironmentPolicy:
        _require_someone(self.allowed, "allowed")
        if self.break_glass is not None and self.approval is None:
            raise ValueError(
                "break_glass: only an environment with an approval can allow it (without "
                "one, every run starts at once already)"
            )
        return self


# --------------------------------------------------------------------------- commands


class CommandSpec(_Model):
    name: str = Field(pattern=_NAME)
    description: str = Field(min_length=1)
    argv: tuple[str, ...] = Field(min_length=1)
    env: dict[str, str] = Field(
        default_factory=dict, description="Variables for the process; values may be {param}."
    )
    parameters: tuple[ParameterSpec, ...] = ()
    environments: dict[str, EnvironmentPolicy] = Field(min_length=1)
    timeout_seconds: int = Field(default=600, ge=1, le=24 * 3600)
    concurrency: int | None = Field(
        default=1, ge=1, le=100, description="Runs at once per environment; null: no limit."
    )
    preview: PreviewSpec | None = Field(
        default=None,
        description="A dry run shown to the approvers first (only where a run needs approval).",
    )

    @model_validator(mode="after")
    def _template_is_well_formed(self) -> CommandSpec:
        names = [p.name for p in self.parameters]
        _refuse_repeats(names, "parameters")
        declared = set(names)
        if PLACEHOLDER.fullmatch(self.argv[0]):
            raise ValueError("argv[0] (the program) must be fixed, not a parameter")
        used: set[str] = set()
        for index, item in enumerate(self.argv):
            used |= _placeholders_in(item, f"argv[{index}]", declared)
        for env_name, value in self.env.items():
            if not re.fullmatch(_ENV_NAME, env_name):
                raise ValueError(f"env: {env_name!r} is not a valid variable name")
            if env_name in RESERVED_ENV:
                raise ValueError(f"env: {env_name} may not be set by the catalog")
            used |= _placeholders_in(value, f"env.{env_name}", declared)
        unused = sorted(declared - used)
        if unused:
            raise ValueError(f"parameters never used in argv or env: {', '.join(unused)}")
        if self.preview is not None:
            self._check_preview(self.preview, declared)
        return self

    def _check_preview(self, preview: PreviewSpec, declared: set[str]) -> None:
        if preview.argv is not None and PLACEHOLDER.fullmatch(preview.argv[0]):
            raise ValueError("preview.argv[0] (the program) must be fixed, not a parameter")
        items = preview.argv if preview.argv is not None else preview.append
        where = "preview.argv" if preview.argv is not None else "preview.append"
        for index, item in enumerate(items):
            _placeholders_in(item, f"{where}[{index}]", declared)

    def parameter(self, name: str) -> ParameterSpec | None:
        return next((p for p in self.parameters if p.name == name), None)

    @property
    def sensitive_parameters(self) -> frozenset[str]:
        return frozenset(p.name for p in self.parameters if p.sensitive)


def _placeholders_in(item: str, where: str, declared: set[str]) -> set[str]:
    whole = PLACEHOLDER.fullmatch(item)
    if whole:
        if whole.group(1) not in declared:
            raise ValueError(f"{where}: {item} names no declared parameter")
        return {whole.group(1)}
    embedded = _EMBEDDED_PLACEHOLDER.search(item)
    if embedded:
        raise ValueError(
            f"{where}: {item!r} embeds {embedded.group(0)} in a longer string; a parameter "
            "fills a whole argv item or a whole env value (split the item, e.g. "
            "['--since', '{since}'])"
        )
    return set()


class Catalog(_Model):
    commands: tuple[CommandSpec, ...] = Field(min_length=1)
    drift: DriftActionsPolicy = Field(default_factory=DriftActionsPolicy)
    usergroups: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Group id -> member user ids, for groups resolved without Slack.",
    )
    source_dir: Path | None = Field(
        default=None, exclude=True, description="The catalog file's folder (set by the loader)."
    )

    @model_validator(mode="after")
    def _names_are_unique(self, info: ValidationInfo) -> Catalog:
        _refuse_repeats([c.name for c in self.commands], "commands")
        for group, members in self.usergroups.items():
            if not SLACK_GROUP_ID.fullmatch(group):
                raise ValueError(f"usergroups: {group!r} is not a Slack user group id (S...)")
            bad = [m for m in members if not SLACK_USER_ID.fullmatch(m)]
            if bad:
                raise ValueError(f"usergroups.{group}: not Slack user ids: {', '.join(bad)}")
        self._check_revert()
        if info.context is not None and not info.context.get("check_schedules", True):
            return self
        for command, environment, schedule in self.schedules():
            where = f"command {command.name}, environment {environment}: schedule"
            problem = schedule.problem()
            if problem:
                raise ValueError(f"{where}: {problem}")
            checked = validate_request(self, command.name, environment, schedule.parameters)
            if isinstance(checked, list):
                raise ValueError(  # noqa: TRY004 - pydantic reports ValueErrors
                    f"{where} parameters: {'; '.join(str(e) for e in checked)}"
                )
        return self

    def _check_revert(self) -> None:
        revert = self.drift.revert
        if revert is None:
            return
        spec = self.command(revert.command)
        if spec is None:
            raise ValueError(f"drift.revert.command: no command {revert.command!r}")
        missing = [p for p in REVERT_PARAMETERS if p not in {q.name for q in spec.parameters}]
        if missing:
            raise ValueError(
                f"drift.revert.command {spec.name} must declare the parameters "
                f"{', '.join(REVERT_PARAMETERS)} (missing: {', '.join(missing)})"
            )
        unknown = sorted({e for e in revert.environments.values() if e not in spec.environments})
        if unknown:
            raise ValueError(
                f"drift.revert.environments: {spec.name} has no environment {', '.join(unknown)}"
            )

    def schedules(self) -> list[tuple[CommandSpec, str, Schedule]]:
        """Every schedule: (command, environment, schedule)."""
        return [
            (command, environment, policy.schedule)
            for command in self.commands
            for environment, policy in command.environments.items()
            if policy.schedule is not None
        ]

    def schedule(self, command: str, environment: str) -> Schedule | None:
        spec = self.command(command)
        policy = spec.environments.get(environment) if spec else None
        return policy.schedule if policy else None

    def command(self, name: str) -> CommandSpec | None:
        return next((c for c in self.commands if c.name == name), None)

    def base_dir(self) -> Path:
        return self.source_dir or Path.cwd()


def parse_catalog(
    data: Any,
    *,
    source: str = "catalog",
    source_dir: Path | None = None,
    check_schedules: bool = True,
) -> Catalog:
    """Validate catalog data (parsed YAML).

    ``check_schedules=False``: the schedules (cron, zone, parameters) are not checked, for
    the gateway, which runs none (croniter and a ValidatedRequest per schedule: ~10 ms).

    Raises:
        ConfigError: the catalog is invalid; the message lists each problem by its path.
    """
    if isinstance(data, dict):
        # Top-level "x-..." keys hold YAML anchors to reuse (as in docker-compose files).
        data = {k: v for k, v in data.items() if not str(k).startswith("x-")}
    try:
        catalog = Catalog.model_validate(data, context={"check_schedules": check_schedules})
    except ValidationError as exc:
        lines = [f"invalid command catalog {source}:"]
        for err in exc.errors():
            path = ".".join(str(p) for p in err["loc"]) or "(top)"
            lines.append(f"  {path}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from exc
    return catalog.model_copy(update={"source_dir": source_dir})


def load_catalog(path: Path | str, *, check_schedules: bool = True) -> Catalog:
    """Read and validate a catalog YAML file (``check_schedules``: see :func:`parse_catalog`).

    A file that holds a JSON object (which is YAML too) is read as JSON, without PyYAML:
    a Lambda package's catalog is written so (scripts/lambda_package.py), and PyYAML's import
    and parser would be on every cold start's path.

    Raises:
        ConfigError: the file is missing, is not YAML, or is not a valid catalog.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the command catalog {file}: {exc}") from exc
    data = _json_object(text)
    if data is None:
        data = _yaml_data(text, file)
    return parse_catalog(
        data, source=str(file), source_dir=file.resolve().parent, check_schedules=check_schedules
    )


def _json_object(text: str) -> dict[str, Any] | None:
    """``text`` as a JSON object, or None when it is not one (then it is read as YAML)."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _yaml_data(text: str, file: Path) -> Any:
    try:
        import yaml  # noqa: PLC0415 - not in the gateway's Lambda package (JSON there)
    except ImportError as exc:
        raise ConfigError(
            f"the command catalog {file} is not JSON and PyYAML is not installed: build the "
            "package with scripts/build-lambda.sh, which writes the catalog as JSON"
        ) from exc
    try:
        # libyaml's loader when the wheel has it: 5x faster.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"the command catalog {file} is not valid YAML: {exc}") from exc


# --------------------------------------------------------------------------- requests


class FieldError(_Model):
    """One problem with a request, by the field it concerns (``command``, ``environment``
    or a parameter name), in words a requester can act on."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ValidatedRequest(_Model):
    """A request that names a known command and environment with valid parameters."""

    command: CommandSpec
    environment: str
    values: dict[str, str] = Field(description="Parameter name -> the exact string to pass.")

    @property
    def policy(self) -> EnvironmentPolicy:
        return self.command.environments[self.environment]

    def argv(self) -> list[str]:
        return build_argv(self.command, self.values)

    def preview_argv(self) -> list[str] | None:
        """The preview's argv with the same values (None: the command has no preview)."""
        preview = self.command.preview
        if preview is None:
            return None
        return fill_argv(preview.template(self.command.argv), self.values)

    def fingerprint(self) -> str:
        """The digest of what a preview of this request shows (:func:`fingerprint_of`)."""
        return fingerprint_of(
            command=self.command.model_dump(mode="json"),
            environment=self.environment,
            policy=self.policy.model_dump(mode="json"),
            values=self.values,
            sensitive=self.command.sensitive_parameters,
        )

    def env(self) -> dict[str, str]:
        return build_env(self.command, self.values)

    def run_parameters(self, *, reveal_sensitive: bool = False) -> tuple[RunParameter, ...]:
        """The parameters as events carry them (sensitive values hidden unless asked)."""
        return tuple(
            RunParameter(
                name=spec.name,
                value=self.values[spec.name] if reveal_sensitive or not spec.sensitive else None,
                sensitive=spec.sensitive,
            )
            for spec in self.command.parameters
            if spec.name in self.values
        )


def validate_request(
    catalog: Catalog,
    command: str,
    environment: str,
    raw_params: Mapping[str, RawValue] | Iterable[tuple[str, RawValue]],
) -> ValidatedRequest | list[FieldError]:
    """Check a request against the catalog: command, environment and every parameter.

    Values are never altered (no trimming, no quoting): what passes is what the process
    gets. Every problem is reported, not just the first.

    Args:
        catalog: the catalog.
        command: the command name.
        environment: the environment name.
        raw_params: parameter name -> value (strings from Slack or the CLI, or typed
            values); pairs are accepted too, so a parameter given twice is caught.
    """
    spec = catalog.command(command)
    if spec is None:
        known = ", ".join(c.name for c in catalog.commands)
        return [
            FieldError(field="command", message=f"unknown command {command!r} (known: {known})")
        ]
    errors: list[FieldError] = []
    if environment not in spec.environments:
        known = ", ".join(spec.environments)
        errors.append(
            FieldError(
                field="environment",
                message=f"{command} cannot run in {environment!r} (it runs in: {known})",
            )
        )
    pairs = list(raw_params.items() if isinstance(raw_params, Mapping) else raw_params)
    given: dict[str, RawValue] = {}
    for name, value in pairs:
        if name in given:
            errors.append(FieldError(field=name, message="given more than once"))
        given[name] = value
    for name in given:
        if spec.parameter(name) is None:
            errors.append(FieldError(field=name, message=f"{command} has no parameter {name!r}"))
    values: dict[str, str] = {}
    for parameter in spec.parameters:
        raw = given.get(parameter.name)
        if raw is None or raw == "":
            if parameter.default is not None:
                raw = parameter.default
            elif parameter.required:
                errors.append(FieldError(field=parameter.name, message="is required"))
                continue
            else:
                continue
        try:
            values[parameter.name] = parameter.check(raw)
        except InvalidValue as exc:
            message = str(exc)
            if parameter.sensitive:
                # The reason goes to Slack and the audit trail; the value must not.
                message = message.replace(repr(raw), SENSITIVE).replace(str(raw), SENSITIVE)
            errors.append(FieldError(field=parameter.name, message=message))
    if errors:
        return errors
    return ValidatedRequest(command=spec, environment=environment, values=values)


def validate_recorded(catalog: Catalog, run: RunRecord) -> ValidatedRequest | list[FieldError]:
    """A recorded run's request checked again against the catalog as it is now (a rerun,
    or a run whose approval came after the catalog changed): :func:`validate_request` over
    the record's command, environment and parameters, in the order they were given.

    A sensitive value the record no longer keeps counts as missing.
    """
    pairs = [(p.name, p.value) for p in run.parameters]
    return validate_request(catalog, run.command, run.environment, pairs)


def build_argv(command: CommandSpec, values: Mapping[str, str]) -> list[str]:
    """The argv of a run: each ``{param}`` item replaced by that parameter's value.

    An optional parameter left empty drops its item, and the item just before it when
    that is an option name (``--limit``), so no option is left without its value.
    """
    return fill_argv(command.argv, values)


def fill_argv(template: Iterable[str], values: Mapping[str, str]) -> list[str]:
    """Fill an argv template (see :func:`build_argv`)."""
    argv: list[str] = []
    last_was_option = False
    for index, item in enumerate(template):
        placeholder = PLACEHOLDER.fullmatch(item)
        if placeholder is None:
            argv.append(item)
            last_was_option = index > 0 and item.startswith("-")
            continue
        if placeholder.group(1) in values:
            argv.append(values[placeholder.group(1)])
        elif last_was_option:
            argv.pop()
        last_was_option = False
    return argv


def build_env(command: CommandSpec, values: Mapping[str, str]) -> dict[str, str]:
    """The command's own environment variables, placeholders filled (unset when empty)."""
    env: dict[str, str] = {}
    for name, template in command.env.items():
        placeholder = PLACEHOLDER.fullmatch(template)
        if placeholder is None:
            env[name] = template
        elif placeholder.group(1) in values:
            env[name] = values[placeholder.group(1)]
    return env


# --------------------------------------------------------------------------- authorization


class GroupDirectory(Protocol):
    """Answers whether a Slack user belongs to a user group."""

    async def is_member(self, user_id: str, group_id: str) -> bool:
        """True when ``user_id`` is a member of ``group_id``."""


class StaticGroupDirectory:
    """Group membership from a fixed map (the catalog's ``usergroups``)."""

    def __init__(self, groups: Mapping[str, Iterable[str]]) -> None:
        self._groups = {group: frozenset(members) for group, members in groups.items()}

    def knows(self, group_id: str) -> bool:
        return group_id in self._groups

    async def is_member(self, user_id: str, group_id: str) -> bool:
        return user_id in self._groups.get(group_id, frozenset())
