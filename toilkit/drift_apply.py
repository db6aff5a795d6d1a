"""``toilkit drift apply``: put a drifted state back to what the code says.

What the **Revert** button's catalog command runs (``docs/drift-actions.md``), and what a
person can run by hand. It plans the state (``-target`` the drifted resources when given),
prints the plan as Terraform shows it, and then, unless ``--plan-only`` (the preview the
approver reads), applies *that saved plan*, so what is applied is exactly what was
printed above it. Terraform's own state lock guards the state (``-lock-timeout``), and a
plan with nothing to change applies nothing: the drift was fixed since.

Exit codes: 0 applied, or nothing to change, or ``--plan-only`` planned; 1 Terraform
failed (its output says why; nothing is half-applied by toilkit: Terraform applies
resource by resource and reports what it did); 2 the state cannot be used as asked.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from services.detector.config import StateConfig
from services.detector.engine import find_terraform

#: How long ``plan`` and ``apply`` wait for another holder of the state lock.
LOCK_TIMEOUT = "120s"
EXIT_APPLIED = 0
EXIT_TERRAFORM_FAILED = 1
EXIT_UNUSABLE = 2
_PLAN_HAS_CHANGES = 2


class ApplyRefused(Exception):
    """The state cannot be applied as asked (exit 2); the message says why."""


def apply_state(
    state: StateConfig,
    *,
    targets: Sequence[str] = (),
    plan_only: bool = False,
    terraform: Sequence[str] | None = None,
) -> int:
    """Plan ``state`` and, unless ``plan_only``, apply the saved plan; the exit code.

    Raises:
        ApplyRefused: the state assumes a role (this command uses the runner's own
            credentials, which could be another account's) or its directory is missing.
    """
    if state.assume_role is not None:
        raise ApplyRefused(
            f"state {state.name} assumes {state.assume_role.role_arn}: run this with that "
            "role's credentials (the runner's role); `toilkit drift apply` does not assume "
            "roles, so that it can never apply to the account of the wrong credentials"
        )
    if not state.directory.is_dir():
        raise ApplyRefused(f"the directory of state {state.name} is missing: {state.directory}")
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}
    if state.workspace != "default":
        env["TF_WORKSPACE"] = state.workspace
    run = _Terraform(tuple(terraform) if terraform else find_terraform(), state.directory, env)
    init = ["init", "-input=false", "-no-color"]
    if state.backend_config is not None:
        init.append(f"-backend-config={state.backend_config}")
    if run(init, quiet=True) != 0:
        return EXIT_TERRAFORM_FAILED
    with tempfile.TemporaryDirectory(prefix="toilkit-apply-") as scratch:
        plan_file = Path(scratch) / "revert.tfplan"
        plan = [
            "plan",
            "-input=false",
            "-no-color",
            f"-lock-timeout={LOCK_TIMEOUT}",
            "-detailed-exitcode",
            # The -target warning in one line: the approvers read the plan's last lines.
            "-compact-warnings",
            f"-out={plan_file}",
            *[f"-target={target}" for target in targets],
        ]
        _say(
            f"== terraform plan of state {state.name}"
            + (f" ({len(targets)} target(s))" if targets else "")
        )
        planned = run(plan)
        if planned == 0:
            _say(f"== nothing to change: {state.name} matches its code (fixed since?)")
            return EXIT_APPLIED
        if planned != _PLAN_HAS_CHANGES:
            return EXIT_TERRAFORM_FAILED
        if plan_only:
            _say("== plan only: nothing applied (the run applies this plan after approval)")
            return EXIT_APPLIED
        _say(f"== terraform apply of the plan above ({state.name})")
        apply = [
            "apply",
            "-input=false",
            "-no-color",
            f"-lock-timeout={LOCK_TIMEOUT}",
            str(plan_file),
        ]
        if run(apply) != 0:
            return EXIT_TERRAFORM_FAILED
    _say(f"== applied: {state.name} is back to what its code says")
    return EXIT_APPLIED


@dataclass(frozen=True)
class _Terraform:
    """Terraform as one state is planned and applied: its directory and environment."""

    command: Sequence[str]
    directory: Path
    env: Mapping[str, str]

    def __call__(self, arguments: Sequence[str], *, quiet: bool = False) -> int:
        """Run one Terraform command, its output on ours (only on failure when ``quiet``)."""
        done = subprocess.run(
            [*self.command, *arguments],
            cwd=self.directory,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=quiet,
            text=True,
            check=False,
        )
        if quiet and done.returncode != 0:
            _say(done.stdout[-4000:] + done.stderr[-4000:])
        return done.returncode


def _say(text: str) -> None:
    print(text, flush=True)
