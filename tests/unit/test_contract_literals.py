"""Every contract between services is written in one place.

A Slack action id, a button value's format, a key prefix of the state table, a set of
final run statuses or the rule for a state's name that is spelled out a second time drifts
from the first one at run time, silently. This test reads the source of ``services/``, ``shared/`` and ``toilkit/`` (string
constants, f-string parts and literal collections, through :mod:`ast`) and fails on any
copy outside the literal's home, naming the file and line.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.batch.runners import base as runners_base
from services.batch.runners import codebuild
from services.detector import function as detector_function
from shared import idempotency, secrets, state_names
from shared.events import SENSITIVE
from shared.slack import signing
from shared.slack.actions import Action
from shared.state_table import drift, drift_actions, keys

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("services", "shared", "toilkit")

ACTIONS_HOME = "shared/slack/actions.py"
KEYS_HOME = "shared/state_table/keys.py"
STATUS_HOMES = frozenset({"shared/events.py", "shared/state_table/runs.py"})
STATE_NAME_HOME = "shared/state_names.py"

#: Final run statuses: a literal collection holding three or more of them is a copy of the
#: set that ``shared.state_table.runs`` derives from ``shared.events.RunStatus``.
FINAL_STATUSES = frozenset({"succeeded", "failed", "timed_out", "cancelled", "refused"})

#: Key prefixes long enough to be told apart from ordinary words. (``run``, ``runs`` and
#: ``thread`` are keys too, but too common as words to grep for; their builders are the
#: only writers because every store imports them.)
KEY_LITERALS = (
    keys.DRIFT_STATES,
    keys.FINDING_PREFIX,
    keys.HISTORY_PREFIX,
    keys.ACTIVE_RUNS,
    keys.PENDING_APPROVALS,
    keys.AUDIT_PREFIX,
    keys.SLOT_PREFIX,
    keys.NOTIFIER_THREAD_PREFIX,
    keys.NOTIFIER_POINTER_PREFIX,
    keys.GATEWAY_REQUEST_PREFIX,
)
#: The prefixes of the f-string key builders in ``keys.py``.
KEY_PREFIXES = (
    "drift#",
    "run#",
    "lock#",
    "breakglass#",
    "schedule#",
    "notifier#post#",
    "notifier#run#",
    "notifier#drift#",
)


#: The state table's TTL attribute: the table is created with it (``shared/topology.py``)
#: and every store writes it, so each one names it through ``keys.EXPIRES_AT``.
TTL_ATTRIBUTE = re.compile(rf"\b{re.escape(keys.EXPIRES_AT)}\b")


@dataclass(frozen=True)
class Literal_:
    path: str
    line: int
    text: str
    in_fstring: bool
    docstring: bool = False


def sources() -> Iterator[tuple[str, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            yield relative, ast.parse(path.read_text(encoding="utf-8"), filename=relative)


DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _docstring_node(node: ast.AST) -> ast.Constant | None:
    body = getattr(node, "body", [])
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        return body[0].value
    return None


def string_literals() -> list[Literal_]:
    found = []
    for path, tree in sources():
        fstring_parts: set[int] = set()
        docstrings: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                fstring_parts.update(id(value) for value in node.values)
            if isinstance(node, DOCUMENTED) and (doc := _docstring_node(node)) is not None:
                docstrings.add(id(doc))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.append(
                    Literal_(
                        path,
                        node.lineno,
                        node.value,
                        id(node) in fstring_parts,
                        id(node) in docstrings,
                    )
                )
    return found


def status_collections() -> list[tuple[str, int, frozenset[str]]]:
    """Literal sets, tuples, lists and ``Literal[...]`` subscripts of final statuses."""
    found = []
    for path, tree in sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Set | ast.Tuple | ast.List):
                texts = frozenset(
                    element.value
                    for element in node.elts
                    if isinstance(element, ast.Constant) and isinstance(element.value, str)
                )
                if len(texts & FINAL_STATUSES) >= 3:
                    found.append((path, node.lineno, texts & FINAL_STATUSES))
    return found


LITERALS = string_literals()


def copies(predicate: object, home: str | frozenset[str]) -> list[str]:
    homes = {home} if isinstance(home, str) else home
    return [
        f"{found.path}:{found.line}: {found.text!r}"
        for found in LITERALS
        if found.path not in homes and predicate(found)  # type: ignore[operator]
    ]


@pytest.mark.parametrize("action", list(Action), ids=lambda a: a.value)
def test_each_slack_action_id_is_written_once(action: Action) -> None:
    assert copies(lambda found: found.text == action.value, ACTIONS_HOME) == []


def test_the_action_ids_are_found_in_their_home() -> None:
    # Guards the test itself: a change in how actions.py writes them would make it vacuous.
    at_home = {found.text for found in LITERALS if found.path == ACTIONS_HOME}
    assert {action.value for action in Action} <= at_home


@pytest.mark.parametrize("literal", KEY_LITERALS)
def test_each_state_table_key_is_written_once(literal: str) -> None:
    assert copies(lambda found: found.text == literal, KEYS_HOME) == []


@pytest.mark.parametrize("prefix", KEY_PREFIXES)
def test_each_state_table_key_builder_is_written_once(prefix: str) -> None:
    at_home = [f for f in LITERALS if f.path == KEYS_HOME and f.in_fstring and f.text == prefix]
    assert at_home, f"keys.py no longer builds keys from {prefix!r}: update this test"
    elsewhere = copies(lambda found: found.in_fstring and found.text.startswith(prefix), KEYS_HOME)
    assert elsewhere == []


def test_button_values_are_built_and_read_only_in_actions() -> None:
    # The claim button's JSON shape and the run buttons' value are built by
    # encode_*/decode_* in actions.py; a second builder would spell the field names again.
    assert (
        copies(
            lambda found: found.text in {"fingerprints", '{"state":'} and not found.in_fstring,
            frozenset({ACTIONS_HOME, "shared/events.py", "services/detector/lifecycle.py"}),
        )
        == []
    )


def test_no_set_of_final_run_statuses_is_written_twice() -> None:
    found = status_collections()
    homes = [f for f in found if f[0] in STATUS_HOMES]
    assert homes, "the final statuses are no longer spelled out in shared/: update this test"
    assert [
        f"{path}:{line}: {sorted(texts)}" for path, line, texts in found if path not in STATUS_HOMES
    ] == []


def test_the_rule_for_state_names_is_written_once() -> None:
    # The detector names states by it; the gateway and the Re-scan button check by it.
    pattern = state_names.STATE_NAME.pattern
    assert [f for f in LITERALS if f.path == STATE_NAME_HOME and f.text == pattern]
    assert copies(lambda found: found.text == pattern, STATE_NAME_HOME) == []
    assert copies(lambda found: "letter or digit" in found.text, STATE_NAME_HOME) == []


def test_the_longest_state_name_is_the_patterns() -> None:
    # The button values' models bound ``state`` by MAX_STATE_NAME; the pattern by its own
    # repetition count, which a regex cannot take from a constant.
    longest = state_names.MAX_STATE_NAME
    assert state_names.is_state_name("a" * longest)
    assert not state_names.is_state_name("a" * (longest + 1))
    assert f"at most {longest} characters" in state_names.STATE_NAME_RULE


def test_the_state_tables_ttl_attribute_is_named_once() -> None:
    # A store that spelled it differently would write items that never expire.
    assert [f for f in LITERALS if f.path == KEYS_HOME and f.text == keys.EXPIRES_AT]
    assert (
        copies(lambda found: not found.docstring and TTL_ATTRIBUTE.search(found.text), KEYS_HOME)
        == []
    )


@pytest.mark.parametrize("secret", [secrets.BOT_TOKEN, secrets.SIGNING_SECRET])
def test_each_secret_key_is_written_once(secret: str) -> None:
    # toilkit.aws_lambda maps the key to its SSM parameter; the services read it back by it.
    home = "shared/secrets.py"
    assert [f for f in LITERALS if f.path == home and f.text == secret]
    assert copies(lambda found: not found.docstring and found.text == secret, home) == []


def test_the_event_archives_hour_partition_is_written_once() -> None:
    # The publisher writes events under it and ``toilkit archive`` lists them by it.
    home = "shared/publishing.py"
    hour = "%Y/%m/%d/%H"
    assert [f for f in LITERALS if f.path == home and f.text == hour]
    assert copies(lambda found: hour in found.text and not found.docstring, home) == []


@pytest.mark.parametrize("header", [signing.TIMESTAMP_HEADER, signing.SIGNATURE_HEADER])
def test_slacks_signature_headers_are_named_once(header: str) -> None:
    # The gateway reads them to verify a request. Left out: toilkit.aws_lambda, which splits
    # their values in every function's sandbox and would load slack_sdk into the detector's
    # cold start by importing them, and the chaos fuzzer, which only sends them.
    homes = frozenset({"shared/slack/signing.py", "toilkit/aws_lambda.py", "toilkit/chaos/fuzz.py"})
    assert copies(lambda found: found.text.lower() == header.lower(), homes) == []


def test_the_longest_ignore_rule_is_stated_once() -> None:
    # The Ignore… modal's hint says it; expiry_problem enforces it.
    home = "shared/state_table/drift_actions.py"
    days = f"{drift_actions.MAX_IGNORE_DAYS} days"
    assert copies(lambda found: not found.docstring and days in found.text, home) == []


@pytest.mark.parametrize(
    ("variable", "home"),
    [
        ("TOILKIT_RUN_ID", "services/batch/runners/base.py"),
        ("TOILKIT_RUN_MODE", "services/batch/runners/base.py"),
        ("TOILKIT_SCAN_REQUEST", "services/detector/function.py"),
        ("TOILKIT_COMMAND", "services/batch/runners/codebuild.py"),
    ],
)
def test_each_variable_handed_to_a_command_is_named_once(variable: str, home: str) -> None:
    # Set by the runner (or the function starting a build) and read by what it started.
    # The chaos workloads are such commands, reading the documented name as a user's would.
    assert [f for f in LITERALS if f.path == home and f.text == variable]
    assert (
        copies(
            lambda found: (
                not found.docstring
                and variable in found.text
                and not found.path.startswith("toilkit/chaos/")
            ),
            home,
        )
        == []
    )


def test_the_bot_tokens_variable_is_named_once() -> None:
    # The services read the token from it (bare or with their prefix); `toilkit up` starts
    # the Slack stand-in unless one of the same variables is set.
    home = "shared/slack/settings.py"
    assert [f for f in LITERALS if f.path == home and f.text == "SLACK_BOT_TOKEN"]
    # A variable's name, not a message that mentions it (those have spaces).
    named = [f for f in LITERALS if "SLACK_BOT_TOKEN" in f.text and " " not in f.text]
    assert [f"{f.path}:{f.line}: {f.text!r}" for f in named if f.path != home] == []


def test_the_sensitive_marker_is_written_once() -> None:
    # What replaces a sensitive value wherever it is shown (Slack, the CLI, error messages);
    # the notifier recognises it. shared/preview.py keeps its own: that one feeds stored
    # digests, which must not change if the shown marker ever does.
    homes = frozenset({"shared/events.py", "shared/preview.py"})
    assert copies(lambda found: not found.docstring and found.text == SENSITIVE, homes) == []


@pytest.mark.parametrize("attribute", [drift.CLAIMED_BY_NAME, drift.CLAIMED_BY_SLACK])
def test_each_claimer_attribute_is_named_once(attribute: str) -> None:
    # The detector writes who is on a finding; shared.state_table.drift reads it back.
    home = "shared/state_table/drift.py"
    assert [f for f in LITERALS if f.path == home and f.text == attribute]
    assert copies(lambda found: not found.docstring and attribute in found.text, home) == []


def test_a_state_scans_item_is_built_beside_its_reader() -> None:
    # The detector writes it (state_scan_item), the report and /toil drift read it.
    home = "shared/state_table/drift.py"
    assert copies(lambda found: not found.docstring and found.text == "scanned_at", home) == []


def test_a_findings_first_seen_is_named_once() -> None:
    # The detector writes and reads it; shared.state_table.drift reads it for the gateway.
    # (toilkit/drift_report.py names a field of its JSON output the same; not the item.)
    home = "shared/state_table/drift.py"
    assert (
        copies(
            lambda found: (
                not found.docstring
                and found.text == drift.FIRST_SEEN
                and found.path != "toilkit/drift_report.py"
            ),
            home,
        )
        == []
    )


def test_the_idempotency_tables_ttl_attribute_is_named_once() -> None:
    # shared/topology.py creates the table with it; shared/idempotency.py writes it.
    home = "shared/idempotency.py"
    assert copies(lambda found: not found.docstring and found.text == "expiration", home) == []


def _infra(path: str) -> str:
    return (ROOT / "infra" / path).read_text(encoding="utf-8")


def test_the_infrastructure_names_the_ttl_attributes_the_stores_write() -> None:
    # Terraform cannot import them: a renamed attribute would make DynamoDB keep every item.
    storage = _infra("terraform/storage.tf")
    assert f'attribute_name = "{keys.EXPIRES_AT}"' in storage
    assert f'attribute_name = "{idempotency.EXPIRATION}"' in storage


def test_the_state_machine_and_buildspecs_use_the_variables_the_python_sets() -> None:
    # The state machine starts the CodeBuild run with the runner's variables; the buildspecs
    # read the command and the scan request by the names the Python hands over.
    machine = _infra("stepfunctions/batch_run.asl.json")
    for variable in (runners_base.RUN_ID_VARIABLE, runners_base.RUN_MODE_VARIABLE):
        assert f'"{variable}"' in machine
    assert f'"{codebuild.COMMAND_VARIABLE}"' in machine
    assert codebuild.COMMAND_VARIABLE in _infra("buildspecs/batch-runner.yml")
    assert detector_function.SCAN_REQUEST_VARIABLE in _infra("buildspecs/drift-scan.yml")
