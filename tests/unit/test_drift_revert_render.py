"""How Slack shows a drift's revert, set elements, imports and a role that was refused."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.notifier.blocks.drift import render_drift
from services.notifier.blocks.scans import render_scan_failed
from services.notifier.views import drift_view_of
from shared.events import AttributeChange, DriftFinding, DriftScanFailed, Revert
from tests import notifier_samples as samples


def texts_of(message: Any) -> str:
    """Every text of a message's blocks (sections, fields, context), one per line."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list | tuple):
            for item in node:
                walk(item)

    walk(list(message.blocks))
    return "\n".join(found)


def finding(address: str, kind: str, **fields: object) -> DriftFinding:
    return DriftFinding.model_validate(
        {
            "fingerprint": f"fp-{address}-{kind}",
            "address": address,
            "resource_type": address.split(".", maxsplit=1)[0],
            "kind": kind,
            "actions": ("update",),
            "first_seen": samples.NOW - timedelta(hours=2),
            **fields,
        }
    )


def test_the_revert_is_on_the_drift_line_and_the_resource_is_counted_once() -> None:
    bucket = finding(
        "aws_s3_bucket.logs",
        "drift",
        revert=Revert(actions=("update",)),
        attributes=(
            AttributeChange(path="tags.env", before="prod", after="staging", reverted=True),
            AttributeChange(
                path="lifecycle_rule", after={"prefix": "logs/"}, set_change="added", reverted=True
            ),
        ),
    )
    code = finding(
        "aws_s3_bucket.logs",
        "pending",
        attributes=(AttributeChange(path="tags.team", before="sre", after="platform"),),
    )
    queue = finding(
        "aws_sqs_queue.jobs",
        "drift",
        actions=("delete",),
        revert=Revert(actions=("create",)),
    )
    imported = finding("aws_iam_role.ci", "pending", actions=("no-op",), import_id="ci-role")
    event = samples.drift_detected(findings=(bucket, code, queue, imported))

    text = texts_of(render_drift(drift_view_of(event)))

    assert 'tags.env: "prod" → "staging" · apply puts back "prod"' in text
    assert 'lifecycle_rule: + {"prefix":"logs/"} · apply removes it' in text
    assert "*Deleted outside Terraform* · apply creates it again" in text
    assert "*Will be imported* (id `ci-role`)" in text
    assert "*3* resources in `prod-network` differ from the code" in text
    assert ":red_circle: *2* changed outside Terraform" in text
    assert ":large_yellow_circle: *2* not applied yet" in text


def test_a_refused_role_is_named_as_such() -> None:
    event = DriftScanFailed(
        correlation_id="scan-1",
        source="detector",
        state=samples.state_ref("billing"),
        phase="credentials",
        reason="could not assume arn:aws:iam::1:role/x: AccessDenied",
    )

    text = texts_of(render_scan_failed(event))

    assert "*Failed at*\ncredentials" in text
    assert "AccessDenied" in text
