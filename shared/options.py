"""Choices that live elsewhere: a catalog parameter's ``options_from`` source.

A ``choice`` parameter lists its choices in the catalog, or names where they come from:

* ``git``: the files matching a glob in a git repository at a ref (the app's
  ``script/patches/*.rb``), read with ``git fetch`` + ``git ls-tree`` into a cache folder;
* ``url``: a list served over HTTP(S): a JSON list (of strings, or of ``{"value", "label"}``
  objects) or plain text, one choice a line;
* ``command``: the output lines of a command run on the batch side (never in the gateway).

The lists are fetched in the background and kept in the state table
(:mod:`shared.state_table.options`); the gateway answers Slack's ``block_suggestion`` from
there and never waits on a source. This module holds the models, the limits and the pure
parts (glob matching, filtering by what was typed); fetching is
:mod:`shared.options_fetch`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Annotated, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.slack.blocks import MAX_OPTION_VALUE

#: Choices kept per list (a state table item holds at most 400 KB).
MAX_LISTED = 2000
#: The value of the option that says the list cannot be shown; never a valid choice.
UNAVAILABLE_VALUE = "__toilkit_list_unavailable__"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class _SourceBase(_Model):
    ttl_seconds: int = Field(
        default=300,
        ge=5,
        le=7 * 24 * 3600,
        description="A list older than this is fetched again (in the background; the old "
        "one is served meanwhile).",
    )
    timeout_seconds: float = Field(
        default=30, gt=0, le=600, description="How long one fetch of the source may take."
    )

    def fingerprint(self) -> str:
        """Changes when the source's definition changes (a cached list then counts as old)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class GitGlobSource(_SourceBase):
    """Files matching ``glob`` in ``repository`` at ``ref``; the value is the file's path in
    the repository (``script/patches/fix_totals.rb``)."""

    kind: Literal["git"] = "git"
    repository: str = Field(
        min_length=1,
        description="A git URL, or a path (relative to the catalog's folder) to a repository.",
    )
    ref: str = Field(default="main", pattern=r"^[A-Za-z0-9._/-]{1,200}$")
    glob: str = Field(min_length=1, max_length=300, description="e.g. script/patches/*.rb")
    label: Literal["path", "name", "stem"] = Field(
        default="name",
        description="What the option shows: the path, the file name, or the name without "
        "its extension.",
    )

    @field_validator("ref")
    @classmethod
    def _not_an_option(cls, ref: str) -> str:
        if ref.startswith("-") or ".." in ref:
            raise ValueError(f"{ref!r} is not a branch, tag or commit name")
        return ref

    @field_validator("repository")
    @classmethod
    def _not_an_option_either(cls, repository: str) -> str:
        if repository.startswith("-"):
            raise ValueError(f"{repository!r} would be read by git as an option")
        return repository

    def describe(self) -> str:
        return f"{self.glob} in {self.repository} at {self.ref}"


class UrlSource(_SourceBase):
    """A list served over HTTP(S): JSON (a list) or text (one choice a line)."""

    kind: Literal["url"] = "url"
    url: str = Field(pattern=r"^https?://", max_length=2000)
    format: Literal["auto", "json", "lines"] = "auto"

    def describe(self) -> str:
        return self.url


class CommandSource(_SourceBase):
    """The output lines of a command, run by the batch service (never by the gateway)."""

    kind: Literal["command"] = "command"
    argv: tuple[str, ...] = Field(min_length=1)
    workdir: str = Field(default=".", description="Relative to the catalog file's folder.")

    def describe(self) -> str:
        return " ".join(self.argv)


OptionsSource: TypeAlias = Annotated[
    GitGlobSource | UrlSource | CommandSource, Field(discriminator="kind")
]


class OptionItem(_Model):
    """One choice: the value the process gets, and what the person sees."""

    value: str
    label: str = ""

    @property
    def text(self) -> str:
        return self.label or self.value


# --------------------------------------------------------------------------- pure parts


def value_problem(value: str) -> str | None:
    """Why ``value`` cannot be a listed choice (None: it can)."""
    if not value:
        return "is empty"
    if len(value) > MAX_OPTION_VALUE:
        return f"is longer than {MAX_OPTION_VALUE} characters (Slack's limit for a choice)"
    if "\x00" in value or "\n" in value:
        return "contains a NUL or a line break"
    if value.startswith("-"):
        return "starts with '-', which the program would read as an option"
    if value == UNAVAILABLE_VALUE:
        return "is not a choice: the list was unavailable just now (try again in a minute)"
    return None


def clean_items(items: Iterable[OptionItem]) -> tuple[list[OptionItem], int]:
    """The usable choices (deduplicated, in order, at most :data:`MAX_LISTED`) and how many
    were dropped."""
    kept: list[OptionItem] = []
    seen: set[str] = set()
    dropped = 0
    for item in items:
        if value_problem(item.value) is not None or item.value in seen:
            dropped += 1
            continue
        if len(kept) >= MAX_LISTED:
            dropped += 1
            continue
        seen.add(item.value)
        kept.append(item)
    return kept, dropped


def _segment_pattern(segment: str) -> str:
    """One path segment of a glob as a regular expression: ``*`` and ``?`` never cross a
    ``/``; ``[...]`` is a character class."""
    out: list[str] = []
    index = 0
    while index < len(segment):
        char = segment[index]
        closing = segment.find("]", index + 2) if char == "[" else -1
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif closing != -1:
            inner = segment[index + 1 : closing].replace("\\", "\\\\")
            out.append("[" + ("^" + inner[1:] if inner.startswith("!") else inner) + "]")
            index = closing
        else:
            out.append(re.escape(char))
        index += 1
    return "".join(out)


@lru_cache(maxsize=64)
def _glob_pattern(glob: str) -> re.Pattern[str]:
    pattern = ""
    for segment in glob.strip("/").split("/"):
        pattern += "(?:[^/]+/)*" if segment == "**" else _segment_pattern(segment) + "/"
    return re.compile(pattern.removesuffix("/") + r"\Z", re.S)


def glob_matches(glob: str, path: str) -> bool:
    """Whether a repository path matches a glob: ``*`` within one folder, ``**`` across."""
    pattern = _glob_pattern(glob)
    return pattern.match(path) is not None


def git_items(source: GitGlobSource, paths: Iterable[str]) -> list[OptionItem]:
    """The choices a git source lists, from every path of the tree at its ref."""
    items = []
    for path in sorted(p for p in paths if glob_matches(source.glob, p)):
        name = path.rsplit("/", 1)[-1]
        label = {"path": path, "name": name, "stem": name.rsplit(".", 1)[0] or name}
        items.append(OptionItem(value=path, label=label[source.label]))
    return items


def filter_items(items: Sequence[OptionItem], typed: str, limit: int) -> list[OptionItem]:
    """The choices matching what was typed (case-insensitive): those starting with it first,
    then those containing it, each in list order; at most ``limit``."""
    needle = typed.strip().casefold()
    if not needle:
        return list(items[:limit])
    starts: list[OptionItem] = []
    contains: list[OptionItem] = []
    for item in items:
        text, value = item.text.casefold(), item.value.casefold()
        if text.startswith(needle) or value.startswith(needle):
            starts.append(item)
        elif needle in text or needle in value:
            contains.append(item)
    return (starts + contains)[:limit]
