"""checkov finds nothing in infra/terraform that was not accepted, inline and with a reason.

An accepted finding is skipped in the .tf next to what it is about, as
``#checkov:skip=CKV_...:why``, so the reason is read where the resource is changed.
"""

from __future__ import annotations

import json

from tests.infra.tools import TERRAFORM, TOOLS_BIN, require, run

#: What checkov records for a ``#checkov:skip=CKV_...`` without ``:reason``.
NO_REASON = "No comment provided"

#: Checks that must have passed: no role trusts everyone or grants admin, no statement
#: allows "*" actions or writes without constraints.
IAM_CHECKS = (
    ("CKV_AWS_60", "aws_iam_role.service"),
    ("CKV_AWS_61", "aws_iam_role.service"),
    ("CKV_AWS_274", "aws_iam_role.service"),
    ("CKV_AWS_1", "aws_iam_policy_document.assume"),
    ("CKV_AWS_49", "aws_iam_policy_document.runtime"),
    ("CKV_AWS_111", "aws_iam_policy_document.gateway_function"),
)


def test_checkov_finds_nothing_that_was_not_accepted_with_a_reason() -> None:
    checkov = require(TOOLS_BIN / "checkov")
    # --skip-download: no guidelines or policies from Prisma Cloud; the checks are built in.
    options = ["--framework", "terraform", "--output", "json", "--compact", "--skip-download"]
    result = run([checkov, "--directory", TERRAFORM, *options])
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']}:{c['file_line_range'][0]})"
        for c in report["results"]["failed_checks"]
    ]
    assert not failed, "fix these, or skip each inline with its reason:\n" + "\n".join(failed)
    assert summary["parsing_errors"] == 0, result.stdout
    # A floor that proves the checks ran (for_each blocks are checked once, not per key).
    assert summary["passed"] > 250, summary
    # The IAM checks in particular ran on the roles and on their trust documents.
    passed = {(c["check_id"], c["resource"]) for c in report["results"]["passed_checks"]}
    for check, resource in IAM_CHECKS:
        assert (check, resource) in passed, f"checkov did not run {check} on {resource}"
    unexplained = [
        f"{c['check_id']} on {c['resource']}"
        for c in report["results"]["skipped_checks"]
        if (c["check_result"].get("suppress_comment") or NO_REASON).strip() == NO_REASON
    ]
    assert not unexplained, f"skipped without a reason: {unexplained}"
