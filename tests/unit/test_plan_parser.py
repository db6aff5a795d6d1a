"""The detector's understanding of ``terraform show -json`` plans (pure logic).

Real plans from other projects live in tests/fixtures/plans (see SOURCES.md there); every
one of them has its expected findings written out below. Synthetic plans cover what the
fixtures do not: both replace orders, for_each keys, nested paths, unknown and sensitive
values, ignore rules, provider noise, fingerprints and broken input.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from services.detector.ignore import (
    NULL_VS_EMPTY,
    PROVIDER_NOISE,
    SAME_JSON_DOCUMENT,
    IgnoreRule,
    glob_match,
)
from services.detector.plan import (
    PlanFinding,
    PlanParseError,
    PlanSummary,
    fingerprint,
    parse_plan,
    render_path,
    to_event_finding,
)
from services.detector.scan import StateResult
from shared.errors import PermanentError
from shared.events import SENSITIVE, DriftFinding
from toilkit.drift_output import KNOWN_AFTER_APPLY, findings_table, to_cli_json

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "plans"
NOW = datetime(2025, 6, 1, 9, 30, tzinfo=UTC)


# --------------------------------------------------------------------------- helpers


def parse(plan: dict[str, Any] | str | bytes, **kwargs: Any) -> PlanSummary:
    kwargs.setdefault("state", "prod")
    kwargs.setdefault("now", NOW)
    return parse_plan(plan, **kwargs)


def parse_fixture(name: str, **kwargs: Any) -> PlanSummary:
    return parse((FIXTURES / name).read_bytes(), **kwargs)


def resource(
    address: str,
    actions: list[str],
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    *,
    mode: str = "managed",
    resource_type: str | None = None,
    top: dict[str, Any] | None = None,
    **change: Any,
) -> dict[str, Any]:
    """One ``resource_changes``/``resource_drift`` entry as Terraform writes it."""
    entry: dict[str, Any] = {
        "address": address,
        "mode": mode,
        "type": resource_type or address.split(".")[-2].split("[", maxsplit=1)[0],
        "name": address.rsplit(".", maxsplit=1)[-1],
        "provider_name": "registry.terraform.io/hashicorp/aws",
        "change": {
            "actions": actions,
            "before": before,
            "after": after,
            "after_unknown": change.pop("after_unknown", {}),
            "before_sensitive": change.pop("before_sensitive", {} if before is not None else False),
            "after_sensitive": change.pop("after_sensitive", {} if after is not None else False),
            **change,
        },
    }
    entry.update(top or {})
    return entry


def plan(
    changes: Sequence[dict[str, Any]] = (),
    drift: Sequence[dict[str, Any]] = (),
    outputs: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "format_version": "1.2",
        "terraform_version": "1.9.8",
        "planned_values": {"root_module": {}},
        "resource_changes": list(changes),
        **extra,
    }
    if drift:
        document["resource_drift"] = list(drift)
    if outputs is not None:
        document["output_changes"] = outputs
    return document


def only(summary: PlanSummary) -> PlanFinding:
    assert len(summary.findings) == 1, summary.findings
    return summary.findings[0]


def attrs(finding: PlanFinding) -> dict[str, tuple[Any, Any]]:
    return {a.path: (a.before, a.after) for a in finding.attributes}


def everything_rendered(summary: PlanSummary) -> str:
    """Every way a summary leaves the parser, as one string to grep."""
    result = StateResult(name=summary.state, path="envs/prod", summary=summary)
    console = Console(record=True, width=400, color_system=None)
    console.print(findings_table([result]))
    events = [to_event_finding(f, first_seen=NOW).model_dump_json() for f in summary.findings]
    return "\n".join(
        [
            summary.model_dump_json(),
            json.dumps(to_cli_json([result]), ensure_ascii=False),
            console.export_text(),
            *events,
        ]
    )


# --------------------------------------------------------------------------- fixtures

# What SOURCES.md says each real plan holds: (kind, address, actions, change,
# {path: (before, after)}, ignored). Unknown values show as KNOWN_AFTER_APPLY here.
Expected = tuple[str, str, tuple[str, ...], str, dict[str, Any], bool]


def refreshed_drift(refreshed: str) -> list[Expected]:
    """OpenTofu's two refresh plans (one moves ``refreshed`` first): ``refreshed`` drifted
    (its ami refresh-me -> refreshed) and has code not applied (-> baz); no_refresh has code
    not applied only."""
    return [
        ("drift", refreshed, ("update",), "update", {"ami": ("refresh-me", "refreshed")}, False),
        (
            "pending",
            "test_instance.no_refresh",
            ("update",),
            "update",
            {"ami": ("foo", "bar")},
            False,
        ),
        ("pending", refreshed, ("update",), "update", {"ami": ("refreshed", "baz")}, False),
    ]


EXPECTED: dict[str, list[Expected]] = {
    "precloud-aws-sqs-tags-drift.json": [
        ("drift", "aws_sqs_queue.test_tf_sqs_2", ("update",), "update", {"tags": (None, {})}, True),
        (
            "pending",
            "aws_sqs_queue.test_tf_sqs",
            ("update",),
            "update",
            {"visibility_timeout_seconds": (45, 30)},
            False,
        ),
        ("pending", "aws_sqs_queue.test_tf_sqs_2", ("delete",), "delete", {}, False),
        ("pending", "aws_sqs_queue.test_tf_sqs_3", ("create",), "create", {}, False),
    ],
    "opentofu-show-json-drift.json": refreshed_drift("test_instance.should_refresh"),
    "opentofu-show-json-moved-drift.json": refreshed_drift(
        "test_instance.should_refresh_with_move"
    ),
    "opentofu-show-json-requires-replace.json": [
        (
            "pending",
            "test_instance.test",
            ("delete", "create"),
            "replace",
            {"ami": ("bar", "force-replace"), "id": ("placeholder", KNOWN_AFTER_APPLY)},
            False,
        ),
    ],
    "opentofu-show-json-sensitive-values.json": [
        ("pending", "test_instance.test", ("create",), "create", {}, False),
    ],
    "opentofu-show-json-modules.json": [
        ("pending", "module.module_test_bar.test_instance.test", ("create",), "create", {}, False),
        *(
            (
                "pending",
                f"module.module_test_foo.test_instance.test[{i}]",
                ("create",),
                "create",
                {},
                False,
            )
            for i in range(3)
        ),
    ],
    "opentofu-show-json-basic-delete.json": [
        ("pending", "test_instance.test", ("update",), "update", {"ami": ("foo", "bar")}, False),
        ("pending", "test_instance.test-delete", ("delete",), "delete", {}, False),
    ],
    "opentofu-show-json-multi-resource-update.json": [
        # test_instance.test -> test_instance.test[0] is a move not applied yet.
        ("pending", "test_instance.test[0]", ("no-op",), "move", {}, False),
        ("pending", "test_instance.test[1]", ("create",), "create", {}, False),
    ],
}


def test_every_fixture_file_has_expectations_and_a_source() -> None:
    on_disk = {p.name for p in FIXTURES.glob("*.json")}
    sources = (FIXTURES / "SOURCES.md").read_text()
    assert on_disk == set(EXPECTED)
    for name in on_disk:
        assert f"`{name}`" in sources


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_findings(name: str) -> None:
    summary = parse_fixture(name)

    got = [
        (
            f.kind,
            f.address,
            f.actions,
            f.change,
            {
                a.path: (a.before, KNOWN_AFTER_APPLY if a.after_unknown else a.after)
                for a in f.attributes
            },
            f.ignored,
        )
        for f in summary.findings
    ]
    assert got == EXPECTED[name]
    assert all(len(f.fingerprint) == 16 for f in summary.findings)
    assert len({f.fingerprint for f in summary.findings}) == len(summary.findings)


def test_precloud_tags_drift_is_reported_as_provider_noise() -> None:
    summary = parse_fixture("precloud-aws-sqs-tags-drift.json")

    assert summary.terraform_version == "1.2.3"
    assert summary.format_version == "1.1"
    assert summary.noop_resources == 0
    assert summary.outputs == ()  # both outputs are no-op
    drift = summary.findings[0]
    assert drift.ignored
    assert drift.ignore_reason == NULL_VS_EMPTY
    assert drift.attributes[0].ignored
    delete = summary.findings[2]
    assert delete.action_reason == "delete_because_no_resource_config"
    assert delete.attributes == ()
    # Drift and pending of the same resource stay two findings.
    assert drift.fingerprint != delete.fingerprint
    assert summary.drifted


def test_precloud_create_lists_its_unknown_attributes_when_expanded() -> None:
    summary = parse_fixture("precloud-aws-sqs-tags-drift.json", expand_create_delete=True)

    create = summary.findings[3]
    unknown = {a.path for a in create.attributes if a.after_unknown}
    assert unknown == {
        "arn",
        "deduplication_scope",
        "fifo_throughput_limit",
        "id",
        "kms_data_key_reuse_period_seconds",
        "name_prefix",
        "policy",
        "sqs_managed_sse_enabled",
        "tags_all",
        "url",
    }
    assert attrs(create)["visibility_timeout_seconds"] == (None, 45)
    assert attrs(create)["name"] == (None, "check-sqs-3")
    # Attributes null on both sides (kms_master_key_id) are no change at all.
    assert "kms_master_key_id" not in attrs(create)
    delete = summary.findings[2]
    assert attrs(delete)["visibility_timeout_seconds"] == (45, None)


def test_opentofu_drift_keeps_drift_and_pending_apart() -> None:
    summary = parse_fixture("opentofu-show-json-drift.json")

    kinds = {(f.kind, f.address) for f in summary.findings}
    assert ("drift", "test_instance.should_refresh") in kinds
    assert ("pending", "test_instance.should_refresh") in kinds
    assert summary.terraform_version is None
    assert summary.outputs == ()


def test_moved_resource_keeps_its_previous_address() -> None:
    summary = parse_fixture("opentofu-show-json-moved-drift.json")

    moved = [f for f in summary.findings if f.address == "test_instance.should_refresh_with_move"]
    assert [f.kind for f in moved] == ["drift", "pending"]
    assert {f.previous_address for f in moved} == {"test_instance.should_refresh"}
    untouched = next(f for f in summary.findings if f.address == "test_instance.no_refresh")
    assert untouched.previous_address is None


def test_requires_replace_flags_the_forcing_path() -> None:
    finding = only(parse_fixture("opentofu-show-json-requires-replace.json"))

    assert finding.action_reason == "replace_because_cannot_update"
    assert finding.replace_paths == ("ami",)
    forcing = {a.path: a.forces_replacement for a in finding.attributes}
    assert forcing == {"ami": True, "id": False}
    assert next(a for a in finding.attributes if a.path == "id").after_unknown


def test_sensitive_fixture_never_shows_the_secret() -> None:
    for expand in (False, True):
        summary = parse_fixture(
            "opentofu-show-json-sensitive-values.json", expand_create_delete=expand
        )

        assert "boop" not in everything_rendered(summary)
        (output,) = summary.outputs
        assert (output.name, output.actions, output.sensitive) == ("test", ("create",), True)
        assert (output.before, output.after) == (None, SENSITIVE)
    ami = next(a for a in only(summary).attributes if a.path == "ami")
    assert (ami.before, ami.after, ami.sensitive) == (None, SENSITIVE, True)


def test_modules_fixture_addresses_and_output() -> None:
    summary = parse_fixture("opentofu-show-json-modules.json")

    assert {f.resource_type for f in summary.findings} == {"test_instance"}
    (output,) = summary.outputs
    assert (output.name, output.actions, output.before, output.after) == (
        "test",
        ("create",),
        None,
        "baz",
    )


def test_basic_delete_fixture_output_and_reason() -> None:
    summary = parse_fixture("opentofu-show-json-basic-delete.json")

    delete = summary.findings[1]
    assert delete.action_reason == "delete_because_no_resource_config"
    assert [(o.name, o.after) for o in summary.outputs] == [("test", "bar")]


def test_multi_resource_update_reports_the_move_not_applied_yet() -> None:
    summary = parse_fixture("opentofu-show-json-multi-resource-update.json")

    move = summary.findings[0]
    assert (move.previous_address, move.change) == ("test_instance.test", "move")
    assert summary.noop_resources == 0
    assert summary.terraform_version == "0.13.0"
    assert summary.outputs == ()


# --------------------------------------------------------------------------- synthetic plans


@pytest.mark.parametrize("actions", [["delete", "create"], ["create", "delete"]])
def test_replace_in_both_orders(actions: list[str]) -> None:
    entry = resource(
        "aws_instance.web",
        actions,
        {"ami": "ami-1", "network": [{"subnet_id": "s-1"}], "id": "i-1"},
        {"ami": "ami-1", "network": [{"subnet_id": "s-2"}]},
        after_unknown={"id": True},
        replace_paths=[["network", 0, "subnet_id"]],
    )
    entry["action_reason"] = "replace_because_cannot_update"

    finding = only(parse(plan([entry])))

    assert finding.actions == tuple(actions)
    assert finding.change == "replace"
    assert finding.replace_paths == ("network[0].subnet_id",)
    by_path = {a.path: a for a in finding.attributes}
    assert by_path["network[0].subnet_id"].forces_replacement
    assert (by_path["network[0].subnet_id"].before, by_path["network[0].subnet_id"].after) == (
        "s-1",
        "s-2",
    )
    assert by_path["id"].after_unknown and not by_path["id"].forces_replacement


def test_both_replace_orders_have_the_same_fingerprint() -> None:
    def replace(actions: list[str]) -> str:
        entry = resource("aws_instance.web", actions, {"ami": "a"}, {"ami": "b"})
        return only(parse(plan([entry]))).fingerprint

    assert replace(["delete", "create"]) == replace(["create", "delete"])


def test_for_each_string_keys_and_glob_with_literal_brackets() -> None:
    entry = resource(
        'aws_instance.x["a.b"]',
        ["update"],
        {"ami": "a"},
        {"ami": "b"},
        resource_type="aws_instance",
    )
    rule = IgnoreRule(address='aws_instance.x["a.b"]', reason="migrating")

    finding = only(parse(plan([entry]), ignore_rules=[rule]))

    assert finding.address == 'aws_instance.x["a.b"]'
    assert finding.resource_type == "aws_instance"
    assert finding.ignored and finding.ignore_reason == "migrating"
    # fnmatch would read ["a.b"] as a character class; here brackets are literal.
    assert glob_match('aws_instance.x["*"]', 'aws_instance.x["a.b"]')
    assert not glob_match("aws_instance.x[a]", "aws_instance.xa")
    assert glob_match("module.app[?].*", "module.app[0].aws_instance.web")


def test_nested_list_and_map_paths() -> None:
    before = {
        "ingress": [{"cidr_blocks": ["10.0.0.0/8", "10.1.0.0/16"], "from_port": 80}],
        "tags": {"Env": "prod", "a.b": "x", "kubernetes.io/role": "node", "Gone": "y"},
        "settings": {"limits": {"cpu": 1}},
    }
    after = {
        "ingress": [
            {"cidr_blocks": ["10.0.0.0/8", "10.2.0.0/16"], "from_port": 80},
            {"cidr_blocks": [], "from_port": 443},
        ],
        "tags": {"Env": "dev", "a.b": "z", "kubernetes.io/role": "node", "New": "n"},
        "settings": {"limits": {"cpu": 2}},
    }

    finding = only(parse(plan([resource("aws_security_group.sg", ["update"], before, after)])))

    assert attrs(finding) == {
        "ingress[0].cidr_blocks[1]": ("10.1.0.0/16", "10.2.0.0/16"),
        "ingress[1].cidr_blocks": (None, []),
        "ingress[1].from_port": (None, 443),
        "settings.limits.cpu": (1, 2),
        "tags.Env": ("prod", "dev"),
        "tags.Gone": ("y", None),
        "tags.New": (None, "n"),
        'tags["a.b"]': ("x", "z"),
    }
    # An element that appears as a whole is not provider noise because one leaf is empty.
    by_path = {a.path: a for a in finding.attributes}
    assert by_path["ingress[1].cidr_blocks"].ignored
    assert not by_path["ingress[1].from_port"].ignored
    assert not finding.ignored


def test_path_notation() -> None:
    assert render_path(["tags", "Env"]) == "tags.Env"
    assert render_path(["ingress", 0, "cidr_blocks", 1]) == "ingress[0].cidr_blocks[1]"
    assert render_path(["metadata", "a.b"]) == 'metadata["a.b"]'
    assert render_path(["labels", "9lives"]) == 'labels["9lives"]'
    assert render_path(["labels", 'say "hi"']) == 'labels["say \\"hi\\""]'
    assert render_path(["tags", "cost-center"]) == "tags.cost-center"


def test_type_changes_and_json_booleans_are_real_changes() -> None:
    before = {"flag": True, "port": "30", "shape": {"a": 1}}
    after = {"flag": 1, "port": 30, "shape": ["a"]}

    finding = only(parse(plan([resource("x_thing.t", ["update"], before, after)])))

    assert attrs(finding) == {
        "flag": (True, 1),
        "port": ("30", 30),
        "shape": ({"a": 1}, ["a"]),
    }
    assert not any(a.ignored for a in finding.attributes)


def test_unknown_values_nested_and_whole_blocks() -> None:
    before = {"id": "i-1", "network": [{"ip": "10.0.0.1", "mac": "m"}], "block": {"x": 1}}
    after = {"network": [{"mac": "m"}]}
    unknown = {"id": True, "network": [{"ip": True}], "block": True, "arn": True}

    finding = only(
        parse(plan([resource("x_thing.t", ["update"], before, after, after_unknown=unknown)]))
    )

    by_path = {a.path: a for a in finding.attributes}
    assert set(by_path) == {"arn", "block", "id", "network[0].ip"}
    assert all(a.after_unknown and a.after is None for a in by_path.values())
    assert by_path["block"].before == {"x": 1}
    assert by_path["network[0].ip"].before == "10.0.0.1"
    assert by_path["arn"].before is None
    event = to_event_finding(finding, first_seen=NOW)
    assert all(a.after_unknown for a in event.attributes)


SECRET = "hunter2-TOPSECRET"


def test_sensitive_nested_values_never_appear_anywhere() -> None:
    before = {
        "config": {"password": SECRET + "-old", "user": "admin"},
        "secret_map": {SECRET + "-key": SECRET + "-value"},
        "keys": ["public", SECRET + "-list"],
        "unchanged_secret": SECRET + "-same",
    }
    after = {
        "config": {"password": SECRET + "-new", "user": "root"},
        "secret_map": {SECRET + "-key2": SECRET + "-value"},
        "keys": ["public", SECRET + "-list2"],
        "unchanged_secret": SECRET + "-same",
    }
    sensitive = {
        "config": {"password": True},
        "secret_map": True,
        "keys": [False, True],
        "unchanged_secret": True,
    }
    entry = resource(
        "aws_db_instance.db",
        ["update"],
        before,
        after,
        before_sensitive=sensitive,
        after_sensitive=sensitive,
    )
    drift = copy.deepcopy(entry)  # the same change, seen as drift too
    outputs = {
        "db_password": {
            "actions": ["update"],
            "before": SECRET + "-o1",
            "after": SECRET + "-o2",
            "after_unknown": False,
            "before_sensitive": True,
            "after_sensitive": True,
        },
        "conn": {
            "actions": ["update"],
            "before": {"host": "a", "password": SECRET + "-o3"},
            "after": {"host": "b", "password": SECRET + "-o4"},
            "after_unknown": False,
            "before_sensitive": {"password": True},
            "after_sensitive": {"password": True},
        },
    }

    summary = parse(plan([entry], drift=[drift], outputs=outputs))

    assert SECRET not in everything_rendered(summary)
    for finding in summary.findings:
        changed = {a.path: a for a in finding.attributes}
        assert set(changed) == {"config.password", "config.user", "keys[1]", "secret_map"}
        assert (changed["config.password"].before, changed["config.password"].after) == (
            SENSITIVE,
            SENSITIVE,
        )
        assert changed["config.password"].sensitive
        assert (changed["config.user"].before, changed["config.user"].after) == ("admin", "root")
        # A sensitive map is masked whole: its keys could be secret too.
        assert changed["secret_map"].after == SENSITIVE
    outputs_by_name = {o.name: o for o in summary.outputs}
    assert outputs_by_name["db_password"].after == SENSITIVE
    assert outputs_by_name["conn"].after == {"host": "b", "password": SENSITIVE}
    assert not outputs_by_name["conn"].sensitive


def test_sensitivity_tree_of_unknown_shape_masks_everything() -> None:
    entry = resource(
        "x_thing.t",
        ["update"],
        {"token": SECRET + "1"},
        {"token": SECRET + "2"},
        before_sensitive="yes",
        after_sensitive={"token": 1},
    )

    summary = parse(plan([entry]))

    assert attrs(only(summary)) == {"token": (SENSITIVE, SENSITIVE)}
    assert SECRET not in everything_rendered(summary)


def test_output_declared_sensitive_without_change_markers_is_masked() -> None:
    # Plan format 0.1 (Terraform 0.12-0.14) has no *_sensitive on output changes.
    outputs = {"token": {"actions": ["create"], "before": None, "after": SECRET}}
    document = plan(
        [],
        outputs=outputs,
        format_version="0.1",
        planned_values={"outputs": {"token": {"sensitive": True, "value": SECRET}}},
    )

    summary = parse(document)

    assert summary.outputs[0].after == SENSITIVE
    assert SECRET not in summary.model_dump_json()


def test_unknown_output() -> None:
    outputs = {
        "arn": {"actions": ["create"], "before": None, "after": None, "after_unknown": True},
        "same": {"actions": ["no-op"], "before": "a", "after": "a", "after_unknown": False},
    }

    (output,) = parse(plan([], outputs=outputs)).outputs

    assert (output.name, output.after, output.after_unknown) == ("arn", None, True)


def test_data_sources_reads_and_noops_are_not_findings() -> None:
    changes = [
        resource(
            "data.aws_ami.ubuntu", ["read"], None, {"id": "x"}, mode="data", resource_type="aws_ami"
        ),
        resource(
            "data.aws_ami.other",
            ["update"],
            {"id": "a"},
            {"id": "b"},
            mode="data",
            resource_type="aws_ami",
        ),
        resource("aws_instance.a", ["no-op"], {"ami": "x"}, {"ami": "x"}),
        resource("aws_instance.b", ["no-op"], {"ami": "x"}, {"ami": "x"}),
        resource("aws_instance.c", ["read"], {"ami": "x"}, {"ami": "x"}),
    ]

    summary = parse(plan(changes))

    assert summary.findings == ()
    assert summary.noop_resources == 2
    assert not summary.drifted


def test_drift_of_a_resource_deleted_outside_terraform() -> None:
    drift = resource("aws_instance.gone", ["delete"], {"ami": "x"}, None)
    pending = resource(
        "aws_instance.gone", ["create"], None, {"ami": "x"}, after_unknown={"id": True}
    )

    summary = parse(plan([pending], drift=[drift]))

    # Re-creating it as the code says is the revert of the drift, not code to apply.
    (finding,) = summary.findings
    assert (finding.kind, finding.change, finding.attributes) == ("drift", "delete", ())
    assert finding.revert is not None
    assert finding.revert.actions == ("create",)


def test_deposed_objects_are_separate_findings() -> None:
    current = resource("aws_instance.web", ["update"], {"ami": "a"}, {"ami": "b"})
    deposed = resource(
        "aws_instance.web", ["delete"], {"ami": "old"}, None, top={"deposed": "00a1b2c3"}
    )

    summary = parse(plan([current, deposed]))

    assert [f.deposed for f in summary.findings] == [None, "00a1b2c3"]
    assert len({f.fingerprint for f in summary.findings}) == 2


# --------------------------------------------------------------------------- ignore rules


def sg_update() -> dict[str, Any]:
    return resource(
        "module.edge.aws_security_group.sg[0]",
        ["update"],
        {"description": "a", "tags": {"Env": "prod", "Owner": "x"}},
        {"description": "b", "tags": {"Env": "dev", "Owner": "x"}},
        resource_type="aws_security_group",
    )


def test_whole_resource_rule() -> None:
    rule = IgnoreRule(address="module.edge.*", reason="owned by the edge team")

    finding = only(parse(plan([sg_update()]), ignore_rules=[rule]))

    assert finding.ignored and finding.ignore_reason == "owned by the edge team"
    assert not any(a.ignored for a in finding.attributes)


def test_partial_attribute_rule_flags_only_matching_attributes() -> None:
    rule = IgnoreRule(address="*aws_security_group.*", attribute="tags", reason="tags by policy")

    summary = parse(plan([sg_update()]), ignore_rules=[rule])

    finding = only(summary)
    assert not finding.ignored
    flags = {a.path: (a.ignored, a.ignore_reason) for a in finding.attributes}
    assert flags == {"description": (False, None), "tags.Env": (True, "tags by policy")}
    assert summary.drifted
    # The event carries every leaf with its own flag, so Slack can set noise apart.
    event = to_event_finding(finding, first_seen=NOW)
    assert [(a.path, a.ignored, a.ignore_reason) for a in event.attributes] == [
        ("description", False, None),
        ("tags.Env", True, "tags by policy"),
    ]
    cli = to_cli_json([StateResult(name="prod", path="p", summary=summary)])
    assert [a["path"] for a in cli["states"][0]["findings"][0]["attributes"]] == [
        "description",
        "tags.Env",
    ]


def test_finding_is_ignored_when_every_attribute_is() -> None:
    rules = [
        IgnoreRule(address="*", attribute="tags.*", reason="tags by policy"),
        IgnoreRule(address="*", attribute="descr?ption", reason="cosmetic"),
    ]

    summary = parse(plan([sg_update()]), ignore_rules=rules)

    finding = only(summary)
    assert finding.ignored
    assert finding.ignore_reason == "cosmetic; tags by policy"
    assert not summary.drifted
    event = to_event_finding(finding, first_seen=NOW)
    assert event.ignored and len(event.attributes) == 2


def test_attribute_glob_does_not_spill_into_sibling_attributes() -> None:
    entry = resource("x_thing.t", ["update"], {"tags_all": {"a": "1"}}, {"tags_all": {"a": "2"}})
    rule = IgnoreRule(address="*", attribute="tags.*", reason="r")

    assert not only(parse(plan([entry]), ignore_rules=[rule])).ignored


def test_attribute_rule_never_ignores_a_compact_create() -> None:
    entry = resource("aws_instance.new", ["create"], None, {"ami": "x"})
    rule = IgnoreRule(address="*", attribute="*", reason="everything")

    finding = only(parse(plan([entry]), ignore_rules=[rule]))

    assert finding.attributes == () and not finding.ignored


def test_expired_rules_do_not_apply_and_are_reported() -> None:
    expired = IgnoreRule(
        address="module.edge.*", reason="until the migration", expires=date(2025, 5, 31)
    )
    other_state = IgnoreRule(state="staging", address="*", reason="x", expires=date(2020, 1, 1))

    summary = parse(plan([sg_update()]), ignore_rules=[expired, other_state])

    assert not only(summary).ignored
    assert summary.expired_rules == (expired,)


def test_rule_applies_through_its_expiry_day() -> None:
    rule = IgnoreRule(address="*", reason="today is the last day", expires=NOW.date())

    summary = parse(plan([sg_update()]), ignore_rules=[rule])

    assert only(summary).ignored
    assert summary.expired_rules == ()
    later = parse(plan([sg_update()]), ignore_rules=[rule], now=NOW + timedelta(days=1))
    assert not only(later).ignored


def test_state_glob_limits_a_rule() -> None:
    rule = IgnoreRule(state="staging-*", address="*", reason="staging is a playground")

    assert only(parse(plan([sg_update()]), ignore_rules=[rule], state="staging-eu")).ignored
    assert not only(parse(plan([sg_update()]), ignore_rules=[rule], state="prod")).ignored


def test_ignore_rule_validates_like_toilkit_yaml() -> None:
    rule = IgnoreRule.model_validate(
        {"address": "aws_instance.*", "reason": "r", "expires": "2025-12-31"}
    )
    assert (rule.state, rule.attribute, rule.expires) == ("*", None, date(2025, 12, 31))
    with pytest.raises(ValueError, match="reason"):
        IgnoreRule.model_validate({"address": "x", "reason": ""})
    with pytest.raises(ValueError, match="adress"):
        IgnoreRule.model_validate({"adress": "x", "reason": "typo"})


# --------------------------------------------------------------------------- provider noise


@pytest.mark.parametrize(
    ("before", "after", "reason"),
    [
        ({"tags": None}, {"tags": {}}, NULL_VS_EMPTY),
        ({"tags_all": {}}, {"tags_all": None}, NULL_VS_EMPTY),
        ({"ingress": []}, {"ingress": None}, NULL_VS_EMPTY),
        (
            {"policy": '{"Version": "2012-10-17", "Statement": []}'},
            {"policy": '{"Statement":[],"Version":"2012-10-17"}'},
            SAME_JSON_DOCUMENT,
        ),
    ],
)
def test_provider_noise_is_reported_as_ignored(
    before: dict[str, Any], after: dict[str, Any], reason: str
) -> None:
    finding = only(parse(plan([], drift=[resource("aws_sqs_queue.q", ["update"], before, after)])))

    assert finding.ignored and finding.ignore_reason == reason
    assert reason.startswith("provider noise: ")
    assert len(finding.attributes) == 1 and finding.attributes[0].ignored


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"policy": '{"Effect": "Allow"}'}, {"policy": '{"Effect": "Deny"}'}),
        ({"timeout": "30"}, {"timeout": 30}),
        ({"name": None}, {"name": ""}),
        ({"tags": None}, {"tags": {"Env": "prod"}}),
    ],
)
def test_real_changes_are_not_noise(before: dict[str, Any], after: dict[str, Any]) -> None:
    finding = only(parse(plan([resource("aws_sqs_queue.q", ["update"], before, after)])))

    assert not finding.ignored
    assert not any(a.ignored for a in finding.attributes)


def test_noise_list_is_documented() -> None:
    assert [name for name, _why in PROVIDER_NOISE] == [NULL_VS_EMPTY, SAME_JSON_DOCUMENT]
    assert all(len(why) > 40 for _name, why in PROVIDER_NOISE)


def test_noise_next_to_a_real_change_keeps_the_fingerprint() -> None:
    real = resource("aws_sqs_queue.q", ["update"], {"delay": 1}, {"delay": 2})
    noisy = resource(
        "aws_sqs_queue.q", ["update"], {"delay": 1, "tags": None}, {"delay": 2, "tags": {}}
    )

    plain = only(parse(plan(drift=[real])))
    with_noise = only(parse(plan(drift=[noisy])))

    assert not with_noise.ignored
    assert [a.ignored for a in with_noise.attributes] == [False, True]
    assert plain.fingerprint == with_noise.fingerprint


# --------------------------------------------------------------------------- fingerprints


def drift_fingerprint(before: dict[str, Any], after: dict[str, Any], **kwargs: Any) -> str:
    entry = resource("aws_instance.web", ["update"], before, after)
    return only(parse(plan(drift=[entry]), **kwargs)).fingerprint


def test_same_drift_with_other_values_keeps_its_fingerprint() -> None:
    first = drift_fingerprint({"instance_type": "t3.micro"}, {"instance_type": "t3.large"})
    later = drift_fingerprint({"instance_type": "t3.micro"}, {"instance_type": "m5.xlarge"})
    tomorrow = drift_fingerprint(
        {"instance_type": "t3.micro"}, {"instance_type": "t3.large"}, now=NOW + timedelta(days=1)
    )

    assert first == later == tomorrow
    assert len(first) == 16 and int(first, 16) >= 0


def test_fingerprint_changes_with_paths_state_and_kind() -> None:
    base = drift_fingerprint({"instance_type": "a"}, {"instance_type": "b"})
    other_path = drift_fingerprint({"ami": "a"}, {"ami": "b"})
    more_paths = drift_fingerprint(
        {"instance_type": "a", "ami": "a"}, {"instance_type": "b", "ami": "b"}
    )
    other_state = drift_fingerprint({"instance_type": "a"}, {"instance_type": "b"}, state="staging")
    pending = only(
        parse(
            plan(
                [
                    resource(
                        "aws_instance.web",
                        ["update"],
                        {"instance_type": "a"},
                        {"instance_type": "b"},
                    )
                ]
            )
        )
    ).fingerprint

    assert len({base, other_path, more_paths, other_state, pending}) == 5


def test_fingerprint_ignores_path_order_and_keeps_parts_apart() -> None:
    common: dict[str, Any] = {
        "state": "s",
        "address": "a",
        "kind": "drift",
        "change": "update",
        "deposed": None,
    }
    assert fingerprint(**common, paths=["x", "y"]) == fingerprint(**common, paths=["y", "x"])
    assert fingerprint(**common, paths=["x.y"]) != fingerprint(**common, paths=["x", "y"])
    joined = {**common, "state": "s|a", "address": ""}
    assert fingerprint(**joined, paths=[]) != fingerprint(**common, paths=[])


# --------------------------------------------------------------------------- broken input

STATE_JSON = {"format_version": "1.0", "terraform_version": "1.9.8", "values": {"root_module": {}}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\xfe", "plan is empty"),
        (b"\xff\xfe\x00\xd8", "not UTF-16"),
        (b"\x80{}", "not UTF-8"),
        ("plan: yes", "not valid JSON"),
        ("", "plan is empty"),
        ("[]", "JSON list"),
        ("{}", "not a Terraform plan"),
        (json.dumps(STATE_JSON), "state JSON"),
        (
            '{"format_version": "2.0", "resource_changes": []}',
            "unsupported plan format_version '2.0'",
        ),
        ('{"format_version": "one", "resource_changes": []}', "unsupported plan format_version"),
        ('{"format_version": 1, "resource_changes": []}', "format_version is missing"),
        ('{"resource_changes": []}', "format_version is missing"),
        ('{"format_version": "1.0", "resource_changes": "none"}', "resource_changes"),
        (
            '{"format_version": "1.0", "resource_changes": [{"address": "a.b"}]}',
            "resource_changes.0",
        ),
        ('{"format_version": "1.0", "resource_changes": [null]}', "resource_changes.0"),
        (
            '{"format_version": "1.0", "output_changes": {"o": {"actions": "create"}}}',
            "output_changes.o.actions",
        ),
        ('{"format_version": "1.0", "planned_values": {}, "errored": "no"}', "errored"),
        ('{"format_version": "1.0", "resource_changes": [], "x": NaN}', "NaN"),
        ("[" * 100_000 + "]" * 100_000, "nests too deeply"),
    ],
)
def test_malformed_input_raises_plan_parse_error(body: str | bytes, message: str) -> None:
    with pytest.raises(PlanParseError) as caught:
        parse(body)

    assert message in str(caught.value)
    assert isinstance(caught.value, PermanentError)


@pytest.mark.parametrize(
    "change",
    [
        {"actions": ["update"], "before": SECRET, "after": {}},
        {"actions": [], "before": {"a": SECRET}, "after": {"a": 1}},
        {
            "actions": ["update"],
            "before": {"a": 1},
            "after": {"a": 2},
            "replace_paths": [[SECRET, 1.5]],
        },
        {"actions": [SECRET, 3], "before": None, "after": None},
    ],
)
def test_malformed_entries_are_named_without_their_values(change: dict[str, Any]) -> None:
    body = {
        "format_version": "1.0",
        "resource_changes": [{"address": "a.b", "mode": "managed", "type": "a", "change": change}],
    }

    with pytest.raises(PlanParseError, match=r"resource_changes\.0\.") as caught:
        parse(body)

    assert SECRET not in str(caught.value)


def test_wrong_argument_type_is_a_parse_error() -> None:
    with pytest.raises(PlanParseError, match="text or a mapping"):
        parse(42)  # type: ignore[arg-type]


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_plan(plan([]), state="prod", now=datetime(2025, 1, 1))


def test_an_empty_plan_is_clean() -> None:
    document = {"format_version": "1.2", "planned_values": {"root_module": {}}, "applyable": False}

    summary = parse(document)

    assert (summary.findings, summary.outputs, summary.noop_resources) == ((), (), 0)


# --------------------------------------------------------------------------- CLI output and events


def test_cli_json_contract_and_statuses() -> None:
    drifted = parse(plan([sg_update()]))
    only_noise = parse(
        plan([], drift=[resource("aws_sqs_queue.q", ["update"], {"tags": None}, {"tags": {}})])
    )
    errored = parse(plan([], errored=True))
    results = [
        StateResult(name="prod", path="envs/prod", summary=drifted),
        StateResult(name="noise", path="envs/noise", summary=only_noise),
        StateResult(name="broken", path="envs/broken", error="terraform init failed: exit 1"),
        StateResult(name="errored", path="envs/errored", summary=errored),
    ]

    document = json.loads(json.dumps(to_cli_json(results)))

    states = document["states"]
    assert [(s["name"], s["path"], s["status"]) for s in states] == [
        ("prod", "envs/prod", "drifted"),
        ("noise", "envs/noise", "clean"),
        ("broken", "envs/broken", "failed"),
        ("errored", "envs/errored", "failed"),
    ]
    assert [s["error"] for s in states[:3]] == [None, None, "terraform init failed: exit 1"]
    assert "incomplete" in states[3]["error"]
    finding = states[0]["findings"][0]
    assert {"address", "kind", "actions", "attributes", "ignored"} <= set(finding)
    assert (finding["address"], finding["kind"], finding["actions"], finding["ignored"]) == (
        "module.edge.aws_security_group.sg[0]",
        "pending",
        ["update"],
        False,
    )
    assert [(a["path"], a["before"], a["after"]) for a in finding["attributes"]] == [
        ("description", "a", "b"),
        ("tags.Env", "prod", "dev"),
    ]
    assert states[1]["findings"][0]["ignored"] is True
    assert states[2]["findings"] == []


def test_state_result_needs_a_summary_or_an_error() -> None:
    with pytest.raises(ValueError, match="summary or an error"):
        StateResult(name="x", path="y")


def test_findings_table_shows_kinds_values_and_escapes_markup() -> None:
    entry = resource(
        "aws_instance.web",
        ["update"],
        {"user_data": "[bold]boot[/bold]", "id": "i-1", "pw": "p1"},
        {"user_data": "[red]x[/red]", "pw": "p2"},
        after_unknown={"id": True},
        before_sensitive={"pw": True},
        after_sensitive={"pw": True},
    )
    summary = parse(
        plan([entry], drift=[resource("aws_sqs_queue.q", ["update"], {"tags": None}, {"tags": {}})])
    )
    results = [
        StateResult(name="prod", path="envs/prod", summary=summary),
        StateResult(name="broken", path="envs/broken", error="plan timed out"),
    ]
    console = Console(record=True, width=300, color_system=None)

    console.print(findings_table(results))
    text = console.export_text()

    assert '"[bold]boot[/bold]" -> "[red]x[/red]"' in text
    assert f'id: "i-1" -> {KNOWN_AFTER_APPLY}' in text
    assert f"pw: {SENSITIVE} -> {SENSITIVE}" in text
    assert "pending" in text and "drift" in text
    assert "plan timed out" in text and "failed" in text
    assert f"ignored: {NULL_VS_EMPTY}" in text

    console = Console(record=True, width=300, color_system=None)
    console.print(findings_table(results, show_ignored=False))
    assert "aws_sqs_queue.q" not in console.export_text()


def test_event_finding_round_trips_through_the_shared_model() -> None:
    finding = parse_fixture("opentofu-show-json-requires-replace.json").findings[0]

    event = to_event_finding(finding, first_seen=NOW, status="open")

    assert DriftFinding.model_validate_json(event.model_dump_json()) == event
    assert (event.fingerprint, event.address, event.kind, event.actions) == (
        finding.fingerprint,
        "test_instance.test",
        "pending",
        ("delete", "create"),
    )
    assert (event.action_reason, event.status, event.first_seen) == (
        "replace_because_cannot_update",
        "open",
        NOW,
    )
    assert [(a.path, a.before, a.after, a.after_unknown) for a in event.attributes] == [
        ("ami", "bar", "force-replace", False),
        ("id", "placeholder", None, True),
    ]


# --------------------------------------------------------------------------- properties

ACTION_LISTS = [
    ["update"],
    ["create"],
    ["delete"],
    ["delete", "create"],
    ["create", "delete"],
    ["no-op"],
    ["read"],
    ["forget"],
]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=15,
)
objects = st.dictionaries(st.sampled_from(["a", "b", "tags", "x.y"]), json_values, max_size=4)
trees = st.recursive(
    st.booleans() | st.none(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "tags"]), inner, max_size=3)
    ),
    max_leaves=8,
)
raw_changes = st.fixed_dictionaries(
    {"actions": st.sampled_from(ACTION_LISTS) | json_values},
    optional={
        "before": objects | json_values,
        "after": objects | json_values,
        "after_unknown": trees | json_values,
        "before_sensitive": trees | json_values,
        "after_sensitive": trees | json_values,
        "replace_paths": st.lists(
            st.lists(st.text(max_size=3) | st.integers(0, 3), max_size=3), max_size=2
        )
        | json_values,
    },
)
raw_resources = st.fixed_dictionaries(
    {
        "address": st.sampled_from(["a_b.c", 'a_b.c["k.y"]', "module.m[0].a_b.c"]) | json_values,
        "mode": st.sampled_from(["managed", "data"]) | json_values,
        "type": st.just("a_b") | json_values,
        "change": raw_changes | json_values,
    },
    optional={"action_reason": st.text(max_size=5) | json_values, "previous_address": json_values},
)
plan_like = st.fixed_dictionaries(
    {"format_version": st.sampled_from(["1.0", "1.2", "0.1", "2.0", "x"]) | json_values},
    optional={
        "resource_changes": st.lists(raw_resources, max_size=3) | json_values,
        "resource_drift": st.lists(raw_resources, max_size=2) | json_values,
        "output_changes": st.dictionaries(
            st.text(max_size=4), raw_changes | json_values, max_size=2
        )
        | json_values,
        "planned_values": json_values,
        "values": json_values,
        "errored": st.booleans() | json_values,
        "terraform_version": st.text(max_size=5) | json_values,
    },
)
any_body = json_values | plan_like | st.binary(max_size=40) | st.text(max_size=40)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=any_body, as_text=st.booleans(), expand=st.booleans())
def test_parser_only_ever_raises_plan_parse_error(body: Any, as_text: bool, expand: bool) -> None:
    if as_text and not isinstance(body, str | bytes):
        body = json.dumps(body)
    try:
        summary = parse_plan(body, state="s", now=NOW, expand_create_delete=expand)
    except PlanParseError:
        return
    # Whatever parsed also renders and serialises.
    everything_rendered(summary)


def secret_leaf(number: int) -> str:
    return f"{SECRET}{number}"


plain_scalars = (
    st.none() | st.booleans() | st.integers(-3, 3) | st.text(alphabet="abc xyz{}[]01", max_size=5)
)
leaf_values = plain_scalars | st.integers(0, 99).map(secret_leaf)
secret_values = st.recursive(
    leaf_values,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet="abkxy.", min_size=1, max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)
secret_objects = st.dictionaries(
    st.sampled_from(["a", "b", "c", "tags"]), secret_values, max_size=4
)


def contains_secret(value: Any) -> bool:
    return SECRET in json.dumps(value)


def sensitivity_of(value: Any, data: st.DataObject) -> Any:
    """A sensitivity tree that covers every secret in ``value``, at the leaf or above."""
    if not contains_secret(value):
        return False
    if isinstance(value, str) or data.draw(st.booleans()):
        return True
    if isinstance(value, dict):
        tree = {key: sensitivity_of(item, data) for key, item in value.items()}
        return {key: marker for key, marker in tree.items() if marker is not False}
    return [sensitivity_of(item, data) for item in value]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=secret_objects,
    after=secret_objects,
    actions=st.sampled_from(ACTION_LISTS),
    output_before=secret_values,
    output_after=secret_values,
    expand=st.booleans(),
    ignore_tags=st.booleans(),
    data=st.data(),
)
def test_values_marked_sensitive_never_leave_the_parser(
    before: dict[str, Any],
    after: dict[str, Any],
    actions: list[str],
    output_before: Any,
    output_after: Any,
    expand: bool,
    ignore_tags: bool,
    data: st.DataObject,
) -> None:
    def entry() -> dict[str, Any]:
        return resource(
            "aws_instance.web",
            actions,
            before,
            after,
            before_sensitive=sensitivity_of(before, data),
            after_sensitive=sensitivity_of(after, data),
            after_unknown=data.draw(st.sampled_from([{}, {"a": True}, {"b": [True]}])),
        )

    outputs = {
        "out": {
            "actions": ["update"],
            "before": output_before,
            "after": output_after,
            "after_unknown": False,
            "before_sensitive": sensitivity_of(output_before, data),
            "after_sensitive": sensitivity_of(output_after, data),
        }
    }
    rules = [IgnoreRule(address="*", attribute="tags", reason="r")] if ignore_tags else []

    summary = parse(
        plan([entry()], drift=[entry()], outputs=outputs),
        expand_create_delete=expand,
        ignore_rules=rules,
    )

    assert SECRET not in everything_rendered(summary)
