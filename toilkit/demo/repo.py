"""The demo infrastructure repository: two Terraform states over a JSON "cloud".

``toilkit up`` writes it (by default under ``.toilkit/demo/``) so that a newcomer sees
drift in Slack without an infrastructure repository of their own::

    .toilkit/demo/
      terraform/          the provider mirror, CLI config and plugin cache (kept)
      cloud.json          "the cloud": what the demo provider reads and writes
      origin.git/         a bare git repository: the infra repository's remote, where
                          "Accept into code" pushes its branches
      infra/              the infrastructure repository the detector scans (a git checkout)
        toilkit.yaml      its two states, their channel and schedule
        storage/main.tf   a bucket and a queue in the JSON cloud
        release/main.tf   a terraform_data resource (never drifts)

:func:`write_demo` lays it out afresh (the cloud and the Terraform state go, the mirror
stays); :func:`apply_demo` runs ``init`` and ``apply`` for every state, as an engineer
would; :func:`drift_cloud` changes the cloud outside Terraform, as a console click
would; applying again is the fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.detector.engine import excerpt, find_terraform
from shared.errors import ConfigError, ToilkitError
from toilkit.demo.mirror import ProviderMirror, write_mirror
from toilkit.demo.provider import PROVIDER_SOURCE, PROVIDER_VERSION

#: Where ``toilkit up`` and ``toilkit demo`` keep the demo, relative to where they run.
DEFAULT_DEMO_DIR = Path(".toilkit") / "demo"
DEMO_CHANNEL = "#infra-drift"
DRIFTING_STATE = "storage"
CLEAN_STATE = "release"
STATES = (DRIFTING_STATE, CLEAN_STATE)
#: One ``init`` or ``apply`` of a demo state; they take seconds.
TERRAFORM_TIMEOUT_SECONDS = 180.0

_CONFIG = f"""\
# toilkit's demo infrastructure repository, written by `toilkit up` (afresh at each start).
# Its "cloud" is ../cloud.json, served by a Terraform provider written in Python
# (toilkit/demo/provider.py). Drift it with `toilkit demo drift`, fix it with
# `toilkit demo fix`; both ask the running detector for a scan.
channel: "{DEMO_CHANNEL}"
schedule: "0 7 * * *"   # every morning at 07:00 UTC, like a real team's report
states:
  - name: {DRIFTING_STATE}
    path: {DRIFTING_STATE}
  - name: {CLEAN_STATE}
    path: {CLEAN_STATE}
"""

_STORAGE_MODULE = """\
terraform {{
  required_providers {{
    cloud = {{
      source  = "{source}"
      version = "{version}"
    }}
  }}
}}

provider "cloud" {{
  state_file = {cloud_file}
}}

resource "cloud_bucket" "logs" {{
  name       = "logs"
  versioning = true
  tags = {{
    env  = "prod"
    team = "sre"
  }}

  lifecycle_rule {{
    prefix          = "tmp/"
    expiration_days = 7
  }}
}}

