"""Plans as they reach the detector in the wild, and findings that never cry wolf (pure logic).

Terraform 0.15.4-1.0.0's ``resource_drift`` without addresses, UTF-16 and BOM files from
Windows shells, plans concatenated by ``terragrunt run-all``, human-readable plans and a
wrapper's captured output; the revert of a drift kept apart from pending code; sets
compared as sets; sensitivity markings of shapes the parser does not know.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from services.detector.plan import PlanParseError, PlanSummary, parse_plan
from services.detector.plan.reading import decode_all
from services.detector.plan.sets import SetPaths, set_paths_from_schema
from services.detector.scan import StateResult
from shared.events import SENSITIVE
from toilkit.drift_cli import drift_app
from toilkit.drift_output import to_cli_json

NOW = datetime(2025, 6, 1, 9, 30, tzinfo=UTC)
SECRET = "hunter2-do-not-print"


def parse(body: Any, **kwargs: Any) -> PlanSummary:
    return parse_plan(body, state="prod", now=NOW, **kwargs)


def entry(
    address: str | None,
    actions: list[str],
    before: Any,
    after: Any,
    *,
    resource_type: str = "aws_instance",
    name: str = "web",
    top: dict[str, Any] | None = None,
    **change: Any,
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "mode": "managed",
        "type": resource_type,
        "name": name,
        "change": {"actions": actions, "before": before, "after": after, **change},
    }
    if address is not None:
        document["address"] = address
    document.update(top or {})
    return document


def plan(
    changes: list[dict[str, Any]], drift: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    document: dict[str, Any] = {"format_version": "1.2", "resource_changes": changes}
    if drift is not None:
        document["resource_drift"] = drift
    return document


# --------------------------------------------------------------------------- Terraform 1.0.0


def test_terraform_1_0_drift_entries_without_address_get_one_and_unchanged_ones_go() -> None:
    # Terraform 0.15.4-1.0.0: no "address" in resource_drift, unchanged resources listed.
    # HAND-MADE, not a captured plan: no plan written by those versions is available here
    # (tests/fixtures/plans holds real plans of other versions only, see its SOURCES.md, and
    # the Terraform bundled here is 1.15). It follows the shape those versions' show-json
    # code wrote (format_version 0.2).
    drift = [
        entry(
            None,
            ["update"],
            {"ami": "a"},
            {"ami": "b"},
            top={"module_address": 'module.app["eu"]', "index": 0},
        ),
        entry(None, ["update"], {"ami": "same"}, {"ami": "same"}, name="quiet"),
        entry(None, ["update"], {"ami": "x"}, {"ami": "y"}, name="keyed", top={"index": "k"}),
    ]
    document = {"format_version": "0.2", "terraform_version": "1.0.0", "resource_drift": drift}

    summary = parse(document)

    assert [(f.kind, f.address) for f in summary.findings] == [
        ("drift", 'module.app["eu"].aws_instance.web[0]'),
        ("drift", 'aws_instance.keyed["k"]'),
    ]


def test_an_entry_with_neither_address_nor_name_is_a_clear_error() -> None:
    broken = {"mode": "managed", "type": "aws_instance", "change": {"actions": ["update"]}}

    with pytest.raises(PlanParseError, match=r"resource_drift\.0\.address"):
        parse({"format_version": "0.2", "resource_drift": [broken]})


# --------------------------------------------------------------------------- encodings, wrappers

CHANGE = plan([entry("aws_instance.web", ["update"], {"ami": "a"}, {"ami": "b"})])


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: text.encode("utf-16"),  # PowerShell's `>`: UTF-16 LE with a BOM
        lambda text: text.encode("utf-16-be"),
        lambda text: b"\xef\xbb\xbf" + text.encode(),
        lambda text: "\ufeff" + text,
    ],
    ids=["utf-16-bom", "utf-16-be", "utf-8-bom-bytes", "bom-in-text"],
)
def test_utf16_and_bom_plans_read_like_utf8(encode: Any) -> None:
    summary = parse(encode(json.dumps(CHANGE)))

    assert [f.address for f in summary.findings] == ["aws_instance.web"]


def test_concatenated_plans_are_each_read_and_one_plan_says_so() -> None:
    # terragrunt run-all show -json: one document per module, one after another.
    text = json.dumps(CHANGE) + "\n" + json.dumps(CHANGE, indent=2) + json.dumps(CHANGE)

    assert len(decode_all(text)) == 3
    with pytest.raises(PlanParseError, match=r"3 JSON documents.*terragrunt run-all"):
        parse(text)


HUMAN_PLAN = """
Terraform used the selected providers to generate the following execution plan.
Resource actions are indicated with the following symbols:
  ~ update in-place

Terraform will perform the following actions:

  # aws_instance.web will be updated in-place
  ~ resource "aws_instance" "web" {
      ~ ami = "a" -> "b"
    }

