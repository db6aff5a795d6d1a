"""The Revert button over real HTTP: the gateway requests the catalog's revert command.

The real gateway against moto (the state table's open drift, SNS/SQS) and the Slack
stand-in. What the batch service and Terraform then do is shown end to end in
``tests/e2e/test_up.py`` (preview, approval, apply, the thread told).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.aws import AwsClients
from shared.catalog import parse_catalog
from shared.errors import ConfigError
from shared.topology import BootstrapReport, Names
from tests.gateway_harness import ephemeral_texts, events_on
from tests.integration import test_drift_actions as buttons
from tests.integration.test_drift_actions import ALICE, CHANNEL, Slack

# The gateway and Slack's side from the drift buttons' tests, over this module's catalog.
service = buttons.service
slack = buttons.slack

STATE = "network-prod"
CATALOG = """
commands:
  - name: drift-revert
    description: Put a state back.
    argv: [toilkit, drift, apply, --state, "{state}", --targets, "{targets}"]
    parameters:
      - {name: state, type: text}
      - {name: targets, type: text, max_length: 2000}
    environments:
      staging: {allowed: {users: [U0ALICE001]}}
      production:
        allowed: {users: [U0ALICE001]}
        approval: {approvers: {users: [U0BOB00002]}}
drift:
  revert:
    command: drift-revert
    environments: {"*-prod": production, "*": staging}
"""


async def open_finding(
    aws: AwsClients, names: Names, fingerprint: str, address: str, kind: str
) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    item = {
        "pk": f"drift#{STATE}",
        "sk": f"finding#{fingerprint}",
        "fingerprint": fingerprint,
        "address": address,
        "kind": kind,
        "first_seen": stamp,
        "last_seen": stamp,
    }
    await aws.dynamodb.put_item(
        TableName=names.state_table, Item={k: {"S": v} for k, v in item.items()}
    )


async def test_revert_requests_the_command_for_the_reports_open_drift_in_the_states_environment(
    slack: Slack, aws: AwsClients, names: Names, topology: BootstrapReport
) -> None:
    await open_finding(aws, names, "fp1", 'aws_security_group.web["a"]', "drift")
    await open_finding(aws, names, "fp2", "aws_s3_bucket.logs", "drift")
    await open_finding(aws, names, "fp3", "aws_iam_role.ci", "pending")  # code, not drift
    await open_finding(aws, names, "fp9", "aws_instance.other", "drift")  # another report
    value = json.dumps({"state": STATE, "fingerprints": ["fp1", "fp2", "fp3", "gone"]})

    await slack.press("drift_revert", value, ALICE)

    [event] = await events_on(aws, topology, "batch")
    assert (event.type, event.command, event.environment) == (
        "BatchRequested",
        "drift-revert",
        "production",
    )
    assert {p.name: p.value for p in event.parameters} == {
        "state": STATE,
        "targets": 'aws_s3_bucket.logs aws_security_group.web["a"]',
    }
    assert event.reverts is not None
    assert (event.reverts.state, event.reverts.fingerprints) == (
        STATE,
        ("fp1", "fp2", "fp3", "gone"),
    )
    assert event.reason.startswith(f"Revert drift of {STATE}: aws_s3_bucket.logs")
    [said] = ephemeral_texts(slack.standin, CHANNEL, ALICE.id)
    assert "Requested *drift-revert* in *production*" in said and "waits for an approval" in said


async def test_a_report_whose_drift_is_no_longer_open_requests_nothing(
    slack: Slack, aws: AwsClients, names: Names, topology: BootstrapReport
) -> None:
    await open_finding(aws, names, "fp3", "aws_iam_role.ci", "pending")

    await slack.press(
        "drift_revert", json.dumps({"state": STATE, "fingerprints": ["fp1", "fp3"]}), ALICE
    )

    assert await events_on(aws, topology, "batch") == []
    [said] = ephemeral_texts(slack.standin, CHANNEL, ALICE.id)
    assert "Nothing to revert in `network-prod`" in said


@pytest.mark.parametrize(
    ("drift_section", "message"),
    [
        ("drift:\n  revert: {command: nope, environments: {'*': staging}}", "no command 'nope'"),
        (
            "drift:\n  revert: {command: drift-revert, environments: {'*': qa}}",
            "drift-revert has no environment qa",
        ),
    ],
)
def test_a_revert_policy_that_cannot_work_stops_the_catalog(
    drift_section: str, message: str
) -> None:
    import yaml  # noqa: PLC0415

    text = CATALOG[: CATALOG.index("drift:")] + drift_section
    with pytest.raises(ConfigError, match=message):
        parse_catalog(yaml.safe_load(text))


def test_a_revert_command_must_take_the_state_and_the_targets() -> None:
    import yaml  # noqa: PLC0415

    text = CATALOG.replace('--targets, "{targets}"', "").replace(
        "      - {name: targets, type: text, max_length: 2000}\n", ""
    )
    with pytest.raises(
        ConfigError, match=r"must declare the parameters state, targets \(missing: targets\)"
    ):
        parse_catalog(yaml.safe_load(text))
    policy = parse_catalog(yaml.safe_load(CATALOG)).drift.revert
    assert policy is not None
    assert (policy.environment_for("network-prod"), policy.environment_for("sandbox")) == (
        "production",
        "staging",
    )
