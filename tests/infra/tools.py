"""The validators `make tools` installs, found and run for the tests in tests/infra.

Python tools live in .venv-tools (requirements-tools.lock), Node ones in node_modules
(package-lock.json). A missing tool skips its test on a laptop and fails it in CI (where
``CI`` is set), so a CI run can never pass without having validated anything.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
INFRA = REPO / "infra"
TERRAFORM = INFRA / "terraform"
TOOLS_BIN = REPO / ".venv-tools" / "bin"
NODE_MODULES = REPO / "node_modules"


def require(path: Path) -> Path:
    """``path`` if it is installed; otherwise fail in CI and skip elsewhere."""
    if path.exists():
        return path
    message = f"{path.relative_to(REPO)} is not installed: run `make tools`"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI must run every validator)")
    pytest.skip(message)


def run(args: list[str | Path], *, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a validator from the repository root and return what it said."""
    return subprocess.run(
        [str(a) for a in args],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        # Validators write no caches into the tree and ask no server anything.
        env={**os.environ, "NO_COLOR": "1", "BC_SKIP_MAPPING": "TRUE"},
    )