resource "cloud_queue" "jobs" {{
  name               = "jobs"
  visibility_timeout = 30
  tags = {{
    env = "prod"
  }}
}}
"""

_GITIGNORE = """\
.terraform/
*.tfstate
*.tfstate.backup
.terraform.lock.hcl
"""

_RELEASE_MODULE = """\
# Only the built-in terraform_data resource: nothing outside Terraform can change it.
resource "terraform_data" "release" {
  input = "v1"
}
"""


class DemoError(ToilkitError):
    """The demo could not be prepared, drifted or fixed; the message says why."""


@dataclass(frozen=True)
class CloudChange:
    """One change made to the cloud outside Terraform.

    Attributes:
        address: The Terraform address of the changed resource.
        path: The attribute path that changed.
        before: Its value before.
        after: Its value after.
    """

    address: str
    path: str
    before: Any
    after: Any

    def describe(self) -> str:
        return f"{self.address}: {self.path} {json.dumps(self.before)} -> {json.dumps(self.after)}"


@dataclass(frozen=True)
class DemoRepo:
    """Where one demo lives (see the module docstring for the layout).

    Attributes:
        root: The demo's directory.
    """

    root: Path

    @property
    def infra(self) -> Path:
        """The infrastructure repository the detector scans."""
        return self.root / "infra"

    @property
    def config_file(self) -> Path:
        return self.infra / "toilkit.yaml"

    @property
    def cloud_file(self) -> Path:
        return self.root / "cloud.json"

    @property
    def mirror(self) -> ProviderMirror:
        root = self.root / "terraform"
        return ProviderMirror(
            root=root,
            mirror_dir=root / "mirror",
            cli_config=root / "terraformrc",
            plugin_cache_dir=root / "plugin-cache",
        )

    def state_dir(self, state: str) -> Path:
        return self.infra / state

    @property
    def origin(self) -> Path:
        """The bare repository the demo's infra checkout pushes to."""
        return self.root / "origin.git"

    def environment(self) -> dict[str, str]:
        """The environment Terraform needs for the demo's states (its mirror)."""
        return self.mirror.environment()


def write_demo(root: Path = DEFAULT_DEMO_DIR) -> DemoRepo:
    """Lay out a fresh demo under ``root``: no cloud, no Terraform state yet.

    Takes milliseconds, so ``toilkit up`` does it before building the detector, which
    reads the demo's ``toilkit.yaml``; :func:`apply_demo` does the slow part.

    Raises:
        DemoError: ``root`` cannot be written.
    """
    demo = DemoRepo(root.resolve())
    try:
        write_mirror(demo.mirror.root)
        # Afresh: yesterday's state and cloud would make the demo start clean (fixed).
        shutil.rmtree(demo.infra, ignore_errors=True)
        demo.cloud_file.unlink(missing_ok=True)
        demo.cloud_file.with_name(demo.cloud_file.name + ".lock").unlink(missing_ok=True)
        for state in STATES:
            demo.state_dir(state).mkdir(parents=True)
        demo.config_file.write_text(_CONFIG)
        demo.state_dir(DRIFTING_STATE).joinpath("main.tf").write_text(
            _STORAGE_MODULE.format(
                source=PROVIDER_SOURCE,
                version=PROVIDER_VERSION,
                cloud_file=json.dumps(str(demo.cloud_file)),
            )
        )
        demo.state_dir(CLEAN_STATE).joinpath("main.tf").write_text(_RELEASE_MODULE)
        _init_git(demo)
    except OSError as exc:
        raise DemoError(f"cannot write the demo under {root}: {exc}") from exc
    return demo