Plan: 0 to add, 1 to change, 0 to destroy.
"""


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (HUMAN_PLAN, "human-readable plan output"),
        ("No changes. Your infrastructure matches the configuration.\n", "human-readable"),
        (
            "[command]/home/runner/bin/terraform-bin show -json plan.tfplan\n"
            + json.dumps(CHANGE)
            + "\n::debug::Terraform exited with code 0.\n",
            "terraform_wrapper: false",
        ),
        (
            "time=2025-06-01T09:30:00Z level=info msg=Executing hook\n" + json.dumps(CHANGE),
            "the JSON starts on line 2",
        ),
    ],
    ids=["human", "no-changes", "setup-terraform-wrapper", "terragrunt-log-lines"],
)
def test_text_that_is_not_a_plan_document_says_what_it_is_and_how_to_get_json(
    body: str, words: str
) -> None:
    with pytest.raises(PlanParseError) as caught:
        parse(body)

    assert words in str(caught.value)
    assert "terraform show -json plan.tfplan" in str(caught.value)


# --------------------------------------------------------------------------- revert vs pending

RECORDED = {"id": "i-1", "ami": "ami-1", "tags": {"env": "prod", "team": "sre"}}
ACTUAL = {"id": "i-1", "ami": "ami-1", "tags": {"env": "staging", "team": "sre"}}


def test_a_change_that_only_puts_back_the_drift_is_its_revert_not_pending_code() -> None:
    drift = entry("aws_instance.web", ["update"], RECORDED, ACTUAL)
    revert = entry("aws_instance.web", ["update"], ACTUAL, RECORDED)

    (finding,) = parse(plan([revert], [drift])).findings

    assert finding.kind == "drift"
    assert finding.revert is not None and finding.revert.actions == ("update",)
    assert [(a.path, a.before, a.after, a.reverted) for a in finding.attributes] == [
        ("tags.env", "prod", "staging", True)
    ]


def test_code_changed_on_a_drifted_resource_lists_only_the_code() -> None:
    drift = entry("aws_instance.web", ["update"], RECORDED, ACTUAL)
    planned = {**RECORDED, "ami": "ami-2"}
    change = entry("aws_instance.web", ["update"], ACTUAL, planned)

    drifted, pending = parse(plan([change], [drift])).findings

    assert [(a.path, a.reverted) for a in drifted.attributes] == [("tags.env", True)]
    assert (pending.kind, [(a.path, a.before, a.after) for a in pending.attributes]) == (
        "pending",
        [("ami", "ami-1", "ami-2")],
    )


def test_a_drifted_value_the_code_now_sets_otherwise_is_not_put_back() -> None:
    drift = entry("aws_instance.web", ["update"], RECORDED, ACTUAL)
    planned = {**RECORDED, "tags": {"env": "qa", "team": "sre"}}
    change = entry("aws_instance.web", ["update"], ACTUAL, planned)

    drifted, pending = parse(plan([change], [drift])).findings

    assert [(a.path, a.reverted) for a in drifted.attributes] == [("tags.env", False)]
    assert [(a.path, a.before, a.after) for a in pending.attributes] == [
        ("tags.env", "staging", "qa")
    ]


def ami_drift_then_replacement(
    after: dict[str, Any], *, top: dict[str, Any] | None = None, **change: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ami changed outside Terraform (ami-1 -> ami-9), and the plan replaces the
    instance (the ami forces it, it cannot be updated) with ``after``: (drift, change)."""
    drifted = {**RECORDED, "ami": "ami-9"}
    drift = entry("aws_instance.web", ["update"], RECORDED, drifted)
    replacement = entry(
        "aws_instance.web",
        ["delete", "create"],
        drifted,
        after,
        replace_paths=[["ami"]],
        top={"action_reason": "replace_because_cannot_update", **(top or {})},
        **change,
    )
    return drift, replacement


def test_a_replacement_that_restores_the_recorded_object_is_a_revert() -> None:
    drift, change = ami_drift_then_replacement({**RECORDED, "id": None}, after_unknown={"id": True})

    (finding,) = parse(plan([change], [drift])).findings

    assert finding.revert is not None
    assert finding.revert.actions == ("delete", "create")
    assert finding.revert.action_reason == "replace_because_cannot_update"
    assert [(a.path, a.reverted) for a in finding.attributes] == [("ami", True)]


def test_drift_that_apply_leaves_alone_has_no_revert() -> None:
    # lifecycle { ignore_changes = [tags] }: the plan is a no-op for the drifted resource.
    drift = entry("aws_instance.web", ["update"], RECORDED, ACTUAL)
    noop = entry("aws_instance.web", ["no-op"], ACTUAL, ACTUAL)

    summary = parse(plan([noop], [drift]))

    (finding,) = summary.findings
    assert finding.revert is None
    assert not finding.attributes[0].reverted


