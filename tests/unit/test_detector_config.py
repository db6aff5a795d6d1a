"""``toilkit.yaml`` and root-module discovery (pure logic over files in a temp dir)."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import pytest

from services.detector import config as detector_config
from services.detector.config import (
    DEFAULT_CRON,
    Schedule,
    config_for_repo,
    load_config,
)
from services.detector.discovery import (
    DiscoveredState,
    Discovery,
    TerraformRootModules,
    discover_states,
)
from shared.errors import ConfigError

BACKEND_S3 = 'terraform {\n  backend "s3" {\n    bucket = "tf"\n  }\n}\n'
LOCK = '# This file is maintained automatically by "terraform init".\n'


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- the file


def test_states_inherit_the_file_defaults_unless_they_set_their_own(tmp_path: Path) -> None:
    config_file = write(
        tmp_path,
        "toilkit.yaml",
        """
schedule: "30 6 * * 1-5"
timezone: Europe/Paris
channel: "#drift"
mode: refresh_only
concurrency: 8
timeout_seconds: 120
states:
  - name: network-prod
    path: stacks/network
    workspace: prod
    backend_config: backends/prod.hcl
  - path: stacks/app
    channel: "#app"
    mode: full
    schedule: {cron: "0 9 * * *", timezone: America/New_York}
  - name: sandbox
    path: stacks/sandbox
    schedule: false
""",
    )

    config = load_config(config_file)

    network, app, sandbox = config.states
    assert network.name == "network-prod"
    assert network.directory == tmp_path / "stacks" / "network"
    assert network.workspace == "prod"
    assert network.backend_config == tmp_path / "backends" / "prod.hcl"
    assert network.channel == "#drift"
    assert network.mode == "refresh_only"
    assert network.schedule == Schedule(cron="30 6 * * 1-5", timezone="Europe/Paris")
    assert network.ref.model_dump() == {
        "name": "network-prod",
        "path": "stacks/network",
        "workspace": "prod",
        "channel": "#drift",  # travels with the events, so the notifier routes by it
    }
    assert app.name == "stacks/app"  # named after its path when the entry has no name
    assert (app.channel, app.mode) == ("#app", "full")
    assert app.schedule == Schedule(cron="0 9 * * *", timezone="America/New_York")
    assert sandbox.schedule is None
    assert (config.concurrency, config.timeout_seconds) == (8, 120)
    assert config.source == config_file.resolve()


def test_an_empty_file_means_every_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "toilkit.yaml", ""))

    assert config.states == ()
    assert config.concurrency == 4
    assert config.timeout_seconds == 900
    assert config.attribution.enabled is False


def test_the_default_schedule_is_seven_in_the_morning_utc(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "toilkit.yaml", "states:\n  - path: a\n"))

    assert config.states[0].schedule == Schedule(cron=DEFAULT_CRON, timezone="UTC")
    assert DEFAULT_CRON == "0 7 * * *"


def documented_example() -> str:
    """The ``toilkit.yaml`` shown in :mod:`services.detector.config`'s docstring."""
    after = (detector_config.__doc__ or "").split("::\n", 1)[1]
    block = itertools.takewhile(lambda line: not line or line[0] == " ", after.splitlines())
    return textwrap.dedent("\n".join(block))


def test_the_documented_example_with_its_ignore_rules_and_attribution_is_read(
    tmp_path: Path,
) -> None:
    config = load_config(write(tmp_path, "toilkit.yaml", documented_example()))

    (rule,) = config.ignore
    assert (rule.address, rule.attribute, str(rule.expires)) == (
        "aws_autoscaling_group.*",
        "desired_capacity",
        "2026-01-31",
    )
    assert config.attribution.enabled
    assert config.attribution.lookback_hours == 72
    assert config.attribution.slack_user_for("arn:aws:iam::123456789012:user/alice") == "U012ALICE"
    assert (
        config.attribution.slack_user_for(
            "arn:aws:sts::123456789012:assumed-role/Admin/bob@example.com"
        )
        == "U034BOB"
    )
    assert config.attribution.slack_user_for("arn:aws:iam::123456789012:user/eve") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("states:\n  - path: a\n    schedule: '61 7 * * *'\n", "states.0.schedule"),
        ("states:\n  - path: a\n    schedule: '0 7 * * * *'\n", "five-field"),
        ("timezone: Mars/Olympus\n", "unknown time zone"),
        ("states:\n  - path: ../outside\n", "inside it"),
        ("states:\n  - path: /abs\n", "relative to the repository root"),
        ("states:\n  - path: a\n    mode: sometimes\n", "states.0.mode"),
        ("concurrency: 0\n", "concurrency"),
        ("surprise: 1\n", "surprise"),
        ("states:\n  - {name: x, path: a}\n  - {name: x, path: b}\n", "two states are named 'x'"),
        ("states:\n  - {name: 'has space', path: a}\n", "state name 'has space'"),
        ("- a list\n", "expected a mapping"),
        ("states: [\n", "not valid YAML (line"),
    ],
)
def test_a_bad_file_is_a_config_error_naming_the_entry(
    tmp_path: Path, text: str, expected: str
) -> None:
    config_file = write(tmp_path, "toilkit.yaml", text)

    with pytest.raises(ConfigError) as raised:
        load_config(config_file)

    assert expected in str(raised.value)
    assert str(config_file) in str(raised.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "toilkit.yaml")


def test_select_returns_the_named_states_and_the_unknown_names(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "toilkit.yaml", "states:\n  - {name: a, path: a}\n  - {name: b, path: b}\n")
    )

    assert [s.name for s in config.select(())[0]] == ["a", "b"]
    chosen, unknown = config.select(("b", "zz", "b"))
    assert [s.name for s in chosen] == ["b"]
    assert unknown == ["zz"]


