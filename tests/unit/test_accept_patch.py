"""Accept into code: the HCL edit for a drift, and everything it refuses to guess."""

from __future__ import annotations

from pathlib import Path

import hcl2
import pytest

from services.detector.accept import PatchError, ResourceAddress, accept_patch, parse_path
from services.detector.accept.git import branch_name, compare_url
from shared.events import SENSITIVE, AttributeChange

ROOT_TF = """\
module "app" {
  source = "./modules/app"
}

module "vpc" {
  source  = "terraform-aws-modules/vpc/aws"
  version = "5.0.0"
}

resource "cloud_bucket" "logs" {
  name       = "logs" # named after what it holds
  versioning = true
  tags = {
    env  = "prod"
    team = "sre"
  }
  cidrs = ["10.0.0.0/8", "192.168.0.0/16"]

  lifecycle_rule {
    prefix          = "tmp/"
    expiration_days = 7
  }
}

resource "cloud_queue" "many" {
  count = 2
  name  = "q-${count.index}"
}
"""

APP_TF = """\
resource "cloud_queue" "jobs" {
  name               = "jobs-${var.env}"
  visibility_timeout = 30
  tags               = { env = "prod" }
  labels             = merge(local.labels, { a = "b" })
}
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "modules" / "app").mkdir(parents=True)
    (tmp_path / "main.tf").write_text(ROOT_TF)
    (tmp_path / "modules" / "app" / "main.tf").write_text(APP_TF)
    return tmp_path


def change(path: str, before: object = None, after: object = None, **kw: object) -> AttributeChange:
    return AttributeChange.model_validate({"path": path, "before": before, "after": after, **kw})


def parsed_resource(text: str, type_: str, name: str) -> dict[str, object]:
    loaded = hcl2.loads(
        text, serialization_options=hcl2.SerializationOptions(strip_string_quotes=True)
    )
    for block in loaded["resource"]:
        if type_ in block and name in block[type_]:
            return dict(block[type_][name])
    raise AssertionError(f"{type_}.{name} not in the patched text")


def test_scalars_and_map_keys_are_edited_in_place_and_the_rest_of_the_file_is_untouched(
    repo: Path,
) -> None:
    patch = accept_patch(
        repo,
        "cloud_bucket.logs",
        [
            change("tags.env", "prod", "staging"),
            change("tags.owner", None, "bob"),
            change("tags.team", "sre", None),
            change("versioning", True, False),
            change("size", None, 5),
        ],
        root=repo,
    )

    assert patch.block == "main.tf:10"
    assert patch.changed == ("tags.env", "tags.owner", "tags.team", "versioning", "size")
    assert patch.skipped == ()
    (edit,) = patch.edits
    bucket = parsed_resource(edit.after, "cloud_bucket", "logs")
    assert bucket["tags"] == {"env": "staging", "owner": "bob"}
    assert (bucket["versioning"], bucket["size"]) == (False, 5)
    # The comment, the module calls and the other resource are byte for byte as written.
    assert 'name       = "logs" # named after what it holds' in edit.after
    assert edit.after.startswith(ROOT_TF[: ROOT_TF.index('resource "cloud_bucket"')])
    assert edit.after.endswith(ROOT_TF[ROOT_TF.index('resource "cloud_queue"') :])
    diff = patch.diff(repo)
    assert diff.startswith("--- a/main.tf\n+++ b/main.tf\n")
    assert '-    env  = "prod"' in diff and "+  size = 5" in diff


def test_sets_gain_and_lose_elements_and_a_nested_block_set_gains_a_block(repo: Path) -> None:
    rule = {"prefix": "logs/", "expiration_days": 30, "noncurrent_days": None}
    patch = accept_patch(
        repo,
        "cloud_bucket.logs",
        [
            change("cidrs", "192.168.0.0/16", None, set_change="removed"),
            change("cidrs", None, "172.16.0.0/12", set_change="added"),
            change("lifecycle_rule", None, rule, set_change="added"),
        ],
        root=repo,
    )

    assert patch.skipped == ()
    bucket = parsed_resource(patch.edits[0].after, "cloud_bucket", "logs")
    assert bucket["cidrs"] == ["10.0.0.0/8", "172.16.0.0/12"]
    rules = bucket["lifecycle_rule"]
    assert isinstance(rules, list)
    assert [{k: v for k, v in r.items() if not k.startswith("__")} for r in rules] == [
        {"prefix": "tmp/", "expiration_days": 7},
        {"expiration_days": 30, "prefix": "logs/"},
    ]


def test_a_removed_nested_block_is_removed_when_exactly_one_matches(repo: Path) -> None:
    old_rule = {"prefix": "tmp/", "expiration_days": 7, "noncurrent_days": None}
    patch = accept_patch(
        repo,
        "cloud_bucket.logs",
        [change("lifecycle_rule", old_rule, None, set_change="removed")],
        root=repo,
    )

    assert patch.changed == ("lifecycle_rule",)
    assert "lifecycle_rule" not in parsed_resource(patch.edits[0].after, "cloud_bucket", "logs")


def test_resources_in_local_modules_are_found_and_expressions_are_left_to_a_person(
    repo: Path,
) -> None:
    patch = accept_patch(
        repo,
        "module.app.cloud_queue.jobs",
        [
            change("name", "jobs-prod", "jobs-x"),
            change("visibility_timeout", 30, 60),
            change("tags.env", "prod", "dev"),
            change("labels.a", "b", "c"),
            change("secret", SENSITIVE, SENSITIVE, sensitive=True),
            change("arn", "x", None, after_unknown=True),
            change("tags.noise", "a", "b", ignored=True, ignore_reason="provider noise"),
        ],
        root=repo,
    )

    assert patch.block == "modules/app/main.tf:1"
    assert patch.changed == ("visibility_timeout", "tags.env")
    reasons = {s.path: s.reason for s in patch.skipped}
    assert (
        reasons["name"] == '`name` comes from the expression `"jobs-${var.env}"`; change it by hand'
    )
    assert "merge(local.labels" in reasons["labels.a"]
    assert reasons["secret"].startswith("sensitive")
    assert "after apply" in reasons["arn"] and "provider noise" in reasons["tags.noise"]
    queue = parsed_resource(patch.edits[0].after, "cloud_queue", "jobs")
    assert queue["visibility_timeout"] == 60 and queue["tags"] == {"env": "dev"}


def test_code_that_changed_since_the_apply_is_never_overwritten(repo: Path) -> None:
    patch = accept_patch(
        repo, "cloud_bucket.logs", [change("tags.team", "platform", "ops")], root=repo
    )

    assert patch.edits == ()
    (skipped,) = patch.skipped
    assert skipped.reason.startswith('the code says "sre", not the recorded "platform"')


def test_a_counted_block_is_every_instance_and_is_not_patched(repo: Path) -> None:
    patch = accept_patch(repo, "cloud_queue.many[1]", [change("name", "q-1", "q-one")], root=repo)

    assert patch.edits == ()
    assert "`count`" in patch.skipped[0].reason


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("module.vpc.aws_vpc.this[0]", "pass the value in through the module's inputs"),
        (
            "cloud_bucket.missing",
            'resource "cloud_bucket" "missing" is not in the code of the root module',
        ),
        ("module.nope.cloud_bucket.x", "module.nope is not called from ."),
        ("data.cloud_bucket.x", "is not a managed resource's address"),
        ("not an address", "is not a resource address"),
    ],
)
def test_code_that_is_not_here_is_a_clear_error(repo: Path, address: str, message: str) -> None:
    with pytest.raises(PatchError, match=message.replace(".", r"\.").replace("(", r"\(")):
        accept_patch(repo, address, [change("x", 1, 2)], root=repo)


def test_generated_json_code_is_named_in_the_error(repo: Path) -> None:
    (repo / "generated.tf.json").write_text('{"resource": {"cloud_bucket": {"gen": {}}}}')

    with pytest.raises(PatchError, match=r"generated\.tf\.json is generated JSON code"):
        accept_patch(repo, "cloud_bucket.gen", [change("x", 1, 2)], root=repo)


def test_strings_are_written_so_terraform_reads_back_exactly_the_value(repo: Path) -> None:
    tricky = 'say "hi" ${not.a.template} %{ nor this } \\ done\nnext line'
    patch = accept_patch(repo, "cloud_bucket.logs", [change("tags.env", "prod", tricky)], root=repo)

    after = patch.edits[0].after
    assert "$${not.a.template}" in after and "%%{ nor this }" in after
    # Read back by the same reader that compares code with the recorded value: a second
    # accept from the tricky value finds the code saying exactly it.
    (repo / "main.tf").write_text(after)
    again = accept_patch(repo, "cloud_bucket.logs", [change("tags.env", tricky, "x")], root=repo)
    assert again.changed == ("tags.env",)


def test_addresses_and_paths_are_taken_apart() -> None:
    assert ResourceAddress.parse(
        'module.a["x"].module.b.cloud_bucket.logs["k.1"]'
    ) == ResourceAddress(("a", "b"), "cloud_bucket", "logs", '["k.1"]')
    assert parse_path("tags.env") == ["tags", "env"]
    assert parse_path("ingress[0].cidr_blocks[1]") == ["ingress", 0, "cidr_blocks", 1]
    assert parse_path('metadata["a.b"].c') == ["metadata", "a.b", "c"]
    with pytest.raises(PatchError):
        parse_path(".tags")


def test_branch_names_are_safe_refs_and_compare_links_follow_the_host() -> None:
    from datetime import date  # noqa: PLC0415

    assert (
        branch_name("prod/eu west..1", date(2026, 12, 5))
        == "toilkit/drift/prod/eu-west-1/2026-12-05"
    )
    assert (
        compare_url("git@github.com:acme/infra.git", "main", "toilkit/drift/x/2026-12-05")
        == "https://github.com/acme/infra/compare/main...toilkit/drift/x/2026-12-05?expand=1"
    )
    assert compare_url("https://gitlab.com/acme/ops/infra.git", "main", "b") == (
        "https://gitlab.com/acme/ops/infra/-/compare/main...b"
    )
    assert compare_url("/srv/git/infra.git", "main", "b") is None
    assert compare_url("/srv/x", "main", "b", "https://git.example/{base}..{branch}") == (
        "https://git.example/main..b"
    )
