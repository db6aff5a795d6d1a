"""The local runner on its own: real subprocesses, the run log on disk (CloudWatch is
covered end to end in test_batch_local.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from services.batch.runners.base import RunnerError, RunSpec
from services.batch.runners.local import LocalRunner, inherited_env
from services.batch.runners.logs import MAX_LINE_CHARS, RunLogs, safe_name
from shared.catalog import LocalRunnerSettings
from tests.integration.batch_harness import run_spec


@pytest.fixture
def runner(tmp_path: Path) -> LocalRunner:
    logs = RunLogs(
        logs=None,
        group="/toilkit/batch",
        log_dir=tmp_path / "logs",
        region="us-east-1",
        console_links=False,
        tail_lines=5,
    )
    return LocalRunner(open_log=logs, base_env=inherited_env(os.environ), kill_grace=1)


def spec(
    tmp_path: Path, *argv: str, timeout: float = 10, env: dict[str, str] | None = None
) -> RunSpec:
    return run_spec(
        LocalRunnerSettings(),
        *argv,
        command="test",
        environment="staging",
        env=env,
        timeout=timeout,
        run_id=f"run-{tmp_path.name}",
        request_event_id="e",
        workdir=tmp_path,
    )


async def run(runner: LocalRunner, run_spec: RunSpec):  # type: ignore[no-untyped-def]
    return await runner.wait(run_spec, await runner.start(run_spec))


async def test_the_process_gets_a_clean_environment_and_its_workdir(
    runner: LocalRunner, tmp_path: Path
) -> None:
    # The test process has AWS credentials (conftest); a command must never see them.
    assert "AWS_SECRET_ACCESS_KEY" in os.environ
    script = "import json, os; print(json.dumps({'cwd': os.getcwd(), 'env': sorted(os.environ)}))"
    outcome = await run(runner, spec(tmp_path, "python3", "-c", script, env={"MODE": "x"}))
    assert outcome.status == "succeeded"
    seen = json.loads(next(line for line in outcome.log_tail if line.startswith("{")))
    assert seen["cwd"] == str(tmp_path)
    assert "AWS_SECRET_ACCESS_KEY" not in seen["env"] and "AWS_ACCESS_KEY_ID" not in seen["env"]
    assert {"PATH", "MODE", "TOILKIT_RUN_ID", "PYTHONUNBUFFERED"} <= set(seen["env"])


async def test_processes_left_behind_are_killed_and_the_run_ends(
    runner: LocalRunner, tmp_path: Path
) -> None:
    # The program exits at once but leaves a child holding its output open.
    outcome = await run(runner, spec(tmp_path, "sh", "-c", "sleep 60 & echo parent done"))
    assert outcome.status == "succeeded"
    assert "toilkit: the program left processes behind; killing them" in outcome.log_tail


async def test_odd_output_is_kept_readable(runner: LocalRunner, tmp_path: Path) -> None:
    script = (
        "import sys; out = sys.stdout.buffer\n"
        "out.write(b'bad \\xff byte\\r\\n')\n"
        f"out.write(b'x' * {MAX_LINE_CHARS + 10} + b'\\n')\n"
        "out.write(b'no newline at the end')\n"
    )
    run_spec = spec(tmp_path, "python3", "-c", script)
    outcome = await run(runner, run_spec)
    assert outcome.status == "succeeded"
    log = (tmp_path / "logs" / f"{run_spec.run_id}.log").read_text()
    assert "bad \ufffd byte\n" in log
    assert "x" * MAX_LINE_CHARS + " [line cut]\n" in log
    assert "no newline at the end\n" in log


async def test_a_program_that_cannot_start_is_a_runner_error(
    runner: LocalRunner, tmp_path: Path
) -> None:
    with pytest.raises(RunnerError, match="cannot start 'no-such-program-here'"):
        await runner.start(spec(tmp_path, "no-such-program-here"))


def test_run_ids_cannot_escape_the_log_folder() -> None:
    assert safe_name("../../etc/passwd") == "_.._etc_passwd"
    assert safe_name("run:1*2") == "run_1_2"
    assert safe_name("...") == "run"
