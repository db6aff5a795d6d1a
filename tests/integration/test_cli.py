"""The command line as a user runs it: a real process, real output, real exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.topology import Names

TOILKIT = [sys.executable, "-m", "toilkit"]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TOILKIT, *args],
        check=False,
        env={**os.environ, "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )


@pytest.fixture
def env(moto_endpoint: str, names: Names) -> dict[str, str]:
    """The CLI pointed at moto, with the test's own name prefix."""
    return {"AWS_ENDPOINT_URL": moto_endpoint, "TOILKIT_NAME_PREFIX": names.prefix}


def test_bootstrap_twice_creates_then_says_nothing_changed(
    env: dict[str, str], names: Names
) -> None:

    first = run_cli("bootstrap", env=env)
    second = run_cli("bootstrap", env=env)

    assert first.returncode == 0, first.stderr
    assert f"{names.prefix}-events" in first.stderr
    assert "created" in first.stderr
    assert "bootstrap complete" in first.stderr
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stderr
    assert "everything already exists; nothing changed" in second.stderr


def test_malformed_settings_name_the_variable_and_exit_2(moto_endpoint: str) -> None:
    result = run_cli(
        "bootstrap", env={"AWS_ENDPOINT_URL": moto_endpoint, "TOILKIT_NAME_PREFIX": "bad prefix!"}
    )

    assert result.returncode == 2
    assert "TOILKIT_NAME_PREFIX" in result.stderr
    assert "'bad prefix!'" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_before_bootstrap_says_what_to_do(env: dict[str, str]) -> None:
    event = '{"type": "DriftScanRequested", "correlation_id": "c", "source": "cli"}'
    result = run_cli("publish", event, env=env)

    assert result.returncode == 2
    assert "run `toilkit bootstrap` first" in result.stderr
    assert "Traceback" not in result.stderr


def test_publishing_an_invalid_event_is_refused_with_the_reason(env: dict[str, str]) -> None:
    result = run_cli("publish", '{"type": "DriftScanRequested", "source": "cli"}', env=env)

    assert result.returncode == 1
    assert "correlation_id: Field required" in result.stderr