def test_import_and_moved_blocks_are_pending_code_not_clean() -> None:
    imported = entry(
        "aws_instance.web",
        ["no-op"],
        RECORDED,
        RECORDED,
        importing={"id": "i-0abc"},
    )
    moved = entry(
        "aws_instance.api",
        ["no-op"],
        RECORDED,
        RECORDED,
        name="api",
        top={"previous_address": "aws_instance.old_api"},
    )

    summary = parse(plan([imported, moved]))

    assert [(f.kind, f.change, f.import_id, f.previous_address) for f in summary.findings] == [
        ("pending", "import", "i-0abc", None),
        ("pending", "move", None, "aws_instance.old_api"),
    ]
    assert summary.drifted
    assert summary.noop_resources == 0


def test_cli_json_carries_what_tells_a_replacement_from_two_changes() -> None:
    drift, change = ami_drift_then_replacement(
        {**RECORDED, "ami": "ami-3"}, top={"deposed": "00ff"}
    )
    imported = entry("aws_instance.db", ["update"], {"a": 1}, {"a": 2}, name="db")
    imported["change"]["importing"] = {"id": "db-1"}
    imported["previous_address"] = "aws_instance.database"
    summary = parse(plan([change, imported], [drift]))

    document = to_cli_json([StateResult(name="prod", path="prod", summary=summary)])

    drifted, replaced, moved = document["states"][0]["findings"]
    assert drifted["revert"] is None  # the replacement is of the deposed object, not a revert
    assert replaced["deposed"] == "00ff"
    assert replaced["action_reason"] == "replace_because_cannot_update"
    assert [(a["path"], a["forces_replacement"]) for a in replaced["attributes"]] == [("ami", True)]
    assert moved["importing"] == {"id": "db-1"}
    assert moved["previous_address"] == "aws_instance.database"
    assert {"reverted", "set_change"} <= set(drifted["attributes"][0])


# --------------------------------------------------------------------------- sensitivity


@pytest.mark.parametrize(
    "marking",
    [{"token": {"value": True}}, {"token": [True]}, {"token": {"a": {"b": 1}}}, {"token": "yes"}],
)
def test_a_sensitivity_marking_of_unknown_shape_masks_the_value(marking: Any) -> None:
    change = entry(
        "aws_instance.web",
        ["update"],
        {"token": SECRET + "-old"},
        {"token": SECRET + "-new"},
        before_sensitive=marking,
        after_sensitive=marking,
    )

    summary = parse(plan([change]))

    (attribute,) = summary.findings[0].attributes
    assert (attribute.before, attribute.after, attribute.sensitive) == (
        SENSITIVE,
        SENSITIVE,
        True,
    )
    assert SECRET not in summary.model_dump_json()


def test_an_empty_marking_over_a_plain_value_masks_nothing() -> None:
    change = entry(
        "aws_instance.web",
        ["update"],
        {"ami": "a"},
        {"ami": "b"},
        before_sensitive={"ami": {}},
        after_sensitive={"ami": []},
    )

    (attribute,) = parse(plan([change])).findings[0].attributes

    assert (attribute.before, attribute.after, attribute.sensitive) == ("a", "b", False)


# --------------------------------------------------------------------------- sets

SCHEMA = {
    "format_version": "1.0",
    "provider_schemas": {
        "registry.terraform.io/hashicorp/aws": {
            "resource_schemas": {
                "aws_security_group": {
                    "block": {
                        "attributes": {
                            "name": {"type": "string"},
                            "ingress": {
                                "type": [
                                    "set",
                                    [
                                        "object",
                                        {"cidr_blocks": ["list", "string"], "port": "number"},
                                    ],
                                ]
                            },
                            "tags": {"type": ["map", "string"]},
                        }
                    }
                },
                "aws_lb": {
                    "block": {
                        "block_types": {
                            "subnet_mapping": {
                                "nesting_mode": "set",
                                "block": {"attributes": {"subnet_id": {"type": "string"}}},
                            },
                            "access_logs": {
                                "nesting_mode": "list",
                                "block": {"attributes": {"prefixes": {"type": ["set", "string"]}}},
                            },
                        }
                    }
                },
                "aws_plain": {"block": {"attributes": {"name": {"type": "string"}}}},
            }
        }
    },
}


def test_schema_names_the_sets_of_each_resource_type() -> None:
    paths = set_paths_from_schema(SCHEMA)

    assert set(paths) == {"aws_security_group", "aws_lb"}
    group, lb = paths["aws_security_group"], paths["aws_lb"]
    assert group.is_set(("ingress",))
    assert not group.is_set(("ingress", 0, "cidr_blocks"))
    assert not group.is_set(("tags",))
    assert lb.is_set(("subnet_mapping",))
    assert lb.is_set(("access_logs", 0, "prefixes"))
    assert not lb.is_set(("access_logs",))
    assert SetPaths.from_json(lb.to_json()) == lb


