"""The command catalog: what a catalog may say, and how requests are checked against it."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from scripts.lambda_package import write_catalog
from shared.authz import approval_refusal, authorization_refusal, break_glass_refusal
from shared.catalog import (
    ApprovalPolicy,
    FieldError,
    StaticGroupDirectory,
    ValidatedRequest,
    build_argv,
    build_env,
    load_catalog,
    parse_catalog,
    validate_recorded,
    validate_request,
)
from shared.catalog_principals import Principals
from shared.errors import ConfigError
from shared.events import Actor, RunParameter
from shared.state_table.runs import RunRecord

DEMO = Path(__file__).resolve().parents[2] / "catalog" / "demo.yaml"
STAGING = {"allowed": {"users": ["U0ALICE001"], "usergroups": ["S0SRE00001"]}}


def command(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "backfill",
        "description": "Backfill rows.",
        "argv": ["bin/backfill", "--since", "{since}", "--limit", "{limit}"],
        "parameters": [
            {"name": "since", "type": "text", "pattern": r"\d{4}-\d{2}-\d{2}"},
            {"name": "limit", "type": "integer", "minimum": 1, "maximum": 100, "required": False},
        ],
        "environments": {"staging": STAGING},
    }
    spec.update(overrides)
    return spec


def with_secret(variable: str, parameter: dict[str, Any]) -> dict[str, Any]:
    """The backfill command (``since``, an optional ``limit``) with one more parameter, a
    sensitive one, handed to the process in the environment variable ``variable``."""
    return command(
        env={variable: "{" + parameter["name"] + "}"},
        parameters=[
            {"name": "since", "type": "text"},
            {"name": "limit", "type": "integer", "required": False},
            {**parameter, "sensitive": True},
        ],
    )


def catalog(*commands: dict[str, Any], **extra: Any) -> Any:
    return parse_catalog({"commands": list(commands or [command()]), **extra})


def problems(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_catalog(data)
    return str(info.value)


# --------------------------------------------------------------------------- the catalog


def test_the_demo_catalog_loads() -> None:
    demo = load_catalog(DEMO)
    assert [c.name for c in demo.commands] == [
        "backfill-orders",
        "check-invoices",
        "reindex-search",
        "echo-args",
        "nightly-invoice-check",
        "run-patch",
        "expire-coupons",
        "drift-revert",
    ]
    assert demo.base_dir() == DEMO.parent
    production = demo.command("backfill-orders").environments["production"]  # type: ignore[union-attr]
    assert production.approval is not None
    assert production.approval.approvers.usergroups == ("S0SRE00001",)
    assert production.break_glass is not None
    [(scheduled, environment, _)] = demo.schedules()
    assert (scheduled.name, environment) == ("nightly-invoice-check", "staging")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"argv": ["bin/backfill", "--since={since}"]}, "embeds {since} in a longer string"),
        ({"argv": ["{since}", "x"]}, "argv[0] (the program) must be fixed"),
        (
            {"argv": ["bin/backfill", "{since}", "{limit}", "{other}"]},
            "{other} names no declared parameter",
        ),
        ({"argv": ["bin/backfill", "{since}"]}, "parameters never used in argv or env: limit"),
        ({"env": {"PATH": "{since}"}}, "env: PATH may not be set by the catalog"),
        ({"env": {"BAD-NAME": "x"}}, "'BAD-NAME' is not a valid variable name"),
        ({"environments": {}}, "environments"),
        ({"environments": {"staging": {"allowed": {}}}}, "allowed: name at least one user"),
        (
            {"environments": {"staging": {"allowed": {"users": ["alice"]}}}},
            "not Slack user ids (U...): alice",
        ),
        (
            {"environments": {"staging": {**STAGING, "approval": {"approvers": {}}}}},
            "approvers: name at least one user or user group",
        ),
        ({"shell": "bash -c"}, "shell: Extra inputs are not permitted"),
        (
            {"parameters": [{"name": "since", "type": "text"}, {"name": "since", "type": "text"}]},
            "parameters declared twice: since",
        ),
        (
            {"parameters": [{"name": "since", "type": "text", "pattern": "("}]},
            "is not a regular expression",
        ),
        (
            {"parameters": [{"name": "since", "type": "date"}]},
            "does not match any of the expected tags",
        ),
    ],
)
def test_a_bad_command_is_rejected_with_its_path(change: dict[str, Any], message: str) -> None:
    assert message in problems({"commands": [command(**change)]})


def test_runner_settings_are_checked_per_kind() -> None:
    step_functions = {
        "kind": "stepfunctions",
        "state_machine_arn": "arn:aws:states:eu-west-1:123456789012:stateMachine:run",
        "project": "toilkit-batch",
        "image": "app:1",
    }
    parsed = catalog(command(environments={"aws": {**STAGING, "runner": step_functions}}))
    assert parsed.commands[0].environments["aws"].runner.kind == "stepfunctions"
    broken = {**step_functions, "state_machine_arn": "not-an-arn"}
    assert "state_machine_arn" in problems(
        {"commands": [command(environments={"aws": {**STAGING, "runner": broken}})]}
    )
    assert "image" in problems(
        {
            "commands": [
                command(
                    environments={
                        "aws": {**STAGING, "runner": {"kind": "codebuild", "project": "p1"}}
                    }
                )
            ]
        }
    )


def test_catalog_level_problems() -> None:
    assert "commands declared twice: backfill" in problems({"commands": [command(), command()]})
    assert "is not a Slack user group id" in problems(
        {"commands": [command()], "usergroups": {"sre": ["U0ALICE001"]}}
    )
    # x- keys hold YAML anchors and are not part of the catalog.
    assert catalog(command(), **{"x-defaults": {"anything": 1}}).commands


def test_loading_names_the_file_and_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the command catalog"):
        load_catalog(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("commands: [\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_catalog(broken)
    empty = tmp_path / "empty.yaml"
    empty.write_text("commands: []\n")
    with pytest.raises(ConfigError, match=rf"invalid command catalog {empty}:\n  commands:"):
        load_catalog(empty)


def test_a_lambda_package_catalog_is_the_same_catalog_as_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the demo catalog written as scripts/lambda_package.py writes a package's
    packaged = tmp_path / "catalog.yaml"
    write_catalog(DEMO, None, packaged)
    assert packaged.read_text().startswith("{")

    # WHEN it is loaded where PyYAML cannot be imported (the gateway's package)
    monkeypatch.setitem(sys.modules, "yaml", None)
    from_json = load_catalog(packaged)

    # THEN it is the catalog the YAML holds
    monkeypatch.delitem(sys.modules, "yaml")
    from_yaml = load_catalog(DEMO)
    assert from_json.model_dump(exclude={"source_dir"}) == from_yaml.model_dump(
        exclude={"source_dir"}
    )
    # A catalog still in YAML says what to do instead of failing on the import
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(ConfigError, match="is not JSON and PyYAML is not installed"):
        load_catalog(DEMO)


def test_a_value_json_cannot_hold_stops_the_package_build(tmp_path: Path) -> None:
    source = tmp_path / "catalog.yaml"
    source.write_text("commands: []\nreviewed: 2024-01-01\n")
    with pytest.raises(SystemExit, match="a value JSON cannot hold"):
        write_catalog(source, None, tmp_path / "packaged.yaml")


# --------------------------------------------------------------------------- requests


def test_a_valid_request_keeps_values_exactly() -> None:
    result = validate_request(catalog(), "backfill", "staging", {"since": "2024-01-01", "limit": 7})
    assert isinstance(result, ValidatedRequest)
    assert result.values == {"since": "2024-01-01", "limit": "7"}
    assert result.argv() == ["bin/backfill", "--since", "2024-01-01", "--limit", "7"]


def test_an_optional_parameter_left_out_drops_its_option_too() -> None:
    result = validate_request(
        catalog(), "backfill", "staging", {"since": "2024-01-01", "limit": ""}
    )
    assert isinstance(result, ValidatedRequest)
    assert result.argv() == ["bin/backfill", "--since", "2024-01-01"]


def test_every_problem_is_reported_at_once() -> None:
    result = validate_request(
        catalog(), "backfill", "prod", [("since", "yesterday"), ("limit", "500"), ("force", "yes")]
    )
    assert result == [
        FieldError(
            field="environment", message="backfill cannot run in 'prod' (it runs in: staging)"
        ),
        FieldError(field="force", message="backfill has no parameter 'force'"),
        FieldError(field="since", message=r"does not match the pattern \d{4}-\d{2}-\d{2}"),
        FieldError(field="limit", message="must be at most 100 (got 500)"),
    ]


def test_a_parameter_given_twice_is_refused() -> None:
    result = validate_request(
        catalog(), "backfill", "staging", [("since", "2024-01-01"), ("since", "2024-02-01")]
    )
    assert result == [FieldError(field="since", message="given more than once")]


def test_an_unknown_command_lists_the_known_ones() -> None:
    assert validate_request(catalog(), "rm", "staging", {}) == [
        FieldError(field="command", message="unknown command 'rm' (known: backfill)")
    ]


def test_a_recorded_run_is_checked_again_as_requested_and_a_dropped_value_is_missing() -> None:
    def recorded(*parameters: RunParameter) -> RunRecord:
        return RunRecord(
            run_id="run-1",
            request_event_id="evt-1",
            command="backfill",
            environment="staging",
            parameters=parameters,
            requested_by=Actor(slack_user_id="U0ALICE001", name="alice"),
            requested_at=datetime(2026, 12, 5, 9, 0, tzinfo=UTC),
        )

    since = RunParameter(name="since", value="2024-01-01")
    again = validate_recorded(catalog(), recorded(since, RunParameter(name="limit", value="7")))
    assert isinstance(again, ValidatedRequest)
    assert again.values == {"since": "2024-01-01", "limit": "7"}
    assert validate_recorded(catalog(), recorded(since, since)) == [
        FieldError(field="since", message="given more than once")
    ]
    dropped = RunParameter(name="since", value=None, sensitive=True)
    assert validate_recorded(catalog(), recorded(dropped)) == [
        FieldError(field="since", message="is required")
    ]


TYPED = command(
    name="typed",
    argv=["bin/typed", "{text}", "{number}", "{flag}", "{mode}", "{user}", "{dash}"],
    parameters=[
        {"name": "text", "type": "text", "max_length": 40, "required": False},
        {"name": "number", "type": "integer", "minimum": -5, "required": False},
        {"name": "flag", "type": "boolean", "default": False},
        {"name": "mode", "type": "choice", "choices": ["fast", "safe"], "default": "safe"},
        {"name": "user", "type": "slack_user", "required": False},
        {"name": "dash", "type": "text", "allow_leading_dash": True, "required": False},
    ],
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"text": "  spaced  "}, {"text": "  spaced  "}),
        (
            {"text": "a\nb; rm -rf / $(x) `y` 'q' \"d\""},
            {"text": "a\nb; rm -rf / $(x) `y` 'q' \"d\""},
        ),
        ({"number": "-5"}, {"number": "-5"}),
        ({"number": 12}, {"number": "12"}),
        ({"flag": True}, {"flag": "true"}),
        ({"flag": "false"}, {"flag": "false"}),
        ({"mode": "fast"}, {"mode": "fast"}),
        ({"user": "U0BOB00002"}, {"user": "U0BOB00002"}),
        ({"dash": "--verbose"}, {"dash": "--verbose"}),
    ],
)
def test_typed_values_are_accepted(given: dict[str, Any], expected: dict[str, str]) -> None:
    result = validate_request(catalog(TYPED), "typed", "staging", given)
    assert isinstance(result, ValidatedRequest), result
    assert result.values == {"flag": "false", "mode": "safe", **expected}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"text": "x" * 41}, "is longer than 40 characters (41)"),
        ({"text": "nul\x00byte"}, "contains a NUL character, which no process argument can carry"),
        (
            {"text": "-rf"},
            "starts with '-', which the program would read as an option, not a value",
        ),
        ({"text": 5}, "expected text, got int"),
        ({"number": "1.5"}, "expected an integer, got '1.5'"),
        ({"number": True}, "expected an integer, got a boolean"),
        ({"number": "-6"}, "must be at least -5 (got -6)"),
        ({"flag": "yes"}, "expected true or false, got 'yes'"),
        ({"mode": "FAST"}, "must be one of fast, safe (got 'FAST')"),
        ({"user": "alice"}, "expected a Slack user id like U0123ABCD, got 'alice'"),
    ],
)
def test_wrong_values_are_refused(given: dict[str, Any], message: str) -> None:
    result = validate_request(catalog(TYPED), "typed", "staging", given)
    assert isinstance(result, list)
    assert [e.message for e in result] == [message]


def test_sensitive_values_are_hidden_unless_asked() -> None:
    spec = with_secret("API_KEY", {"name": "key", "type": "text"})
    result = validate_request(catalog(spec), "backfill", "staging", {"since": "x", "key": "s3cr3t"})
    assert isinstance(result, ValidatedRequest)
    assert result.env() == {"API_KEY": "s3cr3t"}
    hidden = {p.name: (p.value, p.sensitive) for p in result.run_parameters()}
    assert hidden == {"since": ("x", False), "key": (None, True)}
    shown = {p.name: p.value for p in result.run_parameters(reveal_sensitive=True)}
    assert shown["key"] == "s3cr3t"


def test_build_argv_and_env_never_split_or_join_values() -> None:
    spec = catalog(command(env={"SINCE": "{since}", "MODE": "batch"})).commands[0]
    values = {"since": "a b\nc", "limit": "3"}
    assert build_argv(spec, values) == ["bin/backfill", "--since", "a b\nc", "--limit", "3"]
    assert build_env(spec, values) == {"SINCE": "a b\nc", "MODE": "batch"}


# --------------------------------------------------------------------------- who


async def test_authorization_by_user_or_group() -> None:
    groups = StaticGroupDirectory({"S0SRE00001": ["U0BOB00002"]})
    request = validate_request(catalog(), "backfill", "staging", {"since": "2024-01-01"})
    assert isinstance(request, ValidatedRequest)
    assert await authorization_refusal(request, "U0ALICE001", groups) is None  # named
    assert await authorization_refusal(request, "U0BOB00002", groups) is None  # in the group
    assert await authorization_refusal(request, "U0DAVE0004", groups) == (
        "U0DAVE0004 may not run backfill in staging (allowed: U0ALICE001, S0SRE00001)"
    )
    assert "names no Slack user" in str(await authorization_refusal(request, None, groups))


async def test_approvals_never_count_the_requester() -> None:
    groups = StaticGroupDirectory({"S0SRE00001": ["U0ALICE001", "U0BOB00002"]})
    policy = ApprovalPolicy(approvers=Principals(usergroups=("S0SRE00001",)))
    assert await approval_refusal(policy, "U0ALICE001", "U0BOB00002", groups) is None
    assert await approval_refusal(policy, "U0ALICE001", "U0ALICE001", groups) == (
        "U0ALICE001 requested this run and cannot approve it (self-approval)"
    )
    assert await approval_refusal(policy, "U0ALICE001", "U0CAROL003", groups) == (
        "U0CAROL003 is not an approver here (approvers: S0SRE00001)"
    )


def test_a_refused_sensitive_value_is_not_repeated_in_the_reason() -> None:
    spec = with_secret("PIN", {"name": "pin", "type": "integer", "maximum": 99})
    result = validate_request(catalog(spec), "backfill", "staging", {"since": "x", "pin": "12345"})
    assert result == [FieldError(field="pin", message="must be at most 99 (got (sensitive))")]


# --------------------------------------------------------------------------- break-glass

APPROVED = STAGING | {"approval": {"approvers": {"usergroups": ["S0SRE00001"]}}}
GLASS = {"allowed": {"usergroups": ["S0SRE00001"]}, "max_per_person_per_day": 1}


def test_break_glass_needs_an_approval_to_skip_and_someone_allowed() -> None:
    alone = command(environments={"staging": STAGING | {"break_glass": GLASS}})
    assert "only an environment with an approval" in problems({"commands": [alone]})
    nobody = command(environments={"production": APPROVED | {"break_glass": {"allowed": {}}}})
    assert "name at least one user" in problems({"commands": [nobody]})


async def test_break_glass_refusals_name_the_reason_the_group_and_the_limit() -> None:
    spec = command(
        environments={"production": APPROVED | {"break_glass": GLASS}, "staging": STAGING}
    )
    current = catalog(spec)
    directory = StaticGroupDirectory({"S0SRE00001": ["U0ALICE001"]})
    reason = "INC-3: the checkout is down since 9:00"

    def request(environment: str) -> ValidatedRequest:
        checked = validate_request(current, "backfill", environment, {"since": "2024-01-01"})
        assert isinstance(checked, ValidatedRequest)
        return checked

    production = request("production")
    assert await break_glass_refusal(production, "U0ALICE001", reason, directory) is None
    no_glass = await break_glass_refusal(request("staging"), "U0ALICE001", reason, directory)
    assert "does not allow break-glass" in (no_glass or "")
    short = await break_glass_refusal(production, "U0ALICE001", " too short ", directory)
    assert "at least 20 characters" in (short or "")
    outsider = await break_glass_refusal(production, "U0CAROL003", reason, directory)
    assert "may not break glass" in (outsider or "")
    over = await break_glass_refusal(production, "U0ALICE001", reason, directory, used_today=1)
    assert "limit for backfill in production is 1 per person per day" in (over or "")
