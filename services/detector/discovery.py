"""Finding the Terraform states of a repository that has no ``toilkit.yaml`` entry for them.

A state is a *root module*: a directory Terraform is run in. :class:`TerraformRootModules`
takes a directory with ``*.tf`` files as a root module when

* it declares where its state lives (``terraform { backend "..." {} }`` or
  ``terraform { cloud {} }``): only a root module may; or
* it has a ``.terraform.lock.hcl`` (someone ran ``init`` there) and it is not a module
  folder: no other configuration uses it as a local module (``source = "../x"``) and no
  part of its path is named ``modules``.

``.terraform``, ``.terragrunt-cache`` and every other hidden directory are never entered.
Every directory with configuration that is *not* taken is listed in
:attr:`Discovery.skipped` with the reason, and every file that cannot be parsed in
:attr:`Discovery.problems`, so ``toilkit drift scan -v`` can say why a state is missing.

Another tool's layout (terragrunt units, say) plugs in as one more :class:`StateFinder`;
:func:`discover_states` merges what the finders return.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import hcl2
from lark.exceptions import LarkError
from pydantic import BaseModel, ConfigDict

LOCK_FILE = ".terraform.lock.hcl"
MODULES_FOLDER = "modules"
_NEVER_ENTERED = frozenset({"node_modules", "__pycache__"})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DiscoveredState(_Frozen):
    """A root module found in the repository.

    Attributes:
        path: Relative to the repository root, POSIX notation (``.`` for the root).
        directory: The absolute directory.
        evidence: Why it counts as a root module (``backend "s3"``, ``cloud block``,
            ``lock file``).
    """

    path: str
    directory: Path
    evidence: str


class SkippedDirectory(_Frozen):
    """A directory with configuration that is not scanned, and why."""

    path: str
    reason: str


class Discovery(_Frozen):
    """What discovery found: states in path order, skipped directories, unreadable files."""

    states: tuple[DiscoveredState, ...] = ()
    skipped: tuple[SkippedDirectory, ...] = ()
    problems: tuple[str, ...] = ()


class StateFinder(Protocol):
    """Finds the states of one tool's layout in a repository."""

    def find(self, repo: Path) -> Discovery:
        """Every state under ``repo``; never raises for a file it cannot read."""


@dataclass
class _Directory:
    """What the ``*.tf`` files of one directory say."""

    backend: str | None = None
    local_sources: set[Path] = field(default_factory=set)
    has_lock_file: bool = False


class TerraformRootModules:
    """Root modules of plain Terraform/OpenTofu (see the module doc for the rules)."""

    def find(self, repo: Path) -> Discovery:
        repo = repo.resolve()
        directories: dict[Path, _Directory] = {}
        problems: list[str] = []
        for directory, files in _configuration_directories(repo):
            facts = _Directory(has_lock_file=(directory / LOCK_FILE).is_file())
            for file in files:
                try:
                    document = _load(file)
                except (LarkError, ValueError, OSError, RecursionError) as exc:
                    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    problems.append(f"{_relative(file, repo)}: cannot parse ({first_line})")
                    continue
                facts.backend = facts.backend or _backend_of(document)
                facts.local_sources.update(
                    (directory / source).resolve() for source in _local_module_sources(document)
                )
            directories[directory] = facts

        used_as_module = {
            source: user for user, facts in directories.items() for source in facts.local_sources
        }
        states: list[DiscoveredState] = []
        skipped: list[SkippedDirectory] = []
        for directory, facts in sorted(directories.items()):
            path = _relative(directory, repo)
            if facts.backend is not None:
                states.append(
                    DiscoveredState(path=path, directory=directory, evidence=facts.backend)
                )
                continue
            reason = None
            if directory in used_as_module:
                reason = f"used as a module by {_relative(used_as_module[directory], repo)}"
            elif MODULES_FOLDER in Path(path).parts:
                reason = f"inside a {MODULES_FOLDER}/ folder"
            elif not facts.has_lock_file:
                reason = f"no backend block and no {LOCK_FILE} (never initialised?)"
            if reason is None:
                states.append(DiscoveredState(path=path, directory=directory, evidence="lock file"))
            else:
                skipped.append(SkippedDirectory(path=path, reason=reason))
        return Discovery(states=tuple(states), skipped=tuple(skipped), problems=tuple(problems))


def discover_states(repo: Path, finders: Iterable[StateFinder] | None = None) -> Discovery:
    """Run the finders (plain Terraform by default) and merge their findings.

    A directory two finders both claim is kept once, as the first finder saw it.
    """
    states: dict[Path, DiscoveredState] = {}
    skipped: list[SkippedDirectory] = []
    problems: list[str] = []
    for finder in finders or (TerraformRootModules(),):
        found = finder.find(repo)
        for state in found.states:
            states.setdefault(state.directory, state)
        skipped.extend(found.skipped)
        problems.extend(found.problems)
    claimed = {s.path for s in states.values()}
    return Discovery(
        states=tuple(sorted(states.values(), key=lambda s: s.path)),
        skipped=tuple(s for s in skipped if s.path not in claimed),
        problems=tuple(problems),
    )


def _configuration_directories(repo: Path) -> Iterator[tuple[Path, list[Path]]]:
    for root, dirnames, filenames in os.walk(repo):
        # Pruned in place so os.walk never descends into them; sorted for a stable order.
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and d not in _NEVER_ENTERED
        )
        files = sorted(
            Path(root) / f for f in filenames if f.endswith(".tf") or f.endswith(".tf.json")
        )
        if files:
            yield Path(root), files


def _load(file: Path) -> dict[str, Any]:
    text = file.read_text(encoding="utf-8")
    if file.name.endswith(".tf.json"):
        document = json.loads(text)
        return _json_configuration(document) if isinstance(document, dict) else {}
    loaded: dict[str, Any] = hcl2.loads(text)
    return loaded


def _json_configuration(document: dict[str, Any]) -> dict[str, Any]:
    """Reshape Terraform's JSON syntax to python-hcl2's shape (lists of blocks)."""
    shaped: dict[str, Any] = {}
    for key in ("terraform", "module"):
        value = document.get(key)
        if isinstance(value, dict):
            shaped[key] = [value] if key == "terraform" else [{k: v} for k, v in value.items()]
        elif isinstance(value, list):
            shaped[key] = value
    return shaped


def _unquote(value: Any) -> str:
    # python-hcl2 8 keeps the quotes of labels and string literals ('"s3"'); older ones do not.
    text = str(value)
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def _blocks(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def _backend_of(document: dict[str, Any]) -> str | None:
    for block in _blocks(document.get("terraform")):
        for backend in _blocks(block.get("backend")):
            for label in backend:
                if not label.startswith("__"):
                    return f'backend "{_unquote(label)}"'
        if _blocks(block.get("cloud")):
            return "cloud block"
    return None


def _local_module_sources(document: dict[str, Any]) -> list[str]:
    sources = []
    for call in _blocks(document.get("module")):
        for label, body in call.items():
            if label.startswith("__") or not isinstance(body, dict):
                continue
            source = _unquote(body.get("source", ""))
            # Terraform reads only ./ and ../ prefixes as local paths; anything else is
            # fetched (registry, git, s3...) and never lives in this repository.
            if source.startswith(("./", "../")):
                sources.append(source)
    return sources


def _relative(path: Path, repo: Path) -> str:
    relative = path.relative_to(repo).as_posix()
    return relative or "."
