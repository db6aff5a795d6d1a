"""A catalog command's preview: a dry run that the approvers see before they decide.

:class:`PreviewSpec` is the ``preview`` field of a command in the catalog
(:mod:`shared.catalog` checks its placeholders against the command's parameters);
:func:`fingerprint_of` is the digest recorded with a preview, so an approval runs the
command only while the catalog entry and the values are those the preview ran with.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: What a sensitive value is replaced with in the digest (the digest outlives the value).
_HIDDEN = "(sensitive)"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


#: The longest a preview may take: it runs inside the handling of the request, which the
#: batch worker bounds (``handler_timeout``, 300 s by default) with room to spare.
MAX_PREVIEW_SECONDS = 240


class PreviewSpec(_Model):
    """A dry run of the command that the approvers see before they decide.

    Either ``argv`` (a program of its own, templated from the same parameters) or
    ``append`` (items added after the command's own argv, such as ``--dry-run``); the
    command's ``env`` applies to both. The preview runs on the same runner as the run.
    """

    argv: tuple[str, ...] | None = Field(
        default=None, min_length=1, description="The preview's own argv ({param} items)."
    )
    append: tuple[str, ...] = Field(
        default=(), description="Added after the command's argv, e.g. ['--dry-run']."
    )
    timeout_seconds: int = Field(
        default=120,
        ge=1,
        le=MAX_PREVIEW_SECONDS,
        description="A preview still running after this is stopped and counts as failed.",
    )

    @model_validator(mode="after")
    def _one_way(self) -> PreviewSpec:
        if (self.argv is None) == (not self.append):
            raise ValueError(
                "give either argv (the preview's own program and arguments) or append "
                "(items added after the command's argv, e.g. ['--dry-run']), not both or neither"
            )
        return self

    def template(self, command_argv: tuple[str, ...]) -> tuple[str, ...]:
        """The preview's argv template (placeholders not filled yet)."""
        return self.argv if self.argv is not None else (*command_argv, *self.append)


def fingerprint_of(
    *,
    command: Mapping[str, Any],
    environment: str,
    policy: Mapping[str, Any],
    values: Mapping[str, str],
    sensitive: frozenset[str],
) -> str:
    """The digest of a command's catalog entry, its environment's policy and the values.

    Sensitive values are left out: the digest is kept in the run record after they are
    dropped, and a digest of a short secret can be guessed. The run record that holds
    them until the run starts is the only place the values that run come from.

    Args:
        command: the command's catalog entry (JSON-ready).
        environment: the environment's name.
        policy: the environment's policy (JSON-ready): runner, approval and so on.
        values: parameter name -> the exact string passed.
        sensitive: the names of the sensitive parameters.
    """
    document = {
        "command": command,
        "environment": environment,
        "policy": policy,
        "values": {
            name: _HIDDEN if name in sensitive else value for name, value in sorted(values.items())
        },
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
