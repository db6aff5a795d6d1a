"""Terraform with the demo provider and no registry: a filesystem mirror and a CLI config.

:func:`write_mirror` writes, into a directory of the caller's choosing:

* ``mirror/``: a filesystem mirror in Terraform's *unpacked* layout,
  ``terraform.toilkit.test/toilkit/cloud/0.1.0/linux_amd64/terraform-provider-cloud_v0.1.0``,
  whose executable runs :mod:`toilkit.demo.provider` with this interpreter (the one that
  has the ``tf`` package). It is written per machine, never committed, because it names
  this machine's interpreter by absolute path.
* ``terraformrc``: a CLI configuration (``TF_CLI_CONFIG_FILE``) whose
  ``provider_installation`` takes ``terraform.toilkit.test/*/*`` from that mirror only.
  ``terraform_data`` is built in (``terraform.io/builtin/terraform``), so nothing ever
  goes to a registry.
* ``plugin-cache/``: the ``TF_PLUGIN_CACHE_DIR`` of everything planned with this mirror.

A mirror rather than ``dev_overrides``: with a mirror, ``init`` installs the provider,
computes its ``h1:`` hash and writes ``.terraform.lock.hcl`` exactly as with a registry,
and plans run without the "provider development overrides are in effect" warning, so
the detector sees what it sees in production.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from toilkit.demo.provider import PROVIDER_SOURCE, PROVIDER_VERSION

PROVIDER_SCRIPT = Path(__file__).resolve().with_name("provider.py")
PROVIDER_HOST, PROVIDER_NAMESPACE, PROVIDER_TYPE = PROVIDER_SOURCE.split("/")
_GO_ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
#: Terraform looks only under its own platform's name (Go's OS_ARCH); the executable is a
#: shell script, so the same one serves every platform.
PLATFORM = (
    f"{os.uname().sysname.lower()}_{_GO_ARCHITECTURES.get(os.uname().machine, os.uname().machine)}"
)

#: Set for every Terraform command: no update checks, no prompts.
AUTOMATION_VARIABLES: Mapping[str, str] = {
    "CHECKPOINT_DISABLE": "1",
    "TF_IN_AUTOMATION": "1",
    "TF_INPUT": "0",
}
#: Variables that would make someone's own Terraform setup leak into the mirror's.
ISOLATED_VARIABLES = ("TF_CLI_CONFIG_FILE", "TF_PLUGIN_CACHE_DIR", "TF_WORKSPACE", "TF_DATA_DIR")


@dataclass(frozen=True)
class ProviderMirror:
    """Where the mirror, the CLI config and the plugin cache live.

    Attributes:
        root: The directory holding the three.
        mirror_dir: The filesystem mirror.
        cli_config: The CLI configuration that installs from the mirror.
        plugin_cache_dir: The shared plugin cache.
    """

    root: Path
    mirror_dir: Path
    cli_config: Path
    plugin_cache_dir: Path

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment Terraform runs with to use this mirror.

        Args:
            base: The variables to start from (default: this process's environment);
                any Terraform CLI configuration of its own is dropped.
        """
        start = os.environ if base is None else base
        env = {k: v for k, v in start.items() if k not in ISOLATED_VARIABLES}
        env.update(AUTOMATION_VARIABLES)
        env["TF_CLI_CONFIG_FILE"] = str(self.cli_config)
        env["TF_PLUGIN_CACHE_DIR"] = str(self.plugin_cache_dir)
        return env


def write_mirror(root: Path, *, python: str = sys.executable) -> ProviderMirror:
    """Write the provider mirror, the CLI config and the plugin cache under ``root``.

    Idempotent: writing again over an existing mirror rewrites the same files.

    Args:
        root: Where to write them (created if missing).
        python: The interpreter that runs the provider; it must have the ``tf`` package.
    """
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
        "# Terraform starts providers as executables; this one is a Python script.\n"
        f'exec "{python}" "{PROVIDER_SCRIPT}" "$@"\n'
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
    return ProviderMirror(
        root=root, mirror_dir=mirror_dir, cli_config=cli_config, plugin_cache_dir=plugin_cache_dir
    )
