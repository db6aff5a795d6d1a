"""The run modal built from the catalog, read back on submission, and errors mapped to fields."""

from __future__ import annotations

import json
from typing import Any

import yaml

from services.gateway.blocks import (
    ModalContext,
    read_run_form,
    run_modal,
    view_errors,
)
from services.gateway.payloads import ViewState
from shared.catalog import Catalog, FieldError, parse_catalog
from shared.slack.blocks import MAX_MODAL_TITLE, MAX_OPTIONS
from toilkit.standins.slack.app_requests import submission_state

CATALOG = r"""
commands:
  - name: backfill
    description: Backfill <orders> & totals.
    argv: [run, "{since}", "{limit}", "{mode}", "{notify}", "{dry_run}", "{token}", "{big}"]
    parameters:
      - {name: since, type: text, label: Since, pattern: '\d{4}-\d{2}-\d{2}', max_length: 10,
         description: The first day.}
      - {name: limit, type: integer, minimum: 1, maximum: 1000, default: 100}
      - {name: mode, type: choice, choices: [fast, safe], default: safe}
      - {name: notify, type: slack_user, required: false}
      - {name: dry_run, type: boolean, default: false}
      - {name: token, type: text, required: false, sensitive: true, max_length: 4096}
      - {name: big, type: choice, required: false, choices: [BIGCHOICES]}
    environments:
      staging: {allowed: {users: [U0ALICE001]}}
      production:
        allowed: {users: [U0ALICE001]}
        approval: {approvers: {users: [U0BOB00002]}}
  - name: echo
    description: Print it.
    argv: [echo, "{text}"]
    parameters: [{name: text, type: text}]
    environments: {staging: {allowed: {users: [U0ALICE001]}}}
"""


def catalog() -> Catalog:
    data = yaml.safe_load(CATALOG)
    big = data["commands"][0]["parameters"][-1]
    big["choices"] = [f"c{i}" for i in range(MAX_OPTIONS + 1)]
    return parse_catalog(data)


def inputs(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}


def test_the_first_modal_is_a_picker_of_every_command() -> None:
    view = run_modal(catalog(), ModalContext(channel_id="C1"))

    assert list(inputs(view)) == ["command"]
    picker = inputs(view)["command"]
    assert picker["dispatch_action"] is True
    assert [o["value"] for o in picker["element"]["options"]] == ["backfill", "echo"]
    assert "initial_option" not in picker["element"]
    assert json.loads(view["private_metadata"]) == {"channel_id": "C1", "command": None}
    assert all(len(view[k]["text"]) <= MAX_MODAL_TITLE for k in ("title", "submit", "close"))


def test_a_picked_command_shows_one_typed_input_per_parameter() -> None:
    view = run_modal(catalog(), ModalContext(channel_id="C1", command="backfill"))

    blocks = inputs(view)
    assert blocks["command"]["element"]["initial_option"]["value"] == "backfill"
    assert json.loads(view["private_metadata"])["command"] == "backfill"
    since = blocks["param:since"]
    assert (since["element"]["type"], since["optional"], since["element"]["max_length"]) == (
        "plain_text_input",
        False,
        10,
    )
    assert "The first day." in since["hint"]["text"] and "Must match" in since["hint"]["text"]
    limit = blocks["param:limit"]["element"]
    assert (limit["type"], limit["min_value"], limit["max_value"], limit["initial_value"]) == (
        "number_input",
        "1",
        "1000",
        "100",
    )
    assert limit["is_decimal_allowed"] is False
    assert blocks["param:mode"]["element"]["initial_option"]["value"] == "safe"
    assert blocks["param:notify"]["element"]["type"] == "users_select"
    assert blocks["param:notify"]["optional"] is True
    dry_run = blocks["param:dry_run"]["element"]
    assert dry_run["type"] == "radio_buttons"
    assert dry_run["initial_option"]["value"] == "false"
    token = blocks["param:token"]
    assert token["element"]["max_length"] == 3000  # Slack's own limit, under the catalog's
    assert "Sensitive" in token["hint"]["text"]
    # Too many choices for a select: typed, then checked.
    assert blocks["param:big"]["element"]["type"] == "plain_text_input"
    env = blocks["environment"]["element"]
    assert [o["value"] for o in env["options"]] == ["staging", "production"]
    assert "approval" in env["options"][1]["description"]["text"]
    assert blocks["reason"]["element"]["multiline"] is True


def test_a_command_with_one_environment_preselects_it() -> None:
    view = run_modal(catalog(), ModalContext(command="echo"))

    assert inputs(view)["environment"]["element"]["initial_option"]["value"] == "staging"


def test_the_description_is_shown_escaped() -> None:
    view = run_modal(catalog(), ModalContext(command="backfill"))

    described = json.dumps(view["blocks"][1])
    assert "&lt;orders&gt; &amp; totals" in described


def test_a_submission_reads_back_every_value_by_element_type() -> None:
    view = run_modal(catalog(), ModalContext(command="backfill"))
    answers = {
        "environment": "production",
        "param:since": "2024-01-31",
        "param:limit": "7",
        "param:notify": "U0BOB00002",
        "param:dry_run": "true",
        "param:token": None,
        "reason": "INC-1",
    }
    state = ViewState.model_validate({"values": submission_state(view["blocks"], answers)})

    form = read_run_form(state)

    assert (form.command, form.environment, form.reason) == ("backfill", "production", "INC-1")
    assert form.parameters == {
        "since": "2024-01-31",
        "limit": "7",
        "mode": "safe",
        "notify": "U0BOB00002",
        "dry_run": "true",
        "token": None,
        "big": None,
    }


def test_errors_land_under_their_own_fields_and_the_rest_under_the_picker() -> None:
    spec = catalog().command("backfill")
    errors = [
        FieldError(field="since", message="does not match"),
        FieldError(field="since", message="is too long"),
        FieldError(field="environment", message="pick one"),
        FieldError(field="ghost", message="no such parameter"),
        FieldError(field="reason", message="x" * 1000),
    ]

    mapped = view_errors(errors, spec)

    assert mapped["param:since"] == "does not match; is too long"
    assert mapped["environment"] == "pick one"
    assert mapped["command"] == "ghost: no such parameter"
    assert len(mapped["reason"]) == 300


def test_modal_context_survives_only_well_formed_metadata() -> None:
    context = ModalContext(channel_id="C1", command="echo")

    assert ModalContext.from_metadata(context.to_metadata()) == context
    assert ModalContext.from_metadata("") == ModalContext()
    assert ModalContext.from_metadata("{not json") == ModalContext()
    assert ModalContext.from_metadata("[1]") == ModalContext()
    assert ModalContext.from_metadata('{"channel_id": 5, "command": ["x"]}') == ModalContext()