RULE_A = {"cidr_blocks": ["10.0.0.0/8"], "port": 22}
RULE_B = {"cidr_blocks": ["0.0.0.0/0"], "port": 443}
RULE_C = {"cidr_blocks": ["192.168.0.0/16"], "port": 80}


def ingress_rule_replaced() -> dict[str, Any]:
    """The security group's ingress set loses RULE_A and gains RULE_C (RULE_B stays)."""
    return entry(
        "aws_security_group.web",
        ["update"],
        {"ingress": [RULE_A, RULE_B]},
        {"ingress": [RULE_C, RULE_B]},
        resource_type="aws_security_group",
    )


def test_a_set_shows_the_element_added_and_removed_not_renumbered_positions() -> None:
    # Terraform orders set elements as it likes: adding one shifts every position.
    document = plan([ingress_rule_replaced()])

    by_position = parse(document).findings[0]
    as_sets = parse(document, set_paths=set_paths_from_schema(SCHEMA)).findings[0]

    assert {a.path for a in by_position.attributes} == {
        "ingress[0].cidr_blocks[0]",
        "ingress[0].port",
    }
    assert [(a.path, a.set_change, a.before, a.after) for a in as_sets.attributes] == [
        ("ingress", "removed", RULE_A, None),
        ("ingress", "added", None, RULE_C),
    ]


def test_a_reordered_set_is_no_change_and_no_pending_code_after_a_drift() -> None:
    recorded = {"ingress": [RULE_A, RULE_B], "name": "web"}
    actual = {"ingress": [RULE_A, RULE_B], "name": "web-by-hand"}
    drift = entry(
        "aws_security_group.web", ["update"], recorded, actual, resource_type="aws_security_group"
    )
    # The plan writes the same set in another order.
    change = entry(
        "aws_security_group.web",
        ["update"],
        actual,
        {"ingress": [RULE_B, RULE_A], "name": "web"},
        resource_type="aws_security_group",
    )

    summary = parse(plan([change], [drift]), set_paths=set_paths_from_schema(SCHEMA))

    (finding,) = summary.findings
    assert finding.kind == "drift" and finding.revert is not None
    assert [(a.path, a.reverted) for a in finding.attributes] == [("name", True)]


def test_set_elements_are_masked_by_their_own_sensitivity_entry() -> None:
    change = entry(
        "aws_security_group.web",
        ["update"],
        {"ingress": [RULE_A]},
        {"ingress": [{"cidr_blocks": [SECRET], "port": 22}]},
        resource_type="aws_security_group",
        before_sensitive={},
        after_sensitive={"ingress": [{"cidr_blocks": True}]},
    )

    summary = parse(plan([change]), set_paths=set_paths_from_schema(SCHEMA))

    removed, added = summary.findings[0].attributes
    assert removed.set_change == "removed"
    assert added.after == {"cidr_blocks": SENSITIVE, "port": 22}
    assert SECRET not in summary.model_dump_json()


# --------------------------------------------------------------------------- toilkit drift parse


def test_drift_parse_reads_each_concatenated_plan_with_a_schema(tmp_path: Path) -> None:
    plans = tmp_path / "run-all.json"
    plans.write_text(json.dumps(plan([ingress_rule_replaced()])) + "\n" + json.dumps(plan([])))
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))

    result = CliRunner().invoke(
        drift_app, ["parse", str(plans), "--schema", str(schema), "--format", "json"]
    )

    assert result.exit_code == 2, result.output
    first, second = json.loads(result.stdout)["states"]
    assert (first["name"], second["name"], second["status"]) == ("run-all#1", "run-all#2", "clean")
    assert [a["set_change"] for a in first["findings"][0]["attributes"]] == ["removed", "added"]


@pytest.mark.parametrize(
    ("schema_text", "words"),
    [("{}", "no provider_schemas"), ("nope", "not `terraform providers schema -json`")],
)
def test_drift_parse_with_a_bad_schema_or_a_human_plan_exits_1_and_says_why(
    tmp_path: Path, schema_text: str, words: str
) -> None:
    human = tmp_path / "plan.txt"
    human.write_text(HUMAN_PLAN)
    schema = tmp_path / "schema.json"
    schema.write_text(schema_text)
    runner = CliRunner()

    bad_schema = runner.invoke(drift_app, ["parse", str(human), "--schema", str(schema)])
    human_plan = runner.invoke(drift_app, ["parse", str(human), "--format", "json"])

    assert bad_schema.exit_code == 1 and words in bad_schema.output
    assert human_plan.exit_code == 1
    assert "human-readable plan output" in json.loads(human_plan.stdout)["states"][0]["error"]
