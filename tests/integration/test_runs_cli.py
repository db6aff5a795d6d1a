"""``toilkit runs list / show / request`` against moto, with runs made by a real batch
service (the CLI runs in a thread: it starts its own event loop, as on a terminal)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from shared.topology import BootstrapReport, Names
from tests.integration.batch_harness import DAVE, BatchHarness
from toilkit.cli import app


@pytest.fixture
def cli_env(
    moto_endpoint: str, shared_topology: tuple[Names, BootstrapReport], tmp_path: Path
) -> dict[str, str]:
    names, _ = shared_topology
    return {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "TOILKIT_NAME_PREFIX": names.prefix,
        "TOILKIT_BUCKET": names.bucket,
        "TOILKIT_BATCH_CATALOG_PATH": str(tmp_path / "catalog.yaml"),
        "COLUMNS": "250",
        "NO_COLOR": "1",
    }


def _json_objects(text: str) -> list[dict[str, Any]]:
    """The JSON objects printed one after another (pretty-printed, so not one per line)."""
    decoder, objects, position = json.JSONDecoder(), [], 0
    while (position := _skip_space(text, position)) < len(text):
        obj, position = decoder.raw_decode(text, position)
        objects.append(obj)
    return objects


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


async def toilkit(env: dict[str, str], *args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, app, ["runs", *args], env=env)


async def test_request_list_and_show_a_run(batch: BatchHarness, cli_env: dict[str, str]) -> None:
    requested = await toilkit(
        cli_env,
        "request",
        "echo-args",
        "staging",
        "--as",
        "U0ALICE001",
        "--name",
        "alice",
        "-p",
        "text=hello from the CLI",
        "--reason",
        "trying toilkit",
    )
    assert requested.exit_code == 0, requested.output
    run_id = re.search(r"requested run (\S+)", requested.output).group(1)  # type: ignore[union-attr]
    refused = await batch.request("echo-args", by=DAVE, text="x")
    secret = await batch.request("reindex-search", steps="1", api_key="hunter2-secret")
    await batch.drain()

    listed = await toilkit(cli_env, "list")
    assert listed.exit_code == 0, listed.output
    assert "batch runs" in listed.output and "echo-args" in listed.output
    rows = {
        r["run_id"]: r for r in _json_objects((await toilkit(cli_env, "list", "--json")).output)
    }
    assert (rows[run_id]["command"], rows[run_id]["environment"], rows[run_id]["status"]) == (
        "echo-args",
        "staging",
        "succeeded",
    )
    assert rows[run_id]["exit_code"] == 0
    assert rows[refused.run_id]["status"] == "refused"
    only_refused = await toilkit(cli_env, "list", "--status", "refused", "--json")
    assert refused.run_id in only_refused.output and run_id not in only_refused.output

    shown = await toilkit(cli_env, "show", run_id[:8])  # the short id from the list works
    assert shown.exit_code == 0, shown.output
    text = shown.output
    assert "echo-args in staging" in text
    assert "alice (U0ALICE001)" in text
    assert "trying toilkit" in text
    assert "'hello from the CLI'" in text
    assert 'argv[1] = "hello from the CLI"' in text
    for action in ("requested", "authorized", "started", "finished"):
        assert re.search(rf"│ {action}\s", text), action

    refusal = await toilkit(cli_env, "show", refused.run_id)
    assert "authorization: U0DAVE0004 may not run echo-args in staging" in refusal.output

    hidden = await toilkit(cli_env, "show", secret.run_id)
    assert "api_key" in hidden.output and "(sensitive)" in hidden.output
    assert "hunter2-secret" not in hidden.output

    as_json = await toilkit(cli_env, "show", run_id, "--json")
    data = json.loads(as_json.output)
    assert data["status"] == "succeeded" and data["exit_code"] == 0
    assert [entry["action"] for entry in data["audit"]] == [
        "requested",
        "authorized",
        "started",
        "finished",
    ]


async def test_request_checks_the_catalog_before_sending(
    batch: BatchHarness, cli_env: dict[str, str]
) -> None:
    result = await toilkit(
        cli_env, "request", "echo-args", "staging", "--as", "U0ALICE001", "-p", "text=--rm"
    )
    assert result.exit_code == 2
    assert "text: starts with '-'" in result.output
    malformed = await toilkit(
        cli_env, "request", "echo-args", "staging", "--as", "U0ALICE001", "-p", "text"
    )
    assert malformed.exit_code == 2 and "is not NAME=VALUE" in malformed.output


async def test_show_names_a_missing_run(cli_env: dict[str, str]) -> None:
    result = await toilkit(cli_env, "show", "no-such-run")
    assert result.exit_code == 1
    assert "no run 'no-such-run'" in result.output