def _init_git(demo: DemoRepo) -> None:
    """Make the infra folder a git checkout of a fresh bare ``origin`` (for "Accept into
    code"); without git on PATH the demo works, and accepting says it could not push."""
    if shutil.which("git") is None:
        return
    shutil.rmtree(demo.origin, ignore_errors=True)
    demo.infra.joinpath(".gitignore").write_text(_GITIGNORE)
    identity = ["-c", "user.name=toilkit demo", "-c", "user.email=demo@toilkit.invalid"]
    for arguments in (
        ["init", "--quiet", "--bare", "--initial-branch=main", str(demo.origin)],
        ["-C", str(demo.infra), "init", "--quiet", "--initial-branch=main"],
        ["-C", str(demo.infra), "add", "."],
        ["-C", str(demo.infra), *identity, "commit", "--quiet", "-m", "The demo's infra"],
        ["-C", str(demo.infra), "remote", "add", "origin", str(demo.origin)],
        ["-C", str(demo.infra), "push", "--quiet", "origin", "main"],
    ):
        done = subprocess.run(["git", *arguments], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise DemoError(f"setting up the demo's git repository failed: {done.stderr.strip()}")


def open_demo(root: Path = DEFAULT_DEMO_DIR) -> DemoRepo:
    """The demo ``toilkit up`` prepared under ``root``.

    Raises:
        ConfigError: There is none (``toilkit up`` has not run there, or ran ``--no-demo``).
    """
    demo = DemoRepo(root.resolve())
    if not demo.config_file.is_file() or not demo.mirror.cli_config.is_file():
        raise ConfigError(
            f"no demo in {demo.root}: `toilkit up` prepares it (run this command where "
            "`toilkit up` runs, or pass --dir)"
        )
    return demo


async def apply_demo(
    demo: DemoRepo,
    *,
    states: Sequence[str] = STATES,
    on_step: Callable[[str], None] = lambda _: None,
    terraform: Sequence[str] | None = None,
) -> None:
    """``terraform init`` and ``apply`` every demo state, as an engineer would.

    Args:
        demo: The demo.
        states: Which states.
        on_step: Told what runs next (a progress display).
        terraform: The command that runs Terraform (default: the one the detector uses).

    Raises:
        DemoError: A command failed or took too long (Terraform's output is in the message).
    """
    command = tuple(terraform) if terraform else find_terraform()
    env = demo.environment()
    for state in states:
        for arguments in (["init", "-input=false"], ["apply", "-auto-approve", "-input=false"]):
            on_step(f"terraform {arguments[0]} {state}")
            await _run_terraform(command, arguments, cwd=demo.state_dir(state), env=env)


def drift_cloud(demo: DemoRepo) -> list[CloudChange]:
    """Change the demo cloud outside Terraform, as someone in a console would.

    Returns:
        The changes made; empty when the cloud already looked like that.

    Raises:
        DemoError: The cloud has not been applied yet (or was emptied by hand).
    """
    wanted = [
        ("cloud_bucket", "logs", ("tags", "env"), "staging"),
        ("cloud_queue", "jobs", ("visibility_timeout",), 120),
    ]
    try:
        document = json.loads(demo.cloud_file.read_text())
    except (OSError, ValueError) as exc:
        raise DemoError(
            f"the demo cloud {demo.cloud_file} is not there yet (is `toilkit up` still "
            f"preparing it?): {exc}"
        ) from exc
    changes = []
    for kind, name, path, value in wanted:
        found = [obj for obj in document.get(kind, {}).values() if obj.get("name") == name]
        if len(found) != 1:
            raise DemoError(f"the demo cloud has no {kind} named {name!r}; run `toilkit demo fix`")
        holder = found[0]
        for key in path[:-1]:
            holder = holder.setdefault(key, {})
        before = holder.get(path[-1])
        if before != value:
            holder[path[-1]] = value
            address = f"{kind}.{name}"
            changes.append(CloudChange(address, ".".join(path), before, value))
    if changes:
        # Atomically, as the provider writes it: a plan running now reads all or nothing.
        temporary = demo.cloud_file.with_name(demo.cloud_file.name + ".edit")
        temporary.write_text(json.dumps(document, indent=2, sort_keys=True))
        os.replace(temporary, demo.cloud_file)
    return changes


async def _run_terraform(
    command: Sequence[str], arguments: list[str], *, cwd: Path, env: dict[str, str]
) -> None:
    process = await asyncio.create_subprocess_exec(
        *command,
        *arguments,
        "-no-color",
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        # Its own group: a cancelled demo (Ctrl-C) stops Terraform and its provider too.
        start_new_session=True,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), TERRAFORM_TIMEOUT_SECONDS)
    except TimeoutError:
        await _stop(process)
        raise DemoError(
            f"terraform {arguments[0]} took over {TERRAFORM_TIMEOUT_SECONDS:g} s in {cwd}"
        ) from None
    except BaseException:  # cancelled: leave no Terraform or provider process behind
        await _stop(process)
        raise
    if process.returncode != 0:
        raise DemoError(
            f"terraform {arguments[0]} exited with {process.returncode} in {cwd}:\n"
            f"{excerpt(output)}"
        )


async def _stop(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()
