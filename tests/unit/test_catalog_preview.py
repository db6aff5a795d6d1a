"""A command's ``preview`` in the catalog: how it is checked, filled and fingerprinted."""

from __future__ import annotations

from typing import Any

import pytest

from shared.catalog import ValidatedRequest, parse_catalog, validate_request
from shared.errors import ConfigError
from shared.preview import MAX_PREVIEW_SECONDS

STAGING = {"allowed": {"users": ["U0ALICE001"]}}


def command(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "backfill",
        "description": "Backfill rows.",
        "argv": ["bin/backfill", "--since", "{since}", "--limit", "{limit}"],
        "env": {"API_TOKEN": "{token}"},
        "parameters": [
            {"name": "since", "type": "text", "pattern": r"\d{4}-\d{2}-\d{2}"},
            {"name": "limit", "type": "integer", "minimum": 1, "maximum": 100, "required": False},
            {"name": "token", "type": "text", "sensitive": True, "required": False},
        ],
        "environments": {"staging": STAGING},
        "preview": {"append": ["--dry-run"]},
    }
    spec.update(overrides)
    return spec


def request(spec: dict[str, Any], **values: str) -> ValidatedRequest:
    catalog = parse_catalog({"commands": [spec]})
    checked = validate_request(catalog, spec["name"], "staging", values)
    assert isinstance(checked, ValidatedRequest), checked
    return checked


def problems(spec: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_catalog({"commands": [spec]})
    return str(info.value)


def test_append_adds_items_after_the_commands_own_argv_with_the_same_values() -> None:
    checked = request(command(), since="2026-01-01", limit="5")
    assert checked.preview_argv() == [
        "bin/backfill",
        "--since",
        "2026-01-01",
        "--limit",
        "5",
        "--dry-run",
    ]
    assert checked.argv() == checked.preview_argv()[:-1]  # type: ignore[index]
    # An optional value left out drops its option in the preview as in the run.
    assert request(command(), since="2026-01-01").preview_argv() == [
        "bin/backfill",
        "--since",
        "2026-01-01",
        "--dry-run",
    ]


def test_a_preview_of_its_own_is_templated_from_the_same_parameters() -> None:
    spec = command(preview={"argv": ["bin/plan-backfill", "{token}"], "timeout_seconds": 30})
    checked = request(spec, since="2026-01-01", token="x; rm -rf /")
    assert checked.preview_argv() == ["bin/plan-backfill", "x; rm -rf /"]
    assert checked.command.preview is not None
    assert checked.command.preview.timeout_seconds == 30


def test_a_command_without_preview_has_no_preview_argv_and_the_default_timeout_is_sane() -> None:
    assert request(command(preview=None), since="2026-01-01").preview_argv() is None
    spec = request(command(), since="2026-01-01").command.preview
    assert spec is not None and 1 <= spec.timeout_seconds <= MAX_PREVIEW_SECONDS


@pytest.mark.parametrize(
    ("preview", "message"),
    [
        ({}, "give either argv"),
        ({"argv": ["bin/plan"], "append": ["--dry-run"]}, "not both or neither"),
        ({"argv": []}, "commands.0.preview.argv"),
        ({"append": ["--as", "{nobody}"]}, "preview.append[1]: {nobody} names no declared"),
        ({"argv": ["bin/plan", "--since={since}"]}, "preview.argv[1]: '--since={since}' embeds"),
        ({"argv": ["{since}"]}, "preview.argv[0] (the program) must be fixed"),
        ({"append": ["--dry-run"], "timeout_seconds": 0}, "greater than or equal to 1"),
        (
            {"append": ["--dry-run"], "timeout_seconds": MAX_PREVIEW_SECONDS + 1},
            f"less than or equal to {MAX_PREVIEW_SECONDS}",
        ),
        ({"append": ["--dry-run"], "timeout": 5}, "timeout: Extra inputs are not permitted"),
    ],
)
def test_a_bad_preview_is_a_clear_catalog_error(preview: dict[str, Any], message: str) -> None:
    said = problems(command(preview=preview))
    assert said.startswith("invalid command catalog")
    assert message in said, said


def test_the_fingerprint_follows_the_catalog_entry_and_the_values() -> None:
    base = request(command(), since="2026-01-01", limit="5").fingerprint()

    assert request(command(), since="2026-01-01", limit="5").fingerprint() == base
    assert len(base) == 64
    changed = {
        "another value": request(command(), since="2026-01-02", limit="5"),
        "a value left out": request(command(), since="2026-01-01"),
        "another preview": request(
            command(preview={"append": ["--dry-run", "--verbose"]}), since="2026-01-01", limit="5"
        ),
        "another argv": request(
            command(argv=["bin/backfill2", "--since", "{since}", "--limit", "{limit}"]),
            since="2026-01-01",
            limit="5",
        ),
        "another policy": request(
            command(environments={"staging": {"allowed": {"users": ["U0BOB00002"]}}}),
            since="2026-01-01",
            limit="5",
        ),
    }
    for what, other in changed.items():
        assert other.fingerprint() != base, what


def test_the_fingerprint_keeps_no_trace_of_a_sensitive_value() -> None:
    one = request(command(), since="2026-01-01", token="hunter2")
    two = request(command(), since="2026-01-01", token="correct horse")
    # Kept after the secret is dropped, so it must not be a digest of the secret.
    assert one.fingerprint() == two.fingerprint()
    assert one.fingerprint() != request(command(), since="2026-01-01").fingerprint()
