"""Every IAM action infra/terraform names is one IAM knows.

IAM accepts a policy with an action that does not exist and simply never matches it, so a
misspelt or invented action (``sqs:DeleteMessageBatch``: the batch call is authorized by
``sqs:DeleteMessage``) fails only when the code is refused at run time. parliament carries
AWS's list of every action and is asked about all of them at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hcl2

from tests.infra.tools import TERRAFORM, TOOLS_BIN, require, run

#: Not an action: parliament must call it unknown, or it is not checking anything.
SENTINEL = "sqs:DeleteMessageBatch"


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = list(document.get("statement", []))
    for dynamic in document.get("dynamic", []):
        for label, generator in dynamic.items():
            if _unquote(label) == "statement":
                statements += generator.get("content", [])
    return statements


def named_actions(path: Path) -> dict[str, str]:
    """``{action: where}`` for every IAM action the Terraform in ``path`` names."""
    parsed = hcl2.loads(path.read_text())
    actions: dict[str, str] = {}
    for block in parsed.get("data", []):
        for name, document in block.get('"aws_iam_policy_document"', {}).items():
            for statement in _statements(document):
                for action in statement.get("actions", []) + statement.get("not_actions", []):
                    actions[_unquote(action)] = f"{path.name}: {_unquote(name)}"
    for block in parsed.get("resource", []):
        for name, permission in block.get('"aws_lambda_permission"', {}).items():
            actions[_unquote(permission["action"])] = f"{path.name}: {_unquote(name)}"
    return actions


def test_every_iam_action_in_the_terraform_exists() -> None:
    parliament = require(TOOLS_BIN / "parliament")
    actions: dict[str, str] = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        actions.update(named_actions(path))
    assert len(actions) > 30
    computed = [a for a in actions if "${" in a]
    assert not computed, f"actions must be literal to be checked: {computed}"
    assert SENTINEL not in actions, f"{SENTINEL} is not an IAM action ({actions.get(SENTINEL)})"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": [*sorted(actions), SENTINEL], "Resource": "*"},
        ],
    }
    # parliament reads the policy from stdin when stdin is not a terminal.
    result = run([parliament, "--json"], stdin=json.dumps(policy, indent=1))
    findings = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    unknown = sorted(
        f["location"]["string"]
        for f in findings
        if f["issue"] in ("UNKNOWN_ACTION", "UNKNOWN_PREFIX")
    )
    assert SENTINEL in unknown, f"parliament did not check the actions: {result.stderr}"
    unknown.remove(SENTINEL)
    assert not unknown, "not IAM actions:\n" + "\n".join(f"{a} ({actions[a]})" for a in unknown)
