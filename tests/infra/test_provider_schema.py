"""infra/terraform uses only what the hashicorp/aws provider has, checked without the registry.

`terraform validate` needs the provider binary, which this machine (and CI) cannot download.
Its schema comes instead from the @cdktn/provider-aws npm package (tests/infra/provider_schema.py),
and every resource and data block of infra/terraform is walked against it: types, arguments,
nested blocks (``dynamic`` ones too) and required arguments.
"""

from __future__ import annotations

import re
from typing import Any

import hcl2
import pytest

from tests.infra import provider_schema
from tests.infra.tools import TERRAFORM


@pytest.fixture(scope="module")
def schema() -> provider_schema.Schema:
    return provider_schema.load()


def _blocks(text: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(kind, type, name, body) of every resource and data block in ``text``."""
    parsed = hcl2.loads(text)
    found = []
    for kind in ("resource", "data"):
        for block in parsed.get(kind, []):
            for quoted_type, named in block.items():
                for quoted_name, body in named.items():
                    found.append((kind, quoted_type.strip('"'), quoted_name.strip('"'), body))
    return found


def _errors(schema: provider_schema.Schema, text: str, where: str = "") -> list[str]:
    return [
        f"{where}{kind} {rtype}.{name}: {error}"
        for kind, rtype, name, body in _blocks(text)
        for error in provider_schema.check(schema, kind, rtype, body)
    ]


def test_every_resource_and_data_block_matches_the_provider_schema(
    schema: provider_schema.Schema,
) -> None:
    errors: list[str] = []
    checked = 0
    for path in sorted(TERRAFORM.glob("*.tf")):
        text = path.read_text()
        checked += len(_blocks(text))
        errors += _errors(schema, text, f"{path.name}: ")
    assert checked >= 50
    assert not errors, f"not in hashicorp/aws {schema.provider_version}:\n" + "\n".join(errors)


def test_the_check_finds_what_the_provider_would_refuse(schema: provider_schema.Schema) -> None:
    # GIVEN blocks with one mistake each, of each kind the check looks for
    text = """
    resource "aws_lambda_permission" "misspelt" {
      action        = "lambda:InvokeFunction"
      function_name = "f"
      principal     = "*"
      invoked_via_function_uri = true
    }
    resource "aws_lambda_permission" "incomplete" {
      action = "lambda:InvokeFunction"
      principal = "*"
    }
    resource "aws_sqs_queue_policy_document" "invented" {}
    resource "aws_lambda_event_source_mapping" "nested" {
      function_name = "f"
      scaling_config { maximum_concurency = 2 }
    }
    data "aws_iam_policy_document" "dynamic" {
      dynamic "statment" {
        for_each = [1]
        content {}
      }
      dynamic "statement" {
        for_each = [1]
        content { action = ["s3:GetObject"] }
      }
    }
    resource "aws_s3_bucket" "fine" {
      bucket = "b"
      tags   = { any = "map" }
    }
    """
    # WHEN they are checked THEN each mistake is named, and the valid block passes
    errors = _errors(schema, text)
    assert errors == [
        "resource aws_lambda_permission.misspelt: aws_lambda_permission: no argument or block 'invoked_via_function_uri'",
        "resource aws_lambda_permission.incomplete: aws_lambda_permission: required 'function_name' is missing",
        "resource aws_sqs_queue_policy_document.invented: resource type aws_sqs_queue_policy_document does not exist",
        "resource aws_lambda_event_source_mapping.nested: aws_lambda_event_source_mapping.scaling_config: no argument or block 'maximum_concurency'",
        "data aws_iam_policy_document.dynamic: aws_iam_policy_document: no nested block 'statment'",
        "data aws_iam_policy_document.dynamic: aws_iam_policy_document.statement: no argument or block 'action'",
    ]


def test_the_provider_constraint_allows_no_release_older_than_the_schema(
    schema: provider_schema.Schema,
) -> None:
    # An argument the schema has may be missing from an older release, so the floor of the
    # constraint is the schema's release (or newer), and the ceiling its major.
    versions = hcl2.loads((TERRAFORM / "versions.tf").read_text())
    aws = versions["terraform"][0]["required_providers"][0]["aws"]
    version = aws["version"].strip('"')
    constraint = re.fullmatch(r"~> (\d+)\.(\d+)", version)
    assert constraint, f"pin hashicorp/aws to one major with '~> MAJOR.MINOR', not {version}"
    floor = (int(constraint.group(1)), int(constraint.group(2)))
    major, minor, _ = (int(part) for part in schema.provider_version.split("."))
    assert floor[0] == major and floor >= (major, minor), (
        f"versions.tf allows hashicorp/aws {version}, the schema checked is {schema.provider_version}"
    )
