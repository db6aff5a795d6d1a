"""Pushing an accepted drift as a branch of the infrastructure repository.

The detector's checkout is never touched: :func:`push_patch` clones it (``--shared``, so
nothing is copied), commits the patched files on a new branch and pushes that branch to
the configured remote. The branch is ``toilkit/drift/<state>/<date>``, with ``-2``, ``-3``...
when that name is taken, so a second accept on the same day never overwrites the first.
``git`` is the command-line tool (every CI image and the detector's image have it); a
library would add a dependency for four commands.

A remote that refuses the push (no credentials, a protected namespace, a hook) raises
:class:`PushRefused` with git's own last lines, and nothing is left behind: the clone is
a temporary directory.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from services.detector.accept.patch import FileEdit
from shared.errors import PermanentError

BRANCH_PREFIX = "toilkit/drift"
_GITHUB = re.compile(
    r"^(?:https://|git@|ssh://git@)github\.com[:/](?P<repo>[^/]+/[^/]+?)(?:\.git)?/?$"
)
_GITLAB = re.compile(r"^(?:https://|git@|ssh://git@)gitlab\.com[:/](?P<repo>.+?)(?:\.git)?/?$")
_UNSAFE_REF = re.compile(r"[^A-Za-z0-9._/-]+")


class PushRefused(PermanentError):
    """git could not push the branch; the message carries git's own explanation."""


@dataclass(frozen=True)
class PushedBranch:
    """Where an accepted drift went: the branch, its commit, and a link to compare it."""

    branch: str
    commit: str
    compare_url: str | None


def branch_name(state: str, day: date) -> str:
    """``toilkit/drift/<state>/<YYYY-MM-DD>``, the state's name made safe for a ref."""
    safe = _UNSAFE_REF.sub("-", state).strip("/.-").replace("..", "-") or "state"
    return f"{BRANCH_PREFIX}/{safe}/{day.isoformat()}"


def compare_url(remote: str, base: str, branch: str, template: str | None = None) -> str | None:
    """A link to compare the branch with its base: the configured template, else GitHub's
    or GitLab's own page for their remotes, else none."""
    if template:
        return template.format(base=base, branch=branch)
    if match := _GITHUB.match(remote):
        return f"https://github.com/{match['repo']}/compare/{base}...{branch}?expand=1"
    if match := _GITLAB.match(remote):
        return f"https://gitlab.com/{match['repo']}/-/compare/{base}...{branch}"
    return None


@dataclass(frozen=True)
class GitTarget:
    """Where accepted drifts are pushed.

    Attributes:
        checkout: The detector's checkout of the infrastructure repository.
        remote: The remote's name in the checkout (``origin``) or a URL.
        base: The branch the change is meant for (``main``).
        compare_template: A compare link with ``{base}`` and ``{branch}``, for hosts
            other than GitHub and GitLab.
    """

    checkout: Path
    remote: str = "origin"
    base: str = "main"
    compare_template: str | None = None


async def push_patch(
    target: GitTarget,
    edits: Sequence[FileEdit],
    *,
    state: str,
    day: date,
    message: str,
    author: str,
) -> PushedBranch:
    """Commit ``edits`` on a new branch off the checkout's ``HEAD`` and push it.

    Args:
        target: The checkout and remote.
        edits: The accepted drift's edited files (paths inside ``target.checkout``).
        state: The state's name (for the branch).
        day: Today (for the branch).
        message: The commit message.
        author: The commit's author, ``Name <email>``.

    Raises:
        PushRefused: git failed; its message says why.
    """
    checkout = target.checkout.resolve()
    remote_url = await _remote_url(checkout, target.remote)
    branch = await _free_branch(remote_url, branch_name(state, day))
    with tempfile.TemporaryDirectory(prefix="toilkit-accept-") as scratch:
        clone = Path(scratch) / "repo"
        await _git(["clone", "--quiet", "--shared", "--no-checkout", str(checkout), str(clone)])
        head = (await _git(["-C", str(checkout), "rev-parse", "HEAD"])).strip()
        await _git(["-C", str(clone), "checkout", "--quiet", "-b", branch, head])
        for edit in edits:
            relative = edit.path.resolve().relative_to(checkout)
            (clone / relative).write_text(edit.after, encoding="utf-8")
            await _git(["-C", str(clone), "add", "--", relative.as_posix()])
        name, _, email = author.partition(" <")
        identity = ["-c", f"user.name={name}", "-c", f"user.email={email.rstrip('>')}"]
        await _git(["-C", str(clone), *identity, "commit", "--quiet", "-m", message])
        commit = (await _git(["-C", str(clone), "rev-parse", "HEAD"])).strip()
        await _git(["-C", str(clone), "push", "--quiet", remote_url, f"HEAD:refs/heads/{branch}"])
    return PushedBranch(
        branch, commit, compare_url(remote_url, target.base, branch, target.compare_template)
    )


async def _remote_url(checkout: Path, remote: str) -> str:
    if "/" in remote or ":" in remote:
        return remote
    return (await _git(["-C", str(checkout), "remote", "get-url", remote])).strip()


async def _free_branch(remote_url: str, wanted: str) -> str:
    listed = await _git(["ls-remote", "--heads", remote_url, f"{wanted}*"])
    taken = {line.split("refs/heads/", 1)[-1] for line in listed.splitlines() if line}
    if wanted not in taken:
        return wanted
    suffix = 2
    while f"{wanted}-{suffix}" in taken:
        suffix += 1
    return f"{wanted}-{suffix}"


async def _git(arguments: Sequence[str]) -> str:
    process = await asyncio.create_subprocess_exec(
        "git",
        *arguments,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # Never wait for a password prompt that nobody will answer.
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        lines = stderr.decode("utf-8", "replace").strip().splitlines()[-4:]
        raise PushRefused(f"git {_subcommand(arguments)} failed: " + " / ".join(lines))
    return stdout.decode("utf-8", "replace")


def _subcommand(arguments: Sequence[str]) -> str:
    """The git command among the arguments (``push`` in ``-C dir -c k=v push ...``)."""
    skip = False
    for argument in arguments:
        if skip:
            skip = False
        elif argument in ("-C", "-c"):
            skip = True
        else:
            return argument
    return "(none)"