# --------------------------------------------------------------------------- discovery


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with every kind of directory discovery must tell apart."""
    root = tmp_path / "infra"
    write(
        root,
        "stacks/network/main.tf",
        BACKEND_S3 + 'module "vpc" {\n  source = "../../modules/vpc"\n}\n',
    )
    write(root, "stacks/app/main.tf", 'resource "terraform_data" "x" {}\n')
    write(root, "stacks/app/.terraform.lock.hcl", LOCK)
    write(root, "stacks/app/.terraform/modules/m/main.tf", BACKEND_S3)  # never entered
    write(root, "stacks/tfc/main.tf", 'terraform {\n  cloud {\n    organization = "acme"\n  }\n}\n')
    write(root, "stacks/json/main.tf.json", '{"terraform": {"backend": {"gcs": {"bucket": "b"}}}}')
    write(root, "stacks/never-initialised/main.tf", 'resource "terraform_data" "x" {}\n')
    # A module folder someone ran `init` in (to validate it) is still a module.
    write(root, "modules/vpc/main.tf", 'variable "cidr" {}\n')
    write(root, "modules/vpc/.terraform.lock.hcl", LOCK)
    write(root, "shared/dns/main.tf", 'resource "terraform_data" "x" {}\n')
    write(root, "shared/dns/.terraform.lock.hcl", LOCK)
    write(
        root,
        "stacks/edge/main.tf",
        'module "dns" {\n  source = "../../shared/dns"\n}\n' + BACKEND_S3,
    )
    write(root, ".git/hooks/x.tf", BACKEND_S3)
    return root


def test_discovery_finds_root_modules_and_says_why_others_are_skipped(repo: Path) -> None:
    found = TerraformRootModules().find(repo)

    assert {s.path: s.evidence for s in found.states} == {
        "stacks/app": "lock file",
        "stacks/edge": 'backend "s3"',
        "stacks/json": 'backend "gcs"',
        "stacks/network": 'backend "s3"',
        "stacks/tfc": "cloud block",
    }
    assert {s.path: s.reason for s in found.skipped} == {
        "modules/vpc": "used as a module by stacks/network",
        "shared/dns": "used as a module by stacks/edge",
        "stacks/never-initialised": "no backend block and no .terraform.lock.hcl (never initialised?)",
    }
    assert found.problems == ()


def test_a_folder_named_modules_is_skipped_even_when_nobody_uses_it(tmp_path: Path) -> None:
    write(tmp_path, "modules/orphan/main.tf", "")
    write(tmp_path, "modules/orphan/.terraform.lock.hcl", LOCK)

    found = TerraformRootModules().find(tmp_path)

    assert found.states == ()
    assert [(s.path, s.reason) for s in found.skipped] == [
        ("modules/orphan", "inside a modules/ folder")
    ]


def test_an_unparseable_file_is_reported_and_the_lock_file_still_counts(tmp_path: Path) -> None:
    write(tmp_path, "broken/main.tf", 'resource "x" "y" {\n  input =\n')
    write(tmp_path, "broken/.terraform.lock.hcl", LOCK)

    found = TerraformRootModules().find(tmp_path)

    assert [s.path for s in found.states] == ["broken"]
    (problem,) = found.problems
    assert problem.startswith("broken/main.tf: cannot parse")


def test_the_repository_root_itself_can_be_a_state(tmp_path: Path) -> None:
    write(tmp_path, "main.tf", BACKEND_S3)

    config = config_for_repo(tmp_path)

    (state,) = config.states
    assert (state.path, state.name, state.directory) == (".", tmp_path.name, tmp_path.resolve())


def test_a_repository_without_a_file_scans_every_discovered_state(repo: Path) -> None:
    config = config_for_repo(repo, settings={"concurrency": 2})

    assert [s.name for s in config.states] == [
        "stacks/app",
        "stacks/edge",
        "stacks/json",
        "stacks/network",
        "stacks/tfc",
    ]
    assert all(s.schedule == Schedule() for s in config.states)
    assert config.concurrency == 2
    assert config.discovery is not None and len(config.discovery.skipped) == 3


def test_explicit_entries_win_over_discovered_ones(repo: Path) -> None:
    write(
        repo,
        "toilkit.yaml",
        "discover: true\nchannel: '#ops'\nstates:\n  - name: net\n    path: stacks/network\n"
        "    channel: '#net'\n",
    )

    config = load_config(repo / "toilkit.yaml")

    by_path = {s.path: s for s in config.states}
    assert by_path["stacks/network"].name == "net"
    assert by_path["stacks/network"].channel == "#net"
    assert by_path["stacks/app"].channel == "#ops"
    assert len(config.states) == 5


def test_finders_plug_in_and_merge_without_duplicates(repo: Path) -> None:
    class EverythingUnderStacks:
        """A stand-in for a later finder (terragrunt units, say)."""

        def find(self, root: Path) -> Discovery:
            return Discovery(
                states=tuple(
                    DiscoveredState(path=f"stacks/{d.name}", directory=d, evidence="other tool")
                    for d in sorted((root / "stacks").iterdir())
                )
            )

    found = discover_states(repo, [TerraformRootModules(), EverythingUnderStacks()])

    paths = [s.path for s in found.states]
    assert paths == sorted(set(paths))
    assert {s.path: s.evidence for s in found.states}["stacks/network"] == 'backend "s3"'
    assert {s.path: s.evidence for s in found.states}["stacks/never-initialised"] == "other tool"
    assert "stacks/never-initialised" not in [s.path for s in found.skipped]
